"""The backend interface (`workstation.driver.Driver`): both Workstation backends implement all of it.

The configuration side (read_config, reconfigure, attach_media) is shared by the backends whose VMs are .vmx
files; it is checked here on the real driver (fake vmrun on PATH) and the simulated one alike.
"""

from __future__ import annotations

import inspect

import pytest

from labctl.errors import LabctlError, RefusedError
from labctl.render import vmx as vmxlib
from labctl.sim.workstation import SimDriver
from labctl.workstation.driver import Driver, VmrunDriver

from .test_disks import vdisk  # noqa: F401  (fixture)

VMX = """\
.encoding = "UTF-8"
displayName = "esx1"
memsize = "4096"   # keep this comment
scsi0.present = "TRUE"
scsi0:0.present = "TRUE"
scsi0:0.fileName = "esx1.vmdk"
sata0.present = "TRUE"
sata0:1.present = "TRUE"
sata0:1.deviceType = "cdrom-image"
sata0:1.fileName = "/isos/esxi8.iso"
sata0:1.startConnected = "TRUE"
ethernet0.present = "TRUE"
"""

OPERATIONS = {  # what issue "Layers" asks a backend for, by concern -> the interface's methods
    "create": {"create_disk"},
    "clone": {"clone", "snapshot", "list_snapshots"},
    "power": {"start", "stop", "list_running", "is_running", "guest_ip"},
    "attach media": {"attach_media"},
    "read a VM's config": {"read_config", "reconfigure"},
}


def test_the_interface_has_every_operation_and_both_backends_implement_it():
    names = {n for n, _ in inspect.getmembers(Driver, inspect.isfunction)}
    for concern, methods in OPERATIONS.items():
        assert methods <= names, f"{concern}: {methods - names} missing from Driver"
    for backend in (VmrunDriver, SimDriver):
        assert issubclass(backend, Driver) and not inspect.isabstract(backend), backend.__abstractmethods__


@pytest.fixture(params=["vmrun", "sim"])
def backend(request, tmp_path, fake_vmrun):
    if request.param == "vmrun":
        d, base = VmrunDriver.find(fake_vmrun.environ, vmware_vmx=None), tmp_path / "vms"
    else:
        d = SimDriver(tmp_path / "sim")
        d.verify()
        base = d.vms_dir
    vmx = base / "esx1" / "esx1.vmx"
    vmx.parent.mkdir(parents=True)
    vmx.write_text(VMX)
    return d, vmx


def test_reconfigure_changes_only_what_differs_and_keeps_the_rest_byte_for_byte(backend):
    d, vmx = backend
    assert d.reconfigure(vmx, {"memsize": "4096", "nosuch": None}) == []
    assert d.reconfigure(vmx, {"memsize": "8192", "ethernet0.present": None}, dry_run=True) == [
        "memsize", "ethernet0.present"]
    assert vmx.read_text() == VMX  # dry run: nothing written
    assert d.reconfigure(vmx, {"memsize": "8192", "ethernet0.present": None}) == ["memsize", "ethernet0.present"]
    text = vmx.read_text()
    assert 'memsize = "8192"   # keep this comment' in text and "ethernet0.present" not in text
    assert d.read_config(vmx).get("memsize") == "8192"
    assert d.reconfigure(vmx, {"memsize": "8192", "ethernet0.present": None}) == []  # a second run: no changes


def test_a_running_vm_is_not_reconfigured_unless_forced(backend):
    d, vmx = backend
    (vmx.parent / "esx1.vmx.lck").mkdir()  # Workstation's lock while the VM runs
    with pytest.raises(RefusedError, match="running"):
        d.reconfigure(vmx, {"memsize": "1024"})
    assert vmx.read_text() == VMX
    assert d.reconfigure(vmx, {"memsize": "1024"}, force=True) == ["memsize"]


def test_attach_media_uses_the_vms_cdrom_and_detaches_it(backend):
    d, vmx = backend
    assert d.attach_media(vmx, None) == ["sata0:1.startConnected"]
    assert d.read_config(vmx).get("sata0:1.startConnected") == "FALSE"
    assert d.attach_media(vmx, vmx.parent / "ks.iso") == ["sata0:1.fileName", "sata0:1.startConnected"]
    doc = d.read_config(vmx)
    assert doc.get("sata0:1.fileName") == str(vmx.parent / "ks.iso") and doc.get("sata0:1.deviceType") == "cdrom-image"
    assert d.attach_media(vmx, vmx.parent / "ks.iso") == []


