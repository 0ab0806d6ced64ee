"""Payloads: streaming gunzip with caps, the three checksums, tgz and vmtar listings with safety checks, and a
streaming reproducible tgz writer (vib.md sections 3 and 8).

Nothing is extracted to disk and no payload is held whole in memory: data flows in chunks through the hashes, the
decompressor and a tar/vmtar header walker.
"""

from __future__ import annotations

import hashlib
import io
import os
import stat
import struct
import tarfile  # writing only; untrusted tar is parsed by list_tar
import zlib
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from labctl.vib.findings import ERROR, INFO, WARNING, Finding, VibFormatError

CHUNK = 1024 * 1024
DEFAULT_MAX_TOTAL = 2 * 1024**3  # uncompressed bytes per payload
DEFAULT_MAX_RATIO = 200  # uncompressed/compressed, checked once output exceeds RATIO_FLOOR
RATIO_FLOOR = 16 * 1024**2
MAX_ENTRIES = 100_000
VMTAR_MAGIC = b"visor  \x00"


@dataclass(frozen=True)
class Limits:
    max_total: int = DEFAULT_MAX_TOTAL
    max_ratio: int = DEFAULT_MAX_RATIO
    max_entries: int = MAX_ENTRIES


DEFAULT_LIMITS = Limits()


class GunzipReader(io.RawIOBase):
    """A readable stream over gzip data given in chunks: hashes the raw and the decompressed bytes as they pass,
    handles concatenated gzip members, and refuses gzip bombs (total and ratio caps) and trailing garbage."""

    def __init__(self, chunks: Iterable[bytes], limits: Limits = DEFAULT_LIMITS, what: str = "payload"):
        super().__init__()
        self._chunks = iter(chunks)
        self._limits = limits or DEFAULT_LIMITS
        self._what = what
        self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""  # compressed input not yet given to the decompressor
        self._buf = b""
        self._pos = 0
        self._eof_in = False
        self._done = False
        self.raw_sha256 = hashlib.sha256()
        self.sha256 = hashlib.sha256()
        self.sha1 = hashlib.sha1()
        self.raw_size = 0
        self.size = 0

    def readable(self) -> bool:
        return True

    def _feed(self) -> bool:
        """Decompress some more into _buf; False at the end of the stream."""
        while True:
            if self._d.unconsumed_tail:
                data = self._d.unconsumed_tail
            elif self._pending:
                data, self._pending = self._pending, b""
            else:
                if self._eof_in:
                    if not self._d.eof:
                        if self.raw_size == 0:
                            raise VibFormatError(f"{self._what}: empty, not gzip data")
                        raise VibFormatError(f"{self._what}: gzip stream is truncated")
                    return False
                try:
                    data = next(self._chunks)
                except StopIteration:
                    self._eof_in = True
                    continue
                self.raw_sha256.update(data)
                self.raw_size += len(data)
            if self._d.eof:  # a new gzip member follows, or garbage
                if data.strip(b"\0") == b"":
                    continue  # zero padding after the last member is what gzip(1) tolerates too
                self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
            try:
                out = self._d.decompress(data, CHUNK)
            except zlib.error as e:
                raise VibFormatError(f"{self._what}: not valid gzip data ({e})") from None
            if self._d.eof and self._d.unused_data:
                self._pending = self._d.unused_data + self._pending
            if out:
                self.size += len(out)
                if self.size > self._limits.max_total:
                    raise VibFormatError(
                        f"{self._what}: decompresses to more than {self._limits.max_total} bytes (gzip bomb cap)"
                    )
                if self.size > RATIO_FLOOR and self.size > self._limits.max_ratio * max(self.raw_size, 1):
                    raise VibFormatError(
                        f"{self._what}: compression ratio above {self._limits.max_ratio}:1 (gzip bomb cap)"
                    )
                self.sha256.update(out)
                self.sha1.update(out)
                self._buf, self._pos = out, 0
                return True

    def readinto(self, b) -> int:
        while self._pos >= len(self._buf):
            if not self._feed():
                return 0
        n = min(len(b), len(self._buf) - self._pos)
        b[:n] = self._buf[self._pos : self._pos + n]
        self._pos += n
        return n

    def read_exact(self, n: int) -> bytes:
        out = bytearray()
        while len(out) < n:
            b = self.read(n - len(out))
            if not b:
                break
            out += b
        return bytes(out)

    def drain(self) -> None:
        """Read to the end so every hash covers the whole stream."""
        self._buf, self._pos = b"", 0
        while self._feed():
            self._buf, self._pos = b"", 0

    def finish_raw(self) -> None:
        """After an error: pass the remaining compressed input through the raw hash only."""
        for data in self._chunks:
            self.raw_sha256.update(data)
            self.raw_size += len(data)


