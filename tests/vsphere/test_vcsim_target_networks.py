"""The networks stage on a vSphere target, against vcsim as a standalone ESX host (`-esx`) and as a vCenter.

Each assertion reads the result back from the simulator (never from labctl's own plan): the switches and
portgroups it holds, their security / MAC management policy, VLAN. vcsim has no UpdatePortGroup (the harness models it);
with it faulted as on plain vcsim, labctl reports the call as failed and the portgroup is as it was — nothing
silently dropped.
"""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from labctl.errors import UsageError
from labctl.topology import load
from labctl.vsphere.target import networks as tn

pytestmark = pytest.mark.vcsim

LAB = """
lab: netlab
target: {{kind: vsphere, host: phys.example.lab, datastore: LocalDS_0{extra}}}
networks:
  - {{name: seg, type: lan-segment, subnet: 10.0.0.0/24}}
  - {{name: store, type: lan-segment, subnet: 10.0.1.0/24}}
  - {{name: up, type: bridged, subnet: 10.0.2.0/24}}
ssh: {{jump: root@10.0.2.2}}
esx_hosts:
  - {{name: e, flavor: esxi, version: "8.0", memory_mb: 8192, nics: [seg, store, up], management: {{network: up, ip: 10.0.2.5}}}}
"""


def _topo(tmp_path: Path, extra: str = "", portgroups: str = "up: VM Network"):
    text = LAB.format(extra=f", portgroups: {{{portgroups}}}" + extra)
    res = load(tmp_path / "lab.yaml", text=text)
    assert res.errors == [], res.formatted()
    return res.topology


def _connect(sim):
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target

    return VSphereClient.connect(resolve_target(settings=None, environ={}, override_url=sim.url_with_credentials))


@pytest.fixture
def esx(vcsim_esx):
    c = _connect(vcsim_esx)
    yield c
    c.close()


@pytest.fixture
def vc(vcsim80):
    c = _connect(vcsim80)
    yield c
    c.close()


def _host_net(client, host_name=None):
    """(vswitches name -> pnics, portgroups name -> spec) read back from the simulator."""
    from pyVmomi import vim

    view = client.content.viewManager.CreateContainerView(client.content.rootFolder, [vim.HostSystem], True)
    hosts = {h.name: h for h in view.view}
    h = hosts[host_name] if host_name else next(iter(hosts.values()))
    info = h.configManager.networkSystem.networkInfo
    return ({v.name: list(v.pnic or []) for v in info.vswitch}, {p.spec.name: p.spec for p in info.portgroup})


def _run(client, topo, state_dir):
    state = tn.read_state(client, topo, state_dir)
    plan = tn.plan_networks(topo, state)
    return state, plan


def test_standalone_esx_private_segments(esx, tmp_path):
    topo = _topo(tmp_path)
    state, plan = _run(esx, topo, tmp_path)
    assert state.api_type == "HostAgent" and state.datacenter == "ha-datacenter"
    assert [c.method for c in plan.calls] == ["HostNetworkSystem.AddVirtualSwitch", "HostNetworkSystem.AddPortGroup",
                                              "HostNetworkSystem.AddPortGroup"]
    assert plan.failures == []
    assert "promiscuous + forged transmits + MAC changes (a standard vSwitch has no MAC learning" in plan.notes[0]
    assert "AddVirtualSwitch[localhost.localdomain](vswitchName='labctl-netlab'" in plan.calls[0].display
    results = tn.apply(esx, state, plan, tmp_path)
    assert all(r.ok for r in results), results

    vswitches, pgs = _host_net(esx)
    assert vswitches["labctl-netlab"] == []  # no uplinks: the segments stay on the host
    for name in ("labctl-netlab-seg", "labctl-netlab-store"):
        spec = pgs[name]
        assert spec.vswitchName == "labctl-netlab" and spec.vlanId == 0
        sec = spec.policy.security
        assert (sec.allowPromiscuous, sec.forgedTransmits, sec.macChanges) == (True, True, True)
    assert "VM Network" in pgs and "vSwitch0" in vswitches  # the user's mapped portgroup is used, not touched

    rec = tmp_path / tn.STATE_FILE
    assert stat.S_IMODE(rec.stat().st_mode) == 0o600
    entry = json.loads(rec.read_text())["targets"]["phys.example.lab/"]
    assert entry["vswitches"] == ["labctl-netlab"]
    assert entry["portgroups"] == ["labctl-netlab-seg", "labctl-netlab-store"]
    assert "target-pw" not in rec.read_text()

    # a second run reads the same state and changes nothing
    _, again = _run(esx, topo, tmp_path)
    assert again.calls == [] and again.failures == []

    # destroy removes exactly what the record lists; the host's own switch and portgroup stay
    state = tn.read_state(esx, topo, tmp_path)
    removal = tn.plan_removal(topo, state)
    assert [c.method for c in removal] == ["HostNetworkSystem.RemovePortGroup"] * 2 + [
        "HostNetworkSystem.RemoveVirtualSwitch"]
    assert all(r.ok for r in tn.remove(esx, state, removal, tmp_path))
    vswitches, pgs = _host_net(esx)
    assert "labctl-netlab" not in vswitches and not any(p.startswith("labctl-netlab") for p in pgs)
    assert "VM Network" in pgs and "vSwitch0" in vswitches
    assert json.loads(rec.read_text())["targets"] == {}


