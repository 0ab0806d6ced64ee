"""ESX 4-era VIBs (vib.md section 0): the descriptor.xml esxupdate reads and the rpm, deb and cross layouts.

    rpm    descriptor.xml, complete.rpm, sig.pkcs7
    deb    debian-binary ("2.0\\n"), control.tar.gz, data.tar.gz, descriptor.xml, sig.pkcs7
    cross  debian-binary, control.tar.gz, data.tar.gz, descriptor.xml, short.rpm, sig.pkcs7

The rules are those of ESX 4's own reader (esx45update `Vib.VibFile._parseVib`, shipped in VMware VIB Author
5.0.0-847598, mirrored in tcely/docker-vibauthor): no duplicate members; descriptor.xml present; deb/cross start
with debian-binary, control.tar.gz, data.tar.gz ("Vib is not Debian-compatible": the archive is also a .deb);
rpm/cross hold exactly one `.rpm`; sig.pkcs7 is the last member ("Signature file not the last member") and signs
every byte before it. labctl always writes sig.pkcs7, empty when unsigned (install with `esxupdate --nosigcheck`).

descriptor.xml follows esx45update `Descriptor.DescriptorFile` (same module), in its element order:

    <descriptor version="3.0">
      vibVersion (1.4.5) vibID name vendor version buildDate vibType
      systemReqs: swPlatform@productLineID@version@locale*, hwPlatform@vendor@model*, maintenanceMode
      postInstall: rebootRequired hostdRestart
      [visorDestination] [pkgfile] [softwareTags: tag*]
    </descriptor>

The VIB ID is `<vibType>_<name>_<version>`; an rpm VIB's version carries the RPM's arch (`1.0.0-1@noarch`,
esx45update `RPMVersion`). Summary, description and dependencies live in the package itself (the RPM header, the
deb control file), not in descriptor.xml. Descriptors in labctl's earlier `<vib>` layout are still read.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from labctl.vib import ar as arlib
from labctl.vib.descriptor import Constraint, Descriptor, parse_xml, release_epoch
from labctl.vib.findings import ERROR, INFO, WARNING, Finding, VibBuildError, VibFormatError
from labctl.vib.payload import (
    DEFAULT_LIMITS,
    MAX_LONGNAME,
    BuiltPayload,
    Entry,
    GunzipReader,
    LinkTree,
    Limits,
    PayloadReport,
    _check_link,
    check_path,
    list_tar,
    write_tgz,
)

VIB_VERSION = "1.4.5"
DESCRIPTOR_VERSION = "3.0"  # esx45update Descriptor.DESCVER
VIB_TYPES = {"esx4-rpm": "rpm", "esx4-deb": "deb", "esx4-cross": "cross"}
PRODUCT_LINES = {"rpm": ["esx"], "deb": ["embeddedEsx"], "cross": ["esx", "embeddedEsx"]}
DEFAULT_PLATFORM = "4.*"  # every ESX/ESXi 4 release; esx45update matches '*' field by field
DEB_FIRST = ["debian-binary", "control.tar.gz", "data.tar.gz"]
RPM_LEAD_MAGIC = b"\xed\xab\xee\xdb"
RPM_HEADER_MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
MAX_RPM_HEADER = 16 * 1024 * 1024
DEB_ARCH = "i386"


@dataclass
class Esx4Descriptor:
    vib_type: str
    name: str
    version: str  # version-release, without the @arch suffix
    vendor: str
    summary: str = ""
    description: str = ""
    release_date: str = ""  # <buildDate>
    maintenance_mode: bool = False
    reboot_required: bool = False
    hostd_restart: bool = False
    product_lines: list[str] = field(default_factory=list)
    platform_versions: list[str] = field(default_factory=list)  # one per product line, e.g. "4.*" or "4.1"
    software_tags: list[str] = field(default_factory=list)
    depends: list[Constraint] = field(default_factory=list)
    conflicts: list[Constraint] = field(default_factory=list)
    replaces: list[Constraint] = field(default_factory=list)
    arch: str = ""  # rpm VIBs: the RPM's arch (version string `1.0.0-1@noarch`)
    pkgfile: str = ""
    declared_id: str = ""  # <vibID> as written

    @property
    def version_string(self) -> str:
        return f"{self.version}@{self.arch}" if self.vib_type == "rpm" and self.arch else self.version

    @property
    def computed_id(self) -> str:
        """esx45update VIB.idfromtnv: type, name and version joined with '_'."""
        return f"{self.vib_type}_{self.name}_{self.version_string}"

    @property
    def vib_id(self) -> str:
        return self.declared_id or self.computed_id

    def to_json(self) -> dict:
        return {
            "vib_version": VIB_VERSION, "vib_type": self.vib_type, "name": self.name, "version": self.version,
            "vendor": self.vendor, "summary": self.summary, "description": self.description,
            "release_date": self.release_date, "maintenance_mode": self.maintenance_mode,
            "reboot_required": self.reboot_required, "hostd_restart": self.hostd_restart,
            "product_lines": self.product_lines, "platform_versions": self.platform_versions,
            "software_tags": self.software_tags, "arch": self.arch or None, "pkgfile": self.pkgfile or None,
            "depends": [c.name for c in self.depends], "conflicts": [c.name for c in self.conflicts],
            "replaces": [c.name for c in self.replaces],
        }


def emit_esx4(d: Esx4Descriptor) -> bytes:
    """descriptor.xml as esx45update's DescriptorFile writes it (element order included)."""
    b = lambda v: "true" if v else "false"  # noqa: E731
    versions = d.platform_versions or [DEFAULT_PLATFORM] * len(d.product_lines)
    plats = "".join(f"<swPlatform productLineID={quoteattr(p)} version={quoteattr(v)} locale=\"\"/>"
                    for p, v in zip(d.product_lines, versions))
    tags = "".join(f"<tag>{escape(t)}</tag>" for t in d.software_tags)
    return (
        f'<descriptor version="{DESCRIPTOR_VERSION}"><vibVersion>{VIB_VERSION}</vibVersion>'
        f"<vibID>{escape(d.vib_id)}</vibID><name>{escape(d.name)}</name><vendor>{escape(d.vendor)}</vendor>"
        f"<version>{escape(d.version_string)}</version><buildDate>{escape(d.release_date)}</buildDate>"
        f"<vibType>{d.vib_type}</vibType>"
        f"<systemReqs>{plats}<maintenanceMode>{b(d.maintenance_mode)}</maintenanceMode></systemReqs>"
        f"<postInstall><rebootRequired>{b(d.reboot_required)}</rebootRequired>"
        f"<hostdRestart>{b(d.hostd_restart)}</hostdRestart></postInstall>"
        + (f"<pkgfile>{escape(d.pkgfile)}</pkgfile>" if d.pkgfile else "")
        + (f"<softwareTags>{tags}</softwareTags>" if tags else "")
        + "</descriptor>"
    ).encode()