@dataclass(frozen=True)
class Entry:
    path: str
    kind: str  # file | dir | symlink | hardlink
    size: int
    mode: int
    link: str = ""
    resolved: str = ""  # where it lands once the symlinks before it are followed ("" = path)


@dataclass
class PayloadReport:
    name: str
    type: str
    size: int
    raw_sha256: str = ""
    sha256_gunzip: str = ""
    sha1_gunzip: str = ""
    uncompressed_size: int | None = None
    entries: list[Entry] = field(default_factory=list)
    checksums: list[dict] = field(default_factory=list)  # {type, verify_process, expected, actual, ok}
    findings: list[Finding] = field(default_factory=list)

    @property
    def checksums_ok(self) -> bool:
        return bool(self.checksums) and all(c["ok"] for c in self.checksums) and not any(
            f.severity == ERROR for f in self.findings
        )

    @property
    def files(self) -> list[str]:
        return [e.path for e in self.entries if e.kind in ("file", "hardlink", "symlink")]

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "type": self.type,
            "size": self.size,
            "uncompressed_size": self.uncompressed_size,
            "checksums_ok": self.checksums_ok if self.checksums else None,  # None: nothing declared
            "checksums": self.checksums,
            "files": self.files,
            "findings": [f.to_json() for f in self.findings],
        }


def check_path(path: str, what: str) -> str:
    """Normalise a member path ('./a' -> 'a', 'dir/' -> 'dir') or refuse it."""
    if "\\" in path:
        raise VibFormatError(f"{what}: member {path!r} contains a backslash")
    if path.startswith("/"):
        raise VibFormatError(f"{what}: member {path!r} is an absolute path")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise VibFormatError(f"{what}: member {path!r} contains '..'")
    if any("\0" in p for p in parts):
        raise VibFormatError(f"{what}: member {path!r} contains NUL")
    if len(path) > MAX_PATH or len(parts) > MAX_DEPTH:
        raise VibFormatError(f"{what}: member path of {len(path)} characters, {len(parts)} deep, is longer than "
                             f"{MAX_PATH} or deeper than {MAX_DEPTH}")
    return "/".join(parts)


def _check_link(path: str, target: str, what: str, hard: bool) -> None:
    """The lexical check (a link's own text); LinkTree.add also resolves it through the links before it."""
    if target.startswith("/"):
        raise VibFormatError(f"{what}: link {path!r} points to the absolute path {target!r}")
    if "\0" in target or "\\" in target:
        raise VibFormatError(f"{what}: link {path!r} target {target!r} contains NUL or a backslash")
    if not target:
        raise VibFormatError(f"{what}: link {path!r} has an empty target")
    base = [] if hard else path.split("/")[:-1]
    depth = len(base)
    for p in target.split("/"):
        if p in ("", "."):
            continue
        depth = depth - 1 if p == ".." else depth + 1
        if depth < 0:
            raise VibFormatError(f"{what}: link {path!r} -> {target!r} points outside the payload")


