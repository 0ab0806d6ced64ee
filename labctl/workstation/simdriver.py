"""A simulated VMware Workstation for `labctl up --sim`: the same `Driver` interface, no VMware needed.

VMs are real directories under `<sim dir>/vms/<name>/` holding real files, written the way Workstation writes them:
- `<name>.vmx` (via `labctl.render.vmx`, so the clone settings step edits it exactly like a real one);
- `<name>.vmsd`: snapshots (`snapshot.numSnapshots`, `snapshotN.displayName`, ...) and, for a linked clone,
  `cloneOf0 = "<parent .vmx>"`, `numCloneOf = "1"`;
- `<name>.vmx.lck/` while the VM runs (as Workstation does — so `render.files.write_atomic` refuses to rewrite a
  running VM's .vmx, like on a real host).

A VM that is a simulated ESX host has a *disk*: the simulator's host state (`labctl.sim.state`, a `state.json`
plus blobs) in a host directory chosen by the backend. Cloning a VM copies its disk (the clone keeps esx.conf,
ifcfg, UUID — the duplicates `labctl macs` later finds). Powering on sets the vNIC MACs from the VM's .vmx
(ethernetN.address / generatedAddress) and boots the disk (`labctl.sim.boot.boot`); the backend then starts or
resumes the host's SSH server process. Powering off stops it. Errors use vmrun's texts and `VmrunError`, so
callers handle the simulated and the real Workstation the same way.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from labctl.errors import EnvironmentProblem, LabctlError, RefusedError
from labctl.workstation.driver import Driver, VmrunError
from labctl.workstation.vmrun_output import ProductVersion

SIM_VERSION = ProductVersion("Workstation", "17.5.0", 0)
_DISK_SKIP = {"runtime.json", "control.json", "server.log", "pid"}  # process files, not disk contents


class HostBackend(Protocol):
    """How simulated ESX hosts' disks and processes are found, started and stopped (the simulator's side)."""

    def host_dir(self, name: str) -> Path:
        """Where host `name`'s disk (state.json, blobs/) lives."""

    def power_on(self, name: str) -> None:
        """Start (or resume) the host's process serving the disk in host_dir(name); it is booted already."""

    def power_off(self, name: str, *, hard: bool) -> None:
        """Stop the host's process (no-op when it is not running)."""


@dataclass
class DiskOnlyHosts:
    """A backend without processes: disks under `<root>/<name>`, power only recorded by the driver.

    Used by tests and by callers that only need the Workstation side (clone, .vmx, snapshots) — and as the
    base of the launcher-backed backend, which adds the processes.
    """

    root: Path
    on_power_on: Callable[[str], None] | None = None
    on_power_off: Callable[[str, bool], None] | None = None

    def host_dir(self, name: str) -> Path:
        return Path(self.root) / name

    def power_on(self, name: str) -> None:
        if self.on_power_on:
            self.on_power_on(name)

    def power_off(self, name: str, *, hard: bool) -> None:
        if self.on_power_off:
            self.on_power_off(name, hard)


