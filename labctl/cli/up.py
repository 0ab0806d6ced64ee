"""labctl up FILE — build or converge the whole lab."""

from __future__ import annotations

from labctl.errors import ExitStatus, UsageError

DESCRIPTION = """\
Build the lab described by FILE, or bring an existing one back in line with it. Stages, in order:
  validate   check the topology (warnings are shown, errors stop here)
  render     write each VM's .vmx and each linked clone's plan into the lab's vm_dir
  networks   the lab's host-only vmnets in /etc/vmware/networking (--apply-network, root) and LAN segment names
  vmnet      /dev/vmnet* read/write for your group, so nested ESX may use promiscuous mode
  vms        create VMs and their disks; a host with an iso and a blank disk gets its install media: a patched
             copy of the ISO (cached) on CD 1, its kickstart CD on CD 2, boot order disk then CD
  install    boot those installers and wait (per-host progress, --install-timeout) until each host answers SSH
             with the host key labctl made for it; power off each clone source cleanly, disconnect its CDs
  clones     snapshot each prepared source as "base" and make the linked clones
  start      power on VMs that are off
  ssh        wait until every ESX host answers SSH (strict host keys; --trust-new-hosts pins new ones)
  macs       find vswif0/vmk0 MACs and /system/uuid copied into clones, and give each host its own
  nfs        mount the NFS datastores on their hosts
  vcenter    datacenter, cluster, hosts, HA with das.isolationaddress (one reconfigure with the differences)
  vibs       build VIBs from their stage directories and install them (unsigned: --no-sig-check)
Every stage reads the current state first and changes only what differs: a second run reports no changes.
Ctrl-C stops between steps; run the same command again to resume. A host that fails is left out of the later
stages while the others carry on; the summary says what failed and what to run next.

--sim runs the same pipeline against a simulated lab on this machine: simulated Workstation, simulated ESX/ESXi
hosts over real SSH on 127.0.0.1, and govmomi's vCenter simulator (vcsim) when Go is installed. Nothing leaves
this machine; the topology's addresses are mapped to loopback."""

EPILOG = """\
examples:
  labctl up topologies/esx35-ha-pair.yaml --sim        the whole 2010 story, simulated
  labctl plan lab.yaml                                 what `up` would change (nothing is changed)
  labctl up lab.yaml --only macs nfs                   just these stages
  sudo labctl up lab.yaml --apply-network --only networks vmnet
  labctl up lab.yaml --yes --json                      unattended, machine-readable

exit status: 0 done (or nothing to do), 2 usage or topology errors, 3 some step failed (see summary),
4 a host was unreachable, 6 a prerequisite is missing (vmrun, root for
--apply-network, Go for the vCenter simulator), 130 interrupted, 141 output closed (`| head`; re-run to resume or finish)."""


def add_pipeline_args(p, *, up: bool) -> None:
    from labctl.cli.options import SIM_DIR_HELP, StageList, add_thumbprint
    from labctl.plan.pipeline import STAGE_NAMES

    # FILE may also come after --only/--skip's stages (`up --only macs nfs lab.yaml`): see StageList
    p.add_argument("file", nargs="?", metavar="FILE", help="topology YAML file")
    p.add_argument("--sim", action="store_true", help="run against a simulated lab on this machine")
    p.add_argument("--sim-dir", metavar="DIR", help=SIM_DIR_HELP + " (with --sim)")
    p.add_argument("--only", action=StageList, stages=STAGE_NAMES, metavar="STAGE", default=(),
                   help="run only these stages: " + ", ".join(STAGE_NAMES))
    p.add_argument("--skip", action=StageList, stages=STAGE_NAMES, metavar="STAGE", default=(),
                   help="leave these stages out")
    p.add_argument("--trust-new-hosts", action="store_true",
                   help="pin the SSH host key of hosts not yet in the lab's known_hosts (trust on first use, explicit)")
    p.add_argument("--vcenter", metavar="URL", help="vCenter to use instead of the topology's (http[s]://user@host/sdk)")
    p.add_argument("--insecure", action="store_true", help="do not check the vCenter's certificate (lab vCenters)")
    add_thumbprint(p)
    p.add_argument("--install-timeout", type=_seconds, metavar="SECONDS", default=None,
                   help="how long the install stage waits for each host's unattended install to answer SSH "
                        "(default 1800; with --sim 60)")
    p.add_argument("--json", action="store_true", help="print the report as JSON (stdout); progress goes to stderr")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress, only the summary")
    if up:
        p.add_argument("--yes", "-y", action="store_true", help="do not ask before changing a real lab")
        p.add_argument("--force", action="store_true", help="overwrite user-edited files and running VMs' .vmx")
        p.add_argument("--apply-network", action="store_true",
                       help="write the lab's vmnets into /etc/vmware/networking and restart VMware's networks (root)")
        p.add_argument("--mac-strategy", choices=("follow-hardware", "recreate-vmk"),
                       help="ESXi MAC repair: FollowHardwareMac + reboot (default) or recreate vmk0 in place")
        p.add_argument("--vmnet-group", metavar="GROUP", help="group given read/write on /dev/vmnet* (default: yours)")
        p.add_argument("--reboot-for-vibs", action="store_true",
                       help="reboot hosts whose VIB install needs it, and wait for them (default: report it)")


def _seconds(text: str) -> float:
    import argparse

    try:
        v = float(text)
    except ValueError:
        v = -1.0
    if not v > 0 or v != v or v == float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds > 0")
    return v