def parse_esx4(data: bytes) -> tuple[Esx4Descriptor, list[Finding]]:
    root = parse_xml(data)
    f: list[Finding] = []
    if root.tag not in ("descriptor", "vib"):
        raise VibFormatError(f"descriptor.xml: root element is <{root.tag}>, expected <descriptor>")
    if root.tag == "vib":
        f.append(Finding(INFO, "descriptor.xml has a <vib> root (labctl's earlier ESX 4 layout); esxupdate's "
                               "own descriptors are <descriptor version=\"3.0\">"))
    vv = (root.findtext("vibVersion") or "").strip()
    if vv != VIB_VERSION:
        f.append(Finding(WARNING, f"vibVersion {vv!r}; ESX 4 VIBs use {VIB_VERSION}"))

    def t(tag):
        return (root.findtext(tag) or "").strip()

    def bl(tag):
        return t(tag).lower() == "true"

    def cons(tag):
        return [Constraint(c.get("name", ""), c.get("relation"), c.get("version"))
                for c in root.findall(f"relationships/{tag}/constraint")]

    version, _, arch = t("version").partition("@")
    plats = root.findall("systemReqs/swPlatform")
    d = Esx4Descriptor(
        vib_type=t("vibType"), name=t("name"), version=version, vendor=t("vendor"), summary=t("summary"),
        description=t("description"), release_date=t("buildDate") or t("releaseDate"),
        maintenance_mode=bl("systemReqs/maintenanceMode"), reboot_required=bl("postInstall/rebootRequired"),
        hostd_restart=bl("postInstall/hostdRestart"),
        product_lines=[p.get("productLineID", "") for p in plats],
        platform_versions=[p.get("version", "") for p in plats],
        software_tags=[(x.text or "").strip() for x in root.findall("softwareTags/tag")],
        depends=cons("depends"), conflicts=cons("conflicts"), replaces=cons("replaces"),
        arch=arch, pkgfile=t("pkgfile"), declared_id=t("vibID"),
    )
    if d.vib_type not in ("rpm", "deb", "cross", "meta"):
        f.append(Finding(ERROR, f"vibType {d.vib_type!r} is not rpm, deb, cross or meta"))
    for req in ("name", "version", "vendor"):
        if not getattr(d, req):
            f.append(Finding(ERROR, f"descriptor.xml has no <{req}>"))
    if root.tag == "descriptor" and not d.declared_id:
        f.append(Finding(ERROR, "descriptor.xml has no <vibID> (esxupdate: Could not parse valid VIB ID from XML "
                                "data.)"))
    elif d.declared_id and d.declared_id != d.computed_id:
        f.append(Finding(WARNING, f"<vibID> {d.declared_id!r} is not <vibType>_<name>_<version> "
                                  f"({d.computed_id!r})"))
    for p in d.product_lines:
        if p not in ("esx", "embeddedEsx"):
            f.append(Finding(WARNING, f"swPlatform productLineID {p!r} is not esx or embeddedEsx"))
    return d, f


