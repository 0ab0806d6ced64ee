"""The .vmx → vSphere facts table (pure): on the real rendered files of the example topologies and on bad input."""

from __future__ import annotations

import pytest

from labctl.render import vmx as vmxlib
from labctl.vsphere.target import vmxfacts as vf
from tests.vsphere.target.conftest import render


def _facts(tmp_path, topology, name):
    return vf.facts(vmxlib.read(render(topology, tmp_path)[name]), name)


def test_modern_esxi_host(tmp_path):
    f = _facts(tmp_path, "esxi8-ha-trio", "esxi-a")
    assert (f.guest_id, f.hw_version, f.cpus, f.cores_per_socket, f.memory_mb) == ("vmkernel8Guest", 21, 4, 2, 12288)
    assert f.firmware == "efi" and f.nested_hv is True
    assert [(n.index, n.device, n.mac, n.network) for n in f.nics] == [
        (0, "vmxnet3", "00:50:56:04:79:37", "vmnet3"), (1, "vmxnet3", "00:50:56:2b:1c:4e", "vmnet4")]
    assert [(d.controller, d.adapter, d.unit) for d in f.disks] == [("scsi0", "pvscsi", 0)]
    assert [(c.device, c.start_connected) for c in f.cdroms] == [("sata0:1", True)]
    assert f.extra_config == {"sched.mem.pshare.enable": "FALSE", "uuid.action": "create"}


def test_esx_classic_host_on_a_lan_segment(tmp_path):
    f = _facts(tmp_path, "esx35-ha-pair", "esx1")
    assert (f.guest_id, f.hw_version, f.firmware, f.nested_hv) == ("vmkernelGuest", 7, "bios", False)
    assert f.nics[0].device == "e1000" and f.nics[0].network == "ef b4 44 ec 56 2b f9 67-15 07 9c b1 80 39 f0 2c"
    assert [(d.adapter, c.device) for d, c in zip(f.disks, f.cdroms)] == [("lsilogic", "ide1:0")]
    assert f.extra_config["monitor_control.restrict_backdoor"] == "TRUE"


def test_the_other_vms(tmp_path):
    f = _facts(tmp_path, "esx35-ha-pair", "vcenter")
    assert f.guest_id == "winXPProGuest" and [(d.controller, d.adapter) for d in f.disks] == [("ide0", "ide")]


def test_network_refs_name_the_lab_networks(tmp_path):
    from labctl.topology import load_topology
    from tests.vsphere.target.conftest import TOPOLOGIES

    topo = load_topology(TOPOLOGIES / "esx35-ha-pair.yaml")
    refs = vf.network_refs(topo.networks)
    f = _facts(tmp_path, "esx35-ha-pair", "esx1")
    assert [refs[n.network] for n in f.nics] == ["lan", "storage"]  # nics: [lan, storage]


@pytest.mark.parametrize("line, message", [
    ('guestOS = "beos"', "guestOS 'beos' has no vSphere guestId"),
    ('ethernet0.virtualDev = "tulip"', "not a vSphere network adapter"),
    ('numvcpus = "four"', "numvcpus = 'four' is not a number"),
    ('scsi0.virtualDev = "nvme-ish"', "not a vSphere SCSI controller"),
])
def test_what_vsphere_cannot_express_is_an_error_naming_the_file(line, message):
    text = ('guestOS = "vmkernel8"\nethernet0.present = "TRUE"\nscsi0.present = "TRUE"\nscsi0:0.present = "TRUE"\n'
            'scsi0:0.fileName = "a.vmdk"\n')
    key = line.split(" = ")[0]
    doc = vmxlib.parse(text)
    doc.set(key, line.split(" = ")[1].strip('"'))
    with pytest.raises(vf.VmxFactsError, match=message) as e:
        vf.facts(doc, "x", where="lab/x/x.vmx: ")
    assert e.value.message.startswith("lab/x/x.vmx: ")


def test_guest_id_round_trip():
    for key in ("vmkernel", "vmkernel65", "vmkernel9", "other5xlinux-64", "winxppro"):
        assert vf.guest_os_of(vf.guest_id(key)) == key


def test_differing_compares_macs_without_case_and_absent_keys():
    cur = {"ethernet0.address": "00:50:56:AA:bb:cc", "numvcpus": "2", "guestinfo.x": "1"}
    assert vf.differing(cur, {"ethernet0.address": "00:50:56:aa:BB:CC", "numvcpus": "2"}) == []
    assert vf.differing(cur, {"guestinfo.x": None, "guestinfo.y": None, "memsize": "1"}) == ["guestinfo.x", "memsize"]
