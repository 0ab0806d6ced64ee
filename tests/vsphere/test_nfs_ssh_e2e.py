"""NFS over real SSH on loopback: three simulated hosts (ESX 3.5 classic, ESXi 5.5, ESXi 7.0) served by the host
simulator's SSH server, reached through labctl.remote with pinned host keys and an endpoint map (no lab address
is ever dialled). Mount, re-run (no change), one host failing, one host down."""

from __future__ import annotations

import json

import pytest

from labctl.vsphere.nfs_ssh import mount_over_ssh

HOSTS = [("esx35", "esx", "3.5u5", "192.168.69.11"), ("esxi55", "esxi", "5.5", "192.168.69.12"),
         ("esxi70", "esxi", "7.0u2", "192.168.69.13")]

TOPOLOGY = """\
lab: nfs-ssh
workstation: {{version: "17.5", vm_dir: {vm_dir}}}
networks:
  - {{name: mgmt, type: host-only, vmnet: 3, subnet: 192.168.69.0/24, host_ip: 192.168.69.1, dhcp: false}}
esx_hosts:
{hosts}
datastores:
  - {{name: shared, type: nfs, server: 192.168.69.1, share: /export/shared, hosts: [esx35, esxi55, esxi70]}}
  - {{name: iso, type: nfs, server: 192.168.69.1, share: /export/iso, hosts: [esxi70], readonly: true}}
"""

HOST = ("  - {{name: {n}, flavor: {f}, version: \"{v}\", cpus: 2, memory_mb: 4096, disk_gb: 40, nics: [mgmt],"
        " management: {{network: mgmt, ip: {ip}}}}}")


@pytest.fixture
def lab(tmp_path):
    pytest.importorskip("paramiko")
    from labctl.topology import load_topology
    from tests.simfleet import serve_fleet

    with serve_fleet(tmp_path, HOSTS, mac_prefix="00:50:56:00:10") as fleet:
        path = tmp_path / "lab.yaml"
        path.write_text(TOPOLOGY.format(vm_dir=tmp_path / "vms", hosts="\n".join(
            HOST.format(n=n, f=f, v=v, ip=ip) for n, f, v, ip in HOSTS)))
        emap = {"lab": "nfs-ssh", "vcenter": None, "known_hosts": str(fleet.known_hosts),
                "identity_file": str(fleet.identity),
                "hosts": {n: {"address": ip, "host": "127.0.0.1", "port": fleet.ports[ip], "flavor": f, "version": v}
                          for n, f, v, ip in HOSTS}}
        (tmp_path / "endpoints.json").write_text(json.dumps(emap))
        yield load_topology(path), fleet.settings(), fleet.sims, fleet.servers


def test_mount_rerun_and_failures_over_ssh(lab):
    topo, settings, sims, servers = lab
    first = mount_over_ssh(topo, settings)
    assert first.ok, first.failures
    assert sorted((c.target, c.description) for c in first.changes) == sorted([
        ("esx35", "mount 192.168.69.1:/export/shared as shared"),
        ("esxi55", "mount 192.168.69.1:/export/shared as shared"),
        ("esxi70", "mount 192.168.69.1:/export/shared as shared"),
        ("esxi70", "mount 192.168.69.1:/export/iso as iso read-only"),
    ])
    assert [m.volume_name for m in sims["esxi70"].state.nfs] == ["shared", "iso"]
    assert sims["esx35"].state.nfs[0].share == "/export/shared"

    again = mount_over_ssh(topo, settings)
    assert again.ok and again.changes == []

    # a host whose mount is denied, and a host that is down: both named, the third converges
    for host in sims.values():
        host.state.nfs = []
    sims["esxi55"].state.extra["nfs_unreachable"] = ["192.168.69.1"]
    servers[0].stop()  # esx35 down
    result = mount_over_ssh(topo, settings)
    failed = {f.target: f.message for f in result.failures}
    assert set(failed) == {"esx35", "esxi55"}
    assert "denied the mount request" in failed["esxi55"] and "cannot connect" in failed["esx35"]
    assert [m.volume_name for m in sims["esxi70"].state.nfs] == ["shared", "iso"]


def test_nfs_cli_over_ssh_with_sim_endpoints(lab, run_cli, tmp_path):
    topo, _settings, sims, _servers = lab
    args = ("nfs", str(topo.path), "--sim", "--sim-dir", str(tmp_path), "--json")
    r = run_cli(*args, "--dry-run")  # no vcenter in the topology: over SSH by default
    assert r.status == 0, r.err
    assert len(json.loads(r.out)["changes"]) == 4 and all(not h.state.nfs for h in sims.values())
    r = run_cli(*args)
    assert r.status == 0, r.err
    assert sorted(c["target"] for c in json.loads(r.out)["changes"]) == ["esx35", "esxi55", "esxi70", "esxi70"]
    r = run_cli(*args)
    assert r.status == 0 and json.loads(r.out)["changes"] == []