class LinkTree:
    """The tree a consumer extracting the members in order would build: every member's path is resolved through
    the symlinks before it (as the kernel would when the member is written), so `opt/a -> ..` plus
    `opt/b -> a/..` is caught, and `opt/l -> ../usr/bin` plus `opt/l/evil` is known to land in `usr/bin/evil`.
    Duplicate non-directory members (a later one silently replaces the earlier one on extraction) are refused."""

    def __init__(self) -> None:
        self.links: dict[str, tuple[str, str]] = {}  # resolved link path -> (resolved parent, target text)
        self.kinds: dict[str, str] = {}  # resolved path -> kind
        self.steps = 0
        self.name_bytes = 0

    def resolve(self, path: str, what: str, *, follow_last: bool, shown: str | None = None) -> str:
        """Where `path` lands: components walked left to right, '..' popping, each symlink replaced by its
        parent plus its target. Every step counts against one budget for the whole tree, so the work stays
        linear in the archive however links and long paths are combined."""
        shown = shown or path
        stack: list[str] = []  # stack[i]: the resolved path of the first i+1 components
        queue = deque(path.split("/"))
        hops = 0
        while queue:
            self.steps += 1
            if self.steps > MAX_RESOLVE_STEPS:
                raise VibFormatError(f"{what}: resolving the members' paths through their symlinks takes more "
                                     f"than {MAX_RESOLVE_STEPS} steps")
            p = queue.popleft()
            if p in ("", "."):
                continue
            if p == "..":
                if not stack:
                    raise VibFormatError(f"{what}: {shown!r} resolves outside the payload through its symlinks")
                stack.pop()
                continue
            cur = f"{stack[-1]}/{p}" if stack else p
            if len(cur) > MAX_PATH or len(stack) >= MAX_DEPTH:
                raise VibFormatError(f"{what}: {shown!r} resolves to a path deeper than {MAX_DEPTH} or longer "
                                     f"than {MAX_PATH} characters")
            stack.append(cur)
            if cur in self.links and (queue or follow_last):
                hops += 1
                if hops > MAX_LINK_HOPS:
                    raise VibFormatError(f"{what}: {shown!r} goes through more than {MAX_LINK_HOPS} symlinks "
                                         "(a loop)")
                parent, target = self.links[cur]
                stack = []
                for part in parent.split("/") if parent else ():
                    stack.append(f"{stack[-1]}/{part}" if stack else part)
                self.steps += len(stack)
                queue.extendleft(reversed(target.split("/")))
            elif queue and self.kinds.get(cur) in ("file", "hardlink"):
                raise VibFormatError(f"{what}: {shown!r} has the file {cur!r} as a directory")
        return stack[-1] if stack else ""

    def add(self, path: str, kind: str, link: str, what: str) -> str:
        """Record a member (path already normalised by check_path); return where it lands."""
        self.name_bytes += len(path) + len(link)
        if self.name_bytes > MAX_NAME_BYTES:
            raise VibFormatError(f"{what}: the members' paths and link targets add up to more than "
                                 f"{MAX_NAME_BYTES} characters")
        if not path:
            if kind == "dir":
                return ""  # './' itself
            raise VibFormatError(f"{what}: a {kind} member names the payload root")
        where = self.resolve(path, what, follow_last=False)
        old = self.kinds.get(where)
        if old is not None and not (old == "dir" and kind == "dir"):
            extra = "" if where == path else f" (resolved to {where!r})"
            raise VibFormatError(f"{what}: duplicate member {path!r}{extra}: extracting it would replace the "
                                 f"earlier {old}")
        if kind == "symlink":
            parent = where.rpartition("/")[0]
            self.resolve(f"{parent}/{link}" if parent else link, what, follow_last=True,
                         shown=f"{path} -> {link}")
            self.links[where] = (parent, link)
        elif kind == "hardlink":
            self.resolve(link, what, follow_last=False, shown=f"{path} => {link}")
        where = path if where == path else where  # one string kept, not two equal ones
        self.kinds[where] = kind
        return where

    def check_final(self, what: str) -> None:
        """Links whose target only escapes once later links exist (opt/b -> c/x, then c -> ..)."""
        for where, (parent, target) in self.links.items():
            self.resolve(f"{parent}/{target}" if parent else target, what, follow_last=True,
                         shown=f"{where} -> {target}")


def _mode_findings(path: str, mode: int, what: str, findings: list[Finding]) -> None:
    if mode & (stat.S_ISUID | stat.S_ISGID):
        findings.append(Finding(WARNING, f"{what}: {path!r} is setuid/setgid (mode {mode:o})"))


# ---------------------------------------------------------------- tar headers, parsed here (untrusted input)
#
# Python's tarfile is not used for untrusted payloads: it stops at the first header with a bad checksum (GNU tar
# skips it and extracts what follows), reads PAX and GNU long-name data of any size into memory, and parses PAX
# records with a regex that is quadratic on 3.11.7 (CVE-2024-6232). This reader verifies every header's checksum,
# bounds every extended header before reading it, and refuses anything after the end-of-archive marker that is not
# zero padding.