def test_attach_media_with_a_kickstart_cd_uses_a_second_cdrom_and_boots_disk_first(backend):
    d, vmx = backend
    inst, ks = vmx.parent / "installer.iso", vmx.parent / "ks.iso"
    changed = d.attach_media(vmx, inst, kickstart=ks)
    assert set(changed) >= {"sata0:1.fileName", "sata0:2.present", "sata0:2.fileName", "sata0:2.startConnected",
                            "bios.bootOrder"}
    doc = d.read_config(vmx)
    assert (doc.get("sata0:1.fileName"), doc.get("sata0:2.fileName")) == (str(inst), str(ks))
    assert doc.get("sata0:2.deviceType") == "cdrom-image" and doc.get("bios.bootOrder") == "hdd,cdrom"
    assert d.attach_media(vmx, inst, kickstart=ks) == []  # idempotent
    # detaching leaves both devices disconnected at power-on
    assert sorted(d.attach_media(vmx, None)) == ["sata0:1.startConnected", "sata0:2.startConnected"]
    assert [c for _, _, c in d.media(vmx)] == [False, False]
    # an IDE VM (ESX classic templates): ide1:0 and ide1:1
    vmx.write_text('.encoding = "UTF-8"\ndisplayName = "esx1"\nide1:0.present = "TRUE"\n'
                   'ide1:0.deviceType = "cdrom-image"\nide1:0.fileName = "/isos/esx.iso"\n')
    d.attach_media(vmx, inst, kickstart=ks)
    assert [(dev, f) for dev, f, _ in d.media(vmx)] == [("ide1:0", str(inst)), ("ide1:1", str(ks))]


def test_attach_media_adds_a_cdrom_where_the_templates_put_one(backend):
    d, vmx = backend
    vmx.write_text('.encoding = "UTF-8"\ndisplayName = "vc"\nide0:0.present = "TRUE"\n')
    assert "ide1:0.fileName" in d.attach_media(vmx, vmx.parent / "vcsa.iso")
    doc = vmxlib.read(vmx)
    assert (doc.get("ide1:0.deviceType"), doc.get("ide1:0.startConnected")) == ("cdrom-image", "TRUE")


def test_read_config_of_a_missing_vm_says_so(backend):
    d, vmx = backend
    with pytest.raises(LabctlError, match="does not exist"):
        d.read_config(vmx.with_name("nosuch.vmx"))


def test_vmrun_backend_creates_the_disk_the_config_names_once(tmp_path, vdisk):  # noqa: F811
    environ, calls = vdisk  # a fake vmware-vdiskmanager on PATH (vmrun itself is not called)
    d = VmrunDriver(tmp_path / "no-vmrun", environ=environ, vmware_vmx=None)
    vmx = tmp_path / "vms" / "esx1" / "esx1.vmx"
    vmx.parent.mkdir(parents=True)
    vmx.write_text(VMX)
    assert d.create_disk(vmx, 40, "lsilogic") is True
    assert calls()[-1][-1] == str(vmx.parent / "esx1.vmdk") and "40GB" in calls()[-1]
    assert d.create_disk(vmx, 40, "lsilogic") is False and len(calls()) == 1


def test_simulated_backend_creates_a_growable_disk_and_only_inside_the_sim(tmp_path):
    d = SimDriver(tmp_path / "sim")
    d.verify()
    vmx = d.vmx_path("esx1")
    vmx.parent.mkdir(parents=True)
    vmx.write_text(VMX)
    assert d.create_disk(vmx, 40, "lsilogic") is True
    disk = vmx.parent / "esx1.vmdk"
    assert disk.stat().st_size == 40 * 1024**3 and disk.stat().st_blocks == 0  # nothing allocated yet
    assert d.create_disk(vmx, 40, "lsilogic") is False
    outside = tmp_path / "real" / "x.vmx"
    outside.parent.mkdir()
    outside.write_text(VMX)
    with pytest.raises(LabctlError, match="outside the simulated Workstation"):
        d.reconfigure(outside, {"memsize": "1"})
    assert outside.read_text() == VMX
