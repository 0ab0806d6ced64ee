"""A rendered .vmx as the facts a vSphere VM is created from, and a vSphere VM's configuration as .vmx keys (pure).

labctl renders every VM's .vmx locally (templates/vmx/*.vmx.j2) for every target; on vSphere the driver creates
the VM from these facts through the API instead of copying the file, so the same topology gives the same
hardware on both. Which .vmx key becomes which vSphere setting (docs/vsphere-target-vms.md has the table):

| .vmx | vSphere (`vim.vm.ConfigSpec`) |
|---|---|
| `guestOS = "vmkernel8"` | `guestId = "vmkernel8Guest"` (GUEST_IDS for the other VMs) |
| `virtualHW.version = "21"` | `version = "vmx-21"` |
| `numvcpus`, `cpuid.coresPerSocket`, `memsize` | `numCPUs`, `numCoresPerSocket`, `memoryMB` |
| `vhv.enable = "TRUE"` | `nestedHVEnabled = True` |
| `firmware = "efi"` | `firmware = "efi"` (else `bios`) |
| `ethernetN.virtualDev`, `.address` (`addressType = "static"`) | a `VirtualVmxnet3`/`VirtualE1000`/`VirtualE1000e` with `addressType = "manual"` and that MAC |
| `ethernetN.networkName` (a target lab's render) | that portgroup (standard or distributed) |
| else `ethernetN.pvnID` / `.vnet` / `connectionType` | the portgroup the driver's `portgroups` maps that network to |
| `scsi0.virtualDev = "pvscsi"` / `"lsilogic"`, `ide0:0.fileName` | a `ParaVirtualSCSIController` / `VirtualLsiLogicController` (IDE for the other VMs) with the disk |
| `sata0:N` / `ide1:N` `deviceType = "cdrom-image"`, `.fileName`, `.startConnected` | a `VirtualCdrom` on an AHCI/IDE controller, the ISO on the datastore |
| `bios.bootOrder = "hdd,cdrom"` | `bootOptions.bootOrder` (disk, then CD-ROM) |
| `guestinfo.*`, `annotation` | `extraConfig`, `annotation` |

What a .vmx says that has no meaning on vSphere (Workstation's `pciBridge*`, `msg.autoAnswer`, `nvram`, `.encoding`,
`MemTrimRate`, `prefvmx.*` ...) is not sent. `config_to_vmx` goes the other way, so a VM read back from vSphere
compares key by key with the .vmx it was created from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping

from labctl.errors import LabctlError

# Workstation guestOS keys of the VMs beside the nested hosts (vCenter, NFS, jump boxes) → vSphere guestId
# (vSphere API VirtualMachineGuestOsIdentifier; Workstation's keys as its UI writes them). vmkernel* map by rule.
GUEST_IDS: dict[str, str] = {
    "other": "otherGuest",
    "other-64": "otherGuest64",
    "otherlinux": "otherLinuxGuest",
    "otherlinux-64": "otherLinux64Guest",
    "other24xlinux": "other24xLinuxGuest",
    "other26xlinux": "other26xLinuxGuest",
    "other26xlinux-64": "other26xLinux64Guest",
    "other3xlinux": "other3xLinuxGuest",
    "other3xlinux-64": "other3xLinux64Guest",
    "other4xlinux-64": "other4xLinux64Guest",
    "other5xlinux-64": "other5xLinux64Guest",
    "other6xlinux-64": "other6xLinux64Guest",
    "debian10-64": "debian10_64Guest",
    "debian11-64": "debian11_64Guest",
    "debian12-64": "debian12_64Guest",
    "ubuntu-64": "ubuntu64Guest",
    "rhel7-64": "rhel7_64Guest",
    "rhel8-64": "rhel8_64Guest",
    "rhel9-64": "rhel9_64Guest",
    "centos-64": "centos64Guest",
    "sles-64": "sles64Guest",
    "winxppro": "winXPProGuest",
    "winnetstandard": "winNetStandardGuest",
    "winnetenterprise": "winNetEnterpriseGuest",
    "longhorn": "winLonghornGuest",
    "longhorn-64": "winLonghorn64Guest",
    "windows7srv-64": "windows7Server64Guest",
    "windows8srv-64": "windows8Server64Guest",
    "windows9srv-64": "windows9Server64Guest",
    "windows2019srv-64": "windows2019srv_64Guest",
    "windows2019srvnext-64": "windows2019srvNext_64Guest",
}
_VMKERNEL = re.compile(r"^vmkernel(\d*)$", re.IGNORECASE)
NIC_DEVICES = ("vmxnet3", "e1000", "e1000e", "vmxnet2", "vmxnet", "vlance")
SCSI_DEVICES = ("pvscsi", "lsilogic", "lsisas1068", "buslogic")
CDROM_TYPES = ("cdrom-image",)
# .vmx keys sent as extraConfig as they are (besides guestinfo.*): VMX options ESXi reads the same way
EXTRA_KEYS = ("monitor_control.restrict_backdoor", "monitor_control.vt32", "sched.mem.pshare.enable",
              "uuid.action")
# the key that marks a VM as the lab's on a standalone ESXi host (no inventory folders there)
FOLDER_KEY = "labctl.folder"


class VmxFactsError(LabctlError):
    """A .vmx says something labctl cannot express on vSphere."""


@dataclass(frozen=True)
class Nic:
    index: int
    device: str  # vmxnet3 | e1000 | e1000e ...
    mac: str | None  # static MAC, lower case; None: vSphere generates one
    network: str  # the network reference in the .vmx: the portgroup (networkName), pvnID, vnet, "nat" or "bridged"
    portgroup: str | None = None  # `ethernetN.networkName`: the portgroup, as a target lab's .vmx names it


@dataclass(frozen=True)
class Disk:
    controller: str  # "scsi0" | "ide0" | "sata0"
    adapter: str  # pvscsi | lsilogic | ide | sata
    unit: int
    file_name: str


@dataclass(frozen=True)
class Cdrom:
    device: str  # "sata0:1" | "ide1:0"
    iso: str | None  # the path in the .vmx (local before upload, "[ds] path" on vSphere)
    start_connected: bool


@dataclass(frozen=True)
class VmFacts:
    name: str
    guest_id: str
    hw_version: int
    cpus: int
    cores_per_socket: int
    memory_mb: int
    firmware: str  # "bios" | "efi"
    nested_hv: bool
    nics: tuple[Nic, ...]
    disks: tuple[Disk, ...]
    cdroms: tuple[Cdrom, ...]
    boot_order: tuple[str, ...] = ()  # ("disk", "cdrom")
    annotation: str = ""
    extra_config: Mapping[str, str] = field(default_factory=dict)


def _true(value: str | None) -> bool:
    return (value or "").strip().upper() in ("TRUE", "YES", "1")


def guest_id(guest_os: str, *, where: str = "") -> str:
    """The vSphere guestId for a .vmx guestOS key: vmkernel8 → vmkernel8Guest, other5xlinux-64 → other5xLinux64Guest."""
    m = _VMKERNEL.match(guest_os)
    if m:
        return f"vmkernel{m.group(1)}Guest"
    gid = GUEST_IDS.get(guest_os.lower())
    if gid is None:
        raise VmxFactsError(f"{where}guestOS {guest_os!r} has no vSphere guestId known to labctl",
                            hint="use one of: " + ", ".join(sorted(GUEST_IDS)) + " (or vmkernel*)")
    return gid


def guest_os_of(gid: str) -> str:
    """The inverse of `guest_id` (for reading a VM back); unknown guestIds stay as they are."""
    m = re.match(r"^vmkernel(\d*)Guest$", gid)
    if m:
        return f"vmkernel{m.group(1)}"
    for k, v in GUEST_IDS.items():
        if v == gid:
            return k
    return gid


def _int(doc: Mapping[str, str], key: str, default: int, where: str) -> int:
    raw = doc.get(key)
    if raw is None:
        return default
    try:
        return int(str(raw).strip())
    except ValueError:
        raise VmxFactsError(f"{where}{key} = {raw!r} is not a number") from None


def facts(doc, name: str, *, where: str = "") -> VmFacts:
    """The facts of a parsed .vmx (`labctl.render.vmx.VmxFile` or any case-insensitive mapping of its keys)."""
    get = doc.get
    items: list[tuple[str, str]] = list(doc.items())
    lower = {k.lower(): v for k, v in items}

    def g(key: str) -> str | None:
        return lower.get(key.lower())

    nics: list[Nic] = []
    for idx in sorted({int(m.group(1)) for k, _ in items if (m := re.match(r"^ethernet(\d+)\.present$", k, re.I))}):
        p = f"ethernet{idx}"
        if not _true(g(f"{p}.present")):
            continue
        device = (g(f"{p}.virtualDev") or "e1000").lower()
        if device not in NIC_DEVICES:
            raise VmxFactsError(f"{where}{p}.virtualDev = {device!r} is not a vSphere network adapter",
                                hint="vmxnet3, e1000 or e1000e")
        portgroup = g(f"{p}.networkName")
        conn = (g(f"{p}.connectionType") or "bridged").lower()
        network = portgroup or {"pvn": g(f"{p}.pvnID"), "custom": g(f"{p}.vnet")}.get(conn, conn) or conn
        mac = None
        if (g(f"{p}.addressType") or "").lower() == "static":
            mac = (g(f"{p}.address") or "").lower() or None
        nics.append(Nic(idx, device, mac, network, portgroup))

    disks: list[Disk] = []
    cdroms: list[Cdrom] = []
    for k, v in items:
        m = re.match(r"^((scsi|ide|sata|nvme)(\d+)):(\d+)\.present$", k, re.I)
        if not m or not _true(v):
            continue
        ctrl, bus, unit = m.group(1).lower(), m.group(2).lower(), int(m.group(4))
        dev = f"{ctrl}:{unit}"
        dtype = (g(f"{dev}.deviceType") or "").lower()
        fname = g(f"{dev}.fileName")
        if dtype in CDROM_TYPES or dtype in ("cdrom-raw", "atapi-cdrom"):
            iso = fname if dtype in CDROM_TYPES else None
            cdroms.append(Cdrom(dev, iso, _true(g(f"{dev}.startConnected")) if g(f"{dev}.startConnected") else True))
        elif fname and fname.lower().endswith(".vmdk"):
            adapter = (g(f"{ctrl}.virtualDev") or "lsilogic").lower() if bus == "scsi" else bus
            if bus == "scsi" and adapter not in SCSI_DEVICES:
                raise VmxFactsError(f"{where}{ctrl}.virtualDev = {adapter!r} is not a vSphere SCSI controller")
            disks.append(Disk(ctrl, adapter, unit, fname))
    extra = {k: v for k, v in items if k.lower().startswith("guestinfo.")}
    for key in EXTRA_KEYS:
        if g(key) is not None:
            extra[key] = g(key) or ""
    boot = tuple({"hdd": "disk", "cdrom": "cdrom", "ethernet": "ethernet", "floppy": "floppy"}.get(b.strip(), b.strip())
                 for b in (g("bios.bootOrder") or "").lower().split(",") if b.strip())
    cpus = _int(lower, "numvcpus", 1, where)
    return VmFacts(
        name=name,
        guest_id=guest_id(get("guestOS") or g("guestos") or "other", where=where),
        hw_version=_int(lower, "virtualhw.version", 0, where),
        cpus=cpus,
        cores_per_socket=_int(lower, "cpuid.corespersocket", 1, where),
        memory_mb=_int(lower, "memsize", 256, where),
        firmware="efi" if (g("firmware") or "").lower() == "efi" else "bios",
        nested_hv=_true(g("vhv.enable")),
        nics=tuple(nics),
        disks=tuple(sorted(disks, key=lambda d: (d.controller, d.unit))),
        cdroms=tuple(sorted(cdroms, key=lambda c: c.device)),
        boot_order=boot,
        annotation=g("annotation") or "",
        extra_config=extra,
    )


def network_refs(networks: Iterable) -> dict[str, str]:
    """How a rendered .vmx refers to each lab network (templates/vmx/_nics.vmx.j2) → the network's name."""
    out: dict[str, str] = {}
    for n in networks:
        if n.type == "lan-segment" and n.pvn_id:
            out[n.pvn_id] = n.name
        elif n.type in ("nat", "bridged"):
            out[n.type] = n.name
        elif n.vmnet is not None:
            out[f"vmnet{n.vmnet}"] = n.name
    return out


