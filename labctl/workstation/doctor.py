"""The machine checks behind `labctl doctor`: each check has a status, whether it blocks the lab, and a fix.

Everything the checks read is an input (`DoctorInputs`: environment, /proc, /dev, /etc/vmware, vmware-vmx,
the VMs' user), so tests run them against temporary directories. What a lab needs comes from the topology
through `lab_needs(topology)`; the checks themselves take plain values.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.workstation import networking as nw
from labctl.workstation import vmnet

if TYPE_CHECKING:
    from labctl.topology.model import Topology

OK, WARN, FAIL, SKIP = "ok", "warn", "fail", "skip"
RECOMMENDED_SWAPPINESS = 40  # the 2010 lab ran a 3-VM team with 40 to keep it off swap


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail | skip
    detail: str
    fix: str | None = None
    blocking: bool = False  # a failed blocking check makes doctor exit 1

    @property
    def blocks(self) -> bool:
        return self.status == FAIL and self.blocking

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "status": self.status,
            "blocking": self.blocking,
            "detail": self.detail,
            "fix": self.fix,
        }


@dataclass
class DoctorInputs:
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    proc_dir: Path = Path("/proc")
    dev_dir: Path = Path("/dev")
    etc_dir: Path = Path("/etc/vmware")
    vmware_vmx: Path | None = Path("/usr/lib/vmware/bin/vmware-vmx")
    user: vmnet.Identity | None = None
    preferences: Path | None = None  # the VMs' user's ~/.vmware/preferences (None: not read)


@dataclass(frozen=True)
class LabNeeds:
    lab: str
    source: str  # the topology file as the user named it (for fix commands)
    memory_mb: int
    disk_gb: int
    vm_count: int
    vm_dir: Path
    vnets: tuple[nw.LabVnet, ...]
    workstation_version: tuple[int, int] | None
    needs_vt: bool  # ESXi / ESX 4+ (64-bit vmkernel); ESX 3.x alone can run with binary translation
    isos: tuple[tuple[str, str], ...] = ()  # (VM, ISO path) for VMs installed from media (not linked clones)


def lab_needs(topology: Topology, source: str) -> LabNeeds:
    vms = (*topology.esx_hosts, *topology.vms)
    needs_vt = any(h.flavor == "esxi" or h.version_info.major >= 4 for h in topology.esx_hosts)
    return LabNeeds(
        lab=topology.lab,
        source=source,
        memory_mb=sum(v.memory_mb for v in vms),
        disk_gb=sum(v.disk_gb for v in vms),
        vm_count=len(vms),
        vm_dir=topology.workstation.vm_dir,
        vnets=tuple(nw.lab_vnets(topology)),
        workstation_version=tuple(topology.workstation.version_info),
        needs_vt=needs_vt,
        isos=tuple((v.name, v.iso) for v in vms if v.iso and not getattr(v, "linked_clone_of", None)),
    )


# ---- individual checks ---------------------------------------------------------------------------------------
def check_vmrun(inp: DoctorInputs, needs: LabNeeds | None) -> list[Check]:
    from labctl.workstation.driver import VmrunDriver, find_vmrun

    path = find_vmrun(inp.environ)
    sim = f"labctl up {needs.source} --sim" if needs else "labctl up FILE --sim"
    if path is None:
        return [
            Check(
                "vmrun",
                FAIL,
                "vmrun not found (PATH, /usr/bin/vmrun, Windows registry)",
                f"install VMware Workstation (vmrun comes with it), or try the pipeline with `{sim}`",
                True,
            )
        ]
    checks = [Check("vmrun", OK, str(path))]
    version = VmrunDriver(path, environ=inp.environ, vmware_vmx=inp.vmware_vmx).version()
    if version is None:
        checks.append(
            Check(
                "workstation-version",
                WARN,
                f"cannot tell the version ({inp.vmware_vmx} -v gave none)",
                "check Help > About in Workstation",
            )
        )
        return checks
    parts = tuple(int(x) for x in version.version.split(".")[:2])
    want = needs.workstation_version if needs else None
    if want and parts < tuple(want):
        checks.append(
            Check(
                "workstation-version",
                FAIL,
                f"{version}; the topology targets Workstation {want[0]}.{want[1]} (its hardware version is newer "
                "than this Workstation opens)",
                f"lower workstation.version in {needs.source} to {parts[0]}.{parts[1] if len(parts) > 1 else 0}, "
                "or upgrade Workstation",
                True,
            )
        )
    else:
        checks.append(Check("workstation-version", OK, str(version)))
    return checks


def cpu_flags(proc_dir: Path) -> set[str]:
    flags: set[str] = set()
    try:
        text = (proc_dir / "cpuinfo").read_text(errors="replace")
    except OSError:
        return flags
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            flags.update(value.split())
    return flags


def check_virtualization(inp: DoctorInputs, needs: LabNeeds | None) -> Check:
    flags = cpu_flags(inp.proc_dir)
    if not flags:
        return Check(
            "virtualization",
            WARN,
            f"cannot read CPU flags from {inp.proc_dir / 'cpuinfo'}",
            "grep -wE 'vmx|svm' /proc/cpuinfo",
        )
    have = sorted(flags & {"vmx", "svm"})
    if have:
        kind = "Intel VT-x" if "vmx" in have else "AMD-V"
        return Check("virtualization", OK, f"{kind} ({'/'.join(have)} flag) exposed to this host")
    blocking = needs is None or needs.needs_vt
    why = (
        "nested ESXi needs it (vhv.enable)"
        if blocking
        else "ESX 3.x runs without it, but 64-bit inner VMs do not"
    )
    return Check(
        "virtualization",
        FAIL if blocking else WARN,
        f"no vmx/svm flag in {inp.proc_dir / 'cpuinfo'}: hardware virtualization is off or hidden; {why}",
        "enable Intel VT-x / AMD-V in the firmware setup (if this host is itself a VM: expose "
        "hardware-assisted virtualization to it)",
        blocking,
    )


def check_vmnet_permissions(inp: DoctorInputs, needs: LabNeeds | None) -> Check:
    who = inp.user or vmnet.current_identity(inp.environ)
    report = vmnet.check(inp.dev_dir, who)
    if not report.nodes:
        return Check(
            "vmnet-permissions",
            FAIL,
            f"no /dev/vmnet* nodes in {inp.dev_dir}: VMware's networks are down",
            "sudo vmware-networks --start",
            True,
        )
    bad = [n for n in report.nodes if not n.ok]
    if not bad:
        note = " (as root; use --user for the VMs' user)" if who.is_root else ""
        return Check(
            "vmnet-permissions", OK, f"{who.name} can open all {len(report.nodes)} vmnet node(s){note}"
        )
    names = ", ".join(n.path.name for n in bad)
    return Check(
        "vmnet-permissions",
        FAIL,
        f'{who.name} cannot open {names} read/write: nested ESX gets "{vmnet.PROMISC_REFUSAL}"',
        "sudo labctl vmnet fix --group vmware --persist  (and: sudo usermod -aG vmware " + who.name + ")",
        True,
    )


def check_lab_vnets(inp: DoctorInputs, needs: LabNeeds) -> list[Check]:
    host = nw.read_host_networking(inp.etc_dir)
    fix = f"sudo labctl vmnet networks {needs.source} --apply-network"
    if not needs.vnets:
        return [Check("vmnets", OK, "the topology uses no host-only vmnet")]
    out = []
    for lv in needs.vnets:
        name = f"vmnet{lv.number}"
        want_cidr = nw.Vnet(lv.number, "host-only", lv.subnet, lv.netmask, False, False, None).cidr
        if lv.number not in host.vnets:
            where = host.path if host.exists else f"{host.path} (missing)"
            out.append(
                Check(
                    name, FAIL, f"not configured in {where}; the lab needs host-only {want_cidr}", fix, True
                )
            )
            continue
        v = host.vnets[lv.number]
        problems = []
        if v.kind in ("bridged", "nat"):
            problems.append(f"is {v.kind} on this machine")
        if v.cidr != want_cidr:
            problems.append(f"subnet {v.cidr or 'unset'}, the lab needs {want_cidr}")
        if v.dhcp != lv.dhcp:
            problems.append(
                f"DHCP {'on' if v.dhcp else 'off'}, the lab needs it {'on' if lv.dhcp else 'off'}"
            )
        if v.virtual_adapter != lv.host_adapter:
            problems.append(
                "has a host adapter the lab does not use"
                if v.virtual_adapter
                else "has no host adapter, but the topology gives the host an IP on it"
            )
        if problems:
            fx = "pick another vmnet in the topology" if v.kind in ("bridged", "nat") else fix
            out.append(Check(name, FAIL, "; ".join(problems), fx, True))
        else:
            out.append(Check(name, OK, f"{v.kind} {v.cidr}, DHCP {'on' if v.dhcp else 'off'}"))
    return out


def meminfo(proc_dir: Path) -> dict[str, int]:
    """/proc/meminfo in kB."""
    out: dict[str, int] = {}
    try:
        text = (proc_dir / "meminfo").read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if parts and parts[0].isdigit():
            out[key.strip()] = int(parts[0])
    return out


def check_memory(inp: DoctorInputs, needs: LabNeeds | None) -> Check:
    info = meminfo(inp.proc_dir)
    total, avail = info.get("MemTotal"), info.get("MemAvailable", info.get("MemFree"))
    if total is None or avail is None:
        return Check("memory", WARN, f"cannot read {inp.proc_dir / 'meminfo'}")
    total_mb, avail_mb = total // 1024, avail // 1024
    if needs is None:
        return Check("memory", OK, f"{avail_mb} MB available of {total_mb} MB")
    need = needs.memory_mb
    if need > total_mb:
        return Check(
            "memory",
            FAIL,
            f"the lab's {needs.vm_count} VMs need {need} MB; this machine has {total_mb} MB",
            f"lower memory_mb in {needs.source}, or run fewer VMs at once",
            True,
        )
    if need > avail_mb:
        return Check(
            "memory",
            WARN,
            f"the lab needs {need} MB, {avail_mb} MB available now (of {total_mb} MB): the host will swap",
            "close other VMs and programs before `labctl up`",
        )
    return Check("memory", OK, f"the lab needs {need} MB, {avail_mb} MB available (of {total_mb} MB)")


def _existing_ancestor(p: Path) -> Path:
    p = Path(os.path.abspath(p))
    while not p.exists() and p != p.parent:
        p = p.parent
    return p


def check_disk(inp: DoctorInputs, needs: LabNeeds | None) -> Check | None:
    if needs is None:
        return None
    where = _existing_ancestor(needs.vm_dir)
    try:
        free_gb = shutil.disk_usage(where).free / 2**30
    except OSError as e:
        return Check("disk", WARN, f"cannot stat {where}: {e}")
    if not where.is_dir():
        return Check(
            "disk",
            FAIL,
            f"{where} is a file, so vm_dir {needs.vm_dir} cannot be created",
            f"move {where} away or change workstation.vm_dir in {needs.source}",
            True,
        )
    if not os.access(where, os.W_OK | os.X_OK):
        return Check(
            "disk",
            FAIL,
            f"{where} is not writable by this user: the lab's VMs go to {needs.vm_dir}",
            f"create it as your user (mkdir -p {needs.vm_dir}) or change workstation.vm_dir in "
            f"{needs.source}",
            True,
        )
    need = needs.disk_gb
    detail = f"{free_gb:.1f} GB free at {where} (vm_dir {needs.vm_dir}); the lab's disks total {need} GB"
    if free_gb < need:
        return Check(
            "disk",
            WARN,
            detail + " (growable disks and linked clones start smaller, but can fill it)",
            f"free space under {where} or move vm_dir in {needs.source}",
        )
    return Check("disk", OK, detail)


def check_isos(inp: DoctorInputs, needs: LabNeeds | None) -> Check | None:
    """Install media of the VMs that are not linked clones (a VM that is already installed does not need it)."""
    if needs is None or not needs.isos:
        return None
    missing = [(vm, iso) for vm, iso in needs.isos if not Path(iso).is_file()]
    if not missing:
        return Check("install-media", OK, f"{len(needs.isos)} ISO reference(s) present")
    listed = ", ".join(f"{vm}: {iso}" for vm, iso in missing)
    return Check(
        "install-media",
        WARN,
        f"missing ISO(s) — {listed}; needed only to install these VMs",
        f"download the ISOs or fix the iso: paths in {needs.source}",
    )


def check_swappiness(inp: DoctorInputs, needs: LabNeeds | None) -> Check:
    path = inp.proc_dir / "sys" / "vm" / "swappiness"
    try:
        value = int(path.read_text().strip())
    except (OSError, ValueError):
        return Check("swappiness", SKIP, f"cannot read {path}")
    fix = (
        f"sudo sysctl vm.swappiness={RECOMMENDED_SWAPPINESS}; to keep it: echo 'vm.swappiness = "
        f"{RECOMMENDED_SWAPPINESS}' | sudo tee /etc/sysctl.d/90-labctl.conf"
    )
    if value > RECOMMENDED_SWAPPINESS:
        return Check(
            "swappiness",
            WARN,
            f"vm.swappiness = {value}; a team of nested ESX VMs stays off swap better "
            f"at {RECOMMENDED_SWAPPINESS} or lower (the 2010 lab ran with 40)",
            fix,
        )
    return Check("swappiness", OK, f"vm.swappiness = {value}")


# Host-wide settings for a team of nested VMs (workstation.md section 8, Arch Wiki citing KB 1008885) [M].
HOST_TUNING = {
    "prefvmx.minVmMemPct": "100",
    "mainMem.partialLazySave": "FALSE",
    "mainMem.partialLazyRestore": "FALSE",
}


def check_host_tuning(inp: DoctorInputs, needs: LabNeeds | None) -> Check:
    """Keep the VMs' memory in RAM: read /etc/vmware/config and the user's preferences (either may set a key)."""
    from labctl.render import vmx as vmxlib

    found: dict[str, str] = {}
    for path in (inp.etc_dir / "config", inp.preferences):
        if path is None:
            continue
        try:
            doc = vmxlib.parse(Path(path).read_bytes())
        except OSError:
            continue
        for key in HOST_TUNING:
            value = doc.get(key)
            if value is not None:
                found[key] = value
    missing = {k: v for k, v in HOST_TUNING.items() if (found.get(k) or "").upper() != v.upper()}
    if not missing:
        return Check("host-tuning", OK, ", ".join(f"{k} = {v}" for k, v in HOST_TUNING.items()))
    lines = "; ".join(f'{k} = "{v}"' for k, v in missing.items())
    return Check(
        "host-tuning",
        WARN,
        f"{', '.join(missing)} not set: Workstation may page the nested hosts' memory to disk",
        f"add to {inp.etc_dir / 'config'} (as root): {lines}",
    )


def run_checks(inp: DoctorInputs, needs: LabNeeds | None = None) -> list[Check]:
    checks: list[Check] = []
    checks += check_vmrun(inp, needs)
    checks.append(check_virtualization(inp, needs))
    checks.append(check_vmnet_permissions(inp, needs))
    if needs is not None:
        checks += check_lab_vnets(inp, needs)
    checks.append(check_memory(inp, needs))
    for extra in (check_disk(inp, needs), check_isos(inp, needs)):
        if extra is not None:
            checks.append(extra)
    checks.append(check_swappiness(inp, needs))
    checks.append(check_host_tuning(inp, needs))
    return checks
