"""`esxcfg-vmknic -l` on ESXi: 4.x/5.x (no NetStack column) and 6.0+ (Port Group/DVPort/Opaque Network, NetStack).

Cells can be empty (IPv6 rows have no Broadcast) and port group names contain spaces, so a row is never split on
whitespace alone: it is cut at its MAC address (regex), the left part at the IP Family column, and the right part
read as MTU, TSO MSS, Enabled, Type (which may contain spaces: "STATIC, PREFERRED") and NetStack. Rows without a MAC
fall back to the header's column positions.
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


def parse_vmknic_list(output: str, fact: str) -> list[VmkInterface]:
    lines = [ln for ln in output.splitlines() if ln.strip()]
    header = next((ln for ln in lines if ln.startswith("Interface")), None)
    if header is None:
        if not lines:
            return []
        raise FactParseError(fact, "no 'Interface' header line")
    has_netstack = "NetStack" in header
    pos = _header_positions(header)
    rows = []
    for line in lines:
        if line is header or line[0].isspace():
            continue
        m = MAC_RE.search(line)
        if m is None:
            cells = _by_positions(line, pos)
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
            continue
        left, right = line[: m.start()], line[m.end() :]
        name, _, rest = left.partition(" ")
        rest = " " + rest
        fam = re.search(r"\s(IPv4|IPv6)(?=\s|$)", rest)
        if fam:
            portgroup, family, addr = rest[: fam.start()].strip(), fam.group(1), rest[fam.end() :].split()
        else:  # no IP Family column (ESXi 4.x header known only collapsed [L]): the first address-like token
            toks = rest.split()
            idx = next((i for i, t in enumerate(toks) if re.match(r"^([\d.]+|[0-9a-fA-F:]*:[0-9a-fA-F:]*|N/A)$", t)),
                       len(toks))
            portgroup, family, addr = " ".join(toks[:idx]), None, toks[idx:]
        addr = addr + [None, None, None]
        tail = right.split()
        if len(tail) < 3:
            raise FactParseError(fact, f"too few columns after the MAC in {line!r}")
        netstack = None
        rest_tail = tail[3:]
        if has_netstack and len(rest_tail) >= 2:
            netstack = rest_tail[-1]
            rest_tail = rest_tail[:-1]
        rows.append(
            VmkInterface(
                name=name,
                portgroup=portgroup,
                family=family,
                ip=na(addr[0]),
                netmask=na(addr[1]),
                broadcast=na(addr[2]),
                mac=normalize_mac(m.group(1)),
                mtu=to_int(tail[0]),
                tso_mss=to_int(tail[1]),
                enabled=to_bool(tail[2]),
                type=na(" ".join(rest_tail)),
                netstack=netstack,
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
