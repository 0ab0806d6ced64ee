"""ESX 4-era VIBs (vib.md section 0): the 1.4.5 descriptor and the rpm, deb and cross archive layouts.

    rpm    descriptor.xml, complete.rpm[, sig.pkcs7]
    deb    debian-binary ("2.0\\n"), control.tar.gz, data.tar.gz, descriptor.xml[, sig.pkcs7]
    cross  debian-binary, control.tar.gz, data.tar.gz, descriptor.xml, short.rpm[, sig.pkcs7]

Rules: no duplicate members; descriptor.xml present; deb/cross start with debian-binary, control.tar.gz,
data.tar.gz; rpm/cross hold exactly one `.rpm`; sig.pkcs7, if present, is the last member and signs every byte
before it. No public ESX 4 descriptor sample is known, so the descriptor follows the element list of vib.md.

RPMs are written as classic v3-lead packages with a header-style signature (SIZE, MD5, SHA1, PAYLOADSIZE) and a
gzip'ed `newc` cpio payload with OLDFILENAMES, which every rpm 4.x reads; they are read back with the same checks.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from labctl.vib import ar as arlib
from labctl.vib.descriptor import Constraint, Descriptor, parse_xml
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
    walk_stage,
    write_tgz,
)

VIB_VERSION = "1.4.5"
VIB_TYPES = {"esx4-rpm": "rpm", "esx4-deb": "deb", "esx4-cross": "cross"}
DEB_FIRST = ["debian-binary", "control.tar.gz", "data.tar.gz"]
RPM_LEAD_MAGIC = b"\xed\xab\xee\xdb"
RPM_HEADER_MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"
MAX_RPM_HEADER = 16 * 1024 * 1024


@dataclass
class Esx4Descriptor:
    vib_type: str
    name: str
    version: str
    vendor: str
    summary: str = ""
    description: str = ""
    release_date: str = ""
    maintenance_mode: bool = False
    reboot_required: bool = False
    hostd_restart: bool = False
    product_lines: list[str] = field(default_factory=list)
    software_tags: list[str] = field(default_factory=list)
    depends: list[Constraint] = field(default_factory=list)
    conflicts: list[Constraint] = field(default_factory=list)
    replaces: list[Constraint] = field(default_factory=list)

    @property
    def vib_id(self) -> str:
        return f"{self.vendor}_{self.vib_type}_{self.name}_{self.version}"

    def to_json(self) -> dict:
        return {
            "vib_version": VIB_VERSION, "vib_type": self.vib_type, "name": self.name, "version": self.version,
            "vendor": self.vendor, "summary": self.summary, "description": self.description,
            "release_date": self.release_date, "maintenance_mode": self.maintenance_mode,
            "reboot_required": self.reboot_required, "hostd_restart": self.hostd_restart,
            "product_lines": self.product_lines, "software_tags": self.software_tags,
            "depends": [c.name for c in self.depends], "conflicts": [c.name for c in self.conflicts],
            "replaces": [c.name for c in self.replaces],
        }


def _cons_xml(tag: str, items) -> str:
    if not items:
        return f"<{tag}/>"
    out = []
    for c in items:
        a = f"name={quoteattr(c.name)}"
        if c.relation:
            a += f" relation={quoteattr(c.relation)} version={quoteattr(c.version or '')}"
        out.append(f"<constraint {a}/>")
    return f"<{tag}>{''.join(out)}</{tag}>"


def emit_esx4(d: Esx4Descriptor) -> bytes:
    b = lambda v: "true" if v else "false"  # noqa: E731
    plats = "".join(f'<swPlatform productLineID={quoteattr(p)} version="4.*" locale=""/>' for p in d.product_lines)
    tags = "".join(f"<tag>{escape(t)}</tag>" for t in d.software_tags)
    return (
        f"<vib><vibVersion>{VIB_VERSION}</vibVersion><vibType>{d.vib_type}</vibType>"
        f"<name>{escape(d.name)}</name><version>{escape(d.version)}</version><vendor>{escape(d.vendor)}</vendor>"
        f"<summary>{escape(d.summary)}</summary><description>{escape(d.description)}</description>"
        f"<releaseDate>{escape(d.release_date)}</releaseDate>"
        f"<systemReqs><maintenanceMode>{b(d.maintenance_mode)}</maintenanceMode>{plats}</systemReqs>"
        f"<postInstall><rebootRequired>{b(d.reboot_required)}</rebootRequired>"
        f"<hostdRestart>{b(d.hostd_restart)}</hostdRestart></postInstall>"
        + (f"<softwareTags>{tags}</softwareTags>" if tags else "<softwareTags/>")
        + "<relationships>" + _cons_xml("depends", d.depends) + _cons_xml("conflicts", d.conflicts)
        + _cons_xml("replaces", d.replaces) + "</relationships></vib>"
    ).encode()


def parse_esx4(data: bytes) -> tuple[Esx4Descriptor, list[Finding]]:
    root = parse_xml(data)
    f: list[Finding] = []
    if root.tag != "vib":
        raise VibFormatError(f"descriptor.xml: root element is <{root.tag}>, expected <vib>")
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

    d = Esx4Descriptor(
        vib_type=t("vibType"), name=t("name"), version=t("version"), vendor=t("vendor"), summary=t("summary"),
        description=t("description"), release_date=t("releaseDate"),
        maintenance_mode=bl("systemReqs/maintenanceMode"), reboot_required=bl("postInstall/rebootRequired"),
        hostd_restart=bl("postInstall/hostdRestart"),
        product_lines=[p.get("productLineID", "") for p in root.findall("systemReqs/swPlatform")],
        software_tags=[(x.text or "").strip() for x in root.findall("softwareTags/tag")],
        depends=cons("depends"), conflicts=cons("conflicts"), replaces=cons("replaces"),
    )
    if d.vib_type not in ("rpm", "deb", "cross", "meta"):
        f.append(Finding(ERROR, f"vibType {d.vib_type!r} is not rpm, deb, cross or meta"))
    for req in ("name", "version", "vendor"):
        if not getattr(d, req):
            f.append(Finding(ERROR, f"descriptor.xml has no <{req}>"))
    for p in d.product_lines:
        if p not in ("esx", "embeddedEsx"):
            f.append(Finding(WARNING, f"swPlatform productLineID {p!r} is not esx or embeddedEsx"))
    return d, f


# ---------------------------------------------------------------- RPM writer


def _rpm_header(entries: list[tuple[int, int, object]]) -> bytes:
    """entries: (tag, type, value). Types: 3 INT16[], 4 INT32[], 6 STRING, 7 BIN, 8 STRING_ARRAY, 9 I18NSTRING."""
    index = []
    store = bytearray()
    for tag, typ, value in sorted(entries, key=lambda e: e[0]):
        if typ == 4:
            store += b"\0" * (-len(store) % 4)
            vals = list(value)  # type: ignore[call-overload]
            data, count = struct.pack(f">{len(vals)}i", *vals), len(vals)
        elif typ == 3:
            store += b"\0" * (-len(store) % 2)
            vals = list(value)  # type: ignore[call-overload]
            data, count = struct.pack(f">{len(vals)}H", *vals), len(vals)
        elif typ in (6, 9):
            vals = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
            data, count = b"".join(v.encode() + b"\0" for v in vals), len(vals)
        elif typ == 8:
            vals = list(value)  # type: ignore[call-overload]
            data, count = b"".join(v.encode() + b"\0" for v in vals), len(vals)
        elif typ == 7:
            data, count = bytes(value), len(value)  # type: ignore[arg-type]
        else:
            raise ValueError(typ)
        index.append(struct.pack(">iiii", tag, typ, len(store), count))
        store += data
    return RPM_HEADER_MAGIC + struct.pack(">ii", len(index), len(store)) + b"".join(index) + bytes(store)


def _cpio_entry(name: str, mode: int, size: int, mtime: int, ino: int) -> bytes:
    nm = name.encode() + b"\0"
    h = b"070701" + b"".join(b"%08X" % v for v in (ino, mode, 0, 0, 1, mtime, size, 0, 0, 0, 0, len(nm), 0))
    out = h + nm
    return out + b"\0" * (-len(out) % 4)


def write_rpm(out: Path, d: Esx4Descriptor, src: Path | None, mtime: int, arch: str = "noarch") -> int:
    """An RPM of the tree at `src` (None: no files, for short.rpm), streamed; returns its size."""
    files: list[tuple[str, Path | None, os.stat_result]] = []
    if src is not None:
        for rel, path, st in walk_stage(src):
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise VibBuildError(f"{path}: ESX 4 rpm payloads hold files and directories only")
            files.append((rel, path, st))
    payload_tmp = out.with_name(out.name + ".cpio.gz")
    md5s: list[str] = []
    modes: list[int] = []
    sizes: list[int] = []
    usize = 0
    with open(payload_tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                        compresslevel=6) as gz:
        for ino, (rel, path, st) in enumerate(files, 1):
            if stat.S_ISDIR(st.st_mode):
                mode, size = stat.S_IFDIR | 0o755, 0
            else:
                mode, size = stat.S_IFREG | (0o755 if st.st_mode & 0o111 else 0o644), st.st_size
            h = _cpio_entry("./" + rel, mode, size, mtime, ino)
            gz.write(h)
            usize += len(h)
            md5 = hashlib.md5()
            if size:
                with open(path, "rb") as fh:  # type: ignore[arg-type]
                    while b := fh.read(1 << 20):
                        md5.update(b)
                        gz.write(b)
                pad = b"\0" * (-size % 4)
                gz.write(pad)
                usize += size + len(pad)
            md5s.append(md5.hexdigest() if stat.S_ISREG(mode) else "")
            modes.append(mode)
            sizes.append(size)
        trailer = _cpio_entry("TRAILER!!!", 0, 0, 0, 0)
        gz.write(trailer)
        usize += len(trailer)
    n = len(files)
    version, _, release = d.version.partition("-")
    header = _rpm_header([
        (100, 8, ["C"]),
        (1000, 6, d.name), (1001, 6, version), (1002, 6, release or "1"),
        (1004, 9, d.summary or d.name), (1005, 9, d.description or d.summary or d.name),
        (1006, 4, [mtime]), (1009, 4, [sum(sizes)]), (1011, 6, d.vendor), (1014, 6, "Proprietary"),
        (1016, 9, "System Environment/Base"), (1021, 6, "linux"), (1022, 6, arch),
        *(
            [
                (1027, 8, ["/" + rel for rel, _, _ in files]),
                (1028, 4, sizes), (1030, 3, modes), (1033, 3, [0] * n), (1034, 4, [mtime] * n),
                (1035, 8, md5s), (1036, 8, [""] * n), (1037, 4, [0] * n),
                (1039, 8, ["root"] * n), (1040, 8, ["root"] * n),
            ] if n else []
        ),
        (1064, 6, "4.4.2"), (1124, 6, "cpio"), (1125, 6, "gzip"), (1126, 6, "9"),
    ])
    md5 = hashlib.md5(header)
    psize = payload_tmp.stat().st_size
    with open(payload_tmp, "rb") as fh:
        while b := fh.read(1 << 20):
            md5.update(b)
    sig = _rpm_header([
        (269, 6, hashlib.sha1(header).hexdigest()),
        (1000, 4, [len(header) + psize]),
        (1004, 7, md5.digest()),
        (1007, 4, [usize]),
    ])
    sig += b"\0" * (-len(sig) % 8)
    lead = (RPM_LEAD_MAGIC + struct.pack(">BBhh", 3, 0, 0, 1) + f"{d.name}-{d.version}".encode()[:65].ljust(66, b"\0")
            + struct.pack(">hh", 1, 5) + b"\0" * 16)
    assert len(lead) == 96
    try:
        with open(out, "wb") as o, open(payload_tmp, "rb") as p:
            o.write(lead + sig + header)
            while b := p.read(1 << 20):
                o.write(b)
            return o.tell()
    finally:
        payload_tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- RPM reader


RPM_TAGS_READ = {269, 1000, 1001, 1002, 1004, 1007, 1027, 1116, 1117, 1118}  # the tags inspect uses
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

        reader = GunzipReader(chunks(), limits, what)
        rep.entries = _list_cpio(reader, what, limits, rep.findings)
        reader.drain()
        rep.uncompressed_size = reader.size
        exp_md5 = _tag(sig, 1004, bytes, what, "signature MD5")
        ok_md5 = exp_md5 is None or exp_md5 == md5.digest()
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
            rep.findings.append(Finding(ERROR, "sig.pkcs7 must be the last member (it signs every byte before it)"))
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
        from labctl.vib.inspect import _signature_findings

        _signature_findings(rep, "partner")
    else:
        rep.findings.append(Finding(INFO, "unsigned (no sig.pkcs7): install with esxupdate --nosigcheck"))
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
        pr.checksums.append({"type": "sha-256", "verify_process": None, "expected": None,
                             "actual": reader.raw_sha256.hexdigest(), "ok": not pr.findings or all(
                                 x.severity != ERROR for x in pr.findings)})
        rep.payloads.append(pr)
    for n in rpms:
        m = archive.get(n)
        assert m is not None
        rep.payloads.append(read_rpm(f, m, limits))


# ---------------------------------------------------------------- build


def build_esx4(opts, desc: Descriptor, built: list[BuiltPayload], tmpdir: Path, extra: dict) -> tuple[int, str]:
    """Write an ESX 4 rpm/deb/cross VIB from the (already validated) descriptor and the single payload tree."""
    vib_type = VIB_TYPES[opts.format]
    if len(built) != 1:
        raise VibBuildError(f"--format {opts.format}: ESX 4 VIBs carry one payload tree; the stage has "
                            f"{len(built)} ({', '.join(b.name for b in built)})")
    from labctl.vib.build import release_epoch

    mtime = release_epoch(desc.release_date)
    reboot = extra.get("reboot-required")
    d4 = Esx4Descriptor(
        vib_type=vib_type, name=desc.name, version=desc.version, vendor=desc.vendor, summary=desc.summary,
        description=desc.description, release_date=desc.release_date,
        maintenance_mode=desc.maintenance_mode == "true",
        reboot_required=bool(reboot) if reboot is not None else not desc.live_install_allowed,
        hostd_restart=bool(extra.get("hostd-restart")),
        product_lines={"rpm": ["esx"], "deb": ["embeddedEsx"], "cross": ["esx", "embeddedEsx"]}[vib_type],
        software_tags=list(desc.software_tags), depends=list(desc.depends), conflicts=list(desc.conflicts),
        replaces=list(desc.replaces),
    )
    src = opts.stage / "payloads" / built[0].name
    members: list[tuple[str, Path | bytes]] = []
    if vib_type in ("deb", "cross"):
        ctl_dir = tmpdir / "control"
        ctl_dir.mkdir()
        version, _, release = desc.version.partition("-")
        (ctl_dir / "control").write_text(
            f"Package: {desc.name}\nVersion: {desc.version}\nArchitecture: i386\nMaintainer: {desc.vendor}\n"
            f"Description: {desc.summary or desc.name}\n", encoding="utf-8")
        write_tgz(ctl_dir, tmpdir / "control.tar.gz", "control", mtime)
        members += [("debian-binary", b"2.0\n"), ("control.tar.gz", tmpdir / "control.tar.gz"),
                    ("data.tar.gz", built[0].path)]
    members.append(("descriptor.xml", emit_esx4(d4)))
    if vib_type == "rpm":
        write_rpm(tmpdir / "complete.rpm", d4, src, mtime)
        members.append(("complete.rpm", tmpdir / "complete.rpm"))
    elif vib_type == "cross":
        write_rpm(tmpdir / "short.rpm", d4, None, mtime)
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
