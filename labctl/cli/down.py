"""labctl down FILE — stop the lab's VMs."""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Stop the lab's running VMs (soft by default: the guest is asked to shut down). VMs that are off are left alone,
so running it twice is harmless. With --sim, the simulated hosts and the vCenter simulator are stopped (by the
PIDs labctl recorded when it started them); their disks stay, and `labctl up --sim` boots them again."""

EPILOG = """\
examples:
  labctl down topologies/esx35-ha-pair.yaml
  labctl down lab.yaml --hard          power off without asking the guests
  labctl down lab.yaml --sim

exit status: 0 stopped (or nothing was running), 3 a VM could not be stopped, 6 vmrun not found."""


def configure(p) -> None:
    p.add_argument("file", metavar="FILE", help="topology YAML")
    p.add_argument("--hard", action="store_true", help="power off at once (vmrun stop hard)")
    p.add_argument("--sim", action="store_true", help="the simulated lab")
    p.add_argument("--sim-dir", metavar="DIR", help="simulated lab state directory")
    p.add_argument("--json", action="store_true", help="print what was stopped as JSON")


def lab_and_driver(args, env):
    """(topology, driver, sim dir or None). With --sim and no simulated lab there, the driver is None: nothing
    is created just to find out that nothing runs."""
    from labctl.plan.context import default_sim_dir, rebase
    from labctl.topology import load_topology

    topo = load_topology(env.path(args.file), display_name=args.file)
    sim_dir = None
    if args.sim:
        sim_dir = default_sim_dir(topo.lab, env.environ, env.path(args.sim_dir) if args.sim_dir else None)
        topo = rebase(topo, sim_dir / "vms")
        if not sim_dir.is_dir():
            return topo, None, sim_dir
    from labctl.plan.backends import workstation

    drv = workstation(topo, env, sim_dir=sim_dir)
    return topo, drv, sim_dir


def run(args, env) -> ExitStatus:
    import json

    from labctl.cli.lablock import lab_lock

    topo, drv, sim_dir = lab_and_driver(args, env)
    if drv is None:  # no simulated lab there: nothing to lock, nothing to stop
        if args.json:
            env.out(json.dumps({"lab": topo.lab, "stopped": [], "failed": []}, indent=2))
        else:
            env.out(f"{topo.lab}: no simulated lab in {sim_dir}; nothing was running")
        return ExitStatus.SUCCESS
    with lab_lock(args, topo, sim_dir):
        return _stop(args, env, topo, drv, sim_dir)


def _stop(args, env, topo, drv, sim_dir) -> ExitStatus:
    import json
    from pathlib import Path

    from labctl.errors import LabctlError

    running = {Path(p).resolve() for p in drv.list_running()}
    stopped, failed = [], []
    # clones first, then their sources, then the other VMs
    order = [h for h in topo.esx_hosts if h.is_clone] + [h for h in topo.esx_hosts if not h.is_clone] + list(topo.vms)
    for vm in order:
        if vm.vmx_path.resolve() not in running:
            continue
        try:
            drv.stop(vm.vmx_path, hard=args.hard)
            stopped.append(vm.name)
            if not args.json:
                env.out(f"stopped {vm.name}")
        except LabctlError as e:
            failed.append({"vm": vm.name, "error": e.message})
            env.err(f"labctl: {vm.name}: {e.message}")
    if sim_dir is not None:
        from labctl.sim import lab as simlab

        if simlab.stop_vcenter(sim_dir):
            stopped.append("vcenter (vcsim)")
            if not args.json:
                env.out("stopped the vCenter simulator")
    if args.json:
        env.out(json.dumps({"lab": topo.lab, "stopped": stopped, "failed": failed}, indent=2))
    elif not stopped and not failed:
        env.out(f"{topo.lab}: nothing was running")
    return ExitStatus.FAILED if failed else ExitStatus.SUCCESS