def _drift(esx, topo, tmp_path):
    """Apply the lab, then set its segment back to the defaults (Reject) by hand: same name, same vSwitch."""
    from pyVmomi import vim

    state, plan = _run(esx, topo, tmp_path)
    assert all(r.ok for r in tn.apply(esx, state, plan, tmp_path))
    ns = state._objects["network_system"]
    ns.RemovePortGroup(pgName="labctl-netlab-seg")
    ns.AddPortGroup(portgrp=vim.host.PortGroup.Specification(
        name="labctl-netlab-seg", vlanId=0, vswitchName="labctl-netlab", policy=vim.host.NetworkPolicy(
            security=vim.host.NetworkPolicy.SecurityPolicy(allowPromiscuous=False, forgedTransmits=False,
                                                           macChanges=False))))
    state, plan = _run(esx, topo, tmp_path)
    assert [c.method for c in plan.calls] == ["HostNetworkSystem.UpdatePortGroup"]
    assert "promiscuous reject, forged transmits reject, MAC changes reject -> promiscuous accept" in plan.calls[0].why
    return state, plan


def _seg_security(esx):
    sec = _host_net(esx)[1]["labctl-netlab-seg"].policy.security
    return (sec.allowPromiscuous, sec.forgedTransmits, sec.macChanges)


def _clean(esx, topo, tmp_path):
    state = tn.read_state(esx, topo, tmp_path)
    assert all(r.ok for r in tn.remove(esx, state, tn.plan_removal(topo, state), tmp_path))


def test_policy_drift_is_corrected_with_update_portgroup(esx, tmp_path):
    """vcsim itself has no UpdatePortGroup; the harness models it (labctl/sim/vcsim/main.go), as a real host has."""
    topo = _topo(tmp_path)
    state, plan = _drift(esx, topo, tmp_path)
    results = tn.apply(esx, state, plan, tmp_path)
    assert [r.ok for r in results] == [True]
    assert _seg_security(esx) == (True, True, True)
    assert _run(esx, topo, tmp_path)[1].calls == []
    _clean(esx, topo, tmp_path)


def test_a_target_without_update_portgroup_is_a_failure_not_a_silent_skip(vcsim_esx, esx, tmp_path):
    """Plain vcsim answers UpdatePortGroup with MethodNotFound: labctl reports it, and the portgroup is as it was."""
    topo = _topo(tmp_path)
    state, plan = _drift(esx, topo, tmp_path)
    vcsim_esx.inject_fault("UpdatePortGroup", state._objects["network_system"]._moId, fault="MethodNotFound",
                           message="HostNetworkSystem does not implement: UpdatePortGroup")
    results = tn.apply(esx, state, plan, tmp_path)
    assert [r.ok for r in results] == [False]
    assert "does not implement UpdatePortGroup: network seg" in results[0].message
    assert _seg_security(esx) == (False, False, False)
    _clean(esx, topo, tmp_path)


