"""Deploy VIBs onto lab hosts over SSH (labctl.remote), idempotently, reporting per host.

Per host (ESXi 5+; an offline bundle .zip goes the same way with `-d`):
  1. `esxcli software vib list`  -> same name and version installed: skipped (nothing uploaded); with --reboot,
     a pending reboot (`esxcli software vib list --rebooting-image` lists an image) is still carried out
  2. `esxcli software acceptance get` -> below the VIB's level? lower it with
     `esxcli software acceptance set --level=<VIB level>` only when allowed (--allow-community / the topology's
     `allow_community`), else fail with the exact command as the hint
  3. upload to /tmp (SFTP, else `cat >`), `esxcli software vib install -v /tmp/X.vib` with `--no-sig-check` only
     for an unsigned VIB (and `-f` only when asked), parse the Installation Result by key, remove the upload
  4. reboot required and --reboot: `reboot`, wait for the connection to drop and the host to answer again, then
     confirm the VIB is listed.
ESX/ESXi 4: `esxupdate [--nosigcheck] --vib=/tmp/X.vib update` with an ESX 4-format VIB (rpm/cross on ESX,
deb/cross on ESXi 4). ESX 3.5 has no VIBs.

Pure parts (parsers, the per-host decision) are separate from the SSH calls so they are tested with data.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.errors import ExitStatus, LabctlError, UsageError
from labctl.remote.command import sh

if TYPE_CHECKING:
    from labctl.remote.connection import Connection, LabConnections
    from labctl.remote.hosts import HostTarget

LEVELS = ["CommunitySupported", "PartnerSupported", "VMwareAccepted", "VMwareCertified"]
VIB_LEVEL = {"community": "CommunitySupported", "partner": "PartnerSupported", "accepted": "VMwareAccepted",
             "certified": "VMwareCertified"}
REMOTE_DIR = "/tmp"


# ---------------------------------------------------------------- what we deploy


@dataclass(frozen=True)
class VibInfo:
    path: Path
    kind: str  # esxi | esx4-rpm | esx4-deb | esx4-cross
    vib_id: str
    name: str
    version: str
    acceptance: str  # CommunitySupported ...
    signed: bool
    live_install: bool
    members: tuple[VibInfo, ...] = ()  # the VIBs of an offline bundle (kind "bundle")

    @property
    def remote_path(self) -> str:
        safe = re.sub(r"[^0-9A-Za-z_.-]", "_", self.path.stem if self.kind == "bundle" else self.vib_id)[:120]
        return f"{REMOTE_DIR}/labctl-{safe}.{'zip' if self.kind == 'bundle' else 'vib'}"

    @property
    def vibs(self) -> tuple[VibInfo, ...]:
        return self.members if self.kind == "bundle" else (self,)


def load_vib_info(path: Path) -> VibInfo:
    """Inspect the local VIB (every checksum verified); refuse to deploy one with errors."""
    from labctl.vib.inspect import inspect_path

    if not path.is_file():
        raise UsageError(f"{path}: no such VIB", hint="build it first: labctl vib build STAGE_DIR -o " + str(path))
    rep = inspect_path(path)
    errs = rep.all_errors()
    if errs:
        from labctl.vib.findings import printable

        raise LabctlError(f"{path} is not a valid VIB: {printable(errs[0].message)}", status=ExitStatus.USAGE,
                          hint=f"labctl vib inspect {path}")
    if rep.kind == "bundle":
        members = tuple(_info_from_report(path, v) for v in rep.vibs)
        if any(m.kind != "esxi" for m in members):
            raise UsageError(f"{path}: offline bundles of ESX 4 VIBs are not supported; deploy the .vib")
        lowest = min((m.acceptance for m in members), key=LEVELS.index)
        return VibInfo(path, "bundle", ", ".join(m.vib_id for m in members), path.stem, "", lowest,
                       all(m.signed for m in members), all(m.live_install for m in members), members)
    return _info_from_report(path, rep)


def _info_from_report(path: Path, rep) -> VibInfo:
    if rep.kind == "esxi":
        d = rep.descriptor
        assert d is not None
        return VibInfo(path, "esxi", d.vib_id, d.name, d.version, VIB_LEVEL.get(d.acceptance_level,
                       "CommunitySupported"), bool(rep.signature and rep.signature.present), d.live_install_allowed)
    e = rep.esx4
    return VibInfo(path, rep.kind, e.vib_id, e.name, e.version, "PartnerSupported",  # type: ignore[union-attr]
                   bool(rep.signature and rep.signature.present), not e.reboot_required)  # type: ignore[union-attr]


# ---------------------------------------------------------------- pure parsers


@dataclass(frozen=True)
class InstallResult:
    message: str
    installed: tuple[str, ...]
    removed: tuple[str, ...]
    skipped: tuple[str, ...]
    reboot_required: bool


def _ids(text: str) -> tuple[str, ...]:
    return tuple(x.strip() for x in text.split(",") if x.strip())


def parse_install_result(text: str) -> InstallResult:
    """`Installation Result` / `Removal Result` blocks by key (the order differs between 5.x-7.x and 8.x)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = re.match(r"^\s+([A-Za-z ]+):\s?(.*)$", line)
        if m:
            fields[m.group(1).strip()] = m.group(2).strip()
    if "Message" not in fields:
        raise ValueError("no Installation Result in the output")
    return InstallResult(
        message=fields["Message"],
        installed=_ids(fields.get("VIBs Installed", "")),
        removed=_ids(fields.get("VIBs Removed", "")),
        skipped=_ids(fields.get("VIBs Skipped", "")),
        reboot_required=fields.get("Reboot Required", "false").strip().lower() == "true",
    )