TAR_BLOCK = 512
MAX_LONGNAME = 4096  # GNU 'L'/'K' data (PATH_MAX)
MAX_PAX = 64 * 1024  # one PAX extended header's data
MAX_PATH = 4096
MAX_LINK_HOPS = 40  # Linux's limit before ELOOP
MAX_DEPTH = 128  # path components (real VIBs go about 10 deep)
MAX_RESOLVE_STEPS = 4_000_000  # path components walked per VIB (100,000 members of 40 components)
MAX_NAME_BYTES = 8 * 1024 * 1024  # all member paths and link targets of one VIB (what inspect keeps in memory)
MAX_NUMBER_DIGITS = 20
_REG, _HARD, _SYM, _CHR, _BLK, _DIR, _FIFO, _CONT = b"0", b"1", b"2", b"3", b"4", b"5", b"6", b"7"
_POSIX_MAGIC = b"ustar\x0000"
_GNU_MAGIC = b"ustar  \x00"


def _tar_number(field: bytes, what: str, label: str, offset: int) -> int:
    if field[:1] in (b"\x80", b"\xff"):  # GNU base-256
        if field[0] == 0xFF:
            raise VibFormatError(f"{what}: tar header at offset {offset} has a negative {label}")
        return int.from_bytes(field[1:], "big")
    t = field.split(b"\0", 1)[0].strip(b" ")
    if not t:
        return 0
    if len(t) > MAX_NUMBER_DIGITS or any(c not in b"01234567" for c in t):
        raise VibFormatError(f"{what}: tar header at offset {offset} has a {label} that is not octal: "
                             f"{t[:24]!r}")
    return int(t, 8)


def _tar_checksum_ok(block: bytes) -> bool:
    stored = block[148:156].split(b"\0", 1)[0].strip(b" ")
    if not stored or any(c not in b"01234567" for c in stored) or len(stored) > 8:
        return False
    want = int(stored, 8)
    rest = block[:148] + b" " * 8 + block[156:]
    unsigned = sum(rest)
    signed = unsigned - 256 * sum(1 for b in rest if b > 127)  # old tars summed signed chars; both accepted
    return want in (unsigned, signed)


def _pax_records(data: bytes, what: str, offset: int) -> dict[str, str]:
    """'<len> <key>=<value>\\n' records, parsed by length (no regex); every record must be well-formed."""
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos:].strip(b"\0") == b"":
            break
        sp = data.find(b" ", pos, pos + 12)
        digits = data[pos:sp] if sp > 0 else b""
        if not digits or not digits.isdigit() or not digits.isascii():
            raise VibFormatError(f"{what}: malformed PAX header record at offset {offset}")
        n = int(digits)
        rec = data[pos : pos + n]
        if n <= len(digits) + 1 or pos + n > len(data) or not rec.endswith(b"\n") or b"=" not in rec:
            raise VibFormatError(f"{what}: malformed PAX header record at offset {offset}")
        key, _, value = rec[sp - pos + 1 : -1].partition(b"=")
        try:
            out[key.decode("utf-8")] = value.decode("utf-8")
        except UnicodeDecodeError:
            raise VibFormatError(f"{what}: PAX header record at offset {offset} is not UTF-8") from None
        pos += n
    return out


def _pax_number(value: str, key: str, what: str) -> int:
    whole = value.split(".", 1)[0]
    if not whole.isascii() or not whole.isdigit() or len(whole) > MAX_NUMBER_DIGITS:
        raise VibFormatError(f"{what}: PAX {key} {value[:24]!r} is not a plain number")
    return int(whole)


def _skip(reader: GunzipReader, n: int, what: str) -> None:
    while n:
        b = reader.read(min(n, CHUNK))
        if not b:
            raise VibFormatError(f"{what}: tar data is truncated")
        n -= len(b)


def _read_ext(reader: GunzipReader, size: int, cap: int, label: str, what: str, offset: int) -> bytes:
    if size > cap:
        raise VibFormatError(f"{what}: {label} header at offset {offset} declares {size} bytes; refusing more "
                             f"than {cap}")
    data = reader.read_exact(size)
    if len(data) < size:
        raise VibFormatError(f"{what}: tar data is truncated")
    _skip(reader, -size % TAR_BLOCK, what)
    return data


