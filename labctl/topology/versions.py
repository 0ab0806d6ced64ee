"""What labctl knows about ESX/ESXi releases and Workstation releases (workstation.md sections 2–4)."""

from __future__ import annotations

import re
from dataclasses import dataclass

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\s*u(\d+))?$", re.IGNORECASE)

# ESX classic (service console) exists only as 3.5, 4.0 and 4.1; ESXi from 3.5 to 8.0.
SUPPORTED = {
    "esx": [(3, 5), (4, 0), (4, 1)],
    "esxi": [(3, 5), (4, 0), (4, 1), (5, 0), (5, 1), (5, 5), (6, 0), (6, 5), (6, 7), (7, 0), (8, 0)],
}


@dataclass(frozen=True)
class EsxVersion:
    major: int
    minor: int
    update: int = 0

    @property
    def release(self) -> tuple[int, int]:
        return (self.major, self.minor)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}" + (f"u{self.update}" if self.update else "")


def parse_esx_version(text: str) -> EsxVersion | None:
    m = _VERSION_RE.match(str(text).strip())
    if not m:
        return None
    return EsxVersion(int(m.group(1)), int(m.group(2)), int(m.group(3) or 0))


def supported_list(flavor: str) -> str:
    return ", ".join(f"{a}.{b}" for a, b in SUPPORTED.get(flavor, []))


@dataclass(frozen=True)
class Minimums:
    cpus: int
    memory_mb: int
    disk_gb: int
    why: str


def minimums(flavor: str, v: EsxVersion) -> Minimums:
    """Installer minimums (the installer refuses to run below these)."""
    r = v.release
    if flavor == "esx" and r == (3, 5):
        return Minimums(1, 1024, 8, "ESX 3.5 needs 1 GB of memory and an 8 GB disk for the service console")
    if r < (5, 0):
        return Minimums(2, 2048, 8, f"{flavor.upper()} 4.x needs 2 CPUs and 2 GB of memory")
    if r < (6, 0):
        return Minimums(2, 2048, 4, "ESXi 5.x needs 2 CPUs and 2 GB of memory")
    if r < (7, 0):
        return Minimums(2, 4096, 4, "ESXi 6.x needs 2 CPUs and 4 GB of memory")
    if r < (8, 0):
        return Minimums(2, 4096, 8, "ESXi 7.0 needs 2 CPUs, 4 GB of memory and an 8 GB boot disk (32 GB recommended)")
    return Minimums(2, 8192, 8, "ESXi 8.0 needs 2 CPUs, 8 GB of memory and an 8 GB boot disk (32 GB recommended)")


def guest_os(flavor: str, v: EsxVersion) -> str:
    """The .vmx guestOS key (open-vm-tools guest_os_tables.h)."""
    r = v.release
    if r < (5, 0):
        return "vmkernel"  # ESX 4.x; ESX 3.5 has no key of its own, period guides used vmkernel [L]
    if r < (6, 0):
        return "vmkernel5"
    if r == (6, 0):
        return "vmkernel6"
    if r < (7, 0):
        return "vmkernel65"
    if r < (8, 0):
        return "vmkernel7"
    return "vmkernel8"


def template_era(flavor: str, v: EsxVersion) -> str:
    """Which template family renders this host: esx-classic, esxi-legacy (4–6.x), esxi-modern (7–8)."""
    if flavor == "esx" or v.release < (4, 0):
        return "esx-classic"
    if v.release < (7, 0):
        return "esxi-legacy"
    return "esxi-modern"


def nic_device(flavor: str, v: EsxVersion) -> str:
    return "vmxnet3" if v.release >= (7, 0) else "e1000"


def scsi_device(flavor: str, v: EsxVersion) -> str:
    return "pvscsi" if v.release >= (6, 5) else "lsilogic"


def is_64bit_only(flavor: str, v: EsxVersion) -> bool:
    return v.release >= (4, 0)


# --- Workstation -----------------------------------------------------------------------------------------------

_WS_RE = re.compile(r"^(\d+)(?:\.(\d+))?(?:\.\d+)*$")


def parse_ws_version(text: str) -> tuple[int, int] | None:
    m = _WS_RE.match(str(text).strip())
    if not m:
        return None
    return int(m.group(1)), int(m.group(2) or 0)


def hw_version(ws: tuple[int, int]) -> int | None:
    """virtualHW.version written by a Workstation release (workstation.md section 2)."""
    major, minor = ws
    if major < 6:
        return None
    if major == 6:
        return 6 if minor < 5 else 7
    if major == 7:
        return 7
    if 8 <= major <= 12:
        return major
    if major == 13:
        return None  # there is no Workstation 13
    if major == 14:
        return 14
    if major == 15:
        return 16
    if major == 16:
        return 19 if minor >= 2 else 18
    if major == 17:
        return 21 if minor >= 5 else 20
    return 21  # newer releases still open hw 21 VMs; labctl has not been told about a newer default


def has_vhv(ws: tuple[int, int]) -> bool:
    """Workstation 8+ can expose VT-x/AMD-V to the guest (vhv.enable)."""
    return ws[0] >= 8


def guest_support_problem(flavor: str, v: EsxVersion, ws: tuple[int, int]) -> tuple[str, str] | None:
    """(severity, reason) when this Workstation release cannot (or may not) run this ESX release."""
    label = f"{'ESX' if flavor == 'esx' else 'ESXi'} {v}"
    if ws < (6, 5) and v.release != (3, 5):
        return ("error", f"{label} needs Workstation 6.5 or later (the first release that runs ESX as a guest)")
    if v.release >= (5, 0) and not has_vhv(ws):
        return ("error", f"64-bit {label} needs nested virtualization (vhv.enable), which Workstation {ws[0]}.{ws[1]} "
                         "does not have: use Workstation 8 or later")
    if v.release >= (8, 0) and ws < (16, 2):
        return ("warning", f"Workstation {ws[0]}.{ws[1]} has no guestOS for {label} (vmkernel8 came with 16.2/17); "
                           "the installer may refuse the virtual hardware")
    if v.release >= (7, 0) and ws < (15, 5):
        return ("warning", f"Workstation {ws[0]}.{ws[1]} has no guestOS for {label} (vmkernel7 came with 15.5); "
                           "use Workstation 15.5 or later")
    if v.release >= (6, 5) and ws < (12, 0):
        return ("warning", f"{label} wants virtual hardware 11+ (Workstation 12 or later)")
    return None
