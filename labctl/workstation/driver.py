"""The Workstation driver: the `Driver` interface and its real implementation, `VmrunDriver` (vmrun).

Modelled on packer-plugin-vmware's `Driver`/`NewDriver`: candidates are tried in order and the first whose
`verify()` passes is used. `VmrunDriver` runs vmrun with argv lists (never a shell), always with `-T ws`, with a
timeout per call, and treats a non-zero exit **or** an `Error:` line on stdout as a failure; every error names the
VM and the vmrun command. The simulated Workstation (`labctl.sim.workstation.SimDriver`) implements the same
interface; which one a run uses is chosen where the run is assembled (`labctl.plan.backends.workstation`).
"""

from __future__ import annotations

import abc
import os
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from labctl.errors import EnvironmentProblem, ExitStatus, LabctlError, RefusedError
from labctl.workstation import proc
from labctl.workstation import vmrun_output as out
from labctl.workstation.vmrun_output import ProductVersion

LINUX_VMRUN = Path("/usr/bin/vmrun")
LINUX_VMWARE_VMX = Path("/usr/lib/vmware/bin/vmware-vmx")
WINDOWS_REGISTRY_KEYS = (
    r"SOFTWARE\WOW6432Node\VMware, Inc.\VMware Workstation",
    r"SOFTWARE\VMware, Inc.\VMware Workstation",
)
INSTALL_HINT = (
    "install VMware Workstation (vmrun comes with it) or put vmrun on PATH; "
    "to try the pipeline without Workstation use `labctl up FILE --sim`"
)

# A function reading HKLM\<key>\<value>; returns None when missing. Injected in tests; winreg on Windows.
RegistryReader = Callable[[str, str], "str | None"]


class VmrunError(LabctlError):
    """A vmrun call failed. Names the VM and the vmrun command; `detail` is vmrun's own `Error:` text."""

    status = ExitStatus.FAILED

    def __init__(
        self, command: str, vmx: str | None, detail: str, *, exit_code: int | None, output: str = ""
    ):
        self.command = command
        self.vmx = vmx
        self.detail = detail
        self.exit_code = exit_code
        self.output = output
        target = f" for {vmx}" if vmx else ""
        code = f" (exit {exit_code})" if exit_code is not None else ""
        super().__init__(f"vmrun {command}{target} failed: {detail}{code}", hint=self._hint(command, detail))

    @property
    def not_powered_on(self) -> bool:
        return "not powered on" in self.detail.lower()

    @property
    def cannot_open(self) -> bool:
        return "cannot open vm" in self.detail.lower()

    @staticmethod
    def _hint(command: str, detail: str) -> str | None:
        d = detail.lower()
        if "not powered on" in d:
            return "the VM is already stopped; `labctl down` skips stopped VMs"
        if "cannot open vm" in d or "cannot be found" in d:
            return "check that the .vmx exists (labctl render / labctl up create it) and is readable by this user"
        if "tools" in d and "not running" in d:
            return "VMware Tools are not running in the guest; nested ESX reports no IP this way — use the topology's IP"
        if "timed out" in d:
            return (
                "the VM may be waiting on a question in the Workstation GUI (msg.autoAnswer) — open it once"
            )
        if "snapshot" in d:
            return "list the VM's snapshots with `vmrun -T ws listSnapshots VMX`; labctl names its base snapshot 'base'"
        return None


@dataclass(frozen=True)
class Timeouts:
    """Seconds per vmrun command; clone and getGuestIPAddress -wait can legitimately take minutes."""

    default: float = 120.0
    clone: float = 900.0
    start: float = 300.0
    stop: float = 300.0
    guest_ip: float = 600.0
    list: float = 30.0


