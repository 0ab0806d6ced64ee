"""The networks stage on a vSphere target: the lab's portgroups, read first, created or corrected only where they
differ, removed only when labctl made them.

    state = read_state(client, topology, state_dir)      # the target's switches and portgroups, and labctl's record
    plan = plan_networks(topology, state)                 # Calls (method, object, arguments): what `plan` prints
    results = apply(client, state, plan, state_dir)       # one call at a time; the record is written before each
    removal = plan_removal(topology, state)               # `destroy`: only what the record says labctl created

Where the portgroups go (labctl.topology.portgroups has the names and the policy choice):
- a standalone ESXi host, or a vCenter without `dvswitch`: a standard vSwitch `labctl-<lab>` with no uplinks
  (AddVirtualSwitch without a bridge) on the target host, one portgroup per lab segment on it. On a vCenter the host
  is `esx_host`, else the first connected host of `cluster` by name: the lab's VMs all run there (a segment on an
  uplink-less vSwitch exists on one host only), and the record names it so the VM backend places them there.
- a vCenter with `dvswitch`: one distributed portgroup per segment on that existing switch (with its VLAN).

labctl's record is `<state dir>/vsphere-target.json`, written (atomically, before each create) per target. A
portgroup or vSwitch with labctl's name that the record does not list is refused, never adopted: it could be
someone else's. vcsim (the simulator the tests use) has no UpdatePortGroup; labctl still calls it for a standard
portgroup whose policy drifted, and a target that lacks it makes that a failure that says so (never a silent skip).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.errors import LabctlError, UsageError
from labctl.topology.portgroups import (
    MAC_LEARNING_LIMIT, PolicyChoice, PolicyError, SwitchFacts, choose_policy, lab_portgroups, vswitch_name,
)

if TYPE_CHECKING:
    from labctl.topology.model import Topology, VsphereTarget
    from labctl.vsphere.client import VSphereClient

STATE_FILE = "vsphere-target.json"
VSWITCH_PORTS = 128
DV_PORTS = 8  # per portgroup, auto-expanding


class TargetError(LabctlError):
    """The target lacks what the topology names, or holds something labctl must not touch."""


# -- plain state -----------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Policy:
    """A portgroup's switch policy as read back (None: not set / inherited)."""

    promiscuous: bool | None = None
    forged_transmits: bool | None = None
    mac_changes: bool | None = None
    mac_learning: bool | None = None

    def describe(self) -> str:
        def w(v: bool | None) -> str:
            return "unset" if v is None else ("accept" if v else "reject")

        out = f"promiscuous {w(self.promiscuous)}, forged transmits {w(self.forged_transmits)}, MAC changes " \
              f"{w(self.mac_changes)}"
        return out + ("" if self.mac_learning is None else f", MAC learning {'on' if self.mac_learning else 'off'}")


PROMISCUOUS = Policy(True, True, True)
MAC_LEARNING = Policy(False, True, True, True)


@dataclass(frozen=True)
class PortgroupState:
    name: str
    switch: str  # the vSwitch or distributed switch it is on
    vlan: int
    policy: Policy


@dataclass
class Record:
    """What labctl created on this target for this lab (the only things it may change or remove)."""

    key: str  # the target: topology host (+ datacenter) — also with --sim, whose URL changes per run
    host: str | None = None  # the physical host the lab's standard vSwitch is on (where the VMs must run)
    vswitches: list[str] = field(default_factory=list)
    portgroups: list[str] = field(default_factory=list)
    dv_portgroups: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"host": self.host, "vswitches": sorted(self.vswitches), "portgroups": sorted(self.portgroups),
                "dv_portgroups": sorted(self.dv_portgroups)}