@dataclass(frozen=True)
class InstalledVib:
    name: str
    version: str
    vendor: str
    acceptance: str


def parse_vib_list(text: str) -> list[InstalledVib]:
    """`esxcli software vib list`: columns cut at the dashed rule (8.x adds Platforms)."""
    lines = text.splitlines()
    rule = next((i for i, ln in enumerate(lines) if ln.startswith("-") and set(ln) <= {"-", " "}), None)
    if rule is None:
        return []
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", lines[rule])]
    out = []
    for ln in lines[rule + 1:]:
        if not ln.strip():
            continue
        cells = [ln[a:(spans[i + 1][0] if i + 1 < len(spans) else len(ln))].strip() for i, (a, _) in enumerate(spans)]
        cells += [""] * (4 - len(cells))
        out.append(InstalledVib(cells[0], cells[1], cells[2], cells[3]))
    return out


def parse_acceptance(text: str) -> str:
    level = text.strip().splitlines()[-1].strip() if text.strip() else ""
    if level not in LEVELS:
        raise ValueError(f"unexpected acceptance level {level!r}")
    return level


def esxcli_error(text: str) -> str:
    """The `[Kind]` + message lines of an esxcli failure, on one line (the log hint dropped)."""
    lines = [ln.strip() for ln in text.strip().splitlines()
             if ln.strip() and "refer to the log file" not in ln]
    return " ".join(lines) or "(no output)"


# ---------------------------------------------------------------- per-host deployment


@dataclass
class HostOutcome:
    host: str
    status: str  # installed | skipped | planned (dry run) | failed | unreachable
    vib_id: str = ""
    message: str = ""
    reboot_required: bool = False
    rebooted: bool = False
    acceptance_changed: str | None = None  # "PartnerSupported -> CommunitySupported"
    upload: str | None = None  # sftp | cat
    hint: str | None = None
    steps: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("installed", "skipped", "planned")

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "status": self.status, "vib_id": self.vib_id, "message": self.message,
                "reboot_required": self.reboot_required, "rebooted": self.rebooted,
                "acceptance_changed": self.acceptance_changed, "upload": self.upload, "hint": self.hint,
                "steps": self.steps}