class Driver(abc.ABC):
    """A backend that runs the lab's VMs: everything the pipeline asks of it, and nothing else.

    A backend is one package implementing this interface: Workstation through vmrun (`VmrunDriver`, here), its
    simulated twin (`labctl.sim.workstation.SimDriver`), and later a physical vSphere. The pipeline never
    reaches around it (no `vmrun`, no `.lck` check, no .vmx edit of its own); `labctl.plan.backends` picks one
    per run. A VM is named by the path of its configuration file (.vmx). The operations, by concern:

    - create: `create_disk` (labctl renders a VM's configuration itself; the backend gives it its disk)
    - clone: `snapshot`, `list_snapshots`, `clone` (linked or full)
    - power: `start`, `stop`, `list_running`, `is_running`, `guest_ip`
    - guest variables: `read_guest_var` (`guestinfo.*`: set in the guest by `vmtoolsd --cmd "info-set ..."` or
      given in the configuration)
    - media: `attach_media` (an ISO on the VM's CD-ROM, or the CD-ROM disconnected)
    - config: `read_config`, `reconfigure` (refused while the VM runs, unless forced)
    - `delete_vm`; `verify` (can it work on this machine?) and `version`
    """

    name: str = "driver"

    @abc.abstractmethod
    def verify(self) -> None:
        """Raise `EnvironmentProblem` (with a hint) when this driver cannot work on this machine."""

    @abc.abstractmethod
    def version(self) -> ProductVersion | None:
        """Workstation's version, None when it cannot be told."""

    # -- create ---------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def create_disk(self, vmx: Path, size_gb: int, adapter: str) -> bool:
        """Give the VM its (growable) system disk unless it has one; True when one was made."""

    # -- clone ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def clone(self, src: Path, dst: Path, *, snapshot: str, clone_name: str, linked: bool = True) -> None:
        """`clone SRC DST linked|full -snapshot=NAME -cloneName=NAME`; refuses an existing DST."""

    @abc.abstractmethod
    def snapshot(self, vmx: Path, name: str) -> None: ...

    @abc.abstractmethod
    def list_snapshots(self, vmx: Path) -> list[str]: ...

    # -- power ----------------------------------------------------------------------------------------------
    @abc.abstractmethod
    def start(self, vmx: Path, *, gui: bool = False) -> None: ...

    @abc.abstractmethod
    def stop(self, vmx: Path, *, hard: bool = False) -> None: ...

    @abc.abstractmethod
    def list_running(self) -> list[Path]:
        """The .vmx paths of running VMs (`vmrun list`)."""

    def is_running(self, vmx: Path) -> bool:
        want = os.fspath(vmx)
        return any(out.same_vmx(os.fspath(p), want) for p in self.list_running())

    @abc.abstractmethod
    def guest_ip(self, vmx: Path, *, wait: bool = True, timeout: float | None = None) -> str: ...

    @abc.abstractmethod
    def read_guest_var(self, vmx: Path, name: str) -> str | None:
        """The running VM's guest variable `guestinfo.<name>` (`name` without the prefix): what the guest set
        with `vmtoolsd --cmd "info-set guestinfo.<name> VALUE"` since power-on, else the configuration's
        `guestinfo.<name>`; None when neither is set. Raises VmrunError when the VM is not running."""

    # -- media and configuration ------------------------------------------------------------------------------
    @abc.abstractmethod
    def attach_media(self, vmx: Path, iso: Path | None, *, kickstart: Path | None = None,
                     force: bool = False) -> list[str]:
        """Put `iso` on the VM's first CD-ROM, connected at power-on; keys changed.

        With `kickstart` (an unattended install): that image goes on a second CD-ROM, also connected, and the
        firmware boots the disk first, then the CD (`bios.bootOrder = "hdd,cdrom"`: a blank disk falls through to
        the installer, an installed one boots itself). `iso` None: every CD-ROM is left disconnected at power-on."""

    @abc.abstractmethod
    def read_config(self, vmx: Path):
        """The VM's configuration as a `labctl.render.vmx.VmxFile` (order, case and comments kept)."""

    @abc.abstractmethod
    def reconfigure(
        self, vmx: Path, changes: Mapping[str, str | None], *, force: bool = False, dry_run: bool = False
    ) -> list[str]:
        """Set these configuration keys (None: remove the key); returns the keys that differ(ed).

        Changes nothing when nothing differs; refuses (`RefusedError`) a running VM unless `force`; with
        `dry_run` only reports.
        """

    @abc.abstractmethod
    def delete_vm(self, vmx: Path) -> None:
        """`deleteVM`: removes the VM's files (callers check it is inside the lab's vm_dir first)."""

    def exists(self, vmx: Path) -> bool:
        """Whether the backend has this VM (Workstation: its .vmx is there; vSphere: the lab's folder has it)."""
        return Path(vmx).exists()

    @property
    def location(self) -> str | None:
        """Where the lab's VMs are when that is not the lab's vm_dir (a vSphere folder), for messages."""
        return None

    def has_disk(self, vmx: Path) -> bool:
        """Whether the VM has its system disk (Workstation: `<name>.vmdk` beside the .vmx; vSphere: a VirtualDisk)."""
        return Path(vmx).with_name(f"{Path(vmx).stem}.vmdk").exists()

    def create_disk_commands(self, vmx: Path, size_gb: int, adapter: str) -> list[str]:
        """What `create_disk` runs, for `plan` (Workstation: the vmware-vdiskmanager command line)."""
        from labctl.workstation.disks import create_disk_argv

        return [" ".join(create_disk_argv(Path(vmx).with_name(f"{Path(vmx).stem}.vmdk"), size_gb, adapter))]

    def disk_identity(self, vmx: Path) -> dict | None:
        """What names the VM's current system disk, for the install marker (plan/media): Workstation its path and
        inode (a disk made anew has another inode); None when there is no disk."""
        import os

        disk = Path(vmx).with_name(f"{Path(vmx).stem}.vmdk")
        try:
            return {"disk": os.fspath(disk), "inode": disk.stat().st_ino}
        except FileNotFoundError:
            return None


