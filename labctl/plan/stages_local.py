"""Stages that act on this machine: validate, render, networks, vmnet permissions."""

from __future__ import annotations

import os
import stat

from labctl.errors import LabctlError
from labctl.plan.context import Context
from labctl.plan.model import StageReport


def validate(ctx: Context, rep: StageReport) -> None:
    for w in ctx.topology.warnings:
        if ctx.sim_dir and "this machine cannot" in w:
            continue  # --sim maps every address to loopback: reachability does not apply
        rep.notes.append(w)


def render(ctx: Context, rep: StageReport) -> None:
    from labctl.render.files import Manifest, WriteStatus, check_inside, check_write, write_atomic
    from labctl.render.lab import DEFAULT_VMNET_GROUP, render_lab

    topo = ctx.topology
    files = [f for f in render_lab(topo, vmnet_group=ctx.options.vmnet_group or DEFAULT_VMNET_GROUP)
             if f.kind != "host"]
    root = topo.workstation.vm_dir
    manifest = Manifest.open(root)
    rendered = _Rendered(topo.state_dir / RENDERED_FILE)
    try:
        for f in files:
            dest = root / f.relpath
            # a linked clone's .vmx is vmrun's; its plan is ours
            try:
                if not ctx.options.force:
                    check_inside(root, dest)  # a VM directory symlinked elsewhere is not written through
                if rendered.same(f.relpath, f.content) and dest.is_file() and not ctx.options.force:
                    continue  # rendered as last time: what the backend changed since (install media) is its own
                status = (write_atomic(dest, f.content, force=ctx.options.force, manifest=manifest) if ctx.apply
                          else check_write(dest, f.content, force=ctx.options.force, manifest=manifest))
                if ctx.apply:
                    rendered.record(f.relpath, f.content)
            except LabctlError as e:
                rep.fail(f.relpath.split("/")[0], e.message, e.hint)
                continue
            if status is not WriteStatus.UNCHANGED:
                verb = str(status) if ctx.apply else {"created": "write", "updated": "rewrite"}.get(str(status), str(status))
                rep.change(f.relpath.split("/")[0], f"{verb} {dest}")
    finally:
        if ctx.apply:
            manifest.save()
            rendered.save()


RENDERED_FILE = "rendered.json"


class _Rendered:
    """The sha256 of what the render stage last rendered per file (`<vm_dir>/.labctl/rendered.json`).

    A .vmx that the backend edited since (the vms stage puts the install media on its CD-ROMs and disconnects them
    after the install, Workstation adds its own keys) is left alone while the template renders what it rendered
    last time; when the rendering itself changes (a new memory size), the file is rendered again and the later
    stages put their parts back."""

    def __init__(self, path):
        import json

        self.path = path
        try:
            d = json.loads(path.read_text())
        except (OSError, ValueError):
            d = {}
        self.hashes: dict[str, str] = d if isinstance(d, dict) else {}
        self.dirty = False

    @staticmethod
    def _sha(content) -> str:
        import hashlib

        return hashlib.sha256(content.encode() if isinstance(content, str) else bytes(content)).hexdigest()

    def same(self, relpath: str, content) -> bool:
        return self.hashes.get(relpath) == self._sha(content)

    def record(self, relpath: str, content) -> None:
        sha = self._sha(content)
        if self.hashes.get(relpath) != sha:
            self.hashes[relpath] = sha
            self.dirty = True

    def save(self) -> None:
        import json

        from labctl.workstation import sysfiles

        if self.dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            sysfiles.replace_file(self.path, (json.dumps(self.hashes, indent=1, sort_keys=True) + "\n").encode(),
                                  backup=False, mode=0o644)


