"""`VsphereDriver`: the lab's VMs on a vCenter cluster/host or a standalone ESXi host, behind the `Driver` interface.

A VM is still named by the path of its rendered .vmx (`<state dir>/<name>/<name>.vmx`): render writes it locally
as for Workstation, and `create_disk` creates the vSphere VM `<name>` from the file's facts (`vmxfacts`) with its
disk, NICs (static MACs), CD-ROMs (the ISOs uploaded once by content hash, `upload`) and `guestinfo.*` as
extraConfig. Everything labctl creates lives in the lab's folder, and nothing outside it is ever changed:

- vCenter: the inventory folder `<datacenter>/vm/<folder>` (created when missing), VM files under
  `[datastore] <folder>/<name>/`.
- standalone ESXi: a host has no inventory folders (CreateFolder is not supported there), so the lab's folder is
  the datastore directory `[datastore] <folder>/`, and every VM labctl creates carries `labctl.folder = <folder>`
  in its extraConfig. A VM belongs to the lab only with both.

`delete_vm` re-reads where the VM is right before destroying it and refuses anything outside the folder.
Linked clones: vCenter's `CloneVM_Task` with `diskMoveType = createNewChildDiskBacking` from the snapshot; a
standalone host has no CloneVM_Task (vCenter only), so there the clone is a `CreateVM_Task` with the source's
hardware and a new child disk whose parent is the snapshot's disk — the same linked clone, made by hand.
`reconfigure` sends one ReconfigVM_Task of the keys that differ, refused while the VM runs unless forced (as on
Workstation). Every call is counted on the session; errors name the VM.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

from labctl.errors import EnvironmentProblem, LabctlError, RefusedError
from labctl.vsphere.target import vmxfacts as vf
from labctl.vsphere.target.session import Session, VsphereTaskError
from labctl.workstation.driver import Driver
from labctl.workstation.vmrun_output import ProductVersion

LINKED = "createNewChildDiskBacking"
FULL = "moveAllDiskBackingsAndDisallowSharing"
PROVISIONING = ("thin", "thick", "eager-zeroed-thick")  # the topology's target.disk_provisioning


@dataclass(frozen=True)
class Net:
    name: str
    obj: Any
    key: str | None = None  # a distributed portgroup's key
    switch_uuid: str | None = None  # and its switch's uuid


@dataclass
class Placement:
    """Where the lab's VMs go, resolved once per run."""

    datacenter: Any
    datacenter_name: str
    folder: Any  # the lab's inventory folder (vCenter) or the datacenter's vm folder (ESXi)
    pool: Any
    host: Any | None  # the host to place on (ESXi: the host; vCenter: target.host or None for DRS)
    datastore: Any
    datastore_name: str
    browser: Any
    networks: dict[str, Net]  # portgroup name -> the network (read in one call, again when one is missing)


@dataclass
class VmRef:
    name: str
    obj: Any
    path: str  # config.files.vmPathName


def _attr(target: Any, name: str, default: Any = None) -> Any:
    value = getattr(target, name, default)
    return default if value in (None, "") else value