# ---------------------------------------------------------------- RPM reader


RPM_TAGS_READ = {63, 269, 1000, 1001, 1002, 1004, 1007, 1027, 1116, 1117, 1118}  # the tags inspect uses (63: v4 region)
RPM_TYPE_SIZES = {0: 0, 1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 1, 9: 1}


def _read_header(f: BinaryIO, pos: int, end: int, what: str) -> tuple[dict[int, object], int]:
    """An RPM header structure: every index entry bounds-checked, only the tags inspect uses decoded (the number
    of strings decoded is bounded by the store's size, not by the counts the header claims)."""
    f.seek(pos)
    pre = f.read(16)
    if len(pre) < 16 or pre[:8] != RPM_HEADER_MAGIC:
        raise VibFormatError(f"{what}: bad RPM header magic at offset {pos}")
    nindex, hsize = struct.unpack(">ii", pre[8:16])
    if nindex < 0 or hsize < 0 or nindex > 65536 or 16 * nindex + hsize > MAX_RPM_HEADER:
        raise VibFormatError(f"{what}: RPM header sizes out of bounds")
    total = 16 + 16 * nindex + hsize
    if pos + total > end:
        raise VibFormatError(f"{what}: RPM header runs past the end")
    body = f.read(16 * nindex + hsize)
    store = body[16 * nindex :]
    tags: dict[int, object] = {}
    for i in range(nindex):
        tag, typ, off, count = struct.unpack(">iiii", body[16 * i : 16 * i + 16])
        if typ not in RPM_TYPE_SIZES or off < 0 or off > hsize or count < 0 or \
                off + count * RPM_TYPE_SIZES[typ] > hsize:
            raise VibFormatError(f"{what}: RPM header tag {tag} (type {typ}, count {count}) out of bounds")
        if (typ == 6 and count != 1 or typ == 9 and count < 1) and tag in RPM_TAGS_READ:
            raise VibFormatError(f"{what}: RPM header string tag {tag} has count {count}")
        if tag not in RPM_TAGS_READ:
            continue
        if tag in tags:
            raise VibFormatError(f"{what}: RPM header tag {tag} appears twice")
        if typ == 4:
            tags[tag] = list(struct.unpack_from(f">{count}i", store, off))
        elif typ == 3:
            tags[tag] = list(struct.unpack_from(f">{count}H", store, off))
        elif typ in (6, 8, 9):
            vals, p = [], off
            for _ in range(count):
                e = store.find(b"\0", p)
                if e < 0:
                    raise VibFormatError(f"{what}: RPM header string for tag {tag} is not terminated")
                vals.append(store[p:e].decode("utf-8", "replace"))
                p = e + 1
            tags[tag] = vals[0] if typ in (6, 9) else vals
        elif typ == 7:
            tags[tag] = store[off : off + count]
        else:
            tags[tag] = ("unexpected type", typ)  # _tag reports it as the wrong type
    return tags, pos + total


