"""RPM packages for ESX 4 VIBs (complete.rpm, short.rpm): rpm v4 format, streamed and reproducible.

Layout (what rpmbuild 4.x writes; rpm 4.4 of the RHEL 5-based ESX 4 service console reads it, the tests
hold it to rpm 4.18):

    lead (96 bytes, type binary, signature type 5 = header-style)
    signature header   region tag 62 (HEADERSIGNATURES); SHA1 and SHA256 of the main header, SIZE and MD5 of
                       header+payload, PAYLOADSIZE; padded to 8 bytes
    main header        region tag 63 (HEADERIMMUTABLE) covering every tag; compressed file names
                       (DIRNAMES/BASENAMES/DIRINDEXES), per-file metadata, rpmlib() requirements
    payload            gzip'ed `newc` cpio, names "./path"

The immutable region is what makes this a v4 package: without it rpm ≥ 4.16 warns "RPM v3 packages are
deprecated", converts the header on the fly (so the digest stored with the installed header no longer matches:
"Header SHA1 digest: BAD") and rpm ≥ 4.20 refuses it.

short.rpm (cross VIBs) is a header without a payload: ESX 4's esxupdate builds the cpio from data.tar.gz in the
header's file order and appends it (esx45update `VIB.createfullrpm`), so its signature holds only the digests
of the header (SHA1, SHA256), which stay true once the payload is appended.
"""

from __future__ import annotations

import gzip
import hashlib
import stat
import struct
from dataclasses import dataclass, field
from pathlib import Path

from labctl.vib.findings import VibBuildError
from labctl.vib.payload import walk_stage

LEAD_MAGIC = b"\xed\xab\xee\xdb"
HEADER_MAGIC = b"\x8e\xad\xe8\x01\x00\x00\x00\x00"

# header data types
INT16, INT32, STRING, BIN, STRING_ARRAY, I18NSTRING = 3, 4, 6, 7, 8, 9
# region tags
HEADERSIGNATURES, HEADERIMMUTABLE = 62, 63
# signature tags
SIG_SHA1, SIG_SHA256, SIG_SIZE, SIG_MD5, SIG_PAYLOADSIZE = 269, 273, 1000, 1004, 1007
# dependency flags
SENSE_LESS, SENSE_GREATER, SENSE_EQUAL, SENSE_RPMLIB = 0x02, 0x04, 0x08, 0x1000000
RELATIONS = {"<<": SENSE_LESS, "<=": SENSE_LESS | SENSE_EQUAL, "=": SENSE_EQUAL,
             ">=": SENSE_GREATER | SENSE_EQUAL, ">>": SENSE_GREATER}
# what compressed file names and "./" payload names need from the installing rpm (rpmbuild adds the same two)
RPMLIB_REQUIRES = [("rpmlib(CompressedFileNames)", "3.0.4-1"), ("rpmlib(PayloadFilesHavePrefix)", "4.0-1")]


@dataclass(frozen=True)
class RpmDep:
    name: str
    relation: str | None = None  # one of RELATIONS, or None for any version
    version: str | None = None


@dataclass(frozen=True)
class RpmSpec:
    name: str
    version: str
    release: str
    summary: str
    description: str
    vendor: str
    buildtime: int
    arch: str = "noarch"
    license: str = "Proprietary"
    group: str = "System Environment/Base"
    requires: tuple[RpmDep, ...] = ()
    conflicts: tuple[RpmDep, ...] = ()
    obsoletes: tuple[RpmDep, ...] = ()

    @property
    def nvr(self) -> str:
        return f"{self.name}-{self.version}-{self.release}"

    @property
    def file_name(self) -> str:
        return f"{self.nvr}.{self.arch}.rpm"


@dataclass
class _File:
    path: str  # "/etc/x"
    src: Path
    mode: int
    size: int
    md5: str = ""


@dataclass
class RpmResult:
    size: int
    files: list[str] = field(default_factory=list)
    payload_size: int = 0  # uncompressed cpio bytes


