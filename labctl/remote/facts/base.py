"""The Fact protocol and the helpers the parsers share.

A fact is a command plus a pure parser: `command(platform)` says what to run on a given flavour/version (None when
the fact does not exist there) and `parse(output)` turns the captured stdout into plain data. Parsers do no I/O;
they are tested with captured outputs as data files (tests/remote/facts/<fact>/<case>.json).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

MAC_RE = re.compile(r"(?<![0-9A-Fa-f:])([0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5})(?![0-9A-Fa-f:])")
IPV4_RE = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


class FactParseError(ValueError):
    """The output does not look like what the command prints (names the fact and the offending line)."""

    def __init__(self, fact: str, reason: str):
        super().__init__(f"{fact}: {reason}")
        self.fact = fact
        self.reason = reason


@dataclass(frozen=True)
class Platform:
    """What a host runs: "esx" (classic, with a service console) or "esxi", and (major, minor, update)."""

    flavor: str
    version: tuple[int, int, int]

    @property
    def classic(self) -> bool:
        return self.flavor == "esx"

    @classmethod
    def parse(cls, flavor: str, version: str) -> Platform:
        """`Platform.parse("esx", "3.5u5")` -> Platform("esx", (3, 5, 5)); tolerant of "8.0", "6.7 U3", "8"."""
        m = re.match(r"\s*(\d+)(?:\.(\d+))?(?:\.(\d+))?\s*(?:u|update|\s)*\s*(\d+)?", version, re.IGNORECASE)
        if not m:
            raise ValueError(f"unrecognised version {version!r}")
        major = int(m.group(1))
        minor = int(m.group(2) or 0)
        update = int(m.group(4) or m.group(3) or 0)
        return cls(flavor, (major, minor, update))


class Fact(Generic[T]):
    """A command per platform plus a pure parser. Subclasses set `name` and implement both methods."""

    name: str = ""

    def command(self, platform: Platform) -> str | None:  # pragma: no cover - interface
        raise NotImplementedError

    def parse(self, output: str) -> T:  # pragma: no cover - interface
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<fact {self.name}>"


def normalize_mac(mac: str) -> str:
    """Lower-case, colon-separated: "00-50-56-4C-E5-09" / "0050.564c.e509" -> "00:50:56:4c:e5:09"."""
    hexdigits = re.sub(r"[^0-9A-Fa-f]", "", mac)
    if len(hexdigits) != 12:
        raise ValueError(f"not a MAC address: {mac!r}")
    h = hexdigits.lower()
    return ":".join(h[i : i + 2] for i in range(0, 12, 2))


def na(value: str | None) -> str | None:
    """Empty cells and "N/A" become None."""
    if value is None:
        return None
    v = value.strip()
    return None if v in ("", "N/A", "n/a") else v


def to_bool(value: str | None) -> bool | None:
    if value is None:
        return None
    v = value.strip().lower()
    if v in ("true", "yes", "on", "1", "up"):
        return True
    if v in ("false", "no", "off", "0", "down"):
        return False
    return None


def to_int(value: str | None) -> int | None:
    v = na(value)
    if v is None:
        return None
    try:
        return int(v)
    except ValueError:
        return None


def parse_records(text: str) -> list[tuple[str | None, dict[str, str]]]:
    """esxcli's record format: a key line at column 0, then `   Field: value` lines indented; blank lines between.

    Records without a key line (e.g. `esxcli system settings advanced list`) start at the first indented line after
    a blank line. Returns [(key or None, {field: value})] keeping the field order.
    """
    records: list[tuple[str | None, dict[str, str]]] = []
    current: dict[str, str] | None = None
    key: str | None = None
    last_field: str | None = None
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line.strip():
            if current is not None:
                records.append((key, current))
            current, key, last_field = None, None, None
            continue
        if not line[0].isspace() and ":" not in line:
            if current is not None:
                records.append((key, current))
            current, key, last_field = {}, line.strip(), None
            continue
        stripped = line.strip()
        if current is None:
            current, key = {}, None
        if ":" in stripped:
            field, _, value = stripped.partition(":")
            current[field.strip()] = value.strip()
            last_field = field.strip()
        elif last_field is not None:  # a wrapped value (long descriptions)
            current[last_field] = (current[last_field] + " " + stripped).strip()
    if current is not None:
        records.append((key, current))
    return records


def parse_dashed_table(text: str, fact: str) -> list[dict[str, str]]:
    """esxcli's table format: header, a dashed line sized to each column, rows; 2 spaces between columns.

    Columns are taken from the runs of dashes: column i spans from its dash start to the next column's dash start
    (numeric cells are right-aligned inside that span), the last column to the end of the line.
    """
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() and set(line.strip()) <= {"-", " "} and "-" in line and i > 0:
            dash_line, header = line, lines[i - 1]
            body = lines[i + 1 :]
            break
    else:
        if not text.strip():
            return []
        raise FactParseError(fact, "no dashed line under a header")
    spans = [(m.start(), m.end()) for m in re.finditer(r"-+", dash_line)]
    starts = [s for s, _ in spans]

    def cells(line: str) -> list[str]:
        out = []
        for j, s in enumerate(starts):
            e = starts[j + 1] if j + 1 < len(starts) else len(line)
            out.append(line[s:e].strip() if s < len(line) else "")
        return out

    names = cells(header)
    rows = []
    for line in body:
        if not line.strip():
            continue
        rows.append(dict(zip(names, cells(line))))
    return rows
