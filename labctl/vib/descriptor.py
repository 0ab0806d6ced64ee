"""descriptor.xml (vib 5.0): parse with defusedxml, emit in VMware's element order, validate (vib.md section 2).

Parsing is tolerant where real VIBs are sloppy (a space instead of `T` in release-date, the misspelled
`compatbileWith`, a version without `-release`) and reports each as a finding; emitting never produces them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from xml.sax.saxutils import escape, quoteattr

from labctl.vib.findings import ERROR, INFO, WARNING, Finding, VibFormatError

MAX_DESCRIPTOR = 1024 * 1024
NAME_RE = re.compile(r"^[0-9A-Za-z_.-]+$")
VERSION_RE = re.compile(r"^\w+(\.\w+)*-\w+(\.\w+)*$")
PAYLOAD_NAME_RE = re.compile(r"^[0-9A-Za-z_.-]{1,15}$")
DATETIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$")
TYPES = ("bootbank", "locker", "meta")
ACCEPTANCE = {
    "certified": "VMwareCertified",
    "accepted": "VMwareAccepted",
    "partner": "PartnerSupported",
    "community": "CommunitySupported",
}
ACCEPTANCE_RANK = {"community": 0, "partner": 1, "accepted": 2, "certified": 3}
RELATIONS = ("<<", "<=", "=", ">=", ">>")
PAYLOAD_TYPES = ("tgz", "vgz", "boot", "upgrade", "installer_vgz", "vzstd", "tar", "ims")
BOOL_ELEMENTS = ("live-install-allowed", "live-remove-allowed", "cimom-restart", "stateless-ready", "overlay")
# Community-level extensibility rules (VIB Author vib20-extensibility.rng, 5.0 era). The last two entries are an
# inference, not from the 5.0 schema: they are the native-driver (6.5+) counterparts of driver.map.d/driver.pciids.d,
# used by the community driver that ESXi 8's own esximage wrote (fixtures/vib/vmksdhci-1.0.0-1-community.vib).
COMMUNITY_PREFIXES = (
    "etc/vmware/shutdown/shutdown.d/", "etc/vmware/pciid/", "etc/vmware/vm-support/", "etc/vmware/firewall/",
    "etc/vmware/service/", "etc/vmware/driver.map.d/", "etc/cim/", "etc/config/", "opt/", "usr/lib/cim/",
    "usr/lib/pycim/", "usr/lib/hostprofiles/plugins/", "usr/lib/hostprofiles/locale/", "usr/lib/vmware/",
    "usr/lib/vmware-debug/", "usr/libexec/jumpstart/plugins/", "usr/share/hwdata/driver.pciids.d/",
    "var/lib/sfcb/registration/",
    "etc/vmware/default.map.d/", "usr/share/hwdata/default.pciids.d/",
)



def release_epoch(release_date: str) -> int:
    """A normalized <release-date> (xsd:dateTime with an offset) as seconds since the epoch (archive mtimes)."""
    from datetime import datetime

    return int(datetime.fromisoformat(release_date).timestamp())

@dataclass(frozen=True)
class Constraint:
    name: str
    relation: str | None = None
    version: str | None = None


@dataclass(frozen=True)
class Checksum:
    type: str  # sha-256 | sha-1 | sha-256-gunzip1 ...
    verify_process: str | None  # None (raw) | "gunzip"
    value: str

    @property
    def key(self) -> str:
        return f"{self.type}/{self.verify_process or 'raw'}"


@dataclass(frozen=True)
class PayloadSpec:
    name: str
    type: str
    size: int
    checksums: tuple[Checksum, ...] = ()
    uncompressed_size: int | None = None
    vfat_name: str | None = None


@dataclass(frozen=True)
class SoftwarePlatform:
    version: str
    locale: str = ""
    product_line_id: str = "embeddedEsx"


@dataclass(frozen=True)
class Descriptor:
    name: str
    version: str
    vendor: str
    type: str = "bootbank"
    summary: str = ""
    description: str = ""
    release_date: str = ""
    urls: tuple[tuple[str, str], ...] = ()
    depends: tuple[Constraint, ...] = ()
    conflicts: tuple[Constraint, ...] = ()
    replaces: tuple[Constraint, ...] = ()
    provides: tuple[Constraint, ...] = ()
    compatible_with: tuple[Constraint, ...] = ()
    software_tags: tuple[str, ...] = ()
    maintenance_mode: str = "false"
    hwplatforms: tuple[tuple[str, str | None], ...] = ()
    software_platforms: tuple[SoftwarePlatform, ...] = ()
    file_list: tuple[str, ...] = ()
    acceptance_level: str = "community"
    live_install_allowed: bool = True
    live_remove_allowed: bool = True
    cimom_restart: bool = False
    stateless_ready: bool = True
    overlay: bool = False
    payloads: tuple[PayloadSpec, ...] = ()
    parse_findings: tuple[Finding, ...] = field(default=(), compare=False)

    @property
    def vib_id(self) -> str:
        return f"{self.vendor}_{self.type}_{self.name}_{self.version}"

    def with_payloads(self, payloads: tuple[PayloadSpec, ...]) -> Descriptor:
        return replace(self, payloads=payloads)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "version": self.version,
            "vendor": self.vendor,
            "type": self.type,
            "summary": self.summary,
            "description": self.description,
            "release_date": self.release_date,
            "acceptance_level": self.acceptance_level,
            "live_install_allowed": self.live_install_allowed,
            "live_remove_allowed": self.live_remove_allowed,
            "maintenance_mode": self.maintenance_mode,
            "overlay": self.overlay,
            "depends": [_constraint_json(c) for c in self.depends],
            "conflicts": [_constraint_json(c) for c in self.conflicts],
            "replaces": [_constraint_json(c) for c in self.replaces],
            "provides": [_constraint_json(c) for c in self.provides],
            "software_tags": list(self.software_tags),
            "file_list": list(self.file_list),
        }


def _constraint_json(c: Constraint) -> dict:
    d = {"name": c.name}
    if c.relation:
        d["relation"] = c.relation
    if c.version:
        d["version"] = c.version
    return d


# ---------------------------------------------------------------- parsing


def parse_xml(data: bytes, what: str = "descriptor.xml"):
    """Parse untrusted XML with defusedxml: no DTDs, no entities, no external references; size capped."""
    import defusedxml.ElementTree as DET
    from defusedxml import DefusedXmlException

    if len(data) > MAX_DESCRIPTOR:
        raise VibFormatError(f"{what} is {len(data)} bytes; refusing more than {MAX_DESCRIPTOR}")
    try:
        return DET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as e:
        raise VibFormatError(
            f"{what} refused: it uses a DTD, XML entities or external references ({type(e).__name__}); "
            "VIB descriptors never need them (entity-expansion bomb or XXE attempt)"
        ) from None
    except Exception as e:  # xml.etree.ElementTree.ParseError and expat errors
        raise VibFormatError(f"{what} is not well-formed XML: {e}") from None


MAX_NUMBER_DIGITS = 19  # fits a 64-bit size; int() of thousands of digits is refused (or slow) anyway


def plain_number(text: str) -> int | None:
    """A size as untrusted XML writes it: ASCII digits only ('²' and '١' pass str.isdigit but int() fails on
    the first), at most 19 of them. None when it is anything else."""
    t = text.strip()
    if not t or len(t) > MAX_NUMBER_DIGITS or not t.isascii() or not t.isdigit():
        return None
    return int(t)


def _short(text: str, n: int = 24) -> str:
    return repr(text[:n] + "…") if len(text) > n else repr(text)


def _text(el, tag: str, default: str = "") -> str:
    child = el.find(tag)
    if child is None or child.text is None:
        return default
    return child.text.strip()


def _bool(el, tag: str, default: bool, findings: list[Finding]) -> bool:
    child = el.find(tag)
    if child is None:
        return default
    t = (child.text or "").strip().lower()
    if t in ("true", "1"):
        return True
    if t in ("false", "0"):
        return False
    findings.append(Finding(ERROR, f"<{tag}> must be true or false, not {t!r}"))
    return default


def _constraints(parent, tag: str, child_tag: str = "constraint") -> tuple[Constraint, ...]:
    el = parent.find(tag) if parent is not None else None
    if el is None:
        return ()
    out = []
    for c in el.findall(child_tag):
        out.append(Constraint(c.get("name", ""), c.get("relation"), c.get("version")))
    return tuple(out)


def parse_descriptor(data: bytes) -> Descriptor:
    """Parse a vib 5.0 descriptor.xml; sloppiness seen in working VIBs becomes parse_findings."""
    root = parse_xml(data)
    findings: list[Finding] = []
    if root.tag != "vib":
        raise VibFormatError(f"descriptor.xml: root element is <{root.tag}>, expected <vib>")
    if root.get("version") != "5.0":
        if root.find("vibVersion") is not None:
            raise VibFormatError("descriptor.xml is an ESX 4 (vibVersion 1.4.5) descriptor; read it with esx4")
        findings.append(Finding(WARNING, f"<vib version={root.get('version')!r}>: VMware always writes 5.0"))
    for req in ("type", "name", "version", "vendor"):
        if root.find(req) is None:
            findings.append(Finding(ERROR, f"descriptor.xml has no <{req}>"))
    rel = root.find("relationships")
    if rel is not None:
        if rel.find("compatbileWith") is not None:
            findings.append(
                Finding(WARNING, "<relationships> has the misspelled <compatbileWith>; the schema names it "
                        "<compatibleWith> (tolerated by 8.x, do not copy it)")
            )
        for tag in ("depends", "conflicts", "replaces", "provides", "compatibleWith"):
            if rel.find(tag) is None and not (tag == "compatibleWith" and rel.find("compatbileWith") is not None):
                findings.append(Finding(WARNING, f"<relationships> lacks <{tag}> (all five children are required)"))
    urls = tuple((u.get("key", ""), (u.text or "").strip()) for u in root.findall("urls/url"))
    sysreq = root.find("system-requires")
    mm = "false"
    hw: list[tuple[str, str | None]] = []
    sp: list[SoftwarePlatform] = []
    if sysreq is not None:
        m = sysreq.find("maintenance-mode")
        if m is not None:
            mm = (m.text or "").strip() or ",".join(f"{k}={v}" for k, v in sorted(m.attrib.items())) or "false"
        for h in sysreq.findall("hwplatform"):
            hw.append((h.get("vendor", ""), h.get("model")))
        for s in sysreq.findall("softwarePlatform"):
            sp.append(SoftwarePlatform(s.get("version", ""), s.get("locale", ""), s.get("productLineID", "")))
    payloads = []
    for p in root.findall("payloads/payload"):
        sums = tuple(
            Checksum(c.get("checksum-type", ""), c.get("verify-process"), (c.text or "").strip().lower())
            for c in p.findall("checksum")
        )
        size = plain_number(p.get("size", ""))
        usize_s = p.get("uncompressed-size")
        usize = plain_number(usize_s) if usize_s is not None else None
        if size is None:
            findings.append(Finding(ERROR, f"payload {p.get('name')!r}: size {_short(p.get('size', ''))} is not a "
                                           "plain decimal number"))
        if usize_s is not None and usize is None:
            findings.append(Finding(ERROR, f"payload {p.get('name')!r}: uncompressed-size {_short(usize_s)} is not "
                                           "a plain decimal number"))
        payloads.append(
            PayloadSpec(
                name=p.get("name", ""),
                type=p.get("type", ""),
                size=size if size is not None else -1,
                checksums=sums,
                uncompressed_size=usize,
                vfat_name=p.get("vfat-name"),
            )
        )
    desc = Descriptor(
        name=_text(root, "name"),
        version=_text(root, "version"),
        vendor=_text(root, "vendor"),
        type=_text(root, "type"),
        summary=_text(root, "summary"),
        description=_text(root, "description"),
        release_date=_text(root, "release-date"),
        urls=urls,
        depends=_constraints(rel, "depends"),
        conflicts=_constraints(rel, "conflicts"),
        replaces=_constraints(rel, "replaces"),
        provides=_constraints(rel, "provides", "provide"),
        compatible_with=_constraints(rel, "compatibleWith") + _constraints(rel, "compatbileWith"),
        software_tags=tuple((t.text or "").strip() for t in root.findall("software-tags/tag")),
        maintenance_mode=mm,
        hwplatforms=tuple(hw),
        software_platforms=tuple(sp),
        file_list=tuple((f.text or "").strip() for f in root.findall("file-list/file")),
        acceptance_level=_text(root, "acceptance-level"),
        live_install_allowed=_bool(root, "live-install-allowed", True, findings),
        live_remove_allowed=_bool(root, "live-remove-allowed", True, findings),
        cimom_restart=_bool(root, "cimom-restart", False, findings),
        stateless_ready=_bool(root, "stateless-ready", True, findings),
        overlay=_bool(root, "overlay", False, findings),
        payloads=tuple(payloads),
    )
    return replace(desc, parse_findings=tuple(findings))


# ---------------------------------------------------------------- emitting


def _el(tag: str, text: str) -> str:
    return f"<{tag}>{escape(text)}</{tag}>" if text != "" else f"<{tag}/>"


def _cons(tag: str, items: tuple[Constraint, ...], child: str = "constraint") -> str:
    if not items:
        return f"<{tag}/>"
    parts = []
    for c in items:
        a = f"name={quoteattr(c.name)}"
        if c.relation:
            a += f" relation={quoteattr(c.relation)}"
        if c.version:
            a += f" version={quoteattr(c.version)}"
        parts.append(f"<{child} {a}/>")
    return f"<{tag}>{''.join(parts)}</{tag}>"


def _b(v: bool) -> str:
    return "true" if v else "false"


def emit_descriptor(d: Descriptor) -> bytes:
    """descriptor.xml bytes in VMware's element order (VIB Author style: one line, no declaration)."""
    out = ['<vib version="5.0">']
    out.append(_el("type", d.type))
    out.append(_el("name", d.name))
    out.append(_el("version", d.version))
    out.append(_el("vendor", d.vendor))
    out.append(_el("summary", d.summary))
    out.append(_el("description", d.description))
    out.append(_el("release-date", d.release_date))
    if d.urls:
        out.append("<urls>" + "".join(f"<url key={quoteattr(k)}>{escape(u)}</url>" for k, u in d.urls) + "</urls>")
    else:
        out.append("<urls/>")
    out.append(
        "<relationships>"
        + _cons("depends", d.depends)
        + _cons("conflicts", d.conflicts)
        + _cons("replaces", d.replaces)
        + _cons("provides", d.provides, "provide")
        + _cons("compatibleWith", d.compatible_with)
        + "</relationships>"
    )
    if d.software_tags:
        out.append("<software-tags>" + "".join(_el("tag", t) for t in d.software_tags) + "</software-tags>")
    else:
        out.append("<software-tags/>")
    sr = [_el("maintenance-mode", d.maintenance_mode)]
    for vendor, model in d.hwplatforms:
        a = f"vendor={quoteattr(vendor)}" + (f" model={quoteattr(model)}" if model else "")
        sr.append(f"<hwplatform {a}/>")
    for s in d.software_platforms:
        sr.append(
            f"<softwarePlatform version={quoteattr(s.version)} locale={quoteattr(s.locale)} "
            f"productLineID={quoteattr(s.product_line_id)}/>"
        )
    out.append("<system-requires>" + "".join(sr) + "</system-requires>")
    if d.file_list:
        out.append("<file-list>" + "".join(_el("file", f) for f in d.file_list) + "</file-list>")
    else:
        out.append("<file-list/>")
    out.append(_el("acceptance-level", d.acceptance_level))
    out.append(_el("live-install-allowed", _b(d.live_install_allowed)))
    out.append(_el("live-remove-allowed", _b(d.live_remove_allowed)))
    out.append(_el("cimom-restart", _b(d.cimom_restart)))
    out.append(_el("stateless-ready", _b(d.stateless_ready)))
    out.append(_el("overlay", _b(d.overlay)))
    pl = []
    for p in d.payloads:
        a = f"name={quoteattr(p.name)} type={quoteattr(p.type)} size={quoteattr(str(p.size))}"
        if p.vfat_name:
            a += f" vfat-name={quoteattr(p.vfat_name)}"
        if p.uncompressed_size is not None:
            a += f" uncompressed-size={quoteattr(str(p.uncompressed_size))}"
        sums = "".join(
            f"<checksum checksum-type={quoteattr(c.type)}"
            + (f" verify-process={quoteattr(c.verify_process)}" if c.verify_process else "")
            + f">{c.value}</checksum>"
            for c in p.checksums
        )
        pl.append(f"<payload {a}>{sums}</payload>")
    out.append("<payloads>" + "".join(pl) + "</payloads>" if pl else "<payloads/>")
    out.append("</vib>")
    return "".join(out).encode("utf-8")


