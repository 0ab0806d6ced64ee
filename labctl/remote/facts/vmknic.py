"""`esxcfg-vmknic -l` on ESX classic and ESXi: every layout its header can announce.

The columns vary by release and host: 6.0+ has Port Group/DVPort/Opaque Network and NetStack; 5.x IP Family and TSO
MSS; ESX(i) 4.x has no TSO MSS, shows IP Family only on some hosts, and can lack Broadcast, Enabled or Type
(tests/remote/facts/vmknic_list_5 holds real captures of each, with their sources). The header says which columns a
row has. Cells can be empty (IPv6 rows have no Broadcast), port group names contain spaces or look like numbers
(a DVPort id), and public captures are often whitespace-squeezed, so a row is never split by position: it is cut at
its MAC address (regex); the left part is read at the IP Family column or, without one, from the right (the address
columns the header names); the right part as the header's MTU, TSO MSS, Enabled, then Type (which may contain
spaces: "STATIC, PREFERRED") and NetStack. A cell that does not fit its column (an Enabled that is not a boolean) is
an error naming the line, never a silent None. Rows without a MAC fall back to the header's column positions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.remote.facts.base import (
    MAC_RE,
    Fact,
    FactParseError,
    Platform,
    na,
    normalize_mac,
    to_bool,
    to_int,
)


@dataclass(frozen=True)
class VmkInterface:
    name: str
    portgroup: str
    family: str | None
    ip: str | None
    netmask: str | None
    broadcast: str | None
    mac: str | None
    mtu: int | None
    tso_mss: int | None
    enabled: bool | None
    type: str | None
    netstack: str | None


_HEADER_LABELS = ("Interface", "Port Group", "IP Family", "IP Address", "Netmask", "Broadcast", "MAC Address",
                  "MTU", "TSO MSS", "Enabled", "Type", "NetStack")


def _header_positions(header: str) -> dict[str, int]:
    pos = {}
    for label in _HEADER_LABELS:
        i = header.find(label)
        if i >= 0:
            pos[label] = i
    return pos


def _by_positions(line: str, pos: dict[str, int]) -> dict[str, str]:
    order = sorted(pos.items(), key=lambda kv: kv[1])
    out = {}
    for j, (label, start) in enumerate(order):
        end = order[j + 1][1] if j + 1 < len(order) else len(line)
        out[label] = line[start:end].strip()
    return out


_ADDRESS_LABELS = ("IP Address", "Netmask", "Broadcast")
_TAIL_LABELS = ("MTU", "TSO MSS", "Enabled", "Type", "NetStack")


@dataclass(frozen=True)
class _Layout:
    """Which columns a header has, left and right of the MAC Address column, in order."""

    family: bool
    addresses: tuple[str, ...]  # of _ADDRESS_LABELS
    tail: tuple[str, ...]  # of _TAIL_LABELS


def _layout(header: str) -> _Layout:
    # Posts often squeeze the header ("Port_Group IP_Address"): read labels, not positions
    h = header.replace("_", " ")
    left, sep, right = h.partition("MAC Address")
    if not sep:
        left, right = h, ""
    addresses = tuple(lbl for lbl in _ADDRESS_LABELS if lbl in left)
    found = sorted((right.find(lbl), lbl) for lbl in _TAIL_LABELS if lbl in right)
    return _Layout("IP Family" in left, addresses, tuple(lbl for _, lbl in found))


def _row_with_mac(line: str, m: re.Match, layout: _Layout, fact: str) -> VmkInterface:
    left, right = line[: m.start()], line[m.end() :]
    name, _, rest = left.strip().partition(" ")
    rest = " " + rest
    fam = re.search(r"\s(IPv4|IPv6)(?=\s|$)", rest) if layout.family else None
    if fam:
        # aligned output can leave cells empty (an IPv6 row has no Broadcast): fill from the left
        portgroup, family, cells = rest[: fam.start()].strip(), fam.group(1), rest[fam.end() :].split()
    else:
        # no IP Family column (ESX(i) 4.x): the address cells are the last ones before the MAC, so a port group
        # that looks like a number (a DVPort id, "10") stays a port group
        toks, n = rest.split(), len(layout.addresses)
        if len(toks) < n + 1:
            raise FactParseError(fact, f"expected a port group and {n} address column(s) before the MAC in {line!r}")
        portgroup, family, cells = " ".join(toks[: len(toks) - n]), None, toks[len(toks) - n :]
    addr = dict(zip(layout.addresses, cells))
    tail = right.split()
    scalars = [lbl for lbl in layout.tail if lbl in ("MTU", "TSO MSS", "Enabled")]
    if len(tail) < len(scalars):
        raise FactParseError(fact, f"too few columns after the MAC in {line!r} (header has {', '.join(layout.tail)})")
    values = dict(zip(scalars, tail))
    more = tail[len(scalars) :]
    mtu, tso = to_int(values.get("MTU")), to_int(values.get("TSO MSS"))
    enabled = to_bool(values["Enabled"]) if "Enabled" in values else None
    for lbl, got in (("MTU", mtu), ("TSO MSS", tso), ("Enabled", enabled)):
        if lbl in values and got is None and na(values[lbl]) is not None:
            raise FactParseError(fact, f"{lbl} column holds {values[lbl]!r} in {line!r}: not this header's layout")
    netstack = None
    if "NetStack" in layout.tail and len(more) >= ("Type" in layout.tail) + 1:
        netstack, more = more[-1], more[:-1]
    if more and "Type" not in layout.tail:
        raise FactParseError(fact, f"more columns than the header names in {line!r}")
    return VmkInterface(
        name=name,
        portgroup=portgroup,
        family=family,
        ip=na(addr.get("IP Address")),
        netmask=na(addr.get("Netmask")),
        broadcast=na(addr.get("Broadcast")),
        mac=normalize_mac(m.group(1)),
        mtu=mtu,
        tso_mss=tso,
        enabled=enabled,
        type=na(" ".join(more)),
        netstack=netstack,
    )


def parse_vmknic_list(output: str, fact: str) -> list[VmkInterface]:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    header = next((ln for ln in lines if ln.startswith("Interface")), None)
    if header is None:
        if not lines:
            return []
        raise FactParseError(fact, "no 'Interface' header line")
    layout = _layout(header)
    if "MTU" not in layout.tail or "IP Address" not in layout.addresses:
        raise FactParseError(fact, f"header without IP Address and MTU columns: {header!r}")
    pos = _header_positions(header)
    rows = []
    for line in lines:
        if line is header or line[0].isspace():
            continue
        m = MAC_RE.search(line)
        if m is not None:
            rows.append(_row_with_mac(line, m, layout, fact))
            continue
        cells = _by_positions(line, pos)  # no MAC cell: only aligned output can be read, by header positions
        rows.append(
            VmkInterface(
                name=cells.get("Interface", "").split()[0] if cells.get("Interface") else line.split()[0],
                portgroup=cells.get("Port Group", ""),
                family=na(cells.get("IP Family")),
                ip=na(cells.get("IP Address")),
                netmask=na(cells.get("Netmask")),
                broadcast=na(cells.get("Broadcast")),
                mac=None,
                mtu=to_int(cells.get("MTU")),
                tso_mss=to_int(cells.get("TSO MSS")),
                enabled=to_bool(cells.get("Enabled")),
                type=na(cells.get("Type")),
                netstack=na(cells.get("NetStack")),
            )
        )
    return rows


class VmknicList5(Fact[list[VmkInterface]]):
    """ESXi 4.x/5.x layout: ... MAC Address, MTU, TSO MSS, Enabled, Type (also ESX classic's VMkernel ports)."""

    name = "vmknic_list_5"

    def command(self, platform: Platform) -> str | None:
        return "esxcfg-vmknic -l" if platform.classic or platform.version[0] < 6 else None

    def parse(self, output: str) -> list[VmkInterface]:
        return parse_vmknic_list(output, self.name)


class VmknicList6(Fact[list[VmkInterface]]):
    """ESXi 6.0+ layout: Port Group/DVPort/Opaque Network ... Type, NetStack."""

    name = "vmknic_list_6"

    def command(self, platform: Platform) -> str | None:
        return "esxcfg-vmknic -l" if not platform.classic and platform.version[0] >= 6 else None

    def parse(self, output: str) -> list[VmkInterface]:
        return parse_vmknic_list(output, self.name)
