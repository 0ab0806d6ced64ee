"""Plain, typed descriptions of the hosts to reach, and the adapter from a Topology onto them."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from labctl.errors import UsageError
from labctl.remote.facts.base import Platform

if TYPE_CHECKING:
    from labctl.topology import EsxHost, Topology


@dataclass(frozen=True)
class JumpSpec:
    host: str
    user: str | None = None
    port: int = 22

    @classmethod
    def parse(cls, text: str) -> JumpSpec:
        """"[user@]host[:port]" (ProxyJump syntax, one hop; IPv6 as [addr]:port)."""
        m = re.fullmatch(r"(?:([^@\s]+)@)?(\[[^\]]+\]|[^@:\s]+)(?::(\d+))?", text.strip())
        if not m:
            raise UsageError(f"ssh jump {text!r} is not [user@]host[:port]")
        host = m.group(2).strip("[]")
        return cls(host=host, user=m.group(1), port=int(m.group(3) or 22))

    def __str__(self) -> str:
        return (f"{self.user}@" if self.user else "") + self.host + (f":{self.port}" if self.port != 22 else "")


@dataclass(frozen=True)
class HostTarget:
    """One host to reach: its lab name, the address labctl dials (access_ip else management ip), how to log in."""

    name: str
    address: str
    platform: Platform
    user: str = "root"
    port: int = 22
    password_env: str | None = None
    key_file: str | None = None
    jump: JumpSpec | None = None
    management: str = "vmk0"  # vswif0 on ESX classic


def target_from_host(host: EsxHost) -> HostTarget:
    v = host.version_info
    platform = Platform(host.flavor, (v.major, v.minor, v.update))
    return HostTarget(
        name=host.name,
        address=host.address,
        platform=platform,
        user=host.ssh.user,
        port=host.ssh.port,
        password_env=host.ssh.password_env,
        key_file=host.ssh.key_file,
        jump=JumpSpec.parse(host.ssh.jump) if host.ssh.jump else None,
        management=host.management_name,
    )


def targets_from_topology(topology: Topology, names: list[str] | None = None) -> list[HostTarget]:
    """Targets in topology order; `names` selects hosts (unknown names are a usage error listing the known ones)."""
    hosts = list(topology.esx_hosts)
    if names:
        known = {h.name for h in hosts}
        unknown = [n for n in names if n not in known]
        if unknown:
            from labctl.errors import did_you_mean

            hint = next((h for h in (did_you_mean(n, known) for n in unknown) if h), "")
            raise UsageError(f"unknown host(s): {', '.join(unknown)}" + (f"; {hint}" if hint else ""),
                             hint=f"hosts in this lab: {', '.join(sorted(known))}")
        hosts = [h for h in hosts if h.name in names]
    return [target_from_host(h) for h in hosts]


# ESX classic's service console runs OpenSSH 4.x and ESXi 4.x runs dropbear: SHA-1 key exchange, ssh-rsa host keys
# and ssh-rsa (SHA-1) user-key signatures only. OpenSSH 8.8+ (and so Ansible's ssh connection) disables all three by
# default and stops with "no matching key exchange method found", then "no matching host key type found", then
# "Permission denied (publickey,...)". labctl's own client (paramiko 3.x) still speaks them; other tools need these.
LEGACY_OPENSSH_OPTIONS = (
    "KexAlgorithms=+diffie-hellman-group14-sha1",
    "HostKeyAlgorithms=+ssh-rsa",
    "PubkeyAcceptedAlgorithms=+ssh-rsa",
)


def needs_legacy_ssh(flavor: str, version: tuple[int, ...]) -> bool:
    """True for hosts whose sshd speaks only SHA-1 key exchange and ssh-rsa: ESX classic (3.x/4.x) and ESXi before
    5.0. (ESX 9.x is called ESX again but is ESXi underneath: its sshd is current.)"""
    return flavor in ("esx", "esxi") and tuple(version[:1]) < (5,)


def openssh_options(flavor: str, version: tuple[int, ...] | str) -> tuple[str, ...]:
    """The `-o` values a current OpenSSH client needs for this host (empty when it needs none)."""
    if isinstance(version, str):
        try:
            version = Platform.parse(flavor, version).version
        except ValueError:
            return ()
    return LEGACY_OPENSSH_OPTIONS if needs_legacy_ssh(flavor, version) else ()