@dataclass
class NetworkState:
    api_type: str  # HostAgent | VirtualCenter
    api_version: str
    datacenter: str
    host_name: str | None  # the physical host of the standard vSwitch (None with a dvswitch)
    vswitches: dict[str, tuple[str, ...]]  # name -> its uplinks (pnics), on host_name
    portgroups: dict[str, PortgroupState]  # standard portgroups on host_name
    dvs_name: str | None
    dvs_version: str | None
    dv_portgroups: dict[str, PortgroupState]
    networks: set[str]  # every network name visible to the lab's VMs (existing portgroups are looked up here)
    record: Record
    _objects: dict[str, Any] = field(default_factory=dict, repr=False)  # pyVmomi objects for apply

    @property
    def facts(self) -> SwitchFacts:
        return SwitchFacts(self.api_type, self.api_version, self.dvs_version)


@dataclass(frozen=True)
class Call:
    """One vSphere call: what `plan` lists and `up` makes."""

    method: str  # e.g. HostNetworkSystem.AddPortGroup
    obj: str  # the object it is made on (host name, switch or portgroup name)
    args: tuple[tuple[str, Any], ...]
    why: str

    @property
    def display(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.args)
        return f"{self.method}[{self.obj}]({args})"


@dataclass
class NetworkPlan:
    calls: list[Call] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    failures: list[tuple[str, str, str | None]] = field(default_factory=list)  # (target, message, hint)
    choice: PolicyChoice | None = None


# -- the record ------------------------------------------------------------------------------------------------
def record_key(target: VsphereTarget) -> str:
    return f"{target.host}/{target.datacenter or ''}"


def load_record(state_dir: Path, target: VsphereTarget) -> Record:
    key = record_key(target)
    try:
        data = json.loads((state_dir / STATE_FILE).read_text())
    except FileNotFoundError:
        return Record(key)
    except (OSError, ValueError) as e:
        raise TargetError(f"cannot read labctl's record of the vSphere target: {state_dir / STATE_FILE}: {e}",
                          hint="it lists what labctl created there; restore it, or remove what labctl made by hand")
    entry = (data.get("targets") or {}).get(key) or {}
    return Record(key, entry.get("host"), list(entry.get("vswitches", [])), list(entry.get("portgroups", [])),
                  list(entry.get("dv_portgroups", [])))


def save_record(state_dir: Path, record: Record) -> None:
    """Atomically (temp file + rename, 0600) replace this target's entry in the record."""
    path = state_dir / STATE_FILE
    try:
        data = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        data = {}
    targets = data.setdefault("targets", {})
    entry = record.to_json()
    if any(entry[k] for k in ("vswitches", "portgroups", "dv_portgroups")):
        targets[record.key] = entry
    else:
        targets.pop(record.key, None)
    state_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


# -- reading the target ----------------------------------------------------------------------------------------
def _children(client: VSphereClient, root: Any, types: list[Any]) -> list[Any]:
    view = client.content.viewManager.CreateContainerView(root, types, True)
    try:
        return list(view.view)
    finally:
        view.DestroyView()


def _named(objs: list[Any], name: str) -> Any | None:
    for o in objs:
        if o.name == name:
            return o
    return None


def _std_policy(p: Any) -> Policy:
    sec = getattr(p, "security", None) if p is not None else None
    if sec is None:
        return Policy()
    return Policy(sec.allowPromiscuous, sec.forgedTransmits, sec.macChanges)


def _dv_policy(cfg: Any) -> Policy:
    port = getattr(cfg, "defaultPortConfig", None)
    mm = getattr(port, "macManagementPolicy", None)
    if mm is not None:
        ml = getattr(mm, "macLearningPolicy", None)
        return Policy(mm.allowPromiscuous, mm.forgedTransmits, mm.macChanges, bool(ml and ml.enabled))
    sec = getattr(port, "securityPolicy", None)
    if sec is not None:
        def v(b: Any) -> bool | None:
            return None if b is None else b.value

        return Policy(v(sec.allowPromiscuous), v(sec.forgedTransmits), v(sec.macChanges))
    return Policy()


