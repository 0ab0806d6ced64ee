"""A re-keyed simulated host is not re-trusted silently (issue 13): the simulator pins a host's key once, after its
install, under its lab address (whatever loopback port it listens on next); checked with OpenSSH's own client."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from labctl.sim import lab
from labctl.sim.endpoints import load_endpoints

from .topo_text import topology_text

PW = "esx-Pass-1"
pytestmark = pytest.mark.skipif(shutil.which("ssh") is None or shutil.which("ssh-keygen") is None,
                                reason="OpenSSH client not installed (.ci/run installs it)")


def _ssh(d, name: str) -> subprocess.CompletedProcess:
    """OpenSSH, strict: only the sim dir's known_hosts, no agent, no user config."""
    e = load_endpoints(d).hosts[name]
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(d / "id_rsa"), "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "ConnectTimeout=10",
         "-o", "HostKeyAlgorithms=+ssh-rsa", "-o", "PubkeyAcceptedAlgorithms=+ssh-rsa",
         "-o", "KexAlgorithms=+diffie-hellman-group1-sha1,diffie-hellman-group14-sha1",
         "-o", f"HostKeyAlias={e.address}", "-p", str(e.port), "root@127.0.0.1", "hostname"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def test_rekeyed_host_is_refused_until_the_user_forgets_its_key_and_the_new_pin_survives_restarts(run_cli, tmp_path):
    topo = tmp_path / "lab.yaml"
    topo.write_text(topology_text(tmp_path / "vms"))
    d = tmp_path / "sim"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LAB_ESX_PASSWORD": PW}
    up = ("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", "--reboot-delay", "0.1")
    try:
        assert run_cli(*up, environ=env).status == 0
        first = _ssh(d, "esx1")
        assert first.returncode == 0, first.stderr
        # re-key esx1 the way docs/security.md says: delete its host keys on its disk, stop it, start it again
        old_pub = (d / "hosts" / "esx1" / "keys").glob("*.pub")
        old = {p.read_text().split()[1] for p in old_pub}
        keys = " ".join(f"/etc/ssh/ssh_host_{t}_key /etc/ssh/ssh_host_{t}_key.pub" for t in ("rsa", "ecdsa"))
        assert run_cli("sim", "exec", str(topo), "esx1", f"rm -f {keys}", "--sim-dir", str(d),
                       environ=env).status == 0
        assert run_cli("sim", "down", str(topo), "--sim-dir", str(d), environ=env).status == 0
        assert run_cli(*up, environ=env).status == 0
        new = {p.read_text().split()[1] for p in (d / "hosts" / "esx1" / "keys").glob("*.pub")}
        assert new and not (new & old)
        pinned = {ln.split()[2] for ln in (d / "known_hosts").read_text().splitlines()}
        assert old <= pinned and not (new & pinned), "the new key must not have been pinned"
        r = _ssh(d, "esx1")
        assert r.returncode == 255 and "REMOTE HOST IDENTIFICATION HAS CHANGED" in r.stderr, r.stderr
        assert _ssh(d, "esx2").returncode == 0  # the others are untouched
        scan = run_cli("macs", "scan", str(topo), "--sim", "--sim-dir", str(d), environ=env)
        assert scan.status == 4 and "HOST KEY MISMATCH" in scan.err, scan.err
        # the user forgets the old key (OpenSSH's own tool) and trusts the new one explicitly
        address = load_endpoints(d).hosts["esx1"].address
        assert f"ssh-keygen -R {address} -f {d / 'known_hosts'}" in scan.err  # the hint names the lab address
        subprocess.run(["ssh-keygen", "-R", address, "-f", str(d / "known_hosts")], check=True,
                       capture_output=True)
        assert run_cli("macs", "scan", str(topo), "--sim", "--sim-dir", str(d), environ=env).status == 4
        trusted = run_cli("macs", "scan", str(topo), "--sim", "--sim-dir", str(d), "--trust-new-hosts",
                          environ=env)
        assert trusted.status in (0, 1), trusted.err  # 1: the clone's duplicate MACs are findings
        # the new pin is the trusted one from now on, on whatever port the host gets next
        assert run_cli("sim", "down", str(topo), "--sim-dir", str(d), environ=env).status == 0
        assert run_cli(*up, environ=env).status == 0
        again = _ssh(d, "esx1")
        assert again.returncode == 0, again.stderr
        pinned = {ln.split()[2] for ln in (d / "known_hosts").read_text().splitlines()}
        assert new & pinned and not (old & pinned)
    finally:
        lab.down(d)