def test_a_failed_create_is_not_recorded(vcsim_esx, esx, tmp_path):
    topo = _topo(tmp_path)
    state, plan = _run(esx, topo, tmp_path)
    vcsim_esx.inject_fault("AddPortGroup", state._objects["network_system"]._moId, message="no ports left")
    results = tn.apply(esx, state, plan, tmp_path)
    assert [r.ok for r in results] == [True, False, True]
    assert "no ports left" in results[1].message
    rec = json.loads((tmp_path / tn.STATE_FILE).read_text())["targets"]["phys.example.lab/"]
    assert rec["portgroups"] == ["labctl-netlab-store"]  # listed before the call, unlisted when it failed
    assert "labctl-netlab-seg" not in _host_net(esx)[1]
    state, plan = _run(esx, topo, tmp_path)
    assert [c.display.split("(")[0] for c in plan.calls] == ["HostNetworkSystem.AddPortGroup[localhost.localdomain]"]
    assert all(r.ok for r in tn.apply(esx, state, plan, tmp_path))
    _clean(esx, topo, tmp_path)


def test_a_portgroup_labctl_did_not_make_is_refused_not_adopted(esx, tmp_path):
    topo = _topo(tmp_path)
    state, plan = _run(esx, topo, tmp_path)
    assert all(r.ok for r in tn.apply(esx, state, plan, tmp_path))
    other = tmp_path / "other"  # another checkout of the same lab: no record of what was made
    state, plan = _run(esx, topo, other)
    assert plan.calls == []
    assert [f[0] for f in plan.failures] == ["localhost.localdomain"]
    assert "already has a vSwitch 'labctl-netlab' that labctl did not create" in plan.failures[0][1]
    assert tn.plan_removal(topo, state) == []  # and nothing it did not make is removed
    state = tn.read_state(esx, topo, tmp_path)
    tn.remove(esx, state, tn.plan_removal(topo, state), tmp_path)


def test_missing_existing_portgroup_and_vcenter_keys_on_esx(esx, tmp_path):
    topo = _topo(tmp_path, portgroups="up: Lab-Uplink")
    _, plan = _run(esx, topo, tmp_path)
    assert [f[0] for f in plan.failures] == ["up"]
    assert "portgroup 'Lab-Uplink' (target.portgroups.up) does not exist in datacenter ha-datacenter" in plan.failures[0][1]
    with pytest.raises(UsageError, match="standalone ESXi host .*cluster is a vCenter key"):
        tn.read_state(esx, _topo(tmp_path, extra=", cluster: Compute"), tmp_path)


def test_vcenter_standard_vswitch_on_one_host_of_the_cluster(vc, tmp_path):
    topo = _topo(tmp_path, extra=", datacenter: DC0, cluster: DC0_C0")
    state, plan = _run(vc, topo, tmp_path)
    assert state.host_name == "DC0_C0_H0"  # the first connected host of the cluster by name
    assert any("its VMs run on that host" in n for n in plan.notes)
    assert all(r.ok for r in tn.apply(vc, state, plan, tmp_path))
    vswitches, pgs = _host_net(vc, "DC0_C0_H0")
    assert vswitches["labctl-netlab"] == [] and "labctl-netlab-seg" in pgs
    rec = json.loads((tmp_path / tn.STATE_FILE).read_text())["targets"]["phys.example.lab/DC0"]
    assert rec["host"] == "DC0_C0_H0"
    _, again = _run(vc, topo, tmp_path)
    assert again.calls == [] and again.failures == []
    state = tn.read_state(vc, topo, tmp_path)
    assert all(r.ok for r in tn.remove(vc, state, tn.plan_removal(topo, state), tmp_path))
    vswitches, pgs = _host_net(vc, "DC0_C0_H0")
    assert "labctl-netlab" not in vswitches and "labctl-netlab-seg" not in pgs


def _make_dvs(client, name, version):
    from pyVmomi import vim

    dc = next(d for d in client.content.rootFolder.childEntity if d.name == "DC0")
    for d in dc.networkFolder.childEntity:
        if d.name == name:
            return d
    spec = vim.DistributedVirtualSwitch.CreateSpec(
        configSpec=vim.dvs.VmwareDistributedVirtualSwitch.ConfigSpec(name=name),
        productInfo=vim.dvs.ProductSpec(version=version))
    outcome = client.wait_tasks([dc.networkFolder.CreateDVS_Task(spec)])[0]
    assert outcome.ok, outcome.message
    return outcome.result


def _dv_pgs(dvs):
    return {pg.config.name: pg.config.defaultPortConfig for pg in dvs.portgroup}