def _dv_vlan(cfg: Any) -> int:
    vlan = getattr(getattr(cfg, "defaultPortConfig", None), "vlan", None)
    v = getattr(vlan, "vlanId", 0)
    return v if isinstance(v, int) else 0


def read_state(client: VSphereClient, topo: Topology, state_dir: Path) -> NetworkState:
    """The target's switches and portgroups where the lab's go, and labctl's record (reads only)."""
    from pyVmomi import vim

    t = topo.target
    assert t is not None
    about = client.content.about
    api_type = str(about.apiType)
    record = load_record(state_dir, t)
    esx = api_type == "HostAgent"
    if esx:
        for key in ("cluster", "dvswitch"):
            if getattr(t, key):
                raise UsageError(f"target.{key}: {t.host} is a standalone ESXi host ({about.fullName}); {key} is a "
                                 "vCenter key", hint=f"remove target.{key}, or point target.host at the vCenter")
    dcs = _children(client, client.content.rootFolder, [vim.Datacenter])
    if t.datacenter and not (esx and t.datacenter == "ha-datacenter"):
        if esx:
            raise UsageError(f"target.datacenter: {t.host} is a standalone ESXi host; it has one datacenter "
                             "(ha-datacenter)", hint="remove target.datacenter")
        dc = _named(dcs, t.datacenter)
        if dc is None:
            raise TargetError(f"target.datacenter: no datacenter {t.datacenter!r} on {t.host} (it has: "
                              f"{', '.join(sorted(d.name for d in dcs)) or 'none'})")
    elif len(dcs) == 1:
        dc = dcs[0]
    else:
        raise TargetError(f"{t.host} has {len(dcs)} datacenters ({', '.join(sorted(d.name for d in dcs))}); name one",
                          hint="set target.datacenter")
    objects: dict[str, Any] = {"datacenter": dc}
    networks = {n.name for n in _children(client, dc.networkFolder, [vim.Network])}
    host = None
    dvs = None
    if t.dvswitch:
        dvs = _named(_children(client, dc.networkFolder, [vim.DistributedVirtualSwitch]), t.dvswitch)
        if dvs is None:
            raise TargetError(f"target.dvswitch: no distributed switch {t.dvswitch!r} in datacenter {dc.name}",
                              hint="name an existing distributed switch (labctl creates portgroups on it, never "
                                   "the switch), or drop dvswitch for a standard vSwitch without uplinks")
        objects["dvs"] = dvs
    else:
        host = _placement_host(client, t, dc, record, esx)
        objects["host"] = host
        objects["network_system"] = host.configManager.networkSystem
    vswitches: dict[str, tuple[str, ...]] = {}
    portgroups: dict[str, PortgroupState] = {}
    if host is not None:
        info = objects["network_system"].networkInfo
        for vs in info.vswitch or []:
            vswitches[vs.name] = tuple(vs.pnic or ())
        for pg in info.portgroup or []:
            spec = pg.spec
            portgroups[spec.name] = PortgroupState(spec.name, spec.vswitchName, spec.vlanId or 0,
                                                   _std_policy(spec.policy))
    dv_portgroups: dict[str, PortgroupState] = {}
    dvs_version = None
    if dvs is not None:
        dvs_version = getattr(getattr(dvs.summary, "productInfo", None), "version", None)
        for pg in dvs.portgroup or []:
            cfg = pg.config
            dv_portgroups[cfg.name] = PortgroupState(cfg.name, dvs.name, _dv_vlan(cfg), _dv_policy(cfg))
            objects[f"dvpg:{cfg.name}"] = pg
    return NetworkState(api_type=api_type, api_version=str(about.apiVersion), datacenter=dc.name,
                        host_name=host.name if host is not None else None, vswitches=vswitches, portgroups=portgroups,
                        dvs_name=dvs.name if dvs is not None else None, dvs_version=dvs_version,
                        dv_portgroups=dv_portgroups, networks=networks, record=record, _objects=objects)