def list_tar(reader: GunzipReader, what: str, limits: Limits, findings: list[Finding],
             tree: LinkTree | None = None) -> list[Entry]:
    """Walk a tar stream's headers (no extraction) and refuse unsafe members or headers consumers disagree on."""
    entries: list[Entry] = []
    tree = tree if tree is not None else LinkTree()
    pos = 0
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] | None = None
    pax_seen = False
    while True:
        block = reader.read_exact(TAR_BLOCK)
        at = pos
        pos += len(block)
        if not block:
            if long_name is not None or long_link is not None or pax is not None:
                raise VibFormatError(f"{what}: tar ends after an extended header, without its member")
            if not entries:
                raise VibFormatError(f"{what}: not a tar archive (empty)")
            break  # no end-of-archive marker: GNU tar and tarfile accept that too
        if len(block) < TAR_BLOCK:
            raise VibFormatError(f"{what}: tar stream ends inside a header at offset {at}")
        if block == b"\0" * TAR_BLOCK:
            if long_name is not None or long_link is not None or pax is not None:
                raise VibFormatError(f"{what}: tar ends after an extended header, without its member")
            # the logical end: only zero padding may follow (GNU tar would read on past a lone zero block with
            # --ignore-zeros, and some extractors do by default)
            while True:
                b = reader.read(CHUNK)
                if not b:
                    break
                if b.strip(b"\0"):
                    k = len(b) - len(b.lstrip(b"\0"))
                    raise VibFormatError(f"{what}: data after the tar end-of-archive marker (at offset "
                                         f"{pos + k}): a permissive extractor would read members hidden there")
                pos += len(b)
            break
        if not _tar_checksum_ok(block):
            raise VibFormatError(f"{what}: tar header at offset {at} has a bad checksum (GNU tar skips such a "
                                 "header and extracts the members hidden behind it)")
        if len(entries) >= limits.max_entries:
            raise VibFormatError(f"{what}: more than {limits.max_entries} tar members")
        typeflag = block[156:157]
        size = _tar_number(block[124:136], what, "size", at)
        if size > limits.max_total:
            raise VibFormatError(f"{what}: tar member at offset {at} declares {size} bytes, above the "
                                 f"{limits.max_total}-byte cap")
        magic = block[257:265]
        if typeflag == b"L" or typeflag == b"K":
            data = _read_ext(reader, size, MAX_LONGNAME, "GNU long-name", what, at)
            pos += size + (-size % TAR_BLOCK)
            text = data.split(b"\0", 1)[0].decode("utf-8", "replace")
            if typeflag == b"L":
                if long_name is not None:
                    raise VibFormatError(f"{what}: two GNU long-name headers in a row at offset {at}")
                long_name = text
            else:
                if long_link is not None:
                    raise VibFormatError(f"{what}: two GNU long-link headers in a row at offset {at}")
                long_link = text
            continue
        if typeflag in (b"x", b"g"):
            data = _read_ext(reader, size, MAX_PAX, "PAX", what, at)
            pos += size + (-size % TAR_BLOCK)
            recs = _pax_records(data, what, at)
            if typeflag == b"g":
                if {"path", "linkpath", "size"} & set(recs):
                    raise VibFormatError(f"{what}: global PAX header at offset {at} sets path, linkpath or size")
                continue
            if pax is not None:
                raise VibFormatError(f"{what}: two PAX headers in a row at offset {at}")
            if any(k.startswith("GNU.sparse") for k in recs):
                raise VibFormatError(f"{what}: sparse tar members are not supported")
            pax = recs
            pax_seen = True
            continue
        # a member header
        name_b = block[0:100].split(b"\0", 1)[0]
        if magic == _POSIX_MAGIC:
            prefix = block[345:500].split(b"\0", 1)[0]
            if prefix:
                name_b = prefix + b"/" + name_b
        elif block[345:500].strip(b"\0"):
            # GNU/v7 headers have no prefix field there; tarfile would read one anyway, so the name is ambiguous
            raise VibFormatError(f"{what}: tar header at offset {at} has data in the ustar prefix field of a "
                                 "non-ustar header (tar implementations disagree on its name)")
        name = name_b.decode("utf-8", "replace")
        linkname = block[157:257].split(b"\0", 1)[0].decode("utf-8", "replace")
        mode = _tar_number(block[100:108], what, "mode", at)
        if long_name is not None:
            name = long_name
        if long_link is not None:
            linkname = long_link
        if pax is not None:
            name = pax.get("path", name)
            linkname = pax.get("linkpath", linkname)
            if "size" in pax:
                size = _pax_number(pax["size"], "size", what)
                if size > limits.max_total:
                    raise VibFormatError(f"{what}: tar member {name!r} declares {size} bytes, above the "
                                         f"{limits.max_total}-byte cap")
        long_name = long_link = pax = None
        if pax_seen and not entries:
            findings.append(Finding(INFO, f"{what}: PAX headers present (VIBs built with PAX tar have failed "
                                          "to install; build with GNU format)"))
        if typeflag in (_REG, b"\0", _CONT):
            kind = "file"
            if name.endswith("/"):
                if typeflag != b"\0":
                    raise VibFormatError(f"{what}: regular file {name!r} has a name ending in '/'")
                kind = "dir"  # V7 directory
        elif typeflag == _DIR:
            kind = "dir"
        elif typeflag in (_SYM, _HARD):
            kind = "symlink" if typeflag == _SYM else "hardlink"
        elif typeflag in (_CHR, _BLK):
            raise VibFormatError(f"{what}: member {name!r} is a device node")
        elif typeflag == _FIFO:
            raise VibFormatError(f"{what}: member {name!r} is a FIFO")
        else:
            raise VibFormatError(f"{what}: member {name!r} has an unsupported type {typeflag.decode('latin-1')!r}")
        path = check_path(name, what)
        if kind != "file" and size:
            # tarfile reads the next header right after such a member, GNU tar skips `size` bytes first
            raise VibFormatError(f"{what}: {kind} {path!r} declares {size} bytes of data")
        if kind in ("symlink", "hardlink"):
            _check_link(path, linkname, what, hard=kind == "hardlink")
        else:
            linkname = ""
        where = tree.add(path, kind, linkname, what)
        _mode_findings(path, mode, what, findings)
        if path:  # not './' itself
            entries.append(Entry(path, kind, size, mode, linkname, where))
        _skip(reader, size + (-size % TAR_BLOCK), what)
        pos += size + (-size % TAR_BLOCK)
    tree.check_final(what)
    return entries