@dataclass(frozen=True)
class DeployOptions:
    allow_community: bool = False
    reboot: bool = False
    force: bool = False
    reboot_timeout: float = 600.0
    dry_run: bool = False  # read the facts, say what would be done, change nothing (for `labctl plan`)


class _HostFailed(Exception):
    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


def platform_problem(vib: VibInfo, flavor: str, version: tuple[int, ...]) -> str | None:
    """Why this VIB cannot go on this host at all (None: it can)."""
    major = version[0]
    label = f"{flavor.upper() if flavor == 'esx' else 'ESXi'} {'.'.join(map(str, version[:2]))}"
    if major < 4:
        return f"{label} has no VIBs (they arrived with vSphere 4.0)"
    if major == 4:
        if vib.kind in ("esxi", "bundle"):
            return f"{vib.vib_id} is an ESXi 5+ VIB; {label} needs an ESX 4 VIB (labctl vib build --format " \
                   f"{'esx4-rpm' if flavor == 'esx' else 'esx4-deb'})"
        if flavor == "esx" and vib.kind == "esx4-deb":
            return f"{label} installs rpm or cross VIBs; {vib.vib_id} is a deb VIB"
        if flavor == "esxi" and vib.kind == "esx4-rpm":
            return f"{label} installs deb or cross VIBs; {vib.vib_id} is an rpm VIB"
        return None
    if vib.kind not in ("esxi", "bundle"):
        return f"This VIB is a ESX 4.x VIB and is not supported on this version of ESX. ({label})"
    return None


def deploy_to_host(conn: Connection, target: HostTarget, vib: VibInfo, opts: DeployOptions) -> HostOutcome:
    out = HostOutcome(target.name, "failed", vib.vib_id)
    flavor, version = target.platform.flavor, tuple(target.platform.version)
    problem = platform_problem(vib, flavor, version)
    if problem:
        out.message = problem
        return out
    try:
        if version[0] == 4:
            _deploy_esx4(conn, vib, opts, out)
        else:
            _deploy_esxi(conn, vib, opts, out)
    except _HostFailed as e:
        out.status = "failed"
        out.message = e.message
        out.hint = e.hint
    return out


def _run(conn: Connection, argv: list[str], out: HostOutcome, timeout: float | None = None):
    out.steps.append(sh(argv))
    return conn.run(argv, timeout=timeout)


def _installed(conn: Connection, out: HostOutcome) -> list[InstalledVib]:
    r = _run(conn, ["esxcli", "software", "vib", "list"], out)
    if not r.ok:
        raise _HostFailed(f"`esxcli software vib list` failed: {esxcli_error(r.stdout + r.stderr)}")
    return parse_vib_list(r.stdout)