def configure(p) -> None:
    add_pipeline_args(p, up=True)


def build_context(args, env, *, apply: bool):
    from labctl.plan.context import Context, Options, default_sim_dir, rebase
    from labctl.plan.progress import Progress
    from labctl.topology import load_topology

    from labctl.cli.options import require_file

    require_file(args, "up" if apply else "plan")
    topo = load_topology(env.path(args.file), display_name=args.file)
    if args.sim_dir and not args.sim:
        raise UsageError("--sim-dir goes with --sim")
    sim_dir = default_sim_dir(topo.lab, env.environ, env.path(args.sim_dir) if args.sim_dir else None) if args.sim else None
    if sim_dir is not None:
        topo = rebase(topo, sim_dir / "vms")
    opts = Options(
        sim=args.sim, sim_dir=str(sim_dir) if sim_dir else None, force=getattr(args, "force", False),
        trust_new_hosts=args.trust_new_hosts, apply_network=getattr(args, "apply_network", False),
        vcenter_url=args.vcenter, insecure=args.insecure, thumbprint=args.thumbprint, mac_strategy=getattr(args, "mac_strategy", None),
        only=tuple(args.only), skip=tuple(args.skip), vmnet_group=getattr(args, "vmnet_group", None),
        reboot_for_vibs=getattr(args, "reboot_for_vibs", False), install_timeout=args.install_timeout,
    )
    if "install" not in args.skip and (not args.only or {"vms", "install"} & set(args.only)):
        from labctl.plan.media import check_credentials, check_isos

        check_isos(topo, sim=sim_dir is not None)  # exit 2 before anything runs: missing, no installer, other version
        check_credentials(topo, env, sim_dir)
    stream = env.stderr if args.json else env.stdout
    live = bool(getattr(stream, "isatty", lambda: False)()) and not args.json
    from labctl.cli.style import style_for

    progress = Progress(stream, live=live, quiet=args.quiet, paint=style_for(env, stream, args))
    if sim_dir is not None:
        from labctl.sim.paths import describe_existing, mark_created

        existing = describe_existing(sim_dir, args.file, f"--sim-dir {args.sim_dir}" if args.sim_dir else "")
        if existing:
            progress.line(existing)
        elif apply:
            mark_created(sim_dir)
    return Context(topology=topo, env=env, options=opts, progress=progress, apply=apply, display_name=args.file,
                   sim_dir=sim_dir)


def print_summary(report, env, args, *, apply: bool) -> None:
    import json

    from labctl.cli.style import style_for

    out = env.stdout if not args.json else env.stderr
    paint = style_for(env, out, args)
    n = len(report.changes)
    verb = "made" if apply else "to make"
    if report.interrupted:
        print(f"\ninterrupted: {n} change(s) made so far. Run the same command again to resume.", file=out)
    elif not report.failures:
        if n == 0:
            print(f"\n{report.lab}: " + paint.ok("no changes") + " — the lab matches the topology.", file=out)
        else:
            print(f"\n{report.lab}: " + paint(f"{n} change(s) {verb}", "change" if apply else "plan")
                  + ", no failures.", file=out)
    else:
        print(f"\n{report.lab}: {n} change(s) {verb}, " + paint.fail(f"{len(report.failures)} failure(s)") + ":",
              file=out)
        for f in report.failures:
            print(paint.fail(f"  {f.stage}: {f.target}: {f.message}"), file=out)
            if f.hint:
                print(f"    next: {f.hint}", file=out)
    if args.json:
        env.out(json.dumps(report.to_json(), indent=2))


def status_for(report) -> ExitStatus:
    if getattr(report, "output_closed", False):
        return ExitStatus.OUTPUT_CLOSED
    if report.interrupted:
        return ExitStatus.INTERRUPTED
    if report.failures:
        if report.environment:
            return ExitStatus.ENVIRONMENT
        if any(f.stage == "ssh" for f in report.failures):
            return ExitStatus.UNREACHABLE
        return ExitStatus.FAILED
    return ExitStatus.SUCCESS


def run(args, env) -> ExitStatus:
    from labctl.cli.lablock import lab_lock

    ctx = build_context(args, env, apply=True)
    with lab_lock(args, ctx.topology, ctx.sim_dir):
        return _run_locked(ctx, args, env)


def _run_locked(ctx, args, env) -> ExitStatus:
    from labctl.plan.pipeline import run_pipeline

    if not args.sim and not args.yes:
        if not env.stdin_isatty:
            raise UsageError("`labctl up` changes a real lab; pass --yes to run without a terminal",
                             hint=f"see what it would do first: labctl plan {args.file}")
        env.out(f"This will build/converge lab {ctx.topology.lab} on this machine "
                f"(VMs in {ctx.topology.workstation.vm_dir}).")
        env.stdout.write("Continue? [y/N] ")
        env.stdout.flush()
        if env.stdin.readline().strip().lower() not in ("y", "yes"):
            env.out("nothing done.")
            return ExitStatus.SUCCESS
    try:
        report = run_pipeline(ctx)
    finally:
        ctx.close()
    if report.output_closed:  # nobody reads the summary: say why on stderr, which may still be open
        env.err(f"labctl: output closed (broken pipe): stopped after {len(report.stages)} stage(s), "
                f"{len(report.changes)} change(s) made. Run the same command again to finish.")
        return ExitStatus.OUTPUT_CLOSED
    print_summary(report, env, args, apply=True)
    return status_for(report)
