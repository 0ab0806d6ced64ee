"""`labctl macs scan|fix`: find and repair duplicate vswif/vmk MACs and system UUIDs after linked clones."""

from __future__ import annotations

import argparse

from labctl.env import Env
from labctl.errors import ExitStatus, UsageError

DESCRIPTION = """\
Linked clones of one ESX/ESXi install keep the parent's service-console (vswif0) or VMkernel (vmk0) MAC and its
/system/uuid, while Workstation gives them new vNIC MACs: the hosts can each reach vCenter but not each other.
`scan` reads every host over SSH (one connection per host, all hosts in parallel) and lists each interface's MAC,
IP, source and status, flagging every MAC held twice in the lab (including a guest MAC equal to another VM's vNIC)
and every shared /system/uuid. `fix` keeps the first holder of each duplicate and gives the others a new MAC:
ESX classic edits MACADDR in ifcfg-vswif0 and bounces vswif0; ESXi sets FollowHardwareMac, clears /system/uuid,
runs auto-backup.sh and reboots (or re-creates vmk0 with --strategy recreate-vmk). Interface changes run as a
detached job that restores the previous configuration itself unless labctl confirms the new MAC in time
("commit confirmed"), so a host is never left unreachable."""

EPILOG = """\
examples:
  labctl macs scan topologies/esx35-ha-pair.yaml            table of interfaces, duplicates flagged
  labctl macs scan lab.yaml --sim --json                     the simulated lab, as JSON
  labctl macs fix lab.yaml --dry-run                         the exact commands per host, nothing run
  labctl macs fix lab.yaml --sim --trust-new-hosts           repair, pinning new host keys on first use
  labctl macs fix lab.yaml --strategy recreate-vmk           ESXi: re-create vmk0 with -M instead of a reboot

exit statuses:
  scan: 0 no duplicates, 1 duplicates found, 2 usage or topology error, 4 a host was unreachable
        (connect, authentication, host key) — reported even when duplicates were found among the others.
  fix:  0 nothing to do or every change verified, 3 a change failed or was rolled back, 4 a host was
        unreachable, 2 usage or topology error.

host keys are checked strictly against <vm_dir>/.labctl/known_hosts (with --sim: the sim dir's known_hosts);
--trust-new-hosts pins unknown keys on first use; a changed key is refused with the command that forgets it."""


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    scan = sub.add_parser("scan", help="list interfaces, flag duplicate MACs and UUIDs (read-only)",
                          description="Read every host's vswif/vmk MACs, vNIC MACs and /system/uuid.",
                          epilog=EPILOG, formatter_class=parser.formatter_class)
    _common(scan)
    fix = sub.add_parser("fix", help="give every duplicate holder but the first a new MAC (commit confirmed)",
                         description=DESCRIPTION, epilog=EPILOG, formatter_class=parser.formatter_class)
    _common(fix)
    fix.add_argument("--dry-run", action="store_true", help="print the changes and exact commands; run nothing")
    fix.add_argument("--strategy", choices=("follow-hardware", "recreate-vmk"), default="follow-hardware",
                     help="ESXi vmk0: FollowHardwareMac + new uuid + reboot (default, safe) or re-create vmk0 "
                     "with -M in a detached job (faster, no reboot)")
    fix.add_argument("--confirm-within", type=float, default=60.0, metavar="SECONDS",
                     help="the detached job rolls back unless labctl verified the new MAC within this (default 60)")
    fix.add_argument("--back-within", type=float, default=300.0, metavar="SECONDS",
                     help="how long to wait for a rebooting host to answer again (default 300)")


