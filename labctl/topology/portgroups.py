"""A lab's networks on a vSphere target, as portgroups (pure: names, ownership, the switch policy and why).

A `lan-segment` becomes a portgroup labctl creates and owns: on a standard vSwitch without uplinks on the target
host (the segment stays as private as a Workstation LAN segment), or on the user's distributed switch
(`target.dvswitch`). A network named in `target.portgroups` is the user's existing portgroup, used as it is and
never changed or removed. `host-only`, `nat` and `bridged` networks exist on vSphere only that way (validation
refuses them otherwise).

Nested ESX needs frames for MACs the outer switch never assigned (its VMkernel ports, its own VMs):
- `mac-learning`: the distributed portgroup's `macManagementPolicy` (vim.dvs.VmwareDistributedVirtualSwitch.
  MacManagementPolicy / MacLearningPolicy, vSphere API 6.7; the switch must be VDS 6.6.0 or later);
- `promiscuous`: the portgroup's security policy (vim.host.NetworkPolicy.SecurityPolicy on a standard vSwitch,
  the DVS securityPolicy otherwise) with Promiscuous, Forged transmits and MAC changes = Accept;
- `auto` picks mac-learning where the switch supports it, else promiscuous, and says which and why.

Names: `labctl-<lab>-<network>` for portgroups, `labctl-<lab>` for the vSwitch, shortened with a stable hash
suffix to stay within vSphere's limits (a vSwitch name is at most 32 characters).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labctl.topology.model import Topology

PREFIX = "labctl-"
VSWITCH_MAX = 32  # HostVirtualSwitch.name: "Maximum length is 32 characters" (vSphere API reference)
PORTGROUP_MAX = 59  # labctl's own bound for portgroup names (well within what ESXi and vCenter accept)
MAC_LEARNING_DVS = (6, 6, 0)  # VDS version that has MAC learning (with vCenter/ESXi 6.7)
MAC_LEARNING_API = (6, 7)
MAC_LEARNING_LIMIT = 4096  # the per-port maximum, also vSphere's default


def _bounded(name: str, limit: int) -> str:
    if len(name) <= limit:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:6]
    return f"{name[:limit - 7]}-{digest}"


def vswitch_name(lab: str) -> str:
    """The standard vSwitch labctl creates (without uplinks) for a lab's private segments."""
    return _bounded(f"{PREFIX}{lab}", VSWITCH_MAX)


def portgroup_name(lab: str, network: str) -> str:
    """The portgroup labctl creates for a lab network (stable: the same lab and network give the same name)."""
    return _bounded(f"{PREFIX}{lab}-{network}", PORTGROUP_MAX)


@dataclass(frozen=True)
class Portgroup:
    network: str  # the lab network
    name: str  # the portgroup's name on the target
    owned: bool  # labctl creates (and removes) it; False: the user's existing portgroup, used as is
    vlan: int | None = None  # on a distributed switch


def lab_portgroups(topo: Topology) -> tuple[Portgroup, ...]:
    """Every network of the lab as the portgroup its vNICs connect to (empty without a vSphere target)."""
    t = topo.target
    if t is None:
        return ()
    out = []
    for n in topo.networks:
        existing = t.existing_portgroup(n.name)
        if existing:
            out.append(Portgroup(n.name, existing, owned=False))
        else:
            out.append(Portgroup(n.name, portgroup_name(topo.lab, n.name), owned=True, vlan=t.vlan(n.name)))
    return tuple(out)


def portgroup_for(topo: Topology, network: str) -> str:
    """The portgroup a vNIC on this lab network connects to (what a VM's backing names)."""
    for pg in lab_portgroups(topo):
        if pg.network == network:
            return pg.name
    raise KeyError(network)


@dataclass(frozen=True)
class SwitchFacts:
    """What the target says about where the lab's portgroups go (read by the vSphere layer)."""

    api_type: str  # HostAgent (a standalone ESXi host) | VirtualCenter
    api_version: str  # about.apiVersion, e.g. 8.0.2.0
    dvs_version: str | None = None  # productInfo.version of target.dvswitch, when there is one


@dataclass(frozen=True)
class PolicyChoice:
    mode: str  # mac-learning | promiscuous
    switch: str  # standard | distributed
    why: str  # one sentence for the run's notes


def _version(text: str | None) -> tuple[int, ...]:
    out = []
    for part in (text or "").split("."):
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


class PolicyError(ValueError):
    """network_mode asks for what the target cannot do (message says what and the way out)."""


def choose_policy(network_mode: str, facts: SwitchFacts, *, dvswitch: str | None) -> PolicyChoice:
    """mac-learning or promiscuous for the lab's owned portgroups, and why (raises PolicyError when
    network_mode: mac-learning cannot be had)."""
    if dvswitch is None:
        if network_mode == "mac-learning":
            raise PolicyError("MAC learning is a distributed switch policy (vSphere 6.7+, VDS 6.6+); the lab's "
                              "segments are on a standard vSwitch: set target.dvswitch, or network_mode: promiscuous")
        return PolicyChoice("promiscuous", "standard",
                            f"promiscuous + forged transmits + MAC changes (a standard vSwitch has no MAC learning; "
                            f"{'chosen by network_mode: auto' if network_mode == 'auto' else 'as asked'})")
    api = _version(facts.api_version)[:2]
    dvs = _version(facts.dvs_version)
    able = api >= MAC_LEARNING_API and dvs >= MAC_LEARNING_DVS
    have = f"vCenter API {facts.api_version}, distributed switch {dvswitch} version {facts.dvs_version or 'unknown'}"
    if network_mode == "promiscuous":
        return PolicyChoice("promiscuous", "distributed", f"promiscuous + forged transmits + MAC changes (as asked; "
                                                          f"{have})")
    if able:
        return PolicyChoice("mac-learning", "distributed",
                            f"MAC learning (+ forged transmits, MAC changes; {have} supports it"
                            f"{', chosen by network_mode: auto' if network_mode == 'auto' else ''})")
    if network_mode == "mac-learning":
        raise PolicyError(f"MAC learning needs vSphere 6.7+ and a distributed switch of version 6.6.0 or later; the "
                          f"target has {have}: upgrade the switch, or set network_mode: promiscuous")
    return PolicyChoice("promiscuous", "distributed",
                        f"promiscuous + forged transmits + MAC changes (chosen by network_mode: auto: MAC learning "
                        f"needs vSphere 6.7+ and VDS 6.6.0+; {have})")
