"""`esxcli software ...` (ESXi 5+) and `esxupdate` (ESX/ESXi 4) on simulated hosts — owned by the VIB engineer.

The uploaded VIB is read from the host's filesystem with labctl's own VIB parser (labctl.vib), and the rules of
shared/reference/vib.md sections 4, 5 and 7 are enforced with their real messages:
- paths must be absolute (`[VibDownloadError] ... unknown url type`);
- the archive's member order (first member descriptor.xml, second sig.pkcs7, an ESX 4 VIB refused);
- payload checksums (`Calculated digest at EOF does not match expected result`), and on 8.x the sha-256 gunzip
  requirement (`[ProfileValidationError]`);
- acceptance level vs. the host's (a fresh host is PartnerSupported) — `[AcceptanceConfigError]`;
- the signature unless --no-sig-check. The simulated trust store: VMware's "VMware Certified VIB Signing"
  signer, plus any PEM certificate in /etc/vmware/vib-trust/ on the host [L: labctl's model of the host's CA
  store; a real host trusts only VMware's CAs];
- extensibility rules for community VIBs unless -f — `[VibValidationError] ... violates extensibility rule checks`;
- re-installing the same VIB ID with other content — `[ValueError] VIBs X and X have unequal values of the
  'payloads' attribute`; the same content again is skipped ("Host is not changed.");
- live install vs. reboot required (live-install-allowed=false, or --no-live-install).
Messages marked [L] in the comments are labctl's rendering where the reference has no sample.

State: each installed VIB is a `Vib` in `state.vibs` with `extra` = {id, type, payloads (name -> sha-256),
live_remove, files, depends, provides, reboot_pending_boot}. Live installs also place the payload's small regular
files on the host filesystem (as the live image does).
"""

from __future__ import annotations

import io
import posixpath
import tarfile
import time
from typing import Any, Callable

from labctl.sim.commands import Invocation, Result, UsageFailure, command, parse_options

LEVELS = ["CommunitySupported", "PartnerSupported", "VMwareAccepted", "VMwareCertified"]
SHORT = {"community": "CommunitySupported", "partner": "PartnerSupported", "accepted": "VMwareAccepted",
         "certified": "VMwareCertified"}
LONG_TO_SHORT = {v: k for k, v in SHORT.items()}
TRUST_DIR = "/etc/vmware/vib-trust"
VMWARE_SIGNER = "VMware Certified VIB Signing"
LIVE_FILE_CAP = 1 << 20
LOG_HINT = "Please refer to the log file for more details."
ERROR_SEVERITY = "error"


class EsxcliError(Exception):
    """An esxcli software failure: `[Kind]` and message lines, printed like esxcli does (exit 1)."""

    def __init__(self, kind: str, *lines: str):
        super().__init__(kind)
        self.kind = kind
        self.lines = lines

    def render(self) -> str:
        body = "\n".join(f" {ln}" for ln in self.lines)
        return f"[{self.kind}]\n{body}\n {LOG_HINT}\n"


def _esxi5(st) -> bool:
    return st.flavor == "esxi" and st.release >= (5, 0)


def _esx4(st) -> bool:
    return st.flavor in ("esx", "esxi") and st.release[0] == 4


def _fail(e: EsxcliError) -> Result:
    return Result(1, e.render(), "")


# ---------------------------------------------------------------- reading a VIB from the host


class _Loaded:
    def __init__(self, url: str, report, desc_line: int, opener: Callable[[], Any]):
        self.url = url
        self.report = report
        self.desc = report.descriptor
        self.desc_line = desc_line
        self.opener = opener  # () -> a fresh binary file object holding the VIB


def _open_host_file(inv: Invocation, path: str):
    fs = inv.fs
    if path in fs.state.blobs:
        return open(fs.blob_path(path), "rb")
    return io.BytesIO(fs.read(path))


def _load_vib(inv: Invocation, url: str) -> _Loaded:
    url_path = url[len("file://"):] if url.startswith("file://") else url
    if not url_path.startswith("/"):
        if "://" in url:
            raise EsxcliError("VibDownloadError", f"('{url}', '', '<urlopen error simulated host has no network "
                                                  f"access>')", f"url = {url}")  # [L]
        raise EsxcliError("VibDownloadError", f"('{url}', '/tmp/vibtransaction/{posixpath.basename(url)}', "
                                              f"\"unknown url type: '{url}'\")", f"url = {url}")
    if not inv.fs.is_file(url_path):
        raise EsxcliError("VibDownloadError", f"('{url}', '/tmp/vibtransaction/{posixpath.basename(url_path)}', "
                                              f"\"[Errno 2] No such file or directory: '{url_path}'\")",
                          f"url = {url}")  # [L]
    return _load_from(url, url_path, lambda: _open_host_file(inv, url_path))