def _placement_host(client: VSphereClient, t: VsphereTarget, dc: Any, record: Record, esx: bool) -> Any:
    from pyVmomi import vim

    hosts = _children(client, dc.hostFolder, [vim.HostSystem])
    if esx:
        return hosts[0]
    scope = hosts
    if t.cluster:
        cl = _named(_children(client, dc.hostFolder, [vim.ClusterComputeResource]), t.cluster)
        if cl is None:
            raise TargetError(f"target.cluster: no cluster {t.cluster!r} in datacenter {dc.name}")
        scope = list(cl.host or [])
    if t.esx_host:
        h = _named(scope, t.esx_host)
        if h is None:
            where = f"cluster {t.cluster}" if t.cluster else f"datacenter {dc.name}"
            raise TargetError(f"target.esx_host: no host {t.esx_host!r} in {where} (there: "
                              f"{', '.join(sorted(x.name for x in scope)) or 'none'})")
        return h
    if record.host:  # the host chosen before keeps the lab (its segments exist there only)
        h = _named(scope, record.host)
        if h is not None:
            return h
    connected = sorted((h for h in scope if str(h.runtime.connectionState) == "connected"), key=lambda h: h.name)
    if not connected:
        raise TargetError(f"no connected host to put the lab's private segments on in "
                          f"{'cluster ' + t.cluster if t.cluster else 'datacenter ' + dc.name}",
                          hint="name one with target.esx_host")
    return connected[0]


# -- planning (pure over NetworkState) ---------------------------------------------------------------------------
def _want(choice: PolicyChoice) -> Policy:
    return MAC_LEARNING if choice.mode == "mac-learning" else PROMISCUOUS


def _same(cur: Policy, want: Policy) -> bool:
    return (cur.promiscuous, cur.forged_transmits, cur.mac_changes, bool(cur.mac_learning)) == (
        want.promiscuous, want.forged_transmits, want.mac_changes, bool(want.mac_learning))


def plan_networks(topo: Topology, state: NetworkState) -> NetworkPlan:
    """The calls that bring the target's portgroups to the lab's, and what is wrong that no call may fix."""
    t = topo.target
    assert t is not None
    out = NetworkPlan()
    pgs = lab_portgroups(topo)
    for pg in pgs:
        if not pg.owned and pg.name not in state.networks:
            out.failures.append((pg.network, f"portgroup {pg.name!r} (target.portgroups.{pg.network}) does not "
                                             f"exist in datacenter {state.datacenter}",
                                 "create it on the target, or map the network to an existing portgroup"))
    owned = [pg for pg in pgs if pg.owned]
    if not owned:
        return out
    try:
        out.choice = choose_policy(t.network_mode, state.facts, dvswitch=t.dvswitch)
    except PolicyError as e:
        out.failures.append(("networks", str(e), None))
        return out
    out.notes.append(f"lab segments: {out.choice.why}")
    want = _want(out.choice)
    if state.dvs_name is None:
        _plan_standard(topo, state, owned, want, out)
    else:
        _plan_distributed(state, owned, want, out)
    return out


def _ownership(pg: Any, cur: PortgroupState | None, recorded: list[str], where: str | None,
               state: NetworkState) -> tuple[str, str, str | None] | None:
    """Why labctl must not create or change this portgroup (a same-named object it did not make), or None."""
    if cur is None:
        if pg.name in state.networks:  # elsewhere in the datacenter: another host's, or another switch's
            return (pg.network, f"a network named {pg.name!r} already exists in datacenter {state.datacenter} (not "
                                f"on {where})", "rename or remove it")
        return None
    if pg.name not in recorded:
        return (pg.network, f"{where} already has a portgroup {pg.name!r} that labctl did not create for this lab "
                            f"(not in {STATE_FILE})",
                "rename or remove it on the target, or map the network to it (target.portgroups)")
    return None


