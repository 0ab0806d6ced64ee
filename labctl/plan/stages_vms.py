"""Stages that drive Workstation (real vmrun, or the simulated Workstation with --sim): vms, start."""

from __future__ import annotations

from pathlib import Path

from labctl.errors import LabctlError
from labctl.plan.context import Context
from labctl.plan.model import StageReport


def driver(ctx: Context):
    from labctl.plan.backends import vm_driver

    # planning reads only: the simulated Workstation's directory is not created
    return vm_driver(ctx)


def vms(ctx: Context, rep: StageReport) -> None:
    """The golden VMs (their .vmx came from the render stage), their disks, and for each golden host that is to be
    installed its install media on the CD-ROMs. Linked clones come later (the clones stage), once their source is
    installed and prepared."""
    topo = ctx.topology
    drv = driver(ctx)
    for vm in (*[h for h in topo.esx_hosts if not h.is_clone], *topo.vms):
        if not vm.vmx_path.is_file() and not ctx.apply:
            ctx.pending.add(vm.name)  # the render stage writes it first
            rep.change(vm.name, f"create VM {vm.vmx_path}")
        elif not vm.vmx_path.is_file():
            rep.fail(vm.name, f"{vm.vmx_path} is missing", hint=f"run the render stage: labctl up {ctx.display_name} "
                                                                 "--only render")
            ctx.failed_hosts[vm.name] = "vms"
            continue
        disk = vm.vmx_path.with_name(f"{vm.name}.vmdk")
        if not drv.has_disk(vm.vmx_path):  # a vSphere target: the VM in the lab's folder, with its disk
            adapter = "lsilogic" if getattr(vm, "flavor", None) else "ide"
            where = f"the VM in {drv.location}" if drv.location else disk
            rep.change(vm.name, f"create {vm.disk_gb} GB disk {where}",
                       *drv.create_disk_commands(vm.vmx_path, vm.disk_gb, adapter))
            if ctx.apply:
                try:
                    if getattr(vm, "flavor", None):  # a new disk is a blank disk, whatever was installed before
                        from labctl.plan.media import forget_install

                        forget_install(topo, vm)
                    if hasattr(drv, "substitute_media"):  # a vSphere target uploads the .vmx's media at creation
                        _synthetic_first(ctx, rep, drv, vm)
                    drv.create_disk(vm.vmx_path, vm.disk_gb, adapter)
                except LabctlError as e:
                    rep.changes.pop()
                    rep.fail(vm.name, e.message, e.hint)
                    ctx.failed_hosts[vm.name] = "vms"
    from labctl.plan.media import installs

    running = _running(drv)
    for h in topo.esx_hosts:
        if installs(h) and h.name not in ctx.failed_hosts:
            try:
                _install_media(ctx, rep, drv, h, running)
            except LabctlError as e:
                rep.fail(h.name, e.message, e.hint)
                ctx.failed_hosts[h.name] = "vms"


def _synthetic_first(ctx: Context, rep: StageReport, drv, vm) -> None:
    """With --sim, a golden host's missing installer is written before the VM that names it is created (and its
    media uploaded) on a vSphere target."""
    from labctl.plan import media

    if not (ctx.sim_dir and getattr(vm, "flavor", None) and media.installs(vm)):
        return
    src, synthetic = media.source_iso(vm, ctx.sim_dir)
    if synthetic:
        if media.write_synthetic(src, vm):
            rep.notes.append(f"{vm.name}: {vm.iso} does not exist: wrote a synthetic {vm.label} installer, {src}")
        drv.substitute_media(Path(vm.iso), src)


def _install_media(ctx: Context, rep: StageReport, drv, h, running: set[Path]) -> None:
    """A blank host gets its installer on CD 1 and its kickstart on CD 2 (boot order: disk, then CD); an installed
    host that is off has its CDs disconnected (they carry the root hash and its host key, and are not needed)."""
    from labctl.plan import media
    from labctl.workstation.driver import VmxFiles

    topo = ctx.topology
    is_running = h.vmx_path.is_file() and h.vmx_path.resolve() in running
    if media.installed(topo, h, drv):
        if not h.vmx_path.is_file() or is_running:
            return
        doc = drv.read_config(h.vmx_path)
        connected = [d for d in VmxFiles.cdrom_devices(doc)
                     if (doc.get(f"{d}.startConnected") or "TRUE").upper() == "TRUE"]
        if connected:
            rep.change(h.name, f"installed: disconnect CD-ROM {', '.join(connected)}")
            if ctx.apply:
                drv.attach_media(h.vmx_path, None, force=ctx.options.force)
        return
    src, synthetic = media.source_iso(h, ctx.sim_dir)
    if not ctx.apply:
        if synthetic and not src.is_file():
            rep.notes.append(f"{h.name}: {h.iso} does not exist: `up` writes a synthetic {h.label} installer, {src}")
        if media.kickstarted(h):
            ks_iso = media.ks_iso_path(topo, h)
            rep.change(h.name, f"install media: CD 1 {media.patched_name(topo, h, src)} (a patched copy of {src}, "
                               f"ks=cdrom:/KS.CFG), CD 2 {ks_iso} (its kickstart); boot order hdd,cdrom")
        else:
            rep.change(h.name, f"install media: CD 1 {src} as it is (kickstart: none)")
        return
    m = media.build_media(ctx, h)
    rep.notes.extend(m.notes)
    for line in m.done:
        rep.change(h.name, f"wrote {line}")
    if is_running:
        doc = drv.read_config(h.vmx_path)
        images = {doc.get(f"{d}.fileName") for d in VmxFiles.cdrom_devices(doc)}
        if str(m.installer) not in images or (m.kickstart is not None and str(m.kickstart) not in images):
            raise LabctlError(f"{h.name} is running without its install media on its CD-ROMs ({h.vmx_path})",
                              hint=f"power it off (labctl down {ctx.display_name}) and run `labctl up` again: "
                                   "it boots the installer")
        return
    keys = drv.attach_media(h.vmx_path, m.installer, kickstart=m.kickstart, force=ctx.options.force)
    if keys:
        what = f"CD 1 {m.installer}" + (f", CD 2 {m.kickstart} (kickstart); boot order hdd,cdrom" if m.kickstart else
                                        " (kickstart: none: the installer as it is)")
        rep.change(h.name, f"install media: {what}")


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
            power_on(ctx, rep, drv, vm, "powering on")


def power_on(ctx: Context, rep: StageReport, drv, vm, doing: str) -> bool:
    """Start `vm` for the change just recorded; on failure the change is taken back and the VM fails this stage."""
    ctx.progress.host(vm.name, doing)
    try:
        drv.start(vm.vmx_path)
    except LabctlError as e:
        rep.changes.pop()
        rep.fail(vm.name, e.message, e.hint)
        ctx.failed_hosts[vm.name] = rep.name
        return False
    return True


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
