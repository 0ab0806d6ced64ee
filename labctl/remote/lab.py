"""Open the SSH connections of one labctl command from a Topology (the adapter the CLI and the pipeline use).

Real lab: strict keys in `<vm_dir>/.labctl/known_hosts`, ~/.ssh/config honoured (HostName, User, Port,
IdentityFile, ProxyJump). Simulated lab (`--sim`): every address goes through the sim's endpoint map (an unmapped
address is an error, never dialled), keys pinned by `labctl sim up` in the sim dir's known_hosts, the sim's client
key; ~/.ssh/config is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.errors import EnvironmentProblem
from labctl.remote.connection import ConnectSettings, LabConnections
from labctl.remote.hosts import HostTarget, targets_from_topology

if TYPE_CHECKING:
    from labctl.cli.env import Env
    from labctl.topology import Topology


def resolve_sim_dir(topology: Topology, env: Env, override: str | None) -> Path:
    from labctl.sim.paths import sim_dir

    return Path(sim_dir(topology.lab, env, override))


def load_sim_endpoints(topology: Topology, env: Env, override: str | None) -> Any:
    from labctl.sim.endpoints import load_endpoints

    d = resolve_sim_dir(topology, env, override)
    if not (d / "endpoints.json").is_file():
        raise EnvironmentProblem(f"no simulated lab running for {topology.lab} (no {d / 'endpoints.json'})",
                          hint=f"start it: labctl sim up {topology.path}" + (f" --sim-dir {override}" if override else ""))
    return load_endpoints(d)


def connect_settings(topology: Topology, env: Env, *, sim: bool = False, sim_dir: str | None = None,
                     trust_new_hosts: bool = False, **timeouts: float) -> ConnectSettings:
    prompt = _tty_prompt if env.stdin_isatty else None
    if sim:
        ep = load_sim_endpoints(topology, env, sim_dir)
        d = resolve_sim_dir(topology, env, sim_dir)
        known = Path(getattr(ep, "known_hosts", None) or d / "known_hosts")
        ident = getattr(ep, "identity_file", None)
        return ConnectSettings(known_hosts=known, trust_new_hosts=trust_new_hosts, endpoints=ep,
                               identity_files=(Path(ident),) if ident else (), environ=env.environ, prompt=prompt,
                               ssh_config=None, **timeouts)
    home = env.environ.get("HOME") or os.path.expanduser("~")
    return ConnectSettings(known_hosts=topology.known_hosts, trust_new_hosts=trust_new_hosts, environ=env.environ,
                           prompt=prompt, ssh_config=Path(home) / ".ssh" / "config", **timeouts)


def open_lab(topology: Topology, env: Env, *, hosts: list[str] | None = None, sim: bool = False,
             sim_dir: str | None = None, trust_new_hosts: bool = False, **timeouts: float
             ) -> tuple[LabConnections, list[HostTarget]]:
    """(connections, targets in topology order). Use as `with lab: ...` so every connection is closed."""
    targets = targets_from_topology(topology, hosts)
    settings = connect_settings(topology, env, sim=sim, sim_dir=sim_dir, trust_new_hosts=trust_new_hosts, **timeouts)
    return LabConnections(targets, settings), targets


def _tty_prompt(message: str) -> str | None:
    import getpass

    try:
        return getpass.getpass(message) or None
    except (EOFError, KeyboardInterrupt):
        return None
