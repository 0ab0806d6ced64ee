"""Render a topology into every file a Workstation host needs — pure: returns contents, writes nothing.

Layout (relative to the output directory):
  <vm>/<vm>.vmx            every VM that is not a linked clone
  <clone>/clone-plan.json  for a linked clone: the source .vmx, the snapshot, the vmrun command and the settings
                           labctl applies to the clone's .vmx after cloning (a linked clone's .vmx comes from vmrun)
  host/networking          the lab's vmnets for /etc/vmware/networking
  host/preferences-namedPVNs   LAN segment names for the Workstation preferences
  host/exports             NFS exports for each NFS server of the lab
  host/labctl-vmnet-permissions.service   systemd unit re-applying /dev/vmnet* group and mode

On a vSphere target (`target: {kind: vsphere}`) there is no Workstation host: no vmnets, LAN-segment preferences
or vmnet unit; each vNIC names its portgroup (`ethernetN.networkName`, as ESXi's own .vmx files do).
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass
from pathlib import Path

from labctl.topology import EsxHost, Topology, Vm, versions

DEFAULT_VMNET_GROUP = "vmware"


@dataclass(frozen=True)
class RenderedFile:
    relpath: str
    content: str
    kind: str  # vmx | clone-plan | host


@dataclass(frozen=True)
class _NicView:
    index: int
    mac: str
    net: object
    portgroup: str | None = None  # on a vSphere target: the portgroup the vNIC connects to (.vmx networkName)


def _nics(topo: Topology, vm: EsxHost | Vm) -> list[_NicView]:
    if topo.target is not None:
        from labctl.topology.portgroups import portgroup_for

        return [_NicView(n.index, n.mac, topo.network(n.network), portgroup_for(topo, n.network)) for n in vm.nics]
    return [_NicView(n.index, n.mac, topo.network(n.network)) for n in vm.nics]


def clone_settings(topo: Topology, host: EsxHost, *, source_key: bool = True) -> dict[str, str | None]:
    """The .vmx keys labctl sets on a linked clone after vmrun made it (its own identity and MACs; on ESXi 5.1+
    the `guestinfo.labctl.*` its boot script applies, `labctl.render.identity`).

    A value of None means: delete the key (a generated address copied from the source must not linger)."""
    s = {
        "displayName": host.name,
        "uuid.action": "create",
        "msg.autoAnswer": "TRUE",
        "numvcpus": str(host.cpus),
        "memsize": str(host.memory_mb),
    }
    for n in _nics(topo, host):
        s[f"ethernet{n.index}.addressType"] = "static"
        s[f"ethernet{n.index}.address"] = n.mac
        s[f"ethernet{n.index}.generatedAddress"] = None
        s[f"ethernet{n.index}.generatedAddressOffset"] = None
    from labctl.render.identity import guestinfo_settings

    s.update(guestinfo_settings(topo, host, source_key=source_key))  # for its boot script (ESXi 5.1+)
    return s


def vmx_for_host(topo: Topology, host: EsxHost, env) -> str:
    v = host.version_info
    era = versions.template_era(host.flavor, v)
    ws = topo.workstation
    return env.get_template(f"vmx/{era}.vmx.j2").render(
        vm=host,
        lab=topo.lab,
        hw_version=ws.hw_version,
        guest_os=versions.guest_os(host.flavor, v, ws.version_info),
        annotation=f"labctl lab {topo.lab}: {host.label}",
        vhv=versions.has_vhv(ws.version_info),
        nic_device=versions.nic_device(host.flavor, v),
        scsi_device=versions.scsi_device(host.flavor, v),
        cores_per_socket=2 if host.cpus % 2 == 0 else 1,
        nics=_nics(topo, host),
    )


def vmx_for_vm(topo: Topology, vm: Vm, env) -> str:
    return env.get_template("vmx/guest.vmx.j2").render(
        vm=vm,
        lab=topo.lab,
        hw_version=topo.workstation.hw_version,
        guest_os=vm.guest_os,
        annotation=f"labctl lab {topo.lab}",
        nic_device="e1000",
        nics=_nics(topo, vm),
    )


def clone_plan(topo: Topology, host: EsxHost) -> dict:
    src = topo.host(host.linked_clone_of)
    return {
        "kind": "linked-clone",
        "name": host.name,
        "source": {"name": src.name, "vmx": str(src.vmx_path)},
        "snapshot": host.snapshot,
        "vmx": str(host.vmx_path),
        "vmrun": [
            "vmrun",
            "-T",
            "ws",
            "clone",
            str(src.vmx_path),
            str(host.vmx_path),
            "linked",
            f"-snapshot={host.snapshot}",
            f"-cloneName={host.name}",
        ],
        # (without guestinfo.labctl.sourcekey: it exists once the source is installed, and is lab state)
        "settings": clone_settings(topo, host, source_key=False),
    }


@dataclass(frozen=True)
class _VmnetView:
    vmnet: int
    dhcp: bool
    netmask: str
    subnet_address: str
    host_ip: str | None


def host_files(topo: Topology, env, vmnet_group: str = DEFAULT_VMNET_GROUP) -> list[RenderedFile]:
    out = []
    ws_host = topo.target is None  # a vSphere target has no Workstation host: only the NFS exports apply
    vmnets = [] if not ws_host else [
        _VmnetView(n.vmnet, n.dhcp, n.netmask, str(ipaddress.ip_network(n.subnet).network_address), n.host_ip)
        for n in sorted(topo.networks, key=lambda n: n.vmnet or 0)
        if n.type == "host-only"
    ]
    if vmnets:
        out.append(
            RenderedFile(
                "host/networking",
                env.get_template("host/networking.j2").render(lab=topo.lab, vmnets=vmnets),
                "host",
            )
        )
    segments = [
        {"name": f"{topo.lab}-{n.name}", "pvn_id": n.pvn_id} for n in topo.networks if n.type == "lan-segment"
    ] if ws_host else []
    if segments:
        out.append(
            RenderedFile(
                "host/preferences-namedPVNs",
                env.get_template("host/preferences-pvn.j2").render(lab=topo.lab, segments=segments),
                "host",
            )
        )
    by_server: dict[str, list[dict]] = {}
    for ds in topo.datastores:
        clients = _export_clients(topo, ds)
        by_server.setdefault(ds.server, []).append({"share": ds.share, "clients": clients})
    for server, exports in sorted(by_server.items()):
        name = "host/exports" if len(by_server) == 1 else f"host/exports-{server}"
        out.append(
            RenderedFile(
                name,
                env.get_template("host/exports.j2").render(lab=topo.lab, server=server, exports=exports),
                "host",
            )
        )
    if ws_host:
        out.append(RenderedFile("host/labctl-vmnet-permissions.service", vmnet_unit(vmnet_group, env), "host"))
    return out


def _export_clients(topo: Topology, ds) -> str:
    """The subnet the ESX hosts mount from: the network holding the server, else the hosts' storage network."""
    try:
        server = ipaddress.ip_address(ds.server)
    except ValueError:
        server = None
    for n in topo.networks:
        if server is not None and n.subnet and server in ipaddress.ip_network(n.subnet):
            return n.subnet
    nets = sorted({i.network for h in ds.hosts for i in (topo.host(h).management, *topo.host(h).vmkernel)})
    return topo.network(nets[0]).subnet or "*" if nets else "*"


