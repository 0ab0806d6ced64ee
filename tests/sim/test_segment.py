"""ARP, modelled: an address reaches the running simulated host that has it configured now (labctl.sim.segment).

In-process hosts on one sim dir's segment (real SSH key exchanges on loopback), then the same through `labctl sim
up`'s host processes and labctl's own SSH client.
"""

from __future__ import annotations

import os
import socket
from contextlib import contextmanager

import paramiko
import pytest

from labctl.sim import state as S
from labctl.sim.host import SimHost
from labctl.sim.segment import NETWORK_LOG, Segment
from labctl.sim.server import HostServer

A, B = "192.168.69.11", "192.168.69.12"


def _server_key(port: int) -> str | None:
    """The host key of whoever answers 127.0.0.1:port (None: refused)."""
    try:
        sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    except ConnectionRefusedError:
        return None
    t = paramiko.Transport(sock)
    try:
        t.start_client(timeout=10)
        return t.get_remote_server_key().get_base64()
    finally:
        t.close()


@contextmanager
def _served(sim, *hosts):
    """(name, flavor, version, ip) hosts served on the segment of `sim`; stopped on exit, also on failure."""
    servers = []
    try:
        for i, (name, flavor, version, ip) in enumerate(hosts):
            st = S.fresh_install(name, flavor, version, nic_macs=[f"00:50:56:00:20:{i:02x}"], ip=ip,
                                 netmask="255.255.255.0", ssh_address=ip)
            host = SimHost(st, sim / "hosts" / name)
            servers.append(HostServer(host, segment=Segment(sim)).start())
        yield servers
    finally:
        for srv in servers:
            srv.stop()


def _keys(srv: HostServer) -> set[str]:
    return {k.get_base64() for k in srv.keys.values()}


def test_an_address_reaches_whoever_has_it_now_and_a_reip_moves_it_at_once(tmp_path):
    sim = tmp_path / "sim"
    with _served(sim, ("esxi-a", "esxi", "6.7", A), ("esxi-b", "esxi", "6.7", B)) as (a, b):
        seg = Segment(sim)
        pa, pb = seg.port(A), seg.port(B)
        assert pa and pb and pa != pb
        assert _server_key(pa) in _keys(a) and _server_key(pb) in _keys(b)
        assert seg.conflicts() == {}
        # esxi-b is given a new address, as the identity step does over SSH: .12 is gone at once, .13 answers
        code, _, err = b.host.run(f"esxcli network ip interface ipv4 set -i vmk0 -t static -I 192.168.69.13 "
                                  "-N 255.255.255.0")
        assert code == 0, err
        assert _server_key(pb) is None  # nobody has .12 now: refused, like an address nobody answers ARP for
        pc = seg.port("192.168.69.13")
        assert pc and _server_key(pc) in _keys(b)
        assert b.addresses == {"192.168.69.13": pc}
        assert _server_key(pa) in _keys(a)  # the other host is untouched


def test_two_hosts_with_one_address_answer_unpredictably_and_the_conflict_is_logged(tmp_path):
    sim = tmp_path / "sim"
    with _served(sim, ("esx1", "esx", "4.1", A), ("esx2", "esx", "4.1", B)) as (one, two):
        seg = Segment(sim)
        # esx2 is given esx1's address by hand at its service console (esxcfg-vswif on ESX classic)
        code, _, err = two.host.run(f"esxcfg-vswif -i {A} -n 255.255.255.0 vswif0")
        assert code == 0, err
        assert seg.conflicts() == {A: ["esx1", "esx2"]}
        log = (sim / "logs" / NETWORK_LOG).read_text()
        assert f"IP address conflict: {A} is configured on esx1, esx2" in log
        seen = [_server_key(seg.port(A)) for _ in range(24)]
        assert set(seen) & _keys(one) and set(seen) & _keys(two), "one address, two hosts: both must answer"
        assert _server_key(seg.port(B)) is None
        # esx2 gets its own address back: the conflict is over, each address has one host
        assert two.host.run(f"esxcfg-vswif -i {B} -n 255.255.255.0 vswif0")[0] == 0
        assert seg.conflicts() == {}
        assert {_server_key(seg.port(A)) for _ in range(8)} <= _keys(one)
        assert _server_key(seg.port(B)) in _keys(two)


def test_esx_classic_answers_only_on_the_service_console_and_a_down_host_holds_nothing(tmp_path):
    sim = tmp_path / "sim"
    with _served(sim, ("esx1", "esx", "3.5u5", A)) as (srv,):
        assert srv.host.run("esxcfg-vswitch -A VMkernel vSwitch0")[0] == 0
        code, _, err = srv.host.run("esxcfg-vmknic -a -i 10.10.10.11 -n 255.255.255.0 VMkernel")
        assert code == 0, err
        assert set(srv.addresses) == {A}  # sshd runs in the service console: the VMkernel address never answers
        srv.host.run("esxcfg-vswif -s vswif0")
        assert srv.addresses == {} and _server_key(Segment(sim).port(A)) is None
        assert Segment(sim).holders(A) == []


