"""The ar container of a VIB: a strict reader and a VMware-style writer.

Reading accepts what ESXi's reader accepts (vib.md section 1): GNU names with a trailing `/`, an optional pad byte
after odd-sized members, empty numbers, mode written as `0o0`, the `/` symbol table (skipped) and the `//` long-name
table with `/N` references. It refuses what is unsafe (section 8): sizes that are not plain decimal or run past the
end, empty or duplicate names, names containing `/` or `..`, more than MAX_MEMBERS members, trailing garbage.
Member names are never used as paths.

`arpy` reads ar too, but it is lenient where we must be strict (no member cap, trailing bytes ignored, names used
as given), so the reader is ours; no maintained library writes ar, so the writer is ours as well.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import BinaryIO, Iterable

from labctl.vib.findings import VibFormatError

MAGIC = b"!<arch>\n"
HEADER_LEN = 60
HEADER_END = b"`\n"
MAX_MEMBERS = 64
MAX_NAME_TABLE = 64 * 1024
COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class ArMember:
    name: str
    offset: int  # absolute offset of the data in the file
    size: int
    mtime: int
    uid: int
    gid: int
    mode: int
    raw_name: str  # as written in the header (e.g. "descriptor.xml/")
    mode_text: str = ""  # the mode field as written ("0", "0o0", "100644")


@dataclass(frozen=True)
class ArArchive:
    members: tuple[ArMember, ...]
    total_size: int
    style: str  # "vmware" (plain names), "gnu" (trailing /) or "mixed"

    def names(self) -> list[str]:
        return [m.name for m in self.members]

    def get(self, name: str) -> ArMember | None:
        for m in self.members:
            if m.name == name:
                return m
        return None


def _number(field: bytes, what: str, name: str, *, base: int = 10) -> int:
    text = field.replace(b"\0", b" ").strip().decode("ascii", "replace")
    if not text:
        return 0
    if base == 8:
        digits = text[2:] if text.lower().startswith("0o") else text
        if not digits or any(c not in "01234567" for c in digits):
            raise VibFormatError(f"Bad VIB archive header: member {name!r} has a {what} that is not octal: {text!r}")
        return int(digits, 8)
    if not text.isdigit() or not text.isascii():
        raise VibFormatError(
            f"Bad VIB archive header: member {name!r} has a {what} that is not a plain decimal number: {text!r}"
        )
    return int(text)


def _check_name(name: str) -> None:
    if not name:
        raise VibFormatError("Bad VIB archive header: a member has an empty name")
    if "/" in name or "\\" in name or name in (".", "..") or ".." in name.split("/") or "\0" in name:
        raise VibFormatError(f"Bad VIB archive header: unsafe member name {name!r} (contains '/' or '..')")
    if not name.isprintable():
        raise VibFormatError(f"Bad VIB archive header: member name {name!r} has control characters")


def read_ar(f: BinaryIO, total_size: int | None = None, *, max_members: int = MAX_MEMBERS) -> ArArchive:
    """Read the member table of an ar archive from a seekable binary file (data is not read)."""
    if total_size is None:
        f.seek(0, os.SEEK_END)
        total_size = f.tell()
    f.seek(0)
    magic = f.read(len(MAGIC))
    if len(magic) < len(MAGIC):
        raise VibFormatError("VIB archive is too short")
    if magic != MAGIC:
        raise VibFormatError(f"Unexpected file magic {magic!r}: not an ar archive (VIBs start with '!<arch>')")
    pos = len(MAGIC)
    members: list[ArMember] = []
    seen: set[str] = set()
    long_names: bytes | None = None
    styles: set[str] = set()
    while pos < total_size:
        remaining = total_size - pos
        if remaining < HEADER_LEN:
            if remaining == 1:
                f.seek(pos)
                if f.read(1) == b"\n":  # a final pad byte
                    break
            raise VibFormatError(f"Trailing garbage: {remaining} byte(s) after the last member at offset {pos}")
        f.seek(pos)
        header = f.read(HEADER_LEN)
        if len(header) < HEADER_LEN:
            raise VibFormatError("Unexpected EOF in an ar member header")
        if header[58:60] != HEADER_END:
            raise VibFormatError(f"Bad VIB archive header at offset {pos} (trailing garbage or corrupt member)")
        raw_name = header[0:16].decode("ascii", "replace").rstrip(" \0")
        size = _number(header[48:58], "size", raw_name)
        mtime = _number(header[16:28], "mtime", raw_name)
        uid = _number(header[28:34], "uid", raw_name)
        gid = _number(header[34:40], "gid", raw_name)
        mode = _number(header[40:48], "mode", raw_name, base=8)
        data_at = pos + HEADER_LEN
        if data_at + size > total_size:
            raise VibFormatError(
                f"Unexpected EOF: member {raw_name!r} claims {size} bytes at offset {data_at}, "
                f"past the end of the file ({total_size} bytes)"
            )
        pos = data_at + size
        if size % 2 == 1 and pos < total_size:
            f.seek(pos)
            if f.read(1) == b"\n":
                pos += 1
        if raw_name == "/" or raw_name == "/SYM64/":  # symbol table
            continue
        if raw_name == "//":
            if long_names is not None:
                raise VibFormatError("Bad VIB archive header: two GNU long-name tables")
            if size > MAX_NAME_TABLE:
                raise VibFormatError(f"Bad VIB archive header: long-name table of {size} bytes is too large")
            f.seek(data_at)
            long_names = f.read(size)
            continue
        if raw_name.startswith("#1/"):
            raise VibFormatError(f"BSD ar long names ({raw_name!r}) are not supported by ESXi")
        if raw_name.startswith("/") and raw_name[1:].isdigit():
            if long_names is None:
                raise VibFormatError(f"Bad VIB archive header: {raw_name!r} refers to a missing long-name table")
            idx = int(raw_name[1:])
            if idx >= len(long_names):
                raise VibFormatError(f"Bad VIB archive header: long-name reference {raw_name!r} is out of bounds")
            end = long_names.find(b"\n", idx)
            ref = long_names[idx : end if end >= 0 else len(long_names)].decode("ascii", "replace")
            name = ref[:-1] if ref.endswith("/") else ref
            styles.add("gnu")
        elif raw_name.endswith("/"):
            name = raw_name[:-1]
            styles.add("gnu")
        else:
            name = raw_name
            styles.add("vmware")
        _check_name(name)
        if name in seen:
            raise VibFormatError(f"Bad VIB archive: duplicate member name {name!r}")
        seen.add(name)
        mode_text = header[40:48].decode("ascii", "replace").strip(" \0")
        members.append(ArMember(name, data_at, size, mtime, uid, gid, mode, raw_name, mode_text))
        if len(members) > max_members:
            raise VibFormatError(f"Bad VIB archive: more than {max_members} members")
    style = "mixed" if len(styles) > 1 else (styles.pop() if styles else "vmware")
    return ArArchive(tuple(members), total_size, style)


def read_member(f: BinaryIO, member: ArMember, limit: int) -> bytes:
    """The whole data of a small member (descriptor, signature), refusing anything larger than `limit`."""
    if member.size > limit:
        raise VibFormatError(f"Member {member.name!r} is {member.size} bytes; refusing more than {limit}")
    f.seek(member.offset)
    return f.read(member.size)


def iter_member(f: BinaryIO, member: ArMember, chunk: int = COPY_CHUNK) -> Iterable[bytes]:
    """Stream a member's data in chunks."""
    left = member.size
    pos = member.offset
    while left > 0:
        f.seek(pos)
        b = f.read(min(chunk, left))
        if not b:
            raise VibFormatError(f"Unexpected EOF in member {member.name!r}")
        left -= len(b)
        pos += len(b)
        yield b