class VsphereDriver(Driver):
    """The `Driver` interface over pyVmomi for one lab on one vSphere target (see the module docstring)."""

    name = "vsphere"

    def __init__(self, session: Session | Any, target: Any, lab_state_dir: Path, *,
                 portgroups: Mapping[str, str] | None = None, network_refs: Mapping[str, str] | None = None,
                 progress: Callable[[str, str], None] | None = None, owns_session: bool = False):
        # a VSphereClient (the run's one session, shared with the networks stage) is counted the same way
        self.session = session if isinstance(session, Session) else Session(session)
        self.owns_session = owns_session
        self.target = target
        # where the rendered <name>/<name>.vmx are: the lab's vm_dir (its state dir <vm_dir>/.labctl names it too)
        d = Path(lab_state_dir)
        self.state_dir = d.parent if d.name == ".labctl" else d
        self.folder_path = str(_attr(target, "folder", "")).strip("/")
        if not self.folder_path:
            raise LabctlError("the vSphere target has no folder", hint="set target.folder: labs/<lab name>")
        self.portgroups: Mapping[str, str] = portgroups if portgroups is not None else {}  # lab network name -> portgroup name (s14model's mapping)
        self.network_refs = dict(network_refs or {})  # a .vmx's network reference -> lab network name
        self.provisioning = str(_attr(target, "disk_provisioning", "thin")).lower()
        if self.provisioning not in PROVISIONING:
            raise LabctlError(f"target.disk_provisioning {self.provisioning!r} is not one of {', '.join(PROVISIONING)}")
        self.progress = progress or (lambda _n, _t: None)
        self._place: Placement | None = None
        self._vms: dict[str, VmRef] | None = None
        self._media: dict[Path, str] = {}
        self._substitutes: dict[Path, Path] = {}
        self._lock = threading.RLock()
        self._media_lock = threading.Lock()

    def close(self) -> None:
        """Log the session out when this driver opened it (`open_driver`)."""
        if self.owns_session:
            self.session.close()

    def exists(self, vmx: Path) -> bool:
        """Whether the lab's folder has this VM (what `destroy` lists instead of local files)."""
        return self.find(vmx) is not None

    @property
    def location(self) -> str:
        """Where the lab's VMs are, for messages: `folder labs/x on vcenter.lab (datastore ds1)`."""
        return f"folder {self.folder_path} on {self.session.display}"

    # == placement ============================================================================================
    @property
    def is_vcenter(self) -> bool:
        return self.session.is_vcenter

    def placement(self) -> Placement:
        with self._lock:
            if self._place is None:
                self._place = self._resolve()
            return self._place

    def _find(self, path: str) -> Any:
        return self.session.content.searchIndex.FindByInventoryPath(inventoryPath=path)

    def _resolve(self) -> Placement:
        from pyVmomi import vim

        t = self.target
        content = self.session.content
        if self.is_vcenter:
            dc_name = _attr(t, "datacenter")
            if not dc_name:
                raise LabctlError("the vSphere target is a vCenter and has no datacenter",
                                  hint="set target.datacenter")
            dc = self._find(dc_name)
            if not isinstance(dc, vim.Datacenter):
                raise EnvironmentProblem(f"vCenter {self.session.display} has no datacenter {dc_name!r}",
                                         hint="check target.datacenter (case matters)")
        else:
            dcs = [e for e in content.rootFolder.childEntity if isinstance(e, vim.Datacenter)]
            dc, dc_name = dcs[0], dcs[0].name
        cluster, host_name = _attr(t, "cluster"), _attr(t, "host_system") or _attr(t, "esx_host")
        host = None
        if self.is_vcenter:
            if cluster:
                compute = self._find(f"{dc_name}/host/{cluster}")
                if not isinstance(compute, vim.ClusterComputeResource):
                    raise EnvironmentProblem(f"datacenter {dc_name} has no cluster {cluster!r}",
                                             hint="check target.cluster")
            elif host_name:
                compute = self._find(f"{dc_name}/host/{host_name}")
                if not isinstance(compute, vim.ComputeResource):
                    raise EnvironmentProblem(f"datacenter {dc_name} has no standalone host {host_name!r}",
                                             hint="check target's host (a host in a cluster: name the cluster)")
            else:
                raise LabctlError("the vSphere target names neither a cluster nor a host to run the VMs on",
                                  hint="set target.cluster (or the host)")
            if host_name and isinstance(compute, vim.ClusterComputeResource):
                host = next((h for h in compute.host if h.name == host_name), None)
                if host is None:
                    raise EnvironmentProblem(f"cluster {cluster} has no host {host_name!r}")
            elif not isinstance(compute, vim.ClusterComputeResource):
                host = compute.host[0]
        else:
            compute = next(e for e in dc.hostFolder.childEntity if isinstance(e, vim.ComputeResource))
            host = compute.host[0]
        pool = compute.resourcePool
        for part in [p for p in str(_attr(t, "resource_pool", "")).split("/") if p]:
            child = next((rp for rp in pool.resourcePool if rp.name == part), None)
            if child is None:
                raise EnvironmentProblem(f"resource pool {part!r} not found under {pool.name}",
                                         hint="check target.resource_pool (a path below the cluster's or host's pool)")
            pool = child
        ds_name = _attr(t, "datastore")
        if not ds_name:
            raise LabctlError("the vSphere target has no datastore", hint="set target.datastore")
        # a standalone host's own list (its datacenter's may name a store it no longer has: vcsim -esx does)
        stores = host.datastore if not self.is_vcenter else (host.datastore if host is not None else dc.datastore)
        ds = next((d for d in stores if d.name == ds_name), None)
        if ds is None:
            raise EnvironmentProblem(f"datacenter {dc_name} has no datastore {ds_name!r}",
                                     hint="check target.datastore")
        # reading never creates: the folder is made by the first VM that goes into it (`lab_folder`)
        folder = self._find_folder(dc_name) if self.is_vcenter else dc.vmFolder
        return Placement(dc, dc_name, folder, pool, host, ds, ds_name, ds.browser, self._read_networks(dc))

    def _read_networks(self, dc: Any) -> dict[str, Net]:
        """The datacenter's networks: names, and a distributed portgroup's key and switch (one read + one per switch)."""
        from pyVmomi import vim, vmodl

        pc_t = vmodl.query.PropertyCollector
        spec = pc_t.FilterSpec(
            objectSet=[pc_t.ObjectSpec(obj=dc, skip=True, selectSet=[
                pc_t.TraversalSpec(name="nets", type=vim.Datacenter, path="network", skip=False)])],
            propSet=[pc_t.PropertySpec(type=vim.Network, pathSet=["name"]),
                     pc_t.PropertySpec(type=vim.dvs.DistributedVirtualPortgroup,
                                       pathSet=["name", "key", "config.distributedVirtualSwitch"])])
        uuids: dict[str, str] = {}
        out: dict[str, Net] = {}
        for obj, props in self._retrieve([spec]):
            name = str(props.get("name"))
            if isinstance(obj, vim.dvs.DistributedVirtualPortgroup):
                dvs = props.get("config.distributedVirtualSwitch")
                if dvs is not None and dvs._moId not in uuids:
                    uuids[dvs._moId] = str(dvs.uuid)
                out[name] = Net(name, obj, str(props.get("key")), uuids.get(dvs._moId) if dvs is not None else None)
            else:
                out.setdefault(name, Net(name, obj))
        return out

    def _find_folder(self, dc_path: str) -> Any | None:
        """The lab's folder under the datacenter's vm folder, None while it does not exist (one call)."""
        from pyVmomi import vim

        found = self._find(f"{dc_path}/vm/{self.folder_path}")
        return found if isinstance(found, vim.Folder) else None

    def lab_folder(self) -> Any:
        """The lab's folder, created (each missing part) when it does not exist yet."""
        p = self.placement()
        with self._lock:
            if p.folder is None:
                p.folder = self._ensure_folder(p.datacenter.vmFolder)
            return p.folder

    def _ensure_folder(self, root: Any) -> Any:
        """The lab's folder under the datacenter's vm folder, each missing part created (vCenter only)."""
        from pyVmomi import vim

        folder = root
        parts = self.folder_path.split("/")
        for i, part in enumerate(parts):
            child = next((c for c in folder.childEntity if isinstance(c, vim.Folder) and c.name == part), None)
            if child is None:
                path = "/".join(parts[:i + 1])
                self._record_folder(path, add=True)  # listed before it is made: a crash leaves no unlisted folder
                try:
                    child = folder.CreateFolder(name=part)
                except vim.fault.DuplicateName:  # another run made it meanwhile: not ours
                    self._record_folder(path, add=False)
                    child = next(c for c in folder.childEntity if isinstance(c, vim.Folder) and c.name == part)
            folder = child
        return folder

    # == the folders labctl made (so destroy removes those, and only those) ==================================
    @property
    def folder_record(self) -> Path:
        return self.state_dir / ".labctl" / "vsphere-target-folders.json"

    def made_folders(self) -> list[str]:
        import json

        try:
            d = json.loads(self.folder_record.read_text())
        except (OSError, ValueError):
            return []
        return [str(f) for f in d.get("folders", [])] if isinstance(d, dict) else []

    def _record_folder(self, path: str, *, add: bool) -> None:
        import json

        have = self.made_folders()
        have = sorted({*have, path}) if add else [f for f in have if f != path]
        self.folder_record.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        if have:
            tmp = self.folder_record.with_name(f".{self.folder_record.name}.tmp")
            tmp.write_text(json.dumps({"target": str(_attr(self.target, "host", "")), "folders": have}, indent=2)
                           + "\n")
            tmp.replace(self.folder_record)
        else:
            self.folder_record.unlink(missing_ok=True)

    def remove_folders(self) -> list[tuple[str, str | None]]:
        """Destroy the inventory folders labctl created for this lab, deepest first, each only when empty.
        Returns (path, None) for each removed, (path, why) for each left."""
        from pyVmomi import vim

        if not self.is_vcenter:
            return []
        p = self.placement()
        out: list[tuple[str, str | None]] = []
        for path in sorted(self.made_folders(), key=lambda f: f.count("/"), reverse=True):
            found = self._find(f"{p.datacenter_name}/vm/{path}")
            if not isinstance(found, vim.Folder):
                self._record_folder(path, add=False)  # gone already
                continue
            if list(found.childEntity):
                out.append((path, "not empty: left as it is"))
                continue
            try:
                task = self.session.call(f"folder {path}: Destroy_Task", found.Destroy_Task)
                self.session.wait(task, f"removing the folder {path}")
            except LabctlError as e:
                out.append((path, e.message))
                continue
            self._record_folder(path, add=False)
            out.append((path, None))
        with self._lock:
            if self._place is not None and out and all(why is None for _, why in out):
                self._place.folder = None
        return out

    # == the lab's VMs ========================================================================================
    def vm_name(self, vmx: Path) -> str:
        return Path(vmx).stem

    def vmx_of(self, name: str) -> Path:
        return self.state_dir / name / f"{name}.vmx"

    def vm_dir(self, name: str) -> str:
        return f"{self.folder_path}/{name}"

    def _owned_path(self, path: str) -> bool:
        p = self.placement()
        return path.startswith(f"[{p.datastore_name}] {self.folder_path}/")

    def _list(self) -> dict[str, VmRef]:
        """The lab's VMs by name: one RetrievePropertiesEx over the folder's children."""
        from pyVmomi import vim, vmodl

        p = self.placement()
        if p.folder is None:
            return {}  # no folder yet: the lab has no VMs
        pc_t = vmodl.query.PropertyCollector
        spec = pc_t.FilterSpec(
            objectSet=[pc_t.ObjectSpec(obj=p.folder, skip=True, selectSet=[
                pc_t.TraversalSpec(name="children", type=vim.Folder, path="childEntity", skip=False)])],
            propSet=[pc_t.PropertySpec(type=vim.VirtualMachine, pathSet=["name", "config.files.vmPathName"])])
        out: dict[str, VmRef] = {}
        for obj, props in self._retrieve([spec]):
            if not isinstance(obj, vim.VirtualMachine):
                continue
            path = str(props.get("config.files.vmPathName") or "")
            if not self.is_vcenter and not self._owned_path(path):
                continue  # on a host every VM is in the one vm folder: only those under the lab's directory
            out[str(props.get("name"))] = VmRef(str(props.get("name")), obj, path)
        return out

    def vms(self, *, refresh: bool = False) -> dict[str, VmRef]:
        with self._lock:
            if self._vms is None or refresh:
                self._vms = self._list()
            return self._vms

    def _retrieve(self, specs) -> list[tuple[Any, dict[str, Any]]]:
        from labctl.vsphere.client import retrieve

        return retrieve(self.session.content.propertyCollector, specs)

    def _props(self, obj: Any, paths: list[str]) -> dict[str, Any]:
        from pyVmomi import vmodl

        pc_t = vmodl.query.PropertyCollector
        spec = pc_t.FilterSpec(objectSet=[pc_t.ObjectSpec(obj=obj, skip=False)],
                               propSet=[pc_t.PropertySpec(type=type(obj), pathSet=paths)])
        got = self._retrieve([spec])
        return got[0][1] if got else {}

    def find(self, vmx: Path) -> VmRef | None:
        return self.vms().get(self.vm_name(vmx))

    def _need(self, vmx: Path) -> VmRef:
        ref = self.find(vmx)
        if ref is None:
            raise LabctlError(f"{self.vm_name(vmx)}: no such VM in the lab's folder {self.folder_path} on "
                              f"{self.session.display}", hint="labctl up creates it")
        return ref

    # == what plan prints: the vSphere calls an operation makes ====================================================
    def plan_create(self, vmx: Path, disk_gb: int) -> list[str]:
        """The calls `create_disk` would make for this .vmx (reads the file, calls nothing)."""
        from labctl.vsphere.target import upload

        f = self.read_facts(vmx)
        ds = _attr(self.target, "datastore", "?")
        calls = [f"FileManager.MakeDirectory [{ds}] {self.vm_dir(f.name)}"]
        for c in f.cdroms:
            if c.iso and not upload.is_datastore_path(c.iso):
                calls.append(f"HTTP PUT [{ds}] {upload.MEDIA_DIR}/<sha256>-{Path(c.iso).name} "
                             f"(unless already there: SearchDatastore_Task)")
        hw = [f.guest_id, f"vmx-{f.hw_version:02d}" if f.hw_version else "default hardware",
              f"{f.cpus} vCPU ({f.cores_per_socket}/socket)", f"{f.memory_mb} MB", f.firmware]
        if f.nested_hv:
            hw.append("nestedHV")
        hw += [f"{d.adapter} disk {disk_gb} GB {self.provisioning}" for d in f.disks[:1]]
        hw += [f"{n.device} {n.mac or 'generated MAC'} on {n.portgroup or self.portgroups.get(self.network_refs.get(n.network, n.network), '?')}"
               for n in f.nics]
        hw += [f"CD-ROM {c.device}" for c in f.cdroms]
        folder = self.folder_path if self.is_vcenter else f"the host's vm folder ([{ds}] {self.folder_path}/)"
        calls.append(f"Folder.CreateVM_Task {f.name} in {folder}: " + ", ".join(hw))
        if f.boot_order:
            calls.append(f"VirtualMachine.ReconfigVM_Task {f.name}: bootOptions {','.join(f.boot_order)}")
        return calls

    def plan_clone(self, src: Path, dst: Path, *, snapshot: str, linked: bool = True) -> list[str]:
        s, d = self.vm_name(src), self.vm_name(dst)
        if self.is_vcenter:
            move = LINKED if linked else FULL
            return [f"VirtualMachine.CloneVM_Task {s} -> {d} in {self.folder_path} (snapshot {snapshot!r}, "
                    f"diskMoveType {move})"]
        ds = _attr(self.target, "datastore", "?")
        return [f"FileManager.MakeDirectory [{ds}] {self.vm_dir(d)}",
                f"Folder.CreateVM_Task {d}: {s}'s hardware at snapshot {snapshot!r}, a child disk of its disk "
                "(a host has no CloneVM_Task)"]

    def plan_snapshot(self, vmx: Path, name: str) -> list[str]:
        return [f"VirtualMachine.CreateSnapshot_Task {self.vm_name(vmx)} {name!r} (no memory, no quiesce)"]

    def plan_start(self, vmx: Path) -> list[str]:
        return [f"VirtualMachine.PowerOnVM_Task {self.vm_name(vmx)}"]

    def plan_delete(self, vmx: Path) -> list[str]:
        return [f"VirtualMachine.Destroy_Task {self.vm_name(vmx)} (in {self.folder_path} only)"]

    # == Driver: about ========================================================================================
    def verify(self) -> None:
        self.placement()

    def version(self) -> ProductVersion | None:
        about = self.session.about
        try:
            build = int(str(about.build))
        except ValueError:
            build = 0
        product = "vCenter Server" if self.is_vcenter else "ESXi"
        return ProductVersion(product, str(about.version), build)

    # == create ================================================================================================
    def create_disk(self, vmx: Path, size_gb: int, adapter: str) -> bool:
        """Create the VM from its rendered .vmx with a `size_gb` system disk; False when the VM already has one."""
        ref = self.find(vmx)
        if ref is not None:
            if self.has_disk(vmx):
                return False
            raise LabctlError(f"{ref.name}: the VM exists on {self.session.display} without a disk",
                              hint="labctl did not make it this way; delete it (labctl destroy) and re-run")
        self.create_vm(vmx, disk_gb=size_gb)
        return True

    def has_disk(self, vmx: Path) -> bool:
        """Whether the lab's folder has this VM with its disk (what the vms stage asks instead of a local .vmdk)."""
        from pyVmomi import vim

        ref = self.find(vmx)
        if ref is None:
            return False
        devices = self._props(ref.obj, ["config.hardware.device"]).get("config.hardware.device") or []
        return any(isinstance(d, vim.vm.device.VirtualDisk) for d in devices)

    def create_disk_commands(self, vmx: Path, size_gb: int, adapter: str) -> list[str]:
        return self.plan_create(vmx, size_gb)

    def disk_identity(self, vmx: Path) -> dict | None:
        """The VM's instanceUuid and its system disk's backing (file name, uuid): what an install marker names, so
        a VM made again (destroy, up) is blank again. None while the lab's folder has no such VM with a disk."""
        from pyVmomi import vim

        ref = self.find(vmx)
        if ref is None:
            return None
        props = self._props(ref.obj, ["config.instanceUuid", "config.hardware.device"])
        disks = [d for d in props.get("config.hardware.device") or [] if isinstance(d, vim.vm.device.VirtualDisk)]
        if not disks:
            return None
        backing = disks[0].backing
        while getattr(backing, "parent", None) is not None:  # a snapshot's delta: the base disk is the one installed
            backing = backing.parent
        return {"disk": str(getattr(backing, "fileName", "") or ""),
                "instance_uuid": str(props.get("config.instanceUuid") or ""),
                "disk_uuid": str(getattr(backing, "uuid", "") or "")}

    def read_facts(self, vmx: Path) -> vf.VmFacts:
        from labctl.render import vmx as vmxlib

        try:
            doc = vmxlib.read(vmx)
        except FileNotFoundError:
            raise LabctlError(f"{vmx}: the VM's configuration does not exist",
                              hint="labctl render / labctl up create it") from None
        return vf.facts(doc, self.vm_name(vmx), where=f"{vmx}: ")

    def create_vm(self, vmx: Path, *, disk_gb: int | None) -> VmRef:
        """CreateVM_Task in the lab's folder from the .vmx's facts (media uploaded first)."""
        name = self.vm_name(vmx)
        f = self.read_facts(vmx)
        p = self.placement()
        cdroms = [vf.Cdrom(c.device, self.media_path(c.iso, vm=name) if c.iso else None, c.start_connected)
                  for c in f.cdroms]
        spec = self._config_spec(f, cdroms=cdroms, disk_gb=disk_gb)
        self._make_dir(name)
        task = self.session.call(f"{name}: CreateVM_Task", self.lab_folder().CreateVM_Task,
                                 config=spec, pool=p.pool, host=p.host)
        self.progress(name, "creating the VM")
        obj = self.session.wait(task, f"{name}: creating the VM on {self.session.display}")
        ref = VmRef(name, obj, spec.files.vmPathName)
        with self._lock:
            self.vms()[name] = ref
        if f.boot_order:  # bootOptions name the disk by its device key, which vSphere gives at creation
            self.reconfigure(vmx, {"bios.bootOrder": ",".join({"disk": "hdd"}.get(b, b) for b in f.boot_order)})
        return ref

    def _make_dir(self, name: str) -> None:
        from pyVmomi import vim

        p = self.placement()
        fm = self.session.content.fileManager
        try:
            fm.MakeDirectory(name=f"[{p.datastore_name}] {self.vm_dir(name)}", datacenter=p.datacenter,
                             createParentDirectories=True)
        except vim.fault.FileAlreadyExists:
            pass
        except Exception as e:  # noqa: BLE001 - any vSphere fault: say what failed for which VM
            from labctl.vsphere.target.session import fault_text

            raise VsphereTaskError(f"{name}: making [{p.datastore_name}] {self.vm_dir(name)} failed: "
                                   f"{fault_text(e)}") from None

    def _network_backing(self, nic: vf.Nic, vm: str) -> Any:
        from pyVmomi import vim

        p = self.placement()
        network = self.network_refs.get(nic.network, nic.network)
        pg = nic.portgroup or self.portgroups.get(network)
        if pg is None:
            raise LabctlError(f"{vm}: ethernet{nic.index} is on network {network!r}, which the target maps "
                              "to no portgroup", hint="map the topology's network to a portgroup (docs/vsphere-target-vms.md)")
        net = p.networks.get(pg)
        if net is None:  # made since this run first looked (the networks stage): look once more
            with self._lock:
                p.networks = self._read_networks(p.datacenter)
            net = p.networks.get(pg)
        if net is None:
            raise EnvironmentProblem(f"{vm}: ethernet{nic.index}: datacenter {p.datacenter_name} has no portgroup "
                                     f"{pg!r}", hint="the networks stage creates the lab's portgroups first")
        if net.key is not None:
            return vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo(
                port=vim.dvs.PortConnection(portgroupKey=net.key, switchUuid=net.switch_uuid))
        return vim.vm.device.VirtualEthernetCard.NetworkBackingInfo(deviceName=pg, network=net.obj)

    def _config_spec(self, f: vf.VmFacts, *, cdroms: list[vf.Cdrom], disk_gb: int | None) -> Any:
        from pyVmomi import vim

        p = self.placement()
        dev = vim.vm.device
        changes: list[Any] = []
        key = iter(range(-101, -1000, -1))
        controllers: dict[str, int] = {"ide0": 200, "ide1": 201}  # every VM has its two IDE controllers
        for d in f.disks:
            if d.controller in controllers:
                continue
            if d.adapter in ("pvscsi", "lsilogic", "lsisas1068", "buslogic"):
                cls = {"pvscsi": dev.ParaVirtualSCSIController, "lsilogic": dev.VirtualLsiLogicController,
                       "lsisas1068": dev.VirtualLsiLogicSASController, "buslogic": dev.VirtualBusLogicController}
                ctrl = cls[d.adapter](key=next(key), busNumber=int(d.controller[4:]), sharedBus="noSharing")
            elif d.adapter == "sata":
                ctrl = dev.VirtualAHCIController(key=next(key), busNumber=int(d.controller[4:]))
            else:
                continue
            controllers[d.controller] = ctrl.key
            changes.append(dev.VirtualDeviceSpec(operation="add", device=ctrl))
        for c in cdroms:
            ctrl_name = c.device.split(":")[0]
            if ctrl_name not in controllers:
                ctrl = dev.VirtualAHCIController(key=next(key), busNumber=int(ctrl_name[4:]))
                controllers[ctrl_name] = ctrl.key
                changes.append(dev.VirtualDeviceSpec(operation="add", device=ctrl))
        if disk_gb is not None and f.disks:
            d = f.disks[0]
            backing = dev.VirtualDisk.FlatVer2BackingInfo(
                diskMode="persistent", thinProvisioned=self.provisioning == "thin",
                eagerlyScrub=self.provisioning == "eager-zeroed-thick", fileName="")
            disk = dev.VirtualDisk(key=next(key), controllerKey=controllers[d.controller], unitNumber=d.unit,
                                   capacityInKB=int(disk_gb) * 1024 * 1024, backing=backing)
            changes.append(dev.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk))
        for c in cdroms:
            changes.append(dev.VirtualDeviceSpec(operation="add", device=self._cdrom(
                c, key=next(key), controller_key=controllers[c.device.split(":")[0]])))
        for n in f.nics:
            changes.append(dev.VirtualDeviceSpec(operation="add", device=self._nic(n, key=next(key), vm=f.name)))
        extra = dict(f.extra_config)
        extra[vf.FOLDER_KEY] = self.folder_path
        spec = vim.vm.ConfigSpec(
            name=f.name, guestId=f.guest_id, numCPUs=f.cpus, numCoresPerSocket=f.cores_per_socket,
            memoryMB=f.memory_mb, firmware=f.firmware, nestedHVEnabled=f.nested_hv, annotation=f.annotation,
            files=vim.vm.FileInfo(vmPathName=f"[{p.datastore_name}] {self.vm_dir(f.name)}/{f.name}.vmx"),
            deviceChange=changes,
            extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in extra.items()],
        )
        if f.hw_version:
            spec.version = f"vmx-{f.hw_version:02d}"
        return spec

    def _cdrom(self, c: vf.Cdrom, *, key: int, controller_key: int) -> Any:
        from pyVmomi import vim

        dev = vim.vm.device
        unit = int(c.device.split(":")[1])
        if c.iso is not None:
            backing = dev.VirtualCdrom.IsoBackingInfo(fileName=c.iso)
        else:
            backing = dev.VirtualCdrom.RemotePassthroughBackingInfo(deviceName="", exclusive=False)
        return dev.VirtualCdrom(key=key, controllerKey=controller_key, unitNumber=unit, backing=backing,
                                connectable=dev.VirtualDevice.ConnectInfo(
                                    startConnected=c.start_connected, allowGuestControl=True, connected=False))

    def _nic(self, n: vf.Nic, *, key: int, vm: str) -> Any:
        from pyVmomi import vim

        dev = vim.vm.device
        cls = {"vmxnet3": dev.VirtualVmxnet3, "e1000": dev.VirtualE1000, "e1000e": dev.VirtualE1000e,
               "vmxnet2": dev.VirtualVmxnet2, "vmxnet": dev.VirtualVmxnet, "vlance": dev.VirtualPCNet32}[n.device]
        nic = cls(key=key, backing=self._network_backing(n, vm),
                  connectable=dev.VirtualDevice.ConnectInfo(startConnected=True, allowGuestControl=True,
                                                            connected=False))
        if n.mac:
            nic.addressType, nic.macAddress = "manual", n.mac
        else:
            nic.addressType = "generated"
        return nic

    # == media ================================================================================================
    def media_path(self, iso: str, *, vm: str = "") -> str:
        """The datastore path of an ISO: a `[ds] path` as is, a local file uploaded once by content hash."""
        from labctl.vsphere.target import upload

        if upload.is_datastore_path(iso):
            return iso
        local = Path(iso)
        if not local.exists() and local in self._substitutes:  # --sim: the synthetic installer written for it
            local = self._substitutes[local]
        with self._media_lock:  # one upload per file, whichever VM asks first
            if local in self._media:
                return self._media[local]
            p = self.placement()
            media = upload.hash_file(local)
            if vm:
                self.progress(vm, f"uploading {local.name}")
            path, _made = upload.ensure_uploaded(self.session, p.browser, media, datacenter=p.datacenter_name,
                                                 datastore=p.datastore_name)
            self._media[local] = path
            return path

    def substitute_media(self, missing: Path, instead: Path) -> None:
        """With --sim: a .vmx's medium that does not exist on this machine is uploaded from `instead` (the
        synthetic installer the vms stage wrote first)."""
        self._substitutes[Path(missing)] = Path(instead)

    def cdrom_devices(self, keys: Mapping[str, str]) -> list[str]:
        """The VM's CD-ROM devices (`sata0:1`, `ide1:0` …), in the order its configuration lists them."""
        return [k[: -len(".deviceType")] for k, v in keys.items()
                if k.endswith(".deviceType") and v.lower() in ("cdrom-image", "atapi-cdrom")]

    def media(self, vmx: Path) -> list[tuple[str, str | None, bool]]:
        """(device, image on the datastore, connected at power-on) of each CD-ROM of the VM."""
        keys = self.config_vmx(self._need(vmx))
        return [(d, keys.get(f"{d}.fileName"), keys.get(f"{d}.startConnected", "TRUE") == "TRUE")
                for d in self.cdrom_devices(keys)]

    def attach_media(self, vmx: Path, iso: Path | None, *, kickstart: Path | None = None,
                     force: bool = False) -> list[str]:
        """The ISO (uploaded once) on the first CD-ROM, the kickstart image on a second one and boot order disk,
        then CD (a blank disk falls through to the installer); `iso` None: every CD-ROM disconnected at power-on.
        The same keys as Workstation's `attach_media`, sent as one ReconfigVM_Task of what differs."""
        ref = self._need(vmx)
        keys = self.config_vmx(ref)
        devices = self.cdrom_devices(keys)
        if iso is None:
            return self.reconfigure(vmx, {f"{d}.startConnected": "FALSE" for d in devices}, force=force)
        from labctl.workstation.driver import cdrom_changes

        media = [self.media_path(os.fspath(p), vm=ref.name) for p in (iso, kickstart) if p is not None]
        changes = cdrom_changes(keys, devices, media[0], media[1] if kickstart is not None else None)
        return self.reconfigure(vmx, changes, force=force)

    # == config read back =====================================================================================
    def _config(self, ref: VmRef) -> dict[str, Any]:
        return self._props(ref.obj, ["config", "runtime.powerState", "parent"])

    def config_vmx(self, ref: VmRef, props: Mapping[str, Any] | None = None) -> dict[str, str]:
        """The VM's configuration on vSphere as .vmx keys (vmxfacts' table read backwards)."""
        from pyVmomi import vim

        props = props if props is not None else self._config(ref)
        cfg = props.get("config")
        if cfg is None:
            raise LabctlError(f"{ref.name}: vSphere reports no configuration for the VM")
        hw = cfg.hardware
        devices = list(hw.device or [])
        by_key = {d.key: d for d in devices}
        out: dict[str, str] = {"displayName": cfg.name, "guestOS": vf.guest_os_of(str(cfg.guestId or "")),
                               "numvcpus": str(hw.numCPU), "memsize": str(hw.memoryMB)}
        if cfg.version and str(cfg.version).startswith("vmx-"):
            out["virtualHW.version"] = str(int(str(cfg.version)[4:]))
        if (hw.numCoresPerSocket or 1) != 1:
            out["cpuid.coresPerSocket"] = str(hw.numCoresPerSocket)
        if str(cfg.firmware or "bios") == "efi":
            out["firmware"] = "efi"
        if cfg.nestedHVEnabled:
            out["vhv.enable"] = "TRUE"
        if cfg.annotation:
            out["annotation"] = cfg.annotation
        names = {n.key: n.name for n in self.placement().networks.values() if n.key}
        eth = 0
        # ethernetN by device key (4000, 4001 … in the order the NICs were added): the device list's own order
        # is not stable across an edit
        for d in sorted(devices, key=lambda d: d.key):
            if isinstance(d, vim.vm.device.VirtualEthernetCard):
                p = f"ethernet{eth}"
                eth += 1
                out[f"{p}.present"] = "TRUE"
                out[f"{p}.virtualDev"] = _nic_kind(d)
                if d.addressType == "manual":
                    out[f"{p}.addressType"] = "static"
                if d.macAddress:
                    out[f"{p}.address"] = str(d.macAddress).lower()
                b = d.backing
                if isinstance(b, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo):
                    out[f"{p}.networkName"] = names.get(b.port.portgroupKey, b.port.portgroupKey)
                elif b is not None:
                    out[f"{p}.networkName"] = str(getattr(b, "deviceName", "") or "")
        for d in devices:  # every SCSI/SATA controller (IDE's two are always there)
            cname = _controller_name(d)
            if cname is not None and not cname.startswith("ide"):
                out[f"{cname}.present"] = "TRUE"
                if cname.startswith("scsi"):
                    out[f"{cname}.virtualDev"] = _scsi_kind(d)
        for d in devices:
            ctrl = by_key.get(getattr(d, "controllerKey", None))
            if ctrl is None:
                continue
            cname = _controller_name(ctrl)
            if cname is None:
                continue
            dev_name = f"{cname}:{d.unitNumber}"
            if isinstance(d, vim.vm.device.VirtualDisk):
                out[f"{dev_name}.present"] = "TRUE"
                out[f"{dev_name}.fileName"] = str(d.backing.fileName)
            elif isinstance(d, vim.vm.device.VirtualCdrom):
                out[f"{dev_name}.present"] = "TRUE"
                iso = isinstance(d.backing, vim.vm.device.VirtualCdrom.IsoBackingInfo)
                out[f"{dev_name}.deviceType"] = "cdrom-image" if iso else "atapi-cdrom"
                if iso:
                    out[f"{dev_name}.fileName"] = str(d.backing.fileName)
                out[f"{dev_name}.startConnected"] = "TRUE" if (d.connectable and d.connectable.startConnected) \
                    else "FALSE"
        order = getattr(getattr(cfg, "bootOptions", None), "bootOrder", None) or []
        kinds = [{"BootableDiskDevice": "hdd", "BootableCdromDevice": "cdrom", "BootableEthernetDevice": "ethernet",
                  "BootableFloppyDevice": "floppy"}.get(type(b).__name__.split(".")[-1], "") for b in order]
        if any(kinds):
            out["bios.bootOrder"] = ",".join(k for k in kinds if k)
        for opt in cfg.extraConfig or []:
            out[str(opt.key)] = "" if opt.value is None else str(opt.value)
        return out

    def read_config(self, vmx: Path):
        """The VM's configuration on vSphere as a `VmxFile` (keys as `config_vmx` names them)."""
        from labctl.render import vmx as vmxlib

        ref = self._need(vmx)
        keys = self.config_vmx(ref)
        text = "".join(f'{k} = "{_escape(v)}"\n' for k, v in keys.items())
        return vmxlib.VmxFile.from_text('.encoding = "UTF-8"\n' + text)

    def read_guest_var(self, vmx: Path, name: str) -> str | None:
        """`guestinfo.<name>` of the VM: what the guest set with `vmtoolsd --cmd "info-set guestinfo.<name> …"`
        is in the VM's extraConfig on vSphere, as are the values labctl configured."""
        ref = self._need(vmx)
        key = name if name.startswith("guestinfo.") else f"guestinfo.{name}"
        props = self._props(ref.obj, ["config.extraConfig"])
        for opt in props.get("config.extraConfig") or []:
            if str(opt.key).lower() == key.lower():
                return None if opt.value in (None, "") else str(opt.value)
        return None

    # == reconfigure ==========================================================================================
    def reconfigure(self, vmx: Path, changes: Mapping[str, str | None], *, force: bool = False,
                    dry_run: bool = False) -> list[str]:
        ref = self._need(vmx)
        props = self._config(ref)
        current = self.config_vmx(ref, props)
        wanted = {k: v for k, v in changes.items() if not _ignored(k, v)}
        todo = vf.differing(current, wanted)
        if not todo or dry_run:
            return todo
        if str(props.get("runtime.powerState")) != "poweredOff" and not force:
            raise RefusedError(f"{ref.name}: the VM is running; its configuration needs {', '.join(todo)}",
                               hint="stop it first (labctl down FILE), then re-run (or --force)")
        spec = self._reconfig_spec(ref, props["config"], {k: wanted[k] for k in todo})
        task = self.session.call(f"{ref.name}: ReconfigVM_Task", ref.obj.ReconfigVM_Task, spec=spec)
        self.session.wait(task, f"{ref.name}: reconfiguring ({', '.join(todo)})")
        self._mirror(ref)
        return todo

    def _reconfig_spec(self, ref: VmRef, cfg: Any, todo: Mapping[str, str | None]) -> Any:
        import re

        from pyVmomi import vim

        spec = vim.vm.ConfigSpec()
        new_controllers: list[str] = []
        boot: list[str] | None = None
        extra: list[Any] = []
        nic_edits: dict[int, dict[str, str | None]] = {}
        cd_edits: dict[str, dict[str, str | None]] = {}
        for k, v in todo.items():
            kl = k.lower()
            if kl == "numvcpus":
                spec.numCPUs = int(v or 1)
            elif kl == "memsize":
                spec.memoryMB = int(v or 0)
            elif kl == "cpuid.corespersocket":
                spec.numCoresPerSocket = int(v or 1)
            elif kl == "vhv.enable":
                spec.nestedHVEnabled = vf._true(v)
            elif kl == "firmware":
                spec.firmware = "efi" if (v or "").lower() == "efi" else "bios"
            elif kl == "annotation":
                spec.annotation = v or ""
            elif kl == "displayname":
                spec.name = v
            elif kl == "guestos":
                spec.guestId = vf.guest_id(v or "other", where=f"{ref.name}: ")
            elif m := re.match(r"^ethernet(\d+)\.(address|addresstype)$", kl):
                nic_edits.setdefault(int(m.group(1)), {})[m.group(2)] = v
            elif m := re.match(r"^((?:sata|ide)\d+:\d+)\.(filename|startconnected|devicetype|present)$", kl):
                cd_edits.setdefault(m.group(1), {})[m.group(2)] = v
            elif m := re.match(r"^(sata\d+)\.present$", kl):
                new_controllers.append(m.group(1))
            elif kl == "bios.bootorder":
                boot = [b.strip() for b in (v or "").split(",") if b.strip()]
            elif vf.split_keys([k])[0]:
                raise LabctlError(f"{ref.name}: {k} cannot be changed on vSphere by labctl",
                                  hint="it is hardware vSphere sets itself; re-create the VM (labctl destroy, up)")
            else:
                extra.append(vim.option.OptionValue(key=k, value="" if v is None else v))
        devices = list(cfg.hardware.device or [])
        changes = []
        nics = sorted((d for d in devices if isinstance(d, vim.vm.device.VirtualEthernetCard)), key=lambda d: d.key)
        for idx, edit in nic_edits.items():
            if idx >= len(nics):
                raise LabctlError(f"{ref.name}: ethernet{idx} does not exist on the VM")
            nic = nics[idx]
            if edit.get("address"):
                nic.addressType, nic.macAddress = "manual", edit["address"]
            elif edit.get("addresstype", "").lower() == "static" if edit.get("addresstype") else False:
                nic.addressType = "manual"
            changes.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=nic))
        pending: dict[str, int] = {}
        for i, cname in enumerate(new_controllers):
            if not any(_controller_name(d) == cname for d in devices):
                ctrl = vim.vm.device.VirtualAHCIController(key=-300 - i, busNumber=int(cname[4:]))
                pending[cname] = ctrl.key
                changes.append(vim.vm.device.VirtualDeviceSpec(operation="add", device=ctrl))
        if cd_edits:
            changes.extend(self._cdrom_edits(ref, devices, cd_edits, pending))
        if boot is not None:
            spec.bootOptions = vim.vm.BootOptions(bootOrder=self._boot_order(ref, devices, boot))
        if changes:
            spec.deviceChange = changes
        if extra:
            spec.extraConfig = extra
        return spec

    @staticmethod
    def _boot_order(ref: VmRef, devices: list[Any], order: list[str]) -> list[Any]:
        from pyVmomi import vim

        out: list[Any] = []
        for kind in order:
            if kind == "hdd":
                disk = next((d for d in sorted(devices, key=lambda d: d.key)
                             if isinstance(d, vim.vm.device.VirtualDisk)), None)
                if disk is None:
                    raise LabctlError(f"{ref.name}: boot order {','.join(order)} names a disk the VM does not have")
                out.append(vim.vm.BootOptions.BootableDiskDevice(deviceKey=disk.key))
            elif kind == "cdrom":
                out.append(vim.vm.BootOptions.BootableCdromDevice())
            elif kind == "floppy":
                out.append(vim.vm.BootOptions.BootableFloppyDevice())
            else:
                raise LabctlError(f"{ref.name}: bios.bootOrder {kind!r} has no vSphere counterpart labctl knows")
        return out

    def _cdrom_edits(self, ref: VmRef, devices: list[Any], edits: Mapping[str, Mapping[str, str | None]],
                     pending: Mapping[str, int] | None = None) -> list[Any]:
        from pyVmomi import vim

        by_key = {d.key: d for d in devices}
        out = []
        key = -200
        for name, edit in edits.items():
            cname, unit = name.split(":")[0], int(name.split(":")[1])
            cd = next((d for d in devices if isinstance(d, vim.vm.device.VirtualCdrom)
                       and _controller_name(by_key.get(d.controllerKey)) == cname and d.unitNumber == unit), None)
            iso = edit.get("filename")
            start = edit.get("startconnected")
            if cd is None:
                ctrl = next((d for d in devices if _controller_name(d) == cname), None)
                ctrl_key = ctrl.key if ctrl is not None else (pending or {}).get(cname)
                if ctrl_key is None:
                    raise LabctlError(f"{ref.name}: no controller {cname} for the CD-ROM {name}")
                c = vf.Cdrom(name, iso, start is None or vf._true(start))
                key -= 1
                out.append(vim.vm.device.VirtualDeviceSpec(
                    operation="add", device=self._cdrom(c, key=key, controller_key=ctrl_key)))
                continue
            if iso is not None:
                cd.backing = vim.vm.device.VirtualCdrom.IsoBackingInfo(fileName=iso)
            if start is not None:
                cd.connectable.startConnected = vf._true(start)
            out.append(vim.vm.device.VirtualDeviceSpec(operation="edit", device=cd))
        return out

    def _mirror(self, ref: VmRef) -> None:
        """A clone has no rendered .vmx: its .vmx in the state dir mirrors the VM on vSphere (as vmrun clone's)."""
        from labctl.render import vmx as vmxlib

        path = self.vmx_of(ref.name)
        manifest_owned = path.is_file() and not _is_mirror(path)
        if manifest_owned:
            return  # render's file: never overwritten
        keys = self.config_vmx(ref)
        text = ('.encoding = "UTF-8"\n# labctl: mirror of the vSphere VM ' + ref.name + " (" + ref.path + ")\n"
                + "".join(f'{k} = "{_escape(v)}"\n' for k, v in keys.items()))
        path.parent.mkdir(parents=True, exist_ok=True)
        vmxlib.write(path, vmxlib.VmxFile.from_text(text), force=True)

    # == snapshots and clones ==================================================================================
    def _snapshots(self, ref: VmRef) -> list[tuple[str, Any]]:
        props = self._props(ref.obj, ["snapshot"])
        info = props.get("snapshot")
        out: list[tuple[str, Any]] = []

        def walk(nodes):
            for n in nodes or []:
                out.append((str(n.name), n.snapshot))
                walk(n.childSnapshotList)

        walk(getattr(info, "rootSnapshotList", None))
        return out

    def list_snapshots(self, vmx: Path) -> list[str]:
        return [n for n, _ in self._snapshots(self._need(vmx))]

    def snapshot(self, vmx: Path, name: str) -> None:
        ref = self._need(vmx)
        task = self.session.call(f"{ref.name}: CreateSnapshot_Task", ref.obj.CreateSnapshot_Task,
                                 name=name, description="labctl: the linked clones' base", memory=False,
                                 quiesce=False)
        self.session.wait(task, f"{ref.name}: taking snapshot {name!r}")

    def clone(self, src: Path, dst: Path, *, snapshot: str, clone_name: str, linked: bool = True) -> None:
        """A linked (or full) clone of `src` at `snapshot` in the lab's folder. The VM is named after `dst`'s stem,
        which is `clone_name` for every clone labctl makes (`<vm_dir>/<name>/<name>.vmx`); a VM is found by it."""
        if clone_name != self.vm_name(dst):
            raise LabctlError(f"cannot clone to {dst} as {clone_name!r}: on vSphere a VM is named after its .vmx "
                              f"({self.vm_name(dst)!r})")
        from pyVmomi import vim

        ref = self._need(src)
        name = self.vm_name(dst)
        if self.find(dst) is not None:
            raise RefusedError(f"cannot clone {ref.name} to {name}: the VM already exists in {self.folder_path}",
                               hint="labctl never overwrites a VM; `labctl destroy FILE` removes the lab's VMs")
        snap = next((s for n, s in self._snapshots(ref) if n == snapshot), None)
        if snap is None:
            raise LabctlError(f"{ref.name} has no snapshot {snapshot!r}", hint="the clones stage takes it first")
        p = self.placement()
        self.progress(name, f"cloning {ref.name}@{snapshot}")
        if self.is_vcenter:
            reloc = vim.vm.RelocateSpec(diskMoveType=LINKED if linked else FULL, pool=p.pool, datastore=p.datastore)
            if p.host is not None:
                reloc.host = p.host
            spec = vim.vm.CloneSpec(location=reloc, snapshot=snap, powerOn=False, template=False)
            task = self.session.call(f"{name}: CloneVM_Task", ref.obj.CloneVM_Task, folder=self.lab_folder(), name=name,
                                     spec=spec)
            obj = self.session.wait(task, f"{name}: cloning {ref.name}@{snapshot}")
            path = str(self._props(obj, ["config.files.vmPathName"]).get("config.files.vmPathName") or "")
            new = VmRef(name, obj, path)
        else:
            if not linked:
                raise LabctlError(f"{name}: a full clone needs vCenter (a standalone host has no CloneVM_Task)")
            new = self._host_linked_clone(ref, snap, name)
        with self._lock:
            self.vms()[name] = new
        self._mirror(new)

    def _host_linked_clone(self, src: VmRef, snap: Any, name: str) -> VmRef:
        """Standalone ESXi: CreateVM_Task with the snapshot's hardware and a child disk of the snapshot's disk."""
        from pyVmomi import vim

        p = self.placement()
        snap_cfg = self._props(snap, ["config"]).get("config")
        dev = vim.vm.device
        changes = []
        key = iter(range(-101, -1000, -1))
        keymap: dict[int, int] = {}
        devices = list(snap_cfg.hardware.device or [])
        for d in devices:  # controllers first (the disks and CD-ROMs refer to them)
            if isinstance(d, (dev.VirtualSCSIController, dev.VirtualAHCIController)):
                k = next(key)
                keymap[d.key] = k
                d.key = k
                d.device = []
                changes.append(dev.VirtualDeviceSpec(operation="add", device=d))
        keymap.update({200: 200, 201: 201})
        for d in devices:
            if isinstance(d, dev.VirtualDisk):
                parent = d.backing
                child = dev.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", fileName="",
                                                            thinProvisioned=True, parent=parent)
                new = dev.VirtualDisk(key=next(key), controllerKey=keymap[d.controllerKey], unitNumber=d.unitNumber,
                                      capacityInKB=d.capacityInKB, backing=child)
                changes.append(dev.VirtualDeviceSpec(operation="add", fileOperation="create", device=new))
            elif isinstance(d, (dev.VirtualCdrom, dev.VirtualEthernetCard)):
                d.key = next(key)
                if isinstance(d, dev.VirtualCdrom):
                    d.controllerKey = keymap.get(d.controllerKey, d.controllerKey)
                if isinstance(d, dev.VirtualEthernetCard):
                    d.macAddress = None if d.addressType != "manual" else d.macAddress
                changes.append(dev.VirtualDeviceSpec(operation="add", device=d))
        extra = [vim.option.OptionValue(key=o.key, value=o.value) for o in snap_cfg.extraConfig or []
                 if str(o.key).startswith(("guestinfo.", "labctl.")) or str(o.key) in vf.EXTRA_KEYS
                 or str(o.key) == "bios.bootOrder"]
        spec = vim.vm.ConfigSpec(
            name=name, guestId=snap_cfg.guestId, version=snap_cfg.version, numCPUs=snap_cfg.hardware.numCPU,
            numCoresPerSocket=snap_cfg.hardware.numCoresPerSocket, memoryMB=snap_cfg.hardware.memoryMB,
            firmware=snap_cfg.firmware, nestedHVEnabled=snap_cfg.nestedHVEnabled, annotation=snap_cfg.annotation,
            files=vim.vm.FileInfo(vmPathName=f"[{p.datastore_name}] {self.vm_dir(name)}/{name}.vmx"),
            deviceChange=changes, extraConfig=extra)
        self._make_dir(name)
        order = getattr(getattr(snap_cfg, "bootOptions", None), "bootOrder", None)
        task = self.session.call(f"{name}: CreateVM_Task", self.lab_folder().CreateVM_Task, config=spec, pool=p.pool,
                                 host=p.host)
        obj = self.session.wait(task, f"{name}: creating the linked clone of {src.name}")
        new_ref = VmRef(name, obj, spec.files.vmPathName)
        if order:  # the clone's disk has its own device key: the same order, named anew
            kinds = ",".join({"BootableDiskDevice": "hdd", "BootableCdromDevice": "cdrom"}.get(
                type(b).__name__.split(".")[-1], "") for b in order)
            with self._lock:
                self.vms()[name] = new_ref
            self.reconfigure(self.vmx_of(name), {"bios.bootOrder": kinds})
        return new_ref

    # == power =================================================================================================
    def start(self, vmx: Path, *, gui: bool = False) -> None:
        ref = self._need(vmx)
        state = str(self._props(ref.obj, ["runtime.powerState"]).get("runtime.powerState"))
        if state == "poweredOn":
            return
        task = self.session.call(f"{ref.name}: PowerOnVM_Task", ref.obj.PowerOnVM_Task)
        self.progress(ref.name, "powering on")
        self.session.wait(task, f"{ref.name}: powering on")

    def stop(self, vmx: Path, *, hard: bool = False, timeout: float = 300.0) -> None:
        from pyVmomi import vim

        ref = self._need(vmx)
        state = str(self._props(ref.obj, ["runtime.powerState"]).get("runtime.powerState"))
        if state == "poweredOff":
            raise LabctlError(f"{ref.name}: the VM is not powered on",
                              hint="the VM is already stopped; `labctl down` skips stopped VMs")
        if hard:
            task = self.session.call(f"{ref.name}: PowerOffVM_Task", ref.obj.PowerOffVM_Task)
            self.session.wait(task, f"{ref.name}: powering off")
            return
        try:
            ref.obj.ShutdownGuest()
        except vim.fault.ToolsUnavailable:
            raise LabctlError(f"{ref.name}: VMware Tools are not running in the guest, so it cannot be shut down "
                              "cleanly", hint="stop it hard (labctl down --hard)") from None
        deadline = time.monotonic() + timeout
        delay = 0.05
        while str(self._props(ref.obj, ["runtime.powerState"]).get("runtime.powerState")) != "poweredOff":
            if time.monotonic() > deadline:
                raise LabctlError(f"{ref.name}: still running {timeout:.0f} s after the guest shutdown",
                                  hint="stop it hard (labctl down --hard)")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def power_states(self) -> dict[str, str]:
        """name → poweredOn/poweredOff/suspended for the lab's VMs (one read)."""
        from pyVmomi import vim, vmodl

        p = self.placement()
        refs = self.vms(refresh=True)
        if not refs:
            return {}
        pc_t = vmodl.query.PropertyCollector
        spec = pc_t.FilterSpec(objectSet=[pc_t.ObjectSpec(obj=r.obj, skip=False) for r in refs.values()],
                               propSet=[pc_t.PropertySpec(type=vim.VirtualMachine, pathSet=["name", "runtime.powerState"])])
        del p
        return {str(props["name"]): str(props.get("runtime.powerState")) for _o, props in self._retrieve([spec])}

    def list_running(self) -> list[Path]:
        return [self.vmx_of(n) for n, s in sorted(self.power_states().items()) if s == "poweredOn"]

    def is_running(self, vmx: Path) -> bool:
        ref = self.find(vmx)
        if ref is None:
            return False
        return str(self._props(ref.obj, ["runtime.powerState"]).get("runtime.powerState")) == "poweredOn"

    def guest_ip(self, vmx: Path, *, wait: bool = True, timeout: float | None = None) -> str:
        ref = self._need(vmx)
        deadline = time.monotonic() + (timeout or 600.0)
        delay = 0.1
        while True:
            props = self._props(ref.obj, ["guest.ipAddress", "runtime.powerState"])
            ip = props.get("guest.ipAddress")
            if ip:
                return str(ip)
            if str(props.get("runtime.powerState")) != "poweredOn":
                raise LabctlError(f"{ref.name}: the VM is not powered on, so it has no guest IP")
            if not wait or time.monotonic() > deadline:
                raise LabctlError(f"{ref.name}: VMware Tools report no IP address",
                                  hint="nested ESX reports no IP this way before its tools run — use the topology's IP")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    # == delete ================================================================================================
    def owned(self, ref: VmRef) -> tuple[bool, str]:
        """Whether the VM is the lab's, read fresh from vSphere: (yes/no, where it is)."""
        props = self._props(ref.obj, ["parent", "config.files.vmPathName", "config.extraConfig"])
        path = str(props.get("config.files.vmPathName") or "")
        marker = next((str(o.value) for o in props.get("config.extraConfig") or [] if o.key == vf.FOLDER_KEY), None)
        if self.is_vcenter:
            parent = props.get("parent")
            folder = self.placement().folder
            ok = parent is not None and folder is not None and parent._moId == folder._moId
            return ok, f"folder {getattr(parent, 'name', '?')}" if not ok else self.folder_path
        ok = self._owned_path(path) and marker == self.folder_path
        return ok, path

    def delete_vm(self, vmx: Path) -> None:
        """Destroy_Task of the lab's VM `<name>`; refused for anything outside the lab's folder."""
        name = self.vm_name(vmx)
        ref = self.find(vmx)
        if ref is None:
            raise LabctlError(f"{name}: no such VM in the lab's folder {self.folder_path} on {self.session.display}",
                              hint="labctl deletes only VMs in the lab's folder")
        ok, where = self.owned(ref)
        if not ok:
            raise RefusedError(f"{name}: refusing to delete a VM outside the lab's folder {self.folder_path} "
                               f"(it is in {where})", hint="labctl never touches anything outside target.folder")
        task = self.session.call(f"{name}: Destroy_Task", ref.obj.Destroy_Task)
        self.session.wait(task, f"{name}: deleting the VM")
        with self._lock:
            self.vms().pop(name, None)
        mirror = self.vmx_of(name)
        if mirror.is_file() and _is_mirror(mirror):
            mirror.unlink()


