"""Plain typed inputs and results of the vSphere layer (no pyVmomi here).

The core functions take these; `labctl.vsphere.adapter` maps a Topology onto them, and `plan/up` print the
`Result` the same way `labctl vcenter` does.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ClusterSpec:
    """One cluster as the lab wants it. `hosts` are the names vCenter knows the hosts by (management IPs)."""

    name: str
    hosts: tuple[str, ...] = ()
    ha_enabled: bool = True
    isolation_addresses: tuple[str, ...] = ()
    gateway_less: bool = False  # the management segment has no gateway: das.usedefaultisolationaddress=false


@dataclass(frozen=True)
class HostLogin:
    """What vCenter needs to add a host (AddHost_Task). The password never leaves memory."""

    user: str = "root"
    password: str | None = field(default=None, repr=False)
    password_env: str | None = None  # named in error messages when the password is missing
    thumbprint: str | None = None  # pinned SSL thumbprint (SHA-1, colon separated)
    pinned: bool = False  # the host was pinned explicitly (known_hosts): accept the certificate vCenter reports


@dataclass(frozen=True)
class NfsSpec:
    """One NFS datastore to mount on `hosts` (vCenter host names) with localPath = `name`."""

    name: str
    server: str
    share: str
    hosts: tuple[str, ...]
    readonly: bool = False


@dataclass(frozen=True)
class Change:
    """One change, made or (with --dry-run) to be made."""

    stage: str  # vcenter | ha | nfs
    target: str  # datacenter, cluster or host name
    description: str

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage, "target": self.target, "description": self.description}


@dataclass(frozen=True)
class Failure:
    stage: str
    target: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage, "target": self.target, "message": self.message}


@dataclass
class Result:
    """What an operation changed (or would change) and what failed; failures never stop the other targets."""

    changes: list[Change] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        return not self.failures

    def extend(self, other: Result) -> None:
        self.changes += other.changes
        self.failures += other.failures
        self.notes += other.notes

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "changes": [c.to_json() for c in self.changes],
            "failures": [f.to_json() for f in self.failures],
            "notes": list(self.notes),
        }

    def lines(self) -> list[str]:
        """Human output: one line per change, then the failures."""
        verb = "would " if self.dry_run else ""
        out = [f"[{c.stage}] {c.target}: {verb}{c.description}" for c in self.changes]
        out += [f"note: {n}" for n in self.notes]
        if not self.changes and not self.failures:
            out.append("nothing to change")
        if self.failures:
            out.append(f"{len(self.failures)} failed:")
            out += [f"  FAILED [{f.stage}] {f.target}: {f.message}" for f in self.failures]
        return out