def _octal(field: bytes) -> int:
    t = field.replace(b"\0", b" ").strip()
    if not t:
        return 0
    if any(c not in b"01234567" for c in t):
        raise VibFormatError(f"vmtar header has a non-octal number {t[:24]!r}")
    return int(t, 8)


def list_vmtar(reader: GunzipReader, what: str, limits: Limits, findings: list[Finding],
               tree: LinkTree | None = None) -> list[Entry]:
    """Walk a vmtar (visor) stream: all headers first, then a zero block, then data at absolute offsets.
    Offsets must lie after the headers, inside the stream, and not overlap."""
    entries: list[Entry] = []
    tree = tree if tree is not None else LinkTree()
    spans: list[tuple[int, int, str]] = []
    pos = 0
    while True:
        block = reader.read_exact(512)
        pos += len(block)
        if len(block) < 512:
            raise VibFormatError(f"{what}: vmtar ends inside its header table")
        if block == b"\0" * 512:
            break
        if block[257:265] != VMTAR_MAGIC:
            if block[257:262] == b"ustar":
                raise VibFormatError(f"{what}: payload type vgz but the content is a plain tar, not vmtar")
            raise VibFormatError(f"{what}: vmtar header without 'visor' magic at offset {pos - 512}")
        if not _tar_checksum_ok(block):  # both VIB Author and ESXi's esximage write the ustar checksum
            raise VibFormatError(f"{what}: vmtar header at offset {pos - 512} has a bad checksum")
        if len(entries) >= limits.max_entries:
            raise VibFormatError(f"{what}: more than {limits.max_entries} vmtar members")
        name = block[0:100].split(b"\0", 1)[0]
        prefix = block[345:496].split(b"\0", 1)[0] if block[345] else b""
        full = (prefix + b"/" + name if prefix else name).decode("utf-8", "replace")
        path = check_path(full, what)
        mode = _octal(block[100:108])
        size = _octal(block[124:136])
        typeflag = block[156:157]
        link = block[157:257].split(b"\0", 1)[0].decode("utf-8", "replace")
        offset, _textoff, _textsize, _fixups = struct.unpack("<IIII", block[496:512])
        if typeflag in (b"0", b"\0", b"7"):
            kind = "file"
            if size:
                spans.append((offset, size, path))
        elif typeflag == b"5":
            kind = "dir"
        elif typeflag in (b"1", b"2"):
            kind = "hardlink" if typeflag == b"1" else "symlink"
            _check_link(path, link, what, hard=typeflag == b"1")
        elif typeflag in (b"3", b"4"):
            raise VibFormatError(f"{what}: member {path!r} is a device node")
        elif typeflag == b"6":
            raise VibFormatError(f"{what}: member {path!r} is a FIFO")
        else:
            raise VibFormatError(f"{what}: member {path!r} has an unsupported vmtar type {typeflag!r}")
        if kind not in ("symlink", "hardlink"):
            link = ""
        where = tree.add(path, kind, link, what)
        _mode_findings(path, mode, what, findings)
        entries.append(Entry(path, kind, size, mode, link, where))
    header_end = pos
    reader.drain()
    total = reader.size
    last_end = header_end
    for offset, size, path in sorted(spans):
        if offset < header_end:
            raise VibFormatError(f"{what}: vmtar data of {path!r} at offset {offset} overlaps the header table")
        if offset + size > total:
            raise VibFormatError(
                f"{what}: vmtar data of {path!r} at offset {offset}+{size} is past the end ({total} bytes)"
            )
        if offset < last_end:
            raise VibFormatError(f"{what}: vmtar data of {path!r} at offset {offset} overlaps another member")
        last_end = offset + size
    tree.check_final(what)
    return entries