def test_vcenter_distributed_switch_mac_learning(vc, tmp_path):
    dvs = _make_dvs(vc, "DSwitch", "8.0.0")
    topo = _topo(tmp_path, extra=", datacenter: DC0, cluster: DC0_C0, dvswitch: DSwitch, vlans: {seg: 101}")
    state, plan = _run(vc, topo, tmp_path)
    assert plan.choice.mode == "mac-learning"
    assert "MAC learning (+ forged transmits, MAC changes; vCenter API 8.0.2.0, distributed switch DSwitch version " \
           "8.0.0 supports it, chosen by network_mode: auto)" in plan.notes[0]
    assert [c.method for c in plan.calls] == ["DistributedVirtualSwitch.AddDVPortgroup_Task"] * 2
    assert all(r.ok for r in tn.apply(vc, state, plan, tmp_path))
    pgs = _dv_pgs(dvs)
    seg = pgs["labctl-netlab-seg"]
    assert seg.vlan.vlanId == 101 and pgs["labctl-netlab-store"].vlan.vlanId == 0
    mm = seg.macManagementPolicy
    assert (mm.allowPromiscuous, mm.forgedTransmits, mm.macChanges) == (False, True, True)
    ml = mm.macLearningPolicy
    assert (ml.enabled, ml.allowUnicastFlooding, ml.limit, ml.limitPolicy) == (True, True, 4096, "DROP")
    _, again = _run(vc, topo, tmp_path)
    assert again.calls == [] and again.failures == []

    # drift: MAC learning switched off by hand -> one reconfigure, read back on
    from pyVmomi import vim

    pg = next(p for p in dvs.portgroup if p.config.name == "labctl-netlab-seg")
    M = vim.dvs.VmwareDistributedVirtualSwitch
    off = vim.dvs.DistributedVirtualPortgroup.ConfigSpec(
        name=pg.config.name, configVersion=pg.config.configVersion, defaultPortConfig=M.VmwarePortConfigPolicy(
            vlan=M.VlanIdSpec(vlanId=101, inherited=False),
            macManagementPolicy=M.MacManagementPolicy(allowPromiscuous=False, forgedTransmits=False,
                                                      macChanges=False)))
    assert vc.wait_tasks([pg.ReconfigureDVPortgroup_Task(off)])[0].ok
    state, plan = _run(vc, topo, tmp_path)
    assert [c.method for c in plan.calls] == ["DistributedVirtualPortgroup.ReconfigureDVPortgroup_Task"]
    assert all(r.ok for r in tn.apply(vc, state, plan, tmp_path))
    assert _dv_pgs(dvs)["labctl-netlab-seg"].macManagementPolicy.macLearningPolicy.enabled is True

    state = tn.read_state(vc, topo, tmp_path)
    assert all(r.ok for r in tn.remove(vc, state, tn.plan_removal(topo, state), tmp_path))
    assert not any(n.startswith("labctl-netlab") for n in _dv_pgs(dvs))


def test_vcenter_old_distributed_switch_falls_back_to_promiscuous(vc, tmp_path):
    dvs = _make_dvs(vc, "OldSwitch", "6.5.0")
    topo = _topo(tmp_path, extra=", datacenter: DC0, dvswitch: OldSwitch")
    state, plan = _run(vc, topo, tmp_path)
    assert plan.choice.mode == "promiscuous"
    assert "MAC learning needs vSphere 6.7+ and VDS 6.6.0+" in plan.notes[0]
    assert all(r.ok for r in tn.apply(vc, state, plan, tmp_path))
    mm = _dv_pgs(dvs)["labctl-netlab-seg"].macManagementPolicy
    assert (mm.allowPromiscuous, mm.forgedTransmits, mm.macChanges, mm.macLearningPolicy) == (True, True, True, None)
    _, again = _run(vc, topo, tmp_path)
    assert again.calls == []
    asked = _topo(tmp_path, extra=", datacenter: DC0, dvswitch: OldSwitch, network_mode: mac-learning")
    _, refused = _run(vc, asked, tmp_path)
    assert refused.calls == [] and "distributed switch OldSwitch version 6.5.0" in refused.failures[0][1]
    state = tn.read_state(vc, topo, tmp_path)
    tn.remove(vc, state, tn.plan_removal(topo, state), tmp_path)