def guest_var_name(name: str) -> str:
    """`labctl.hostkey` -> `guestinfo.labctl.hostkey` (the prefix the guest's tools require); a name already
    carrying it is kept. Refuses names vmrun or the tools would split or mangle."""
    n = name if name.startswith("guestinfo.") else f"guestinfo.{name}"
    if not n[len("guestinfo."):] or any(c.isspace() or c in "\"'=" for c in n):
        raise LabctlError(f"{name!r} is not a guest variable name (letters, digits, dots, dashes, underscores)")
    return n


# The CD-ROM a VM boots its install media from, as labctl's templates lay it out (templates/vmx/*.vmx.j2).
CDROM_DEVICE_TYPES = ("cdrom-image", "cdrom-raw", "atapi-cdrom")


class VmxFiles:
    """The configuration side of a backend whose VMs are .vmx files (Workstation, and its simulated twin).

    Edits go through `labctl.render.vmx`, so the rest of the file stays byte for byte; a VM is running while
    Workstation holds its `<name>.vmx.lck` directory, which is what refuses a rewrite (as Workstation does).
    """

    def read_config(self, vmx: Path):
        from labctl.render import vmx as vmxlib

        try:
            return vmxlib.read(vmx)
        except FileNotFoundError:
            raise LabctlError(f"{vmx}: the VM's configuration does not exist",
                              hint="labctl render / labctl up create it") from None

    def disk_path(self, vmx: Path) -> Path:
        """The VM's first virtual disk as its configuration names it (else `<name>.vmdk` beside the .vmx)."""
        vmx = Path(vmx)
        try:
            doc = self.read_config(vmx)
        except LabctlError:
            doc = None
        for key, value in doc.items() if doc is not None else ():
            if key.lower().endswith(".filename") and value.lower().endswith(".vmdk"):
                return vmx.parent / value if not Path(value).is_absolute() else Path(value)
        return vmx.with_suffix(".vmdk")

    @staticmethod
    def config_locked(vmx: Path) -> bool:
        return Path(vmx).with_name(Path(vmx).name + ".lck").exists()

    def reconfigure(
        self, vmx: Path, changes: Mapping[str, str | None], *, force: bool = False, dry_run: bool = False
    ) -> list[str]:
        from labctl.render import vmx as vmxlib

        doc = self.read_config(vmx)
        todo = [k for k, v in changes.items() if (k in doc if v is None else doc.get(k) != v)]
        if not todo or dry_run:
            return todo
        if self.config_locked(vmx) and not force:
            raise RefusedError(
                f"{vmx}: the VM is running; its configuration needs {', '.join(todo)}",
                hint="stop it first (labctl down FILE), then re-run (or --force)",
            )
        for key in todo:
            if changes[key] is None:
                doc.delete(key)
            else:
                doc.set(key, changes[key])
        # Workstation (or vmrun clone) wrote this file, not labctl's renderer: past the "user-edited" refusal
        vmxlib.write(vmx, doc, force=True)
        return todo

    @staticmethod
    def cdrom_devices(doc) -> list[str]:
        """The VM's CD-ROM devices (`sata0:1`, `ide1:0`, ...) in the order the configuration lists them."""
        return [k[: -len(".deviceType")] for k, v in doc.items()
                if k.endswith(".deviceType") and v.lower() in CDROM_DEVICE_TYPES]

    def media(self, vmx: Path) -> list[tuple[str, str | None, bool]]:
        """(device, image file, connected at power-on) of each CD-ROM of the VM."""
        doc = self.read_config(vmx)
        return [(d, doc.get(f"{d}.fileName"), (doc.get(f"{d}.startConnected") or "TRUE").upper() == "TRUE")
                for d in self.cdrom_devices(doc)]

    def attach_media(self, vmx: Path, iso: Path | None, *, kickstart: Path | None = None,
                     force: bool = False) -> list[str]:
        doc = self.read_config(vmx)
        devices = self.cdrom_devices(doc)
        if iso is None:
            return self.reconfigure(vmx, {f"{d}.startConnected": "FALSE" for d in devices}, force=force)
        return self.reconfigure(vmx, cdrom_changes(doc, devices, os.fspath(iso),
                                                   os.fspath(kickstart) if kickstart is not None else None),
                                force=force)


