"""Stages that talk to the lab's hosts and vCenter: ssh, macs, nfs, vcenter, vibs.

All of them share one SSH connection per host for the whole run (`lab(ctx)`), hosts in parallel.
"""

from __future__ import annotations

from labctl.errors import LabctlError
from labctl.plan.context import Context
from labctl.plan.model import StageReport


class _Lab:
    """The run's SSH connections (opened lazily, one per host) and the hosts' targets."""

    def __init__(self, ctx: Context):
        from labctl.plan.backends import open_lab

        self.conns, self.targets = open_lab(
            ctx.topology, ctx.env, sim=bool(ctx.sim_dir), sim_dir=str(ctx.sim_dir) if ctx.sim_dir else None,
            trust_new_hosts=ctx.options.trust_new_hosts,
        )

    def close(self) -> None:
        self.conns.close()


def lab(ctx: Context) -> _Lab:
    return ctx.once("ssh", lambda: _Lab(ctx))


def _hosts_needing(ctx: Context, names, rep: StageReport | None = None) -> list[str]:
    names = list(names)
    waiting = [n for n in names if n in ctx.pending]
    if waiting and rep is not None:
        rep.notes.append(f"not running yet, read once `up` has started them: {', '.join(waiting)}")
    return ctx.live_hosts(names)


def ssh(ctx: Context, rep: StageReport) -> None:
    import time

    names = _hosts_needing(ctx, [h.name for h in ctx.topology.esx_hosts], rep)
    if not names:
        rep.skipped = "no hosts to reach yet" if ctx.pending else "no hosts left to reach"
        return
    lb = lab(ctx)
    wait = 30.0 if ctx.sim_dir else 180.0

    def probe(conn):
        ctx.progress.host(conn.target.name, "connecting")
        deadline = time.monotonic() + wait
        conn.wait_until_back(deadline, probe="vmware -v", first=True)
        r = conn.run(["vmware", "-v"])
        ctx.progress.host(conn.target.name, "up")
        return r.stdout.strip()

    for o in lb.conns.run_all(names, probe):
        if o.ok:
            if o.value:
                rep.notes.append(f"{o.host}: {o.value}")
        else:
            e = o.error
            msg = getattr(e, "message", None) or str(e)
            hint = getattr(e, "hint", None) or (
                f"if {o.host} was never installed: give it an iso: in the topology (labctl installs it unattended "
                f"in the install stage) and run `labctl up {ctx.display_name}` again; see docs/install.md")
            rep.fail(o.host, msg, hint)
            ctx.failed_hosts[o.host] = "ssh"


def macs(ctx: Context, rep: StageReport) -> None:
    from labctl.remote.operations.macs import fix_lab, scan_lab

    names = _hosts_needing(ctx, [h.name for h in ctx.topology.esx_hosts], rep)
    if not names:
        rep.skipped = "no hosts to read yet" if ctx.pending else "no reachable hosts"
        return
    if not ctx.apply and any(h.is_clone and h.name in ctx.pending for h in ctx.topology.esx_hosts):
        rep.notes.append("linked clones made by this run will carry their source's vswif/vmk MACs and "
                         "/system/uuid; `up` repairs them after the clones boot")
    lb = lab(ctx)
    vnic = ctx.topology.all_macs()
    for n in names:
        ctx.progress.host(n, "scanning")
    scan = scan_lab(lb.conns, names, vnic_macs=vnic)
    for host, why in scan.unreachable.items():
        rep.fail(host, f"scan failed: {why}")
        ctx.failed_hosts[host] = "macs"
    for d in scan.duplicates:
        rep.notes.append(f"duplicate: {d}")
    strategy = ctx.options.mac_strategy or "follow-hardware"
    reboot_delay = 30.0 if ctx.sim_dir else 600.0
    fix = fix_lab(lb.conns, scan, lab_name=ctx.topology.lab, strategy=strategy, vnic_macs=vnic,
                  dry_run=not ctx.apply, back_within=reboot_delay)
    for p in fix.problems:
        rep.fail(ctx.topology.lab, p)
    outcomes = {id(o.change): o for o in fix.outcomes}
    for c in fix.changes:
        o = outcomes.get(id(c))
        if not ctx.apply:
            rep.change(c.host, c.describe(), *c.commands())
        elif o is None:
            continue  # not attempted: an earlier change of the same host failed (reported below)
        elif o.ok:
            rep.change(c.host, c.describe() + (f" — {o.detail}" if o.detail else ""))
        else:
            rep.fail(c.host, f"{c.describe()}: {o.status}" + (f": {o.detail}" if o.detail else ""),
                     hint=f"labctl macs scan {ctx.display_name}{' --sim' if ctx.sim_dir else ''} shows where it stands; "
                          "a re-run continues")
            ctx.failed_hosts.setdefault(c.host, "macs")
    if ctx.apply and fix.after is not None and fix.after.duplicates:
        for d in fix.after.duplicates:
            rep.fail(ctx.topology.lab, f"still duplicated after the repair: {d}")


