"""pyVmomi helpers for the simulated vSphere target's tests: what a vSphere client (labctl's backend, govc) does
to the physical side, written out with the plain API so the harness is tested against the calls, not against
labctl's own driver."""

from __future__ import annotations

import time
import urllib.parse
import urllib.request
from pathlib import Path


def connect(tsim):
    from pyVim.connect import SmartConnect

    u = urllib.parse.urlsplit(tsim.url)
    return SmartConnect(host=u.hostname, port=u.port, user=tsim.user, pwd=tsim.password, protocol="http")


def wait(task, timeout: float = 30.0):
    from pyVmomi import vim

    deadline = time.monotonic() + timeout
    while task.info.state not in (vim.TaskInfo.State.success, vim.TaskInfo.State.error):
        if time.monotonic() > deadline:
            raise TimeoutError(task)
        time.sleep(0.02)
    if task.info.state == vim.TaskInfo.State.error:
        raise task.info.error
    return task.info.result


def placement(si):
    """(datacenter, vm folder, resource pool, host, datastore) of the model's first compute resource."""
    content = si.RetrieveContent()
    dc = content.rootFolder.childEntity[0]
    cr = dc.hostFolder.childEntity[0]
    return dc, dc.vmFolder, cr.resourcePool, cr.host[0], dc.datastore[0]


def nic_spec(mac: str | None, key: int, network: str = "VM Network"):
    from pyVmomi import vim

    nic = vim.vm.device.VirtualVmxnet3(key=key)
    nic.backing = vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=network)
    nic.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, connected=False)
    if mac:
        nic.addressType, nic.macAddress = "manual", mac
    else:
        nic.addressType = "generated"
    return vim.vm.device.VirtualDeviceSpec(operation="add", device=nic)


def create_vm(si, name: str, *, guest_id: str = "vmkernel8Guest", macs=("00:50:56:3f:00:01",), isos=(),
              extra: dict[str, str] | None = None, firmware: str = "efi", folder=None):
    """A nested ESXi VM as labctl would make it: vmxnet3 NICs with manual MACs, a pvscsi disk, SATA CD-ROMs with
    the given datastore paths (`[ds] path`), boot order disk then CD, extraConfig."""
    from pyVmomi import vim

    dc, vmfolder, pool, host, ds = placement(si)
    devs = []
    scsi = vim.vm.device.ParaVirtualSCSIController(key=1000, busNumber=0, sharedBus="noSharing")
    devs.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=scsi))
    disk = vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=4 * 1024 * 1024)
    disk.backing = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True,
                                                                 fileName="")
    devs.append(vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk))
    sata = vim.vm.device.VirtualAHCIController(key=15000, busNumber=0)
    devs.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=sata))
    for i, iso in enumerate(isos):
        cd = vim.vm.device.VirtualCdrom(key=16000 + i, controllerKey=15000, unitNumber=1 + i)
        cd.backing = vim.vm.device.VirtualCdrom.IsoBackingInfo(fileName=iso)
        cd.connectable = vim.vm.device.VirtualDevice.ConnectInfo(startConnected=True, connected=False)
        devs.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=cd))
    for i, mac in enumerate(macs):
        devs.append(nic_spec(mac, 4000 + i))
    spec = vim.vm.ConfigSpec(name=name, guestId=guest_id, numCPUs=2, memoryMB=4096, firmware=firmware,
                             files=vim.vm.FileInfo(vmPathName=f"[{ds.name}]"), deviceChange=devs,
                             nestedHVEnabled=True,
                             bootOptions=vim.vm.BootOptions(bootOrder=[
                                 vim.vm.BootOptions.BootableDiskDevice(deviceKey=2000),
                                 vim.vm.BootOptions.BootableCdromDevice()]),
                             extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in (extra or {}).items()])
    return wait((folder or vmfolder).CreateVM_Task(config=spec, pool=pool, host=host))


def upload(tsim, si, local: Path, ds_path: str) -> str:
    """PUT a file to the first datastore (the /folder endpoint govc datastore.upload and pyVmomi users use)."""
    dc, _, _, _, ds = placement(si)
    u = urllib.parse.urlsplit(tsim.url)
    q = urllib.parse.urlencode({"dcPath": dc.name, "dsName": ds.name})
    url = f"http://{u.hostname}:{u.port}/folder/{urllib.parse.quote(ds_path)}?{q}"
    req = urllib.request.Request(url, data=Path(local).read_bytes(), method="PUT")
    with urllib.request.urlopen(req, timeout=30):
        pass
    return f"[{ds.name}] {ds_path}"


def until(pred, timeout: float = 20.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def host_linked_clone(si, src, snap, name: str):
    """A linked clone made the only way a standalone host allows: CreateVM_Task with a new disk whose backing's
    parent is the snapshot's disk (what labctl's driver does on ESXi; `govc vm.create` cannot, but the API can)."""
    from pyVmomi import vim

    _, vmfolder, pool, host, ds = placement(si)
    cfg = snap.config
    devs = []
    for d in cfg.hardware.device:
        if isinstance(d, vim.vm.device.ParaVirtualSCSIController):
            devs.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=vim.vm.device.ParaVirtualSCSIController(
                key=1000, busNumber=0, sharedBus="noSharing")))
    for d in cfg.hardware.device:
        if isinstance(d, vim.vm.device.VirtualDisk):
            child = vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", fileName="",
                                                                  thinProvisioned=True, parent=d.backing)
            disk = vim.vm.device.VirtualDisk(key=2000, controllerKey=1000, unitNumber=0, capacityInKB=d.capacityInKB,
                                             backing=child)
            devs.append(vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk))
    spec = vim.vm.ConfigSpec(name=name, guestId=cfg.guestId, numCPUs=2, memoryMB=4096,
                             files=vim.vm.FileInfo(vmPathName=f"[{ds.name}]"), deviceChange=devs)
    return wait(vmfolder.CreateVM_Task(config=spec, pool=pool, host=host))
