"""Where a run is assembled: the real or the simulated twin of each outside system, chosen once per command.

The domain packages never choose and never import the simulator: `workstation/` has only the real driver
(vmrun), `remote/` only real SSH settings. Their simulated twins live under `sim/` (`sim.workstation`,
`sim.endpoints`) and implement the same interfaces. The CLI and the pipeline call these functions with `--sim`'s
sim dir (or None), so one place decides "real or simulated" for every backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labctl.env import Env
    from labctl.remote.connection import ConnectSettings, LabConnections
    from labctl.remote.hosts import HostTarget
    from labctl.topology import Topology
    from labctl.workstation.driver import Driver


def workstation(topology: Topology, env: Env, *, sim_dir: Path | None = None, create: bool = True) -> Driver:
    """The Workstation backend: vmrun on this machine, or with `sim_dir` the simulated Workstation under it.

    `create=False` (planning) reads only: the simulated Workstation's directory is not made.
    """
    if sim_dir is None:
        from labctl.workstation.driver import workstation_driver

        return workstation_driver(env.environ)
    from labctl.sim.lab import spec_from_topology
    from labctl.sim.workstation import LabHosts, SimDriver

    drv = SimDriver(sim_dir, LabHosts(sim_dir, spec_from_topology(topology), environ=env.environ))
    if create:
        drv.verify()
    return drv


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
