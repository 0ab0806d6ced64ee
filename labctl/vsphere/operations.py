"""vCenter operations: datacenter, clusters, hosts, HA isolation addresses, NFS datastores.

Each operation reads the inventory once, works out the differences (pure planners below), and makes only the
calls that change something; `dry_run=True` stops after the diff. A failure on one cluster or host is recorded
in `Result.failures` with its name and never stops the others.

SOAP calls for one existing cluster's HA configuration: 1 RetrievePropertiesEx (inventory) + 1
ReconfigureComputeResource_Task + 1 RetrievePropertiesEx per task-polling round (1 against vcsim).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from labctl.errors import LabctlError
from labctl.vsphere import ha
from labctl.vsphere.client import VSphereClient, fault_message
from labctl.vsphere.inventory import DatacenterState, Inventory
from labctl.vsphere.model import Change, ClusterSpec, Failure, HostLogin, NfsSpec, Result

# -- pure planning ---------------------------------------------------------------------------------------------


@dataclass
class ClusterPlan:
    spec: ClusterSpec
    create: bool = False
    create_options: dict[str, str] = field(default_factory=dict)
    das: ha.DasDiff | None = None
    add_hosts: list[str] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)


def plan_cluster(dc: DatacenterState | None, spec: ClusterSpec, legacy: bool) -> ClusterPlan:
    """What to do for one cluster, from a snapshot of its datacenter (None: the datacenter does not exist yet)."""
    plan = ClusterPlan(spec=spec)
    try:
        wanted = ha.desired_options(spec.isolation_addresses, spec.gateway_less, legacy)
    except LabctlError as e:
        plan.failures.append(Failure("ha", spec.name, e.message))
        return plan
    current = dc.clusters.get(spec.name) if dc else None
    if current is None:
        plan.create = True
        plan.create_options = wanted
        plan.changes.append(Change("vcenter", spec.name, "create cluster"))
        desc = ha.diff(None, {}, spec.ha_enabled, wanted).describe()
        plan.changes += [Change("ha", spec.name, d) for d in desc]
    else:
        plan.das = ha.diff(current.das_enabled, current.options, spec.ha_enabled, wanted)
        plan.changes += [Change("ha", spec.name, d) for d in plan.das.describe()]
    for host in spec.hosts:
        have = dc.hosts.get(host) if dc else None
        if have is None:
            plan.add_hosts.append(host)
            plan.changes.append(Change("vcenter", host, f"add host to cluster {spec.name}"))
        elif have.parent != spec.name:
            where = f"cluster {have.parent}" if have.in_cluster else "standalone"
            plan.failures.append(Failure("vcenter", host, f"host is already in vCenter ({where}), not in cluster "
                                         f"{spec.name}; move it in vCenter or change the topology"))
    return plan


@dataclass
class NfsPlanItem:
    spec: NfsSpec
    host: str
    pending_host: bool = False  # the host is added in the same run


def plan_nfs(dc: DatacenterState | None, datastores: Sequence[NfsSpec], pending_hosts: set[str] = frozenset()
             ) -> tuple[list[NfsPlanItem], list[Change], list[Failure]]:
    """Mounts needed per (datastore, host); same server/share already there = nothing to do; another share = error."""
    todo: list[NfsPlanItem] = []
    changes: list[Change] = []
    failures: list[Failure] = []
    for spec in datastores:
        mode = " read-only" if spec.readonly else ""
        for host in spec.hosts:
            h = dc.hosts.get(host) if dc else None
            if h is None:
                if host in pending_hosts:
                    todo.append(NfsPlanItem(spec, host, pending_host=True))
                    changes.append(Change("nfs", host, f"mount {spec.server}:{spec.share} as {spec.name}{mode}"))
                else:
                    failures.append(Failure("nfs", host, "host is not in vCenter; add it first (labctl vcenter)"))
                continue
            existing = h.datastore(spec.name)
            if existing is not None:
                if not existing.is_nas:
                    failures.append(Failure("nfs", host, f"datastore {spec.name} exists and is {existing.type}, "
                                            f"not NFS {spec.server}:{spec.share}"))
                elif _same_share(existing.remote_host, existing.remote_path, spec):
                    continue
                else:
                    failures.append(Failure(
                        "nfs", host, f"datastore {spec.name} is mounted from {existing.remote_host}:"
                        f"{existing.remote_path}, the topology wants {spec.server}:{spec.share}; unmount it or "
                        "rename one of them"))
                continue
            other = next((d for d in h.datastores if d.is_nas and _same_share(d.remote_host, d.remote_path, spec)),
                         None)
            if other is not None:
                failures.append(Failure("nfs", host, f"{spec.server}:{spec.share} is already mounted as datastore "
                                        f"{other.name}, the topology names it {spec.name}"))
                continue
            todo.append(NfsPlanItem(spec, host))
            changes.append(Change("nfs", host, f"mount {spec.server}:{spec.share} as {spec.name}{mode}"))
    return todo, changes, failures


def _same_share(server: str | None, path: str | None, spec: NfsSpec) -> bool:
    return (server or "").lower() == spec.server.lower() and (path or "").rstrip("/") == spec.share.rstrip("/")


# -- execution ---------------------------------------------------------------------------------------------------


def configure_vcenter(
    client: VSphereClient,
    datacenter: str,
    clusters: Sequence[ClusterSpec],
    logins: Mapping[str, HostLogin] | None = None,
    *,
    trust_new_hosts: bool = False,
    datastores: Sequence[NfsSpec] = (),
    dry_run: bool = False,
    inventory: Inventory | None = None,
) -> Result:
    """Ensure datacenter and clusters, add hosts, set HA; then mount `datastores` (if any) through vCenter."""
    result = Result(dry_run=dry_run)
    logins = logins or {}
    legacy = ha.uses_legacy_keys(client.api_version)
    result.notes.append(f"vCenter API {client.api_version}: {'legacy AAM' if legacy else 'FDM'} HA keys")
    inv = inventory or client.read_inventory()
    dc = inv.datacenters.get(datacenter)
    plans = [plan_cluster(dc, spec, legacy) for spec in clusters]
    if dc is None:
        result.changes.append(Change("vcenter", datacenter, "create datacenter"))
    for p in plans:
        result.changes += p.changes
        result.failures += p.failures
    pending = {h for p in plans for h in p.add_hosts}
    if dry_run:
        if datastores:
            _, nfs_changes, nfs_failures = plan_nfs(dc, datastores, pending)
            result.changes += nfs_changes
            result.failures += nfs_failures
        return result

    host_folder = dc.host_folder if dc else None
    if dc is None:
        try:
            _, host_folder = client.create_datacenter(datacenter)
        except remote_errors() as e:  # nothing else can proceed in this datacenter
            result.failures.append(Failure("vcenter", datacenter, _fault_text(e)))
            return result

    # Start every task first, then wait for all of them in one polling loop.
    tasks: list[tuple[Any, str, str, ClusterPlan | None, str | None]] = []  # task, stage, target, plan, host
    cluster_refs: dict[str, Any] = {}
    for p in plans:
        name = p.spec.name
        if any(f.stage == "ha" and f.target == name for f in p.failures):
            continue
        try:
            if p.create:
                cluster_refs[name] = client.create_cluster(host_folder, name, p.spec.ha_enabled, p.create_options)
            else:
                cluster_refs[name] = dc.clusters[name].ref
                if p.das is not None and not p.das.empty:
                    tasks.append((client.reconfigure_das(cluster_refs[name], p.das.enable, p.das.option_updates()),
                                  "ha", name, p, None))
        except remote_errors() as e:
            _fail_cluster(result, p, _fault_text(e))
            continue
        for host in p.add_hosts:
            task = _start_add_host(client, result, cluster_refs[name], host, logins.get(host), None)
            if task is not None:
                tasks.append((task, "vcenter", host, p, host))

    retries: list[tuple[Any, str, str, ClusterPlan | None, str | None]] = []
    for (_task, stage, target, p, host), outcome in zip(tasks, client.wait_tasks([t[0] for t in tasks])):
        if outcome.ok:
            continue
        if host is not None and type(outcome.fault).__name__.endswith("SSLVerifyFault"):
            retry = _handle_ssl_fault(client, result, cluster_refs[p.spec.name], host, logins.get(host),
                                      outcome.fault, trust_new_hosts)
            if retry is not None:
                retries.append((retry, stage, target, p, host))
            continue
        _fail_change(result, stage, target, outcome.message)
    for (_task, stage, target, _p, _h), outcome in zip(retries, client.wait_tasks([t[0] for t in retries])):
        if not outcome.ok:
            _fail_change(result, stage, target, outcome.message)

    if datastores:
        inv2 = client.read_inventory() if (pending or dc is None) else inv
        result.extend(mount_nfs(client, datacenter, datastores, inventory=inv2))
    return result


def remote_errors() -> tuple[type[BaseException], ...]:
    """What one vCenter call may raise that belongs to its target (a fault, a dropped connection); anything else
    is a bug and propagates."""
    import http.client

    from pyVmomi import vmodl

    return (vmodl.MethodFault, vmodl.RuntimeFault, OSError, http.client.HTTPException)


def _fault_text(e: BaseException) -> str:
    if hasattr(e, "msg") or type(e).__module__.startswith("pyVmomi"):
        return fault_message(e)
    return f"{type(e).__name__}: {e}"


def _fail_change(result: Result, stage: str, target: str, message: str) -> None:
    result.failures.append(Failure(stage, target, message))


def _fail_cluster(result: Result, plan: ClusterPlan, message: str) -> None:
    result.failures.append(Failure("vcenter", plan.spec.name, message))
    for host in plan.add_hosts:
        result.failures.append(Failure("vcenter", host, f"not added: cluster {plan.spec.name} is not available"))


def _start_add_host(client: VSphereClient, result: Result, cluster: Any, host: str, login: HostLogin | None,
                    thumbprint: str | None) -> Any:
    login = login or HostLogin()
    if not login.password:
        where = f"${login.password_env}" if login.password_env else "the topology's ssh.password_env variable"
        result.failures.append(Failure("vcenter", host, f"no {login.user} password to add the host: set {where}"))
        return None
    try:
        return client.add_host(cluster, host, login.user, login.password, thumbprint or login.thumbprint)
    except remote_errors() as e:
        result.failures.append(Failure("vcenter", host, _fault_text(e)))
        return None


def _handle_ssl_fault(client: VSphereClient, result: Result, cluster: Any, host: str, login: HostLogin | None,
                      fault: Any, trust_new_hosts: bool) -> Any:
    """vCenter does not know the host's certificate: accept its thumbprint only when pinned or explicitly trusted."""
    login = login or HostLogin()
    seen = str(getattr(fault, "thumbprint", "") or "")
    if login.thumbprint and login.thumbprint.upper() != seen.upper():
        result.failures.append(Failure("vcenter", host, f"certificate thumbprint {seen} does not match the pinned "
                                       f"{login.thumbprint}; refusing to add the host"))
        return None
    if not (login.thumbprint or login.pinned or trust_new_hosts):
        result.failures.append(Failure(
            "vcenter", host, f"vCenter does not know this host's certificate (thumbprint {seen}); not accepted: "
            "pin the host (SSH known_hosts / thumbprint) or pass --trust-new-hosts"))
        return None
    why = "pinned" if (login.thumbprint or login.pinned) else "--trust-new-hosts"
    result.notes.append(f"{host}: accepted certificate thumbprint {seen} ({why})")
    return _start_add_host(client, result, cluster, host, login, seen)


def mount_nfs(client: VSphereClient, datacenter: str, datastores: Sequence[NfsSpec], *, dry_run: bool = False,
              inventory: Inventory | None = None) -> Result:
    """Mount each NFS datastore on its hosts through vCenter (CreateNasDatastore, localPath = name)."""
    result = Result(dry_run=dry_run)
    inv = inventory or client.read_inventory()
    dc = inv.datacenters.get(datacenter)
    todo, changes, failures = plan_nfs(dc, datastores)
    result.changes += changes
    result.failures += failures
    if dry_run or dc is None:
        if dc is None and datastores:
            result.failures.append(Failure("nfs", datacenter, "datacenter not in vCenter; run `labctl vcenter` first"))
        return result
    for item in todo:
        host = dc.hosts[item.host]
        try:
            client.create_nas_datastore(host.datastore_system, item.spec.name, item.spec.server, item.spec.share,
                                        item.spec.readonly)
        except remote_errors() as e:
            result.failures.append(Failure("nfs", item.host, f"mounting {item.spec.server}:{item.spec.share} as "
                                           f"{item.spec.name} failed: {_fault_text(e)}"))
    return result
