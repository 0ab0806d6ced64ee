"""The topology: load a YAML file into a validated, fully resolved `Topology` (see model.py)."""

from __future__ import annotations

import os

from labctl.topology.build import LoadResult, load
from labctl.topology.model import (
    Cluster, Datastore, EsxHost, Interface, Network, Nic, SshSettings, Topology, VCenter, VibSpec, Vm, VsphereTarget, Workstation,
)


def load_topology(path: str | os.PathLike[str], display_name: str | None = None) -> Topology:
    """Load and validate; raises `TopologyError` listing every problem (warnings included) when there are errors.

    `display_name` is how the file is named in messages (what the user typed)."""
    from labctl.errors import TopologyError

    result = load(path, display_name=display_name)
    if result.topology is None:
        raise TopologyError(result.formatted(),
                            hint=f"run `labctl validate {display_name or path}` after fixing; it reports every problem")
    return result.topology


__all__ = [
    "Cluster", "Datastore", "EsxHost", "Interface", "LoadResult", "Network", "Nic", "SshSettings", "Topology",
    "VCenter", "VibSpec", "Vm", "VsphereTarget", "Workstation", "load", "load_topology",
]