def verify_payload(spec, chunks: Iterable[bytes], actual_size: int, limits: Limits = DEFAULT_LIMITS,
                   tree: LinkTree | None = None) -> PayloadReport:
    """Stream one payload through the hashes and the listing; compare every checksum the descriptor declares."""
    what = f"payload {spec.name!r}"
    rep = PayloadReport(spec.name, spec.type, actual_size)
    if spec.size != actual_size:
        rep.findings.append(Finding(ERROR, f"{what}: descriptor says size {spec.size}, the ar member has "
                                           f"{actual_size} bytes"))
    reader = GunzipReader(chunks, limits, what)
    try:
        if spec.type in ("tgz", "tar"):
            rep.entries = list_tar(reader, what, limits, rep.findings, tree)
        elif spec.type in ("vgz", "boot", "installer_vgz", "upgrade"):
            rep.entries = list_vmtar(reader, what, limits, rep.findings, tree)
        else:
            rep.findings.append(Finding(INFO, f"{what}: type {spec.type!r} is checksummed but not listed"))
        reader.drain()
    except VibFormatError as e:
        rep.findings.append(Finding(ERROR, e.message))
        # still finish the raw hash so the report says whether the bytes match the descriptor
        try:
            reader.finish_raw()
        except VibFormatError:
            pass
        rep.raw_sha256 = reader.raw_sha256.hexdigest()
        rep.checksums = _compare(spec, rep, gunzip_ok=False)
        return rep
    rep.raw_sha256 = reader.raw_sha256.hexdigest()
    rep.sha256_gunzip = reader.sha256.hexdigest()
    rep.sha1_gunzip = reader.sha1.hexdigest()
    rep.uncompressed_size = reader.size
    if spec.uncompressed_size is not None and spec.uncompressed_size != reader.size:
        rep.findings.append(Finding(ERROR, f"{what}: uncompressed-size says {spec.uncompressed_size}, it "
                                           f"decompresses to {reader.size} bytes"))
    rep.checksums = _compare(spec, rep, gunzip_ok=True)
    return rep


def _compare(spec, rep: PayloadReport, gunzip_ok: bool) -> list[dict]:
    out = []
    for c in spec.checksums:
        if c.type == "sha-256" and not c.verify_process:
            actual = rep.raw_sha256
        elif c.type == "sha-256" and c.verify_process == "gunzip":
            actual = rep.sha256_gunzip if gunzip_ok else ""
        elif c.type == "sha-1" and c.verify_process == "gunzip":
            actual = rep.sha1_gunzip if gunzip_ok else ""
        elif c.type == "sha-256-gunzip1":
            actual = rep.sha256_gunzip if gunzip_ok else ""  # equal for single-layer gzip payloads
        else:
            rep.findings.append(Finding(WARNING, f"payload {spec.name!r}: checksum type "
                                                 f"{c.type}/{c.verify_process} is not verified by labctl"))
            continue
        ok = bool(actual) and actual == c.value
        if not ok:
            rep.findings.append(Finding(ERROR, f"payload {spec.name!r}: {c.type}"
                                               f"{' ' + c.verify_process if c.verify_process else ''} checksum "
                                               f"mismatch: expected {c.value}, calculated {actual or 'nothing'}"))
        out.append({"type": c.type, "verify_process": c.verify_process, "expected": c.value,
                    "actual": actual, "ok": ok})
    return out