def _deploy_esxi(conn: Connection, vib: VibInfo, opts: DeployOptions, out: HostOutcome) -> None:
    have = {(v.name, v.version) for v in _installed(conn, out)}
    if all((m.name, m.version) in have for m in vib.vibs):
        out.status = "skipped"
        out.message = ", ".join(f"{m.name} {m.version}" for m in vib.vibs) + \
            (" is" if len(vib.vibs) == 1 else " are") + " already installed"
        if _reboot_pending(conn, out):
            out.reboot_required = True
            out.message += " (a reboot is pending)"
            if opts.reboot:
                _reboot_and_wait(conn, opts, out)
        return
    r = _run(conn, ["esxcli", "software", "acceptance", "get"], out)
    if not r.ok:
        raise _HostFailed(f"`esxcli software acceptance get` failed: {esxcli_error(r.stdout + r.stderr)}")
    try:
        host_level = parse_acceptance(r.stdout)
    except ValueError as e:
        raise _HostFailed(str(e)) from None
    install = ["esxcli", "software", "vib", "install", "-d" if vib.kind == "bundle" else "-v", vib.remote_path]
    if not vib.signed:
        install.append("--no-sig-check")
    if opts.force:
        install.append("-f")
    lower = LEVELS.index(vib.acceptance) < LEVELS.index(host_level)
    set_cmd = ["esxcli", "software", "acceptance", "set", f"--level={vib.acceptance}"]
    if lower and not opts.allow_community:
        raise _HostFailed(
            f"the host accepts {host_level} and above; {vib.vib_id} is {vib.acceptance}",
            hint=f"re-run with --allow-community (or allow_community: true on this file's own entry in the "
                 f"topology's vibs:) to run `{sh(set_cmd)}` first",
        )
    if opts.dry_run:
        out.status = "planned"
        todo = ([sh(set_cmd)] if lower else []) + [f"upload {vib.path.name}", sh(install)]
        out.message = "would run: " + "; ".join(todo)
        return
    if lower:
        r = _run(conn, set_cmd, out)
        if not r.ok:
            raise _HostFailed(f"lowering the acceptance level failed: {esxcli_error(r.stdout + r.stderr)}")
        out.acceptance_changed = f"{host_level} -> {vib.acceptance}"
    out.upload = conn.upload(vib.path, vib.remote_path)
    out.steps.append(f"upload {vib.path.name} -> {vib.remote_path} ({out.upload})")
    r = _run(conn, install, out, timeout=900)
    _run(conn, ["rm", "-f", vib.remote_path], out)
    if not r.ok:
        text = esxcli_error(r.stdout + r.stderr)
        hint = None
        if "extensibility rule" in text:
            hint = "the VIB puts files outside the community-allowed paths; fix the payload or deploy with --force"
        elif "VibSig" in text:
            hint = "the host does not trust the VIB's signer; deploy an unsigned build (installed with " \
                   "--no-sig-check) or add the signer to the host"
        raise _HostFailed(f"install failed: {text}", hint=hint)
    try:
        res = parse_install_result(r.stdout)
    except ValueError:
        raise _HostFailed(f"unexpected install output: {r.stdout.strip()[:200]}") from None
    ids = [m.vib_id for m in vib.vibs]
    if not res.installed and all(i in res.skipped for i in ids):
        out.status = "skipped"
        out.message = res.message
        return
    missing = [i for i in ids if i not in res.installed and i not in res.skipped]
    if missing:
        raise _HostFailed(f"install reported success but did not list {', '.join(missing)}: {res.message}")
    out.status = "installed"
    out.message = res.message
    out.reboot_required = res.reboot_required
    if res.reboot_required and opts.reboot:
        _reboot_and_wait(conn, opts, out)
        have = {(v.name, v.version) for v in _installed(conn, out)}
        if not all((m.name, m.version) in have for m in vib.vibs):
            raise _HostFailed(f"after the reboot {vib.vib_id} is not listed as installed")


def _reboot_pending(conn: Connection, out: HostOutcome) -> bool:
    """`esxcli software vib list --rebooting-image` lists the pending-reboot image, or prints nothing."""
    r = _run(conn, ["esxcli", "software", "vib", "list", "--rebooting-image"], out)
    return r.ok and bool(parse_vib_list(r.stdout))


def _deploy_esx4(conn: Connection, vib: VibInfo, opts: DeployOptions, out: HostOutcome) -> None:
    if opts.dry_run:  # esxupdate itself decides whether it is already installed
        out.status = "planned"
        out.message = (f"would run: upload {vib.path.name}; esxupdate {'--nosigcheck ' if not vib.signed else ''}"
                       f"--vib={vib.remote_path} update")
        return
    out.upload = conn.upload(vib.path, vib.remote_path)
    out.steps.append(f"upload {vib.path.name} -> {vib.remote_path} ({out.upload})")
    argv = ["esxupdate"] + (["--nosigcheck"] if not vib.signed else []) + [f"--vib={vib.remote_path}", "update"]
    r = _run(conn, argv, out, timeout=900)
    _run(conn, ["rm", "-f", vib.remote_path], out)
    text = (r.stdout + r.stderr).strip()
    if not r.ok:
        raise _HostFailed(f"esxupdate failed: {text.splitlines()[-1] if text else '(no output)'}")
    if "already up to date" in text:
        out.status = "skipped"
        out.message = text.splitlines()[-1]
        return
    out.status = "installed"
    out.message = text.splitlines()[-1] if text else "esxupdate finished"
    out.reboot_required = "needs to be rebooted" in text
    if out.reboot_required and opts.reboot:
        _reboot_and_wait(conn, opts, out)


