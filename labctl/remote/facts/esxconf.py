"""`/etc/vmware/esx.conf`: `/path/to/key = "value"` lines, on ESX classic and ESXi.

Keys of interest: `/system/uuid`, `/net/vmkernelnic/child[NNNN]/{mac,name,...}`, `/net/pnic/child[NNNN]/mac`,
`/adv/Net/FollowHardwareMac`. The vswif keys on ESX classic are unverified [L]: `vswif_macs` accepts any
`/net/vswif/child[NNNN]/mac` it finds.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from labctl.remote.command import sh
from labctl.remote.facts.base import Fact, FactParseError, Platform, normalize_mac

ESX_CONF = "/etc/vmware/esx.conf"

_LINE = re.compile(r'^\s*(/\S+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|(\S*))\s*$')


@dataclass(frozen=True)
class EsxConf:
    entries: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> str | None:
        return self.entries.get(key)

    @property
    def system_uuid(self) -> str | None:
        v = self.entries.get("/system/uuid")
        return v.lower() if v else None

    def children(self, prefix: str) -> dict[str, dict[str, str]]:
        """`children("/net/vmkernelnic")` -> {"child[0000]": {"mac": ..., "name": ...}}."""
        out: dict[str, dict[str, str]] = {}
        base = prefix.rstrip("/") + "/"
        for k, v in self.entries.items():
            if k.startswith(base):
                child, _, leaf = k[len(base) :].partition("/")
                if leaf:
                    out.setdefault(child, {})[leaf] = v
        return out

    def macs(self, prefix: str) -> dict[str, str]:
        """{child name (its `name` leaf when present, e.g. vmk0/vmnic0, else child[NNNN]): normalised mac}."""
        out = {}
        for child, leaves in self.children(prefix).items():
            if "mac" in leaves:
                try:
                    out[leaves.get("name", child)] = normalize_mac(leaves["mac"])
                except ValueError:
                    continue
        return out

    def key_for(self, prefix: str, name: str, leaf: str) -> str | None:
        """The esx.conf key of `leaf` for the child named `name` (e.g. the vmk0 mac key), if present."""
        for child, leaves in self.children(prefix).items():
            if leaves.get("name") == name and leaf in leaves:
                return f"{prefix.rstrip('/')}/{child}/{leaf}"
        return None


class EsxConfFile(Fact[EsxConf]):
    name = "esx_conf"

    def command(self, platform: Platform) -> str | None:
        return sh(["cat", ESX_CONF])

    def parse(self, output: str) -> EsxConf:
        entries: dict[str, str] = {}
        for raw in output.splitlines():
            if not raw.strip() or raw.lstrip().startswith("#"):
                continue
            m = _LINE.match(raw)
            if not m:
                raise FactParseError(self.name, f"not a `/key = \"value\"` line: {raw!r}")
            value = m.group(2) if m.group(2) is not None else m.group(3)
            entries[m.group(1)] = value.replace('\\"', '"')
        return EsxConf(entries)
