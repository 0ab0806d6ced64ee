"""esxcli facts (ESXi 5.0+): ip interface list (records), nic list (table), system uuid get, advanced settings.

Also `esxcfg-advcfg -g` for hosts without esxcli (ESX classic, ESXi 4.x).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from labctl.remote.command import sh
from labctl.remote.facts.base import (
    Fact,
    FactParseError,
    Platform,
    na,
    normalize_mac,
    parse_dashed_table,
    parse_records,
    to_bool,
    to_int,
)


def _has_esxcli_network(platform: Platform) -> bool:
    return not platform.classic and platform.version[0] >= 5


def _mac(value: str | None, fact: str) -> str | None:
    v = na(value)
    if v is None:
        return None
    try:
        return normalize_mac(v)
    except ValueError:
        raise FactParseError(fact, f"bad MAC address {v!r}") from None


@dataclass(frozen=True)
class IpInterface:
    name: str
    mac: str | None
    enabled: bool | None
    portset: str | None
    portgroup: str | None
    netstack: str | None  # 5.5+
    mtu: int | None


class IpInterfaceList(Fact[list[IpInterface]]):
    """`esxcli network ip interface list` — one record per vmk; fields vary by version (5.0 has no Netstack)."""

    name = "esxcli_ip_interface_list"

    def command(self, platform: Platform) -> str | None:
        return "esxcli network ip interface list" if _has_esxcli_network(platform) else None

    def parse(self, output: str) -> list[IpInterface]:
        out = []
        for key, fields in parse_records(output):
            name = fields.get("Name") or key
            if not name:
                raise FactParseError(self.name, "a record without a Name")
            out.append(
                IpInterface(
                    name=name,
                    mac=_mac(fields.get("MAC Address"), self.name),
                    enabled=to_bool(fields.get("Enabled")),
                    portset=na(fields.get("Portset")),
                    portgroup=na(fields.get("Portgroup")),
                    netstack=na(fields.get("Netstack Instance")),
                    mtu=to_int(fields.get("MTU")),
                )
            )
        return out


@dataclass(frozen=True)
class PhysicalNic:
    name: str
    mac: str | None
    driver: str | None
    admin_status: str | None
    link_status: str | None
    speed: int | None
    mtu: int | None
    description: str | None


class NicList(Fact[list[PhysicalNic]]):
    """`esxcli network nic list` — a dashed table (Name, PCI Device, Driver, ..., MAC Address, MTU, Description)."""

    name = "esxcli_nic_list"

    def command(self, platform: Platform) -> str | None:
        return "esxcli network nic list" if _has_esxcli_network(platform) else None

    def parse(self, output: str) -> list[PhysicalNic]:
        out = []
        for row in parse_dashed_table(output, self.name):
            if not row.get("Name"):
                continue
            out.append(
                PhysicalNic(
                    name=row["Name"],
                    mac=_mac(row.get("MAC Address"), self.name),
                    driver=na(row.get("Driver")),
                    admin_status=na(row.get("Admin Status")),
                    link_status=na(row.get("Link Status")),
                    speed=to_int(row.get("Speed")),
                    mtu=to_int(row.get("MTU")),
                    description=na(row.get("Description")),
                )
            )
        return out


UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class SystemUuid(Fact[str]):
    """`esxcli system uuid get` — one line, e.g. 4ff35a91-ab62-fc60-8199-0050561721df (lower-cased here)."""

    name = "esxcli_system_uuid"

    def command(self, platform: Platform) -> str | None:
        return "esxcli system uuid get" if _has_esxcli_network(platform) else None

    def parse(self, output: str) -> str:
        lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
        if len(lines) != 1 or not UUID_RE.match(lines[0]):
            raise FactParseError(self.name, f"expected one UUID line, got {output.strip()[:80]!r}")
        return lines[0].lower()


@dataclass(frozen=True)
class AdvancedOption:
    path: str
    type: str | None
    int_value: int | None
    default_int_value: int | None
    string_value: str | None
    default_string_value: str | None
    description: str | None


class AdvancedSettings(Fact[list[AdvancedOption]]):
    """`esxcli system settings advanced list [-o PATH]` — records without a key line."""

    name = "esxcli_advanced_list"

    def __init__(self, option: str | None = "/Net/FollowHardwareMac"):
        self.option = option

    def command(self, platform: Platform) -> str | None:
        if not _has_esxcli_network(platform):
            return None
        argv = ["esxcli", "system", "settings", "advanced", "list"]
        if self.option:
            argv += ["-o", self.option]
        return sh(argv)

    def parse(self, output: str) -> list[AdvancedOption]:
        out = []
        for _key, f in parse_records(output):
            if "Path" not in f:
                raise FactParseError(self.name, "a record without a Path")
            out.append(
                AdvancedOption(
                    path=f["Path"],
                    type=na(f.get("Type")),
                    int_value=to_int(f.get("Int Value")),
                    default_int_value=to_int(f.get("Default Int Value")),
                    string_value=f.get("String Value") or None,
                    default_string_value=f.get("Default String Value") or None,
                    description=na(f.get("Description")),
                )
            )
        return out


class AdvcfgGet(Fact[int | str]):
    """`esxcfg-advcfg -g PATH` -> "Value of FollowHardwareMac is 1" (int when numeric)."""

    name = "esxcfg_advcfg_get"

    def __init__(self, option: str = "/Net/FollowHardwareMac"):
        self.option = option

    def command(self, platform: Platform) -> str | None:
        return sh(["esxcfg-advcfg", "-g", self.option])

    def parse(self, output: str) -> int | str:
        m = re.search(r"Value of (\S+) is (.*)$", output.strip(), re.MULTILINE)
        if not m:
            raise FactParseError(self.name, f"unexpected output {output.strip()[:80]!r}")
        value = m.group(2).strip()
        return int(value) if re.fullmatch(r"-?\d+", value) else value
