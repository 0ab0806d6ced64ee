"""Stages between the VMs and the running lab: install (unattended ESX installs, then clone sources prepared) and
clones (snapshot `base` of each prepared source, linked clones, their settings).

install, per golden host with an `iso` whose disk is blank (`labctl.plan.media.installed`):
  1. power it on: the blank disk falls through to CD 1, the patched installer, which reads CD 2's KS.CFG;
  2. pin the host key labctl made for it (the kickstart installs it) in the lab's known_hosts;
  3. wait, hosts in parallel, with per-host progress, until it answers SSH at its address with that key
     (`--install-timeout`, default 30 minutes; a real install takes 5-15), then record the install;
  `kickstart: none`: the stock installer waits at its console; after the same deadline the host fails with what
  to do by hand.
Then every clone source whose snapshot `base` is still to be taken is prepared: its configuration saved
(`/sbin/auto-backup.sh` on ESXi, `sync` on ESX classic) over SSH, a clean power-off (`vmrun stop soft`; a guest
without VMware Tools gets `stop hard` after the save), both CDs disconnected.
"""

from __future__ import annotations

import time
from pathlib import Path

from labctl.errors import LabctlError
from labctl.plan.context import Context
from labctl.plan.model import StageReport
from labctl.plan.stages_vms import _running, driver, power_on

REAL_TIMEOUT = 1800.0  # seconds; a real install takes 5-15 minutes, slow disks and old eras more
SIM_TIMEOUT = 60.0
STEP = 15.0  # seconds per connection attempt round while waiting


def timeout(ctx: Context) -> float:
    t = ctx.options.install_timeout
    return float(t) if t is not None else (SIM_TIMEOUT if ctx.sim_dir else REAL_TIMEOUT)


