"""Pure parsers for what vmrun and vmware-vmx print (no I/O; tested with captured outputs).

vmrun prints its errors on **stdout** as `Error: ...`, usually with exit 255 (Linux) or -1/4294967295 (Windows),
but at least one error has been reported with exit 0 — so an error is a non-zero exit OR a line starting with
`Error:` (workstation.md §6).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import PurePath

_ERROR_RE = re.compile(r"^\s*Error:\s*(.*?)\s*$")
_TOTAL_RUNNING_RE = re.compile(r"^\s*Total running VMs:\s*(\d+)\s*$", re.IGNORECASE)
_TOTAL_SNAPSHOTS_RE = re.compile(r"^\s*Total snapshots:\s*(\d+)\s*$", re.IGNORECASE)
_VMX_VERSION_RE = re.compile(
    r"VMware (Workstation|Player|Fusion)[^\d]*(\d+(?:\.\d+)*)\s+build-(\d+)", re.IGNORECASE
)
_IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


class OutputFormatError(ValueError):
    """vmrun printed something the parser does not understand (the message quotes it)."""


def error_message(stdout: str) -> str | None:
    """The text of the first `Error:` line in vmrun's stdout, or None when there is none."""
    for line in stdout.splitlines():
        m = _ERROR_RE.match(line)
        if m:
            return m.group(1) or "(empty error message)"
    return None


def is_failure(exit_code: int, stdout: str) -> bool:
    """vmrun failed: non-zero exit (255, -1, 4294967295 ...) or an `Error:` line even with exit 0."""
    return exit_code != 0 or error_message(stdout) is not None


def _content_lines(text: str) -> list[str]:
    return [ln.rstrip("\r") for ln in text.splitlines() if ln.strip()]


def parse_list(stdout: str) -> list[str]:
    """`vmrun list` → the running VMs' .vmx paths (as printed).

    Output: `Total running VMs: N` then one path per line. The count must match the lines that follow.
    """
    lines = _content_lines(stdout)
    if not lines:
        raise OutputFormatError("vmrun list printed nothing (expected 'Total running VMs: N')")
    m = _TOTAL_RUNNING_RE.match(lines[0])
    if not m:
        raise OutputFormatError(
            f"vmrun list: unexpected first line {lines[0]!r} (expected 'Total running VMs: N')"
        )
    paths = [ln.strip() for ln in lines[1:]]
    if int(m.group(1)) != len(paths):
        raise OutputFormatError(f"vmrun list announced {m.group(1)} running VMs but listed {len(paths)}")
    return paths


def parse_list_snapshots(stdout: str) -> list[str]:
    """`vmrun listSnapshots VMX` → snapshot names in the order vmrun lists them.

    Output: `Total snapshots: N` then one name per line (names may contain spaces; kept as printed).
    """
    lines = _content_lines(stdout)
    if not lines:
        raise OutputFormatError("vmrun listSnapshots printed nothing (expected 'Total snapshots: N')")
    m = _TOTAL_SNAPSHOTS_RE.match(lines[0])
    if not m:
        raise OutputFormatError(
            f"vmrun listSnapshots: unexpected first line {lines[0]!r} (expected 'Total snapshots: N')"
        )
    names = [ln.strip() for ln in lines[1:]]
    if int(m.group(1)) != len(names):
        raise OutputFormatError(
            f"vmrun listSnapshots announced {m.group(1)} snapshots but listed {len(names)}"
        )
    return names


def parse_guest_ip(stdout: str) -> str:
    """`vmrun getGuestIPAddress VMX -wait` → the IPv4 address on the last non-empty line."""
    lines = _content_lines(stdout)
    if not lines:
        raise OutputFormatError("vmrun getGuestIPAddress printed nothing")
    ip = lines[-1].strip()
    if not _IPV4_RE.match(ip) or any(int(o) > 255 for o in ip.split(".")):
        raise OutputFormatError(f"vmrun getGuestIPAddress: {ip!r} is not an IPv4 address")
    return ip


@dataclass(frozen=True)
class ProductVersion:
    product: str  # "Workstation", "Player", "Fusion"
    version: str  # "17.5.0"
    build: int

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0])

    def __str__(self) -> str:
        return f"VMware {self.product} {self.version} build-{self.build}"


def parse_vmx_version(text: str) -> ProductVersion | None:
    """`vmware-vmx -v` (prints on stderr) → product, version, build; None when no version line is found.

    Example: `VMware Workstation 17.5.0 build-22583795 Release`.
    """
    m = _VMX_VERSION_RE.search(text)
    if not m:
        return None
    return ProductVersion(product=m.group(1).capitalize(), version=m.group(2), build=int(m.group(3)))


def same_vmx(a: str, b: str) -> bool:
    """Two .vmx paths as vmrun prints them name the same VM (vmrun may print Windows paths; case-insensitive there)."""
    if a == b:
        return True
    if "\\" in a or "\\" in b or re.match(r"^[A-Za-z]:", a):
        return a.replace("/", "\\").lower() == b.replace("/", "\\").lower()
    return PurePath(a) == PurePath(b)


class VmrunFailure(Exception):
    """vmrun reported a failure: `detail` is its `Error:` text (else the last stderr line)."""

    def __init__(self, detail: str, exit_code: int):
        super().__init__(detail)
        self.detail = detail
        self.exit_code = exit_code


def parse_read_variable(stdout: str) -> str:
    """`vmrun readVariable VMX guestVar NAME` → the value (one line; an unset variable prints an empty line)."""
    lines = stdout.splitlines()
    return lines[0].rstrip("\r") if lines else ""


PARSERS = {"list": parse_list, "readVariable": parse_read_variable, "listSnapshots": parse_list_snapshots, "getGuestIPAddress": parse_guest_ip}


def interpret(command: str, exit_code: int, stdout: str, stderr: str = ""):
    """What one vmrun call means: the parsed result (None for commands without output), or VmrunFailure /
    OutputFormatError. The driver and the data-file tests (`tests/workstation/cases/vmrun/`) both use it."""
    if is_failure(exit_code, stdout):
        detail = error_message(stdout) or (stderr.strip().splitlines() or ["no error text"])[-1]
        raise VmrunFailure(detail, exit_code)
    parser = PARSERS.get(command)
    return parser(stdout) if parser else None
