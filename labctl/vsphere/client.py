"""The pyVmomi calls labctl makes, each one SOAP round trip or a documented few.

`read_inventory` is ONE RetrievePropertiesEx (a traversal from the root folder through datacenters, host folders,
compute resources, hosts and their datastores), so planning a run costs one read whatever the lab's size.
Tasks are started without waiting; `wait_tasks` polls all pending tasks' info in one RetrievePropertiesEx per
round (the simulator completes tasks at once, so one round there).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

from labctl.vsphere.connection import Target, open_service_instance
from labctl.vsphere.inventory import (
    ClusterState, DatacenterState, DatastoreState, HostState, Inventory,
)

TASK_TIMEOUT = 900.0


@dataclass
class TaskOutcome:
    ok: bool
    fault: Any = None  # the vmodl fault object when not ok
    message: str = ""
    result: Any = None


def fault_message(fault: Any, localized: str | None = None) -> str:
    """A one-line text for a vmodl fault: 'TypeName: message'."""
    name = type(fault).__name__.split(".")[-1]
    msg = localized or getattr(fault, "msg", None) or ""
    if not msg:
        for attr in ("faultMessage",):
            items = getattr(fault, attr, None) or []
            msg = "; ".join(getattr(i, "message", "") for i in items if getattr(i, "message", ""))
    return f"{name}: {msg}" if msg and msg != name else name


class VSphereClient:
    """A logged-in session. Use as a context manager (logs out on exit)."""

    def __init__(self, si: Any):
        self.si = si
        self.content = si.RetrieveContent()
        self.api_version = str(self.content.about.apiVersion)
        self.full_name = str(self.content.about.fullName)

    @classmethod
    def connect(cls, target: Target) -> VSphereClient:
        return cls(open_service_instance(target))

    def __enter__(self) -> VSphereClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.content.sessionManager.Logout()
        except Exception:  # noqa: BLE001 - logging out of a dead session is not worth an error
            pass

    # -- reads ---------------------------------------------------------------------------------------------
    def read_inventory(self) -> Inventory:
        from pyVmomi import vim, vmodl

        pc_t = vmodl.query.PropertyCollector
        sel = pc_t.SelectionSpec
        traversals = [
            pc_t.TraversalSpec(name="folder", type=vim.Folder, path="childEntity", skip=False,
                               selectSet=[sel(name="folder"), sel(name="dcHost"), sel(name="crHost")]),
            pc_t.TraversalSpec(name="dcHost", type=vim.Datacenter, path="hostFolder", skip=False,
                               selectSet=[sel(name="folder")]),
            pc_t.TraversalSpec(name="crHost", type=vim.ComputeResource, path="host", skip=False,
                               selectSet=[sel(name="hostDs")]),
            pc_t.TraversalSpec(name="hostDs", type=vim.HostSystem, path="datastore", skip=False),
        ]
        props = [
            pc_t.PropertySpec(type=vim.Datacenter, pathSet=["name", "hostFolder"]),
            pc_t.PropertySpec(type=vim.Folder, pathSet=["name", "parent"]),
            pc_t.PropertySpec(type=vim.ComputeResource, pathSet=["name", "parent", "configurationEx"]),
            pc_t.PropertySpec(type=vim.HostSystem,
                              pathSet=["name", "parent", "datastore", "configManager.datastoreSystem"]),
            pc_t.PropertySpec(type=vim.Datastore, pathSet=["name", "summary.type", "info"]),
        ]
        spec = pc_t.FilterSpec(
            objectSet=[pc_t.ObjectSpec(obj=self.content.rootFolder, skip=False, selectSet=traversals)],
            propSet=props,
        )
        objects = self._retrieve([spec])
        return build_inventory(self.api_version, objects)

    def _retrieve(self, specs: Sequence[Any]) -> list[tuple[Any, dict[str, Any]]]:
        return retrieve(self.content.propertyCollector, specs)

    # -- changes -------------------------------------------------------------------------------------------
    def create_datacenter(self, name: str) -> tuple[Any, Any]:
        dc = self.content.rootFolder.CreateDatacenter(name=name)
        return dc, dc.hostFolder

    def create_cluster(self, host_folder: Any, name: str, ha_enabled: bool, options: dict[str, str]) -> Any:
        return host_folder.CreateClusterEx(name=name, spec=cluster_spec(ha_enabled, list(options.items())))

    def reconfigure_das(self, cluster: Any, enable: bool | None, updates: list[tuple[str, str]]) -> Any:
        """Start ONE ReconfigureComputeResource_Task(modify=True) carrying only the given differences."""
        return cluster.ReconfigureComputeResource_Task(spec=cluster_spec(enable, updates), modify=True)

    def add_host(self, cluster: Any, host: str, user: str, password: str, thumbprint: str | None) -> Any:
        from pyVmomi import vim

        spec = vim.host.ConnectSpec(hostName=host, userName=user, password=password, force=False)
        if thumbprint:
            spec.sslThumbprint = thumbprint
        return cluster.AddHost_Task(spec=spec, asConnected=True)

    def create_nas_datastore(self, datastore_system: Any, name: str, server: str, share: str,
                             readonly: bool) -> Any:
        from pyVmomi import vim

        spec = vim.host.NasVolume.Specification(
            remoteHost=server, remotePath=share, localPath=name, type="NFS",
            accessMode="readOnly" if readonly else "readWrite",
        )
        return datastore_system.CreateNasDatastore(spec=spec)

    def wait_tasks(self, tasks: Sequence[Any], timeout: float = TASK_TIMEOUT) -> list[TaskOutcome]:
        """Wait for every task; one RetrievePropertiesEx per polling round for all of them."""
        from pyVmomi import vim, vmodl

        if not tasks:
            return []
        pc_t = vmodl.query.PropertyCollector
        pending = {t._moId: t for t in tasks}
        done: dict[str, TaskOutcome] = {}
        delay, deadline = 0.05, time.monotonic() + timeout
        while pending:
            spec = pc_t.FilterSpec(
                objectSet=[pc_t.ObjectSpec(obj=t, skip=False) for t in pending.values()],
                propSet=[pc_t.PropertySpec(type=vim.Task, pathSet=["info.state", "info.error", "info.result"])],
            )
            for obj, props in self._retrieve([spec]):
                state = str(props.get("info.state"))
                if state == "success":
                    done[obj._moId] = TaskOutcome(ok=True, result=props.get("info.result"))
                elif state == "error":
                    err = props.get("info.error")
                    # pyVmomi hands a LocalizedMethodFault over as the fault itself (msg = localizedMessage)
                    fault = getattr(err, "fault", None) or err
                    msg = fault_message(fault, getattr(err, "localizedMessage", None)) if fault else "task failed"
                    done[obj._moId] = TaskOutcome(ok=False, fault=fault, message=msg)
                else:
                    continue
                pending.pop(obj._moId, None)
            if not pending:
                break
            if time.monotonic() > deadline:
                for key in list(pending):
                    done[key] = TaskOutcome(ok=False, message=f"task still running after {timeout:.0f} s")
                break
            time.sleep(delay)
            delay = min(delay * 2, 2.0)
        return [done[t._moId] for t in tasks]


def retrieve(pc: Any, specs: Sequence[Any]) -> list[tuple[Any, dict[str, Any]]]:
    """(object, {property: value}) for every object the filter specs select: one RetrievePropertiesEx, plus one
    ContinueRetrievePropertiesEx per further page."""
    from pyVmomi import vmodl

    res = pc.RetrievePropertiesEx(specSet=list(specs), options=vmodl.query.PropertyCollector.RetrieveOptions())
    out: list[tuple[Any, dict[str, Any]]] = []
    while res is not None:
        for oc in res.objects or []:
            out.append((oc.obj, {p.name: p.val for p in oc.propSet or []}))
        if not res.token:
            break
        res = pc.ContinueRetrievePropertiesEx(token=res.token)
    return out


def cluster_spec(enable: bool | None, updates: list[tuple[str, str]]) -> Any:
    from pyVmomi import vim

    das = vim.cluster.DasConfigInfo()
    if enable is not None:
        das.enabled = enable
    das.option = [vim.option.OptionValue(key=k, value=v) for k, v in updates]
    return vim.cluster.ConfigSpecEx(dasConfig=das)


def _key(obj: Any) -> str:
    return f"{obj._wsdlName}:{obj._moId}"


def build_inventory(api_version: str, objects: list[tuple[Any, dict[str, Any]]]) -> Inventory:
    """Assemble the snapshot from (object, properties) pairs of one RetrievePropertiesEx."""
    from pyVmomi import vim

    by_key = {_key(o): (o, p) for o, p in objects}

    def datacenter_of(obj: Any) -> str | None:
        seen = 0
        while obj is not None and seen < 64:
            entry = by_key.get(_key(obj))
            if entry is None:
                return None
            o, p = entry
            if isinstance(o, vim.Datacenter):
                return _key(o)
            obj, seen = p.get("parent"), seen + 1
        return None

    inv = Inventory(api_version=api_version)
    dcs: dict[str, DatacenterState] = {}
    for o, p in objects:
        if isinstance(o, vim.Datacenter):
            dcs[_key(o)] = inv.datacenters[p["name"]] = DatacenterState(name=p["name"], ref=o,
                                                                         host_folder=p.get("hostFolder"))
    compute: dict[str, tuple[str, bool]] = {}
    for o, p in objects:
        if isinstance(o, vim.ComputeResource):
            dc = dcs.get(datacenter_of(o) or "")
            is_cluster = isinstance(o, vim.ClusterComputeResource)
            compute[_key(o)] = (p.get("name", o._moId), is_cluster)
            if dc is None or not is_cluster:
                continue
            das = getattr(p.get("configurationEx"), "dasConfig", None)
            options = {str(opt.key): "" if opt.value is None else str(opt.value) for opt in (das.option or [])} if das else {}
            dc.clusters[p["name"]] = ClusterState(name=p["name"], ref=o, das_enabled=getattr(das, "enabled", None),
                                                  options=options)
    for o, p in objects:
        if isinstance(o, vim.HostSystem):
            parent = p.get("parent")
            dc = dcs.get(datacenter_of(parent) or "") if parent is not None else None
            if dc is None:
                continue
            pname, in_cluster = compute.get(_key(parent), (None, False))
            stores = []
            for ds in p.get("datastore") or []:
                entry = by_key.get(_key(ds))
                if entry is None:
                    continue
                dsp = entry[1]
                nas = getattr(dsp.get("info"), "nas", None)
                stores.append(DatastoreState(
                    name=dsp.get("name", ds._moId), type=str(dsp.get("summary.type") or ""),
                    remote_host=getattr(nas, "remoteHost", None), remote_path=getattr(nas, "remotePath", None),
                ))
            dc.hosts[p["name"]] = HostState(name=p["name"], ref=o, parent=pname, in_cluster=in_cluster,
                                            datastore_system=p.get("configManager.datastoreSystem"),
                                            datastores=stores)
    return inv