def _load_from(url: str, label: str, opener: Callable[[], Any]) -> _Loaded:
    """Inspect a VIB with labctl's parser; refuse it with esximage's messages."""
    from labctl.vib import ar as arlib
    from labctl.vib.findings import ERROR
    from labctl.vib.inspect import inspect_vib

    with opener() as fh:
        rep = inspect_vib(fh, label)
        desc_line = 1
        if rep.descriptor is not None:
            fh.seek(0)
            a = arlib.read_ar(fh)
            head = arlib.read_member(fh, a.members[0], 1 << 20)
            desc_line = head[: head.find(b"<vib")].count(b"\n") + 1 if b"<vib" in head else 1
    if rep.kind.startswith("esx4"):
        raise EsxcliError("VibFormatError", f"Error parsing VIB {label}: This VIB is a ESX 4.x VIB and is not "
                                            "supported on this version of ESX.")
    errors = [f.message for f in rep.findings if f.severity == ERROR]
    for p in rep.payloads:
        for c in p.checksums:
            if not c["ok"]:
                raise EsxcliError("VibFormatError", f"Error in VIB {rep.vib_id}: Calculated digest at EOF does not "
                                                    f"match expected result: {c['actual']} calculated, "
                                                    f"{c['expected']} expected.")
        errors += [f.message for f in p.findings if f.severity == ERROR]
    if rep.descriptor is None or errors:
        raise EsxcliError("VibFormatError", f"Error parsing VIB {label}: {errors[0] if errors else 'unreadable'}")
    return _Loaded(url, rep, desc_line, opener)


def _load_depot(inv: Invocation, depot: str, names: list[str]) -> list[_Loaded]:
    """The VIBs of an offline bundle on the host (`-d /ABS/bundle.zip`), optionally only those named by -n."""
    import zipfile

    from labctl.vib.inspect import inspect_bundle

    path = depot[len("file://"):] if depot.startswith("file://") else depot
    where = f"zip:{path}?index.xml"

    def meta_error(why: str) -> EsxcliError:
        return EsxcliError("MetadataDownloadError", f"Could not download from depot at {where}, skipping "
                                                    f"(('{where}', '', \"{why}\"))", f"url = {where}")  # [M]

    if not path.startswith("/") or not inv.fs.is_file(path):
        raise meta_error(f"Error extracting index.xml from {path}: [Errno 2] No such file or directory: '{path}'")
    with _open_host_file(inv, path) as fh:
        rep = inspect_bundle(fh, path)
        errs = [f.message for f in rep.findings if f.severity == ERROR_SEVERITY]
        if errs:
            raise meta_error(errs[0])
        fh.seek(0)
        with zipfile.ZipFile(fh) as z:
            blobs = {zi.filename: z.read(zi) for zi in z.infolist()
                     if zi.filename.endswith(".vib") and zi.file_size <= 512 * 1024 * 1024}
    out = []
    for entry, data in sorted(blobs.items()):
        loaded = _load_from(depot, f"{path}!{entry}", lambda d=data: io.BytesIO(d))
        if names and loaded.desc.name not in names and loaded.desc.vib_id not in names:
            continue
        out.append(loaded)
    if names and not out:
        raise EsxcliError("NoMatchError", f"No VIB matching VIB search specification '{names[0]}'.")
    return out


# ---------------------------------------------------------------- the install transaction


def _payload_key(desc) -> dict[str, str]:
    out = {}
    for p in desc.payloads:
        for c in p.checksums:
            if c.type == "sha-256" and not c.verify_process:
                out[p.name] = c.value
    return out


def _find(state, name: str):
    return next((v for v in state.vibs if v.name == name), None)


def _vib_id(v) -> str:
    return v.extra.get("id") or f"{v.vendor}_bootbank_{v.name}_{v.version}"


def _provided(state) -> set[str]:
    names = set()
    for v in state.vibs:
        names.add(v.name)
        names.update(v.extra.get("provides", []))
    return names


