"""labctl render FILE [-o DIR]"""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Write every file the Workstation host needs for the lab, without touching any VM or host:
  <vm>/<vm>.vmx               each VM that is not a linked clone (Jinja2 templates per ESX era)
  <clone>/clone-plan.json     each linked clone: source .vmx, snapshot, the vmrun clone command, and the
                              settings (static MACs, uuid.action) applied to the clone's .vmx afterwards
  host/networking             the lab's vmnets for /etc/vmware/networking
  host/preferences-namedPVNs  LAN segment names and pvnIDs for the Workstation preferences
  host/exports                the NFS export line(s) for the lab's datastores
  host/labctl-vmnet-permissions.service   systemd unit keeping /dev/vmnet* open to your group

Writes are atomic, and rendering twice gives identical bytes. A file labctl did not write, a file edited since
labctl wrote it, and the .vmx of a running VM (*.lck present) are left alone unless you pass --force."""

EPILOG = """\
examples:
  labctl render topologies/esx35-ha-pair.yaml -o out/        look before you build
  labctl render lab.yaml                                     into the lab's vm_dir (host files: vm_dir/.labctl/host)
  labctl render lab.yaml -o out --templates my-templates/    your templates override labctl's (same names)
  labctl render lab.yaml -o out --json                       list what was written

exit status: 0 written (or unchanged), 2 topology errors, 5 refused to overwrite (see message; --force)."""


def configure(p) -> None:
    p.add_argument("file", metavar="FILE", help="topology YAML")
    p.add_argument("-o", "--output", metavar="DIR", help="output directory (default: the lab's vm_dir)")
    p.add_argument("--templates", metavar="DIR", help="a template directory whose files override labctl's")
    p.add_argument("--vmnet-group", default=None, metavar="GROUP",
                   help="group allowed to open /dev/vmnet* in the rendered systemd unit (default: vmware)")
    p.add_argument("--force", action="store_true", help="overwrite files that were edited or belong to running VMs")
    p.add_argument("--json", action="store_true", help="print what was written as JSON")


def run(args, env) -> ExitStatus:
    from labctl.render.lab import DEFAULT_VMNET_GROUP, render_lab
    from labctl.topology import load_topology

    topo = load_topology(env.path(args.file), display_name=args.file)
    for w in topo.warnings:
        env.err(w)
    out_dir = env.path(args.output) if args.output else None
    files = render_lab(topo, template_dir=env.path(args.templates) if args.templates else None,
                       vmnet_group=args.vmnet_group or DEFAULT_VMNET_GROUP)
    if out_dir is None:
        from labctl.cli.lablock import lab_lock

        with lab_lock(args, topo):  # into the lab's own vm_dir: one changing command at a time
            return _write(args, env, topo, files, out_dir)
    return _write(args, env, topo, files, out_dir)


def _write(args, env, topo, files, out_dir) -> ExitStatus:
    """All or nothing: every file is checked first (outside its directory, edited, a running VM's), then all are
    written to temporaries and renamed into place; one refusal or a full disk writes none."""
    import json

    from labctl.errors import LabctlError
    from labctl.render.files import Manifest, commit_writes, plan_writes
    from labctl.render.lab import output_path

    manifests: dict = {}
    items = []
    for f in files:
        root = out_dir if out_dir is not None else (topo.state_dir if f.kind == "host" else topo.workstation.vm_dir)
        m = manifests.get(root)
        if m is None:
            m = manifests[root] = Manifest.open(root)
        items.append((output_path(topo, out_dir, f), f.content, m, root))
    planned = plan_writes(items, force=args.force)
    refused = [p.refused.message for p in planned if p.refused is not None]
    if not refused:
        commit_writes(planned)
        for m in manifests.values():
            m.save()
    results = [{"path": str(p.path), "status": "refused", "reason": p.refused.message} if p.refused is not None
               else {"path": str(p.path), "status": "not written" if refused else str(p.status)} for p in planned]
    if args.json:
        env.out(json.dumps({"lab": topo.lab, "files": results}, indent=2))
    else:
        for r in results:
            if not refused:
                env.out(f"{r['status']:>9}  {r['path']}")
        n = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "updated", "unchanged")}
        if refused:
            env.err(f"{topo.lab}: {len(refused)} refused, so nothing was written")
        else:
            env.err(f"{topo.lab}: {n['created']} created, {n['updated']} updated, {n['unchanged']} unchanged")
    if refused:
        raise LabctlError("refused to overwrite (nothing was written):\n  " + "\n  ".join(refused),
                          hint="re-run with --force to overwrite anyway", status=ExitStatus.REFUSED)
    return ExitStatus.SUCCESS
