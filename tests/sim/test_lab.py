"""`labctl sim up/status/down/fault` end to end: real host processes, strict host keys, cleanup by PID."""

from __future__ import annotations

import json
import os
import socket
import stat
import subprocess
import sys
import time

import paramiko
import pytest

from labctl.errors import LabctlError
from labctl.sim import lab
from labctl.sim.endpoints import load_endpoints

from .topo_text import topology_text
from .helpers import pinned_client, wait_for

PW = "esx-Pass-1"


@pytest.fixture
def simlab(tmp_path):
    topo = tmp_path / "lab.yaml"
    topo.write_text(topology_text(tmp_path / "vms"))
    d = tmp_path / "sim"
    yield topo, d
    lab.down(d)  # stops whatever the test started, also on failure


def _environ(tmp_path) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LAB_ESX_PASSWORD": PW,
            "XDG_CACHE_HOME": os.environ["XDG_CACHE_HOME"]}


def _client(emap, name: str, **kw) -> paramiko.SSHClient:
    host, port = emap.resolve(emap.hosts[name].address)
    c = pinned_client(emap.known_hosts, emap.hosts[name].address, port)
    if "password" not in kw:
        kw["key_filename"] = str(emap.identity_file)
    c.connect(host, port, "root", look_for_keys=False, allow_agent=False, timeout=5, **kw)
    return c


def _run(c, cmd: str) -> str:
    _, out, _ = c.exec_command(cmd, timeout=10)
    return out.read().decode()


def _refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def test_up_status_fault_down_resume(simlab, run_cli, tmp_path):
    topo, d = simlab
    env = _environ(tmp_path)
    r = run_cli("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", "--reboot-delay", "0.1", environ=env)
    assert r.status == 0, r.err
    assert "esx1" in r.out and "127.0.0.1:" in r.out
    assert "models a lab the user installed and set up by hand" in r.err  # its help to the hosts is said
    emap = load_endpoints(d)
    assert set(emap.hosts) == {"esx1", "esx2"} and emap.jump is not None
    assert stat.S_IMODE(os.stat(emap.identity_file).st_mode) == 0o600
    with pytest.raises(LabctlError):
        emap.resolve("192.168.69.99")  # never dial a real lab address
    assert emap.resolve("192.168.69.12") == ("127.0.0.1", emap.hosts["esx2"].port)
    names = {ln.split()[0] for ln in (d / "known_hosts").read_text().splitlines()}
    assert names == {e.address for e in emap.all()}  # pinned under the lab addresses, never [127.0.0.1]:port

    # the linked clone carries esx1's service console MAC and uuid (strict host keys from known_hosts)
    c1, c2 = _client(emap, "esx1"), _client(emap, "esx2")
    mac1 = _run(c1, "grep MACADDR /etc/sysconfig/network-scripts/ifcfg-vswif0")
    assert mac1.startswith("MACADDR=00:50:56:4") and mac1 == _run(c2, "grep MACADDR /etc/sysconfig/network-scripts/ifcfg-vswif0")
    assert _run(c2, "grep /system/uuid /etc/vmware/esx.conf") == _run(c1, "grep /system/uuid /etc/vmware/esx.conf")
    assert _run(c2, "hostname") == "esx2\n" and "192.168.69.12" in _run(c2, "esxcfg-vswif -l")
    _run(c1, "echo kept > /root/marker")
    c1.close()
    c2.close()
    _client(emap, "esx1", password=PW).close()  # the topology's password_env, hashed in the state

    # the jump host forwards to lab addresses only
    j = pinned_client(emap.known_hosts, emap.jump.address, emap.jump.port)
    j.connect("127.0.0.1", emap.jump.port, "labuser", key_filename=str(emap.identity_file), look_for_keys=False,
              allow_agent=False, timeout=5)
    chan = j.get_transport().open_channel("direct-tcpip", ("192.168.69.12", 22), ("127.0.0.1", 0))
    t = paramiko.Transport(chan)
    t.start_client(timeout=5)
    assert t.get_remote_server_key().get_base64() in (d / "known_hosts").read_text()
    t.close()
    j.close()

    runtime = d / "hosts" / "esx1" / "runtime.json"
    assert wait_for(lambda: json.loads(runtime.read_text())["connections"] == 2)  # counted by the host's thread
    r = run_cli("sim", "status", str(topo), "--sim-dir", str(d), "--json", environ=env)
    st = json.loads(r.out)
    assert r.status == 0 and st["running"] and all(h["listening"] for h in st["hosts"])
    counters = {h["name"]: h["counters"] for h in st["hosts"]}
    assert counters["esx1"]["connections"] == 2  # key + password logins; `up`'s banner probes are not counted
    assert counters["esx1"]["tcp_accepts"] > counters["esx1"]["connections"]

    port2 = emap.hosts["esx2"].port
    assert run_cli("sim", "fault", str(topo), "esx2", "--down", "--sim-dir", str(d), environ=env).status == 0
    assert wait_for(lambda: _refused(port2))
    assert run_cli("sim", "fault", str(topo), "esx2", "--clear", "--sim-dir", str(d), environ=env).status == 0
    assert wait_for(lambda: not _refused(port2))

    before = {x["pid"] for x in lab.read_processes(d)}
    r = run_cli("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", environ=env)
    assert r.status == 0 and "already running" in r.out and f"127.0.0.1:{port2}" in r.out  # not an error
    assert {x["pid"] for x in lab.read_processes(d)} == before  # nothing new started

    r = run_cli("sim", "exec", str(topo), "--sim-dir", str(d), "esx2", "esxcfg-vswif -l; exit 3", environ=env)
    assert r.status == 3 and "192.168.69.12" in r.out
    r = run_cli("sim", "exec", str(topo), "--sim-dir", str(d), "esx9", "true", environ=env)
    assert r.status == 2 and "not a host" in r.err

    pids = {r["pid"] for r in lab.read_processes(d)}
    r = run_cli("sim", "down", str(topo), "--sim-dir", str(d), environ=env)
    assert r.status == 0 and "stopped" in r.out
    assert all(not os.path.exists(f"/proc/{p}") or b"labctl.sim.hostd" not in open(f"/proc/{p}/cmdline", "rb").read()
               for p in pids)
    r = run_cli("sim", "status", str(topo), "--sim-dir", str(d), environ=env)
    assert r.status == 6 and "no simulated lab running" in r.err  # the README's status for it

    # a second `up` resumes the hosts as they were
    assert run_cli("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", environ=env).status == 0
    c1 = _client(load_endpoints(d), "esx1")
    assert _run(c1, "cat /root/marker") == "kept\n"
    c1.close()


