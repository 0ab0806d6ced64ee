"""Simulated labs for the remote tests: started with `labctl sim up` in a tmp dir, stopped by `sim down` (by PID)."""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pytest

from tests.conftest import ROOT, CliResult

DATA = Path(__file__).parent / "data"
SEED = ROOT / "topologies" / "esx35-ha-pair.yaml"
TRIO = ROOT / "topologies" / "esxi8-ha-trio.yaml"
PAIR55 = DATA / "esxi55-pair.yaml"
JUMP = DATA / "esx35-jump.yaml"


def job_script(cmd: str) -> str:
    """The script of a detached job: the argument after `sh -c`."""
    tokens = shlex.split(cmd)
    return tokens[tokens.index("-c") + 1]


@dataclass
class SimLab:
    topology: Path
    sim_dir: Path
    cli: Callable[..., CliResult]
    environ: dict[str, str]

    def labctl(self, *argv: str) -> CliResult:
        return self.cli(*argv, environ=self.environ)

    def macs(self, action: str, *extra: str) -> CliResult:
        return self.labctl("macs", action, str(self.topology), "--sim", "--sim-dir", str(self.sim_dir), *extra)

    def scan_json(self) -> dict:
        r = self.macs("scan", "--json")
        assert r.status in (0, 1), r.err
        return json.loads(r.out)

    def fault(self, host: str, *args: str) -> None:
        r = self.labctl("sim", "fault", str(self.topology), host, "--sim-dir", str(self.sim_dir), *args)
        assert r.status == 0, r.err

    def counters(self, host: str) -> dict:
        return json.loads((self.sim_dir / "hosts" / host / "runtime.json").read_text())

    def endpoints(self):
        from labctl.sim.endpoints import load_endpoints

        return load_endpoints(self.sim_dir)


@pytest.fixture
def sim_lab(tmp_path, run_cli):
    """sim_lab(topology, *sim_up_args, environ=...) -> SimLab; every lab is stopped at teardown, also on failure."""
    started: list[SimLab] = []

    def start(topology: Path, *extra: str, environ: dict[str, str] | None = None) -> SimLab:
        d = tmp_path / f"sim-{topology.stem}-{len(started)}"
        env = dict(environ or {})
        lab = SimLab(topology, d, run_cli, env)
        started.append(lab)
        r = lab.labctl("sim", "up", str(topology), "--sim-dir", str(d), "--reboot-delay", "0.2", "--no-vcenter",
                       "--reset", *extra)
        assert r.status == 0, r.err
        return lab

    yield start
    for lab in started:
        lab.labctl("sim", "down", str(lab.topology), "--sim-dir", str(lab.sim_dir))
