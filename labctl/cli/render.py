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
    import json

    from labctl.errors import LabctlError, RefusedError
    from labctl.render.files import Manifest, write_atomic
    from labctl.render.lab import DEFAULT_VMNET_GROUP, output_path, render_lab
    from labctl.topology import load_topology

    topo = load_topology(env.path(args.file), display_name=args.file)
    for w in topo.warnings:
        env.err(w)
    out_dir = env.path(args.output) if args.output else None
    files = render_lab(topo, template_dir=env.path(args.templates) if args.templates else None,
                       vmnet_group=args.vmnet_group or DEFAULT_VMNET_GROUP)
    results = []
    refused: list[str] = []
    manifests: dict = {}
    try:
        for f in files:
            dest = output_path(topo, out_dir, f)
            root = out_dir if out_dir is not None else (topo.state_dir if f.kind == "host" else topo.workstation.vm_dir)
            m = manifests.get(root)
            if m is None:
                m = manifests[root] = Manifest.open(root)
            try:
                status = write_atomic(dest, f.content, force=args.force, manifest=m)
            except RefusedError as e:
                refused.append(e.message)
                results.append({"path": str(dest), "status": "refused", "reason": e.message})
                continue
            results.append({"path": str(dest), "status": str(status)})
    finally:
        for m in manifests.values():
            m.save()
    if args.json:
        env.out(json.dumps({"lab": topo.lab, "files": results}, indent=2))
    else:
        for r in results:
            if r["status"] != "refused":
                env.out(f"{r['status']:>9}  {r['path']}")
        n = {s: sum(1 for r in results if r["status"] == s) for s in ("created", "updated", "unchanged")}
        env.err(f"{topo.lab}: {n['created']} created, {n['updated']} updated, {n['unchanged']} unchanged"
                + (f", {len(refused)} refused" if refused else ""))
    if refused:
        raise LabctlError("refused to overwrite:\n  " + "\n  ".join(refused),
                          hint="re-run with --force to overwrite anyway", status=ExitStatus.REFUSED)
    return ExitStatus.SUCCESS