def test_down_never_kills_a_process_it_did_not_start(tmp_path):
    d = tmp_path / "sim"
    d.mkdir()
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        rec = {"pid": other.pid, "argv": [sys.executable, "-m", "labctl.sim.hostd", "--sim-dir", str(d)],
               "start_ticks": lab.start_ticks(other.pid), "hosts": ["esx1"], "kind": "hostd"}
        (d / "processes.json").write_text(json.dumps({"processes": [rec]}))
        assert lab.down(d) == []
        time.sleep(0.05)
        assert other.poll() is None
    finally:
        other.kill()
        other.wait()


def test_fault_option_parsing():
    from labctl.cli.sim import _faults
    from labctl.errors import UsageError

    got = _faults(["esx2:drop@1:esxcli network ip interface remove", "esx1:down", "esx1:refuse_auth@2"],
                  {"esx1", "esx2"})
    assert [(r.kind, r.times, r.pattern) for r in got["esx2"]] == [("drop", 1, "esxcli network ip interface remove")]
    assert [(r.kind, r.times) for r in got["esx1"]] == [("down", None), ("refuse_auth", 2)]
    for bad in ("esx3:down", "esx1:explode", "esx1", "esx1:drop:("):
        with pytest.raises(UsageError):
            _faults([bad], {"esx1", "esx2"})


def test_prepare_makes_clones_and_powers_existing_hosts_on_again(tmp_path):
    from labctl.sim import state as S
    from labctl.sim.paths import host_dir

    spec = lab.LabSpec("t", (
        lab.HostSpec("a", "esxi", "6.7", "10.0.0.11", "255.255.255.0", ("00:50:56:00:00:01",)),
        lab.HostSpec("b", "esxi", "6.7", "10.0.0.12", "255.255.255.0", ("00:50:56:00:00:02",), clone_of="a"),
    ))
    d = tmp_path / "sim"
    states = lab.prepare(d, spec, password="Secret-Sim-Pw-91")
    a, b = states["a"], states["b"]
    assert b.vmknics[0].mac == a.vmknics[0].mac == "00:50:56:00:00:01" and b.system_uuid == a.system_uuid
    assert b.vmknics[0].ip == "10.0.0.12" and b.hostname == "b"  # the console step after cloning
    pub = (d / "id_rsa.pub").read_text().split()[1]
    assert pub in b.files[b.authorized_keys_path] and pub in b.persisted_etc[b.authorized_keys_path]
    assert b.root_password_hash.startswith("scrypt$") and "Secret-Sim-Pw-91" not in json.dumps(S.to_dict(b))
    b.files["/etc/vmware/esx.conf"] += "/unsaved = \"edit\"\n"
    S.save_state(host_dir(d, "b"), b)
    again = lab.prepare(d, spec, password="Secret-Sim-Pw-91")["b"]
    assert again.boot_count == b.boot_count + 1 and "/unsaved" not in again.files["/etc/vmware/esx.conf"]
    assert lab.prepare(d, spec, reset=True)["b"].boot_count == 1


def test_up_with_a_host_down_from_the_start(tmp_path):
    from labctl.sim.faults import FaultRule, write_control
    from labctl.sim.paths import host_dir

    spec = lab.LabSpec("t", (
        lab.HostSpec("a", "esxi", "7.0u3", "10.0.0.11", "255.255.255.0", ("00:50:56:00:00:01",)),
        lab.HostSpec("b", "esx", "4.1", "10.0.0.12", "255.255.255.0", ("00:50:56:00:00:02",)),
    ))
    d = tmp_path / "sim"
    try:
        emap = lab.up(d, spec, environ={}, faults={"b": [FaultRule("down")]}, reboot_delay=0.1)
        assert not _refused(emap.hosts["a"].port) and _refused(emap.hosts["b"].port)
        st = {h.name: h for h in lab.status(d)["hosts"]}
        assert st["a"].listening and st["b"].running and not st["b"].listening
        from labctl.sim.faults import Control

        write_control(host_dir(d, "b"), Control(reboot_delay=0.1))
        assert wait_for(lambda: not _refused(emap.hosts["b"].port))
    finally:
        lab.down(d)
