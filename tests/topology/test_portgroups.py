"""A lab's networks as portgroups on a vSphere target: names, ownership, and the switch policy chosen (and why)."""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.topology import load, load_topology
from labctl.topology.portgroups import (
    PolicyError, SwitchFacts, choose_policy, lab_portgroups, portgroup_for, portgroup_name, vswitch_name,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "topologies" / "esxi8-ha-trio-on-vsphere.yaml"


def test_example_maps_each_network():
    topo = load_topology(EXAMPLE)
    pgs = {p.network: p for p in lab_portgroups(topo)}
    assert pgs["mgmt"].name == "Lab-Mgmt" and not pgs["mgmt"].owned  # the user's, used as is
    assert pgs["storage"].name == "labctl-esxi8-trio-storage" and pgs["storage"].owned
    assert portgroup_for(topo, "storage") == "labctl-esxi8-trio-storage"


def test_workstation_lab_has_no_portgroups():
    assert lab_portgroups(load_topology(ROOT / "topologies" / "esxi8-ha-trio.yaml")) == ()


def test_names_are_bounded_and_stable():
    lab = "a" * 63
    vs = vswitch_name(lab)
    assert len(vs) == 32 and vs.startswith("labctl-aaaa") and vs == vswitch_name(lab)
    assert vswitch_name("trio") == "labctl-trio"
    pg1, pg2 = portgroup_name(lab, "n" * 63), portgroup_name(lab, "n" * 62 + "m")
    assert len(pg1) <= 59 and len(pg2) <= 59 and pg1 != pg2  # truncation keeps them apart (hash suffix)


ESX = SwitchFacts("HostAgent", "8.0.2.0")


@pytest.mark.parametrize("mode,facts,dvs,want,why", [
    ("auto", ESX, None, ("promiscuous", "standard"), "a standard vSwitch has no MAC learning"),
    ("promiscuous", ESX, None, ("promiscuous", "standard"), "as asked"),
    ("auto", SwitchFacts("VirtualCenter", "8.0.2.0", "8.0.0"), "DSwitch", ("mac-learning", "distributed"),
     "chosen by network_mode: auto"),
    ("mac-learning", SwitchFacts("VirtualCenter", "6.7.3", "6.6.0"), "DSwitch", ("mac-learning", "distributed"),
     "supports it"),
    ("auto", SwitchFacts("VirtualCenter", "6.7.3", "6.5.0"), "DSwitch", ("promiscuous", "distributed"),
     "needs vSphere 6.7+ and VDS 6.6.0+"),
    ("auto", SwitchFacts("VirtualCenter", "6.5", "6.6.0"), "DSwitch", ("promiscuous", "distributed"),
     "vCenter API 6.5"),
    ("promiscuous", SwitchFacts("VirtualCenter", "8.0.2.0", "8.0.0"), "DSwitch", ("promiscuous", "distributed"),
     "as asked"),
])
def test_choose_policy_says_which_and_why(mode, facts, dvs, want, why):
    c = choose_policy(mode, facts, dvswitch=dvs)
    assert (c.mode, c.switch) == want
    assert why in c.why


@pytest.mark.parametrize("facts,dvs,frag", [
    (ESX, None, "set target.dvswitch"),
    (SwitchFacts("VirtualCenter", "7.0.3", "6.5.0"), "DSwitch", "distributed switch DSwitch version 6.5.0"),
])
def test_mac_learning_refused_where_the_target_has_none(facts, dvs, frag):
    with pytest.raises(PolicyError, match=frag):
        choose_policy("mac-learning", facts, dvswitch=dvs)


def test_vlans_and_existing_portgroups(tmp_path):
    text = """
lab: v
target: {kind: vsphere, host: vc, datastore: ds, dvswitch: DSwitch, vlans: {seg: 101}, portgroups: {up: VM Network}}
networks:
  - {name: seg, type: lan-segment, subnet: 10.0.0.0/24}
  - {name: up, type: bridged, subnet: 10.0.1.0/24}
ssh: {jump: root@10.0.1.2}
esx_hosts:
  - {name: e, flavor: esxi, version: "8.0", memory_mb: 8192, nics: [seg, up], management: {network: up, ip: 10.0.1.5}}
"""
    res = load(tmp_path / "v.yaml", text=text)
    assert res.errors == [], res.formatted()
    pgs = {p.network: p for p in lab_portgroups(res.topology)}
    assert (pgs["seg"].vlan, pgs["seg"].owned) == (101, True)
    assert (pgs["up"].name, pgs["up"].owned, pgs["up"].vlan) == ("VM Network", False, None)
