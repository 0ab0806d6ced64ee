"""Deterministic, stable addressing: vNIC MACs, LAN-segment pvnIDs and automatic IPs.

Every derived value is a hash of stable names (lab, VM, NIC index / segment / interface), so the same YAML always
yields the same addresses and adding a host does not move the others. Collisions are resolved by probing; the
keys are processed in sorted order, so a collision goes to the lexicographically smaller key (a new host can only
displace an existing one if their hashes collide — about n in 4 million for MACs).
"""

from __future__ import annotations

import hashlib
import ipaddress

STATIC_LOW = 0x005056000000
STATIC_HIGH = 0x0050563FFFFF
STATIC_SPAN = STATIC_HIGH - STATIC_LOW + 1  # 2**22


def _h(*parts: object) -> bytes:
    return hashlib.sha256("\0".join(str(p) for p in parts).encode()).digest()


def mac_to_int(mac: str) -> int:
    return int(mac.replace(":", "").replace("-", ""), 16)


def int_to_mac(n: int) -> str:
    h = f"{n:012x}"
    return ":".join(h[i:i + 2] for i in range(0, 12, 2))


def normalize_mac(mac: str) -> str:
    return int_to_mac(mac_to_int(mac))


def is_static_mac(mac: str) -> bool:
    return STATIC_LOW <= mac_to_int(mac) <= STATIC_HIGH


def allocate_macs(lab: str, keys: list[str], reserved: set[str] | frozenset[str] = frozenset()) -> dict[str, str]:
    """A static MAC per key ('vm/index'), unique among themselves and versus `reserved`."""
    taken = {normalize_mac(m) for m in reserved}
    out: dict[str, str] = {}
    for key in sorted(keys):
        i = 0
        while True:
            n = STATIC_LOW + int.from_bytes(_h("mac", lab, key, i)[:4], "big") % STATIC_SPAN
            mac = int_to_mac(n)
            # skip 00:50:56:00:00:00 and ...:3f:ff:ff: valid but they look like placeholders
            if mac not in taken and n not in (STATIC_LOW, STATIC_HIGH):
                break
            i += 1
        taken.add(mac)
        out[key] = mac
    return out


def pvn_id(lab: str, segment: str) -> str:
    """A LAN segment ID in Workstation's form: '52 8c 98 ed 46 f0 ae 00-28 76 d2 99 3a 4d 1c 60'."""
    b = _h("pvn", lab, segment)[:16]
    left = " ".join(f"{x:02x}" for x in b[:8])
    right = " ".join(f"{x:02x}" for x in b[8:])
    return f"{left}-{right}"


def allocate_ips(lab: str, subnet: str, keys: list[str], taken: set[str]) -> dict[str, str]:
    """A stable free address in subnet for each key (never network, broadcast or a taken address)."""
    net = ipaddress.ip_network(subnet, strict=False)
    usable = net.num_addresses - 2 if net.prefixlen < 31 else net.num_addresses
    first = int(net.network_address) + (1 if net.prefixlen < 31 else 0)
    used = {int(ipaddress.ip_address(a)) for a in taken if ipaddress.ip_address(a) in net}
    out: dict[str, str] = {}
    if usable <= 0:
        return out
    for key in sorted(keys):
        if len(used) >= usable:
            break
        # prefer the upper half: low addresses are where people put hand-assigned ones
        start = int.from_bytes(_h("ip", lab, subnet, key)[:4], "big") % usable
        for step in range(usable):
            n = first + (start + step) % usable
            if n not in used:
                used.add(n)
                out[key] = str(ipaddress.ip_address(n))
                break
    return out


def generated_mac(seed: str, prefix: str = "00:50:56:40") -> str:
    """A MAC in a given 4-byte prefix, derived from seed (used for simulated vswif/vmk MACs)."""
    b = _h("gen", seed)
    p = prefix.split(":")
    need = 6 - len(p)
    return ":".join(p + [f"{x:02x}" for x in b[:need]])
