"""Simulated lab state is private whichever command creates it (issue 13): the sim dir 0700, every state file
0600 — a host's state.json holds the hash of $LAB_ESX_PASSWORD (the kickstart's crypt hash)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _modes(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): stat.S_IMODE(p.stat().st_mode) for p in d.rglob("*") if p.is_file()}


@pytest.mark.parametrize("pre_existing", [False, True], ids=["fresh", "was-0755"])
def test_up_sim_makes_the_sim_dir_private_and_state_files_0600(pre_existing, tmp_path, run_cli):
    from labctl.sim import lab

    d = tmp_path / "sim"
    if pre_existing:
        d.mkdir(mode=0o755)
        os.chmod(d, 0o755)
    environ = {**os.environ, "LABCTL_SIM_DIR": str(d), "HOME": str(tmp_path / "home"), "LAB_ESX_PASSWORD": "pw-1"}
    topo = str(ROOT / "topologies" / "esx35-ha-pair.yaml")
    try:
        r = run_cli("up", topo, "--sim", "--json", "--only", "render", "vms", "install", "clones", "start",
                    environ=environ)
        assert r.status == 0, r.out + r.err
        assert stat.S_IMODE(d.stat().st_mode) == 0o700
        states = sorted(d.glob("hosts/*/state.json"))
        assert states, sorted(_modes(d))
        # the root password's hash: the kickstart's crypt hash (the simulated installer), or the simulator's scrypt
        assert all(any(h in p.read_text() for h in ("$1$", "$6$", "scrypt")) for p in states)
        assert "pw-1" not in "".join(p.read_text() for p in states)
        # the simulated hosts' and processes' state; vms/ holds the rendered .vmx files and their manifest, which
        # are the same 0644 files as in a real lab's vm_dir (behind the 0700 sim dir here)
        loose = {k: oct(v) for k, v in _modes(d).items() if k.endswith(".json") and not k.startswith("vms/")
                 and v & 0o077}
        assert loose == {}, loose
        assert stat.S_IMODE((d / "id_rsa").stat().st_mode) == 0o600
        assert stat.S_IMODE((d / "known_hosts").stat().st_mode) == 0o600
        assert json.loads(r.out)["failures"] == []
    finally:
        lab.down(d)