def _minutes(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _open(ctx: Context, names: list[str]):
    from labctl.plan.backends import open_lab

    conns, _ = open_lab(ctx.topology, ctx.env, hosts=names, sim=bool(ctx.sim_dir),
                        sim_dir=str(ctx.sim_dir) if ctx.sim_dir else None,
                        trust_new_hosts=ctx.options.trust_new_hosts)
    return conns


def _pin(ctx: Context, host) -> Path:
    """Pin the host key labctl made for `host` under the address labctl dials, before it first connects."""
    from labctl.plan import media
    from labctl.remote.known_hosts import entry_name, pin
    from labctl.render.hostkey import read_host_key

    key = read_host_key(media.install_dir(ctx.topology, host))
    if key is None:
        raise LabctlError(f"{host.name}: its SSH host key is missing from {media.install_dir(ctx.topology, host)}",
                          hint="run `labctl up` again: the vms stage writes the key and the kickstart CD together")
    path = _known_hosts(ctx)
    pin(path, entry_name(host.address, host.ssh.port), key.key_type, key.public_b64)
    return path


def _known_hosts(ctx: Context) -> Path:
    return ctx.sim_dir / "known_hosts" if ctx.sim_dir else ctx.topology.known_hosts


def install(ctx: Context, rep: StageReport) -> None:
    from labctl.plan import media

    topo = ctx.topology
    hosts = [h for h in topo.esx_hosts if media.installs(h) and h.name not in ctx.failed_hosts]
    drv = driver(ctx)
    running = _running(drv)
    limit = timeout(ctx)
    waiting = []
    for h in hosts:
        if h.vmx_path.is_file() and media.installed(topo, h, drv):
            continue
        how = ("unattended from its kickstart CD" if media.kickstarted(h)
               else "by hand at the installer console (kickstart: none)")
        src, _ = media.source_iso(h, ctx.sim_dir)
        summary = f"install {h.label} {how}: boot the installer, wait up to {_minutes(limit)} for SSH at {h.address}"
        on = h.vmx_path.is_file() and h.vmx_path.resolve() in running
        cmds = () if on else (f"vmrun -T ws start {h.vmx_path} nogui",)
        if not ctx.apply:
            rep.change(h.name, summary, *cmds)
            ctx.pending.add(h.name)
            continue
        if on:
            rep.notes.append(f"{h.name}: already running its installer; waiting for it")
        else:
            rep.change(h.name, summary, *cmds)
            if not power_on(ctx, rep, drv, h, "booting the installer"):
                continue
        if media.kickstarted(h):
            try:
                _pin(ctx, h)
            except LabctlError as e:
                rep.fail(h.name, e.message, e.hint)
                ctx.failed_hosts[h.name] = "install"
                continue
        waiting.append(h)
    if waiting:
        _wait_all(ctx, rep, waiting, limit)
    _prepare_sources(ctx, rep, drv)


def _wait_all(ctx: Context, rep: StageReport, hosts, limit: float) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from labctl.plan import media

    deadline = time.monotonic() + limit
    with ThreadPoolExecutor(max_workers=min(16, len(hosts)), thread_name_prefix="labctl-install") as pool:
        futures = {h.name: pool.submit(_wait_one, ctx, h, deadline) for h in hosts}
    for h in hosts:
        try:
            seconds = futures[h.name].result()
        except LabctlError as e:
            rep.fail(h.name, e.message, e.hint)
            ctx.failed_hosts[h.name] = "install"
            continue
        src, _ = media.source_iso(h, ctx.sim_dir)
        media.mark_installed(ctx.topology, h, installer=src, seconds=seconds, drv=driver(ctx))
        rep.notes.append(f"{h.name}: installed, SSH answers at {h.address} after {_minutes(seconds)}")


def _wait_one(ctx: Context, h, deadline: float) -> float:
    """Seconds until `h` answered SSH (with the pinned key; with kickstart: none, any answer). Raises LabctlError."""
    from labctl.plan import media
    from labctl.remote.result import AuthFailed, HostKeyMismatch, HostKeyUnknown

    t0 = time.monotonic()
    tick = ctx.progress.ticker(h.name)
    unattended = media.kickstarted(h)
    last = ""
    while True:
        now = time.monotonic()
        tick(f"installing, {_minutes(now - t0)} of at most {_minutes(deadline - t0)}")
        conns = None
        try:
            conns = _open(ctx, [h.name])
            conns.connection(h.name).wait_until_back(min(deadline, now + STEP), probe="vmware -v", first=True)
            tick(f"done: installed in {_minutes(time.monotonic() - t0)}")
            return time.monotonic() - t0
        except HostKeyMismatch as e:
            raise LabctlError(
                f"{h.name} answers SSH at {h.address} with another host key than the one its kickstart installs "
                f"({e.message})",
                hint="another host may hold that address, or the kickstart's host-key step failed (see the VM's "
                     "console); labctl does not trust it") from None
        except HostKeyUnknown:
            if not unattended:  # installed by hand: it answers; the ssh stage asks for --trust-new-hosts
                return time.monotonic() - t0
            raise
        except AuthFailed as e:
            if unattended:
                raise LabctlError(f"{h.name} answers SSH with the host key labctl made but refuses labctl's login: "
                                  f"{e.message}", hint="the kickstart's authorized_keys step failed; see the VM's "
                                                       "console") from None
            last = e.message  # kickstart: none: labctl has no login of its own (refused, nothing to offer): wait on
        except LabctlError as e:  # not up yet (no route, refused, no banner): wait on
            last = e.message
        finally:
            if conns is not None:
                conns.close()
        if time.monotonic() >= deadline:
            break
        time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))
    waited = _minutes(time.monotonic() - t0)
    if not unattended:
        raise LabctlError(
            f"{h.name} is at the installer console (kickstart: none): no SSH login at {h.address} within {waited}"
            + (f" (last: {last})" if last else ""),
            hint=f"install {h.label} at the VM's console (Workstation: open {h.vmx_path}), give it {h.address}, enable "
                 f"SSH, then run `labctl up {ctx.display_name}` again (with --trust-new-hosts to pin its key)")
    raise LabctlError(
        f"{h.name}: the unattended install did not answer SSH at {h.address} within {waited}"
        + (f" (last: {last})" if last else ""),
        hint=f"look at the VM's console or its vmware.log ({h.vmx_path.parent}); a slow host needs more time: "
             f"labctl up {ctx.display_name} --install-timeout SECONDS (the install goes on; a re-run waits again)")


def _sources_to_prepare(ctx: Context, drv) -> list:
    """Clone sources whose snapshot is still to be taken for a clone that does not exist yet."""
    topo = ctx.topology
    out = []
    for src in topo.esx_hosts:
        clones = [c for c in topo.esx_hosts if c.linked_clone_of == src.name]
        if not clones or src.name in ctx.failed_hosts:
            continue
        missing = [c for c in clones if not c.vmx_path.exists() and c.name not in ctx.failed_hosts]
        if not missing:
            continue
        snaps = drv.list_snapshots(src.vmx_path) if src.vmx_path.is_file() else []
        if any(c.snapshot not in snaps for c in missing):
            out.append(src)
    return out


