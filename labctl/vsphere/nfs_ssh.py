"""NFS datastores over SSH, for labs without a vCenter (or `labctl nfs --via ssh`).

Facts (a command per platform + a pure parser):
- ESX classic and ESXi before 5.0: `esxcfg-nas -l` -> lines `NAME is SHARE from HOST [mounted|unmounted] [available]`
  (the suffixes vary by version [M]; an empty list prints a message that is not a mount line [L]).
- ESXi 5.0+: `esxcli storage nfs list` -> a table; columns are cut at the dashed rule because volume names may
  hold spaces and 5.x lacks the Read-Only column [M].
Changes: `esxcfg-nas -a -o HOST -s SHARE [-y] NAME` / `esxcli storage nfs add -H HOST -s SHARE -v NAME [-r]`.
Idempotent exactly like the vCenter path (operations.plan_nfs): same name and share = nothing to do; same name,
other share = an error naming both; the share under another name = an error; one host failing stops nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

from labctl.vsphere.model import Change, Failure, NfsSpec, Result

if TYPE_CHECKING:
    from labctl.topology import Topology


@dataclass(frozen=True)
class NasMount:
    name: str
    server: str
    share: str
    readonly: bool | None = None
    mounted: bool | None = None


def uses_esxcli(flavor: str, version: tuple[int, ...]) -> bool:
    return flavor == "esxi" and tuple(version[:2]) >= (5, 0)


def list_command(flavor: str, version: tuple[int, ...]) -> list[str]:
    return ["esxcli", "storage", "nfs", "list"] if uses_esxcli(flavor, version) else ["esxcfg-nas", "-l"]


def add_command(flavor: str, version: tuple[int, ...], spec: NfsSpec) -> list[str]:
    if uses_esxcli(flavor, version):
        argv = ["esxcli", "storage", "nfs", "add", "-H", spec.server, "-s", spec.share, "-v", spec.name]
        return argv + (["-r"] if spec.readonly else [])
    return ["esxcfg-nas", "-a", "-o", spec.server, "-s", spec.share, *(["-y"] if spec.readonly else []), spec.name]


_NAS_LINE = re.compile(r"^(?P<name>.+?) is (?P<share>\S+) from (?P<server>\S+)(?P<rest>(?:\s+\S+)*)\s*$")


def parse_esxcfg_nas_list(text: str) -> list[NasMount]:
    """`esxcfg-nas -l`. Lines that are not mount lines (the empty-list message) are skipped."""
    out = []
    for line in text.splitlines():
        m = _NAS_LINE.match(line.strip())
        if not m:
            continue
        words = m.group("rest").split()
        mounted = True if "mounted" in words else False if "unmounted" in words else None
        out.append(NasMount(m.group("name"), m.group("server"), m.group("share"), None, mounted))
    return out


def _bool(text: str | None) -> bool | None:
    if text is None:
        return None
    t = text.strip().lower()
    return True if t == "true" else False if t == "false" else None


def parse_table(text: str) -> list[dict[str, str]]:
    """An esxcli table: header, dashed rule, rows; columns cut at the rule's dash groups (cells may hold spaces)."""
    lines = [line for line in text.splitlines() if line.strip()]
    rule_idx = next((i for i, line in enumerate(lines) if re.fullmatch(r"[-\s]+", line) and "-" in line), None)
    if rule_idx is None or rule_idx == 0:
        return []
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[rule_idx])]
    cuts = [s for s, _ in spans] + [None]
    header = lines[rule_idx - 1]
    names = [header[cuts[i]:cuts[i + 1]].strip() for i in range(len(spans))]
    rows = []
    for line in lines[rule_idx + 1:]:
        cells = [line[cuts[i]:cuts[i + 1]].strip() if cuts[i] < len(line) else "" for i in range(len(spans))]
        rows.append(dict(zip(names, cells)))
    return rows


def parse_esxcli_nfs_list(text: str) -> list[NasMount]:
    return [
        NasMount(r.get("Volume Name", ""), r.get("Host", ""), r.get("Share", ""), _bool(r.get("Read-Only")),
                 _bool(r.get("Mounted")))
        for r in parse_table(text)
        if r.get("Volume Name")
    ]


def parse_list(flavor: str, version: tuple[int, ...], text: str) -> list[NasMount]:
    return parse_esxcli_nfs_list(text) if uses_esxcli(flavor, version) else parse_esxcfg_nas_list(text)


