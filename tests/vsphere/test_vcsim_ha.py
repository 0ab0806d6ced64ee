"""Datacenter, clusters, hosts and HA isolation addresses against the vcsim harness (labctl's Go simulator stores
dasConfig the way vCenter does, so these checks read back real state)."""

from __future__ import annotations

import pytest

from labctl.vsphere.model import ClusterSpec, HostLogin
from labctl.vsphere.operations import configure_vcenter

pytestmark = pytest.mark.vcsim

MUTATING = {"ReconfigureComputeResource_Task", "CreateClusterEx", "CreateDatacenter", "AddHost_Task",
            "CreateNasDatastore"}


def logins(*hosts):
    return {h: HostLogin(password="host-pw") for h in hosts}


def cluster_state(client, dc, name):
    inv = client.read_inventory()
    return inv.datacenters[dc].clusters[name], inv.datacenters[dc]


def descriptions(result, stage=None):
    return [c.description for c in result.changes if stage is None or c.stage == stage]


def test_fresh_cluster_gets_ha_and_isolation_addresses(client, dc_name):
    spec = ClusterSpec("Pair", hosts=("10.1.0.11", "10.1.0.12"), isolation_addresses=("10.1.0.10", "10.1.0.1"),
                       gateway_less=True)
    result = configure_vcenter(client, dc_name, [spec], logins("10.1.0.11", "10.1.0.12"))
    assert result.ok, result.failures
    assert ("vcenter", dc_name, "create datacenter") in [(c.stage, c.target, c.description) for c in result.changes]
    assert descriptions(result, "ha") == [
        "enable HA", "set das.isolationaddress0 = 10.1.0.10", "set das.isolationaddress1 = 10.1.0.1",
        "set das.usedefaultisolationaddress = false",
    ]
    cl, dc = cluster_state(client, dc_name, "Pair")
    assert cl.das_enabled is True
    assert cl.options == {"das.isolationaddress0": "10.1.0.10", "das.isolationaddress1": "10.1.0.1",
                          "das.usedefaultisolationaddress": "false"}
    assert {h: dc.hosts[h].parent for h in ("10.1.0.11", "10.1.0.12")} == {"10.1.0.11": "Pair", "10.1.0.12": "Pair"}


def test_change_remove_and_rerun_is_a_noop(client, vcsim, dc_name):
    hosts = ("10.2.0.11",)
    spec = ClusterSpec("C", hosts=hosts, isolation_addresses=("10.2.0.1", "10.2.0.2", "10.2.0.3"))
    assert configure_vcenter(client, dc_name, [spec], logins(*hosts)).ok

    changed = ClusterSpec("C", hosts=hosts, isolation_addresses=("10.2.0.1", "10.2.0.9", "10.2.0.3"))
    result = configure_vcenter(client, dc_name, [changed], logins(*hosts))
    assert result.ok
    assert descriptions(result) == ["set das.isolationaddress1 = 10.2.0.9 (was 10.2.0.2)"]
    assert cluster_state(client, dc_name, "C")[0].options["das.isolationaddress1"] == "10.2.0.9"

    removed = ClusterSpec("C", hosts=hosts, isolation_addresses=("10.2.0.1", "10.2.0.9"))
    result = configure_vcenter(client, dc_name, [removed], logins(*hosts))
    assert descriptions(result) == ["remove das.isolationaddress2 (was 10.2.0.3)"]
    cl, _ = cluster_state(client, dc_name, "C")
    assert cl.options == {"das.isolationaddress0": "10.2.0.1", "das.isolationaddress1": "10.2.0.9"}
    assert cl.das_enabled is True

    vcsim.reset_counts()
    again = configure_vcenter(client, dc_name, [removed], logins(*hosts))
    assert again.ok and again.changes == []
    calls = vcsim.call_counts()
    assert not MUTATING & set(calls), calls


def test_one_reconfigure_and_at_most_three_reads(client, vcsim, dc_name):
    """The figure for the README: SOAP calls for one existing cluster's HA configuration."""
    hosts = ("10.3.0.11", "10.3.0.12")
    assert configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts, ha_enabled=False)], logins(*hosts)).ok
    spec = ClusterSpec("C", hosts=hosts, isolation_addresses=("10.3.0.1", "10.3.0.2"), gateway_less=True)
    vcsim.reset_counts()
    result = configure_vcenter(client, dc_name, [spec], logins(*hosts))
    calls = vcsim.call_counts()
    assert result.ok and len(descriptions(result)) == 4
    assert calls.pop("ReconfigureComputeResource_Task") == 1
    assert sum(calls.values()) <= 3, calls  # reads only: inventory + task state
    assert set(calls) <= {"RetrievePropertiesEx"}, calls