def _check_depends(state, desc, vib_id: str) -> None:
    provided = _provided(state)
    for c in desc.depends:
        # [L] the base image provides the vmkapi/driver API names drivers depend on
        if c.name in provided or c.name.startswith(("vmkapi", "com.vmware.")):
            continue
        raise EsxcliError("DependencyError", f"VIB {vib_id} requires {c.name}, but the requirement cannot be "
                                             "satisfied within the ImageProfile.")
    for c in desc.conflicts:
        other = _find(state, c.name)
        if other is not None:
            raise EsxcliError("DependencyError", f"VIB {vib_id} conflicts with {_vib_id(other)}")  # [L]


def _result(title: str, state, message: str, installed: list[str], removed: list[str], skipped: list[str],
            reboot: bool) -> str:
    rb = "true" if reboot else "false"
    lines = [title, f"   Message: {message}"]
    if state.release >= (8, 0):
        lines += [f"   VIBs Installed: {', '.join(installed)}", f"   VIBs Removed: {', '.join(removed)}",
                  f"   VIBs Skipped: {', '.join(skipped)}", f"   Reboot Required: {rb}", "   DPU Results: "]
    else:
        lines += [f"   Reboot Required: {rb}", f"   VIBs Installed: {', '.join(installed)}",
                  f"   VIBs Removed: {', '.join(removed)}", f"   VIBs Skipped: {', '.join(skipped)}"]
    return "\n".join(ln.rstrip() if ln.endswith(": ") and "DPU" not in ln else ln for ln in lines) + "\n"


def _place_files(inv: Invocation, loaded: _Loaded) -> list[str]:
    """Live install: put the payloads' small regular files on the host filesystem."""
    from labctl.vib import ar as arlib
    from labctl.vib.payload import GunzipReader, check_path

    placed: list[str] = []
    with loaded.opener() as fh:
        a = arlib.read_ar(fh)
        for spec in loaded.desc.payloads:
            if spec.type != "tgz":
                continue  # [L] vgz/vmtar payloads are recorded in the file list, not unpacked
            m = a.get(spec.name)
            if m is None:
                continue
            reader = GunzipReader(arlib.iter_member(fh, m), what=f"payload {spec.name!r}")
            with tarfile.open(fileobj=reader, mode="r|") as tf:
                for ti in tf:
                    rel = check_path(ti.name, spec.name)
                    target = "/" + rel
                    if ti.isdir():
                        inv.fs.mkdir(target, parents=True)
                    elif ti.isreg() and ti.size <= LIVE_FILE_CAP:
                        data = tf.extractfile(ti)
                        inv.fs.mkdir(posixpath.dirname(target), parents=True)
                        inv.fs.write(target, data.read() if data else b"")
                        placed.append(target)
    return placed


