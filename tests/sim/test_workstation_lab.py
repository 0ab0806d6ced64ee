"""The simulated Workstation with real simulated hosts: hostd processes on loopback, SSH with pinned keys.

The 2010 story end to end on the Workstation side: render esx1's .vmx, power it on (a hostd process serves it),
snapshot "base", linked-clone esx2 from it, give the clone its own MACs, power it on — and over SSH the clone is
esx1 but for its vNICs: esx1's IP, hostname, host key and service-console MAC (nobody is at its console; labctl's
identity stage gives it its own, tests/plan/test_identity.py). The simulator pins no key: a test trusts a host as
labctl does (the key it knows from the install, the key an ESXi clone publishes). Every process is stopped by PID
in a finalizer.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest

from labctl.sim import lab
from labctl.sim.endpoints import load_endpoints
from labctl.topology import load_topology
from labctl.workstation import clonecfg
from labctl.workstation.driver import VmrunError
from labctl.sim.workstation import LabHosts, SimDriver

from .installkit import install_media

ROOT = Path(__file__).resolve().parents[2]
ESX35 = ROOT / "topologies" / "esx35-ha-pair.yaml"


@pytest.fixture
def simlab(tmp_path):
    topo = load_topology(ESX35)
    sim = tmp_path / "sim"
    hosts = LabHosts(sim, lab.spec_from_topology(topo), environ={"PATH": "/usr/bin:/bin"})
    driver = SimDriver(sim, hosts)
    driver.verify()
    yield topo, driver, hosts
    hosts.stop_all()
    lab.down(sim)  # anything else recorded in processes.json


def trust_installed(sim: Path, name: str, address: str) -> None:
    """Pin the keys the host's install made under its lab address (what labctl's install stage does with the key it
    put in the kickstart; these kickstarts let the host make its own)."""
    from labctl.remote.known_hosts import pin_keys

    keys = [tuple(pub.read_text().split()[:2]) for pub in sorted((lab.host_dir(sim, name) / "keys").glob("*.pub"))]
    assert keys
    pin_keys(sim / "known_hosts", address, keys)


def ssh(sim: Path, name: str, command: str, *, address: str | None = None) -> str:
    """`command` on whoever answers at `address` (default: `name`'s lab address), with the keys pinned under it."""
    import paramiko

    emap = load_endpoints(sim)
    address = address or emap.hosts[name].address
    host, port = emap.resolve(address)
    from tests.sim.helpers import pinned_client

    from labctl.remote.known_hosts import KEY_ALGORITHMS, pinned

    client = pinned_client(emap.known_hosts, address, port)
    key = paramiko.RSAKey.from_private_key_file(str(emap.identity_file))
    allowed = {a for t, _ in pinned(emap.known_hosts, address) for a in KEY_ALGORITHMS.get(t, (t,))}
    client.connect(  # only the pinned key types asked for, as labctl's connection (and OpenSSH) do
        host, port=port, username="root", pkey=key, allow_agent=False, look_for_keys=False, timeout=10,
        disabled_algorithms={"keys": [a for a in paramiko.Transport._preferred_keys if a not in allowed]},
    )
    try:
        _, out, _ = client.exec_command(command, timeout=10)
        return out.read().decode()
    finally:
        client.close()


def render_vmx(topo, driver: SimDriver, name: str, *, install: bool = True) -> Path:
    """The golden VM's .vmx as labctl renders it, with its install media attached (unless `install` is false):
    the kickstart authorizes the sim's client key, as the pipeline's kickstart does with labctl's key."""
    from labctl.render.lab import vmx_for_host
    from labctl.render.templates import environment

    vmx = driver.vmx_path(name)
    vmx.parent.mkdir(parents=True)
    vmx.write_text(vmx_for_host(topo, topo.host(name), environment()))
    if install:
        key = lab.client_key(driver.sim_dir)
        install_media(driver, vmx, topo, name, driver.sim_dir.parent / "media",
                      authorize=f"{key.get_name()} {key.get_base64()} labctl-sim")
    return vmx


def test_power_on_clone_and_duplicates_over_ssh(simlab):
    topo, driver, hosts = simlab
    sim = driver.sim_dir
    esx1 = render_vmx(topo, driver, "esx1")
    driver.start(esx1)
    emap = load_endpoints(sim)
    assert list(emap.hosts) == ["esx1"] and emap.hosts["esx1"].address == "192.168.69.11"
    assert (sim / "known_hosts").read_text() == ""  # the simulator pins nothing
    trust_installed(sim, "esx1", "192.168.69.11")
    vswif1 = ssh(sim, "esx1", "esxcfg-vswif -l")
    assert "192.168.69.11" in vswif1
    name1 = ssh(sim, "esx1", "hostname").strip()
    hw1 = re.search(r"HWaddr\s+(\S+)", ssh(sim, "esx1", "ifconfig vswif0")).group(1).lower()
    procs = json.loads((sim / "processes.json").read_text())["processes"]
    assert [p["hosts"] for p in procs] == [["esx1"]]

    driver.stop(esx1)
    assert not lab.is_ours(procs[0]) and list(load_endpoints(sim).hosts) == []

    esx2 = driver.vmx_path("esx2")
    settings = clonecfg.settings_for_host(topo, topo.host("esx2"))
    done = clonecfg.ensure_linked_clone(driver, esx1, esx2, snapshot="base", settings=settings)
    assert [d.split()[0] for d in done] == ["snapshot", "linked", "configured"]
    driver.start(esx2)  # alone: its source is off
    assert [p.name for p in driver.list_running()] == ["esx2.vmx"]
    assert sorted(load_endpoints(sim).hosts) == ["esx2"]
    with pytest.raises(OSError):  # nobody has esx2's topology address: nobody gave the clone its own
        ssh(sim, "esx2", "true")
    # whoever answers at esx1's address with esx1's key is the clone: its vNICs carry the MACs from its .vmx ...
    nics2 = ssh(sim, "esx2", "esxcfg-nics -l", address="192.168.69.11")
    for nic in topo.host("esx2").nics:
        assert nic.mac in nics2.lower()
    assert "192.168.69.11" in ssh(sim, "esx2", "esxcfg-vswif -l", address="192.168.69.11")
    assert ssh(sim, "esx2", "hostname", address="192.168.69.11").strip() == name1
    hw2 = re.search(r"HWaddr\s+(\S+)", ssh(sim, "esx2", "ifconfig vswif0", address="192.168.69.11")).group(1)
    assert hw2.lower() == hw1  # ... and esx1's service-console MAC: the duplicate of a linked clone

    driver.start(esx1)  # both on: two hosts with one address (a conflict); esx2's own is still unanswered
    assert sorted(p.name for p in driver.list_running()) == ["esx1.vmx", "esx2.vmx"]
    with pytest.raises(OSError):
        ssh(sim, "esx2", "true")
    assert ssh(sim, "esx1", "hostname").strip() == name1  # whichever of the two answers, it is "esx1"


def test_refuses_a_host_already_served_by_sim_up(simlab):
    import subprocess
    import sys

    topo, driver, hosts = simlab
    sim = driver.sim_dir
    esx1 = render_vmx(topo, driver, "esx1")
    # a process record as `labctl sim up` writes it: one hostd serving several hosts (here: a sleeping stand-in)
    argv = [sys.executable, "-c", "import time; time.sleep(30)"]
    p = subprocess.Popen(argv)
    try:
        from labctl.sim.lab import start_ticks, wait_cmdline

        rec = {
            "pid": p.pid,
            "argv": wait_cmdline(p.pid, argv),
            "hosts": ["esx1", "esx2"],
            "start_ticks": start_ticks(p.pid),
            "kind": "hostd",
        }
        (sim / "processes.json").write_text(json.dumps({"processes": [rec]}))
        with pytest.raises(VmrunError, match="already served by the simulated lab") as ei:
            driver.start(esx1)
        assert ei.value.hint == "stop that lab first: labctl sim down FILE (or use another --sim-dir)"
        assert driver.list_running() == [] and not (sim / "hosts" / "esx1" / "listen.json").exists()
    finally:
        p.kill()
        p.wait()
        (sim / "processes.json").unlink()


def test_esxi8_clone_of_a_kickstarted_source_follows_its_own_mac_over_ssh(tmp_path):
    topo = load_topology(ROOT / "topologies" / "esxi8-ha-trio.yaml")
    sim = tmp_path / "sim"
    hosts = LabHosts(sim, lab.spec_from_topology(topo), environ={"PATH": "/usr/bin:/bin"})
    driver = SimDriver(sim, hosts)
    driver.verify()
    try:
        a = render_vmx(topo, driver, "esxi-a")
        driver.start(a)  # installed from its CD at the first power-on
        driver.stop(a)
        b = driver.vmx_path("esxi-b")
        clonecfg.ensure_linked_clone(
            driver, a, b, snapshot="base", settings=clonecfg.settings_for_host(topo, topo.host("esxi-b"))
        )
        driver.start(a)
        driver.start(b)
        trust_installed(sim, "esxi-a", topo.host("esxi-a").management.ip)
        # the clone's own identity comes from the boot script esxi-a's kickstart installed, fed by the guestinfo
        # keys in its .vmx (nobody at its console): its own IP, and a new host key it publishes, pinned as labctl's
        # identity stage pins it
        assert driver.guest_ip(b) == topo.host("esxi-b").management.ip
        from labctl.plan.stages_identity import parse_published_key
        from labctl.render.identity import HOSTKEY_VAR
        from labctl.remote.known_hosts import pin, pinned

        deadline = time.monotonic() + 60  # the script reboots the clone once (its new /system/uuid), then publishes
        while not driver.read_guest_var(b, HOSTKEY_VAR) and time.monotonic() < deadline:
            time.sleep(0.1)
        published = parse_published_key(driver.read_guest_var(b, HOSTKEY_VAR) or "")
        assert published is not None and [published] != pinned(sim / "known_hosts", topo.host("esxi-a").management.ip)
        pin(sim / "known_hosts", topo.host("esxi-b").management.ip, *published)
        names = {n: ssh(sim, n, "esxcli system hostname get") for n in ("esxi-a", "esxi-b")}
        for n in ("esxi-a", "esxi-b"):
            assert re.search(rf"Host Name:\s*{n}\b", names[n]), names[n]
        vmk = {n: ssh(sim, n, "esxcli network ip interface list") for n in ("esxi-a", "esxi-b")}
        macs = {n: re.search(r"MAC Address:\s*(\S+)", text).group(1).lower() for n, text in vmk.items()}
        # esxi-a is a clone source: its kickstart set Net.FollowHardwareMac=1 and dropped /system/uuid, so the
        # clone's vmk0 follows its own vNIC and it makes its own UUID (ESX classic's vswif0 keeps its MAC: test above)
        for n in ("esxi-a", "esxi-b"):
            assert macs[n] == topo.host(n).nics[0].mac
        uuids = {n: ssh(sim, n, "esxcli system uuid get").strip() for n in ("esxi-a", "esxi-b")}
        assert uuids["esxi-a"] and uuids["esxi-a"] != uuids["esxi-b"]
    finally:
        hosts.stop_all()
        lab.down(sim)


def test_golden_vm_without_install_media_has_nothing_to_boot(simlab):
    """No CD, a blank disk: the VM runs (Workstation powers it on) but boots nothing, and nobody answers SSH; the
    simulator does not install ESX for the user."""
    topo, driver, hosts = simlab
    esx1 = render_vmx(topo, driver, "esx1", install=False)
    with pytest.raises(Exception, match="blank and the VM has no install media"):
        driver.snapshot(esx1, "base")
    assert driver.list_snapshots(esx1) == []  # refused before anything was written
    driver.start(esx1)
    assert driver.is_running(esx1)
    assert "Operating System not found" in (driver.sim_dir / "logs" / "esx1.vmware.log").read_text()
    assert list(load_endpoints(driver.sim_dir).hosts) == []
    assert not (driver.sim_dir / "hosts" / "esx1" / "state.json").exists()
