"""A snapshot of the vCenter inventory labctl cares about, as plain values (built by client.read_inventory).

`ref` fields hold the pyVmomi managed object (opaque here); everything else is plain data, so planners that
read a snapshot are testable without a vCenter.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class DatastoreState:
    name: str
    type: str  # NFS, NFS41, VMFS, ...
    remote_host: str | None = None
    remote_path: str | None = None

    @property
    def is_nas(self) -> bool:
        return self.type.upper().startswith("NFS") or self.remote_host is not None


@dataclass
class HostState:
    name: str
    ref: Any = None
    parent: str | None = None  # cluster (or standalone compute resource) name
    in_cluster: bool = False
    datastore_system: Any = None
    datastores: list[DatastoreState] = field(default_factory=list)

    def datastore(self, name: str) -> DatastoreState | None:
        return next((d for d in self.datastores if d.name == name), None)


@dataclass
class ClusterState:
    name: str
    ref: Any = None
    das_enabled: bool | None = None
    options: dict[str, str] = field(default_factory=dict)


@dataclass
class DatacenterState:
    name: str
    ref: Any = None
    host_folder: Any = None
    clusters: dict[str, ClusterState] = field(default_factory=dict)
    hosts: dict[str, HostState] = field(default_factory=dict)


@dataclass
class Inventory:
    api_version: str
    datacenters: dict[str, DatacenterState] = field(default_factory=dict)
