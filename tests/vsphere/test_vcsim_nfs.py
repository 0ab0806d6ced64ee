"""NFS datastores through vCenter against the vcsim harness (CreateNasDatastore with localPath = the name)."""

from __future__ import annotations

import zlib

import pytest

from labctl.vsphere.model import ClusterSpec, HostLogin, NfsSpec
from labctl.vsphere.operations import configure_vcenter, mount_nfs

pytestmark = pytest.mark.vcsim


@pytest.fixture
def three_hosts(client, dc_name, request):
    base = 20 + zlib.crc32(dc_name.encode()) % 200
    hosts = tuple(f"10.{base}.1.{i}" for i in (11, 12, 13))
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts)],
                               {h: HostLogin(password="pw") for h in hosts})
    assert result.ok, result.failures
    return hosts


def mounts(client, dc, name):
    inv = client.read_inventory()
    out = {}
    for host in inv.datacenters[dc].hosts.values():
        ds = host.datastore(name)
        if ds is not None:
            out[host.name] = (ds.remote_host, ds.remote_path)
    return out


def test_mount_on_three_hosts_then_rerun_is_a_noop(client, vcsim, dc_name, three_hosts):
    vcsim.add_datastore_dirs(["nfs-a"])
    spec = NfsSpec("nfs-a", "10.0.99.1", "/export/a", three_hosts)
    result = mount_nfs(client, dc_name, [spec])
    assert result.ok, result.failures
    assert [(c.target, c.description) for c in result.changes] == [
        (h, "mount 10.0.99.1:/export/a as nfs-a") for h in three_hosts]
    assert mounts(client, dc_name, "nfs-a") == {h: ("10.0.99.1", "/export/a") for h in three_hosts}

    vcsim.reset_counts()
    again = mount_nfs(client, dc_name, [NfsSpec("nfs-a", "10.0.99.1", "/export/a/", three_hosts)])
    assert again.ok and again.changes == []
    assert vcsim.call_counts() == {"RetrievePropertiesEx": 1}


def test_same_name_other_share_is_a_clear_error(client, vcsim, dc_name, three_hosts):
    vcsim.add_datastore_dirs(["nfs-b"])
    assert mount_nfs(client, dc_name, [NfsSpec("nfs-b", "10.0.99.1", "/export/b", three_hosts[:1])]).ok
    result = mount_nfs(client, dc_name, [NfsSpec("nfs-b", "10.0.99.2", "/export/other", three_hosts)])
    assert [f.target for f in result.failures] == [three_hosts[0]]
    msg = result.failures[0].message
    assert "10.0.99.1:/export/b" in msg and "10.0.99.2:/export/other" in msg
    # the other two hosts were mounted all the same
    assert mounts(client, dc_name, "nfs-b") == {three_hosts[0]: ("10.0.99.1", "/export/b"),
                                                three_hosts[1]: ("10.0.99.2", "/export/other"),
                                                three_hosts[2]: ("10.0.99.2", "/export/other")}


def test_host_fault_is_reported_with_its_name_and_the_others_mount(client, vcsim, dc_name, three_hosts):
    vcsim.add_datastore_dirs(["nfs-c"])
    bad = three_hosts[1]
    vcsim.inject_fault("CreateNasDatastore", bad, "PlatformConfigFault", "NFS server 10.0.99.1 unreachable")
    result = mount_nfs(client, dc_name, [NfsSpec("nfs-c", "10.0.99.1", "/export/c", three_hosts, readonly=True)])
    assert [f.target for f in result.failures] == [bad]
    assert "PlatformConfigFault" in result.failures[0].message
    assert "unreachable" in result.failures[0].message
    assert sorted(mounts(client, dc_name, "nfs-c")) == sorted([three_hosts[0], three_hosts[2]])
    lines = "\n".join(result.lines())
    assert f"1 failed:\n  FAILED [nfs] {bad}:" in lines

    retry = mount_nfs(client, dc_name, [NfsSpec("nfs-c", "10.0.99.1", "/export/c", three_hosts, readonly=True)])
    assert retry.ok and [c.target for c in retry.changes] == [bad]


def test_unknown_host_and_dry_run(client, vcsim, dc_name, three_hosts):
    vcsim.add_datastore_dirs(["nfs-d"])
    vcsim.reset_counts()
    spec = NfsSpec("nfs-d", "10.0.99.1", "/export/d", (*three_hosts, "10.250.0.1"))
    result = mount_nfs(client, dc_name, [spec], dry_run=True)
    assert [c.target for c in result.changes] == list(three_hosts)
    assert [f.target for f in result.failures] == ["10.250.0.1"]
    assert "CreateNasDatastore" not in vcsim.call_counts()
    assert mounts(client, dc_name, "nfs-d") == {}


def test_vcenter_run_adds_hosts_then_mounts(client, vcsim, dc_name):
    vcsim.add_datastore_dirs(["nfs-e"])
    hosts = ("10.251.0.11", "10.251.0.12")
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts)],
                               {h: HostLogin(password="pw") for h in hosts},
                               datastores=[NfsSpec("nfs-e", "10.0.99.1", "/export/e", hosts)])
    assert result.ok, result.failures
    assert [c.target for c in result.changes if c.stage == "nfs"] == list(hosts)
    assert set(mounts(client, dc_name, "nfs-e")) == set(hosts)