def header(entries: list[tuple[int, int, object]], region: int | None) -> bytes:
    """One header structure with an immutable region over all its tags (region None: the legacy v3 form, which
    the tests use to show what rpm says about it). entries: (tag, type, value)."""
    index, store = [], bytearray()
    for tag, typ, value in sorted(entries, key=lambda e: e[0]):
        if typ == INT32:
            store += b"\0" * (-len(store) % 4)
            vals = list(value)  # type: ignore[call-overload]
            data, count = struct.pack(f">{len(vals)}i", *vals), len(vals)
        elif typ == INT16:
            store += b"\0" * (-len(store) % 2)
            vals = list(value)  # type: ignore[call-overload]
            data, count = struct.pack(f">{len(vals)}H", *vals), len(vals)
        elif typ in (STRING, I18NSTRING):
            vals = [value] if isinstance(value, str) else list(value)  # type: ignore[arg-type]
            data, count = b"".join(v.encode() + b"\0" for v in vals), len(vals)
        elif typ == STRING_ARRAY:
            vals = list(value)  # type: ignore[call-overload]
            data, count = b"".join(v.encode() + b"\0" for v in vals), len(vals)
        elif typ == BIN:
            data, count = bytes(value), len(value)  # type: ignore[arg-type,arg-type]
        else:
            raise ValueError(typ)
        index.append(struct.pack(">iiii", tag, typ, len(store), count))
        store += data
    # The region tag comes first in the index; its value is the trailer, the last 16 bytes of the store: an index
    # entry (same tag, BIN, offset -16 * number of index entries, count 16) saying how far the region reaches.
    if region is None:
        return HEADER_MAGIC + struct.pack(">ii", len(index), len(store)) + b"".join(index) + bytes(store)
    n = len(index) + 1
    trailer = struct.pack(">iiii", region, BIN, -16 * n, 16)
    index.insert(0, struct.pack(">iiii", region, BIN, len(store), 16))
    store += trailer
    return HEADER_MAGIC + struct.pack(">ii", n, len(store)) + b"".join(index) + bytes(store)


def _cpio(name: str, mode: int, size: int, mtime: int, ino: int) -> bytes:
    nm = name.encode() + b"\0"
    h = b"070701" + b"".join(b"%08X" % v for v in (ino, mode, 0, 0, 1, mtime, size, 0, 0, 0, 0, len(nm), 0))
    out = h + nm
    return out + b"\0" * (-len(out) % 4)


def _lead(spec: RpmSpec) -> bytes:
    lead = (LEAD_MAGIC + struct.pack(">BBhh", 3, 0, 0, 1) + spec.nvr.encode()[:65].ljust(66, b"\0")
            + struct.pack(">hh", 1, 5) + b"\0" * 16)
    assert len(lead) == 96
    return lead


def _deps(deps: tuple[RpmDep, ...]) -> tuple[list[str], list[int], list[str]]:
    names, flags, versions = [], [], []
    for d in deps:
        names.append(d.name)
        flags.append(RELATIONS[d.relation] if d.relation else 0)
        versions.append(d.version or "" if d.relation else "")
    return names, flags, versions


def collect_files(src: Path) -> list[_File]:
    """The regular files of a stage tree, sorted; rpm creates their parent directories on install."""
    out = []
    for rel, path, st in walk_stage(src):
        if stat.S_ISDIR(st.st_mode):
            continue
        if not stat.S_ISREG(st.st_mode):
            raise VibBuildError(f"{path}: ESX 4 rpm payloads hold regular files only")
        mode = stat.S_IFREG | (0o755 if st.st_mode & 0o111 else 0o644) | (st.st_mode & stat.S_ISVTX)
        out.append(_File("/" + rel, path, mode, st.st_size))
    return out