def _escape(value: str) -> str:
    return value.replace("|", "|7C").replace('"', "|22")


def _is_mirror(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(200)
    except OSError:
        return False
    return b"# labctl: mirror of the vSphere VM" in head


def _ignored(key: str, value: str | None) -> bool:
    """Keys that need nothing on vSphere: Workstation-only ones a clone's settings carry (a generated MAC's
    leftovers, msg.autoAnswer), and `ideN.present = TRUE` (every vSphere VM has its two IDE controllers)."""
    import re

    kl = key.lower()
    return (kl.endswith(".generatedaddress") or kl.endswith(".generatedaddressoffset")
            or kl in ("msg.autoanswer",) or (re.fullmatch(r"ide[01]\.present", kl) is not None and value == "TRUE"))


def _nic_kind(d: Any) -> str:
    from pyVmomi import vim

    dev = vim.vm.device
    for cls, name in ((dev.VirtualVmxnet3, "vmxnet3"), (dev.VirtualE1000e, "e1000e"), (dev.VirtualE1000, "e1000"),
                      (dev.VirtualVmxnet2, "vmxnet2"), (dev.VirtualPCNet32, "vlance")):
        if isinstance(d, cls):
            return name
    return type(d).__name__


def _scsi_kind(c: Any) -> str:
    from pyVmomi import vim

    dev = vim.vm.device
    for cls, name in ((dev.ParaVirtualSCSIController, "pvscsi"), (dev.VirtualLsiLogicSASController, "lsisas1068"),
                      (dev.VirtualLsiLogicController, "lsilogic"), (dev.VirtualBusLogicController, "buslogic")):
        if isinstance(c, cls):
            return name
    return type(c).__name__


def _controller_name(c: Any) -> str | None:
    from pyVmomi import vim

    dev = vim.vm.device
    if isinstance(c, dev.VirtualSCSIController):
        return f"scsi{c.busNumber}"
    if isinstance(c, dev.VirtualAHCIController):
        return f"sata{c.busNumber}"
    if isinstance(c, dev.VirtualIDEController):
        return f"ide{c.busNumber}"
    return None
