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
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from labctl.errors import EnvironmentProblem, LabctlError, RefusedError
from labctl.sim.installer import boot_disk, vnic_macs  # noqa: F401  (the power-on of a VM's disk lives there)
from labctl.workstation.driver import Driver, VmrunError, VmxFiles
from labctl.workstation.vmrun_output import ProductVersion

SIM_VERSION = ProductVersion("Workstation", "17.5.0", 0)
_DISK_SKIP = {"runtime.json", "control.json", "server.log", "pid", "guestvars.json"}  # process files, not disk contents


class HostBackend(Protocol):
    """The simulator's side: which VMs are simulated ESX hosts, where their disks are, their power."""

    def is_host(self, name: str) -> bool:
        """Is VM `name` a simulated ESX host (else a plain VM: only its power state is simulated)?"""

    def host_dir(self, name: str) -> Path:
        """Where host `name`'s disk (state.json, blobs/) lives."""

    def ensure_disk(self, name: str) -> None:
        """The host's disk exists (a golden host: installed). Raises LabctlError when it cannot."""

    def power_on(self, name: str, config: Mapping[str, str]) -> None:
        """Power the VM on with this configuration (its .vmx keys): boot its disk (or its install media) with
        the .vmx's vNIC MACs and start (or resume) serving it."""

    def power_off(self, name: str, *, hard: bool) -> None:
        """Stop serving the host (no-op when it is not running)."""


@dataclass
class DiskOnlyHosts:
    """A backend without processes: disks under `<root>/<name>`; power-on boots the disk, nothing serves it.

    Used by tests and by callers that only need the Workstation side (clone, .vmx, snapshots, disk contents).
    """

    root: Path
    on_power_on: Callable[[str], None] | None = None
    on_power_off: Callable[[str, bool], None] | None = None

    def is_host(self, name: str) -> bool:
        return (self.host_dir(name) / "state.json").is_file()

    def host_dir(self, name: str) -> Path:
        return Path(self.root) / name

    def ensure_disk(self, name: str) -> None:
        if not self.is_host(name):
            raise LabctlError(f"simulated host {name} has no disk in {self.host_dir(name)}")

    def power_on(self, name: str, config: Mapping[str, str]) -> None:
        boot_disk(self.host_dir(name), vnic_macs(config))
        if self.on_power_on:
            self.on_power_on(name)

    def power_off(self, name: str, *, hard: bool) -> None:
        if self.on_power_off:
            self.on_power_off(name, hard)