def facts_to_vmx(f: VmFacts, network_name: Callable[[str], str] | None = None) -> dict[str, str]:
    """The .vmx keys these facts stand for, as the driver reads a vSphere VM back (`ethernetN.networkName`: the
    portgroup `network_name` gives for the NIC's network; left out without it)."""
    out: dict[str, str] = {
        "displayName": f.name,
        "guestOS": guest_os_of(f.guest_id),
        "numvcpus": str(f.cpus),
        "memsize": str(f.memory_mb),
    }
    if f.hw_version:
        out["virtualHW.version"] = str(f.hw_version)
    if f.cores_per_socket != 1:
        out["cpuid.coresPerSocket"] = str(f.cores_per_socket)
    if f.firmware == "efi":
        out["firmware"] = "efi"
    if f.nested_hv:
        out["vhv.enable"] = "TRUE"
    if f.annotation:
        out["annotation"] = f.annotation
    for n in f.nics:
        p = f"ethernet{n.index}"
        out[f"{p}.present"] = "TRUE"
        out[f"{p}.virtualDev"] = n.device
        if n.mac:
            out[f"{p}.addressType"] = "static"
            out[f"{p}.address"] = n.mac
        if n.portgroup or network_name is not None:
            out[f"{p}.networkName"] = n.portgroup or network_name(n.network)
    for d in f.disks:
        if d.adapter not in ("ide", "sata"):
            out[f"{d.controller}.present"] = "TRUE"
            out[f"{d.controller}.virtualDev"] = d.adapter
        out[f"{d.controller}:{d.unit}.present"] = "TRUE"
        out[f"{d.controller}:{d.unit}.fileName"] = d.file_name
    for c in f.cdroms:
        if c.device.startswith("sata"):
            out[c.device.split(":")[0] + ".present"] = "TRUE"
        out[f"{c.device}.present"] = "TRUE"
        out[f"{c.device}.deviceType"] = "cdrom-image" if c.iso is not None else "atapi-cdrom"
        if c.iso is not None:
            out[f"{c.device}.fileName"] = c.iso
        out[f"{c.device}.startConnected"] = "TRUE" if c.start_connected else "FALSE"
    if f.boot_order:
        out["bios.bootOrder"] = ",".join({"disk": "hdd"}.get(b, b) for b in f.boot_order)
    out.update(f.extra_config)
    return out


def differing(current: Mapping[str, str], wanted: Mapping[str, str | None]) -> list[str]:
    """The keys of `wanted` that differ from `current` (None: the key must be absent); keys compare case-insensitively."""
    cur = {k.lower(): v for k, v in current.items()}
    todo = []
    for k, v in wanted.items():
        have = cur.get(k.lower())
        if v is None:
            if have is not None:
                todo.append(k)
        elif k.lower().endswith(".address") and have is not None:
            if have.lower() != v.lower():
                todo.append(k)
        elif have != v:
            todo.append(k)
    return todo


def split_keys(keys: Iterable[str]) -> tuple[list[str], list[str]]:
    """Keys a ReconfigVM_Task sets as hardware (spec fields, devices) vs as extraConfig."""
    hardware, extra = [], []
    for k in keys:
        kl = k.lower()
        if (kl in ("numvcpus", "memsize", "cpuid.corespersocket", "vhv.enable", "firmware", "annotation",
                   "displayname", "guestos", "bios.bootorder")
                or re.match(r"^ethernet\d+\.", kl) or re.match(r"^(scsi|ide|sata)\d+(:\d+)?\.", kl)):
            hardware.append(k)
        else:
            extra.append(k)
    return hardware, extra