def _install(inv: Invocation, update: bool) -> Result:
    spec = {"viburl": ("v", True), "depot": ("d", True), "vibname": ("n", True), "no-sig-check": (None, False),
            "force": ("f", False), "dry-run": (None, False), "maintenance-mode": (None, False),
            "no-live-install": (None, False), "proxy": (None, True), "ok-to-remove": (None, False)}
    urls: list[str] = []
    args = list(inv.args)
    # -v may repeat
    rest_args: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-v", "--viburl") and i + 1 < len(args):
            urls.append(args[i + 1])
            i += 2
            continue
        if a.startswith("--viburl="):
            urls.append(a.split("=", 1)[1])
            i += 1
            continue
        if a.startswith("-v") and len(a) > 2 and not a.startswith("--"):
            urls.append(a[2:])
            i += 1
            continue
        rest_args.append(a)
        i += 1
    try:
        opts, rest = parse_options(rest_args, spec)
    except UsageFailure as e:
        return Result(1, "", e.err)
    if rest:
        return Result(1, "", f"Error: Unexpected argument {rest[0]}\n")  # [L]
    if opts.get("proxy"):
        return Result(1, "", "sim: --proxy is not modelled\n")
    if not urls and not opts.get("depot"):
        return Result(1, "", "Error: At least one of --depot or --viburl must be specified.\n")  # [L]
    if urls and opts.get("depot"):
        return Result(1, "", "sim: combining --viburl and --depot is not modelled\n")
    state = inv.state
    force = bool(opts.get("force"))
    host_level = state.acceptance_level
    installed: list[str] = []
    removed: list[str] = []
    skipped: list[str] = []
    reboot = False
    plan: list[tuple[_Loaded, Any]] = []
    try:
        if opts.get("depot"):
            names = [opts["vibname"]] if opts.get("vibname") else []
            sources = _load_depot(inv, opts["depot"], names)
        else:
            sources = [_load_vib(inv, url) for url in urls]
        for loaded in sources:
            d = loaded.desc
            vib_id = d.vib_id
            if state.release >= (8, 0):
                for p in d.payloads:
                    if not any(c.type == "sha-256" and c.verify_process == "gunzip" for c in p.checksums):
                        raise EsxcliError("ProfileValidationError", f"In ImageProfile (Updated) {state.hostname}, "
                                          f"the payload(s) in VIB {vib_id} does not have sha-256 gunzip checksum. "
                                          "This will prevent VIB security verification and secure boot from "
                                          "functioning properly. Please remove this VIB or please check with your "
                                          "vendor for a replacement of this VIB.")
            existing = _find(state, d.name)
            if existing is not None and _vib_id(existing) == vib_id:
                if existing.extra.get("payloads") != _payload_key(d):
                    raise EsxcliError("ValueError", f"VIBs {vib_id} and {vib_id} have unequal values of the "
                                                    f"'payloads' attribute: '{existing.extra.get('payloads')}' != "
                                                    f"'{_payload_key(d)}'")
                skipped.append(vib_id)
                continue
            if update:
                from labctl.vib.descriptor import compare_versions

                if existing is None or compare_versions(d.version, existing.version) <= 0:
                    skipped.append(vib_id)
                    continue
            level = SHORT.get(d.acceptance_level, "CommunitySupported")
            if LEVELS.index(level) < LEVELS.index(host_level) and not force:
                raise EsxcliError("AcceptanceConfigError",
                                  f"VIB {vib_id}'s acceptance level is {d.acceptance_level}, which is not compliant "
                                  f"with the ImageProfile acceptance level {LONG_TO_SHORT[host_level]}",
                                  "To change the host acceptance level, use the 'esxcli software acceptance set' "
                                  "command.")
            if not opts.get("no-sig-check"):
                sig = loaded.report.signature
                if sig is None or not sig.present:
                    raise EsxcliError("VibSigMissingError", f"('{vib_id}', 'Signature is missing for VIB "
                                                            f"{vib_id}; use --no-sig-check to skip the check.')")  # [L]
                if not sig.valid:
                    raise EsxcliError("VibSigInvalidError", f"('{vib_id}', 'Signature of VIB {vib_id} is "
                                                            f"invalid: {sig.message}')")  # [L]
                if not _trusted_signer(inv, loaded, sig):
                    raise EsxcliError("VibSigMissingError", f"('{vib_id}', 'Unable to verify the signature of VIB "
                                                            f"{vib_id}: the signer {sig.signer} is not trusted "
                                                            "by this host.')")  # [L]
            if d.acceptance_level == "community" and not force:
                from labctl.vib.descriptor import extensibility_violations

                if extensibility_violations(d.file_list, d.overlay):
                    raise EsxcliError("VibValidationError",
                                      f"VIB {vib_id} violates extensibility rule checks: ['(line "
                                      f"{loaded.desc_line}: col 0) Element vib failed to validate content']")
            if not force:
                _check_depends(state, d, vib_id)
            live = d.live_install_allowed and not opts.get("no-live-install")
            if live and d.maintenance_mode == "true" and not opts.get("maintenance-mode") and not state.extra.get(
                "maintenance_mode"
            ):
                raise EsxcliError("MaintenanceModeError",
                                  f"MaintenanceMode is required to remove: [], install: [{vib_id}].")
            if existing is not None:
                removed.append(_vib_id(existing))
                if not existing.extra.get("live_remove", True):
                    live = False
            reboot = reboot or not live
            installed.append(vib_id)
            plan.append((loaded, existing))
    except EsxcliError as e:
        return _fail(e)
    title = "Installation Result"
    if opts.get("dry-run"):
        msg = ("Dryrun only, host not changed. The following installers will be applied: "
               f"[{'LiveImageInstaller' if not reboot else 'BootBankInstaller'}]") if installed else \
            "Dryrun only, host not changed."
        return Result(0, _result(title, state, msg, installed, removed, skipped, reboot), "")
    if not installed:
        return Result(0, _result(title, state, "Host is not changed.", [], [], skipped, False), "")
    from labctl.vib.descriptor import ACCEPTANCE

    from labctl.sim.state import Vib

    for loaded, existing in plan:
        d = loaded.desc
        if existing is not None:
            state.vibs.remove(existing)
        live = d.live_install_allowed and not opts.get("no-live-install")
        files = _place_files(inv, loaded) if live and not reboot else []
        state.vibs.append(Vib(
            name=d.name, version=d.version, vendor=d.vendor, acceptance_level=ACCEPTANCE.get(d.acceptance_level,
                                                                                              "CommunitySupported"),
            summary=d.summary, install_date=time.strftime("%Y-%m-%d", time.gmtime()),
            extra={"id": d.vib_id, "type": d.type, "payloads": _payload_key(d), "live_remove": d.live_remove_allowed,
                   "files": list(d.file_list), "placed": files, "depends": [c.name for c in d.depends],
                   "provides": [c.name for c in d.provides], "description": d.description,
                   "release_date": d.release_date, "maintenance_mode": d.maintenance_mode,
                   "live_install": d.live_install_allowed, "stateless_ready": d.stateless_ready,
                   "overlay": d.overlay, "tags": list(d.software_tags), "payload_names": [p.name for p in d.payloads],
                   "reboot_pending_boot": state.boot_count if reboot else None},
        ))
    state.vibs.sort(key=lambda v: v.name.lower())
    if reboot:
        state.extra["software_reboot_required"] = state.boot_count
    msg = ("The update completed successfully, but the system needs to be rebooted for the changes to be "
           "effective.") if reboot else "Operation finished successfully."
    return Result(0, _result(title, state, msg, installed, removed, skipped, reboot), "")