class SimDriver(VmxFiles, Driver):
    """Workstation simulated under `sim_dir`; only .vmx paths inside `<sim dir>/vms` are accepted."""

    name = "sim"

    def __init__(
        self, sim_dir: Path, hosts: HostBackend | None = None, *, version: ProductVersion = SIM_VERSION
    ):
        self.sim_dir = Path(
            os.path.abspath(sim_dir)
        )  # as given (not resolved): paths compare as callers wrote them
        self.vms_dir = self.sim_dir / "vms"
        self.hosts: HostBackend = hosts or DiskOnlyHosts(self.sim_dir / "hosts")
        self._version = version

    # ---- paths -------------------------------------------------------------------------------------------
    def vmx_path(self, name: str) -> Path:
        """Where VM `name` lives in the simulated Workstation (what the pipeline uses instead of vm_dir)."""
        return self.vms_dir / name / f"{name}.vmx"

    def _inside(self, vmx: Path, command: str) -> Path:
        p = Path(os.path.abspath(vmx))
        if not (p.is_relative_to(self.vms_dir) or p.resolve().is_relative_to(self.vms_dir.resolve())):
            raise LabctlError(
                f"simulated vmrun {command}: {vmx} is outside the simulated Workstation ({self.vms_dir})",
                hint="with --sim, VMs live under the sim dir; this path would touch a real VM",
            )
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
        return self.hosts.is_host(self._vm_name(vmx))

    def _has_disk(self, vmx: Path) -> bool:
        return (self.hosts.host_dir(self._vm_name(vmx)) / "state.json").is_file()

    # ---- Driver ----------------------------------------------------------------------------------------------
    def verify(self) -> None:
        try:
            from labctl.sim.paths import ensure_private

            ensure_private(self.sim_dir)
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
        from labctl.render import vmx as vmxlib

        from labctl.sim import guestvars

        p = self._existing(vmx, "start")
        if self._lck(p).is_dir():
            return  # vmrun start on a running VM succeeds without doing anything
        name = self._vm_name(p)
        config = vmxlib.read(p).to_dict()
        if self._is_host(p):
            guestvars.powered_on(self.hosts.host_dir(name), config)
            try:
                self.hosts.power_on(name, config)
            except LabctlError as e:
                err = VmrunError(
                    "start", str(p), f"the simulated host {name} did not start: {e.message}", exit_code=255
                )
                err.hint = e.hint or err.hint
                guestvars.powered_off(self.hosts.host_dir(name))
                raise err from e
        else:
            guestvars.powered_on(p.parent, config)
        self._lck(p).mkdir()

    def stop(self, vmx: Path, *, hard: bool = False) -> None:
        p = self._existing(vmx, "stop")
        if not self._lck(p).is_dir():
            raise VmrunError("stop", str(p), f"The virtual machine is not powered on: {p}", exit_code=255)
        from labctl.sim import guestvars

        if self._is_host(p):
            self.hosts.power_off(self._vm_name(p), hard=hard)
        guestvars.powered_off(self._guestvars_dir(p))  # runtime values are lost at power-off
        shutil.rmtree(self._lck(p))

    def _guestvars_dir(self, vmx: Path) -> Path:
        return self.hosts.host_dir(self._vm_name(vmx)) if self._is_host(vmx) else vmx.parent

    def read_guest_var(self, vmx: Path, name: str) -> str | None:
        from labctl.sim import guestvars
        from labctl.workstation.driver import guest_var_name

        p = self._existing(vmx, "readVariable")
        key = guest_var_name(name)
        if not self._lck(p).is_dir():
            raise VmrunError("readVariable", str(p), f"The virtual machine is not powered on: {p}", exit_code=255)
        return guestvars.get(self._guestvars_dir(p), key) or None

    def snapshot(self, vmx: Path, name: str) -> None:
        p = self._existing(vmx, "snapshot")
        if self._is_host(p):  # (a blank disk is not modelled as a snapshot: refused before anything is written)
            self.hosts.ensure_disk(self._vm_name(p))
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
            self.hosts.ensure_disk(self._vm_name(s))
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
        if self._has_disk(p):
            from labctl.sim import state as S

            st = S.load_state(self.hosts.host_dir(self._vm_name(p)))
            mgmt = st.interface(st.management_name)  # what the guest's Tools report: its address now
            if st.is_esxi and mgmt is not None and mgmt.ip:
                return mgmt.ip
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
        if self._has_disk(p):
            shutil.rmtree(self.hosts.host_dir(name))
        shutil.rmtree(p.parent)

    def reconfigure(self, vmx: Path, changes, *, force: bool = False, dry_run: bool = False) -> list[str]:
        return super().reconfigure(self._existing(vmx, "reconfigure"), changes, force=force, dry_run=dry_run)

    def create_disk(self, vmx: Path, size_gb: int, adapter: str) -> bool:
        """Like `vmware-vdiskmanager -c -t 0`: one growable file, nothing allocated yet (a sparse file here).

        A simulated ESX host's contents are its host state (installed at its first power-on), not this file."""
        p = self._existing(vmx, "createDisk")
        disk = self.disk_path(p)
        self._inside(disk, "createDisk")
        if disk.exists():
            return False
        with open(disk, "xb") as f:
            f.truncate(int(size_gb) * 1024**3)
        return True

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


