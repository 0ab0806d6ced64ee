"""ESX classic (3.5 / 4.x) service-console facts: `esxcfg-vswif -l`, ifcfg-vswif0, `ifconfig`.

`esxcfg-vswif -l` shows no MAC; the vswif MAC lives in ifcfg-vswif0 (`MACADDR=`) and on the wire (`ifconfig`
HWaddr). The 3.x sample we have is whitespace-collapsed [M], so rows are parsed by anchors (the first IPv4-looking
token, or the IP Family column on 4.x), never by fixed columns; port group names contain spaces.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.remote.command import sh
from labctl.remote.facts.base import (
    IPV4_RE,
    MAC_RE,
    Fact,
    FactParseError,
    Platform,
    na,
    normalize_mac,
    to_bool,
)

IFCFG_VSWIF0 = "/etc/sysconfig/network-scripts/ifcfg-vswif0"


@dataclass(frozen=True)
class VswifInterface:
    name: str
    portgroup: str
    ip: str | None
    netmask: str | None
    broadcast: str | None
    enabled: bool | None
    dhcp: bool | None  # 3.x "DHCP" column; on 4.x derived from TYPE (DHCP vs STATIC)
    family: str | None = None  # 4.x only ("IPv4" / "IPv6")


def _parse_vswif_rows(output: str, fact: str, *, family_column: bool) -> list[VswifInterface]:
    rows: list[VswifInterface] = []
    for line in output.splitlines():
        if not line.strip() or line.lstrip().startswith("Name"):
            continue
        if line[0].isspace():
            continue
        name, _, rest = line.partition(" ")
        rest = " " + rest
        family = None
        if family_column:
            m = re.search(r"\s(IPv4|IPv6)(?=\s|$)", rest)
            if not m:
                raise FactParseError(fact, f"no IP Family in row {line!r}")
            portgroup, family, tail = rest[: m.start()].strip(), m.group(1), rest[m.end() :].split()
        else:
            tokens = rest.split()
            idx = next((i for i, t in enumerate(tokens) if IPV4_RE.match(t) or t.upper() == "DHCP"), None)
            if idx is None:
                raise FactParseError(fact, f"no IP address in row {line!r}")
            portgroup, tail = " ".join(tokens[:idx]), tokens[idx:]
        # tail: ip netmask [broadcast] enabled dhcp|type — booleans anchor the end
        bools = [i for i, t in enumerate(tail) if t.lower() in ("true", "false")]
        if not bools:
            raise FactParseError(fact, f"no Enabled column in row {line!r}")
        b = bools[0]
        addr = tail[:b] + [None, None, None]
        enabled = to_bool(tail[b])
        last = tail[b + 1] if b + 1 < len(tail) else None
        if family_column:
            dhcp = None if last is None else last.upper() == "DHCP"
        else:
            dhcp = to_bool(last)
        rows.append(
            VswifInterface(
                name=name,
                portgroup=portgroup,
                ip=na(addr[0]),
                netmask=na(addr[1]),
                broadcast=na(addr[2]),
                enabled=enabled,
                dhcp=dhcp,
                family=family,
            )
        )
    return rows


class VswifList35(Fact[list[VswifInterface]]):
    """`esxcfg-vswif -l` on ESX 3.x: Name, Port Group, IP Address, Netmask, Broadcast, Enabled, DHCP."""

    name = "vswif_list_35"

    def command(self, platform: Platform) -> str | None:
        return "esxcfg-vswif -l" if platform.classic and platform.version[0] == 3 else None

    def parse(self, output: str) -> list[VswifInterface]:
        return _parse_vswif_rows(output, self.name, family_column=False)


class VswifList4(Fact[list[VswifInterface]]):
    """`esxcfg-vswif -l` on ESX 4.x: Name, Port Group/DVPort, IP Family, IP Address, Netmask, Broadcast, Enabled,
    TYPE."""

    name = "vswif_list_4"

    def command(self, platform: Platform) -> str | None:
        return "esxcfg-vswif -l" if platform.classic and platform.version[0] >= 4 else None

    def parse(self, output: str) -> list[VswifInterface]:
        return _parse_vswif_rows(output, self.name, family_column=True)


class IfcfgFile(Fact[dict[str, str]]):
    """A Red Hat ifcfg file (`KEY=value`, optional quotes, `#` comments) -> {KEY: value} in file order."""

    name = "ifcfg"

    def __init__(self, path: str = IFCFG_VSWIF0):
        self.path = path

    def command(self, platform: Platform) -> str | None:
        return sh(["cat", self.path]) if platform.classic else None

    def parse(self, output: str) -> dict[str, str]:
        out: dict[str, str] = {}
        for raw in output.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            key, eq, value = line.partition("=")
            if not eq or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key.strip()):
                raise FactParseError(self.name, f"not KEY=value: {raw!r}")
            value = value.strip()
            if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
                value = value[1:-1]
            out[key.strip()] = value
        return out


@dataclass(frozen=True)
class LinuxInterface:
    name: str
    mac: str | None
    ip: str | None
    netmask: str | None
    up: bool


class Ifconfig(Fact[list[LinuxInterface]]):
    """`ifconfig -a` in the service console (net-tools; also the newer `name: flags=` layout)."""

    name = "ifconfig"

    def command(self, platform: Platform) -> str | None:
        return "ifconfig -a" if platform.classic else None

    def parse(self, output: str) -> list[LinuxInterface]:
        blocks: list[list[str]] = []
        for line in output.splitlines():
            if not line.strip():
                continue
            if not line[0].isspace():
                blocks.append([line])
            elif blocks:
                blocks[-1].append(line)
        result = []
        for block in blocks:
            head = block[0]
            name = head.split()[0]
            name = name.removesuffix(":")
            text = "\n".join(block)
            mac = None
            m = re.search(r"(?:HWaddr|ether)\s+(\S+)", text)
            if m and MAC_RE.fullmatch(m.group(1)):
                mac = normalize_mac(m.group(1))
            ip = netmask = None
            m = re.search(r"inet (?:addr:)?(\d+\.\d+\.\d+\.\d+)", text)
            if m:
                ip = m.group(1)
            m = re.search(r"(?:Mask:|netmask )(\d+\.\d+\.\d+\.\d+)", text)
            if m:
                netmask = m.group(1)
            up = bool(re.search(r"(?:^|\s|<|,)UP(?:\s|,|>)", text))
            result.append(LinuxInterface(name=name, mac=mac, ip=ip, netmask=netmask, up=up))
        return result
