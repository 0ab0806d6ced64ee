"""Where a run is assembled: the real or the simulated twin of each outside system, chosen once per command.

The domain packages never choose and never import the simulator: `workstation/` has only the real driver
(vmrun), `remote/` only real SSH settings, `vsphere/` only real sessions. Their simulated twins live under `sim/`
(`sim.workstation`, `sim.endpoints`) and implement the same interfaces. The CLI and the pipeline call these
functions with `--sim`'s sim dir (or None), so one place decides "real or simulated" for every backend.

A topology with `target: {kind: vsphere}` runs its VMs on a physical ESXi host or vCenter instead of Workstation:
`workstation` returns the vSphere VM driver over the run's one session (`target_session`); with `--sim` that
physical side is the simulated vSphere named in the sim dir's endpoints.json (`target`), and the topology's target
address is never dialled.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from labctl.env import Env
    from labctl.plan.context import Context
    from labctl.vsphere.client import VSphereClient
    from labctl.remote.connection import ConnectSettings, LabConnections
    from labctl.remote.hosts import HostTarget
    from labctl.topology import Topology
    from labctl.workstation.driver import Driver


def workstation(topology: Topology, env: Env, *, sim_dir: Path | None = None, create: bool = True,
                session: VSphereClient | None = None) -> Driver:
    """The VM backend: vmrun on this machine, or with `sim_dir` the simulated Workstation under it; for a
    `target: vsphere` topology the vSphere driver over `session` (opened here when not given: see vm_driver).

    `create=False` (planning) reads only: the simulated Workstation's directory is not made.
    """
    if topology.target is not None:
        try:
            from labctl.vsphere.target.driver import VsphereDriver
        except ModuleNotFoundError as e:
            if e.name != "labctl.vsphere.target.driver":
                raise
            from labctl.errors import EnvironmentProblem

            raise EnvironmentProblem("this labctl has no VM driver for a vSphere target (labctl.vsphere.target."
                                     "driver is missing)", hint="update labctl") from None

        from labctl.topology.portgroups import lab_portgroups

        owns = session is None
        if session is None:
            session = vsphere_session(topology, env, sim_dir=sim_dir)
        return VsphereDriver(session, topology.target, topology.state_dir, owns_session=owns,
                             portgroups={p.network: p.name for p in lab_portgroups(topology)})
    if sim_dir is None:
        from labctl.workstation.driver import workstation_driver

        return workstation_driver(env.environ)
    from labctl.sim.lab import spec_from_topology
    from labctl.sim.workstation import LabHosts, SimDriver

    drv = SimDriver(sim_dir, LabHosts(sim_dir, spec_from_topology(topology), environ=env.environ))
    if create:
        drv.verify()
    return drv


def vm_driver(ctx: Context) -> Driver:
    """The run's VM backend, made once (`ctx.once`); on a vSphere target over the run's one session."""
    session = target_session(ctx) if ctx.topology.target is not None else None
    return ctx.once("driver", lambda: workstation(ctx.topology, ctx.env, sim_dir=ctx.sim_dir, create=ctx.apply,
                                                  session=session))


def target_session(ctx: Context) -> VSphereClient:
    """The run's one session onto its vSphere target (opened on first use, logged out when the run ends)."""
    # --insecure/--thumbprint are the lab vCenter's; the target's certificate policy is its own block's
    return ctx.once("vsphere-target", lambda: vsphere_session(
        ctx.topology, ctx.env, sim_dir=ctx.sim_dir, start=True,
        progress=lambda text: ctx.progress.host("target", text)))