# ---------------------------------------------------------------- validation


def parse_version(text: str) -> tuple[str, str]:
    """'1.0.0-1' -> ('1.0.0', '1'); more than one '-' is ESXi's parse error. A missing release gives ''."""
    if text.count("-") > 1:
        raise ValueError(f"Could not parse '{text}' to a Vib version.")
    v, _, r = text.partition("-")
    return v, r


def _field_key(f: str) -> tuple[int, str]:
    m = re.match(r"^(\d*)(.*)$", f)
    assert m
    return (int(m.group(1)) if m.group(1) else -1, m.group(2))


def _cmp_part(a: str, b: str) -> int:
    fa, fb = a.split(".") if a else [], b.split(".") if b else []
    for x, y in zip(fa, fb):
        kx, ky = _field_key(x), _field_key(y)
        if kx != ky:
            return -1 if kx < ky else 1
    return (len(fa) > len(fb)) - (len(fa) < len(fb))


def compare_versions(a: str, b: str) -> int:
    """ESXi's order: version then release, fields split on '.', numeric prefix then trailing text. -1/0/1."""
    va, ra = parse_version(a)
    vb, rb = parse_version(b)
    return _cmp_part(va, vb) or _cmp_part(ra, rb)


def extensibility_violations(file_list: tuple[str, ...] | list[str], overlay: bool = False) -> list[str]:
    """Files outside the community-level allowed prefixes (and overlay=true): the reasons -f is needed."""
    bad = [f for f in file_list if not f.startswith(COMMUNITY_PREFIXES)]
    if overlay:
        bad.insert(0, "<overlay>true</overlay>")
    return bad