def _tag(tags: dict[int, object], tag: int, kind: type, what: str, label: str):
    """A header tag of the expected shape (list of ints, list of strings, str, bytes) or None."""
    v = tags.get(tag)
    if v is None:
        return None
    if not isinstance(v, kind) or (kind is list and not v):
        raise VibFormatError(f"{what}: RPM {label} tag ({tag}) has the wrong type or no value")
    return v


def read_rpm(f: BinaryIO, member: arlib.ArMember, limits: Limits) -> PayloadReport:
    """Check an RPM member: lead, signature header (SIZE, MD5), main header, and the cpio payload's paths."""
    what = f"payload {member.name!r}"
    rep = PayloadReport(member.name, "rpm", member.size)
    end = member.offset + member.size
    try:
        f.seek(member.offset)
        lead = f.read(96)
        if len(lead) < 96 or lead[:4] != RPM_LEAD_MAGIC:
            raise VibFormatError(f"{what}: not an RPM (bad lead magic)")
        sig, pos = _read_header(f, member.offset + 96, end, what)
        pos += -(pos - member.offset - 96) % 8
        hdr_start = pos
        hdr, pos = _read_header(f, pos, end, what)
        exp_size = _tag(sig, 1000, list, what, "signature SIZE")
        if exp_size is not None and (len(exp_size) != 1 or not isinstance(exp_size[0], int)):
            raise VibFormatError(f"{what}: RPM signature SIZE tag holds {len(exp_size)} values, not 1")
        if exp_size is not None and exp_size[0] != end - hdr_start:
            rep.findings.append(Finding(ERROR, f"{what}: RPM signature SIZE {exp_size[0]} != "
                                               f"{end - hdr_start} bytes of header+payload"))
        md5 = hashlib.md5()
        sha1 = hashlib.sha1()

        def chunks():
            f.seek(hdr_start)
            left = end - hdr_start
            hdr_left = pos - hdr_start
            p = hdr_start
            while left:
                f.seek(p)
                b = f.read(min(1 << 20, left))
                if not b:
                    raise VibFormatError(f"{what}: unexpected EOF")
                md5.update(b)
                if hdr_left:
                    sha1.update(b[:hdr_left])
                    if len(b) <= hdr_left:
                        hdr_left -= len(b)
                    else:
                        tail, hdr_left = b[hdr_left:], 0
                        yield tail
                else:
                    yield b
                left -= len(b)
                p += len(b)

        if 63 not in hdr:
            rep.findings.append(Finding(WARNING, f"{what}: RPM v3 header (no immutable region): rpm 4.16+ says "
                                                 "'RPM v3 packages are deprecated', rpm 4.20+ refuses it"))
        if pos == end:  # a header without payload: a cross VIB's short.rpm (esxupdate appends data.tar.gz)
            for _ in chunks():
                pass
            rep.findings.append(Finding(INFO, f"{what}: header only (no payload); esxupdate builds the payload "
                                              "from data.tar.gz"))
        else:
            reader = GunzipReader(chunks(), limits, what)
            rep.entries = _list_cpio(reader, what, limits, rep.findings)
            while b := reader.read(1 << 20):  # after TRAILER!!! only padding: cpio -i would read on past it
                if b.strip(b"\0"):
                    raise VibFormatError(f"{what}: data after the cpio trailer")
            rep.uncompressed_size = reader.size
        exp_md5 = _tag(sig, 1004, bytes, what, "signature MD5")
        if exp_md5 is None:
            rep.findings.append(Finding(INFO, f"{what}: the RPM signature declares no MD5 over header+payload"))
        else:
            ok_md5 = exp_md5 == md5.digest()
            rep.checksums.append({"type": "md5", "verify_process": "rpm-header+payload",
                                  "expected": exp_md5.hex() if isinstance(exp_md5, bytes) else None,
                                  "actual": md5.hexdigest(), "ok": ok_md5})
            if not ok_md5:
                rep.findings.append(Finding(ERROR, f"{what}: RPM MD5 over header+payload does not match"))
        exp_sha1 = _tag(sig, 269, str, what, "signature SHA1")
        if exp_sha1 is not None:
            ok = exp_sha1 == sha1.hexdigest()
            rep.checksums.append({"type": "sha-1", "verify_process": "rpm-header", "expected": exp_sha1,
                                  "actual": sha1.hexdigest(), "ok": ok})
            if not ok:
                rep.findings.append(Finding(ERROR, f"{what}: RPM header SHA1 does not match"))
        names = _tag(hdr, 1027, list, what, "OLDFILENAMES")
        if names is None and 1117 in hdr:
            bases = _tag(hdr, 1117, list, what, "BASENAMES") or []
            dirs = _tag(hdr, 1118, list, what, "DIRNAMES") or []
            idx = _tag(hdr, 1116, list, what, "DIRINDEXES") or []
            if len(idx) != len(bases):
                raise VibFormatError(f"{what}: RPM DIRINDEXES has {len(idx)} entries for {len(bases)} BASENAMES")
            bad = next((i for i in idx if not 0 <= i < len(dirs)), None)
            if bad is not None:
                raise VibFormatError(f"{what}: RPM DIRINDEXES entry {bad} is past DIRNAMES ({len(dirs)} entries)")
            names = [dirs[i] + b for i, b in zip(idx, bases)]
        nvr = [_tag(hdr, t, str, what, label) for t, label in ((1000, "NAME"), (1001, "VERSION"), (1002, "RELEASE"))]
        if not all(nvr):
            raise VibFormatError(f"{what}: RPM header has no NAME, VERSION or RELEASE")
        rep.findings.append(Finding(INFO, f"{what}: RPM {'-'.join(nvr)} ({len(names or [])} file(s))"))
        for n in names or []:
            check_path(str(n).lstrip("/"), what)
    except VibFormatError as e:
        rep.findings.append(Finding(ERROR, e.message))
    return rep


