"""Map a Topology onto the vSphere layer's plain inputs (the only module here that knows the topology model).

Hosts are known to vCenter by their management IP (what vCenter dials; `access_ip` is only how this machine
reaches them). NFS datastores of type `nfs` are mounted; other types are left to their own stages.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping

from labctl.vsphere.connection import VCenterSettings
from labctl.vsphere.model import ClusterSpec, HostLogin, NfsSpec, Result

if TYPE_CHECKING:
    from labctl.topology import Topology


def vcenter_settings(topo: Topology) -> VCenterSettings | None:
    return topo.vcenter


def datacenter_name(topo: Topology) -> str:
    return topo.vcenter.datacenter if topo.vcenter is not None else "Lab"


def vcenter_host_name(topo: Topology, host: str) -> str:
    return topo.host(host).management.ip


def cluster_specs(topo: Topology) -> list[ClusterSpec]:
    return [
        ClusterSpec(
            name=c.name,
            hosts=tuple(vcenter_host_name(topo, h) for h in c.hosts),
            ha_enabled=c.ha_enabled,
            isolation_addresses=tuple(c.isolation_addresses),
            gateway_less=c.gateway_less,
        )
        for c in topo.clusters
    ]


def nfs_specs(topo: Topology) -> list[NfsSpec]:
    return [
        NfsSpec(name=d.name, server=d.server, share=d.share,
                hosts=tuple(vcenter_host_name(topo, h) for h in d.hosts), readonly=d.readonly)
        for d in topo.datastores
        if d.type.lower().startswith("nfs")
    ]


def host_logins(topo: Topology, environ: Mapping[str, str], known_hosts: Iterable[Path] = (),
                sim_password: str | None = None) -> dict[str, HostLogin]:
    """Per vCenter host name: root user and password (from ssh.password_env), pinned when known_hosts has it.
    `sim_password` stands in when the variable is unset (vcsim does not check host passwords)."""
    files = [p for p in known_hosts if p.is_file()]
    out: dict[str, HostLogin] = {}
    for h in topo.esx_hosts:
        env_name = h.ssh.password_env or topo.ssh.password_env
        password = (environ.get(env_name) if env_name else None) or sim_password
        addrs = {h.management.ip, h.address, h.name}
        out[h.management.ip] = HostLogin(user=h.ssh.user or "root", password=password, password_env=env_name,
                                         pinned=any(known_hosts_has(f, addrs) for f in files))
    return out


def known_hosts_has(path: Path, names: Iterable[str]) -> bool:
    """True when an OpenSSH known_hosts file has a (plain or hashed) entry for one of `names`."""
    wanted = set(names)
    try:
        lines = path.read_text(errors="replace").splitlines()
    except OSError:
        return False
    for line in lines:
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        field = line.split()[0]
        if field.startswith("@"):  # @cert-authority / @revoked markers
            continue
        for pattern in field.split(","):
            if pattern.startswith("|1|"):
                try:
                    _, _, salt, digest = pattern.split("|")
                    key = base64.b64decode(salt)
                    for name in wanted:
                        mac = hmac.new(key, name.encode(), hashlib.sha1).digest()
                        if base64.b64encode(mac).decode() == digest:
                            return True
                except ValueError:
                    continue
            else:
                host = pattern
                if host.startswith("[") and "]:" in host:
                    host = host[1:host.index("]:")]
                if host in wanted:
                    return True
    return False


def apply_topology(client: Any, topo: Topology, environ: Mapping[str, str], *, known_hosts: Iterable[Path] = (),
                   sim: bool = False, trust_new_hosts: bool = False, nfs: bool = True,
                   dry_run: bool = False) -> Result:
    """The vCenter stage for a whole topology (what `labctl vcenter` and the `up` pipeline run)."""
    from labctl.vsphere.operations import configure_vcenter

    logins = host_logins(topo, environ, [topo.known_hosts, *known_hosts], sim_password="vcsim" if sim else None)
    return configure_vcenter(client, datacenter_name(topo), cluster_specs(topo), logins,
                             trust_new_hosts=trust_new_hosts, datastores=nfs_specs(topo) if nfs else (),
                             dry_run=dry_run)
