"""PyYAML's syntax errors in plain words, with the likely cause and the fix.

PyYAML says what its parser expected ("expected <block end>, but found '?'"; libyaml: "did not find expected '-'
indicator"), which a topology author cannot act on. `explain` looks at the source line the error points to and
names the usual causes instead: a line indented differently from its siblings, a tab, an unquoted value with
": " in it, a list item without a space after '-', an unclosed quote or bracket, a value starting with a
character YAML reserves. It keeps the position, so the caller still prints file:line:col.

Pure: text in, (line, column, message) out. Both the pure-Python and the libyaml (C) parser's messages are
handled, because the decision rests on the source text, not on the wording.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

# characters that cannot start a plain (unquoted) YAML scalar, and what YAML takes them for
_RESERVED = {"@": "is reserved", "`": "is reserved", "%": "starts a directive", "!": "starts a tag",
             "&": "starts an anchor", "*": "starts an alias", "|": "starts a block of text",
             ">": "starts a folded block of text"}


@dataclass(frozen=True)
class Explained:
    line: int  # 1-based
    col: int  # 1-based
    message: str


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _indent(s: str) -> int:
    return len(s) - len(s.lstrip(" "))


def _key_start(s: str) -> int:
    """Column (0-based) where the line's content starts, after the indentation and any '- ' list markers."""
    i = _indent(s)
    while s[i:i + 2] == "- " or s[i:] == "-":
        i += 2
        while i < len(s) and s[i] == " ":
            i += 1
    return i


def _previous_content(lines: list[str], idx: int) -> int | None:
    """Index of the nearest line above idx that holds YAML (not blank, not only a comment)."""
    for j in range(idx - 1, -1, -1):
        t = lines[j].strip()
        if t and not t.startswith("#"):
            return j
    return None