def test_dry_run_prints_the_diff_and_changes_nothing(client, vcsim, dc_name):
    hosts = ("10.4.0.11",)
    assert configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts, isolation_addresses=("10.4.0.1",))],
                             logins(*hosts)).ok
    wanted = ClusterSpec("C", hosts=(*hosts, "10.4.0.12"), isolation_addresses=("10.4.0.2",), gateway_less=True)
    vcsim.reset_counts()
    result = configure_vcenter(client, dc_name, [wanted], logins(*hosts, "10.4.0.12"), dry_run=True)
    assert not MUTATING & set(vcsim.call_counts())
    assert descriptions(result) == [
        "set das.isolationaddress0 = 10.4.0.2 (was 10.4.0.1)", "set das.usedefaultisolationaddress = false",
        "add host to cluster C",
    ]
    assert "would set das.isolationaddress0" in "\n".join(result.lines())
    cl, dc = cluster_state(client, dc_name, "C")
    assert cl.options == {"das.isolationaddress0": "10.4.0.1"} and "10.4.0.12" not in dc.hosts


def test_model_cluster_keeps_dasconfig(client, vcsim):
    """The simulator's own cluster (not created by labctl) stores dasConfig too."""
    spec = ClusterSpec("DC0_C0", hosts=("DC0_C0_H0", "DC0_C0_H1", "DC0_C0_H2"), isolation_addresses=("10.9.9.9",))
    result = configure_vcenter(client, "DC0", [spec])
    assert result.ok, result.failures
    cl, _ = cluster_state(client, "DC0", "DC0_C0")
    assert cl.das_enabled is True and cl.options == {"das.isolationaddress0": "10.9.9.9"}
    assert configure_vcenter(client, "DC0", [spec]).changes == []


def test_legacy_aam_keys_on_vcenter_41(client41, dc_name):
    spec = ClusterSpec("Old", hosts=("10.5.0.11",), isolation_addresses=("10.5.0.1", "10.5.0.2", "10.5.0.3"),
                       gateway_less=True)
    result = configure_vcenter(client41, dc_name, [spec], logins("10.5.0.11"))
    assert result.ok
    assert "vCenter API 4.1: legacy AAM HA keys" in result.notes
    cl, _ = cluster_state(client41, dc_name, "Old")
    assert cl.options == {"das.isolationaddress": "10.5.0.1", "das.isolationaddress2": "10.5.0.2",
                          "das.isolationaddress3": "10.5.0.3", "das.usedefaultisolationaddress": "false"}


def test_fdm_vcenter_replaces_legacy_keys(client, vcsim, dc_name):
    """A cluster carrying AAM keys (upgraded vCenter): the FDM run writes ...0..N and removes the old keys."""
    hosts = ("10.6.0.11",)
    assert configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts)], logins(*hosts)).ok
    cl, _ = cluster_state(client, dc_name, "C")
    client.wait_tasks([client.reconfigure_das(cl.ref, None, [("das.isolationaddress", "10.6.0.1"),
                                                              ("das.isolationaddress2", "10.6.0.2")])])
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts, isolation_addresses=("10.6.0.1",))],
                               logins(*hosts))
    assert sorted(descriptions(result)) == sorted([
        "set das.isolationaddress0 = 10.6.0.1", "remove das.isolationaddress (was 10.6.0.1)",
        "remove das.isolationaddress2 (was 10.6.0.2)",
    ])
    assert cluster_state(client, dc_name, "C")[0].options == {"das.isolationaddress0": "10.6.0.1"}


def test_injected_reconfigure_fault_names_the_cluster_and_the_rest_completes(client, vcsim, dc_name):
    hosts = ("10.7.0.11", "10.7.0.12")
    specs = [ClusterSpec("Bad", hosts=hosts[:1]), ClusterSpec("Good", hosts=hosts[1:])]
    assert configure_vcenter(client, dc_name, specs, logins(*hosts)).ok
    wanted = [ClusterSpec("Bad", hosts=hosts[:1], isolation_addresses=("10.7.0.1",)),
              ClusterSpec("Good", hosts=hosts[1:], isolation_addresses=("10.7.0.1",))]
    vcsim.inject_fault("ReconfigureComputeResource_Task", "Bad", "InvalidState", "cluster is busy")
    result = configure_vcenter(client, dc_name, wanted, logins(*hosts))
    assert [(f.stage, f.target) for f in result.failures] == [("ha", "Bad")]
    assert "InvalidState" in result.failures[0].message and "cluster is busy" in result.failures[0].message
    assert "FAILED [ha] Bad: " in "\n".join(result.lines())
    assert cluster_state(client, dc_name, "Bad")[0].options == {}
    assert cluster_state(client, dc_name, "Good")[0].options == {"das.isolationaddress0": "10.7.0.1"}
    assert configure_vcenter(client, dc_name, wanted, logins(*hosts)).ok  # the fault was one-shot


