import re
from pathlib import Path

from labctl.topology import addressing, load

ROOT = Path(__file__).resolve().parents[2]


def test_pvn_id_format_and_stability():
    a = addressing.pvn_id("esx35-ha-pair", "lan")
    assert re.fullmatch(r"([0-9a-f]{2} ){7}[0-9a-f]{2}-([0-9a-f]{2} ){7}[0-9a-f]{2}", a)
    assert a == addressing.pvn_id("esx35-ha-pair", "lan")
    assert a != addressing.pvn_id("esx35-ha-pair", "lan2")
    assert a != addressing.pvn_id("other-lab", "lan")


def test_macs_static_unique_and_stable():
    keys = [f"vm{i}/{j}" for i in range(300) for j in range(3)]
    macs = addressing.allocate_macs("lab", keys)
    assert len(set(macs.values())) == len(keys)
    assert all(addressing.is_static_mac(m) for m in macs.values())
    more = addressing.allocate_macs("lab", keys + ["new/0"])
    assert all(more[k] == macs[k] for k in keys)  # adding a VM moves nobody


def test_mac_collision_probing_respects_reserved():
    first = addressing.allocate_macs("lab", ["a/0"])["a/0"]
    again = addressing.allocate_macs("lab", ["a/0"], reserved={first})["a/0"]
    assert again != first and addressing.is_static_mac(again)


def test_ip_allocation_skips_taken_and_special():
    got = addressing.allocate_ips("lab", "10.0.0.0/30", ["a", "b", "c"], taken={"10.0.0.1"})
    assert list(got.values()) == ["10.0.0.2"]  # .0 network, .3 broadcast, .1 taken: one left
    ips = addressing.allocate_ips("lab", "10.1.0.0/24", [f"h{i}" for i in range(50)], taken=set())
    assert len(set(ips.values())) == 50
    more = addressing.allocate_ips("lab", "10.1.0.0/24", [f"h{i}" for i in range(51)], taken=set())
    assert all(more[k] == v for k, v in ips.items())


def test_topology_addresses_are_deterministic():
    f = ROOT / "topologies" / "esxi8-ha-trio.yaml"
    a, b = load(f).topology, load(f).topology
    assert a == b
    c = a.host("esxi-c")
    assert c.vmkernel[0].allocated and c.vmkernel[0].ip.startswith("172.20.40.")
    assert c.vmkernel[0].ip not in {"172.20.40.1", "172.20.40.11", "172.20.40.12"}
    macs = [n.mac for h in a.esx_hosts for n in h.nics] + [n.mac for v in a.vms for n in v.nics]
    assert len(macs) == len(set(macs))


def test_clone_inherits_source_settings():
    t = load(ROOT / "topologies" / "esx35-ha-pair.yaml").topology
    esx1, esx2 = t.host("esx1"), t.host("esx2")
    assert esx2.is_clone and esx2.linked_clone_of == "esx1" and esx2.snapshot == "base"
    assert (esx2.flavor, esx2.version, esx2.cpus, esx2.memory_mb) == (esx1.flavor, esx1.version, esx1.cpus, esx1.memory_mb)
    assert [n.network for n in esx2.nics] == ["lan", "storage"]
    assert [n.mac for n in esx2.nics] != [n.mac for n in esx1.nics]
    assert esx2.management.ip == "192.168.69.12" and esx2.management_name == "vswif0"
    assert t.network("lan").pvn_id and t.clusters[0].gateway_less
