"""Clone settings on a copied .vmx, and the snapshot-then-clone-then-configure step with the fake vmrun."""

from __future__ import annotations

from labctl.render import vmx as vmxlib
from labctl.workstation import clonecfg
from labctl.workstation.clonecfg import CloneSettings, NicSetting
from labctl.workstation.driver import VmrunDriver

PARENT = """\
.encoding = "UTF-8"
# golden ESX 3.5 host
displayName = "esx1"
memsize = "2048"
ethernet0.present = "TRUE"
ethernet0.connectionType = "custom"
ethernet0.vnet = "vmnet2"   # management
ethernet0.addressType = "static"
ethernet0.address = "00:50:56:01:00:01"
ethernet1.present = "TRUE"
ethernet1.connectionType = "pvn"
ethernet1.pvnID = "52 8c 98 ed 46 f0 ae 00-28 76 d2 99 3a 4d 1c 60"
ethernet1.addressType = "generated"
ethernet1.generatedAddress = "00:0c:29:aa:bb:cc"
ethernet1.generatedAddressOffset = "10"
uuid.location = "56 4d ef 2d 3f d4 14 e2-2e 04 c5 34 3a ec ee 65"
"""

SETTINGS = CloneSettings(
    "esx2",
    (
        NicSetting(0, "00:50:56:01:00:02", "custom", vnet="vmnet2"),
        NicSetting(1, "00:50:56:01:01:02", "pvn", pvn_id="52 8c 98 ed 46 f0 ae 00-28 76 d2 99 3a 4d 1c 60"),
    ),
)


def test_apply_keeps_comments_and_sets_macs():
    out = clonecfg.apply_to_vmx_text(PARENT, SETTINGS).decode()
    doc = vmxlib.parse(out)
    assert doc["displayName"] == "esx2"
    assert doc["uuid.action"] == "create" and doc["msg.autoAnswer"] == "TRUE"
    assert doc["ethernet0.address"] == "00:50:56:01:00:02"
    assert doc["ethernet1.addressType"] == "static" and doc["ethernet1.address"] == "00:50:56:01:01:02"
    assert "ethernet1.generatedAddress" not in doc and "ethernet1.generatedAddressOffset" not in doc
    assert "# golden ESX 3.5 host" in out and 'ethernet0.vnet = "vmnet2"   # management' in out
    # idempotent
    assert clonecfg.apply_to_vmx_text(out, SETTINGS).decode() == out
    assert clonecfg.needs_update(out, SETTINGS) == []
    assert "ethernet0.address" in clonecfg.needs_update(PARENT, SETTINGS)


def test_ensure_linked_clone_with_fake_vmrun(fake_vmrun, tmp_path):
    d = VmrunDriver.find(fake_vmrun.environ, vmware_vmx=None)
    parent = tmp_path / "lab" / "esx1" / "esx1.vmx"
    parent.parent.mkdir(parents=True)
    parent.write_text(PARENT)
    clone = tmp_path / "lab" / "esx2" / "esx2.vmx"
    done = clonecfg.ensure_linked_clone(d, parent, clone, snapshot="base", settings=SETTINGS)
    assert len(done) == 3 and done[0].startswith("snapshot 'base'")
    cmds = [c[2] for c in fake_vmrun.calls()]
    assert cmds == ["listSnapshots", "snapshot", "clone"]
    doc = vmxlib.read(clone)
    assert doc["ethernet0.address"] == "00:50:56:01:00:02" and doc["uuid.action"] == "create"
    assert f'cloneOf0 = "{parent}"' in clone.with_suffix(".vmsd").read_text()
    # second run: nothing to do, no vmrun call that changes anything
    assert clonecfg.ensure_linked_clone(d, parent, clone, snapshot="base", settings=SETTINGS) == []
    assert [c[2] for c in fake_vmrun.calls()] == cmds


def test_topology_adapter():
    from labctl.topology.model import Network

    assert clonecfg.nic_connection(Network("lan", "lan-segment", None, None, None, None, False, "52 aa")) == (
        "pvn",
        None,
        "52 aa",
    )
    assert clonecfg.nic_connection(Network("m", "host-only", "10.0.0.0/24", None, 2, None, False, None)) == (
        "custom",
        "vmnet2",
        None,
    )
    assert clonecfg.nic_connection(Network("n", "nat", None, None, None, None, True, None))[0] == "nat"


def test_running_clone_is_not_rewritten(tmp_path):
    import pytest

    from labctl.errors import RefusedError

    vmx = tmp_path / "esx2" / "esx2.vmx"
    vmx.parent.mkdir()
    vmx.write_text(PARENT)
    (tmp_path / "esx2" / "esx2.vmx.lck").mkdir()
    with pytest.raises(RefusedError, match="running"):
        clonecfg.apply_to_vmx(vmx, SETTINGS)
    assert vmx.read_text() == PARENT