def _common(p: argparse.ArgumentParser) -> None:
    from labctl.cli.options import add_file, add_hosts, add_sim

    add_file(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_hosts(p)
    add_sim(p)
    p.add_argument("--trust-new-hosts", action="store_true", help="pin unknown host keys on first use")
    p.add_argument("--workers", type=int, default=64, metavar="N", help="hosts handled in parallel (default 64)")
    p.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS", help="per attempt (default 10)")


def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    from labctl.topology import load_topology

    if args.sim_dir and not args.sim:
        raise UsageError("--sim-dir goes with --sim")
    if args.workers < 1:
        raise UsageError("--workers must be at least 1")
    topology = load_topology(env.path(args.file))
    from labctl.cli.lablock import run_locked

    return run_locked(args, env, topology, lambda: _run(args, env, topology),
                      changes=args.action == "fix" and not args.dry_run)


def _run(args: argparse.Namespace, env: Env, topology) -> ExitStatus:
    from labctl.plan.backends import open_lab
    from labctl.remote.operations import macs

    lab, targets = open_lab(topology, env, hosts=args.host, sim=args.sim, sim_dir=args.sim_dir,
                            trust_new_hosts=args.trust_new_hosts, connect_timeout=args.connect_timeout)
    vnic_macs = topology.all_macs()
    names = [t.name for t in targets]
    with lab:
        report = macs.scan_lab(lab, names, vnic_macs=vnic_macs, max_workers=args.workers)
        if args.action == "scan":
            return _print_scan(report, args, env)
        fix = macs.fix_lab(lab, report, lab_name=topology.lab, strategy=args.strategy, vnic_macs=vnic_macs,
                           dry_run=args.dry_run, confirm_within=args.confirm_within, back_within=args.back_within,
                           max_workers=args.workers)
    return _print_fix(fix, args, env)


def _print_scan(report, args, env: Env) -> ExitStatus:
    import json

    if args.json:
        env.out(json.dumps(report.to_json(), indent=2))
    else:
        _scan_table(report, env)
    if report.unreachable:
        return ExitStatus.UNREACHABLE
    return ExitStatus.FINDINGS if report.duplicates else ExitStatus.SUCCESS


def _scan_table(report, env: Env) -> None:
    rows = [("HOST", "INTERFACE", "SOURCE", "MAC", "IP", "STATUS")]
    for s in report.hosts:
        for i in s.interfaces:
            status = report.status_of(s.name, i.name)
            if i.configured_mac and i.configured_mac != i.mac:
                status += f"; ifcfg says {i.configured_mac} (applies when {i.name} bounces)"
            rows.append((s.name, i.name, i.source, i.mac or "-", i.ip or "-", status))
        for nic, mac in s.nics.items():
            rows.append((s.name, nic, "vnic", mac, "-", report.status_of(s.name, nic)))
    widths = [max(len(r[c]) for r in rows) for c in range(len(rows[0]) - 1)]
    for r in rows:
        env.out("  ".join(v.ljust(w) for v, w in zip(r, widths)) + "  " + r[-1])
    for s in report.hosts:
        env.out(f"{s.name}: /system/uuid {s.uuid or '-'}")
    from labctl.cli.style import style_for

    paint = style_for(env, env.stdout)
    for d in report.duplicates:
        env.out(paint.fail("DUPLICATE") + f" {d}")
    _print_unreachable(report.unreachable, env)
    if not report.duplicates and not report.unreachable:
        env.out(f"no duplicates among {len(report.hosts)} host(s)")


def _print_unreachable(unreachable, env: Env) -> None:
    from labctl.cli.style import style_for

    paint = style_for(env, env.stderr)
    for error in unreachable.values():
        env.err(paint.fail("labctl: unreachable:") + f" {error}")
        if error.hint:
            env.err(f"hint: {error.hint}")


def _print_fix(fix, args, env: Env) -> ExitStatus:
    import json

    from labctl.remote.operations.macs import ChangeOutcome

    if args.json:
        env.out(json.dumps({
            "dry_run": bool(args.dry_run),
            "changes": [{"host": c.host, "kind": c.kind, "description": c.describe(), "commands": c.commands()}
                        for c in fix.changes],
            "problems": list(fix.problems),
            "outcomes": [{"host": o.change.host, "description": o.change.describe(), "status": o.status,
                          "detail": o.detail} for o in fix.outcomes],
            "unreachable": fix.before.to_json()["unreachable"],
            "remaining_duplicates": None if fix.after is None else [d.to_json() for d in fix.after.duplicates],
        }, indent=2))
    else:
        if not fix.changes:
            env.out("no changes: every MAC and /system/uuid is already unique"
                    if not fix.before.duplicates else "no changes that can be made over SSH")
        for c in fix.changes:
            env.out(("would change " if args.dry_run else "change ") + c.describe())
            if args.dry_run:
                for cmd in c.commands():
                    env.out(f"    {c.host}$ {cmd}")
        for o in fix.outcomes:
            env.out(f"{o.status:>11}  {o.change.describe()}" + (f": {o.detail}" if o.detail else ""))
        for p in fix.problems:
            env.err(f"labctl: cannot fix: {p}")
        _print_unreachable(fix.before.unreachable, env)
        if fix.after is not None and fix.after.duplicates:
            env.err(f"labctl: {len(fix.after.duplicates)} duplicate(s) remain; re-run `labctl macs fix {args.file}`")
    statuses = {o.status for o in fix.outcomes if isinstance(o, ChangeOutcome)}
    if fix.before.unreachable or "unreachable" in statuses:
        return ExitStatus.UNREACHABLE
    if statuses - {"applied"} or fix.problems or (fix.after is not None and fix.after.duplicates):
        return ExitStatus.FAILED
    return ExitStatus.SUCCESS
