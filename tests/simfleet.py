"""In-process simulated hosts for end-to-end tests over real SSH on 127.0.0.1 (shared by several test modules)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Endpoints:
    """The endpoint-map role for labctl.remote: lab address -> 127.0.0.1:port; anything else is refused."""

    ports: dict[str, int]

    def resolve(self, address: str) -> tuple[str, int]:
        from labctl.errors import LabctlError

        if address not in self.ports:
            raise LabctlError(f"{address} is not in the simulated lab")
        return "127.0.0.1", self.ports[address]


@dataclass
class Fleet:
    known_hosts: Path
    identity: Path
    ports: dict[str, int] = field(default_factory=dict)  # lab address -> port
    sims: dict = field(default_factory=dict)  # name -> SimHost
    servers: list = field(default_factory=list)

    def settings(self):
        from labctl.remote.connection import ConnectSettings

        return ConnectSettings(known_hosts=self.known_hosts, endpoints=Endpoints(self.ports),
                               identity_files=(self.identity,), environ={}, ssh_config=None, connect_attempts=1,
                               retry_delay=0.01, connect_timeout=5)


@contextmanager
def serve_fleet(tmp_path: Path, hosts, *, mac_prefix: str = "00:50:56:00:10", control=None,
                persist_key: bool = False) -> Iterator[Fleet]:
    """Fresh installs of `hosts` ((name, flavor, version, ip), ...) served on loopback, the client key authorized
    and every host key pinned; the servers are stopped on exit, also on failure. `persist_key`: run auto-backup.sh
    so the key survives reboots (as `labctl sim up` leaves it)."""
    import paramiko

    from labctl.sim import state as S
    from labctl.sim.host import SimHost
    from labctl.sim.server import HostServer

    key = paramiko.RSAKey.generate(2048)  # ESX classic (OpenSSH 4.x) takes RSA user keys only
    ident = tmp_path / "id_rsa"
    key.write_private_key_file(str(ident))
    pub = f"{key.get_name()} {key.get_base64()} labctl-test\n"
    fleet = Fleet(tmp_path / "known_hosts", ident)
    try:
        for i, (name, flavor, version, ip) in enumerate(hosts):
            st = S.fresh_install(name, flavor, version, nic_macs=[f"{mac_prefix}:{i:02x}"], ip=ip,
                                 netmask="255.255.255.0", ssh_address=ip)
            kw = {"control": control} if control is not None else {}
            host = SimHost(st, tmp_path / "hosts" / name, **kw)
            host.fs.mkdir(st.authorized_keys_path.rsplit("/", 1)[0], parents=True)
            host.fs.write(st.authorized_keys_path, pub)
            if persist_key:
                host.fs.mkdir("/tmp", parents=True)
                host.auto_backup()
            srv = HostServer(host).start()
            fleet.servers.append(srv)
            fleet.sims[name], fleet.ports[ip] = host, srv.port
            with fleet.known_hosts.open("a") as f:
                for k in srv.keys.values():
                    f.write(f"{ip} {k.get_name()} {k.get_base64()}\n")  # pinned under the lab address
        yield fleet
    finally:
        for srv in fleet.servers:
            srv.stop()