def test_add_host_fault_and_missing_password_name_the_host(client, vcsim, dc_name):
    hosts = ("10.8.0.11", "10.8.0.12", "10.8.0.13")
    vcsim.inject_fault("AddHost_Task", "10.8.0.12", "HostConnectFault", "cannot contact the host")
    login = logins("10.8.0.11", "10.8.0.12")
    login["10.8.0.13"] = HostLogin(password=None, password_env="LAB_ESX_PASSWORD")
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=hosts)], login)
    failed = {f.target: f.message for f in result.failures}
    assert set(failed) == {"10.8.0.12", "10.8.0.13"}
    assert "HostConnectFault" in failed["10.8.0.12"] and "$LAB_ESX_PASSWORD" in failed["10.8.0.13"]
    _, dc = cluster_state(client, dc_name, "C")
    assert "10.8.0.11" in dc.hosts and "10.8.0.12" not in dc.hosts


THUMB = "AB:CD:EF:01:23:45:67:89:AB:CD:EF:01:23:45:67:89:AB:CD:EF:01"


def test_unknown_host_certificate_needs_pinning_or_trust(client, vcsim, dc_name):
    host = "10.9.0.11"
    fields = {"Thumbprint": THUMB}
    vcsim.inject_fault("AddHost_Task", host, "SSLVerifyFault", "unknown certificate", fields=fields)
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=(host,))], logins(host))
    assert [f.target for f in result.failures] == [host]
    assert THUMB in result.failures[0].message and "--trust-new-hosts" in result.failures[0].message

    vcsim.inject_fault("AddHost_Task", host, "SSLVerifyFault", "unknown certificate", fields=fields)
    pinned_other = {host: HostLogin(password="pw", thumbprint="00" + THUMB[2:])}
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=(host,))], pinned_other)
    assert "does not match the pinned" in result.failures[0].message

    vcsim.inject_fault("AddHost_Task", host, "SSLVerifyFault", "unknown certificate", fields=fields)
    result = configure_vcenter(client, dc_name, [ClusterSpec("C", hosts=(host,))], logins(host),
                               trust_new_hosts=True)
    assert result.ok, result.failures
    assert f"{host}: accepted certificate thumbprint {THUMB} (--trust-new-hosts)" in result.notes
    assert host in cluster_state(client, dc_name, "C")[1].hosts


def test_host_in_another_cluster_is_reported_not_moved(client, dc_name):
    host = "10.10.0.11"
    assert configure_vcenter(client, dc_name, [ClusterSpec("A", hosts=(host,))], logins(host)).ok
    result = configure_vcenter(client, dc_name, [ClusterSpec("B", hosts=(host,))], logins(host))
    assert [(f.target, "cluster A" in f.message) for f in result.failures] == [(host, True)]
    assert cluster_state(client, dc_name, "B")[1].hosts[host].parent == "A"


def test_harness_semantics_modify_false_replaces_dasconfig(client, dc_name):
    """The simulator's dasConfig store itself: modify=True merges (empty value removes), modify=False replaces."""
    from labctl.vsphere.client import cluster_spec

    assert configure_vcenter(client, dc_name, [ClusterSpec("C", isolation_addresses=("1.1.1.1", "2.2.2.2"))]).ok
    cl, _ = cluster_state(client, dc_name, "C")
    task = cl.ref.ReconfigureComputeResource_Task(spec=cluster_spec(None, [("das.other", "x")]), modify=False)
    assert client.wait_tasks([task])[0].ok
    cl, _ = cluster_state(client, dc_name, "C")
    assert cl.options == {"das.other": "x"} and cl.das_enabled is None
    client.wait_tasks([client.reconfigure_das(cl.ref, True, [("das.other", ""), ("das.a", "1")])])
    cl, _ = cluster_state(client, dc_name, "C")
    assert cl.options == {"das.a": "1"} and cl.das_enabled is True
