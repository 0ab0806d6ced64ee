"""Virtual disks for the VMs labctl creates: `vmware-vdiskmanager -c` (growable, single file)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from labctl.errors import EnvironmentProblem, LabctlError
from labctl.workstation import proc

VDISKMANAGER = "vmware-vdiskmanager"


def find_vdiskmanager(environ: Mapping[str, str] | None = None) -> Path | None:
    import shutil

    environ = os.environ if environ is None else environ
    found = shutil.which(VDISKMANAGER, path=environ.get("PATH", ""))
    if found:
        return Path(found)
    default = Path("/usr/bin") / VDISKMANAGER
    return default if default.is_file() else None


def create_disk_argv(
    disk: Path, size_gb: int, adapter: str, tool: str | os.PathLike[str] = VDISKMANAGER
) -> list[str]:
    """`-t 0`: one growable file (a nested ESX disk is mostly empty); `-a` the controller the .vmx declares."""
    return [os.fspath(tool), "-c", "-s", f"{int(size_gb)}GB", "-a", adapter, "-t", "0", os.fspath(disk)]


def create_disk(
    disk: Path,
    size_gb: int,
    adapter: str,
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 300.0,
) -> None:
    """Create the disk unless it exists (idempotent); raises EnvironmentProblem / LabctlError."""
    if disk.exists():
        return
    tool = find_vdiskmanager(environ)
    if tool is None:
        raise EnvironmentProblem(
            f"{VDISKMANAGER} was not found (PATH, /usr/bin)",
            hint="install VMware Workstation (it ships vmware-vdiskmanager)",
        )
    r = proc.run(create_disk_argv(disk, size_gb, adapter, tool), environ=environ, timeout=timeout)
    if r.timed_out:
        raise LabctlError(f"{VDISKMANAGER} did not create {disk} within {timeout:g} s")
    if r.exit_code != 0:
        detail = (r.stdout + r.stderr).strip().splitlines()
        raise LabctlError(
            f"{VDISKMANAGER} could not create {disk}: {detail[-1] if detail else f'exit {r.exit_code}'}"
        )