def vsphere_session(topology: Topology, env: Env, *, sim_dir: Path | None = None, insecure: bool = False,
                    thumbprint: str | None = None, start: bool = False,
                    progress: Callable[[str], None] | None = None) -> VSphereClient:
    """A session onto the topology's vSphere target: its `host` with the vcenter stage's credential rules (GOVC_*,
    `password_env`, a prompt on a terminal; never stored), or with `sim_dir` the simulated vSphere named in the sim
    dir's endpoints.json (`target`), started first with `start` (`labctl.sim.target.ensure_for`): the topology's
    address is never dialled then."""
    from labctl.errors import EnvironmentProblem, LabctlError
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target

    t = topology.target
    if t is None:
        raise LabctlError(f"{topology.lab} has no vSphere target (its VMs run in Workstation)")
    if sim_dir is None:
        target = resolve_target(settings=t, environ=env.environ, insecure=insecure, thumbprint=thumbprint,
                                prompt=env.secret_prompt())
        return VSphereClient.connect(target)
    from labctl.sim.endpoints import ENDPOINTS_FILE, load_endpoints

    def entry_now():
        return load_endpoints(sim_dir).target if (Path(sim_dir) / ENDPOINTS_FILE).is_file() else None

    entry = entry_now()
    if (not entry or not entry.get("url")) and start:
        # the simulated vSphere stands in for infrastructure that exists before labctl runs (the user's ESXi host
        # or vCenter), so `plan --sim` starts it too, to read it; it holds nothing of the lab until `up`
        from labctl.sim.target import ensure_for

        ensure_for(Path(sim_dir), t, environ=env.environ, progress=progress)
        entry = entry_now()
    if not entry or not entry.get("url"):
        raise EnvironmentProblem(f"no simulated vSphere target for {topology.lab} in {sim_dir}",
                                 hint=f"`labctl up {topology.path} --sim` starts it (needs Go and govmomi: "
                                      "apt-get install golang-go golang-github-vmware-govmomi-dev)")
    password = Path(entry["password_file"]).read_text().strip() if entry.get("password_file") else None
    # the simulated side only: no GOVC_* (they name a real vSphere), no topology credentials
    target = resolve_target(settings=None, environ={}, sim_vcenter=entry, sim_password=password)
    if target.host not in ("127.0.0.1", "::1", "localhost"):
        raise EnvironmentProblem(f"--sim: the simulated vSphere target {target.display} is not on loopback")
    return VSphereClient.connect(target)


def sim_directory(topology: Topology, env: Env, override: str | None) -> Path:
    """The simulated lab's directory (`--sim-dir`, $LABCTL_SIM_DIR, or the per-lab default)."""
    from labctl.sim.paths import sim_dir

    return Path(sim_dir(topology.lab, env, override))


def ssh_settings(topology: Topology, env: Env, *, sim: bool = False, sim_dir: str | None = None,
                 trust_new_hosts: bool = False, **timeouts: float) -> ConnectSettings:
    """How to reach the lab's hosts over SSH: the real lab, or with `sim` the simulated lab's endpoint map."""
    if not sim:
        from labctl.remote.lab import connect_settings

        return connect_settings(topology, env, trust_new_hosts=trust_new_hosts, **timeouts)
    from labctl.errors import EnvironmentProblem
    from labctl.sim.endpoints import ENDPOINTS_FILE
    from labctl.sim.endpoints import ssh_settings as sim_ssh_settings

    d = sim_directory(topology, env, sim_dir)
    if not (d / ENDPOINTS_FILE).is_file():
        raise EnvironmentProblem(
            f"no simulated lab running for {topology.lab} (no {d / ENDPOINTS_FILE})",
            hint=f"start it: labctl sim up {topology.path}" + (f" --sim-dir {sim_dir}" if sim_dir else ""))
    return sim_ssh_settings(d, environ=env.environ, prompt=env.secret_prompt(), trust_new_hosts=trust_new_hosts,
                            **timeouts)


def open_lab(topology: Topology, env: Env, *, hosts: list[str] | None = None, sim: bool = False,
             sim_dir: str | None = None, trust_new_hosts: bool = False, **timeouts: float
             ) -> tuple[LabConnections, list[HostTarget]]:
    """The lab's SSH connections (one per host, opened on first use) and targets; use as `with lab: ...`."""
    from labctl.remote.hosts import targets_from_topology
    from labctl.remote.lab import open_lab as _open

    targets_from_topology(topology, hosts)  # an unknown --host is a usage error before any lab is looked for
    settings = ssh_settings(topology, env, sim=sim, sim_dir=sim_dir, trust_new_hosts=trust_new_hosts, **timeouts)
    return _open(topology, env, hosts=hosts, settings=settings)


def sim_client_key(sim_dir: Path) -> Path:
    """The simulated lab's client key (`<sim dir>/id_rsa`, 0600, with its `.pub`), made once; the path of the .pub.
    Its public half is what an unattended install authorizes for root in a simulated lab."""
    from labctl.sim.lab import CLIENT_KEY, client_key
    from labctl.sim.paths import ensure_private

    client_key(ensure_private(sim_dir))
    return Path(sim_dir) / f"{CLIENT_KEY}.pub"