def _trusted_signer(inv: Invocation, loaded: _Loaded, sig) -> bool:
    if VMWARE_SIGNER in sig.signer:
        return True
    if not inv.fs.is_dir(TRUST_DIR):
        return False
    from labctl.vib import ar as arlib
    from labctl.vib.signing import verify

    with loaded.opener() as fh:
        a = arlib.read_ar(fh)
        desc = arlib.read_member(fh, a.members[0], 1 << 20)
        raw = arlib.read_member(fh, a.members[1], 256 * 1024)
    for name in inv.fs.listdir(TRUST_DIR):
        if verify(raw, desc, inv.fs.read(posixpath.join(TRUST_DIR, name))).trusted:
            return True
    return False


@command("esxcli", "software", "vib", "install", when=_esxi5)
def vib_install(inv: Invocation) -> Result:
    return _install(inv, update=False)


@command("esxcli", "software", "vib", "update", when=_esxi5)
def vib_update(inv: Invocation) -> Result:
    return _install(inv, update=True)


@command("esxcli", "software", "vib", "remove", when=_esxi5)
def vib_remove(inv: Invocation) -> Result:
    spec = {"vibname": ("n", True), "dry-run": (None, False), "force": ("f", False),
            "maintenance-mode": (None, False), "no-live-install": (None, False)}
    names: list[str] = []
    args = list(inv.args)
    rest_args = []
    i = 0
    while i < len(args):
        if args[i] in ("-n", "--vibname") and i + 1 < len(args):
            names.append(args[i + 1])
            i += 2
        elif args[i].startswith("--vibname="):
            names.append(args[i].split("=", 1)[1])
            i += 1
        else:
            rest_args.append(args[i])
            i += 1
    try:
        opts, rest = parse_options(rest_args, spec)
    except UsageFailure as e:
        return Result(1, "", e.err)
    if not names:
        return Result(1, "", "Error: Missing required parameter -n|--vibname\n")  # [L]
    state = inv.state
    victims = []
    for n in names:
        v = next((x for x in state.vibs if n in (x.name, _vib_id(x))), None)
        if v is None:
            return _fail(EsxcliError("NoMatchError", f"No VIB matching VIB search specification '{n}'."))
        victims.append(v)
    reboot = any(not v.extra.get("live_remove", True) or v.name.startswith("esx-") for v in victims) or bool(
        opts.get("no-live-install"))
    ids = [_vib_id(v) for v in victims]
    if opts.get("dry-run"):
        return Result(0, _result("Removal Result", state, "Dryrun only, host not changed.", [], ids, [], reboot), "")
    if reboot:
        state.extra["software_reboot_required"] = state.boot_count
    for v in victims:
        state.vibs.remove(v)
        if not reboot:
            for p in v.extra.get("placed", []):
                if inv.fs.is_file(p):
                    inv.fs.remove(p)
    msg = ("The update completed successfully, but the system needs to be rebooted for the changes to be "
           "effective.") if reboot else "Operation finished successfully."
    return Result(0, _result("Removal Result", state, msg, [], ids, [], reboot), "")


def reboot_pending(state) -> bool:
    """A reboot-required install or removal happened since the last boot (a pending-reboot image exists)."""
    return state.extra.get("software_reboot_required") == state.boot_count


