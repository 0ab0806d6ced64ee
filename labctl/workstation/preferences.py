"""LAN segments (named pvnIDs) in the user's Workstation preferences.

Workstation keeps LAN-segment names per user, in `~/.vmware/preferences` on Linux (`%APPDATA%\\VMware\\
preferences.ini` on Windows), as .vmx-syntax keys (workstation.md §7):

    pref.namedPVNs.count = "2"
    pref.namedPVNs0.name = "esx-vmotion"
    pref.namedPVNs0.pvnID = "52 8c 98 ed 46 f0 ae 00-28 76 d2 99 3a 4d 1c 60"

A VM's NIC is joined to a segment by `ethernetN.pvnID`; the name only labels the segment in the GUI. Adding the
lab's segments is idempotent: a pvnID already listed is left alone (its name is updated when it differs).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labctl.topology.model import Topology


@dataclass(frozen=True)
class LanSegment:
    name: str
    pvn_id: str


def _norm(pvn: str) -> str:
    return " ".join(pvn.lower().replace("-", " ").split())


def default_preferences_path(environ: dict[str, str] | None = None) -> Path:
    """The invoking user's preferences file (under sudo: SUDO_USER's home, not root's)."""
    environ = dict(os.environ if environ is None else environ)
    if os.name == "nt":  # pragma: no cover - Windows
        return Path(environ.get("APPDATA", "~")) / "VMware" / "preferences.ini"
    home = environ.get("HOME") or os.path.expanduser("~")
    sudo_user = environ.get("SUDO_USER")
    if sudo_user and sudo_user != "root":
        import pwd

        try:
            home = pwd.getpwnam(sudo_user).pw_dir
        except KeyError:
            pass
    return Path(home) / ".vmware" / "preferences"


def listed_segments(text: str | bytes) -> list[LanSegment]:
    from labctl.render import vmx as vmxlib

    doc = vmxlib.parse(text)
    try:
        count = int(doc.get("pref.namedPVNs.count") or "0")
    except ValueError:
        count = 0
    out = []
    for i in range(count):
        name, pvn = doc.get(f"pref.namedPVNs{i}.name"), doc.get(f"pref.namedPVNs{i}.pvnID")
        if pvn:
            out.append(LanSegment(name or "", pvn))
    return out


def add_segments(text: str | bytes, segments: Iterable[LanSegment]) -> tuple[bytes, list[str]]:
    """Pure: the preferences content with the segments listed, and what changed (empty: nothing to do)."""
    from labctl.render import vmx as vmxlib

    doc = vmxlib.parse(text)
    try:
        count = int(doc.get("pref.namedPVNs.count") or "0")
    except ValueError:
        count = 0
    by_id = {}
    for i in range(count):
        pvn = doc.get(f"pref.namedPVNs{i}.pvnID")
        if pvn:
            by_id[_norm(pvn)] = i
    changes: list[str] = []
    for seg in segments:
        i = by_id.get(_norm(seg.pvn_id))
        if i is not None:
            if doc.get(f"pref.namedPVNs{i}.name") != seg.name:
                doc.set(f"pref.namedPVNs{i}.name", seg.name)
                changes.append(f"renamed LAN segment {seg.pvn_id} to {seg.name!r}")
            continue
        doc.set(f"pref.namedPVNs{count}.name", seg.name)
        doc.set(f"pref.namedPVNs{count}.pvnID", seg.pvn_id)
        by_id[_norm(seg.pvn_id)] = count
        count += 1
        changes.append(f"added LAN segment {seg.name!r} ({seg.pvn_id})")
    if changes:
        doc.set("pref.namedPVNs.count", str(count))
    return doc.dump_bytes(), changes


def ensure_segments(path: Path, segments: Iterable[LanSegment], *, dry_run: bool = False) -> list[str]:
    """Add the segments to the preferences file at `path` (created when missing). Returns the changes: made
    ("added LAN segment ...") or, with dry_run, to make ("add LAN segment ..."; nothing is written)."""
    from labctl.workstation import sysfiles

    path = Path(path)
    try:
        before = path.read_bytes()
    except FileNotFoundError:
        before = b'.encoding = "UTF-8"\n'
    after, changes = add_segments(before, segments)
    if dry_run:
        return [_to_be_done(c) for c in changes]
    if changes:
        owner = None
        if not path.exists():
            parent = path.parent if path.parent.exists() else path.parent.parent
            st = parent.stat()
            owner = (st.st_uid, st.st_gid)
        sysfiles.replace_file(path, after, mode=0o600, owner=owner)
    return changes


def _to_be_done(change: str) -> str:
    for done, todo in (("added ", "add "), ("renamed ", "rename ")):
        if change.startswith(done):
            return todo + change[len(done):]
    return change


def lab_segments(topology: Topology) -> list[LanSegment]:
    return [LanSegment(n.name, n.pvn_id) for n in topology.networks if n.type == "lan-segment" and n.pvn_id]