def _reboot_and_wait(conn: Connection, opts: DeployOptions, out: HostOutcome) -> None:
    out.steps.append("reboot")
    try:
        conn.run(["reboot"], timeout=30)
    except LabctlError:
        pass  # the connection may go before the exit status arrives
    conn.wait_for_drop(min(60.0, opts.reboot_timeout))
    try:
        conn.wait_until_back(time.monotonic() + opts.reboot_timeout)
    except LabctlError as e:
        raise _HostFailed(f"rebooted but did not come back: {e.message}") from None
    out.rebooted = True
    out.reboot_required = False


# ---------------------------------------------------------------- many hosts


@dataclass
class DeployReport:
    vib: VibInfo
    hosts: list[HostOutcome]
    built: str | None = None  # the topology's on-demand build: "built PATH (N bytes) from STAGE" (plan: "build …")

    @property
    def ok(self) -> bool:
        return all(h.ok for h in self.hosts)

    @property
    def status(self) -> ExitStatus:
        if self.ok:
            return ExitStatus.SUCCESS
        if any(h.status == "unreachable" for h in self.hosts) and not any(h.status == "failed" for h in self.hosts):
            return ExitStatus.UNREACHABLE
        return ExitStatus.FAILED

    def to_json(self) -> dict[str, Any]:
        return {"vib": str(self.vib.path), "vib_id": self.vib.vib_id, "ok": self.ok,
                "hosts": [h.to_json() for h in self.hosts]}


def deploy(lab: LabConnections, targets: list[HostTarget], vib: VibInfo, opts: DeployOptions,
           *, max_workers: int = 8) -> DeployReport:
    """Deploy one VIB to the given hosts in parallel; one host failing stops nothing."""
    from labctl.errors import UnreachableError

    by_name = {t.name: t for t in targets}
    outcomes = lab.run_all([t.name for t in targets], lambda c: deploy_to_host(c, by_name[c.target.name], vib, opts),
                           max_workers=max_workers)
    hosts = []
    for o in outcomes:
        if o.error is None:
            hosts.append(o.value)
        else:
            status = "unreachable" if isinstance(o.error, UnreachableError) else "failed"
            hosts.append(HostOutcome(o.host, status, vib.vib_id, o.error.message, hint=o.error.hint))
    return DeployReport(vib, hosts)


def _newest_source(source: Path) -> float:
    return max((p.stat().st_mtime for p in source.rglob("*") if p.is_file()), default=0.0)


def needs_build(spec_file: Path, source: Path | None) -> bool:
    """A `vibs:` entry with a stage dir is (re)built when its file is missing or older than any stage file."""
    if source is None:
        return False
    if not spec_file.is_file():
        return True
    return _newest_source(source) > spec_file.stat().st_mtime


def ensure_built(spec_file: Path, source: Path | None) -> bool:
    """The pipeline's on-demand build (see needs_build). The release date is the newest stage file's mtime, so
    rebuilding unchanged sources gives the same bytes (and ID). A changed payload under the same version installs
    nowhere that already has that version: bump `version` in descriptor.yaml when the content changes."""
    if not needs_build(spec_file, source):
        return False
    from datetime import UTC, datetime

    from labctl.vib.build import BuildOptions, build_vib

    newest = _newest_source(source)
    date = datetime.fromtimestamp(int(newest), UTC).isoformat()
    spec_file.parent.mkdir(parents=True, exist_ok=True)
    build_vib(BuildOptions(stage=source, output=spec_file, release_date=date))
    import os
    import time

    stamp = max(time.time(), newest)  # not older than its sources, even when they carry future mtimes
    os.utime(spec_file, (stamp, stamp))
    return True