@command("esxcli", "software", "vib", "list", when=_esxi5)
def vib_list(inv: Invocation) -> Result:
    try:
        opts, rest = parse_options(inv.args, {"rebooting-image": (None, False)})
    except UsageFailure as e:
        return Result(1, "", e.err)
    if opts.get("rebooting-image") and not reboot_pending(inv.state):
        return Result(0, "", "")  # no pending-reboot image: esxcli prints nothing
    cols = ["Name", "Version", "Vendor", "Acceptance Level", "Install Date"]
    eight = inv.state.release >= (8, 0)
    if eight:
        cols.append("Platforms")
    rows = []
    for v in sorted(inv.state.vibs, key=lambda x: x.name.lower()):
        row: list[Any] = [v.name, v.version, v.vendor, v.acceptance_level, v.install_date]
        if eight:
            row.append("host")
        rows.append(row)
    return Result(0, inv.table(cols, rows, struct="VIB"), "")


def _installed_fields(v) -> tuple[str, list[tuple[str, Any]]]:
    x = v.extra
    return _vib_id(v), [
        ("Name", v.name), ("Version", v.version), ("Type", x.get("type", "bootbank")), ("Vendor", v.vendor),
        ("Acceptance Level", v.acceptance_level), ("Summary", v.summary), ("Description", x.get("description", "")),
        ("ReferenceURLs", ""), ("Creation Date", (x.get("release_date") or "")[:10]),
        ("Depends", ", ".join(x.get("depends", []))), ("Conflicts", ""), ("Replaces", ""),
        ("Provides", ", ".join(x.get("provides", []))),
        ("Maintenance Mode Required", str(x.get("maintenance_mode", "false")).capitalize()),
        ("Hardware Platforms Required", ""), ("Live Install Allowed", str(x.get("live_install", True))),
        ("Live Remove Allowed", str(x.get("live_remove", True))), ("Stateless Ready", str(x.get("stateless_ready",
                                                                                                 True))),
        ("Overlay", str(x.get("overlay", False))), ("Tags", ", ".join(x.get("tags", []))),
        ("Payloads", ", ".join(x.get("payload_names", []))),
    ]


def _descriptor_fields(d) -> tuple[str, list[tuple[str, Any]]]:
    from labctl.vib.descriptor import ACCEPTANCE

    return d.vib_id, [
        ("Name", d.name), ("Version", d.version), ("Type", d.type), ("Vendor", d.vendor),
        ("Acceptance Level", ACCEPTANCE.get(d.acceptance_level, d.acceptance_level)), ("Summary", d.summary),
        ("Description", d.description), ("ReferenceURLs", ", ".join(f"{k}: {u}" for k, u in d.urls)),
        ("Creation Date", d.release_date[:10]), ("Depends", ", ".join(c.name for c in d.depends)),
        ("Conflicts", ", ".join(c.name for c in d.conflicts)), ("Replaces", ", ".join(c.name for c in d.replaces)),
        ("Provides", ", ".join(c.name for c in d.provides)),
        ("Maintenance Mode Required", d.maintenance_mode.capitalize()), ("Hardware Platforms Required", ""),
        ("Live Install Allowed", str(d.live_install_allowed)), ("Live Remove Allowed", str(d.live_remove_allowed)),
        ("Stateless Ready", str(d.stateless_ready)), ("Overlay", str(d.overlay)),
        ("Tags", ", ".join(d.software_tags)), ("Payloads", ", ".join(p.name for p in d.payloads)),
    ]


@command("esxcli", "software", "vib", "get", when=_esxi5)
def vib_get(inv: Invocation) -> Result:
    try:
        opts, rest = parse_options(inv.args, {"vibname": ("n", True), "rebooting-image": (None, False)})
    except UsageFailure as e:
        return Result(1, "", e.err)
    vibs = inv.state.vibs
    if opts.get("vibname"):
        n = opts["vibname"]
        vibs = [v for v in vibs if n in (v.name, _vib_id(v))]
        if not vibs:
            return _fail(EsxcliError("NoMatchError", f"No VIB matching VIB search specification '{n}'."))
    return Result(0, inv.records([_installed_fields(v) for v in vibs], struct="VIB"), "")