class SimDriver(Driver):
    """Workstation simulated under `sim_dir`; only .vmx paths inside `<sim dir>/vms` are accepted."""

    name = "sim"

    def __init__(
        self, sim_dir: Path, hosts: HostBackend | None = None, *, version: ProductVersion = SIM_VERSION
    ):
        self.sim_dir = Path(sim_dir).resolve()
        self.vms_dir = self.sim_dir / "vms"
        self.hosts: HostBackend = hosts or DiskOnlyHosts(self.sim_dir / "hosts")
        self._version = version

    # ---- paths -------------------------------------------------------------------------------------------
    def vmx_path(self, name: str) -> Path:
        """Where VM `name` lives in the simulated Workstation (what the pipeline uses instead of vm_dir)."""
        return self.vms_dir / name / f"{name}.vmx"

    def _inside(self, vmx: Path, command: str) -> Path:
        p = Path(os.path.abspath(vmx))
        try:
            p.relative_to(self.vms_dir)
        except ValueError:
            raise LabctlError(
                f"simulated vmrun {command}: {vmx} is outside the simulated Workstation ({self.vms_dir})",
                hint="with --sim, VMs live under the sim dir; this path would touch a real VM",
            ) from None
        return p

    def _existing(self, vmx: Path, command: str) -> Path:
        p = self._inside(vmx, command)
        if not p.is_file():
            raise VmrunError(
                command, str(p), f"Cannot open VM: {p}, The virtual machine cannot be found", exit_code=255
            )
        return p

    @staticmethod
    def _lck(vmx: Path) -> Path:
        return vmx.with_name(vmx.name + ".lck")

    @staticmethod
    def _vmsd(vmx: Path) -> Path:
        return vmx.with_suffix(".vmsd")

    @staticmethod
    def _vm_name(vmx: Path) -> str:
        """The simulated host behind a VM: its directory name (the topology name, as labctl lays VMs out)."""
        return vmx.parent.name

    def _is_host(self, vmx: Path) -> bool:
        return (self.hosts.host_dir(self._vm_name(vmx)) / "state.json").is_file()

    # ---- Driver ----------------------------------------------------------------------------------------------
    def verify(self) -> None:
        try:
            self.vms_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise EnvironmentProblem(
                f"cannot create the simulated Workstation under {self.vms_dir}: {e}"
            ) from e

    def version(self) -> ProductVersion | None:
        return self._version

    def list_running(self) -> list[Path]:
        if not self.vms_dir.is_dir():
            return []
        return sorted(p for p in self.vms_dir.glob("*/*.vmx") if self._lck(p).is_dir())

    def start(self, vmx: Path, *, gui: bool = False) -> None:
        p = self._existing(vmx, "start")
        if self._lck(p).is_dir():
            return  # vmrun start on a running VM succeeds without doing anything
        name = self._vm_name(p)
        if self._is_host(p):
            self._power_on_disk(p, name)
        self._lck(p).mkdir()
        try:
            if self._is_host(p):
                self.hosts.power_on(name)
        except LabctlError as e:
            shutil.rmtree(self._lck(p), ignore_errors=True)
            raise VmrunError(
                "start", str(p), f"the simulated host {name} did not start: {e.message}", exit_code=255
            ) from e

    def _power_on_disk(self, vmx: Path, name: str) -> None:
        """Power-on of a simulated ESX VM: the .vmx's vNIC MACs become the host's NICs, then the host boots."""
        from labctl.render import vmx as vmxlib
        from labctl.sim import state as S
        from labctl.sim.boot import boot

        hdir = self.hosts.host_dir(name)
        st = S.load_state(hdir)
        macs = vnic_macs(vmxlib.read(vmx))
        for i, nic in enumerate(st.nics):
            if i < len(macs) and macs[i]:
                nic.mac = macs[i]
        boot(st)
        S.save_state(hdir, st)

    def stop(self, vmx: Path, *, hard: bool = False) -> None:
        p = self._existing(vmx, "stop")
        if not self._lck(p).is_dir():
            raise VmrunError("stop", str(p), f"The virtual machine is not powered on: {p}", exit_code=255)
        if self._is_host(p):
            self.hosts.power_off(self._vm_name(p), hard=hard)
        shutil.rmtree(self._lck(p))

    def snapshot(self, vmx: Path, name: str) -> None:
        p = self._existing(vmx, "snapshot")
        doc = self._read_vmsd(p)
        n = int(doc.get("snapshot.numSnapshots") or "0")
        uid = int(doc.get("snapshot.lastUID") or "0") + 1
        doc.set(f"snapshot{n}.uid", str(uid))
        doc.set(f"snapshot{n}.filename", f"{p.stem}-Snapshot{uid}.vmsn")
        doc.set(f"snapshot{n}.displayName", name)
        doc.set(f"snapshot{n}.type", "1")
        doc.set("snapshot.lastUID", str(uid))
        doc.set("snapshot.numSnapshots", str(n + 1))
        doc.set("snapshot.current", str(uid))
        self._write_vmsd(p, doc)
        if self._is_host(p):  # the disk as it is now, like the snapshot's base disk
            snap_dir = p.parent / f"{p.stem}-Snapshot{uid}.disk"
            _copy_disk(self.hosts.host_dir(self._vm_name(p)), snap_dir)

    def list_snapshots(self, vmx: Path) -> list[str]:
        p = self._existing(vmx, "listSnapshots")
        doc = self._read_vmsd(p)
        n = int(doc.get("snapshot.numSnapshots") or "0")
        return [doc.get(f"snapshot{i}.displayName") or "" for i in range(n)]

    def clone(self, src: Path, dst: Path, *, snapshot: str, clone_name: str, linked: bool = True) -> None:
        from labctl.render import vmx as vmxlib

        s = self._existing(src, "clone")
        d = self._inside(dst, "clone")
        if d.exists():
            raise RefusedError(
                f"cannot clone {s} to {d}: the destination already exists",
                hint="labctl never overwrites a VM; `labctl destroy FILE` removes the lab's VMs",
            )
        if snapshot not in self.list_snapshots(s):
            raise VmrunError("clone", str(s), f"Invalid snapshot name '{snapshot}'", exit_code=255)
        doc = vmxlib.read(s)
        doc.set("displayName", clone_name)
        if linked:
            doc.set("fileSearchPath", f".;{s.parent}")
        d.parent.mkdir(parents=True, exist_ok=True)
        d.write_bytes(doc.dump_bytes())
        if linked:
            vmsd = vmxlib.parse('.encoding = "UTF-8"\n')
            vmsd.set("cloneOf0", str(s))
            vmsd.set("numCloneOf", "1")
            vmsd.set("sentinel0", f"{d.stem}-cl1.vmdk")
            vmsd.set("numSentinels", "1")
            self._write_vmsd(d, vmsd)
        if self._is_host(s):
            snap_disk = self._snapshot_disk(s, snapshot)
            src_disk = snap_disk if snap_disk is not None else self.hosts.host_dir(self._vm_name(s))
            _clone_disk(src_disk, self.hosts.host_dir(self._vm_name(d)), self._vm_name(d))

    def _snapshot_disk(self, vmx: Path, snapshot: str) -> Path | None:
        doc = self._read_vmsd(vmx)
        n = int(doc.get("snapshot.numSnapshots") or "0")
        for i in range(n):
            if doc.get(f"snapshot{i}.displayName") == snapshot:
                cand = vmx.parent / f"{vmx.stem}-Snapshot{doc.get(f'snapshot{i}.uid')}.disk"
                return cand if (cand / "state.json").is_file() else None
        return None

    def guest_ip(self, vmx: Path, *, wait: bool = True, timeout: float | None = None) -> str:
        p = self._existing(vmx, "getGuestIPAddress")
        if not self._lck(p).is_dir():
            raise VmrunError(
                "getGuestIPAddress", str(p), f"The virtual machine is not powered on: {p}", exit_code=255
            )
        if self._is_host(p):
            from labctl.sim import state as S

            st = S.load_state(self.hosts.host_dir(self._vm_name(p)))
            if st.is_esxi and st.ssh_address:
                return st.ssh_address
        raise VmrunError(
            "getGuestIPAddress",
            str(p),
            f"The VMware Tools are not running in the virtual machine: {p}",
            exit_code=255,
        )

    def delete_vm(self, vmx: Path) -> None:
        p = self._existing(vmx, "deleteVM")
        if self._lck(p).is_dir():
            raise VmrunError("deleteVM", str(p), "The virtual machine is in use", exit_code=255)
        for other in self.vms_dir.glob("*/*.vmsd"):
            if other.parent != p.parent and f'cloneOf0 = "{p}"' in other.read_text(errors="replace"):
                raise VmrunError(
                    "deleteVM",
                    str(p),
                    f"The virtual machine is the parent of linked clone {other}",
                    exit_code=255,
                )
        name = self._vm_name(p)
        if self._is_host(p):
            shutil.rmtree(self.hosts.host_dir(name))
        shutil.rmtree(p.parent)

    # ---- .vmsd -------------------------------------------------------------------------------------------
    def _read_vmsd(self, vmx: Path):
        from labctl.render import vmx as vmxlib

        path = self._vmsd(vmx)
        return vmxlib.read(path) if path.is_file() else vmxlib.parse('.encoding = "UTF-8"\n')

    def _write_vmsd(self, vmx: Path, doc) -> None:
        from labctl.workstation import sysfiles

        sysfiles.replace_file(self._vmsd(vmx), doc.dump_bytes(), backup=False, mode=0o644)

    # ---- inspection (tests, plan) ----------------------------------------------------------------------------
    def clone_parent(self, vmx: Path) -> Path | None:
        doc = self._read_vmsd(self._inside(vmx, "inspect"))
        parent = doc.get("cloneOf0")
        return Path(parent) if parent else None


def vnic_macs(doc) -> list[str | None]:
    """ethernet0..N's MAC as Workstation presents it: the static address, else the generated one."""
    out: list[str | None] = []
    i = 0
    while f"ethernet{i}.present" in doc or f"ethernet{i}.address" in doc:
        present = (doc.get(f"ethernet{i}.present") or "TRUE").upper() == "TRUE"
        if present:
            kind = (doc.get(f"ethernet{i}.addressType") or "generated").lower()
            mac = (
                doc.get(f"ethernet{i}.address")
                if kind == "static"
                else doc.get(f"ethernet{i}.generatedAddress")
            )
            out.append(mac.lower() if mac else None)
        i += 1
    return out


def _copy_disk(src: Path, dst: Path) -> None:
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst, ignore=lambda d, names: [n for n in names if n in _DISK_SKIP])


def _clone_disk(src: Path, dst: Path, name: str) -> None:
    """Copy a host's disk for a clone: same contents, the clone's name; it boots at its first power-on."""
    _copy_disk(src, dst)
    state_file = dst / "state.json"
    data = json.loads(state_file.read_text())
    data["name"] = name
    data["boot_count"] = 0
    from labctl.sim import state as S

    S.write_json_atomic(state_file, data)