def vmnet_unit(group: str = DEFAULT_VMNET_GROUP, env=None) -> str:
    """The systemd unit text that re-applies /dev/vmnet* group and g+rw after VMware's network service starts."""
    if env is None:
        from labctl.render.templates import environment

        env = environment()
    return env.get_template("host/vmnet-permissions.service.j2").render(group=group)


def render_lab(
    topo: Topology,
    *,
    template_dir: str | os.PathLike[str] | None = None,
    vmnet_group: str = DEFAULT_VMNET_GROUP,
) -> list[RenderedFile]:
    from labctl.render.templates import environment

    env = environment(template_dir)
    files: list[RenderedFile] = []
    for h in topo.esx_hosts:
        if h.is_clone:
            files.append(
                RenderedFile(
                    f"{h.name}/clone-plan.json",
                    json.dumps(clone_plan(topo, h), indent=2) + "\n",
                    "clone-plan",
                )
            )
        else:
            files.append(RenderedFile(f"{h.name}/{h.name}.vmx", vmx_for_host(topo, h, env), "vmx"))
    for vm in topo.vms:
        files.append(RenderedFile(f"{vm.name}/{vm.name}.vmx", vmx_for_vm(topo, vm, env), "vmx"))
    files += host_files(topo, env, vmnet_group)
    return files


def output_path(topo: Topology, out_dir: Path | None, f: RenderedFile) -> Path:
    """Where a rendered file goes: under -o DIR, else VM files in vm_dir and host files in vm_dir/.labctl/host."""
    if out_dir is not None:
        return out_dir / f.relpath
    if f.kind == "host":
        return topo.state_dir / f.relpath
    return topo.workstation.vm_dir / f.relpath