def cdrom_changes(config, devices: Sequence[str], iso: str, kickstart: str | None) -> dict[str, str | None]:
    """The configuration keys that put `iso` on the VM's first CD-ROM and `kickstart` on a second one, boot order
    disk then CD (a blank disk falls through to the installer) — every backend's media layout (CONTRACT interface
    2). `config` is the VM's configuration as .vmx keys (anything with `.get`), `devices` its CD-ROMs in order;
    the image names are as the backend addresses them (a path; a datastore path on vSphere)."""
    # no CD-ROM yet: where the templates put one (SATA on modern ESXi, else the secondary IDE channel)
    first = devices[0] if devices else ("sata0:1" if (config.get("sata0.present") or "").upper() == "TRUE"
                                        else "ide1:0")
    changes: dict[str, str | None] = {}

    def cd(device: str, image: str) -> None:
        changes.update({
            f"{device.split(':')[0]}.present": "TRUE",
            f"{device}.present": "TRUE",
            f"{device}.deviceType": "cdrom-image",
            f"{device}.fileName": image,
            f"{device}.startConnected": "TRUE",
        })

    cd(first, iso)
    if kickstart is not None:
        # the next unit on the same controller: sata0:1 -> sata0:2, ide1:0 -> ide1:1
        bus, _, unit = first.partition(":")
        second = next(iter(devices[1:]), f"{bus}:{int(unit) + 1}")
        cd(second, kickstart)
        changes["bios.bootOrder"] = "hdd,cdrom"
    return changes


def find_vmrun(
    environ: Mapping[str, str] | None = None,
    *,
    system: str | None = None,
    registry: RegistryReader | None = None,
    linux_default: Path = LINUX_VMRUN,
) -> Path | None:
    """Where vmrun is: PATH first, then /usr/bin/vmrun (Linux), then InstallPath from the Windows registry."""
    environ = os.environ if environ is None else environ
    system = system or platform.system()
    exe = "vmrun.exe" if system == "Windows" else "vmrun"
    found = shutil.which(exe, path=environ.get("PATH", ""))
    if found:
        return Path(found)
    if system != "Windows":
        return linux_default if linux_default.is_file() and os.access(linux_default, os.X_OK) else None
    install = windows_install_path(registry)
    if install:
        candidate = Path(install) / "vmrun.exe"
        if candidate.is_file():
            return candidate
    return None