def _prepare_sources(ctx: Context, rep: StageReport, drv) -> None:
    from labctl.workstation.driver import VmxFiles

    running = _running(drv)
    for src in _sources_to_prepare(ctx, drv):
        save = "/sbin/auto-backup.sh" if src.flavor != "esx" or src.version_info.release >= (5, 0) else "sync"
        if src.name in ctx.pending or not src.vmx_path.is_file():  # planning: installed by this run first
            rep.change(src.name, f"prepare as the source of linked clones: save its configuration ({save}), power "
                                 "off, disconnect its CD-ROMs", f"ssh root@{src.address} {save}",
                       f"vmrun -T ws stop {src.vmx_path} soft")
            continue
        on = src.vmx_path.resolve() in running
        doc = drv.read_config(src.vmx_path)
        connected = [d for d in VmxFiles.cdrom_devices(doc)
                     if (doc.get(f"{d}.startConnected") or "TRUE").upper() == "TRUE"]
        if not on and not connected:
            continue
        steps = ([f"save its configuration ({save})", "power off"] if on else []) + \
                ([f"disconnect CD-ROM {', '.join(connected)}"] if connected else [])
        cmds = ([f"ssh root@{src.address} {save}", f"vmrun -T ws stop {src.vmx_path} soft"] if on else [])
        rep.change(src.name, "prepare as the source of linked clones: " + ", ".join(steps), *cmds)
        if not ctx.apply:
            ctx.pending.add(src.name)
            continue
        try:
            if on:
                _power_off_clean(ctx, drv, src, save)
            if connected:
                drv.attach_media(src.vmx_path, None)
        except LabctlError as e:
            rep.changes.pop()
            rep.fail(src.name, e.message, e.hint)
            ctx.failed_hosts[src.name] = "install"


def _power_off_clean(ctx: Context, drv, src, save: str) -> None:
    ctx.progress.host(src.name, "saving its configuration")
    conns = _open(ctx, [src.name])
    try:
        conns.run(src.name, [save]).check()
    finally:
        conns.close()
    ctx.progress.host(src.name, "powering off")
    try:
        drv.stop(src.vmx_path, hard=False)
    except LabctlError:  # no VMware Tools in the guest (ESX classic, older ESXi): the configuration is saved
        drv.stop(src.vmx_path, hard=True)
    deadline = time.monotonic() + 300
    while drv.is_running(src.vmx_path):
        if time.monotonic() > deadline:
            raise LabctlError(f"{src.name} did not power off within 5 minutes", hint="look at its console")
        time.sleep(0.5)


def clones(ctx: Context, rep: StageReport) -> None:
    """Linked clones: snapshot `base` of each prepared (installed, powered-off) source when missing, clone, give the
    clone its settings (its own MACs and identity keys in its .vmx)."""
    from labctl.errors import RefusedError
    from labctl.render.lab import clone_settings

    topo = ctx.topology
    drv = driver(ctx)
    running = _running(drv)
    for h in topo.esx_hosts:
        if not h.is_clone or h.name in ctx.failed_hosts:
            continue
        src = topo.host(h.linked_clone_of)
        if src.name in ctx.failed_hosts:
            rep.fail(h.name, f"its source {src.name} failed in the {ctx.failed_hosts[src.name]} stage",
                     hint="fix the source first, then re-run")
            ctx.failed_hosts[h.name] = "clones"
            continue
        settings = clone_settings(topo, h)
        try:
            if not h.vmx_path.exists():
                planned_src = src.name in ctx.pending and not ctx.apply
                if not src.vmx_path.is_file() and not planned_src:
                    raise LabctlError(f"its source {src.vmx_path} does not exist yet")
                snaps = drv.list_snapshots(src.vmx_path) if src.vmx_path.is_file() else []
                take = h.snapshot not in snaps
                if take and ctx.apply and src.vmx_path.resolve() in running:
                    raise LabctlError(f"its source {src.name} is running and has no snapshot {h.snapshot!r} yet",
                                      hint=f"the install stage prepares (powers off) a source first: labctl up "
                                           f"{ctx.display_name}")
                cmds = []
                if take:
                    cmds.append(f"vmrun -T ws snapshot {src.vmx_path} {h.snapshot}")
                cmds.append(f"vmrun -T ws clone {src.vmx_path} {h.vmx_path} linked -snapshot={h.snapshot} "
                            f"-cloneName={h.name}")
                if not ctx.apply:
                    ctx.pending.add(h.name)
                rep.change(h.name, f"linked clone of {src.name}@{h.snapshot}"
                           + (f" (snapshot {h.snapshot!r} of the installed, powered-off {src.name} taken first)"
                              if take else ""), *cmds)
                if ctx.apply:
                    if take:
                        drv.snapshot(src.vmx_path, h.snapshot)
                    drv.clone(src.vmx_path, h.vmx_path, snapshot=h.snapshot, clone_name=h.name, linked=True)
                    drv.reconfigure(h.vmx_path, settings)
            else:
                from labctl.render.identity import HOSTKEY_VAR

                # the guest publishes its host key at run time (on a vSphere target that is in extraConfig): it is
                # removed from a new clone (inherited from its source), never from one that has published its own
                key = f"guestinfo.{HOSTKEY_VAR}"
                settings = {k: v for k, v in settings.items() if not (v is None and k.lower() == key.lower())}
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
            ctx.failed_hosts[h.name] = "clones"