def test_a_holder_whose_process_is_gone_holds_nothing(tmp_path):
    seg = Segment(tmp_path)
    s = seg.bind(A, "esx1", pid=os.getpid())
    s.close()
    doc = seg._read()
    doc["addresses"][A]["holders"]["ghost"] = 2**22 + 12345  # no such process
    from labctl.sim.state import write_json_atomic

    write_json_atomic(seg.path, doc)
    assert seg.holders(A) == ["esx1"] and seg.conflicts() == {}


@pytest.fixture
def running_pair(tmp_path, run_cli):
    topo = tmp_path / "lab.yaml"
    topo.write_text(f"""\
lab: arp
workstation: {{version: "17.5", vm_dir: {tmp_path / "vms"}}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24}}
esx_hosts:
  - {{name: esx1, flavor: esxi, version: "6.7u3", cpus: 2, memory_mb: 4096, disk_gb: 16, nics: [lan],
     management: {{network: lan, ip: {A}}}}}
  - {{name: esx2, flavor: esxi, version: "6.7u3", cpus: 2, memory_mb: 4096, disk_gb: 16, nics: [lan],
     management: {{network: lan, ip: {B}}}}}
""")
    d = tmp_path / "sim"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    r = run_cli("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", environ=env)
    try:
        assert r.status == 0, r.err
        yield topo, d, env
    finally:
        from labctl.sim import lab

        lab.down(d)


def test_labctl_follows_the_address_not_the_topology(running_pair, run_cli):
    """Through the host processes and labctl's SSH client: a host that took another's address is reached there
    (and refused by the pinned key), its own topology address is refused, `sim status` names the conflict."""
    topo, d, env = running_pair
    sim = ("--sim-dir", str(d))
    r = run_cli("sim", "exec", str(topo), "esx2", *sim, "--",
                "esxcli", "network", "ip", "interface", "ipv4", "set", "-i", "vmk0", "-t", "static", "-I", A,
                "-N", "255.255.255.0", environ=env)
    assert r.status == 255 or r.status == 0, r.err  # its own session rode on the old address and may drop
    st = run_cli("sim", "status", str(topo), *sim, "--json", environ=env)
    import json

    doc = json.loads(st.out)
    assert doc["conflicts"] == {A: ["esx1", "esx2"]}
    assert {h["name"]: h["answers_at"] for h in doc["hosts"]} == {"esx1": [A], "esx2": [A]}
    text = run_cli("sim", "status", str(topo), *sim, environ=env).out
    assert f"IP address conflict: {A} is configured on esx1, esx2" in text
    assert f"esx2 has {A} configured, not its topology address {B}" in text
    # labctl dials esx2's topology address: nobody has it
    scan = run_cli("macs", "scan", str(topo), "--sim", *sim, "--host", "esx2", environ=env)
    assert scan.status == 4 and "connection refused" in scan.err, scan.err
    # esx1's address: some connections reach esx2, whose key is not the one pinned for it
    outcomes = set()
    for _ in range(12):
        r = run_cli("macs", "scan", str(topo), "--sim", *sim, "--host", "esx1", environ=env)
        outcomes.add("mismatch" if "HOST KEY MISMATCH" in r.err else f"status {r.status}")
        if len(outcomes) > 1:
            break
    assert "mismatch" in outcomes and len(outcomes) == 2, outcomes


def test_resolve_follows_the_segment_and_an_access_ip_on_no_interface_is_a_port_forward(tmp_path):
    from labctl.errors import LabctlError
    from labctl.sim.endpoints import Endpoint, EndpointMap

    seg = Segment(tmp_path)
    ports = seg.allocate([A, B])
    emap = EndpointMap("arp", tmp_path, {
        "esx1": Endpoint("esx1", "203.0.113.7", "127.0.0.1", 1, via=A),  # NAT forward 203.0.113.7:22 -> .11:22
        "esx2": Endpoint("esx2", B, "127.0.0.1", 2),
    })
    assert emap.resolve("203.0.113.7") == ("127.0.0.1", ports[A])
    assert emap.resolve("esx2") == ("127.0.0.1", ports[B])
    assert emap.resolve(A) == ("127.0.0.1", ports[A])  # a lab address no running topology host claims: still the lab's
    with pytest.raises(LabctlError, match="not a host of the simulated lab"):
        emap.resolve("192.168.69.99")  # not the lab's: never dialled


def test_an_address_never_shares_its_port_with_a_listener_outside_the_lab(tmp_path):
    seg = Segment(tmp_path)
    port = seg.allocate([A])[A]
    stranger = socket.socket()
    stranger.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # would let our SO_REUSEPORT bind share it
    stranger.bind(("127.0.0.1", port))
    stranger.listen(1)
    try:
        mine = seg.bind(A, "esx1")
        try:
            assert mine.getsockname()[1] != port and seg.port(A) == mine.getsockname()[1]
        finally:
            mine.close()
    finally:
        stranger.close()