def main_header(spec: RpmSpec, files: list[_File]) -> bytes:
    n = len(files)
    dirs: list[str] = []
    dirindexes, basenames = [], []
    for f in files:
        d, _, b = f.path.rpartition("/")
        d += "/"
        if d not in dirs:
            dirs.append(d)
        dirindexes.append(dirs.index(d))
        basenames.append(b)
    req = _deps(tuple(RpmDep(name, "<=", ver) for name, ver in RPMLIB_REQUIRES) + spec.requires)
    req_flags = [fl | (SENSE_RPMLIB if nm.startswith("rpmlib(") else 0) for nm, fl in zip(req[0], req[1])]
    entries: list[tuple[int, int, object]] = [
        (100, STRING_ARRAY, ["C"]),  # HEADERI18NTABLE
        (1000, STRING, spec.name), (1001, STRING, spec.version), (1002, STRING, spec.release),
        (1004, I18NSTRING, spec.summary or spec.name),
        (1005, I18NSTRING, spec.description or spec.summary or spec.name),
        (1006, INT32, [spec.buildtime]),  # BUILDTIME
        (1009, INT32, [sum(f.size for f in files)]),  # SIZE
        (1011, STRING, spec.vendor), (1014, STRING, spec.license), (1016, I18NSTRING, spec.group),
        (1021, STRING, "linux"), (1022, STRING, spec.arch),  # OS, ARCH
        (1044, STRING, f"{spec.nvr}.src.rpm"),  # SOURCERPM: marks a binary package
        (1047, STRING_ARRAY, [spec.name]), (1112, INT32, [SENSE_EQUAL]),  # PROVIDENAME, PROVIDEFLAGS
        (1113, STRING_ARRAY, [f"{spec.version}-{spec.release}"]),  # PROVIDEVERSION
        (1048, INT32, req_flags), (1049, STRING_ARRAY, req[0]), (1050, STRING_ARRAY, req[2]),
        (1064, STRING, "4.4.2.3"),  # RPMVERSION: RHEL 5's rpm, as on the ESX 4 service console
        (1124, STRING, "cpio"), (1125, STRING, "gzip"), (1126, STRING, "9"),  # PAYLOADFORMAT/COMPRESSOR/FLAGS
    ]
    if spec.conflicts:
        c = _deps(spec.conflicts)
        entries += [(1053, INT32, c[1]), (1054, STRING_ARRAY, c[0]), (1055, STRING_ARRAY, c[2])]
    if spec.obsoletes:
        o = _deps(spec.obsoletes)
        entries += [(1114, INT32, o[1]), (1090, STRING_ARRAY, o[0]), (1115, STRING_ARRAY, o[2])]
    if n:
        entries += [
            (1028, INT32, [f.size for f in files]),  # FILESIZES
            (1030, INT16, [f.mode for f in files]),  # FILEMODES
            (1033, INT16, [0] * n),  # FILERDEVS
            (1034, INT32, [spec.buildtime] * n),  # FILEMTIMES
            (1035, STRING_ARRAY, [f.md5 for f in files]),  # FILEDIGESTS (MD5: no FILEDIGESTALGO)
            (1036, STRING_ARRAY, [""] * n),  # FILELINKTOS
            (1037, INT32, [0] * n),  # FILEFLAGS
            (1039, STRING_ARRAY, ["root"] * n), (1040, STRING_ARRAY, ["root"] * n),  # FILEUSERNAME/GROUPNAME
            (1045, INT32, [-1] * n),  # FILEVERIFYFLAGS: verify everything
            (1095, INT32, [1] * n), (1096, INT32, list(range(1, n + 1))),  # FILEDEVICES, FILEINODES
            (1097, STRING_ARRAY, [""] * n),  # FILELANGS
            (1116, INT32, dirindexes), (1117, STRING_ARRAY, basenames), (1118, STRING_ARRAY, dirs),
        ]
    return header(entries, HEADERIMMUTABLE)


def write_rpm(out: Path, spec: RpmSpec, src: Path | None, *, short: bool = False) -> RpmResult:
    """Write `out` from the files under `src` (None: no files). short: header only (a cross VIB's short.rpm).
    Payload and digests are streamed through a temporary file next to `out`."""
    files = collect_files(src) if src is not None else []
    for f in files:
        md5 = hashlib.md5()
        with open(f.src, "rb") as fh:
            while b := fh.read(1 << 20):
                md5.update(b)
        f.md5 = md5.hexdigest()
    hdr = main_header(spec, files)
    sig_entries: list[tuple[int, int, object]] = [
        (SIG_SHA1, STRING, hashlib.sha1(hdr).hexdigest()),
        (SIG_SHA256, STRING, hashlib.sha256(hdr).hexdigest()),
    ]
    result = RpmResult(0, [f.path for f in files])
    payload_tmp = out.with_name(out.name + ".cpio.gz")
    try:
        if not short:
            md5 = hashlib.md5(hdr)
            usize = 0
            with open(payload_tmp, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                                compresslevel=9) as gz:
                for ino, f in enumerate(files, 1):
                    h = _cpio("." + f.path, f.mode, f.size, spec.buildtime, ino)
                    gz.write(h)
                    usize += len(h)
                    with open(f.src, "rb") as fh:
                        left = f.size
                        while left and (b := fh.read(min(left, 1 << 20))):
                            gz.write(b)
                            left -= len(b)
                    if left:
                        raise VibBuildError(f"{f.src} changed size while it was being packed")
                    pad = b"\0" * (-f.size % 4)
                    gz.write(pad)
                    usize += f.size + len(pad)
                trailer = _cpio("TRAILER!!!", 0, 0, 0, 0)
                gz.write(trailer)
                usize += len(trailer)
            psize = payload_tmp.stat().st_size
            with open(payload_tmp, "rb") as fh:
                while b := fh.read(1 << 20):
                    md5.update(b)
            sig_entries += [(SIG_SIZE, INT32, [len(hdr) + psize]), (SIG_MD5, BIN, md5.digest()),
                            (SIG_PAYLOADSIZE, INT32, [usize])]
            result.payload_size = usize
        sig = header(sig_entries, HEADERSIGNATURES)
        sig += b"\0" * (-len(sig) % 8)
        with open(out, "wb") as o:
            o.write(_lead(spec) + sig + hdr)
            if not short:
                with open(payload_tmp, "rb") as p:
                    while b := p.read(1 << 20):
                        o.write(b)
            result.size = o.tell()
        return result
    finally:
        payload_tmp.unlink(missing_ok=True)
