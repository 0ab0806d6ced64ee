"""The .vmx file format: parse and dump with a byte-exact round trip, and a dict-like editing API.

Facts: `shared/reference/workstation.md` section 1 (open-vm-tools `lib/dict/dictll.c`, `lib/misc/escape.c`).

    vmx = parse(path.read_bytes())          # or read(path)
    vmx["memsize"]                          # "2048" (lookup ignores key case: "memSize" works too)
    vmx.set("ethernet0.address", "00:50:56:01:00:01")   # in place, or after the last ethernet0.* line
    path.write_bytes(vmx.dump_bytes())      # or write(path, vmx) — atomic, see labctl.render.files

The model is a list of lines kept as the bytes they were read as. A line is an entry (`name = "value"`), a
comment (also the `#!/usr/bin/vmware` line), a blank line or a malformed line; all are written back unchanged
unless edited. Values are unescaped (`|XX`) and decoded with the file's `.encoding` (UTF-8 when absent) on
read, and escaped exactly like VMware's writer on write. Line endings are kept per line, so a file with mixed
LF and CRLF lines round-trips; a UTF-8 BOM is kept. Duplicate keys are allowed: the last one wins and
`duplicates()` / `warnings()` report them. Pure: no I/O besides `read`/`write`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from labctl.errors import LabctlError

__all__ = [
    "Duplicate",
    "VmxError",
    "VmxFile",
    "escape",
    "parse",
    "read",
    "unescape",
    "write",
]

BOM = b"\xef\xbb\xbf"

# <ws> <name> <ws> = <ws> ("<quoted>" | <unquoted>) <ws> [#comment]  — anything else is a malformed line.
_ENTRY = re.compile(
    rb"""
    (?P<lead>[ \t]*)
    (?P<name>[^ \t=\#]+)
    (?P<sp1>[ \t]*) = (?P<sp2>[ \t]*)
    (?: "(?P<qval>[^"]*)" | (?P<uval>(?:[^ \t\#"][^ \t\#]*)?) )
    (?P<tail>[ \t]*(?:\#.*)?)
    \Z""",
    re.VERBOSE | re.DOTALL,
)
_ESCAPED = re.compile(rb"\|([0-9A-Fa-f]{2})")
_ENCODING_LINE = re.compile(rb'^[ \t]*\.encoding[ \t]*=[ \t]*"?([^"\s#]*)', re.IGNORECASE | re.MULTILINE)
# bytes the writer escapes: 0x00-0x08, 0x0A-0x1F, '"', '|', 0x7F (tab and >= 0x80 stay raw)
_MUST_ESCAPE = frozenset([*range(0x09), *range(0x0A, 0x20), 0x22, 0x7C, 0x7F])
_ESCAPE_TABLE = {b: b"|%02X" % b for b in _MUST_ESCAPE}


class VmxError(LabctlError):
    """A value cannot be represented in the file (e.g. a character outside its `.encoding`)."""


def escape(raw: bytes) -> bytes:
    """Escape a value's bytes the way VMware writes them: `|` + two upper-case hex digits."""
    if not any(b in _MUST_ESCAPE for b in raw):
        return raw
    return b"".join(_ESCAPE_TABLE.get(b, bytes((b,))) for b in raw)


def unescape(raw: bytes) -> bytes:
    """Decode `|hh` (either case); a `|` not followed by two hex digits stays literal."""
    if b"|" not in raw:
        return raw
    return _ESCAPED.sub(lambda m: bytes((int(m.group(1), 16),)), raw)


def _codec_for(name: str | None) -> str | None:
    """The Python codec for a `.encoding` value, or None when Python does not know it."""
    if not name:
        return "utf-8"
    try:
        return codecs.lookup(name).name
    except LookupError:
        return None


@dataclass
class _Line:
    """One physical line: `text` without its line ending, `eol` is b"\\n", b"\\r\\n" or b"" (last line)."""

    text: bytes
    eol: bytes
    # entry parts (None for comments, blank and malformed lines)
    name: bytes | None = None
    head: bytes = b""  # lead + name + spaces + "=" + spaces, kept when the value is replaced
    raw_value: bytes = b""  # the value as written (escaped, without quotes)
    tail: bytes = b""  # spaces + trailing comment

    @classmethod
    def parse(cls, text: bytes, eol: bytes) -> _Line:
        line = cls(text, eol)
        stripped = text.lstrip(b" \t")
        if not stripped or stripped.startswith(b"#"):
            return line
        m = _ENTRY.match(text)
        if m is None:
            return line
        line.name = m.group("name")
        line.head = text[: m.start("sp2")] + m.group("sp2")
        qval = m.group("qval")
        line.raw_value = qval if qval is not None else m.group("uval")
        line.tail = m.group("tail")
        return line

    @property
    def kind(self) -> str:
        if self.name is not None:
            return "entry"
        stripped = self.text.lstrip(b" \t")
        if not stripped.strip(b"\r"):
            return "blank"
        if stripped.startswith(b"#"):
            return "comment"
        return "malformed"

    def replace_value(self, escaped: bytes) -> None:
        self.raw_value = escaped
        self.text = self.head + b'"' + escaped + b'"' + self.tail


@dataclass(frozen=True)
class Duplicate:
    """A key that appears more than once; `lines` are 1-based line numbers, the last one wins."""

    key: str
    lines: tuple[int, ...]

    def __str__(self) -> str:
        earlier = ", ".join(str(n) for n in self.lines[:-1])
        return (
            f"line {self.lines[-1]}: duplicate key {self.key!r} (also on line {earlier}); the last value wins"
        )


def _split_lines(data: bytes) -> list[_Line]:
    lines: list[_Line] = []
    pos, n = 0, len(data)
    while pos < n:
        nl = data.find(b"\n", pos)
        if nl < 0:
            lines.append(_Line.parse(data[pos:], b""))
            break
        if nl > pos and data[nl - 1] == 0x0D:
            lines.append(_Line.parse(data[pos : nl - 1], b"\r\n"))
        else:
            lines.append(_Line.parse(data[pos:nl], b"\n"))
        pos = nl + 1
    return lines


def _group(key: str) -> str:
    """`ethernet0.virtualDev` -> `ethernet0`; `scsi0:0.fileName` -> `scsi0:0`; `memsize` -> `memsize`."""
    return key.split(".", 1)[0] if not key.startswith(".") else key


def _family(group: str) -> str | None:
    """`ethernet0` -> `ethernet`, `scsi0:1` -> `scsi`, `memsize` -> None."""
    m = re.match(r"([A-Za-z_]+)\d", group)
    return m.group(1).lower() if m else None


class VmxFile:
    """A parsed .vmx file. Lookups ignore key case; edits keep every other byte of the file as it was."""

    def __init__(self, lines: list[_Line], *, bom: bool, codec: str, encoding_problem: str | None = None):
        self._lines = lines
        self.bom = bom
        self._codec = codec
        self._encoding_problem = encoding_problem
        self._index: dict[str, list[_Line]] | None = None

    # ---- construction -------------------------------------------------------------------------------
    @classmethod
    def from_bytes(cls, data: bytes) -> VmxFile:
        bom = data.startswith(BOM)
        if bom:
            data = data[len(BOM) :]
        problem = None
        m = _ENCODING_LINE.search(data)
        declared = m.group(1).decode("ascii", "replace") if m else None
        codec = _codec_for(declared)
        if codec is None:
            problem = f".encoding {declared!r} is not known to Python; values are decoded as UTF-8"
            codec = "utf-8"
        return cls(_split_lines(data), bom=bom, codec=codec, encoding_problem=problem)

    @classmethod
    def from_text(cls, text: str) -> VmxFile:
        bom = text.startswith("\ufeff")
        if bom:
            text = text[1:]
        m = _ENCODING_LINE.search(text.encode("utf-8", "surrogateescape"))
        declared = m.group(1).decode("ascii", "replace") if m else None
        codec = _codec_for(declared) or "utf-8"
        try:
            data = text.encode(codec, "surrogateescape")
        except UnicodeEncodeError:  # text that never came from a file in that charset: keep it as UTF-8
            codec = "utf-8"
            data = text.encode(codec, "surrogateescape")
        return cls(_split_lines(data), bom=bom, codec=codec)

    # ---- output -------------------------------------------------------------------------------------
    def dump_bytes(self) -> bytes:
        body = b"".join(line.text + line.eol for line in self._lines)
        return BOM + body if self.bom else body

    def dump(self) -> str:
        body = b"".join(line.text + line.eol for line in self._lines).decode(self._codec, "surrogateescape")
        return "\ufeff" + body if self.bom else body

    # ---- encoding -----------------------------------------------------------------------------------
    @property
    def encoding(self) -> str:
        """The `.encoding` value as written in the file ("UTF-8" when the file has none)."""
        return self.get(".encoding") or "UTF-8"

    @property
    def codec(self) -> str:
        """The Python codec used for values (from `.encoding`; UTF-8 when absent or unknown)."""
        return self._codec

    def _decode(self, raw: bytes) -> str:
        return unescape(raw).decode(self._codec, "surrogateescape")

    def _encode(self, key: str, value: str) -> bytes:
        try:
            return escape(value.encode(self._codec, "surrogateescape"))
        except UnicodeEncodeError as e:
            raise VmxError(
                f"{key}: the value {value!r} cannot be written in this file's encoding ({self.encoding})",
                hint='set ".encoding" to "UTF-8" first, or use only characters of that encoding',
            ) from e

    # ---- lookups ------------------------------------------------------------------------------------
    def _entries(self) -> dict[str, list[_Line]]:
        if self._index is None:
            index: dict[str, list[_Line]] = {}
            for line in self._lines:
                if line.name is not None:
                    index.setdefault(self._key(line).lower(), []).append(line)
            self._index = index
        return self._index

    def _key(self, line: _Line) -> str:
        assert line.name is not None
        return line.name.decode(self._codec, "surrogateescape")

    def get(self, key: str, default: str | None = None) -> str | None:
        found = self._entries().get(key.lower())
        return self._decode(found[-1].raw_value) if found else default

    def __getitem__(self, key: str) -> str:
        found = self._entries().get(key.lower())
        if not found:
            raise KeyError(key)
        return self._decode(found[-1].raw_value)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._entries()

    def __len__(self) -> int:
        return len(self._entries())

    def __iter__(self) -> Iterator[str]:
        return iter(self.keys())

    def keys(self) -> list[str]:
        """Each key once, in order of first appearance, spelled as on its last (winning) line."""
        return [self._key(lines[-1]) for lines in self._entries().values()]

    def items(self) -> list[tuple[str, str]]:
        return [
            (self._key(lines[-1]), self._decode(lines[-1].raw_value)) for lines in self._entries().values()
        ]

    def to_dict(self) -> dict[str, str]:
        return dict(self.items())

    def line_of(self, key: str) -> int | None:
        """1-based line number of the winning entry for `key`, or None."""
        found = self._entries().get(key.lower())
        if not found:
            return None
        target = found[-1]
        return next(i for i, line in enumerate(self._lines, 1) if line is target)

    def duplicates(self) -> list[Duplicate]:
        numbers: dict[str, list[int]] = {}
        names: dict[str, str] = {}
        for i, line in enumerate(self._lines, 1):
            if line.name is not None:
                key = self._key(line)
                numbers.setdefault(key.lower(), []).append(i)
                names[key.lower()] = key
        return [Duplicate(names[k], tuple(v)) for k, v in numbers.items() if len(v) > 1]

    def malformed(self) -> list[tuple[int, str]]:
        """(1-based line number, text) of lines that are neither entries, comments nor blank (kept as is)."""
        return [
            (i, line.text.decode(self._codec, "surrogateescape"))
            for i, line in enumerate(self._lines, 1)
            if line.kind == "malformed"
        ]

    def warnings(self) -> list[str]:
        out = [str(d) for d in self.duplicates()]
        out += [
            f'line {n}: not a `name = "value"` line, kept as is: {text!r}' for n, text in self.malformed()
        ]
        if self._encoding_problem:
            out.append(self._encoding_problem)
        return out

    # ---- edits --------------------------------------------------------------------------------------
    def __setitem__(self, key: str, value: str) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise KeyError(key)

    def set(self, key: str, value: str) -> None:
        """Set `key` to `value`.

        An existing key keeps its line, its spelling, its spacing and its trailing comment (with duplicates, the
        last — winning — line is changed); setting the value it already has changes nothing. A new key goes after the last line of its group (`ethernet0.*` for
        `ethernet0.address`), else after its device family (`ethernet1.*` for `ethernet2.present`), else at the
        end; `.encoding` goes first.
        """
        if not isinstance(value, str):
            raise TypeError(f"{key}: .vmx values are strings, got {type(value).__name__}")
        if key.lower() == ".encoding":
            self._set_encoding(key, value)
            return
        found = self._entries().get(key.lower())
        if found:
            if self._decode(found[-1].raw_value) != value:  # same value: keep the line exactly as written
                found[-1].replace_value(self._encode(key, value))
            return
        self._insert(key, value)

    def _insert(self, key: str, value: str) -> None:
        if not key or any(c in key for c in ' \t=#"\r\n'):
            raise VmxError(f"{key!r} is not a valid .vmx key (no spaces, '=', '#' or quotes)")
        raw_key = key.encode(self._codec, "surrogateescape")
        new = _Line.parse(raw_key + b' = "' + self._encode(key, value) + b'"', self._default_eol())
        pos = self._insert_position(key)
        if pos > 0 and self._lines[pos - 1].eol == b"":  # previous line was the last one, without newline
            prev = self._lines[pos - 1]
            # a trailing \r in its text is content: only a CRLF ending keeps it so when the file is read again
            prev.eol, new.eol = (b"\r\n" if prev.text.endswith(b"\r") else new.eol), b""
        self._lines.insert(pos, new)
        self._index = None

    def _insert_position(self, key: str) -> int:
        if key.startswith("."):  # .encoding and friends: first, after a `#!` line
            return 1 if self._lines and self._lines[0].text.startswith(b"#!") else 0
        group = _group(key).lower()
        family = _family(group)
        last_group = last_family = None
        for i, line in enumerate(self._lines):
            if line.name is None:
                continue
            g = _group(self._key(line)).lower()
            if g == group:
                last_group = i
            elif family is not None and _family(g) == family:
                last_family = i
        anchor = last_group if last_group is not None else last_family
        return len(self._lines) if anchor is None else anchor + 1

    def _default_eol(self) -> bytes:
        crlf = sum(1 for line in self._lines if line.eol == b"\r\n")
        lf = sum(1 for line in self._lines if line.eol == b"\n")
        return b"\r\n" if crlf > lf else b"\n"

    def _set_encoding(self, key: str, value: str) -> None:
        """Change `.encoding` and re-encode every line so the values keep their meaning."""
        codec = _codec_for(value)
        if codec is None:
            raise VmxError(f".encoding {value!r} is not a charset Python knows", hint='use "UTF-8"')
        old = [
            (line, self._decode(line.raw_value) if line.name is not None else None) for line in self._lines
        ]
        texts = [line.text.decode(self._codec, "surrogateescape") for line in self._lines]
        old_codec = self._codec
        self._codec = codec
        try:
            for (line, decoded), text in zip(old, texts):
                line.text = text.encode(codec, "surrogateescape")
                reparsed = _Line.parse(line.text, line.eol)
                line.name, line.head, line.raw_value, line.tail = (
                    reparsed.name,
                    reparsed.head,
                    reparsed.raw_value,
                    reparsed.tail,
                )
                if decoded is not None and line.name is not None and self._decode(line.raw_value) != decoded:
                    line.replace_value(self._encode(self._key(line), decoded))
        except UnicodeEncodeError as e:
            self._codec = old_codec
            raise VmxError(
                f"this file has characters that {value} cannot represent", hint='use "UTF-8"'
            ) from e
        self._index = None
        found = self._entries().get(".encoding")
        if found:
            found[-1].replace_value(self._encode(key, value))
        else:
            self._insert(key, value)

    def delete(self, key: str) -> bool:
        """Remove every line of `key`; True when something was removed."""
        found = self._entries().get(key.lower())
        if not found:
            return False
        doomed = {id(line) for line in found}
        keep = [line for line in self._lines if id(line) not in doomed]
        if keep and self._lines[-1].eol == b"" and id(self._lines[-1]) in doomed:
            keep[-1].eol = b""  # the file had no final newline: keep it that way
        self._lines = keep
        self._index = None
        return True

    def update(self, values: dict[str, str]) -> None:
        for key, value in values.items():
            self.set(key, value)

    def __repr__(self) -> str:
        return f"<VmxFile {len(self)} keys, {len(self._lines)} lines, {self.encoding}>"


def parse(data: str | bytes) -> VmxFile:
    """Parse .vmx content. Bytes are decoded with the file's `.encoding`; str is taken as already decoded."""
    if isinstance(data, (bytes, bytearray, memoryview)):
        return VmxFile.from_bytes(bytes(data))
    return VmxFile.from_text(data)


def read(path: str | Path) -> VmxFile:
    """Read a .vmx file from disk (bytes, so the charset comes from the file itself)."""
    return VmxFile.from_bytes(Path(path).read_bytes())


def write(path: str | Path, vmx: VmxFile, *, force: bool = False, manifest=None):
    """Write a .vmx atomically through `labctl.render.files.write_atomic` (same refusals, same manifest)."""
    from labctl.render import files

    kwargs = {} if manifest is None else {"manifest": manifest}
    return files.write_atomic(Path(path), vmx.dump_bytes(), force=force, **kwargs)