# ---------------------------------------------------------------- writing


class HashingWriter(io.RawIOBase):
    """A write-only stream that hashes what passes and forwards it (counts bytes; tell() for tarfile/gzip)."""

    def __init__(self, out: BinaryIO | None, *algos: str):
        super().__init__()
        self._out = out
        self.hashes = {a: hashlib.new(a) for a in algos}
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        n = len(b)
        for h in self.hashes.values():
            h.update(b)
        if self._out is not None:
            self._out.write(b)
        self.size += n
        return n

    def tell(self) -> int:
        return self.size

    def hexdigest(self, algo: str) -> str:
        return self.hashes[algo].hexdigest()


@dataclass(frozen=True)
class BuiltPayload:
    name: str
    path: Path  # the .tgz on disk (temporary)
    size: int
    uncompressed_size: int
    sha256_gunzip: str
    sha256: str
    sha1_gunzip: str
    files: tuple[str, ...]


def walk_stage(root: Path) -> Iterator[tuple[str, Path, os.stat_result]]:
    """(relative path, absolute path, lstat) of a stage tree, sorted, directories before their contents."""
    def rec(d: Path, rel: str) -> Iterator[tuple[str, Path, os.stat_result]]:
        for name in sorted(os.listdir(d)):
            p = d / name
            r = f"{rel}{name}"
            st = p.lstat()
            yield r, p, st
            if stat.S_ISDIR(st.st_mode):
                yield from rec(p, r + "/")
    yield from rec(root, "")


def write_tgz(src: Path, out_path: Path, name: str, mtime: int, level: int = 6) -> BuiltPayload:
    """A reproducible gzip'ed GNU tar of `src`: sorted, explicit directories, uid/gid 0, one integer mtime,
    normalised modes (0755 dirs/executables, 0644 files, sticky kept). Streamed; returns sizes and checksums."""
    import gzip

    files: list[str] = []
    with open(out_path, "wb") as raw_out:
        raw = HashingWriter(raw_out, "sha256")
        with gzip.GzipFile(filename="", mode="wb", compresslevel=level, fileobj=raw, mtime=0) as gz:
            plain = HashingWriter(gz, "sha256", "sha1")
            tf = tarfile.TarFile(fileobj=plain, mode="w", format=tarfile.GNU_FORMAT, copybufsize=CHUNK)
            try:
                for rel, path, st in walk_stage(src):
                    check_path(rel, f"payload {name!r}")
                    ti = tarfile.TarInfo(rel)
                    ti.mtime = int(mtime)
                    ti.uid = ti.gid = 0
                    ti.uname = ti.gname = "root"
                    sticky = st.st_mode & stat.S_ISVTX
                    if stat.S_ISDIR(st.st_mode):
                        ti.type = tarfile.DIRTYPE
                        ti.mode = 0o755 | sticky
                        tf.addfile(ti)
                    elif stat.S_ISREG(st.st_mode):
                        ti.type = tarfile.REGTYPE
                        ti.size = st.st_size
                        ti.mode = (0o755 if st.st_mode & 0o111 else 0o644) | sticky
                        with open(path, "rb") as fh:
                            tf.addfile(ti, fh)
                        files.append(rel)
                    elif stat.S_ISLNK(st.st_mode):
                        target = os.readlink(path)
                        _check_link(rel, target, f"payload {name!r}", hard=False)
                        ti.type = tarfile.SYMTYPE
                        ti.linkname = target
                        ti.mode = 0o777
                        tf.addfile(ti)
                        files.append(rel)
                    else:
                        raise VibFormatError(f"payload {name!r}: {rel!r} is not a file, directory or symlink")
            finally:
                tf.close()
    return BuiltPayload(
        name=name,
        path=out_path,
        size=raw.size,
        uncompressed_size=plain.size,
        sha256_gunzip=plain.hexdigest("sha256"),
        sha256=raw.hexdigest("sha256"),
        sha1_gunzip=plain.hexdigest("sha1"),
        files=tuple(files),
    )
