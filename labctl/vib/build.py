"""`vib build`: a stage directory -> a .vib (ESXi 5+ or ESX 4 formats), optionally an offline bundle.

    STAGE/descriptor.yaml      (or STAGE/descriptor.xml to start from an existing descriptor)
    STAGE/payloads/NAME/...    one tree per payload, laid out as on the host

Fills size, checksums (sha-256 gunzip, sha-256 raw, sha-1 gunzip — the order every ESXi accepts), file-list and
release-date. Reproducible: the same stage and --release-date give identical bytes (every timestamp is the release
date; entries sorted; uid/gid 0; gzip header mtime 0). Payloads are streamed to temporary files next to the output
and copied into the archive in chunks: memory use does not grow with payload size.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from labctl.vib import ar as arlib
from labctl.vib.descriptor import (
    PAYLOAD_NAME_RE,
    Checksum,
    Constraint,
    Descriptor,
    PayloadSpec,
    SoftwarePlatform,
    emit_descriptor,
    parse_descriptor,
    release_epoch,
    validate_descriptor,
)
from labctl.vib.findings import ERROR, Finding, VibBuildError, VibFormatError
from labctl.vib.payload import BuiltPayload, write_tgz

FORMATS = ("esxi", "esx4-rpm", "esx4-deb", "esx4-cross")
YAML_KEYS = {
    "name", "version", "vendor", "type", "summary", "description", "release-date", "urls", "depends", "conflicts",
    "replaces", "provides", "compatible-with", "software-tags", "maintenance-mode", "hwplatforms", "platforms",
    "acceptance-level", "live-install-allowed", "live-remove-allowed", "cimom-restart", "stateless-ready",
    "overlay", "payloads", "reboot-required", "hostd-restart",
}


@dataclass(frozen=True)
class BuildOptions:
    stage: Path
    output: Path
    bundle: Path | None = None
    format: str = "esxi"
    release_date: str | None = None
    sign_key: Path | None = None
    sign_cert: Path | None = None
    source_date_epoch: str | None = None
    gzip_level: int = 6
    platforms: tuple[str, ...] = ()  # --platform: the releases the VIB targets (8.0, 8.*, 7.0.3)


@dataclass
class BuildResult:
    output: Path
    vib_id: str
    size: int
    format: str
    release_date: str
    payloads: list[dict] = field(default_factory=list)
    bundle: Path | None = None
    signed: bool = False
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "output": str(self.output),
            "vib_id": self.vib_id,
            "size": self.size,
            "format": self.format,
            "release_date": self.release_date,
            "signed": self.signed,
            "payloads": self.payloads,
            "bundle": str(self.bundle) if self.bundle else None,
            "findings": [f.to_json() for f in self.findings],
        }


# ---------------------------------------------------------------- release date


def normalize_release_date(text: str) -> str:
    """Any ISO 8601 date/time -> xsd:dateTime with an explicit offset (UTC when none is given)."""
    t = text.strip().replace(" ", "T", 1) if re.match(r"^\d{4}-\d{2}-\d{2} \d", text.strip()) else text.strip()
    try:
        dt = datetime.fromisoformat(t.replace("Z", "+00:00"))
    except ValueError:
        raise VibBuildError(f"release date {text!r} is not an ISO 8601 date/time",
                            hint="e.g. --release-date 2024-06-25T07:17:37+00:00") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.isoformat()


def _choose_release_date(opts: BuildOptions, from_descriptor: str) -> str:
    if opts.release_date:
        return normalize_release_date(opts.release_date)
    if from_descriptor:
        return normalize_release_date(from_descriptor)
    if opts.source_date_epoch:
        try:
            return datetime.fromtimestamp(int(opts.source_date_epoch), UTC).isoformat()
        except ValueError:
            raise VibBuildError(f"SOURCE_DATE_EPOCH={opts.source_date_epoch!r} is not an integer") from None
    return datetime.now(UTC).replace(microsecond=0).isoformat()


# ---------------------------------------------------------------- target platforms

# esximage / esx45update Platforms.CheckSchema: "Version must be X.Y.Z where X, Y, and Z are numbers and X.Y is
# required.  The last specified field (Y or Z) may be '*' to indicate match all versions."
PLATFORM_RE = re.compile(r"^\d+\.(\*|\d+(\.(\*|\d+))?)$")


def check_platform(version: str, fmt: str) -> str | None:
    """Why `version` is not a release this format can target, or None. Known releases: topology.versions."""
    from labctl.topology.versions import supported_list

    if not PLATFORM_RE.match(version):
        return (f"platform {version!r}: X.Y, X.Y.Z or X.* (e.g. 8.0, 7.0.3, 8.*); the last field may be '*'")
    major, _, rest = version.partition(".")
    minor = rest.split(".")[0]
    esx4 = fmt != "esxi"
    releases = {tuple(int(x) for x in r.split(".")) for fl in ("esx", "esxi") for r in supported_list(fl).split(", ")
                if r}
    known = sorted(r for r in releases if (r[0] == 4) == esx4 and r >= (4, 0))
    names = ", ".join(f"{a}.{b}" for a, b in known)
    if minor == "*":
        ok = any(a == int(major) for a, _ in known)
    else:
        ok = (int(major), int(minor)) in known
    if not ok:
        what = "ESX/ESXi 4 releases" if esx4 else "ESXi 5+ releases"
        return f"platform {version!r} is not one of the {what} labctl knows ({names})"
    return None


def _target_platforms(opts: BuildOptions, base: Descriptor) -> tuple[SoftwarePlatform, ...]:
    plats = tuple(SoftwarePlatform(v, "", "embeddedEsx") for v in opts.platforms) or base.software_platforms
    problems = [why for p in plats if (why := check_platform(p.version, opts.format))]
    if problems:
        raise VibBuildError("\n  ".join(problems), hint="e.g. --platform 8.0 (repeat it for several releases)")
    return plats


# ---------------------------------------------------------------- descriptor.yaml


def _as_bool(key: str, v, problems: list[str]) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.lower() in ("true", "false"):
        return v.lower() == "true"
    problems.append(f"{key}: must be true or false, not {v!r}")
    return False


def _constraints(key: str, v, problems: list[str]) -> tuple[Constraint, ...]:
    if v is None:
        return ()
    if not isinstance(v, list):
        problems.append(f"{key}: must be a list of names or {{name, relation, version}}")
        return ()
    out = []
    for item in v:
        if isinstance(item, str):
            out.append(Constraint(item))
        elif isinstance(item, dict) and "name" in item and set(item) <= {"name", "relation", "version"}:
            out.append(Constraint(str(item["name"]), item.get("relation"),
                                  str(item["version"]) if item.get("version") is not None else None))
        else:
            problems.append(f"{key}: bad entry {item!r} (a name, or {{name, relation, version}})")
    return tuple(out)


def load_yaml_descriptor(path: Path) -> tuple[Descriptor, dict]:
    """descriptor.yaml -> (Descriptor without payloads, extra settings). Every problem reported at once."""
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        raise VibBuildError(f"{path}: cannot read: {e}") from None
    if not isinstance(data, dict):
        raise VibBuildError(f"{path}: must be a mapping of descriptor fields")
    problems = [f"{k}: unknown key (known: {', '.join(sorted(YAML_KEYS))})" for k in data if k not in YAML_KEYS]
    for req in ("name", "version", "vendor"):
        if not data.get(req):
            problems.append(f"{req}: required")

    def s(key: str, default: str = "") -> str:
        v = data.get(key, default)
        if v is None:
            return default
        if isinstance(v, (dict, list)):
            problems.append(f"{key}: must be a string")
            return default
        return str(v)

    urls = data.get("urls") or {}
    if not isinstance(urls, dict):
        problems.append("urls: must be a mapping key: url")
        urls = {}
    plats = []
    for p in data.get("platforms") or []:
        if not isinstance(p, dict) or "version" not in p:
            problems.append(f"platforms: bad entry {p!r} (version, locale, product-line)")
            continue
        plats.append(SoftwarePlatform(str(p["version"]), str(p.get("locale", "")),
                                      str(p.get("product-line", "embeddedEsx"))))
    tags = data.get("software-tags") or []
    if not isinstance(tags, list):
        problems.append("software-tags: must be a list")
        tags = []
    mm = data.get("maintenance-mode", False)
    d = Descriptor(
        name=s("name"),
        version=s("version"),
        vendor=s("vendor"),
        type=s("type", "bootbank"),
        summary=s("summary"),
        description=s("description"),
        release_date=s("release-date"),
        urls=tuple((str(k), str(v)) for k, v in urls.items()),
        depends=_constraints("depends", data.get("depends"), problems),
        conflicts=_constraints("conflicts", data.get("conflicts"), problems),
        replaces=_constraints("replaces", data.get("replaces"), problems),
        provides=_constraints("provides", data.get("provides"), problems),
        compatible_with=_constraints("compatible-with", data.get("compatible-with"), problems),
        software_tags=tuple(str(t) for t in tags),
        maintenance_mode="true" if _as_bool("maintenance-mode", mm, problems) else "false",
        software_platforms=tuple(plats),
        acceptance_level=s("acceptance-level", "community"),
        live_install_allowed=_as_bool("live-install-allowed", data.get("live-install-allowed", True), problems),
        live_remove_allowed=_as_bool("live-remove-allowed", data.get("live-remove-allowed", True), problems),
        cimom_restart=_as_bool("cimom-restart", data.get("cimom-restart", False), problems),
        stateless_ready=_as_bool("stateless-ready", data.get("stateless-ready", True), problems),
        overlay=_as_bool("overlay", data.get("overlay", False), problems),
    )
    payload_order = data.get("payloads")
    if payload_order is not None and not (isinstance(payload_order, list)
                                          and all(isinstance(x, str) for x in payload_order)):
        problems.append("payloads: must be a list of payload directory names (the order in the VIB)")
        payload_order = None
    if problems:
        raise VibBuildError(f"{path}:\n  " + "\n  ".join(problems))
    extra = {"payloads": payload_order, "reboot-required": data.get("reboot-required"),
             "hostd-restart": data.get("hostd-restart", False)}
    return d, extra


def load_stage_descriptor(stage: Path) -> tuple[Descriptor, dict]:
    y, x = stage / "descriptor.yaml", stage / "descriptor.xml"
    if y.is_file():
        return load_yaml_descriptor(y)
    if x.is_file():
        try:
            return parse_descriptor(x.read_bytes()), {"payloads": None}
        except VibFormatError as e:
            raise VibBuildError(f"{x}: {e.message}") from None
    raise VibBuildError(f"{stage} has neither descriptor.yaml nor descriptor.xml",
                        hint="see `labctl vib build --help` for the stage layout (examples/vib/lab-tools)")


def payload_dirs(stage: Path, order: list[str] | None) -> list[tuple[str, Path]]:
    root = stage / "payloads"
    if not root.is_dir():
        raise VibBuildError(f"{stage} has no payloads/ directory", hint="put each payload tree in payloads/NAME/")
    found = sorted(p.name for p in root.iterdir() if p.is_dir())
    names = order if order is not None else found
    problems = []
    for n in names:
        if n not in found:
            problems.append(f"payload {n!r}: no directory payloads/{n}/")
        if not PAYLOAD_NAME_RE.match(n):
            problems.append(f"payload {n!r}: names are 1-15 characters of [0-9A-Za-z_.-] (keep them ≤8)")
    if not names:
        problems.append("payloads/ holds no payload directory")
    if problems:
        raise VibBuildError(f"{stage}:\n  " + "\n  ".join(problems))
    return [(n, root / n) for n in names]


# ---------------------------------------------------------------- build


def _spec(bp: BuiltPayload) -> PayloadSpec:
    return PayloadSpec(
        name=bp.name,
        type="tgz",
        size=bp.size,
        uncompressed_size=bp.uncompressed_size,
        checksums=(
            Checksum("sha-256", "gunzip", bp.sha256_gunzip),
            Checksum("sha-256", None, bp.sha256),
            Checksum("sha-1", "gunzip", bp.sha1_gunzip),
        ),
    )


def build_vib(opts: BuildOptions) -> BuildResult:
    if opts.format not in FORMATS:
        raise VibBuildError(f"--format {opts.format!r}: one of {', '.join(FORMATS)}")
    stage = opts.stage
    if not stage.is_dir():
        raise VibBuildError(f"{stage}: not a directory", hint="give a stage directory (descriptor.yaml + payloads/)")
    base, extra = load_stage_descriptor(stage)
    release = _choose_release_date(opts, "" if opts.release_date else base.release_date)
    base = replace(base, release_date=release, software_platforms=_target_platforms(opts, base))
    if opts.bundle and opts.format == "esxi" and not base.software_platforms:
        raise VibBuildError("an offline bundle names the releases it is for (vendor-index.xml <version>, the "
                            "bulletin's <platforms>), and this VIB names none",
                            hint="add --platform 8.0 (once per release), or platforms: in descriptor.yaml")
    dirs = payload_dirs(stage, extra.get("payloads"))
    opts.output.parent.mkdir(parents=True, exist_ok=True)
    tmpdir = Path(tempfile.mkdtemp(prefix=".vib-build-", dir=opts.output.parent))
    try:
        mtime = release_epoch(release)
        built = [write_tgz(src, tmpdir / f"{name}.tgz", name, mtime, opts.gzip_level) for name, src in dirs]
        files: list[str] = []
        for bp in built:
            files += [f for f in bp.files if f not in files]
        desc = replace(base, file_list=tuple(files), payloads=tuple(_spec(bp) for bp in built), parse_findings=())
        findings = validate_descriptor(desc, for_build=True)
        errors = [f.message for f in findings if f.severity == ERROR]
        if errors:
            raise VibBuildError("the VIB would be invalid:\n  " + "\n  ".join(errors))
        if opts.format != "esxi":
            from labctl.vib.esx4 import build_esx4

            size, vib_id = build_esx4(opts, desc, built, tmpdir, extra)
            signed = bool(opts.sign_key)
        else:
            desc_bytes = emit_descriptor(desc)
            sig = b""
            if opts.sign_key and opts.sign_cert:
                from labctl.vib.signing import sign

                sig = sign(desc_bytes, opts.sign_key, opts.sign_cert)
            size = _write_ar(opts.output, tmpdir, desc_bytes, sig, built)
            vib_id = desc.vib_id
            signed = bool(sig)
        _self_check(opts.output, opts.format)
        result = BuildResult(opts.output, vib_id, size, opts.format, release, signed=signed,
                             findings=[f for f in findings if f.severity != "info" or "8.3" not in f.message])
        result.payloads = [
            {"name": b.name, "size": b.size, "uncompressed_size": b.uncompressed_size, "files": list(b.files),
             "sha256_gunzip": b.sha256_gunzip, "sha256": b.sha256, "sha1_gunzip": b.sha1_gunzip}
            for b in built
        ]
        if opts.bundle:
            if opts.format != "esxi":
                raise VibBuildError("--bundle writes an ESXi 5+ offline bundle; it cannot hold ESX 4 VIBs")
            import hashlib

            from labctl.vib.bundle import BundleVib, write_bundle

            h = hashlib.sha256()
            with open(opts.output, "rb") as fh:
                while b := fh.read(1 << 20):
                    h.update(b)
            opts.bundle.parent.mkdir(parents=True, exist_ok=True)
            write_bundle(opts.bundle, BundleVib(desc, opts.output, size, h.hexdigest()), release)
            result.bundle = opts.bundle
        return result
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)


def _write_ar(out: Path, tmpdir: Path, desc_bytes: bytes, sig: bytes, built: list[BuiltPayload]) -> int:
    tmp = tmpdir / "out.vib"
    with open(tmp, "wb") as fh:
        w = arlib.ArWriter(fh)
        w.add_bytes("descriptor.xml", desc_bytes)
        w.add_bytes("sig.pkcs7", sig)
        for bp in built:
            with open(bp.path, "rb") as src:
                w.add_file(bp.name, src, bp.size)
        size = fh.tell()
    os.replace(tmp, out)
    return size


def _self_check(path: Path, fmt: str) -> None:
    """Cheap structural re-read of what we wrote (the full inspect round-trip is in the tests)."""
    with open(path, "rb") as fh:
        a = arlib.read_ar(fh)
        if fmt == "esxi":
            parse_descriptor(arlib.read_member(fh, a.members[0], 1 << 20))
