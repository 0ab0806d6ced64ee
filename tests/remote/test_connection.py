"""The SSH layer against simulated hosts over real SSH on loopback: keys, auth, jump, uploads, parallel channels."""

from __future__ import annotations

import io
import os
import socket
import time
from pathlib import Path

import pytest

from labctl.env import Env
from labctl.errors import LabctlError
from labctl.remote.connection import ConnectSettings, Connection, LabConnections
from labctl.remote.facts.base import Platform
from labctl.remote.hosts import HostTarget, JumpSpec
from labctl.plan.backends import open_lab
from labctl.remote.result import AuthFailed, CommandFailed, HostUnreachable
from labctl.topology import load_topology
from tests.remote.conftest import JUMP, PAIR55, SEED


def _env(environ: dict[str, str] | None = None) -> Env:
    return Env(stdout=io.StringIO(), stderr=io.StringIO(), stdin=io.StringIO(), environ=dict(environ or {}))


def _open(lab, **kw):
    topo = load_topology(lab.topology)
    return open_lab(topo, _env(lab.environ), sim=True, sim_dir=str(lab.sim_dir), **kw)


def test_results_are_values_and_errors_name_host_and_command(sim_lab):
    lab = sim_lab(SEED)
    conns, _ = _open(lab)
    with conns:
        r = conns.run("esx1", ["echo", "a b", "$(reboot)"])
        assert (r.exit_status, r.stdout, r.host) == (0, "a b $(reboot)\n", "esx1")
        missing = conns.run("esx1", "no-such-tool --x")
        assert missing.exit_status == 127 and "not found" in missing.stderr
        with pytest.raises(CommandFailed) as e:
            conns.run("esx2", ["cat", "/etc/nope"]).check()
        assert str(e.value).startswith("esx2: `cat /etc/nope`: exited with status 1")


def test_one_connection_per_host_and_commands_on_parallel_channels(sim_lab):
    lab = sim_lab(PAIR55)
    lab.fault("esxi55a", "--latency", "0.5")
    before = lab.counters("esxi55a")["connections"]
    conns, _ = _open(lab)
    with conns:
        c = conns.connection("esxi55a")
        c.run("true")  # connect first, so the timing below is the commands only
        start = time.monotonic()
        results = c.run_many(["esxcli system uuid get", "esxcfg-vmknic -l", "hostname", "esxcli network nic list"])
        elapsed = time.monotonic() - start
        assert all(r.ok for r in results)
        assert elapsed < 1.2, elapsed  # four 0.5 s commands, concurrently
    assert lab.counters("esxi55a")["connections"] - before == 1


def test_unknown_key_is_refused_then_pinned_with_trust_new_hosts(sim_lab, run_cli):
    lab = sim_lab(SEED)
    known = lab.sim_dir / "known_hosts"
    known.write_text("")
    r = lab.macs("scan")
    assert r.status == 4
    assert "unknown host key for 192.168.69.1" in r.err and "--trust-new-hosts" in r.err  # the lab address
    assert "127.0.0.1" not in known.read_text()
    r = lab.macs("scan", "--trust-new-hosts")
    assert r.status == 1, r.err
    assert len(known.read_text().splitlines()) == 2
    assert oct(known.stat().st_mode & 0o777) == "0o600"
    assert lab.macs("scan").status == 1  # pinned now: strict checking passes


def test_changed_key_is_refused_loudly_with_the_command_to_forget_it(sim_lab):
    import paramiko

    lab = sim_lab(SEED)
    known = lab.sim_dir / "known_hosts"
    name = lab.endpoints().hosts["esx1"].address  # pinned under the lab address, not the loopback port
    other = [paramiko.RSAKey.generate(1024), paramiko.ECDSAKey.generate()]
    lines = [ln for ln in known.read_text().splitlines() if not ln.startswith(name + " ")]
    lines += [f"{name} {k.get_name()} {k.get_base64()}" for k in other]
    known.write_text("\n".join(lines) + "\n")
    r = lab.macs("scan", "--trust-new-hosts")  # trusting new hosts never overrides a changed key
    assert r.status == 4
    assert "HOST KEY MISMATCH" in r.err
    assert f"ssh-keygen -R {name} -f {known}" in r.err


def test_sim_never_dials_an_address_outside_its_endpoint_map(sim_lab):
    lab = sim_lab(SEED)
    settings = ConnectSettings(known_hosts=lab.sim_dir / "known_hosts", endpoints=lab.endpoints())
    target = HostTarget("rogue", "192.168.69.99", Platform("esx", (3, 5, 5)))
    with pytest.raises(LabctlError, match="not a host of the simulated lab"):
        Connection(target, settings).run("true")