def deploy_topology_vibs(topology, lab: LabConnections, targets: list[HostTarget], *, reboot: bool = False,
                         only_hosts: list[str] | None = None, dry_run: bool = False) -> list[DeployReport]:
    """The pipeline stage: every entry of the topology's `vibs:` list onto its hosts (idempotent).
    dry_run: facts only; each host says "skipped" or "planned" with the commands it would run."""
    reports = []
    by_name = {t.name: t for t in targets}
    for spec in topology.vibs:
        file = Path(topology.vib_file(spec))
        source = Path(spec.source) if spec.source else None
        if not dry_run:
            built = ensure_built(file, source)
            report = _deploy_spec(lab, by_name, spec, load_vib_info(file), only_hosts, reboot, dry_run)
            if built:
                report.built = f"built {file} ({file.stat().st_size} bytes) from {source}"
            reports.append(report)
        elif source is not None and needs_build(file, source):
            tmp = Path(tempfile.mkdtemp(prefix="labctl-vib-plan-"))
            try:  # a dry run builds into a temporary directory only, to learn the VIB's ID
                ensure_built(tmp / file.name, source)
                info = replace(load_vib_info(tmp / file.name), path=file)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            report = _deploy_spec(lab, by_name, spec, info, only_hosts, reboot, dry_run)
            report.built = f"build {file} from {source}"
            reports.append(report)
        else:
            reports.append(_deploy_spec(lab, by_name, spec, load_vib_info(file), only_hosts, reboot, dry_run))
    return reports


def _deploy_spec(lab, by_name, spec, info: VibInfo, only_hosts, reboot: bool, dry_run: bool) -> DeployReport:
    names = [h for h in spec.hosts if only_hosts is None or h in only_hosts]
    missing = [h for h in names if h not in by_name]
    if missing:
        raise UsageError(f"vibs: {', '.join(missing)} not among the hosts being deployed to")
    return deploy(lab, [by_name[h] for h in names], info,
                  DeployOptions(allow_community=spec.allow_community, reboot=reboot, dry_run=dry_run))


# ---------------------------------------------------------------- CLI


def render_report(report: DeployReport) -> list[str]:
    lines = [f"{report.vib.vib_id} ({report.vib.path.name})"]
    for h in report.hosts:
        extra = []
        if h.acceptance_changed:
            extra.append(f"acceptance {h.acceptance_changed}")
        if h.rebooted:
            extra.append("rebooted")
        elif h.reboot_required:
            extra.append("REBOOT REQUIRED (re-run with --reboot, or reboot the host)")
        tail = f" [{'; '.join(extra)}]" if extra else ""
        lines.append(f"  {h.host:<16} {h.status:<11} {h.message}{tail}")
        if h.hint and not h.ok:
            lines.append(f"  {'':<16} hint: {h.hint}")
    ok = sum(1 for h in report.hosts if h.ok)
    lines.append(f"{ok}/{len(report.hosts)} host(s) ok")
    return lines


def _topology_allows(topology, vib: VibInfo) -> bool:
    """Whether the topology's `vibs:` entry for exactly this file (the same resolved path) allows community VIBs.

    Only that entry speaks for the file: another file under the same name (a build in /tmp, a download) is not the
    one the topology vouches for, so lowering a host's acceptance level for it takes --allow-community."""
    try:
        mine = vib.path.resolve()
    except OSError:
        return False
    for spec in getattr(topology, "vibs", ()):
        try:
            if Path(topology.vib_file(spec)).resolve() == mine:
                return bool(spec.allow_community)
        except OSError:
            continue
    return False