def networks(ctx: Context, rep: StageReport) -> None:
    if ctx.topology.target is not None:  # no Workstation host: the lab's portgroups on the vSphere target
        from labctl.plan import stages_target

        return stages_target.networks(ctx, rep)
    from labctl.workstation import networking, preferences, sysfiles

    topo = ctx.topology
    wanted = networking.lab_vnets(topo)
    if wanted:
        current = networking.read_host_networking(ctx.etc_vmware)
        try:
            plan = networking.plan_network(current.file, wanted)
        except LabctlError as e:
            rep.fail("vmnets", e.message, e.hint)
            plan = None
        if plan is not None and plan.needed:
            rep.notes.extend(plan.notes)
            for c in plan.changes:
                rep.change(f"vmnet{c.vnet}", str(c))
            if ctx.apply:
                if ctx.sim_dir:
                    sysfiles.replace_file(current.path, plan.new_text, mode=0o644)
                elif ctx.options.apply_network:
                    try:
                        networking.apply_network(plan, ctx.etc_vmware, environ=ctx.env.environ)
                    except LabctlError as e:
                        rep.changes.clear()
                        rep.fail("vmnets", e.message, e.hint)
                else:
                    rep.changes.clear()
                    rep.fail("vmnets", f"{current.path} lacks the lab's vmnets: "
                             + "; ".join(str(c) for c in plan.changes),
                             hint=f"sudo labctl up {ctx.display_name} --apply-network --only networks "
                                  "(backs the file up and restarts VMware's networks)")
    segs = preferences.lab_segments(topo)
    if segs:
        if ctx.apply:
            ctx.preferences.parent.mkdir(parents=True, exist_ok=True)
        added = preferences.ensure_segments(ctx.preferences, segs, dry_run=not ctx.apply)
        for sentence in added:
            rep.change("lan-segments", f"{sentence} in {ctx.preferences}")


def vmnet(ctx: Context, rep: StageReport) -> None:
    if ctx.topology.target is not None:
        from labctl.plan import stages_target

        return stages_target.vmnet(ctx, rep)
    from labctl.workstation import vmnet as vm

    dev = ctx.dev_dir
    if ctx.sim_dir and not dev.exists():
        if not ctx.apply:
            rep.change("vmnets", f"simulated VMware network service creates {dev}/vmnet* (root, 0600); "
                                 "then group read/write")
            return
        _make_sim_devices(ctx)
    who = _sim_identity() if ctx.sim_dir else vm.current_identity(ctx.env.environ)
    report = vm.check(dev, who)
    if not report.nodes:
        rep.notes.append(f"no /dev/vmnet* nodes in {dev}: VMware's network service is not running "
                         "(or Workstation is not installed)")
        return
    blocked = [n for n in report.nodes if not (n.readable and n.writable)]
    for n in report.nodes:
        if n.readable and n.writable and not n.ok:
            rep.notes.extend(f"{n.path}: {p}" for p in n.problems)
    if not blocked:
        return
    group = ctx.options.vmnet_group or _default_group()
    for node in blocked:
        rep.change(f"vmnet{node.number}", f"{node.path}: {node.mode_str} {node.owner}:{node.group} -> group {group} "
                                          "read/write", f"chgrp {group} {node.path}", f"chmod g+rw {node.path}")
    if not ctx.apply:
        return
    euid = os.geteuid()
    if euid != 0 and not ctx.sim_dir:
        rep.changes.clear()
        rep.fail("vmnets", "this user cannot open every /dev/vmnet* read/write: nested ESX will be refused "
                           "promiscuous mode ('... This is not allowed for security reasons')",
                 hint="sudo labctl vmnet fix --group $(id -gn) --persist")
        return
    try:
        # the simulated /dev belongs to this user, who may chgrp/chmod it without root
        vm.fix(dev, group=group, euid=0 if ctx.sim_dir else None)
    except LabctlError as e:
        rep.changes.clear()
        rep.fail("vmnets", e.message, e.hint)


def _sim_identity():
    """The user the simulated Workstation runs VMs as: never root (root may open anything, hiding the problem)."""
    from labctl.workstation.vmnet import Identity

    uid = os.geteuid()
    return Identity("vmuser", uid if uid else 1000, frozenset({os.getgid()}))


def _default_group() -> str:
    import grp

    try:
        return grp.getgrgid(os.getgid()).gr_name
    except KeyError:
        return "root"


def _make_sim_devices(ctx: Context) -> None:
    """A simulated host's /dev/vmnet0..N as VMware's service leaves them: root-owned, 0600."""
    dev = ctx.dev_dir
    dev.mkdir(parents=True, exist_ok=True)
    numbers = {0, 1, 8} | {n.vmnet for n in ctx.topology.networks if n.vmnet is not None}
    for n in sorted(numbers):
        p = dev / f"vmnet{n}"
        if p.exists():
            continue
        try:  # the real thing when we may: a character device, major 119, minor N (nobody opens it)
            os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(119, n))
        except (PermissionError, OSError):
            p.touch(mode=0o600)
        os.chmod(p, 0o600)