def explain(text: str, error: Any) -> Explained:
    """Plain words for a yaml.MarkedYAMLError (or any YAMLError) raised while parsing `text`."""
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    line, col = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
    ctx_mark = getattr(error, "context_mark", None)
    problem = str(getattr(error, "problem", None) or "")
    context = str(getattr(error, "context", None) or "")
    raw = " ".join(x for x in (context, problem) if x) or str(error)
    lines = text.splitlines()
    here = lines[line - 1] if 0 < line <= len(lines) else ""
    ch = here[col - 1] if 0 < col <= len(here) else ""

    def out(msg: str, at: tuple[int, int] | None = None) -> Explained:
        ln, cl = at or (line, col)
        return Explained(ln, cl, f"invalid YAML: {msg}")

    # a tab where YAML wants indentation (or anywhere a token starts)
    if ch == "\t" or "\t" in here[:_indent_ws(here)]:
        tcol = here.index("\t") + 1 if "\t" in here else col
        return out(f"line {line} contains a tab character: YAML indentation must be spaces, never tabs "
                   "(set your editor to insert spaces)", (line, tcol))

    if "cannot start any token" in problem and ch in _RESERVED:
        value = here[col - 1:].split(" #", 1)[0].rstrip()
        return out(f"'{ch}' {_RESERVED[ch]} in YAML and cannot begin an unquoted value; quote it: {_quoted(value)}")

    if "undefined alias" in problem:
        value = here[col - 1:].split(" #", 1)[0].rstrip()
        return out(f"'*' starts an alias in YAML (a reference to an '&anchor'); if this is text, quote it: "
                   f"{_quoted(value)}")

    if "mapping values are not allowed" in problem:
        start = _key_start(here)
        first_colon = _first_mapping_colon(here, start)
        if first_colon is not None and first_colon < col - 1:
            # a `key: value` line whose value holds another ": " — the value needs quotes
            key = here[start:first_colon]
            value = here[first_colon + 1:].split(" #", 1)[0].strip()
            return out(f"the value of '{key.strip()}' contains ': ', which YAML reads as a second key; quote the "
                       f"value: {key.strip()}: {_quoted(value)}")
        prev = _previous_content(lines, line - 1)
        where = f" (line {prev + 1} starts at column {_key_start(lines[prev]) + 1})" if prev is not None else ""
        return out(f"wrong indentation: line {line} is indented more than the line above{where}: keys of one mapping must start in "
                   "the same column; a nested mapping needs its parent key to end with ':'", (line, _indent(here) + 1))

    if "could not find expected ':'" in problem:
        at_line = ctx_mark.line + 1 if ctx_mark is not None else line
        src = lines[at_line - 1] if 0 < at_line <= len(lines) else ""
        stripped = src.lstrip(" ")
        if re.match(r"-[^\s-]", stripped):
            return out(f"line {at_line}: a list item needs a space after '-' (write '- {stripped[1:].strip()}')",
                       (at_line, _indent(src) + 1))
        return out(f"line {at_line} is neither `key: value` nor a '- ' list item: a ':' is missing after the key, "
                   "or the line is indented differently from the lines around it", (at_line, _indent(src) + 1))

    if "quoted scalar" in context and "end of stream" in problem:
        at = (ctx_mark.line + 1, ctx_mark.column + 1) if ctx_mark is not None else (line, col)
        return out(f"the quote opened at line {at[0]}, column {at[1]} is never closed", at)

    if "flow sequence" in context or "flow mapping" in context:
        opener = "[" if "sequence" in context else "{"
        closer, what = ("]", "list") if opener == "[" else ("}", "mapping")
        at = (ctx_mark.line + 1, ctx_mark.column + 1) if ctx_mark is not None else (line, col)
        return out(f"the '{opener}' opened at line {at[0]}, column {at[1]} is not closed where expected: items "
                   f"are separated by ',' and the {what} ends with '{closer}' (a value with ',', '[', ']', '{{' or "
                   "'}' in it needs quotes)", at)

    if "expected <block end>" in problem or "expected '-' indicator" in problem or "expected key" in problem \
            or "block mapping" in context or "block collection" in context:
        found_scalar = "<scalar>" in problem or "scalar" in problem
        if found_scalar and re.search(r"""["'][^"']*["']\s*\S""", here[:col]):
            return out(f"line {line} has text after a closing quote; quote the whole value")
        prev = _previous_content(lines, line - 1)
        parent = ""
        if prev is not None and _key_start(lines[prev]) != _indent(here):
            parent = f", the line above it (line {prev + 1}) at column {_key_start(lines[prev]) + 1}"
        elif ctx_mark is not None:
            parent = f", the block it is in at column {ctx_mark.column + 1} (line {ctx_mark.line + 1})"
        return out(f"wrong indentation: line {line} starts at column {_indent(here) + 1}{parent}. Keys of one "
                   "mapping, and the '- ' items of one list, must start in the same column",
                   (line, _indent(here) + 1))

    if "expected a single document" in problem or "but found '<document start>'" in problem:
        return out(f"a second YAML document starts at line {line} ('---'); a topology is one document")

    return out(raw)


def _indent_ws(s: str) -> int:
    """Length of the leading run of spaces and tabs."""
    return len(s) - len(s.lstrip(" \t"))


def _first_mapping_colon(s: str, start: int) -> int | None:
    """0-based index of the first ':' (followed by a space or the end) at or after start, outside quotes."""
    quote = None
    for i in range(start, len(s)):
        c = s[i]
        if quote:
            if c == quote:
                quote = None
            continue
        if c in "\"'" and (i == start or s[i - 1] in " :[{,"):
            quote = c
        elif c == "#" and (i == 0 or s[i - 1] == " "):
            return None
        elif c == ":" and (i + 1 == len(s) or s[i + 1] == " "):
            return i
    return None


def number_needs_quotes(text: str, line: int, col: int) -> str | None:
    """For a value YAML read as a number where the schema wants a string (version: 7.0): the source text at
    line:col, quoted, as the user should write it (`"7.0"`, also `"7.10"` which YAML would read as 7.1)."""
    lines = text.splitlines()
    if not 0 < line <= len(lines):
        return None
    m = re.match(r"[-+0-9._a-zA-Z]+", lines[line - 1][col - 1:])
    return _quoted(m.group(0)) if m else None