def _list_cpio(reader: GunzipReader, what: str, limits: Limits, findings: list[Finding]) -> list[Entry]:
    entries: list[Entry] = []
    tree = LinkTree()
    while True:
        h = reader.read_exact(110)
        if len(h) < 110 or h[:6] not in (b"070701", b"070702"):
            raise VibFormatError(f"{what}: bad cpio header in the RPM payload")
        hexes = [h[6 + 8 * i : 14 + 8 * i] for i in range(13)]
        if any(c not in b"0123456789abcdefABCDEF" for x in hexes for c in x):
            raise VibFormatError(f"{what}: bad cpio header numbers")
        fields = [int(x, 16) for x in hexes]
        mode, size, namesize = fields[1], fields[6], fields[11]
        if namesize > MAX_LONGNAME:
            raise VibFormatError(f"{what}: cpio name of {namesize} bytes is longer than {MAX_LONGNAME}")
        if size > limits.max_total:
            raise VibFormatError(f"{what}: cpio member declares {size} bytes, above the {limits.max_total}-byte cap")
        name = reader.read_exact(namesize).rstrip(b"\0").decode("utf-8", "replace")
        reader.read_exact(-(110 + namesize) % 4)
        if name == "TRAILER!!!":
            return entries
        if len(entries) >= limits.max_entries:
            raise VibFormatError(f"{what}: more than {limits.max_entries} cpio members")
        path = check_path(name, what)
        if stat.S_ISREG(mode):
            kind = "file"
        elif stat.S_ISDIR(mode):
            kind = "dir"
        elif stat.S_ISLNK(mode):
            kind = "symlink"
        elif stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise VibFormatError(f"{what}: member {path!r} is a device node")
        else:
            raise VibFormatError(f"{what}: member {path!r} has unsupported type {mode:o}")
        link = ""
        if kind == "symlink":
            if size > MAX_LONGNAME:
                raise VibFormatError(f"{what}: cpio symlink {path!r} has a {size}-byte target; refusing more than "
                                     f"{MAX_LONGNAME}")
            link = reader.read_exact(size).decode("utf-8", "replace")
            _check_link(path, link, what, hard=False)
        else:
            left = size
            while left:
                b = reader.read(min(left, 1 << 20))
                if not b:
                    raise VibFormatError(f"{what}: cpio data truncated")
                left -= len(b)
        reader.read_exact(-size % 4)
        where = tree.add(path, kind, link, what)
        if mode & (stat.S_ISUID | stat.S_ISGID):
            findings.append(Finding(WARNING, f"{what}: {path!r} is setuid/setgid"))
        entries.append(Entry(path, kind, size, mode & 0o7777, link, where))