class LabHosts(DiskOnlyHosts):
    """The simulated lab's hosts behind the simulated Workstation, served by `labctl.sim.hostd` processes.

    One hostd process per powered-on host VM (a VM is a process), recorded in the sim's `processes.json` so
    `labctl sim down` stops them too; `endpoints.json` lists the hosts that are on.
    - A golden host's disk is installed from its install media at power-on (`labctl.sim.installer`: the ISO's
      BOOT.CFG, the kickstart on the KS CD); what the kickstart sets (network, root hash, keys, SSH) is all the
      host gets (no key of the simulator's, no password). A VM at the EULA screen, with an installer error or
      nothing to boot runs without SSH.
    - A clone's disk comes from `SimDriver.clone` and boots as it is: the source's IPs, hostname, host keys,
      certificate, MACs and /system/uuid (on the segment it answers at its source's address). Nobody gives it an
      identity at a console: that is labctl's identity stage (`labctl sim up` keeps modelling a lab cloned and
      addressed by hand: `labctl.sim.lab.customize_clone`).
    - Host keys: the simulator pins nothing (labctl pins the key it put in the kickstart, and each clone's new key).
    - Power-off sends SIGTERM to the host's own process (the host saves its disk); soft and hard are the same.
    """

    def __init__(
        self,
        sim_dir: Path,
        spec,
        *,
        environ: Mapping[str, str] | None = None,
        latency: float = 0.0,
        reboot_delay: float = 0.2,
        timeout: float = 60.0,
    ):
        from labctl.sim.paths import host_dir

        super().__init__(Path(sim_dir) / "hosts")
        self.sim_dir = Path(sim_dir).resolve()
        self.spec = spec
        self.specs = {h.name: h for h in spec.hosts}
        self.environ = dict(os.environ if environ is None else environ)
        self.latency = latency
        self.reboot_delay = reboot_delay
        self.timeout = timeout
        self._host_dir = host_dir
        self._procs: dict[str, object] = {}

    # ---- disks -------------------------------------------------------------------------------------------
    def is_host(self, name: str) -> bool:
        return name in self.specs

    def host_dir(self, name: str) -> Path:
        return self._host_dir(self.sim_dir, name)

    def vm_config(self, name: str) -> dict[str, str]:
        """The VM's .vmx keys as the simulated Workstation lays it out (empty when it has none yet)."""
        from labctl.render import vmx as vmxlib

        vmx = self.sim_dir / "vms" / name / f"{name}.vmx"
        return vmxlib.read(vmx).to_dict() if vmx.is_file() else {}

    def vm_log(self, name: str) -> Path:
        """The VM's log (Workstation's vmware.log; here what the firmware and the installer screen show)."""
        return self.sim_dir / "logs" / f"{name}.vmware.log"

    def ensure_disk(self, name: str) -> None:
        """The host's disk exists. A disk is made only by installing it: from the VM's install media at power-on
        (`labctl.sim.installer`), or by cloning another VM's disk."""
        from labctl.sim import installer
        from labctl.sim import state as S

        if (self.host_dir(name) / S.STATE_FILE).is_file():
            return
        h = self.specs.get(name)
        if h is None:
            raise LabctlError(f"{name} is not a host of the simulated lab {self.spec.lab}")
        if h.clone_of:
            raise LabctlError(
                f"{name} is a linked clone of {h.clone_of}: its disk comes from cloning that VM",
                hint="labctl up creates clones before starting them",
            )
        if installer.media_present(self.vm_config(name)):
            raise LabctlError(
                f"{name}'s disk is blank: ESX is installed from its CD at power-on, not yet done",
                hint=f"power the VM on and let the installer finish (its log: {self.vm_log(name)})",
            )
        raise LabctlError(
            f"{name}'s disk is blank and the VM has no install media attached",
            hint="labctl up attaches the installer ISO and the kickstart CD to a golden VM with a blank disk",
        )

    # ---- power -------------------------------------------------------------------------------------------
    def power_on(self, name: str, config: Mapping[str, str]) -> None:
        from labctl.sim import installer, lab
        from labctl.sim import state as S
        from labctl.sim.faults import CONTROL_FILE, Control, write_control

        for r in lab.running(self.sim_dir):
            if name in r.get("hosts", []) and r.get("hosts") != [name]:
                raise LabctlError(
                    f"{name} is already served by the simulated lab `labctl sim up` started (pid {r['pid']}); "
                    "the simulated Workstation cannot power it on a second time",
                    hint="stop that lab first: labctl sim down FILE (or use another --sim-dir)",
                )
        h = self.specs[name]
        hdir = self.host_dir(name)
        # A clone boots with what its disk holds: its source's IPs, hostname, host keys and certificate (no console
        # step is modelled here; labctl's identity stage must give it its own, as on a real Workstation).
        result = installer.power_on(hdir, config, log=self.vm_log(name), vm_name=name)
        if result not in ("disk", "installed"):
            self._publish()
            return  # the VM runs, but at a console (EULA, an installer error) or with nothing to boot: no SSH
        if not (hdir / CONTROL_FILE).exists():
            write_control(hdir, Control(latency=self.latency, reboot_delay=self.reboot_delay))
        if self._record(name) is None:
            self._start_process(name)
        self._publish()

    def power_off(self, name: str, *, hard: bool) -> None:
        from labctl.sim import lab

        rec = self._record(name)
        if rec is not None:
            lab.stop_process(rec)
        self._reap(name)
        records = [r for r in lab.read_processes(self.sim_dir) if r.get("hosts") != [name] or lab.is_ours(r)]
        self._write_records(records)
        self._publish()

    # ---- processes ---------------------------------------------------------------------------------------
    def _record(self, name: str) -> dict | None:
        from labctl.sim import lab

        for r in lab.read_processes(self.sim_dir):
            if r.get("hosts") == [name] and lab.is_ours(r):
                return r
        return None

    def _write_records(self, records: list[dict]) -> None:
        from labctl.sim import lab
        from labctl.sim import state as S

        S.write_json_atomic(self.sim_dir / lab.PROCESSES_FILE, {"processes": records}, mode=0o600)

    def _start_process(self, name: str) -> None:
        import time

        from labctl.sim import lab

        hdir = self.host_dir(name)
        listen = hdir / "listen.json"
        logs = self.sim_dir / "logs"
        p, rec = lab.spawn_hostd(self.sim_dir, [name], f"hostd-{name}.log", self.environ)
        others = [r for r in lab.read_processes(self.sim_dir) if r.get("hosts") != [name]]
        self._write_records([*others, rec])
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                d = json.loads(listen.read_text())
                if d.get("pid") == p.pid:
                    break
            except (FileNotFoundError, ValueError):
                pass
            if p.poll() is not None or time.monotonic() > deadline:
                lab.stop_process(rec)
                tail = (logs / f"hostd-{name}.log").read_text(errors="replace")[-800:]
                why = f"exited ({p.returncode})" if p.returncode is not None else "did not listen in time"
                raise LabctlError(
                    f"host process {why}: {tail.strip()}", hint=f"see {logs / f'hostd-{name}.log'}"
                )
            time.sleep(0.02)
        self._procs[name] = (
            p  # reaped after stop_process (a host may also outlive this labctl run, like a VM)
        )
        self._wait_banner(name, int(d["port"]), rec, deadline)

    def _wait_banner(self, name: str, port: int, rec: dict, deadline: float) -> None:
        """Like a booted host's sshd: answer with an SSH banner before the VM counts as on (when reachable)."""
        import time

        from labctl.sim import lab
        from labctl.sim import state as S
        from labctl.sim.faults import read_control
        from labctl.sim.host import SimHost

        st = S.load_state(self.host_dir(name))
        if not SimHost(st, None, control=read_control(self.host_dir(name))).reachable():
            return  # management interface down or a `down` fault: a real host would not answer either
        while not lab.ssh_banner_ok(port):
            if time.monotonic() > deadline:
                lab.stop_process(rec)
                self._reap(name)
                log = self.sim_dir / "logs" / f"hostd-{name}.log"
                tail = log.read_text(errors="replace")[-600:].strip() if log.exists() else ""
                raise LabctlError(
                    f"simulated host {name} listens on 127.0.0.1:{port} but sends no SSH banner"
                    + (f": {tail}" if tail else ""),
                    hint=f"see {log}",
                )
            time.sleep(0.05)

    def _reap(self, name: str) -> None:
        import subprocess

        p = self._procs.pop(name, None)
        if isinstance(p, subprocess.Popen):
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass

    def _publish(self) -> None:
        """endpoints.json and known_hosts for the hosts whose process runs now."""
        from labctl.sim import lab
        from labctl.sim.endpoints import (
            ENDPOINTS_FILE,
            Endpoint,
            EndpointMap,
            load_endpoints,
            write_endpoints,
        )

        from labctl.sim.segment import Segment

        ports = Segment(self.sim_dir).allocate([a for h in self.spec.hosts for a in h.addresses])
        hosts: dict[str, Endpoint] = {}
        for r in lab.read_processes(self.sim_dir):
            if r.get("kind") != "hostd" or len(r.get("hosts", [])) != 1 or not lab.is_ours(r):
                continue
            name = r["hosts"][0]
            h = self.specs.get(name)
            hdir = self.host_dir(name)
            try:
                d = json.loads((hdir / "listen.json").read_text())
            except (FileNotFoundError, ValueError):
                continue
            if h is None or d.get("pid") != r["pid"]:
                continue
            hosts[name] = Endpoint(
                name,
                h.address or h.ip,
                "127.0.0.1",
                ports[h.via or h.address or h.ip],  # the address's port on the segment: whoever holds it answers
                int(d["pid"]),
                h.flavor,
                h.version,
                dict(d.get("host_key_fingerprints") or {}),
                via=h.via,
            )
        vcenter = None
        if (self.sim_dir / ENDPOINTS_FILE).exists():
            try:
                vcenter = load_endpoints(self.sim_dir).vcenter
            except LabctlError:
                vcenter = None
        known = self.sim_dir / "known_hosts"
        lab.publish_known_hosts(self.sim_dir, {})  # the file only (old loopback lines go): labctl pins every key
        ordered = {h.name: hosts[h.name] for h in self.spec.hosts if h.name in hosts}
        write_endpoints(
            self.sim_dir,
            EndpointMap(
                lab=self.spec.lab,
                sim_dir=self.sim_dir,
                hosts=ordered,
                vcenter=vcenter,
                known_hosts=known,
                identity_file=self.sim_dir / lab.CLIENT_KEY,
            ),
        )

    def stop_all(self) -> list[str]:
        """Stop every host process this backend started (by recorded PID); returns their host names."""
        from labctl.sim import lab

        stopped = []
        for r in lab.read_processes(self.sim_dir):
            if r.get("kind") == "hostd" and len(r.get("hosts", [])) == 1 and r["hosts"][0] in self.specs:
                if lab.stop_process(r):
                    stopped.append(r["hosts"][0])
                self._reap(r["hosts"][0])
        self._write_records([r for r in lab.read_processes(self.sim_dir) if lab.is_ours(r)])
        self._publish()
        return stopped
