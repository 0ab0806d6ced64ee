"""labctl vmnet check|fix|networks — /dev/vmnet* permissions (promiscuous mode) and the lab's host networks."""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Nested ESX needs promiscuous mode on its vNICs: its vSwitch must receive frames for the inner VMs' and the
vmkernel/service-console MACs. Workstation allows it only when the user running the VM can open the
network's /dev/vmnetN node (char device, major 119, minor N) read/write. VMware creates these nodes
root:root 0600, so a VM of a normal user gets:

  The virtual machine's operating system has attempted to enable promiscuous mode on adapter 'Ethernet0'.
  This is not allowed for security reasons.

(Older releases: "The virtual machines operating system has attempted to enable promiscuous mode on adapter
Ethernet0. This is not allowed for security reasons.")  The fix (VMware KB 287) is a group for the lab's
users with read/write on every node (LAN segments use the vmnet driver too):
  chgrp vmware /dev/vmnet*; chmod g+rw /dev/vmnet*

udev rules do NOT work for this: vmnet.ko registers its nodes without a device class, so rules on
KERNEL=="vmnet*" never fire, and every `vmware-networks` restart recreates the nodes root:root 0600.
`fix --persist` therefore installs a systemd unit ordered after VMware's network service that re-applies
group and mode after each (re)start."""

EPILOG = """\
examples:
  labctl vmnet check                         who may open each /dev/vmnetN (exit 1 when someone cannot)
  labctl vmnet check lab.yaml                ... and whether the lab's vmnets have their nodes
  labctl vmnet check --user alice --json     as seen by alice (default: you, or SUDO_USER under sudo)
  sudo labctl vmnet fix --group vmware       chgrp + chmod g+rw on every node (a second run changes nothing)
  sudo labctl vmnet fix --group vmware --persist   ... and keep it across VMware network restarts (systemd)
  labctl vmnet networks topologies/esx35-ha-pair.yaml          the lab's vmnets vs /etc/vmware/networking
  sudo labctl vmnet networks lab.yaml --apply-network          write them (backup), restart VMware networks

exit statuses: check 0 all good, 1 problems found; fix 0 done (or nothing to do), 6 not root / no such group;
networks 0 matches (or applied), 1 changes needed."""


def configure(p) -> None:
    from labctl.cli.options import add_file

    sub = p.add_subparsers(dest="vmnet_command", metavar="ACTION", required=True)
    raw = p.formatter_class  # labctl's formatter (RawDescriptionHelpFormatter without importing shutil)
    c = sub.add_parser(
        "check",
        help="show who may open each /dev/vmnetN (read-only)",
        description="Show owner, group, mode and device numbers (char 119:N) of each /dev/vmnetN and whether "
        "the user who runs the VMs can open it read/write (needed for promiscuous mode).",
        epilog="examples:\n  labctl vmnet check\n  labctl vmnet check topologies/esx35-ha-pair.yaml   also: does "
        "each of the lab's vmnets have its node?\n  labctl vmnet check --user alice --json\n\n"
        "exit status: 0 every node usable, 1 problems found, 2 bad topology.",
        formatter_class=raw,
    )
    add_file(c, optional=True, help="topology YAML file: also check that its vmnets have their /dev/vmnetN")
    c.add_argument("--json", action="store_true", help="print one JSON object")
    c.add_argument("--dev-dir", default="/dev", metavar="DIR", help="device directory (default /dev; tests)")
    c.add_argument(
        "--user", metavar="NAME", help="check for this user (default: you, or SUDO_USER under sudo)"
    )

    f = sub.add_parser(
        "fix",
        help="give a group read/write on every /dev/vmnetN (root)",
        description="chgrp GROUP + chmod g+rw on every /dev/vmnetN, only where needed (a second run changes "
        "nothing).\nudev rules do NOT fire for these nodes (vmnet.ko registers no device class) and every "
        "vmware-networks restart\nrecreates them root:root 0600: --persist installs a systemd unit ordered after "
        "VMware's network service\nthat re-applies group and mode after each (re)start.",
        epilog="examples:\n  sudo groupadd vmware && sudo usermod -aG vmware $USER   (once; log in again)\n"
        "  sudo labctl vmnet fix --group vmware --persist\n  sudo labctl vmnet fix lab.yaml --group vmware\n\n"
        "exit status: 0 done or nothing to do, 2 bad topology, 6 not root or no such group.",
        formatter_class=raw,
    )
    add_file(f, optional=True, help="topology YAML file: also say which of its vmnets have no node yet")
    f.add_argument("--group", default="vmware", help="group that may open the nodes (default: vmware)")
    f.add_argument(
        "--persist",
        action="store_true",
        help="install and enable a systemd unit re-applying this after VMware's network service starts",
    )
    f.add_argument("--dev-dir", default="/dev", metavar="DIR", help="device directory (default /dev; tests)")
    f.add_argument(
        "--unit-dir", default="/etc/systemd/system", metavar="DIR", help="where --persist writes the unit"
    )
    f.add_argument("--json", action="store_true", help="print one JSON object")

    n = sub.add_parser(
        "networks",
        help="compare the lab's host-only vmnets and LAN segments with this machine's; --apply-network writes them",
        description="Read /etc/vmware/networking (and netmap.conf), classify each vmnet (bridged, nat, host-only, "
        "private) and show what the topology needs: its host-only vmnets with subnet, netmask, DHCP and a host "
        "adapter only when host_ip is set; its LAN segments in ~/.vmware/preferences.",
        epilog="examples:\n  labctl vmnet networks topologies/esx35-ha-pair.yaml\n"
        "  sudo labctl vmnet networks lab.yaml --apply-network\n\n"
        "exit status: 0 nothing to change (or applied), 1 changes needed, 5 a lab vmnet is bridged/NAT here.",
        formatter_class=raw,
    )
    add_file(n)
    n.add_argument("--json", action="store_true", help="print one JSON object")
    n.add_argument(
        "--etc-dir", default="/etc/vmware", metavar="DIR", help="VMware's config dir (default /etc/vmware)"
    )
    n.add_argument(
        "--preferences",
        metavar="FILE",
        help="Workstation preferences holding LAN-segment names (default ~/.vmware/preferences of you "
        "or SUDO_USER)",
    )
    n.add_argument(
        "--apply-network",
        action="store_true",
        help="root: write the networking file (backup kept), then vmware-networks --stop, "
        "--migrate-network-settings, --start; also add the LAN segments to the preferences",
    )


def run(args, env) -> ExitStatus:
    return {"check": _check, "fix": _fix, "networks": _networks}[args.vmnet_command](args, env)


def _explain(env, group: str = "vmware") -> None:
    from labctl.workstation.vmnet import PROMISC_REFUSAL

    env.out("")
    env.out(
        "Why it matters: a VM whose user cannot open its /dev/vmnetN read/write is refused promiscuous mode:"
    )
    env.out(f"  {PROMISC_REFUSAL}")
    env.out("and nested ESX needs it (its vSwitch must see frames for the inner VMs' and vmk MACs).")
    env.out(f"Fix: sudo labctl vmnet fix --group {group} --persist   (the user must be in group {group})")


def _lab_vmnets(args, env) -> tuple[str | None, dict[int, str]]:
    """(lab name, vmnet number -> network name) of the topology FILE, if one was given."""
    if not args.file:
        return None, {}
    from labctl.topology import load_topology

    topo = load_topology(env.path(args.file), display_name=args.file)
    return topo.lab, {n.vmnet: n.name for n in topo.networks if n.vmnet is not None}


def _missing_nodes(report, lab_nets: dict[int, str], args) -> list[str]:
    have = {node.number for node in report.nodes}
    return [f"{report.dev_dir}/vmnet{k}: missing, and network '{v}' of the lab uses vmnet{k} (configure it: "
            f"labctl vmnet networks {args.file})" for k, v in sorted(lab_nets.items()) if k not in have]


def _check(args, env) -> ExitStatus:
    import json

    from labctl.workstation import vmnet

    lab, lab_nets = _lab_vmnets(args, env)
    who = vmnet.identity_for(args.user) if args.user else vmnet.current_identity(env.environ)
    report = vmnet.check(env.path(args.dev_dir), who)
    missing = _missing_nodes(report, lab_nets, args) if report.nodes else []
    ok = report.ok and not missing
    if args.json:
        doc = report.to_json()
        if lab:
            doc.update(lab=lab, lab_vmnets=sorted(lab_nets), ok=ok, problems=doc["problems"] + missing)
        env.out(json.dumps(doc, indent=2))
        return ExitStatus.SUCCESS if ok else ExitStatus.FINDINGS
    from labctl.cli.style import style_for

    paint = style_for(env, env.stdout, args)
    env.out(f"/dev/vmnet* as seen by {who.name}:")
    for node in report.nodes:
        dev = f"{node.major}:{node.minor}" if node.is_char else "-"
        rw = ("r" if node.readable else "-") + ("w" if node.writable else "-")
        mark = paint.ok("ok") if node.ok else paint.fail("PROBLEM")
        used = f"  (lab: {lab_nets[node.number]})" if node.number in lab_nets else ""
        env.out(
            f"  {node.path}  {node.mode_str}  {node.owner}:{node.group}  {dev:>7}  {who.name}:{rw}  {mark}{used}"
        )
    for note in report.notes:
        env.out(f"note: {note}")
    if ok:
        env.out(f"all {len(report.nodes)} node(s) can be opened read/write by {who.name}"
                + (f"; every vmnet of {lab} has its node" if lab else ""))
        return ExitStatus.SUCCESS
    env.out("")
    for p in report.problems + missing:
        env.out(paint.fail("problem:") + f" {p}")
    if report.nodes and not report.ok:
        _explain(env)
    elif not report.nodes:
        env.out("Fix: start VMware's networks (sudo vmware-networks --start), then run this check again.")
    return ExitStatus.FINDINGS


def _fix(args, env) -> ExitStatus:
    import json

    from labctl.workstation import vmnet

    lab, lab_nets = _lab_vmnets(args, env)
    changes = vmnet.fix(env.path(args.dev_dir), args.group)
    missing = _missing_nodes(vmnet.check(env.path(args.dev_dir), vmnet.current_identity(env.environ)),
                             lab_nets, args) if lab else []
    note = vmnet.membership_note(args.group, vmnet.current_identity(env.environ))
    persisted = None
    if args.persist:
        persisted = vmnet.persist(args.group, unit_dir=env.path(args.unit_dir), environ=env.environ)
    if args.json:
        doc = {"group": args.group, "changes": [str(c) for c in changes], "note": note}
        if lab:
            doc.update(lab=lab, missing=missing)
        if persisted:
            doc["unit"] = {
                "path": str(persisted.unit_path),
                "changed": persisted.changed,
                "commands": persisted.commands,
            }
        env.out(json.dumps(doc, indent=2))
        return ExitStatus.SUCCESS
    for c in changes:
        env.out(f"changed {c}")
    if not changes:
        env.out(f"nothing to change: every vmnet node already has group {args.group} with g+rw")
    if persisted:
        state = "installed" if persisted.changed else "already installed"
        env.out(f"{state} {persisted.unit_path}; enabled (systemctl enable {vmnet.UNIT_NAME})")
    else:
        env.out("note: VMware recreates the nodes on every network restart; add --persist to keep this")
    if note:
        env.out(f"note: {note}")
    for m in missing:
        env.out(f"note: {m}")
    return ExitStatus.SUCCESS


def _networks(args, env) -> ExitStatus:
    import json

    from labctl.topology import load_topology
    from labctl.workstation import networking as nw
    from labctl.workstation import preferences as prefs

    topo = load_topology(env.path(args.file))
    host = nw.read_host_networking(env.path(args.etc_dir))
    plan = nw.plan_network(host.file, nw.lab_vnets(topo))
    segments = prefs.lab_segments(topo)
    pref_path = (
        env.path(args.preferences) if args.preferences else prefs.default_preferences_path(env.environ)
    )
    seg_changes = prefs.ensure_segments(pref_path, segments, dry_run=True)
    applied = None
    if args.apply_network and (plan.changes or seg_changes):
        if plan.changes:
            applied = nw.apply_network(plan, env.path(args.etc_dir), environ=env.environ)
        if seg_changes:
            seg_changes = prefs.ensure_segments(pref_path, segments)  # made: "added ..."
    if args.json:
        doc = {
            "networking": host.to_json(),
            "changes": [c.to_json() for c in plan.changes],
            "lan_segments": {"preferences": str(pref_path), "changes": seg_changes},
            "notes": plan.notes,
            "applied": bool(args.apply_network and (plan.changes or seg_changes)),
        }
        if applied:
            doc["backup"] = str(applied.backup) if applied.backup else None
        env.out(json.dumps(doc, indent=2))
    else:
        src = host.path if host.exists else f"{host.path} (missing)"
        env.out(f"vmnets on this machine ({src}):")
        for v in host.vnets.values():
            where = v.cidr or "-"
            extra = f" bridge {v.bridge_adapter}" if v.bridge_adapter else ""
            env.out(
                f"  vmnet{v.number:<3} {v.kind:<9} {where:<18} dhcp={'yes' if v.dhcp else 'no'}{extra}"
                + (f"  ({v.name})" if v.name else "")
            )
        verb = "applied" if args.apply_network else "needed"
        if plan.changes:
            env.out(f"networking changes {verb}:")
            for c in plan.changes:
                env.out(f"  {c}")
        else:
            env.out(f"networking: the lab's {len(nw.lab_vnets(topo))} host-only vmnet(s) already match")
        if seg_changes:
            env.out(f"LAN segments {verb} in {pref_path}:")
            for c in seg_changes:
                env.out(f"  {c}")
        elif segments:
            env.out(f"LAN segments: all {len(segments)} listed in {pref_path}")
        for note in plan.notes:
            env.out(f"note: {note}")
        if applied:
            env.out(f"backup of the previous file: {applied.backup}")
            env.out("ran: " + "; ".join("vmware-networks " + " ".join(c[1:]) for c in applied.commands))
        elif plan.changes or seg_changes:
            env.out(f"apply with: sudo labctl vmnet networks {args.file} --apply-network")
    if args.apply_network:
        return ExitStatus.SUCCESS
    return ExitStatus.FINDINGS if (plan.changes or seg_changes) else ExitStatus.SUCCESS