def validate_descriptor(d: Descriptor, *, for_build: bool = False) -> list[Finding]:
    """Every problem at once. for_build: the stricter rules a VIB we write must meet (no tolerated sloppiness)."""
    f: list[Finding] = list(d.parse_findings)
    soft = ERROR if for_build else WARNING
    if d.type not in TYPES:
        f.append(Finding(ERROR, f"<type> {d.type!r} is not one of {', '.join(TYPES)}"))
    for label, value in (("name", d.name), ("vendor", d.vendor)):
        if not value or not NAME_RE.match(value) or len(value) > 35:
            f.append(Finding(ERROR, f"<{label}> {value!r} must be 1-35 characters of [0-9A-Za-z_.-]"))
    if not d.version:
        pass  # reported as missing above
    elif d.version.count("-") > 1:
        f.append(Finding(ERROR, f"Could not parse '{d.version}' to a Vib version."))
    elif "-" not in d.version:
        f.append(Finding(soft, f"version {d.version!r} has no '-release' part (write e.g. {d.version}-1)"))
    elif not VERSION_RE.match(d.version) or len(d.version) > 35:
        f.append(Finding(ERROR, f"version {d.version!r} must look like 1.0.0-1 (\\w+(.\\w+)*-\\w+(.\\w+)*, ≤35)"))
    if len(d.summary) > 80:
        f.append(Finding(soft, f"<summary> is {len(d.summary)} characters; the schema allows 80"))
    if not d.release_date:
        f.append(Finding(soft, "<release-date> is missing"))
    elif not DATETIME_RE.match(d.release_date):
        if re.match(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", d.release_date):
            f.append(Finding(soft, f"<release-date> {d.release_date!r} has a space instead of 'T' (tolerated by "
                                   "8.x; not xsd:dateTime)"))
        else:
            f.append(Finding(soft, f"<release-date> {d.release_date!r} is not an xsd:dateTime"))
    if d.acceptance_level not in ACCEPTANCE:
        f.append(Finding(ERROR, f"<acceptance-level> {d.acceptance_level!r} is not one of {', '.join(ACCEPTANCE)}"))
    for key, _ in d.urls:
        if len(key) > 20:
            f.append(Finding(soft, f"url key {key!r} is longer than 20 characters"))
    for group, items in (("depends", d.depends), ("conflicts", d.conflicts), ("replaces", d.replaces),
                         ("compatibleWith", d.compatible_with)):
        for c in items:
            if not c.name:
                f.append(Finding(ERROR, f"a <{group}> constraint has no name"))
            if c.relation and c.relation not in RELATIONS:
                f.append(Finding(ERROR, f"<{group}> constraint {c.name!r}: relation {c.relation!r} is not one of "
                                        f"{' '.join(RELATIONS)}"))
            if c.relation and not c.version:
                f.append(Finding(ERROR, f"<{group}> constraint {c.name!r} has a relation but no version"))
    seen: set[str] = set()
    for path in d.file_list:
        if not path or path.startswith("/") or ".." in path.split("/") or "\\" in path:
            f.append(Finding(ERROR, f"file-list entry {path!r} must be a relative path without '..'"))
        elif path.endswith("/"):
            f.append(Finding(ERROR, f"file-list entry {path!r} is a directory; list files only"))
        if len(path) > 99:
            f.append(Finding(ERROR, f"file-list entry {path[:40]!r}... is longer than 99 characters"))
        if path in seen:
            f.append(Finding(ERROR, f"file-list entry {path!r} appears twice"))
        seen.add(path)
    if d.type != "meta" and not d.payloads:
        f.append(Finding(ERROR, "<payloads> is empty"))
    names8: dict[str, str] = {}
    counts: dict[str, int] = {}
    for p in d.payloads:
        counts[p.name] = counts.get(p.name, 0) + 1
    dups = [n for n, c in counts.items() if c > 1]
    if dups:
        f.append(Finding(ERROR, "<payloads> lists the same payload more than once (each listing would be read and "
                                "installed again): " + ", ".join(f"{n!r} ({counts[n]} times)" for n in dups[:5])))
    listed: set[str] = set()
    for p in d.payloads:
        if p.name in listed:
            continue
        listed.add(p.name)
        if not PAYLOAD_NAME_RE.match(p.name):
            f.append(Finding(ERROR, f"payload name {p.name!r} must be 1-15 characters of [0-9A-Za-z_.-]"))
        elif len(p.name) > 8:
            f.append(Finding(INFO, f"payload name {p.name!r} is {len(p.name)} characters; the bootbank 8.3 name "
                                   f"keeps the first 8 ({p.name[:8].replace('-', '_')!r})"))
        short = p.name[:8].replace("-", "_")
        if short in names8:
            f.append(Finding(ERROR, f"payloads {names8[short]!r} and {p.name!r} share the bootbank name {short!r}"))
        names8[short] = p.name
        if p.type not in PAYLOAD_TYPES:
            f.append(Finding(WARNING, f"payload {p.name!r} has an unknown type {p.type!r}"))
        kinds = [c.key for c in p.checksums]
        if "sha-256/gunzip" not in kinds:
            f.append(Finding(WARNING, f"payload {p.name!r} has no sha-256 gunzip checksum: ESXi 8 rejects it "
                                      f"([ProfileValidationError] ... does not have sha-256 gunzip checksum)"))
        if "sha-256/gunzip" in kinds and "sha-256/raw" in kinds and kinds.index("sha-256/raw") < kinds.index(
            "sha-256/gunzip"
        ):
            f.append(Finding(WARNING, f"payload {p.name!r} lists the raw sha-256 before the sha-256 gunzip: older "
                                      f"hosts keep the last sha-256 and fail ('Calculated digest at EOF does not "
                                      f"match expected result')"))
        if not any(c.type.startswith("sha-256") for c in p.checksums):
            f.append(Finding(ERROR, f"payload {p.name!r} has no sha-256 checksum"))
    if d.acceptance_level == "community":
        bad = extensibility_violations(d.file_list, d.overlay)
        if bad:
            shown = ", ".join(bad[:5]) + (f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
            f.append(Finding(WARNING, f"community VIB breaks the extensibility rules (install needs -f; "
                                      f"[VibValidationError] ... violates extensibility rule checks): {shown}"))
    return f
