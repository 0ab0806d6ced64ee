"""labctl destroy FILE — delete the lab's VMs."""

from __future__ import annotations

from labctl.errors import ExitStatus, RefusedError, UsageError

DESCRIPTION = """\
Delete the lab's VMs: running ones are powered off first, linked clones go before their sources, and each VM is
deleted with `vmrun deleteVM` (its own directory only). labctl never deletes a file outside the lab's vm_dir: a
VM whose .vmx is not at <vm_dir>/<name>/<name>.vmx is refused. The lab's known_hosts is removed too (the
reinstalled hosts will have new host keys). Asks first; --yes does not ask."""

EPILOG = """\
examples:
  labctl destroy topologies/esx35-ha-pair.yaml
  labctl destroy lab.yaml --sim --yes       the simulated lab: processes stopped, its state directory removed

exit status: 0 deleted (or nothing there), 2 not confirmed without a terminal, 3 a VM could not be deleted,
5 refused (a path outside vm_dir)."""


def configure(p) -> None:
    p.add_argument("file", metavar="FILE", help="topology YAML")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask")
    p.add_argument("--sim", action="store_true", help="the simulated lab")
    p.add_argument("--sim-dir", metavar="DIR", help="simulated lab state directory")
    p.add_argument("--json", action="store_true", help="print what was deleted as JSON")


def run(args, env) -> ExitStatus:
    import json

    from labctl.cli.down import lab_and_driver
    from labctl.cli.lablock import lab_lock

    topo, drv, sim_dir = lab_and_driver(args, env)
    if drv is None:  # --sim, and no simulated lab there: nothing to lock, nothing to delete
        if args.json:
            env.out(json.dumps({"lab": topo.lab, "deleted": [], "failed": []}, indent=2))
        else:
            env.out(f"{topo.lab}: no simulated lab in {sim_dir}; nothing to delete")
        return ExitStatus.SUCCESS
    with lab_lock(args, topo, sim_dir):
        return _destroy(args, env, topo, drv, sim_dir)


def _destroy(args, env, topo, drv, sim_dir) -> ExitStatus:
    import json
    from pathlib import Path

    from labctl.errors import LabctlError

    vm_dir = topo.workstation.vm_dir.resolve()
    order = [h for h in topo.esx_hosts if h.is_clone] + [h for h in topo.esx_hosts if not h.is_clone] + list(topo.vms)
    present = [vm for vm in order if drv.exists(vm.vmx_path)]  # a vSphere target: the VMs in the lab's folder
    for vm in present:
        expected = vm_dir / vm.name / f"{vm.name}.vmx"
        if vm.vmx_path.resolve() != expected:
            raise RefusedError(f"{vm.vmx_path} is not {expected}: labctl deletes only inside the lab's vm_dir")
    where = drv.location or vm_dir
    if not present and sim_dir is None:
        env.out(f"{topo.lab}: no VMs to delete in {where}")
        return ExitStatus.SUCCESS
    if not args.yes:
        if not env.stdin_isatty:
            raise UsageError("destroy deletes VMs; pass --yes to confirm without a terminal")
        env.out(f"This deletes {len(present)} VM(s) of lab {topo.lab} in {where}: "
                + ", ".join(vm.name for vm in present))
        env.stdout.write("Type the lab name to confirm: ")
        env.stdout.flush()
        if env.stdin.readline().strip() != topo.lab:
            env.out("nothing deleted.")
            return ExitStatus.SUCCESS
    running = {Path(p).resolve() for p in drv.list_running()}
    deleted, failed = [], []
    for vm in present:
        try:
            if vm.vmx_path.resolve() in running:
                drv.stop(vm.vmx_path, hard=True)
            drv.delete_vm(vm.vmx_path)
            deleted.append(vm.name)
            if not args.json:
                env.out(f"deleted {vm.name}")
        except LabctlError as e:
            failed.append({"vm": vm.name, "error": e.message})
            env.err(f"labctl: {vm.name}: {e.message}")
    if not failed and topo.target is not None:  # the portgroups labctl made on the vSphere target, and only those
        failed += _destroy_target_networks(args, env, topo, drv, sim_dir)
    if not failed and hasattr(drv, "remove_folders"):  # the inventory folders labctl made, and only those, if empty
        try:
            for path, why in drv.remove_folders():
                if why is None:
                    if not args.json:
                        env.out(f"removed folder {path}")
                else:
                    env.err(f"labctl: folder {path}: {why}")
        except LabctlError as e:
            failed.append({"vm": "folder", "error": e.message})
            env.err(f"labctl: {e.message}")
    if not failed:
        kh = topo.known_hosts
        if kh.is_file():
            kh.unlink()
    if sim_dir is not None and not failed:
        from labctl.sim import lab as simlab

        simlab.down(sim_dir)
        if (sim_dir / "hosts").is_dir() or (sim_dir / "vms").is_dir():
            import shutil

            from labctl.sim import target as simtarget

            if simtarget.is_running(sim_dir):  # the simulated vSphere stays, as the user's vSphere does
                for p in sim_dir.iterdir():
                    if p.name == simtarget.TARGET_DIR:
                        continue
                    if p.is_dir() and not p.is_symlink():
                        shutil.rmtree(p)
                    else:
                        p.unlink()
                if not args.json:
                    env.out(f"removed the simulated lab's state in {sim_dir}; the simulated vSphere target keeps "
                            f"running (stop it: labctl sim down {args.file} --sim-dir {sim_dir})")
            else:
                shutil.rmtree(sim_dir)
                if not args.json:
                    env.out(f"removed the simulated lab's state {sim_dir}")
    if args.json:
        env.out(json.dumps({"lab": topo.lab, "deleted": deleted, "failed": failed}, indent=2))
    return ExitStatus.FAILED if failed else ExitStatus.SUCCESS


def _destroy_target_networks(args, env, topo, drv, sim_dir) -> list[dict]:
    from labctl.plan.backends import vsphere_session
    from labctl.vsphere.target.networks import destroy_networks

    from labctl.vsphere.client import VSphereClient

    shared = getattr(getattr(drv, "session", None), "si", None)  # the driver's logged-in session: reused, kept open
    client = VSphereClient(shared) if shared is not None else vsphere_session(topo, env, sim_dir=sim_dir)
    try:
        results = destroy_networks(client, topo, topo.state_dir)
    finally:
        if shared is None:
            client.close()
    failed = []
    for r in results:
        if r.ok:
            if not args.json:
                env.out(f"removed {r.call.display}")
        else:
            failed.append({"vm": r.call.obj, "error": f"{r.call.method}: {r.message}"})
            env.err(f"labctl: {r.call.obj}: {r.call.method}: {r.message}")
    return failed