def test_password_over_keyboard_interactive_on_esxi5(sim_lab, tmp_path):
    topo = tmp_path / "pw.yaml"
    topo.write_text(PAIR55.read_text().replace("ssh: {user: root}", "ssh: {user: root, password_env: LAB_PW}"))
    lab = sim_lab(topo, environ={"LAB_PW": "s3cret pass"})
    ep = lab.endpoints()
    target = HostTarget("esxi55a", ep.hosts["esxi55a"].address, Platform("esxi", (5, 5, 0)), password_env="LAB_PW")
    ok = ConnectSettings(known_hosts=lab.sim_dir / "known_hosts", endpoints=ep, environ={"LAB_PW": "s3cret pass"})
    conn = Connection(target, ok)  # no key at all: the password is the only way in
    try:
        assert conn.run("hostname").ok
    finally:
        conn.close()
    bad = ConnectSettings(known_hosts=lab.sim_dir / "known_hosts", endpoints=ep, environ={"LAB_PW": "wrong"},
                          connect_attempts=1)
    with pytest.raises(AuthFailed, match=r"authentication failed at root@[\d.]+:22 \(simulated lab: 127\.0\.0\.1:\d+\); offered the password from \$LAB_PW$"):
        Connection(target, bad).run("true")
    asked = []
    prompt = ConnectSettings(known_hosts=lab.sim_dir / "known_hosts", endpoints=ep, environ={},
                             prompt=lambda msg: asked.append(msg) or "s3cret pass")
    conn = Connection(HostTarget("esxi55a", target.address, target.platform), prompt)
    try:
        assert conn.run("true").ok and asked == ["password for root@esxi55a: "]
    finally:
        conn.close()


@pytest.mark.parametrize("topology,host,method", [(PAIR55, "esxi55a", "sftp"), (SEED, "esx1", "cat")])
def test_upload_by_sftp_or_streamed_into_cat(sim_lab, tmp_path, topology, host, method):
    lab = sim_lab(topology)
    data = os.urandom(200_000).hex().encode()  # 400 kB of text
    src = tmp_path / "payload.txt"
    src.write_bytes(data)
    conns, _ = _open(lab)
    with conns:
        assert conns.upload(host, src, "/tmp/payload.txt") == method
        back = conns.run(host, ["cat", "/tmp/payload.txt"])
        assert back.ok and back.stdout.encode() == data


def test_unreachable_host_after_retries_then_back(sim_lab):
    lab = sim_lab(SEED)
    lab.fault("esx2", "--down")
    port = lab.endpoints().hosts["esx2"].port

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return False
        except OSError:
            return True

    deadline = time.monotonic() + 5
    while not refused() and time.monotonic() < deadline:  # the host re-reads its control file when it changes
        time.sleep(0.05)
    conns, _ = _open(lab)
    conns.settings.retry_delay = 0.05
    with conns:
        outcomes = conns.run_all(["esx1", "esx2"], lambda c: c.run("hostname").stdout.strip())
        assert outcomes[0].ok and outcomes[0].value
        err = outcomes[1].error
        assert isinstance(err, HostUnreachable) and "after 3 attempt(s)" in str(err) and str(err).startswith("esx2:")
    lab.fault("esx2", "--clear")
    r = lab.macs("scan")
    assert r.status == 1, r.err


def test_scan_through_a_simulated_jump_host_one_connection_each(sim_lab):
    lab = sim_lab(JUMP)
    names = ["esx1", "esx2", "jump"]
    before = {n: lab.counters(n)["connections"] for n in names}
    r = lab.macs("scan", "--json")
    assert r.status == 1, r.err
    assert {n: lab.counters(n)["connections"] - before[n] for n in names} == {"esx1": 1, "esx2": 1, "jump": 1}


def test_ssh_config_supplies_user_port_identity_and_proxyjump_for_real_addresses(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("Host 192.168.69.11\n  User admin\n  Port 2222\n  IdentityFile ~/.ssh/lab_key\n"
                   "  ProxyJump ops@bastion:2200\n")
    settings = ConnectSettings(known_hosts=tmp_path / "kh", ssh_config=cfg)
    route = Connection(HostTarget("esx1", "192.168.69.11", Platform("esx", (3, 5, 5))), settings).route()
    assert (route.host, route.port, route.user) == ("192.168.69.11", 2222, "admin")
    assert route.key_files == (os.path.expanduser("~/.ssh/lab_key"),)
    assert route.jump == JumpSpec("bastion", "ops", 2200)
    assert (route.jump_route.host, route.jump_route.port, route.jump_route.user) == ("bastion", 2200, "ops")
    assert route.known_hosts_name == "[192.168.69.11]:2222"
    # the topology's own settings win over ~/.ssh/config
    explicit = HostTarget("esx1", "192.168.69.11", Platform("esx", (3, 5, 5)), user="root2", port=22,
                          jump=JumpSpec("j", "me"))
    route = Connection(explicit, settings).route()
    assert (route.user, route.jump) == ("root2", JumpSpec("j", "me"))


def test_lab_connections_reject_unknown_hosts():
    conns = LabConnections([], ConnectSettings(known_hosts=Path("/nonexistent")))
    with pytest.raises(LabctlError, match="unknown host"):
        conns.connection("nope")


def test_command_timeout_names_host_and_command(sim_lab):
    from labctl.remote.result import CommandTimeout

    lab = sim_lab(SEED)
    conns, _ = _open(lab)
    with conns:
        start = time.monotonic()
        with pytest.raises(CommandTimeout, match=r"^esx1: `sleep 5`: timed out"):
            conns.run("esx1", ["sleep", "5"], timeout=0.5)
        assert time.monotonic() - start < 2
        assert conns.run("esx1", "true").ok  # the connection is still usable