def nfs(ctx: Context, rep: StageReport) -> None:
    from labctl.vsphere.nfs_ssh import converge_host, ssh_hosts

    if not ctx.topology.datastores:
        rep.skipped = "the topology lists no datastores"
        return
    live = set(_hosts_needing(ctx, [h.name for h in ssh_hosts(ctx.topology)], rep))
    hosts = [h for h in ssh_hosts(ctx.topology) if h.name in live]
    if not hosts:
        rep.skipped = "no hosts to read yet" if ctx.pending else "no reachable hosts"
        return
    lb = lab(ctx)
    by_name = {h.name: h for h in hosts}

    def one(conn):
        ctx.progress.host(conn.target.name, "mounting" if ctx.apply else "reading")
        return converge_host(lambda host, argv: lb.conns.run(host, argv), by_name[conn.target.name],
                             dry_run=not ctx.apply)

    for o in lb.conns.run_all(list(by_name), one):
        if not o.ok:
            rep.fail(o.host, getattr(o.error, "message", None) or str(o.error))
            continue
        for c in o.value.changes:
            rep.change(c.target, c.description)
        for f in o.value.failures:
            rep.fail(f.target, f.message)
        rep.notes.extend(o.value.notes)


def vcenter(ctx: Context, rep: StageReport) -> None:
    from labctl.vsphere.adapter import apply_topology, nfs_specs, vcenter_settings
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target

    topo = ctx.topology
    if topo.vcenter is None and not ctx.options.vcenter_url:
        rep.skipped = "the topology has no vcenter"
        return
    sim_entry = sim_password = None
    known = []
    vc_vm = next((v.name for v in topo.vms if topo.vcenter and v.ip == topo.vcenter.host), None)
    if not ctx.apply and ("vcenter-simulator" in ctx.pending or (vc_vm and vc_vm in ctx.pending)):
        rep.skipped = "the vCenter is not running yet; read once `up` has started it"
        return
    if vc_vm and vc_vm in ctx.failed_hosts and not ctx.options.vcenter_url:
        rep.skipped = f"the vCenter VM {vc_vm} failed in the {ctx.failed_hosts[vc_vm]} stage"
        return
    if ctx.sim_dir and not ctx.options.vcenter_url:
        from labctl.sim.endpoints import load_endpoints

        emap = load_endpoints(ctx.sim_dir)
        sim_entry = emap.vcenter
        if not sim_entry:
            rep.skipped = ("the simulated lab has no vCenter simulator (needs Go and govmomi: apt-get install "
                           "golang-go golang-github-vmware-govmomi-dev)")
            return
        if sim_entry.get("password_file"):
            from pathlib import Path

            sim_password = Path(sim_entry["password_file"]).read_text().strip()
        if sim_entry.get("workdir"):
            from pathlib import Path

            from labctl.sim.vcsim import ensure_datastore_dirs

            ensure_datastore_dirs(Path(sim_entry["workdir"]), [d.name for d in nfs_specs(topo)])
        known.append(ctx.sim_dir / "known_hosts")
    # with a vSphere target the GOVC_* variables name that target (backends.vsphere_session), not the lab's vCenter
    environ = {k: v for k, v in ctx.env.environ.items() if not (topo.target and k.startswith("GOVC_"))}
    target = resolve_target(settings=vcenter_settings(topo), environ=environ,
                            override_url=ctx.options.vcenter_url, sim_vcenter=sim_entry, sim_password=sim_password,
                            insecure=ctx.options.insecure, thumbprint=ctx.options.thumbprint, prompt=ctx.env.secret_prompt())
    if ctx.sim_dir and target.host not in ("127.0.0.1", "::1", "localhost"):
        raise LabctlError(f"--sim points at {target.display}, not a loopback simulator")
    ctx.progress.host("vcenter", "connecting")
    client = ctx.once("vcenter", lambda: VSphereClient.connect(target))
    ctx.progress.host("vcenter", "reading")
    result = apply_topology(client, topo, ctx.env.environ, known_hosts=known, sim=bool(ctx.sim_dir),
                            trust_new_hosts=ctx.options.trust_new_hosts, nfs=False, dry_run=not ctx.apply)
    for c in result.changes:
        rep.change(c.target, c.description)
    for f in result.failures:
        rep.fail(f.target, f.message)
    rep.notes.extend(result.notes)


def vibs(ctx: Context, rep: StageReport) -> None:
    from labctl.vib.deploy import deploy_topology_vibs

    topo = ctx.topology
    if not topo.vibs:
        rep.skipped = "the topology lists no VIBs"
        return
    live = set(_hosts_needing(ctx, sorted({h for v in topo.vibs for h in v.hosts}), rep))
    if not live:
        rep.skipped = "no hosts to read yet" if ctx.pending else "no reachable hosts"
        return
    lb = lab(ctx)
    targets = [t for t in lb.targets if t.name in live]
    reports = deploy_topology_vibs(topo, lb.conns, targets, reboot=ctx.options.reboot_for_vibs,
                                   only_hosts=sorted(live), dry_run=not ctx.apply)
    for r in reports:
        if r.built:
            rep.change(r.vib.path.name, r.built)
        for h in r.hosts:
            if h.status == "skipped":
                continue  # the same version is installed: nothing to do
            if h.ok:
                what = "would install" if h.status == "planned" else h.status
                extra = [x for x in (h.acceptance_changed and f"acceptance {h.acceptance_changed}",
                                     h.reboot_required and not h.rebooted and "reboot required",
                                     h.rebooted and "rebooted") if x]
                rep.change(h.host, f"{what} {h.vib_id or r.vib.vib_id}" + (f" ({', '.join(extra)})" if extra else ""),
                           *h.steps)
            else:
                rep.fail(h.host, f"{h.vib_id or r.vib.vib_id}: {h.status}: {h.message}", h.hint)