def header(name: str, size: int) -> bytes:
    """A VMware-style member header: name without `/`, mtime/uid/gid/mode `0` (VIB Author)."""
    _check_name(name)
    if len(name) > 15:
        raise ValueError(f"ar member name {name!r} is longer than 15 characters (VMware's writer refuses it)")
    h = b"%-16.16s%-12.12s%-6.6s%-6.6s%-8.8s%-10.10s%-2.2s" % (
        name.encode("ascii"), b"0", b"0", b"0", b"0", str(size).encode("ascii"), HEADER_END,
    )
    assert len(h) == HEADER_LEN
    return h


class ArWriter:
    """Write an ar archive member by member; data can be bytes or a binary file streamed in chunks."""

    def __init__(self, out: BinaryIO):
        self.out = out
        self.out.write(MAGIC)
        self.names: set[str] = set()

    def add_bytes(self, name: str, data: bytes) -> None:
        self._header(name, len(data))
        self.out.write(data)
        self._pad(len(data))

    def add_file(self, name: str, src: BinaryIO, size: int) -> None:
        self._header(name, size)
        left = size
        while left:
            b = src.read(min(COPY_CHUNK, left))
            if not b:
                raise OSError(f"{name}: source ended {left} bytes early")
            self.out.write(b)
            left -= len(b)
        self._pad(size)

    def _header(self, name: str, size: int) -> None:
        if name in self.names:
            raise ValueError(f"duplicate ar member {name!r}")
        self.names.add(name)
        self.out.write(header(name, size))

    def _pad(self, size: int) -> None:
        if size % 2:
            self.out.write(b"\n")