@command("esxcli", "software", "sources", "vib", "get", when=_esxi5)
def sources_vib_get(inv: Invocation) -> Result:
    try:
        opts, rest = parse_options(inv.args, {"viburl": ("v", True), "depot": ("d", True), "vibname": ("n", True),
                                              "proxy": (None, True)})
    except UsageFailure as e:
        return Result(1, "", e.err)
    if opts.get("proxy"):
        return Result(1, "", "sim: esxcli software sources vib get --proxy is not modelled\n")
    if not opts.get("viburl") and not opts.get("depot"):
        return Result(1, "", "Error: At least one of --depot or --viburl must be specified.\n")  # [L]
    try:
        if opts.get("depot"):
            loaded = _load_depot(inv, opts["depot"], [opts["vibname"]] if opts.get("vibname") else [])
        else:
            loaded = [_load_vib(inv, opts["viburl"])]
    except EsxcliError as e:
        return _fail(e)
    return Result(0, inv.records([_descriptor_fields(x.desc) for x in loaded], struct="VIB"), "")


@command("esxcli", "software", "acceptance", "get", when=_esxi5)
def acceptance_get(inv: Invocation) -> Result:
    if inv.args:
        return Result(1, "", f"Error: Invalid option {inv.args[0]}\n")
    return Result(0, inv.state.acceptance_level + "\n", "")


@command("esxcli", "software", "acceptance", "set", when=_esxi5)
def acceptance_set(inv: Invocation) -> Result:
    try:
        opts, rest = parse_options(inv.args, {"level": (None, True)})
    except UsageFailure as e:
        return Result(1, "", e.err)
    level = opts.get("level")
    if not level:
        return Result(1, "", "Error: Missing required parameter --level\n")  # [L]
    if level not in LEVELS:
        return Result(1, "", f"Error: Invalid value for --level: '{level}'. Valid values are: "
                             f"{', '.join(reversed(LEVELS))}\n")  # [L]
    low = [v for v in inv.state.vibs if v.acceptance_level in LEVELS
           and LEVELS.index(v.acceptance_level) < LEVELS.index(level)]
    if low:
        return _fail(EsxcliError("AcceptanceConfigError",
                                 f"Unable to set acceptance level of {LONG_TO_SHORT[level]} due to installed VIBs "
                                 f"{', '.join(_vib_id(v) for v in low)} having a lower acceptance level."))  # [M]
    inv.state.acceptance_level = level
    return Result(0, f"Host acceptance level changed to '{level}'.\n", "")


# ---------------------------------------------------------------- ESX 4: esxupdate [M]/[L]


ESXUPDATE_USAGE = """\
Usage: esxupdate [options] (scan|check|stage|update|remove|query|info)
Options:
  -b, --bundle=BUNDLE     offline bundle (zip) to use
  --vib=VIB               VIB file to use
  --nosigcheck            do not verify VIB signatures
  --maintenancemode       pretend the host is in maintenance mode
"""


def _esx4_version_problem(d4, product_line: str, release: tuple[int, int]) -> str | None:
    """esx45update SWPlatform.matches: the host's x.y.z against each swPlatform version of its product line, field
    by field up to the shorter one, '*' matching anything; the sentence is esx45update's (VIB Author
    5.0.0-847598, Vib.pyc). ESX 4 hosts report x.y.0 whatever the update."""
    host = f"{release[0]}.{release[1]}.0"
    versions = [v for p, v in zip(d4.product_lines, d4.platform_versions) if p == product_line and v]
    for v in versions:
        want, have = v.split("."), host.split(".")
        if all(a in ("*", b) for a, b in zip(want, have)):
            return None
    if not versions:
        return None
    return f"This VIB supports product version '{versions[0]}', but host reports product version as '{host}'."


def _esxupdate_host(st) -> bool:
    """ESX classic has had esxupdate since 3.x (ESX Server 3 Patch Management Guide; the 3.5 man page: `esxupdate
    <Bundle Spec> [OPTIONS] update`, `esxupdate [-l] query`); ESXi 4.x has it for VIBs; ESXi 5+ uses esxcli."""
    return st.flavor == "esx" or _esx4(st)


ESXUPDATE_USAGE_35 = """Usage: esxupdate <Bundle Spec> [OPTIONS] update
       esxupdate <Bundle Spec> [--explain] scan
       esxupdate [-l] query
       esxupdate [-l] info bundleID [bundleID2..]
"""


def _esxupdate_35(inv: Invocation) -> Result:
    """ESX 3.x: bundles from a depot (-d) or a bundle zip, no VIBs (the VIB format came with 4.0)."""
    args = list(inv.args)
    unknown = next((a for a in args if a.startswith("--") and a.split("=")[0] not in
                    ("--explain", "--depot", "--bundle", "--nosigcheck", "--noreboot")), None)
    if unknown:
        return Result(2, ESXUPDATE_USAGE_35, f"esxupdate: error: no such option: {unknown.split('=')[0]}\n")
    words = [a for a in args if not a.startswith("-")]
    if words[-1:] == ["query"]:
        lines = ["Installed software bundles:"] + [f"{v.name:<24} {v.install_date:<19} {v.summary}"
                                                   for v in inv.state.vibs]
        return Result(0, "\n".join(lines) + "\n", "")
    if not words or words[-1] not in ("update", "scan", "info"):
        return Result(2, ESXUPDATE_USAGE_35, "")
    return Result(1, "", f"sim: esxupdate {words[-1]} of ESX 3.x bundles is not modelled by the simulator\n")


