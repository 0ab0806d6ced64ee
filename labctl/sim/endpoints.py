"""The endpoint map of a running simulated lab (shared contract 2): `<sim dir>/endpoints.json`.

    {"lab": "ha-pair",
     "hosts": {"esx1": {"address": "192.168.69.11", "host": "127.0.0.1", "port": 40123, "pid": 1234,
                        "flavor": "esx", "version": "3.5u5", "host_key_fingerprints": {"ssh-rsa": "SHA256:..."}}},
     "jump": {... same shape ...} | null,
     "vcenter": {"url": "http://127.0.0.1:8989/sdk", "user": "...", "pid": 1234} | null,
     "target": {... the vcenter entry's shape: the simulated vSphere a `target: vsphere` lab runs on ...} | null,
     "known_hosts": "<sim dir>/known_hosts", "identity_file": "<sim dir>/id_rsa"}

`EndpointMap.resolve(address)` maps a lab address (or host name) to (127.0.0.1, port) and raises a LabctlError for
anything else, so `--sim` never dials a real lab address. The port is the address's port on the lab segment
(`labctl.sim.segment`, read at every resolve): whichever running host has that address configured *now* answers
there — not the host the topology meant it for — and nobody answers (connection refused) when no host has it. An
`access_ip` that is none of the host's interface addresses is a port forward (Workstation NAT) to the host's
management IP (`via`), which the segment then resolves the same way.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from labctl.errors import EnvironmentProblem, LabctlError

ENDPOINTS_FILE = "endpoints.json"


@dataclass(frozen=True)
class Endpoint:
    name: str
    address: str
    host: str
    port: int
    pid: int | None = None
    flavor: str = ""
    version: str = ""
    host_key_fingerprints: dict[str, str] = field(default_factory=dict)
    via: str = ""  # a port forward: `address` (an access_ip on no interface) forwards to this management IP

    @classmethod
    def from_dict(cls, name: str, d: dict[str, Any]) -> "Endpoint":
        return cls(name=name, address=str(d.get("address", "")), host=str(d.get("host", "127.0.0.1")),
                   port=int(d["port"]), pid=d.get("pid"), flavor=str(d.get("flavor", "")),
                   version=str(d.get("version", "")), host_key_fingerprints=dict(d.get("host_key_fingerprints") or {}),
                   via=str(d.get("via") or ""))

    def to_dict(self) -> dict[str, Any]:
        return {"address": self.address, "host": self.host, "port": self.port, "pid": self.pid,
                "flavor": self.flavor, "version": self.version, "host_key_fingerprints": self.host_key_fingerprints,
                **({"via": self.via} if self.via else {})}


@dataclass(frozen=True)
class EndpointMap:
    lab: str
    sim_dir: Path
    hosts: dict[str, Endpoint]
    jump: Endpoint | None = None
    vcenter: dict[str, Any] | None = None
    known_hosts: Path | None = None
    identity_file: Path | None = None
    target: dict[str, Any] | None = None  # the simulated physical vSphere of a `target: vsphere` lab

    def all(self) -> list[Endpoint]:
        return [*self.hosts.values(), *([self.jump] if self.jump else [])]

    def endpoint(self, address: str) -> Endpoint:
        for e in self.all():
            if address in (e.address, e.name):
                return e
        raise LabctlError(
            f"{address} is not a host of the simulated lab {self.lab}; refusing to dial it with --sim",
            hint=f"the simulated hosts are: {', '.join(f'{e.name} ({e.address})' for e in self.all())}",
        )

    def resolve(self, address: str) -> tuple[str, int]:
        """Where a connection to `address` goes: the loopback port of the address on the lab segment, whoever holds
        it now. A lab address with no topology host running (a clone at its source's address while the source is
        off) still resolves when the segment knows it; anything else is refused without dialling."""
        from labctl.sim.segment import Segment

        segment = Segment(self.sim_dir)
        try:
            e = self.endpoint(address)
        except LabctlError:
            port = segment.port(address)
            if port is None:
                raise
            return "127.0.0.1", port
        port = segment.port(e.via or e.address)
        return e.host, port if port is not None else e.port

    def is_endpoint(self, host: str, port: int) -> bool:
        from labctl.sim.segment import Segment

        if host == "127.0.0.1" and port in Segment(self.sim_dir).ports():
            return True
        return any(e.host == host and e.port == port for e in self.all())

    def to_dict(self) -> dict[str, Any]:
        return {"lab": self.lab, "hosts": {n: e.to_dict() for n, e in self.hosts.items()},
                "jump": self.jump.to_dict() | {"name": self.jump.name} if self.jump else None,
                "vcenter": self.vcenter, "known_hosts": str(self.known_hosts) if self.known_hosts else None,
                "identity_file": str(self.identity_file) if self.identity_file else None, "target": self.target}


def load_endpoints(sim_dir: Path | str) -> EndpointMap:
    d = Path(sim_dir)
    path = d / ENDPOINTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnvironmentProblem(f"no simulated lab at {d} (no {ENDPOINTS_FILE})",
                                 hint="start one: labctl sim up FILE") from None
    except (OSError, ValueError) as e:
        raise EnvironmentProblem(f"cannot read {path}: {e}") from e
    try:
        hosts = {n: Endpoint.from_dict(n, e) for n, e in (data.get("hosts") or {}).items()}
        j = data.get("jump")
        jump = Endpoint.from_dict(j.get("name", "jump"), j) if j else None
    except (KeyError, TypeError, ValueError) as e:
        raise EnvironmentProblem(f"{path} is not a labctl endpoint map: {e}") from e
    return EndpointMap(
        lab=str(data.get("lab", "")), sim_dir=d, hosts=hosts, jump=jump, vcenter=data.get("vcenter"),
        known_hosts=Path(data["known_hosts"]) if data.get("known_hosts") else None,
        identity_file=Path(data["identity_file"]) if data.get("identity_file") else None,
        target=data.get("target"),
    )


def write_endpoints(sim_dir: Path, emap: EndpointMap) -> Path:
    from labctl.sim.state import write_json_atomic

    path = Path(sim_dir) / ENDPOINTS_FILE
    write_json_atomic(path, emap.to_dict())
    return path


def ssh_settings(sim_dir: Path | str, *, environ: dict[str, str], prompt=None, trust_new_hosts: bool = False,
                 **timeouts: float):
    """How labctl's SSH client reaches this simulated lab (a `labctl.remote.connection.ConnectSettings`).

    Every address goes through the endpoint map (an unmapped address is an error, never dialled); host keys are
    the ones `labctl sim up` pinned in the sim dir's known_hosts; the sim's client key; ~/.ssh/config is ignored.
    """
    from labctl.remote.connection import ConnectSettings

    d = Path(sim_dir)
    ep = load_endpoints(d)
    known = Path(ep.known_hosts or d / "known_hosts")
    identity = Path(ep.identity_file) if ep.identity_file else None
    return ConnectSettings(known_hosts=known, trust_new_hosts=trust_new_hosts, endpoints=ep,
                           identity_files=(identity,) if identity else (), environ=environ, prompt=prompt,
                           ssh_config=None, **timeouts)
