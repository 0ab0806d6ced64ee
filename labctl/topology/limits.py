"""Limits on what a topology file may make the loader do: size, depth, alias expansion, tags, characters.

A topology is small (the largest example is a few KB). A hostile one must get a clear file:line:col error within
bounded time and memory instead of exhausting them: an alias bomb (`&a [x,x,...]`, `&b [*a,*a,...]`, ...) expands
geometrically, a recursive alias (`&a [*a]`) never ends, deep nesting overflows the composer's recursion, and an
unknown tag (`!foo`, `!!python/name:...`) has no constructor. `prescan` walks the YAML *event* stream (an
iterative parser, libyaml's when present) before anything is composed, so none of these reach a recursive or
expanding step. The limits are documented in docs/security.md.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

MAX_BYTES = 1024 * 1024  # a topology file larger than 1 MiB is refused before parsing
MAX_DEPTH = 64  # nested mappings/sequences
MAX_NODES = 50_000  # values in the document, aliases counted as what they expand to (a large lab has ~5,000)
MAX_ALIAS_NODES = 10_000  # values produced by alias expansion (merge keys included), in total


class LimitError(Exception):
    """A limit was exceeded at (line, col), 1-based."""

    def __init__(self, line: int, col: int, message: str):
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


# What YAML 1.1 allows in a stream (PyYAML's Reader refuses the rest with a position, not a line:col).
_NOT_PRINTABLE = re.compile("[^\x09\x0a\x0d\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# Characters refused in every string value (however written, e.g. "\u202e" in a double-quoted scalar): controls
# other than tab/newline, bidirectional controls that make text display differently than it reads, and the
# Unicode line/paragraph separators that split a value on one terminal and not on another.
_UNSAFE = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ufeff]")


def char_name(ch: str) -> str:
    name = unicodedata.name(ch, "") or {"\x00": "NUL", "\x1b": "ESC", "\x7f": "DEL"}.get(ch, "a control character")
    return f"U+{ord(ch):04X} ({name})"


def line_col(text: str, index: int) -> tuple[int, int]:
    line = text.count("\n", 0, index) + 1
    return line, index - (text.rfind("\n", 0, index) + 1) + 1


def escape(s: str) -> str:
    """`s` with every character `_UNSAFE` refuses shown as an escape (\\u202e), for echoing untrusted text."""
    return _UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}" if ord(m.group()) > 0xff else f"\\x{ord(m.group()):02x}",
                       s)


def unsafe_char(s: str) -> str | None:
    """A description of the first refused character in string value `s`, or None."""
    m = _UNSAFE.search(s)
    return f"contains {char_name(m.group())} at character {m.start() + 1}" if m else None


def check_size(size: int) -> None:
    if size > MAX_BYTES:
        raise LimitError(1, 1, f"the file is larger than {MAX_BYTES:,} bytes, the most a topology may be "
                               "(docs/security.md)")


def prescan(text: str, loader: Any) -> None:
    """Raise `LimitError` at the first place `text` exceeds a limit; return when it is safe to compose.

    Syntax errors are left to the composer, which reports them with its own marks."""
    import yaml
    from yaml.constructor import SafeConstructor

    check_size(len(text.encode("utf-8", "surrogatepass")))
    m = _NOT_PRINTABLE.search(text)
    if m:
        line, col = line_col(text, m.start())
        raise LimitError(line, col, f"{char_name(m.group())} is not allowed in a YAML file")
    known_tags = {t for t in SafeConstructor.yaml_constructors if t is not None}
    stack: list[list[Any]] = []  # [anchor, expanded size] per open collection
    sizes: dict[str, int] = {}  # anchor -> expanded size of what it names
    open_anchors: set[str] = set()
    total = via_alias = 0

    def at(ev: Any) -> tuple[int, int]:
        return ev.start_mark.line + 1, ev.start_mark.column + 1

    def check_tag(ev: Any) -> None:
        tag = ev.tag
        if tag is not None and tag != "!" and tag not in known_tags:
            raise LimitError(*at(ev), f"unknown tag {escape(tag)!r}: a topology uses plain YAML values only")

    try:
        for ev in yaml.parse(text, Loader=loader):
            if isinstance(ev, yaml.CollectionStartEvent):
                check_tag(ev)
                total += 1
                stack.append([ev.anchor, 1])
                if len(stack) > MAX_DEPTH:
                    raise LimitError(*at(ev), f"nested more than {MAX_DEPTH} levels deep")
                if ev.anchor is not None:
                    open_anchors.add(ev.anchor)
            elif isinstance(ev, yaml.CollectionEndEvent):
                anchor, size = stack.pop()
                if stack:
                    stack[-1][1] += size
                if anchor is not None:
                    sizes[anchor] = size
                    open_anchors.discard(anchor)
            elif isinstance(ev, yaml.ScalarEvent):
                check_tag(ev)
                total += 1
                if stack:
                    stack[-1][1] += 1
                if ev.anchor is not None:
                    sizes[ev.anchor] = 1
            elif isinstance(ev, yaml.AliasEvent):
                name = escape(ev.anchor)
                if ev.anchor in open_anchors:
                    raise LimitError(*at(ev), f"alias *{name} refers to a value that contains it (recursive alias)")
                if ev.anchor not in sizes:
                    raise LimitError(*at(ev), f"alias *{name} refers to no anchor &{name} before it")
                n = sizes[ev.anchor]
                total += n
                via_alias += n
                if stack:
                    stack[-1][1] += n
                if via_alias > MAX_ALIAS_NODES:
                    raise LimitError(*at(ev), f"aliases expand to more than {MAX_ALIAS_NODES:,} values "
                                              "(an alias bomb?)")
            if total > MAX_NODES:
                raise LimitError(*at(ev), f"more than {MAX_NODES:,} values in the file")
    except yaml.YAMLError:
        return  # the composer reports it, with its marks
