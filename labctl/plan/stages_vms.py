"""Stages that drive Workstation (real vmrun, or the simulated Workstation with --sim): vms, start."""

from __future__ import annotations

from pathlib import Path

from labctl.errors import LabctlError, RefusedError
from labctl.plan.context import Context
from labctl.plan.model import StageReport


def driver(ctx: Context):
    from labctl.plan.backends import vm_driver

    # planning reads only: the simulated Workstation's directory is not created
    return vm_driver(ctx)


def vms(ctx: Context, rep: StageReport) -> None:
    from labctl.render.lab import clone_settings

    topo = ctx.topology
    drv = driver(ctx)
    # VMs labctl renders itself: their .vmx came from the render stage; a real VM also needs its disk
    for vm in (*[h for h in topo.esx_hosts if not h.is_clone], *topo.vms):
        if not vm.vmx_path.is_file() and not ctx.apply:
            ctx.pending.add(vm.name)  # the render stage writes it first
            rep.change(vm.name, f"create VM {vm.vmx_path}")
        elif not vm.vmx_path.is_file():
            rep.fail(vm.name, f"{vm.vmx_path} is missing", hint=f"run the render stage: labctl up {ctx.display_name} "
                                                                 "--only render")
            ctx.failed_hosts[vm.name] = "vms"
            continue
        if not ctx.sim_dir:  # the simulated Workstation's ESX disks are its hosts' state, installed at power-on
            disk = vm.vmx_path.with_name(f"{vm.name}.vmdk")
            if not disk.exists():
                adapter = "lsilogic" if getattr(vm, "flavor", None) else "ide"
                from labctl.workstation.disks import create_disk_argv

                argv = create_disk_argv(disk, vm.disk_gb, adapter)
                rep.change(vm.name, f"create {vm.disk_gb} GB disk {disk}", " ".join(argv))
                if ctx.apply:
                    try:
                        drv.create_disk(vm.vmx_path, vm.disk_gb, adapter)
                    except LabctlError as e:
                        rep.changes.pop()
                        rep.fail(vm.name, e.message, e.hint)
                        ctx.failed_hosts[vm.name] = "vms"
    # linked clones: snapshot the source as "base" when missing, clone, give the clone its own identity
    for h in topo.esx_hosts:
        if not h.is_clone or h.name in ctx.failed_hosts:
            continue
        src = topo.host(h.linked_clone_of)
        if src.name in ctx.failed_hosts:
            rep.fail(h.name, f"its source {src.name} failed earlier", hint="fix the source first, then re-run")
            ctx.failed_hosts[h.name] = "vms"
            continue
        settings = clone_settings(topo, h)
        try:
            if not h.vmx_path.exists():
                if not src.vmx_path.is_file() and not (src.name in ctx.pending and not ctx.apply):
                    raise LabctlError(f"its source {src.vmx_path} does not exist yet")
                snaps = drv.list_snapshots(src.vmx_path) if src.vmx_path.is_file() else []
                cmds = []
                if h.snapshot not in snaps:
                    cmds.append(f"vmrun -T ws snapshot {src.vmx_path} {h.snapshot}")
                cmds.append(f"vmrun -T ws clone {src.vmx_path} {h.vmx_path} linked -snapshot={h.snapshot} "
                            f"-cloneName={h.name}")
                if not ctx.apply:
                    ctx.pending.add(h.name)
                rep.change(h.name, f"linked clone of {src.name}@{h.snapshot}"
                           + (f" (snapshot {h.snapshot!r} taken first)" if h.snapshot not in snaps else ""), *cmds)
                if ctx.apply:
                    if h.snapshot not in snaps:
                        drv.snapshot(src.vmx_path, h.snapshot)
                    drv.clone(src.vmx_path, h.vmx_path, snapshot=h.snapshot, clone_name=h.name, linked=True)
                    drv.reconfigure(h.vmx_path, settings)
            else:
                todo = drv.reconfigure(h.vmx_path, settings, dry_run=True)
                if todo:
                    rep.change(h.name, f"set {', '.join(todo)} in {h.vmx_path}")
                    if ctx.apply:
                        try:
                            drv.reconfigure(h.vmx_path, settings, force=ctx.options.force)
                        except RefusedError:
                            rep.changes.pop()
                            rep.fail(h.name, f"{h.vmx_path} needs {', '.join(todo)} but the VM is running",
                                     hint=f"labctl down {ctx.display_name}, then re-run (or --force)")
                            continue
        except LabctlError as e:
            rep.fail(h.name, e.message, e.hint)
            ctx.failed_hosts[h.name] = "vms"


def _running(drv) -> set[Path]:
    return {Path(p).resolve() for p in drv.list_running()}


def start(ctx: Context, rep: StageReport) -> None:
    topo = ctx.topology
    drv = driver(ctx)
    if ctx.sim_dir and topo.vcenter is not None:
        _ensure_sim_vcenter(ctx, rep)
    running = _running(drv)
    for vm in (*topo.esx_hosts, *topo.vms):
        if vm.name in ctx.failed_hosts:
            continue
        if not vm.vmx_path.exists():
            if vm.name in ctx.pending or not ctx.apply:  # planning: the vms stage would create it first
                ctx.pending.add(vm.name)
                rep.change(vm.name, "power on", f"vmrun -T ws start {vm.vmx_path} nogui")
            continue
        if vm.vmx_path.resolve() in running:
            continue
        rep.change(vm.name, "power on", f"vmrun -T ws start {vm.vmx_path} nogui")
        if not ctx.apply:
            ctx.pending.add(vm.name)
        else:
            ctx.progress.host(vm.name, "powering on")
            try:
                drv.start(vm.vmx_path)
            except LabctlError as e:
                rep.changes.pop()
                rep.fail(vm.name, e.message, e.hint)
                ctx.failed_hosts[vm.name] = "start"


def _ensure_sim_vcenter(ctx: Context, rep: StageReport) -> None:
    """The simulated lab's vCenter: govmomi's vcsim, started once and recorded like the host processes."""
    from labctl.sim import lab as simlab

    if any(r.get("kind") == "vcsim" for r in simlab.running(ctx.sim_dir)):
        return
    rep.change("vcenter", "start the vCenter simulator (vcsim)")
    if not ctx.apply:
        ctx.pending.add("vcenter-simulator")
        return
    entry, notes = simlab.ensure_vcenter(ctx.sim_dir, simlab.spec_from_topology(ctx.topology), ctx.env.environ,
                                         progress=ctx.progress.ticker("vcenter"))
    rep.notes.extend(notes)
    if entry is None:
        rep.changes.pop()