def _same(m: NasMount, spec: NfsSpec) -> bool:
    return m.server.lower() == spec.server.lower() and m.share.rstrip("/") == spec.share.rstrip("/")


def plan_host(host: str, mounts: Sequence[NasMount], specs: Sequence[NfsSpec]
              ) -> tuple[list[NfsSpec], list[Change], list[Failure]]:
    """What to mount on one host, given what it has."""
    todo, changes, failures = [], [], []
    for spec in specs:
        have = next((m for m in mounts if m.name == spec.name), None)
        if have is not None:
            if not _same(have, spec):
                failures.append(Failure("nfs", host, f"datastore {spec.name} is mounted from {have.server}:"
                                        f"{have.share}, the topology wants {spec.server}:{spec.share}; unmount it "
                                        "or rename one of them"))
            continue
        other = next((m for m in mounts if _same(m, spec)), None)
        if other is not None:
            failures.append(Failure("nfs", host, f"{spec.server}:{spec.share} is already mounted as datastore "
                                    f"{other.name}, the topology names it {spec.name}"))
            continue
        todo.append(spec)
        changes.append(Change("nfs", host, f"mount {spec.server}:{spec.share} as {spec.name}"
                              f"{' read-only' if spec.readonly else ''}"))
    return todo, changes, failures


@dataclass(frozen=True)
class SshHost:
    """One host for the SSH path: lab name, platform, and the datastores it should have."""

    name: str
    flavor: str
    version: tuple[int, ...]
    datastores: tuple[NfsSpec, ...]


Runner = Callable[[str, list[str]], Any]  # (host, argv) -> object with exit_status, stdout, stderr


def converge_host(run: Runner, host: SshHost, dry_run: bool) -> Result:
    """List, plan, add; for one host. `run` is the SSH layer (or any runner with the same result shape)."""
    result = Result(dry_run=dry_run)
    listing = run(host.name, list_command(host.flavor, host.version))
    if listing.exit_status != 0:
        result.failures.append(Failure("nfs", host.name, f"listing NFS mounts failed (exit {listing.exit_status}): "
                                       f"{_last_line(listing)}"))
        return result
    mounts = parse_list(host.flavor, host.version, listing.stdout)
    todo, result.changes, result.failures = plan_host(host.name, mounts, host.datastores)
    if dry_run:
        return result
    for spec in todo:
        r = run(host.name, add_command(host.flavor, host.version, spec))
        if r.exit_status != 0:
            result.failures.append(Failure("nfs", host.name, f"mounting {spec.server}:{spec.share} as {spec.name} "
                                           f"failed: {_last_line(r)}"))
    return result


def _last_line(r: Any) -> str:
    text = (r.stderr or "").strip() or (r.stdout or "").strip()
    return text.splitlines()[-1] if text else f"exit {r.exit_status}"


def ssh_hosts(topo: Topology, specs_by_name: Mapping[str, Sequence[NfsSpec]] | None = None) -> list[SshHost]:
    """Per topology host (by lab name) the NFS datastores it should mount."""
    wanted: dict[str, list[NfsSpec]] = {}
    for d in topo.datastores:
        if not d.type.lower().startswith("nfs"):
            continue
        for h in d.hosts:
            wanted.setdefault(h, []).append(NfsSpec(d.name, d.server, d.share, (h,), d.readonly))
    out = []
    for h in topo.esx_hosts:
        if h.name in wanted:
            v = h.version_info
            out.append(SshHost(h.name, h.flavor, (v.major, v.minor, v.update), tuple(wanted[h.name])))
    return out


def mount_over_ssh(topo: Topology, settings: Any, *, dry_run: bool = False) -> Result:
    """One SSH connection per host (labctl.remote, `settings` = its ConnectSettings), hosts converged in parallel."""
    from labctl.remote.connection import LabConnections
    from labctl.remote.hosts import targets_from_topology

    hosts = ssh_hosts(topo)
    total = Result(dry_run=dry_run)
    if not hosts:
        total.notes.append("the topology lists no NFS datastores")
        return total
    by_name = {h.name: h for h in hosts}
    with LabConnections(targets_from_topology(topo, list(by_name)), settings) as lab:
        def run(host: str, argv: list[str]):
            return lab.run(host, argv)

        outcomes = lab.run_all(list(by_name), lambda conn: converge_host(run, by_name[conn.target.name], dry_run))
    for o in outcomes:
        if o.ok:
            total.extend(o.value)
        else:
            total.failures.append(Failure("nfs", o.host, o.error.message if o.error else "failed"))
    return total
