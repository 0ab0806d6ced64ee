"""HA (dasConfig) isolation-address settings: which keys, and the minimal difference to send. Pure.

Keys (shared/reference/esx-hosts.md section 5):
- FDM (vSphere 5.0+): das.isolationaddress0 .. das.isolationaddress9.
- Legacy AAM (VirtualCenter 2.x - vSphere 4.1): das.isolationaddress, then das.isolationaddress2 .. 9
  (some sources say 1-10 [M]: we write 2..9 and treat any das.isolationaddressN as ours when removing).
- das.usedefaultisolationaddress = false when the management segment has no gateway (the default isolation
  address is the gateway). AAM honoured the same key (VC 2.5 era KB) [M].
An option is removed by sending its key with an empty value (modify=True) [M].
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Mapping, Sequence

from labctl.errors import UsageError

ISOLATION_KEY = re.compile(r"^das\.isolationaddress\d*$", re.IGNORECASE)
USE_DEFAULT_KEY = "das.usedefaultisolationaddress"
FDM_MAX = 10
AAM_MAX = 9


def parse_api_version(text: str) -> tuple[int, ...]:
    """'4.1' -> (4, 1); '6.7.3' -> (6, 7, 3); unparsable parts stop the tuple (tolerant: '8.0.2.0' fine)."""
    out: list[int] = []
    for part in str(text).split("."):
        m = re.match(r"\d+", part)
        if not m:
            break
        out.append(int(m.group()))
    return tuple(out)


def uses_legacy_keys(api_version: str) -> bool:
    """True for vCenters of API 4.1 or older (AAM agents), False for FDM (5.0+) and unknown versions."""
    v = parse_api_version(api_version)
    return bool(v) and v[:2] <= (4, 1)


def desired_options(addresses: Sequence[str], gateway_less: bool, legacy: bool) -> dict[str, str]:
    """The das.* options labctl manages for these isolation addresses, in order."""
    limit = AAM_MAX if legacy else FDM_MAX
    if len(addresses) > limit:
        raise UsageError(
            f"{len(addresses)} isolation addresses given; {'AAM (vCenter <= 4.1)' if legacy else 'FDM'} "
            f"HA takes at most {limit}"
        )
    out: dict[str, str] = {}
    for i, addr in enumerate(addresses):
        if legacy:
            key = "das.isolationaddress" if i == 0 else f"das.isolationaddress{i + 1}"
        else:
            key = f"das.isolationaddress{i}"
        out[key] = addr
    if gateway_less:
        out[USE_DEFAULT_KEY] = "false"
    return out


def is_managed(key: str) -> bool:
    return bool(ISOLATION_KEY.match(key)) or key.lower() == USE_DEFAULT_KEY


@dataclass(frozen=True)
class DasDiff:
    """The difference between a cluster's dasConfig and the wanted one."""

    enable: bool | None = None  # None: leave dasConfig.enabled as it is
    set: dict[str, str] = field(default_factory=dict)  # key -> new value
    remove: dict[str, str] = field(default_factory=dict)  # key -> current value
    previous: dict[str, str] = field(default_factory=dict)  # current value of keys in `set`, when there was one

    @property
    def empty(self) -> bool:
        return self.enable is None and not self.set and not self.remove

    def describe(self) -> list[str]:
        out = []
        if self.enable is not None:
            out.append("enable HA" if self.enable else "disable HA")
        for k, v in self.set.items():
            was = f" (was {self.previous[k]})" if k in self.previous else ""
            out.append(f"set {k} = {v}{was}")
        for k, v in self.remove.items():
            out.append(f"remove {k} (was {v})")
        return out

    def option_updates(self) -> list[tuple[str, str]]:
        """(key, value) pairs for ReconfigureComputeResource_Task(modify=True); '' removes a key."""
        return [*self.set.items(), *((k, "") for k in self.remove)]


def diff(current_enabled: bool | None, current: Mapping[str, str], ha_enabled: bool,
         wanted: Mapping[str, str]) -> DasDiff:
    """Only what differs: changed or new keys, stale managed keys (removed), and the enabled flag."""
    lower = {k.lower(): k for k in current}
    to_set: dict[str, str] = {}
    previous: dict[str, str] = {}
    for key, value in wanted.items():
        have_key = lower.get(key.lower())
        if have_key is None or str(current[have_key]) != value:
            to_set[key] = value
            if have_key is not None:
                previous[key] = str(current[have_key])
    wanted_lower = {k.lower() for k in wanted}
    remove = {k: str(v) for k, v in current.items() if is_managed(k) and k.lower() not in wanted_lower}
    enable = None if bool(current_enabled) == ha_enabled else ha_enabled
    return DasDiff(enable=enable, set=to_set, remove=remove, previous=previous)
