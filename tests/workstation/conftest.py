"""Fixtures for the Workstation driver: a fake vmrun (and friends) on PATH, recording their calls."""

from __future__ import annotations

import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


@dataclass
class FakeVmrun:
    bin_dir: Path
    exe: Path
    log: Path
    state: Path
    script: Path
    environ: dict[str, str]

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(ln) for ln in self.log.read_text().splitlines() if ln.strip()]

    def canned(self, *answers: dict) -> None:
        """Queue canned answers: {"command": "snapshot", "stdout": "...", "exit": 0, "sleep": 0}."""
        self.script.write_text(json.dumps(list(answers)))

    def set_state(self, running=(), snapshots=None) -> None:
        self.state.write_text(json.dumps({"running": list(running), "snapshots": snapshots or {}}))

    def get_state(self) -> dict:
        return json.loads(self.state.read_text()) if self.state.exists() else {"running": [], "snapshots": {}}


def install_script(bin_dir: Path, name: str, source: Path) -> Path:
    """Copy a Python script into bin_dir as an executable `name` run by this interpreter."""
    exe = bin_dir / name
    exe.write_text(f"#!{sys.executable}\n" + source.read_text())
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return exe


@pytest.fixture
def fake_vmrun(tmp_path) -> FakeVmrun:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    exe = install_script(bin_dir, "vmrun", HERE / "fake_vmrun.py")
    log, state, script = (
        tmp_path / "vmrun-calls.jsonl",
        tmp_path / "vmrun-state.json",
        tmp_path / "vmrun-script.json",
    )
    environ = {
        "PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin",
        "FAKE_VMRUN_LOG": str(log),
        "FAKE_VMRUN_STATE": str(state),
        "FAKE_VMRUN_SCRIPT": str(script),
    }
    return FakeVmrun(bin_dir, exe, log, state, script, environ)


RECORDER = """
import json, os, sys
with open(os.environ["FAKE_TOOL_LOG"], "a") as f:
    f.write(json.dumps([os.path.basename(sys.argv[0])] + sys.argv[1:]) + "\\n")
code = int(os.environ.get("FAKE_TOOL_EXIT_" + os.path.basename(sys.argv[0]).replace("-", "_").upper(), "0"))
sys.stdout.write(os.environ.get("FAKE_TOOL_STDOUT", ""))
sys.stderr.write(os.environ.get("FAKE_TOOL_STDERR", ""))
sys.exit(code)
"""


@pytest.fixture
def fake_tools(tmp_path):
    """Recording fakes of vmware-networks and systemctl on PATH: returns (environ, read_calls)."""
    bin_dir = tmp_path / "toolbin"
    bin_dir.mkdir()
    src = tmp_path / "recorder.py"
    src.write_text(RECORDER)
    for name in ("vmware-networks", "systemctl"):
        install_script(bin_dir, name, src)
    log = tmp_path / "tool-calls.jsonl"
    environ = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "FAKE_TOOL_LOG": str(log)}

    def calls() -> list[list[str]]:
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    return environ, calls