def _plan_standard(topo: Topology, state: NetworkState, owned: list, want: Policy, out: NetworkPlan) -> None:
    host = state.host_name or "host"
    vs = vswitch_name(topo.lab)
    rec = state.record
    if state.api_type != "HostAgent":
        out.notes.append(f"the lab's segments are on an uplink-less vSwitch of {host}: its VMs run on that host")
    if vs in state.vswitches:
        if vs not in rec.vswitches:
            out.failures.append((host, f"{host} already has a vSwitch {vs!r} that labctl did not create for this lab "
                                       f"(not in {STATE_FILE})",
                                 "rename or remove it on the target, or restore labctl's record of this lab"))
            return
        if state.vswitches[vs]:
            out.failures.append((host, f"vSwitch {vs!r} on {host} has uplinks ({', '.join(state.vswitches[vs])}): "
                                       "the lab's segments would leave the host",
                                 "remove its uplinks on the target (labctl created it without any)"))
            return
    else:
        out.calls.append(Call("HostNetworkSystem.AddVirtualSwitch", host,
                              (("vswitchName", vs), ("numPorts", VSWITCH_PORTS), ("bridge", None)),
                              f"a standard vSwitch without uplinks for {topo.lab}'s private segments"))
    for pg in owned:
        cur = state.portgroups.get(pg.name)
        args = (("name", pg.name), ("vswitchName", vs), ("vlanId", 0), ("security", want.describe()))
        problem = _ownership(pg, cur, rec.portgroups, host, state)
        if problem:
            out.failures.append(problem)
            continue
        if cur is None:
            out.calls.append(Call("HostNetworkSystem.AddPortGroup", host, args, f"network {pg.network}"))
            continue
        if cur.switch != vs:
            out.failures.append((pg.network, f"portgroup {pg.name!r} is on vSwitch {cur.switch!r}, not labctl's "
                                             f"{vs!r}", "remove it on the target; labctl recreates it"))
            continue
        if not _same(cur.policy, want) or cur.vlan != 0:
            out.calls.append(Call("HostNetworkSystem.UpdatePortGroup", host, (("pgName", pg.name),) + args,
                                  f"network {pg.network}: {cur.policy.describe()} -> {want.describe()}"))


def _plan_distributed(state: NetworkState, owned: list, want: Policy, out: NetworkPlan) -> None:
    dvs = state.dvs_name
    rec = state.record
    for pg in owned:
        cur = state.dv_portgroups.get(pg.name)
        args = (("name", pg.name), ("type", "earlyBinding"), ("numPorts", DV_PORTS), ("autoExpand", True),
                ("vlanId", pg.vlan or 0), ("policy", want.describe()))
        problem = _ownership(pg, cur, rec.dv_portgroups, dvs, state)
        if problem:
            out.failures.append(problem)
            continue
        if cur is None:
            out.calls.append(Call("DistributedVirtualSwitch.AddDVPortgroup_Task", dvs, args, f"network {pg.network}"))
            continue
        if not _same(cur.policy, want) or cur.vlan != (pg.vlan or 0):
            out.calls.append(Call("DistributedVirtualPortgroup.ReconfigureDVPortgroup_Task", pg.name, args,
                                  f"network {pg.network}: {cur.policy.describe()}, VLAN {cur.vlan} -> "
                                  f"{want.describe()}, VLAN {pg.vlan or 0}"))


def plan_removal(topo: Topology, state: NetworkState) -> list[Call]:
    """`destroy`: remove exactly the portgroups and vSwitch labctl's record lists (and that still exist)."""
    rec = state.record
    host = state.host_name or "host"
    calls = [Call("HostNetworkSystem.RemovePortGroup", host, (("pgName", n),), "created by labctl for this lab")
             for n in sorted(rec.portgroups) if n in state.portgroups]
    calls += [Call("DistributedVirtualPortgroup.Destroy_Task", n, (), "created by labctl for this lab")
              for n in sorted(rec.dv_portgroups) if n in state.dv_portgroups]
    calls += [Call("HostNetworkSystem.RemoveVirtualSwitch", host, (("vswitchName", n),),
                   "created by labctl for this lab") for n in sorted(rec.vswitches) if n in state.vswitches]
    return calls