# ---------------------------------------------------------------- inspect


def inspect_esx4(f: BinaryIO, archive: arlib.ArArchive, rep, *, ca_pem: bytes | None = None,
                 limits: Limits = DEFAULT_LIMITS) -> None:
    try:
        _inspect_esx4(f, archive, rep, ca_pem=ca_pem, limits=limits)
    except VibFormatError as e:
        rep.findings.append(Finding(ERROR, e.message))


def _inspect_esx4(f: BinaryIO, archive: arlib.ArArchive, rep, *, ca_pem: bytes | None,
                  limits: Limits) -> None:
    from labctl.vib.signing import verify
    from labctl.vib.payload import GunzipReader as _GR

    names = archive.names()
    desc_m = archive.get("descriptor.xml")
    if desc_m is None:
        rep.kind = "esx4-deb" if names[0] == "debian-binary" else "unknown"
        rep.findings.append(Finding(ERROR, "ESX 4 VIB without descriptor.xml"))
        return
    try:
        d, fs = parse_esx4(arlib.read_member(f, desc_m, 1 << 20))
    except VibFormatError as e:
        rep.findings.append(Finding(ERROR, e.message))
        return
    rep.esx4 = d
    rep.vib_id = d.vib_id
    rep.findings += fs
    rep.kind = {"rpm": "esx4-rpm", "deb": "esx4-deb", "cross": "esx4-cross"}.get(d.vib_type, "esx4-deb")
    rep.findings.append(Finding(INFO, "This VIB is a ESX 4.x VIB and is not supported on ESXi 5.0 or later "
                                      "(install on ESX 4 with esxupdate)"))
    if d.vib_type in ("deb", "cross") and names[:3] != DEB_FIRST:
        rep.findings.append(Finding(ERROR, f"{d.vib_type} VIB: the first three members must be "
                                           f"{', '.join(DEB_FIRST)}; found {', '.join(names[:3])}"))
    rpms = [n for n in names if n.endswith(".rpm")]
    if d.vib_type in ("rpm", "cross") and len(rpms) != 1:
        rep.findings.append(Finding(ERROR, f"{d.vib_type} VIB must hold exactly one .rpm; found {len(rpms)}"))
    if d.vib_type == "deb" and rpms:
        rep.findings.append(Finding(ERROR, "deb VIB holds an .rpm (a cross VIB would)"))
    if "sig.pkcs7" in names:
        if names[-1] != "sig.pkcs7":
            rep.findings.append(Finding(ERROR, "sig.pkcs7 must be the last member (it signs every byte before it; "
                                               "esxupdate: Signature file not the last member)"))
        sig_m = archive.get("sig.pkcs7")
        assert sig_m is not None
        sig = arlib.read_member(f, sig_m, 256 * 1024)
        prefix_end = sig_m.offset - arlib.HEADER_LEN

        def digest_fn(name: str) -> bytes:
            h = hashlib.new(name)
            f.seek(0)
            left = prefix_end
            while left:
                b = f.read(min(1 << 20, left))
                if not b:
                    break
                h.update(b)
                left -= len(b)
            return h.digest()

        rep.signature = verify(sig, None, ca_pem, digest_fn=digest_fn)
        if rep.signature.present:
            from labctl.vib.signing import signature_findings

            rep.findings.extend(signature_findings(rep.signature, "partner"))
        else:
            rep.findings.append(Finding(INFO, "unsigned (empty sig.pkcs7): install with esxupdate --nosigcheck"))
    else:
        rep.findings.append(Finding(WARNING, "no sig.pkcs7 member: every ESX 4 VIB has one (empty when unsigned); "
                                             "esxupdate installs this one only with --nosigcheck"))
    if "debian-binary" in names:
        db = arlib.read_member(f, archive.get("debian-binary"), 64)  # type: ignore[arg-type]
        if db != b"2.0\n":
            rep.findings.append(Finding(ERROR, f"debian-binary is {db!r}, expected '2.0\\n'"))
    for n in ("control.tar.gz", "data.tar.gz"):
        m = archive.get(n)
        if m is None:
            if d.vib_type in ("deb", "cross"):
                rep.findings.append(Finding(ERROR, f"{d.vib_type} VIB has no {n}"))
            continue
        pr = PayloadReport(n, "tgz", m.size)
        reader = _GR(arlib.iter_member(f, m), limits, f"member {n!r}")
        try:
            pr.entries = list_tar(reader, f"member {n!r}", limits, pr.findings)
            reader.drain()
            pr.uncompressed_size = reader.size
        except VibFormatError as e:
            pr.findings.append(Finding(ERROR, e.message))
        # An ESX 4 descriptor declares no member checksums (only a signature covers the members): report the
        # digest as computed, never as verified.
        pr.raw_sha256 = reader.raw_sha256.hexdigest()
        pr.findings.append(Finding(INFO, f"member {n!r}: no checksum declared in descriptor.xml (sha-256 of the "
                                         f"member: {pr.raw_sha256})"))
        rep.payloads.append(pr)
    for n in rpms:
        m = archive.get(n)
        assert m is not None
        rep.payloads.append(read_rpm(f, m, limits))


