"""`labctl prep-template FILE HOST`: make a golden ESXi host clone-safe before cloning it."""

from __future__ import annotations

import argparse

from labctl.env import Env
from labctl.errors import ExitStatus, UsageError

DESCRIPTION = """\
Run on the golden ESXi host before its linked clones are made: sets /Net/FollowHardwareMac=1 (vmk0 then takes
each clone's own vNIC MAC at boot), removes /system/uuid from esx.conf (each clone generates its own) and runs
/sbin/auto-backup.sh so both survive the next boot. The host itself is not rebooted: shut it down and clone it.
Verifies by reading the setting and esx.conf back. ESX classic hosts are repaired after cloning with
`labctl macs fix` instead.

ESXi 7.0 U2 and later write esx.conf from their ConfigStore, /system/uuid included, on every configuration change
(VMware KB 84349): change nothing on the host between prep-template and shutting it down, or run prep-template
again. docs/uuid.md has the evidence per release."""

EPILOG = """\
examples:
  labctl prep-template topologies/esxi8-ha-trio.yaml esxi1
  labctl prep-template lab.yaml esxi1 --dry-run          the exact commands, nothing run
  labctl prep-template lab.yaml esxi1 --sim --trust-new-hosts
(`prep-template HOST --lab FILE`, the old order, still works.)

exit statuses: 0 prepared (or already prepared), 2 usage/topology error (unknown host, ESX classic),
3 a command failed or the read-back disagrees, 4 the host is unreachable."""


def configure(parser: argparse.ArgumentParser) -> None:
    from labctl.cli.options import add_sim

    parser.add_argument("file", metavar="FILE", help="topology YAML file")
    parser.add_argument("host", metavar="HOST", nargs="?", help="the golden host's name in the topology")
    parser.add_argument("--lab", metavar="FILE", help=argparse.SUPPRESS)  # the old spelling: HOST --lab FILE
    parser.add_argument("--dry-run", action="store_true", help="print the commands; run nothing")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    add_sim(parser)
    parser.add_argument("--trust-new-hosts", action="store_true", help="pin an unknown host key on first use")


def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    from labctl.topology import load_topology

    if args.lab:  # prep-template HOST --lab FILE
        if args.host:
            raise UsageError("give the topology once: labctl prep-template FILE HOST")
        args.file, args.host = args.lab, args.file
    if not args.host:
        raise UsageError("which host? labctl prep-template FILE HOST", hint=f"labctl prep-template {args.file} esxi1")
    if args.sim_dir and not args.sim:
        raise UsageError("--sim-dir goes with --sim")
    topology = load_topology(env.path(args.file))
    from labctl.cli.lablock import run_locked

    return run_locked(args, env, topology, lambda: _run(args, env, topology), changes=not args.dry_run)


def _run(args: argparse.Namespace, env: Env, topology) -> ExitStatus:
    import json

    from labctl.plan.backends import open_lab
    from labctl.remote.operations import macs

    lab, (target,) = open_lab(topology, env, hosts=[args.host], sim=args.sim, sim_dir=args.sim_dir,
                              trust_new_hosts=args.trust_new_hosts)
    if target.platform.classic:
        raise UsageError(f"{args.host} is ESX classic: prep-template is for ESXi",
                         hint=f"clone it, then repair the clones with `labctl macs fix {args.file}`")
    cmds = macs.prep_template_commands(target.platform)
    if args.dry_run:
        if args.json:
            env.out(json.dumps({"host": args.host, "commands": cmds}, indent=2))
        else:
            for c in cmds:
                env.out(f"{args.host}$ {c}")
        return ExitStatus.SUCCESS
    with lab:
        conn = lab.connection(args.host)
        for c in cmds:
            conn.run(c).check()
        scan = macs.gather(conn)
    conf_uuid = scan.esx_conf.get("/system/uuid") if scan.esx_conf else None
    ok = scan.follow_hardware_mac == 1 and not conf_uuid
    if args.json:
        env.out(json.dumps({"host": args.host, "commands": cmds, "follow_hardware_mac": scan.follow_hardware_mac,
                            "esx_conf_uuid": conf_uuid, "prepared": ok}, indent=2))
    elif ok:
        env.out(f"{args.host}: FollowHardwareMac=1, /system/uuid cleared, saved with auto-backup.sh — ready to clone "
                "(shut it down first)")
        if macs.uuid_in_configstore(target.platform):
            env.out(f"note: {args.host} runs ESXi 7.0 U2 or later: any configuration change before the shutdown "
                    "writes /system/uuid back (VMware KB 84349); run prep-template again after one")
    if not ok:
        env.err(f"labctl: {args.host}: read-back disagrees: FollowHardwareMac={scan.follow_hardware_mac}, "
                f"esx.conf /system/uuid={conf_uuid!r}")
        return ExitStatus.FAILED
    return ExitStatus.SUCCESS