def windows_install_path(registry: RegistryReader | None = None) -> str | None:
    """Workstation's InstallPath from HKLM: the WOW6432Node key (32-bit installer on 64-bit Windows) first, then the native one."""
    read = registry or _winreg_reader
    for key in WINDOWS_REGISTRY_KEYS:
        value = read(key, "InstallPath")
        if value:
            return value
    return None


def _winreg_reader(key: str, value: str) -> str | None:  # pragma: no cover - Windows only
    try:
        import winreg  # type: ignore[import-not-found]
    except ImportError:
        return None
    try:
        with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, key) as k:
            v, _ = winreg.QueryValueEx(k, value)
            return str(v)
    except OSError:
        return None


class VmrunDriver(VmxFiles, Driver):
    """Real Workstation through vmrun. `environ` is the environment vmrun runs with (PATH finds a fake in tests)."""

    name = "vmrun"

    def __init__(
        self,
        vmrun: Path,
        *,
        environ: Mapping[str, str] | None = None,
        vmware_vmx: Path | None = LINUX_VMWARE_VMX,
        registry: RegistryReader | None = None,
        timeouts: Timeouts = Timeouts(),
    ):
        self.vmrun = Path(vmrun)
        self.environ = dict(os.environ if environ is None else environ)
        self.vmware_vmx = vmware_vmx
        self.registry = registry
        self.timeouts = timeouts
        self.calls: list[proc.Completed] = []

    @classmethod
    def find(cls, environ: Mapping[str, str] | None = None, **kw) -> VmrunDriver:
        path = find_vmrun(environ, registry=kw.get("registry"))
        if path is None:
            raise EnvironmentProblem(
                "vmrun was not found (PATH, /usr/bin/vmrun, Windows registry)", hint=INSTALL_HINT
            )
        return cls(path, environ=environ, **kw)

    # -- plumbing -------------------------------------------------------------------------------------------
    def _run(self, command: str, vmx: Path | None, args: Sequence[str], *, timeout: float):
        """Run one vmrun command; returns its parsed result (see `vmrun_output.interpret`) or raises VmrunError."""
        argv = [os.fspath(self.vmrun), "-T", "ws", command]
        if vmx is not None:
            argv.append(os.fspath(vmx))
        argv.extend(args)
        vmx_s = os.fspath(vmx) if vmx is not None else None
        try:
            done = proc.run(argv, environ=self.environ, timeout=timeout)
        except FileNotFoundError:
            raise EnvironmentProblem(f"vmrun not found at {self.vmrun}", hint=INSTALL_HINT) from None
        except PermissionError:
            raise EnvironmentProblem(
                f"vmrun at {self.vmrun} is not executable by this user", hint=INSTALL_HINT
            ) from None
        self.calls.append(done)
        if done.exit_code is None:
            raise VmrunError(command, vmx_s, f"timed out after {timeout:g} s", exit_code=None)
        try:
            return out.interpret(command, done.exit_code, done.stdout, done.stderr)
        except out.VmrunFailure as e:
            raise VmrunError(
                command, vmx_s, e.detail, exit_code=e.exit_code, output=done.stdout + done.stderr
            ) from None
        except out.OutputFormatError as e:
            raise VmrunError(command, vmx_s, str(e), exit_code=done.exit_code, output=done.stdout) from None

    # -- Driver -----------------------------------------------------------------------------------------------
    def verify(self) -> None:
        if not self.vmrun.is_file():
            raise EnvironmentProblem(f"vmrun not found at {self.vmrun}", hint=INSTALL_HINT)
        if not os.access(self.vmrun, os.X_OK):
            raise EnvironmentProblem(
                f"vmrun at {self.vmrun} is not executable by this user", hint=INSTALL_HINT
            )

    def version(self) -> ProductVersion | None:
        if self.vmware_vmx is not None and self.vmware_vmx.is_file():
            try:
                done = proc.run([self.vmware_vmx, "-v"], environ=self.environ, timeout=self.timeouts.default)
            except OSError:
                return None
            return out.parse_vmx_version(done.stderr + "\n" + done.stdout)
        if platform.system() == "Windows" or self.registry is not None:
            read = self.registry or _winreg_reader
            for key in WINDOWS_REGISTRY_KEYS:
                v = read(key, "ProductVersion")
                if v:
                    return out.parse_vmx_version(f"VMware Workstation {v} build-0")
        return None

    def clone(self, src: Path, dst: Path, *, snapshot: str, clone_name: str, linked: bool = True) -> None:
        if Path(dst).exists():
            raise RefusedError(
                f"cannot clone {src} to {dst}: the destination already exists",
                hint="labctl never overwrites a VM; `labctl destroy FILE` removes the lab's VMs",
            )
        Path(dst).parent.mkdir(parents=True, exist_ok=True)
        mode = "linked" if linked else "full"
        self._run(
            "clone",
            Path(src),
            [os.fspath(dst), mode, f"-snapshot={snapshot}", f"-cloneName={clone_name}"],
            timeout=self.timeouts.clone,
        )

    def snapshot(self, vmx: Path, name: str) -> None:
        self._run("snapshot", Path(vmx), [name], timeout=self.timeouts.default)

    def list_snapshots(self, vmx: Path) -> list[str]:
        return self._run("listSnapshots", Path(vmx), [], timeout=self.timeouts.list)

    def start(self, vmx: Path, *, gui: bool = False) -> None:
        self._run("start", Path(vmx), ["gui" if gui else "nogui"], timeout=self.timeouts.start)

    def stop(self, vmx: Path, *, hard: bool = False) -> None:
        self._run("stop", Path(vmx), ["hard" if hard else "soft"], timeout=self.timeouts.stop)

    def list_running(self) -> list[Path]:
        return [Path(p) for p in self._run("list", None, [], timeout=self.timeouts.list)]

    def guest_ip(self, vmx: Path, *, wait: bool = True, timeout: float | None = None) -> str:
        args = ["-wait"] if wait else []
        return self._run("getGuestIPAddress", Path(vmx), args, timeout=timeout or self.timeouts.guest_ip)

    def read_guest_var(self, vmx: Path, name: str) -> str | None:
        """`vmrun -T ws readVariable VMX guestVar NAME`: vmrun prints the value on one line and exits 0. For a
        variable nobody set it prints an empty line, also with exit 0 (VIX's ReadVariable gives an empty string;
        not confirmed by a capture [M]), so an empty value reads as unset. A stopped VM fails like every vmrun
        guest command (`Error: The virtual machine is not powered on`)."""
        value = self._run("readVariable", Path(vmx), ["guestVar", guest_var_name(name)],
                          timeout=self.timeouts.default)
        return value or None

    def delete_vm(self, vmx: Path) -> None:
        self._run("deleteVM", Path(vmx), [], timeout=self.timeouts.default)

    def create_disk(self, vmx: Path, size_gb: int, adapter: str) -> bool:
        """`vmware-vdiskmanager -c -t 0` (one growable file) for `<name>.vmdk` next to the .vmx."""
        from labctl.workstation.disks import create_disk

        disk = self.disk_path(vmx)
        if disk.exists():
            return False
        create_disk(disk, size_gb, adapter, environ=self.environ, timeout=self.timeouts.default)
        return True


@dataclass
class DriverChoice:
    """Which driver `new_driver` picked and why the others were passed over (for doctor / --debug)."""

    driver: Driver
    skipped: list[str] = field(default_factory=list)


def new_driver(candidates: Sequence[Callable[[], Driver]]) -> DriverChoice:
    """Packer's NewDriver: build each candidate in order, keep the first whose verify() passes."""
    skipped: list[str] = []
    for make in candidates:
        try:
            d = make()
            d.verify()
            return DriverChoice(d, skipped)
        except EnvironmentProblem as e:
            skipped.append(e.message)
    raise EnvironmentProblem(
        "no usable VMware Workstation driver: " + "; ".join(skipped or ["no candidates"]), hint=INSTALL_HINT
    )


def workstation_driver(environ: Mapping[str, str] | None = None, **kw) -> Driver:
    """The real Workstation on this machine (raises EnvironmentProblem with an install hint when absent)."""
    return new_driver([lambda: VmrunDriver.find(environ, **kw)]).driver

