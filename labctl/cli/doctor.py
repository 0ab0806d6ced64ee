"""labctl doctor [FILE] — is this machine ready for a (or this) lab?"""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Check this machine for what a nested-ESX lab needs, each check with a status and the command that fixes it:
  vmrun / Workstation present and its version (vmware-vmx -v)
  hardware virtualization exposed to this host (vmx or svm in /proc/cpuinfo)
  /dev/vmnet* read/write for the VMs' user (else nested ESX is refused promiscuous mode)
With a topology FILE, also:
  its host-only vmnets present in /etc/vmware/networking with the right subnet, DHCP and host adapter
  free memory and disk against the lab's total (sum of memory_mb and disk_gb of its VMs)
and vm.swappiness (the 2010 lab ran a 3-VM team with 40 to keep it off swap) and the host-wide memory
settings that keep nested hosts in RAM (prefvmx.minVmMemPct, mainMem.partialLazySave/Restore).
Nothing is changed."""

EPILOG = """\
examples:
  labctl doctor                                  the machine alone
  labctl doctor topologies/esx35-ha-pair.yaml    ... and what this lab needs
  labctl doctor lab.yaml --json                  one JSON object: {"ok": ..., "checks": [...]}

exit status: 0 nothing blocking (warnings allowed), 1 a blocking check failed, 2 bad topology."""


def configure(p) -> None:
    p.add_argument("file", nargs="?", metavar="FILE", help="topology YAML (optional)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--user", metavar="NAME", help="check /dev/vmnet* for this user (default: you, or SUDO_USER)"
    )
    g = p.add_argument_group("inputs (for tests and unusual installs)")
    g.add_argument("--proc-dir", default="/proc", metavar="DIR")
    g.add_argument("--dev-dir", default="/dev", metavar="DIR")
    g.add_argument("--etc-dir", default="/etc/vmware", metavar="DIR")
    g.add_argument("--vmware-vmx", default="/usr/lib/vmware/bin/vmware-vmx", metavar="PATH")
    g.add_argument(
        "--preferences", metavar="FILE", help="Workstation preferences (default ~/.vmware/preferences)"
    )


MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL", "skip": "skip"}


def run(args, env) -> ExitStatus:
    import json

    from labctl.workstation import doctor, vmnet
    from labctl.workstation import preferences as prefs

    needs = None
    if args.file:
        from labctl.topology import load_topology

        needs = doctor.lab_needs(load_topology(env.path(args.file)), args.file)
    inputs = doctor.DoctorInputs(
        environ=env.environ,
        proc_dir=env.path(args.proc_dir),
        dev_dir=env.path(args.dev_dir),
        etc_dir=env.path(args.etc_dir),
        vmware_vmx=env.path(args.vmware_vmx),
        user=vmnet.identity_for(args.user) if args.user else None,
        preferences=env.path(args.preferences)
        if args.preferences
        else prefs.default_preferences_path(env.environ),
    )
    checks = doctor.run_checks(inputs, needs)
    blocking = [c for c in checks if c.blocks]
    if args.json:
        env.out(
            json.dumps(
                {
                    "lab": needs.lab if needs else None,
                    "ok": not blocking,
                    "checks": [c.to_json() for c in checks],
                },
                indent=2,
            )
        )
        return ExitStatus.FINDINGS if blocking else ExitStatus.SUCCESS
    from labctl.cli.style import style_for

    paint = style_for(env, env.stdout, args)
    env.out(f"labctl doctor{f' — lab {needs.lab}' if needs else ''}")
    width = max(len(c.name) for c in checks)
    for c in checks:
        mark = paint(MARK.get(c.status, c.status), {"ok": "ok", "warn": "warn", "fail": "fail"}.get(c.status))
        env.out(f"  {mark}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status in ("warn", "fail"):
            env.out(f"        {'':<{width}}  fix: {c.fix}")
    warns = sum(c.status == "warn" for c in checks)
    if blocking:
        env.out(paint.fail(f"{len(blocking)} blocking problem(s)") + f", {warns} warning(s): fix the FAIL lines first")
        return ExitStatus.FINDINGS
    env.out(f"ready{f' for {needs.lab}' if needs else ''}: no blocking problem, {warns} warning(s)")
    return ExitStatus.SUCCESS