@command("esxupdate", when=_esxupdate_host)
def esxupdate(inv: Invocation) -> Result:
    if inv.state.release < (4, 0):
        return _esxupdate_35(inv)
    spec = {"bundle": ("b", True), "vib": (None, True), "nosigcheck": (None, False),
            "maintenancemode": (None, False), "help": ("h", False)}
    try:
        opts, rest = parse_options(inv.args, spec)
    except UsageFailure as e:
        return Result(2, ESXUPDATE_USAGE, e.err)
    if opts.get("help") or len(rest) != 1:
        return Result(0 if opts.get("help") else 2, ESXUPDATE_USAGE, "")
    action = rest[0]
    state = inv.state
    if action == "query":
        lines = ["Installed software bulletins:", "----Bulletin ID---- -----Installed----- "
                                                  "----------------Summary-----------------"]
        for v in state.vibs:
            lines.append(f"{v.name:<19} {v.install_date:<19} {v.summary}")
        return Result(0, "\n".join(lines) + "\n", "")
    if action not in ("update", "stage", "check", "scan", "info", "remove"):
        return Result(2, ESXUPDATE_USAGE, f"esxupdate: unknown command {action!r}\n")
    if action != "update":
        return Result(1, "", f"sim: esxupdate {action} is not modelled\n")
    if opts.get("bundle"):
        return Result(1, "", "sim: esxupdate -b (bundle) is not modelled; use --vib=/ABS/path.vib\n")
    path = opts.get("vib")
    if not path:
        return Result(2, ESXUPDATE_USAGE, "esxupdate: update needs --vib or --bundle\n")
    path = path[len("file://"):] if path.startswith("file://") else path
    if not path.startswith("/") or not inv.fs.is_file(path):
        return Result(1, "", f"Error: Cannot open {path}: No such file or directory\n")  # [L]
    from labctl.vib.inspect import inspect_vib

    with _open_host_file(inv, path) as fh:
        rep = inspect_vib(fh, path)
    if not rep.kind.startswith("esx4"):
        return Result(1, "", f"Error: {path} is not an ESX 4 VIB (vibVersion 1.4.5)\n")  # [L]
    errs = rep.all_errors()
    if errs:
        return Result(1, "", f"Error: invalid VIB {path}: {errs[0].message}\n")  # [L]
    d4 = rep.esx4
    want = "esx" if state.flavor == "esx" else "embeddedEsx"
    if want not in d4.product_lines:
        return Result(1, "", f"Error: VIB {d4.vib_id} is not for this platform ({want}); vibType "
                             f"{d4.vib_type}\n")  # [L]
    problem = _esx4_version_problem(d4, want, state.release)
    if problem:
        return Result(1, "", f"Error: VIB {d4.vib_id}: {problem}\n")  # the sentence [M], its framing [L]
    if not opts.get("nosigcheck"):
        sig = rep.signature
        if sig is None or not sig.present:
            return Result(1, "", f"Error: VIB {d4.vib_id} is not signed; use --nosigcheck\n")  # [L]
        if not sig.valid:
            return Result(1, "", f"Error: signature of VIB {d4.vib_id} is invalid: {sig.message}\n")  # [L]
    from labctl.sim.state import Vib

    existing = _find(state, d4.name)
    if existing is not None and existing.version == d4.version:
        return Result(0, f"The host is already up to date with {d4.vib_id}.\n", "")  # [L]
    if existing is not None:
        state.vibs.remove(existing)
    state.vibs.append(Vib(d4.name, d4.version, d4.vendor, "PartnerSupported", d4.summary,
                          time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()),
                          extra={"id": d4.vib_id, "type": d4.vib_type, "live_remove": not d4.reboot_required}))
    if d4.reboot_required:
        state.extra["software_reboot_required"] = state.boot_count
        return Result(0, f"Installing {d4.vib_id}\nThe update completed successfully, but the system needs to be "
                         "rebooted for the changes to be effective.\n", "")
    return Result(0, f"Installing {d4.vib_id}\nThe update completed successfully.\n", "")