# -- making the calls -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CallResult:
    call: Call
    ok: bool
    message: str = ""


def _security() -> Any:
    """Promiscuous, forged transmits, MAC changes = Accept (vim.host.NetworkPolicy.SecurityPolicy)."""
    from pyVmomi import vim

    return vim.host.NetworkPolicy(security=vim.host.NetworkPolicy.SecurityPolicy(
        allowPromiscuous=True, forgedTransmits=True, macChanges=True))


def _dv_spec(args: dict[str, Any], want: Policy, api: tuple[int, ...], config_version: str | None = None) -> Any:
    from pyVmomi import vim

    M = vim.dvs.VmwareDistributedVirtualSwitch
    port = M.VmwarePortConfigPolicy(vlan=M.VlanIdSpec(vlanId=args["vlanId"], inherited=False))
    if api >= (6, 7):
        port.macManagementPolicy = M.MacManagementPolicy(
            allowPromiscuous=bool(want.promiscuous), forgedTransmits=True, macChanges=True,
            macLearningPolicy=M.MacLearningPolicy(enabled=bool(want.mac_learning), allowUnicastFlooding=True,
                                                  limit=MAC_LEARNING_LIMIT, limitPolicy="DROP")
            if want.mac_learning else None)
    else:  # before 6.7: the (since deprecated) securityPolicy, BoolPolicy values
        port.securityPolicy = M.SecurityPolicy(allowPromiscuous=vim.BoolPolicy(value=True),
                                               forgedTransmits=vim.BoolPolicy(value=True),
                                               macChanges=vim.BoolPolicy(value=True))
    return vim.dvs.DistributedVirtualPortgroup.ConfigSpec(name=args["name"], type=args["type"],
                                                          numPorts=args["numPorts"], autoExpand=args["autoExpand"],
                                                          defaultPortConfig=port, configVersion=config_version)


def apply(client: VSphereClient, state: NetworkState, plan: NetworkPlan, state_dir: Path) -> list[CallResult]:
    """Make the plan's calls in order (a failed vSwitch stops its portgroups). labctl's record lists a name before
    the call that creates it, so a run cut short still knows what may be its own; a failed create is unlisted."""
    from pyVmomi import vim, vmodl

    from labctl.vsphere.client import fault_message

    rec = state.record
    want = _want(plan.choice) if plan.choice else PROMISCUOUS
    api = tuple(int(x) for x in state.api_version.split(".")[:2] if x.isdigit())
    ns = state._objects.get("network_system")
    out: list[CallResult] = []
    stop = False
    for call in plan.calls:
        if stop:
            out.append(CallResult(call, False, "not made: the vSwitch could not be created"))
            continue
        a = dict(call.args)
        listed: list[str] | None = None
        try:
            if call.method == "HostNetworkSystem.AddVirtualSwitch":
                listed = rec.vswitches
                _list_first(state_dir, rec, listed, a["vswitchName"])
                ns.AddVirtualSwitch(vswitchName=a["vswitchName"], spec=vim.host.VirtualSwitch.Specification(
                    numPorts=a["numPorts"], policy=_security()))
            elif call.method in ("HostNetworkSystem.AddPortGroup", "HostNetworkSystem.UpdatePortGroup"):
                spec = vim.host.PortGroup.Specification(name=a["name"], vlanId=0, vswitchName=a["vswitchName"],
                                                        policy=_security())
                if call.method.endswith("AddPortGroup"):
                    listed = rec.portgroups
                    _list_first(state_dir, rec, listed, a["name"])
                    ns.AddPortGroup(portgrp=spec)
                else:
                    ns.UpdatePortGroup(pgName=a["pgName"], portgrp=spec)
            elif call.method == "DistributedVirtualSwitch.AddDVPortgroup_Task":
                listed = rec.dv_portgroups
                _list_first(state_dir, rec, listed, a["name"])
                _wait(client, state._objects["dvs"].AddDVPortgroup_Task([_dv_spec(a, want, api)]))
            elif call.method == "DistributedVirtualPortgroup.ReconfigureDVPortgroup_Task":
                pg = state._objects[f"dvpg:{a['name']}"]
                _wait(client, pg.ReconfigureDVPortgroup_Task(_dv_spec(a, want, api, pg.config.configVersion)))
            else:
                raise AssertionError(call.method)
        except vmodl.fault.MethodNotFound:
            _unlist(state_dir, rec, listed, call)
            out.append(CallResult(call, False, f"{call.obj} does not implement {call.method.split('.')[-1]}: "
                                               f"{call.why} was not changed"))
            continue
        except (vim.fault.VimFault, vmodl.MethodFault, _TaskFailed) as e:
            _unlist(state_dir, rec, listed, call)
            msg = e.message if isinstance(e, _TaskFailed) else fault_message(e)
            out.append(CallResult(call, False, msg))
            if call.method.endswith("AddVirtualSwitch"):
                stop = True
            continue
        out.append(CallResult(call, True))
    if state.host_name and rec.host != state.host_name and (rec.vswitches or rec.portgroups):
        rec.host = state.host_name
        save_record(state_dir, rec)
    return out


