"""Open the SSH connections of one labctl command from a Topology (the adapter the CLI and the pipeline use).

A real lab: strict keys in `<vm_dir>/.labctl/known_hosts`, ~/.ssh/config honoured (HostName, User, Port,
IdentityFile, ProxyJump). A simulated lab's settings (every address through the sim's endpoint map) are made by
`labctl.sim.endpoints.ssh_settings` and passed in as `settings`; this package never looks at the simulator — the
choice is made where the run is assembled (`labctl.plan.backends.open_lab`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.remote.connection import ConnectSettings, LabConnections
from labctl.remote.hosts import HostTarget, targets_from_topology

if TYPE_CHECKING:
    from labctl.env import Env
    from labctl.topology import Topology


def connect_settings(topology: Topology, env: Env, *, trust_new_hosts: bool = False,
                     **timeouts: float) -> ConnectSettings:
    """A real lab's settings: the lab's known_hosts, ~/.ssh/config, a password prompt only on a terminal."""
    home = env.environ.get("HOME") or os.path.expanduser("~")
    return ConnectSettings(known_hosts=topology.known_hosts, trust_new_hosts=trust_new_hosts, environ=env.environ,
                           prompt=env.secret_prompt(), ssh_config=Path(home) / ".ssh" / "config", **timeouts)


def open_lab(topology: Topology, env: Env, *, hosts: list[str] | None = None,
             settings: ConnectSettings | None = None, trust_new_hosts: bool = False, **timeouts: float
             ) -> tuple[LabConnections, list[HostTarget]]:
    """(connections, targets in topology order). Use as `with lab: ...` so every connection is closed.

    `settings` defaults to the real lab's (`connect_settings`)."""
    targets = targets_from_topology(topology, hosts)
    if settings is None:
        settings = connect_settings(topology, env, trust_new_hosts=trust_new_hosts, **timeouts)
    return LabConnections(targets, settings), targets