# ---------------------------------------------------------------- build


def _deb_relations(items) -> str:
    return ", ".join(c.name + (f" ({c.relation} {c.version})" if c.relation else "") for c in items)


def _rpm_deps(items):
    from labctl.vib.rpm import RpmDep

    return tuple(RpmDep(c.name, c.relation, c.version) for c in items)


def build_esx4(opts, desc: Descriptor, built: list[BuiltPayload], tmpdir: Path, extra: dict) -> tuple[int, str]:
    """Write an ESX 4 rpm/deb/cross VIB from the (already validated) descriptor and the single payload tree."""
    from labctl.vib.rpm import RpmSpec, write_rpm

    vib_type = VIB_TYPES[opts.format]
    if len(built) != 1:
        raise VibBuildError(f"--format {opts.format}: ESX 4 VIBs carry one payload tree; the stage has "
                            f"{len(built)} ({', '.join(b.name for b in built)})")
    plats = [p.version for p in desc.software_platforms]
    if any(not (v == "4" or v.startswith("4.")) for v in plats):
        raise VibBuildError(f"--format {opts.format} builds VIBs for ESX/ESXi 4; the platforms say "
                            f"{', '.join(plats)}", hint="use 4.0, 4.1 or 4.* (or leave platforms out: 4.*)")
    mtime = release_epoch(desc.release_date)
    reboot = extra.get("reboot-required")
    version, _, release = desc.version.partition("-")
    spec = RpmSpec(name=desc.name, version=version, release=release or "1", summary=desc.summary,
                   description=desc.description, vendor=desc.vendor, buildtime=mtime,
                   requires=_rpm_deps(desc.depends), conflicts=_rpm_deps(desc.conflicts),
                   obsoletes=_rpm_deps(desc.replaces))
    product_lines = PRODUCT_LINES[vib_type]
    d4 = Esx4Descriptor(
        vib_type=vib_type, name=desc.name, version=desc.version, vendor=desc.vendor, summary=desc.summary,
        description=desc.description, release_date=desc.release_date,
        maintenance_mode=desc.maintenance_mode == "true",
        reboot_required=bool(reboot) if reboot is not None else not desc.live_install_allowed,
        hostd_restart=bool(extra.get("hostd-restart")),
        product_lines=product_lines, platform_versions=[plats[0] if plats else DEFAULT_PLATFORM] * len(product_lines),
        software_tags=list(desc.software_tags), depends=list(desc.depends), conflicts=list(desc.conflicts),
        replaces=list(desc.replaces), arch=spec.arch if vib_type == "rpm" else "",
        pkgfile=spec.file_name if vib_type != "deb" else f"{desc.name}_{desc.version}_{DEB_ARCH}.deb",
    )
    src = opts.stage / "payloads" / built[0].name
    members: list[tuple[str, Path | bytes]] = []
    if vib_type in ("deb", "cross"):
        ctl_dir = tmpdir / "control"
        ctl_dir.mkdir()
        fields = [("Package", desc.name), ("Version", desc.version), ("Architecture", DEB_ARCH),
                  ("Maintainer", desc.vendor), ("Depends", _deb_relations(desc.depends)),
                  ("Conflicts", _deb_relations(desc.conflicts)), ("Replaces", _deb_relations(desc.replaces))]
        summary = (desc.summary or desc.name).replace("\n", " ")
        body = "\n".join(f" {ln}" if ln.strip() else " ." for ln in desc.description.splitlines())
        text = "".join(f"{k}: {v}\n" for k, v in fields if v) + f"Description: {summary}\n"
        (ctl_dir / "control").write_text(text + (body + "\n" if body else ""), encoding="utf-8")
        write_tgz(ctl_dir, tmpdir / "control.tar.gz", "control", mtime)
        members += [("debian-binary", b"2.0\n"), ("control.tar.gz", tmpdir / "control.tar.gz"),
                    ("data.tar.gz", built[0].path)]
    members.append(("descriptor.xml", emit_esx4(d4)))
    if vib_type == "rpm":
        write_rpm(tmpdir / "complete.rpm", spec, src)
        members.append(("complete.rpm", tmpdir / "complete.rpm"))
    elif vib_type == "cross":
        write_rpm(tmpdir / "short.rpm", spec, src, short=True)
        members.append(("short.rpm", tmpdir / "short.rpm"))
    tmp = tmpdir / "out.vib"
    with open(tmp, "w+b") as fh:
        w = arlib.ArWriter(fh)
        for name, data in members:
            if isinstance(data, bytes):
                w.add_bytes(name, data)
            else:
                with open(data, "rb") as src_fh:
                    w.add_file(name, src_fh, data.stat().st_size)
        sig = b""  # present in every VIB; empty when unsigned
        if opts.sign_key and opts.sign_cert:
            from labctl.vib.signing import sign

            n = fh.tell()
            fh.seek(0)
            signed = fh.read(n)  # ESX 4 signatures cover every byte before sig.pkcs7 (small VIBs only)
            sig = sign(signed, opts.sign_key, opts.sign_cert)
            fh.seek(n)
        w.add_bytes("sig.pkcs7", sig)
        size = fh.tell()
    os.replace(tmp, opts.output)
    return size, d4.vib_id