def remove(client: VSphereClient, state: NetworkState, calls: list[Call], state_dir: Path) -> list[CallResult]:
    """Make `plan_removal`'s calls; each name leaves the record once it is gone from the target."""
    from pyVmomi import vim, vmodl

    from labctl.vsphere.client import fault_message

    rec = state.record
    ns = state._objects.get("network_system")
    out = []
    for call in calls:
        a = dict(call.args)
        try:
            if call.method == "HostNetworkSystem.RemovePortGroup":
                ns.RemovePortGroup(pgName=a["pgName"])
                rec.portgroups.remove(a["pgName"])
            elif call.method == "DistributedVirtualPortgroup.Destroy_Task":
                _wait(client, state._objects[f"dvpg:{call.obj}"].Destroy_Task())
                rec.dv_portgroups.remove(call.obj)
            elif call.method == "HostNetworkSystem.RemoveVirtualSwitch":
                ns.RemoveVirtualSwitch(vswitchName=a["vswitchName"])
                rec.vswitches.remove(a["vswitchName"])
        except (vim.fault.VimFault, vmodl.MethodFault, _TaskFailed) as e:
            out.append(CallResult(call, False, e.message if isinstance(e, _TaskFailed) else fault_message(e)))
            continue
        save_record(state_dir, rec)
        out.append(CallResult(call, True))
    return out


class _TaskFailed(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _wait(client: VSphereClient, task: Any) -> None:
    outcome = client.wait_tasks([task])[0]
    if not outcome.ok:
        raise _TaskFailed(outcome.message)


def _list_first(state_dir: Path, rec: Record, listed: list[str], name: str) -> None:
    if name not in listed:
        listed.append(name)
        save_record(state_dir, rec)


def _unlist(state_dir: Path, rec: Record, listed: list[str] | None, call: Call) -> None:
    name = dict(call.args).get("name") or dict(call.args).get("vswitchName")
    if listed is not None and name in listed:
        listed.remove(name)
        save_record(state_dir, rec)


def destroy_networks(client: VSphereClient, topo: Topology, state_dir: Path) -> list[CallResult]:
    """`destroy` on a vSphere target, once the lab's VMs are gone: remove the portgroups and the vSwitch labctl's
    record lists for this lab (nothing else), and forget them."""
    state = read_state(client, topo, state_dir)
    return remove(client, state, plan_removal(topo, state), state_dir)
