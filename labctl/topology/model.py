"""The topology model: frozen dataclasses built by `labctl.topology.build` from validated YAML.

Everything here is resolved: clones carry their inherited settings, every vNIC has its MAC, every interface its
IP and netmask, every LAN segment its pvnID, paths are absolute. Consumers never look at raw YAML.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from labctl.topology.versions import EsxVersion, product_name


@dataclass(frozen=True)
class Network:
    name: str
    type: str  # lan-segment | host-only | nat | bridged
    subnet: str | None  # CIDR
    gateway: str | None
    vmnet: int | None
    host_ip: str | None
    dhcp: bool
    pvn_id: str | None  # LAN segments only

    @property
    def netmask(self) -> str | None:
        if not self.subnet:
            return None
        import ipaddress

        return str(ipaddress.ip_network(self.subnet, strict=False).netmask)

    @property
    def reachable_from_host(self) -> bool:
        """Can the Workstation host itself dial addresses on this network?"""
        if self.type == "lan-segment":
            return False
        if self.type == "host-only":
            return self.host_ip is not None
        return True  # nat and bridged: the host has a leg (vmnet8 adapter / the physical LAN)


@dataclass(frozen=True)
class Nic:
    index: int
    network: str
    mac: str  # static, lower-case, 00:50:56:00:00:00-00:50:56:3f:ff:ff
    explicit_mac: bool = False


@dataclass(frozen=True)
class Interface:
    network: str
    ip: str
    netmask: str
    gateway: str | None
    portgroup: str
    mac: str | None = None  # only when pinned in the topology
    allocated: bool = False  # ip chosen by labctl


@dataclass(frozen=True)
class SshSettings:
    user: str = "root"
    port: int = 22
    password_env: str | None = None
    key_file: str | None = None
    jump: str | None = None


@dataclass(frozen=True)
class InstallSettings:
    """How labctl installs a host from its ISO (`install:`); clones have none (they are never installed)."""

    kickstart: str = "auto"  # auto | none | an absolute path to the user's own Jinja2 kickstart template
    firstboot: tuple[str, ...] = ()  # extra %firstboot lines (ESXi) / %post lines (ESX classic), verbatim
    boot_options: tuple[str, ...] = ()  # extra kernelopt words

    @property
    def template(self) -> Path | None:
        return None if self.kickstart in ("auto", "none") else Path(self.kickstart)


@dataclass(frozen=True)
class EsxHost:
    name: str
    flavor: str  # esx | esxi
    version: str
    version_info: EsxVersion
    cpus: int
    memory_mb: int
    disk_gb: int
    iso: str | None
    nics: tuple[Nic, ...]
    management: Interface
    vmkernel: tuple[Interface, ...]
    linked_clone_of: str | None
    snapshot: str
    access_ip: str | None
    ssh: SshSettings
    vmx_path: Path
    install: InstallSettings | None = None  # None for a linked clone

    @property
    def address(self) -> str:
        """The address labctl dials: access_ip when given, else the management IP."""
        return self.access_ip or self.management.ip

    @property
    def is_clone(self) -> bool:
        return self.linked_clone_of is not None

    @property
    def management_name(self) -> str:
        return "vswif0" if self.flavor == "esx" else "vmk0"

    @property
    def label(self) -> str:
        """'ESX 3.5u5', 'ESXi 8.0u2', 'ESX 9.0.1' (VMware renamed ESXi to ESX with 9.0)."""
        return f"{product_name(self.flavor, self.version_info)} {self.version}"


@dataclass(frozen=True)
class Vm:
    name: str
    guest_os: str
    cpus: int
    memory_mb: int
    disk_gb: int
    iso: str | None
    nics: tuple[Nic, ...]
    ip: str | None
    vmx_path: Path


@dataclass(frozen=True)
class VCenter:
    host: str
    port: int = 443
    user: str = "administrator"
    password_env: str | None = None
    datacenter: str = "Lab"
    insecure: bool = False
    thumbprint: str | None = None
    api_version: str | None = None  # the API the lab's vCenter speaks: `version`, else the newest host's vCenter
    api_version_given: bool = False  # `version` was in the topology


@dataclass(frozen=True)
class Cluster:
    name: str
    hosts: tuple[str, ...]
    ha_enabled: bool
    isolation_addresses: tuple[str, ...]
    gateway_less: bool  # the hosts' management segment has no gateway


@dataclass(frozen=True)
class Datastore:
    name: str
    type: str
    server: str
    share: str
    hosts: tuple[str, ...]
    readonly: bool = False


@dataclass(frozen=True)
class VibSpec:
    file: Path | None  # None: built from `source` into the lab's state (Topology.vib_file)
    hosts: tuple[str, ...]
    allow_community: bool = False
    source: Path | None = None  # a stage directory to build `file` from


@dataclass(frozen=True)
class Workstation:
    version: str
    version_info: tuple[int, int]
    hw_version: int
    vm_dir: Path


@dataclass(frozen=True)
class VsphereTarget:
    """`target: {kind: vsphere, ...}`: the lab's VMs run on a physical ESXi host or vCenter instead of Workstation.

    The connection fields (host, port, user, password_env, insecure, thumbprint) are those of `VCenter`, so
    `vsphere.connection.resolve_target(settings=...)` resolves the target's address and credentials by the same
    rules (URL > GOVC_* > password_env > a prompt on a terminal). Never holds a secret.
    """

    host: str
    datastore: str
    folder: str  # VM folder path under the datacenter's VM folder, e.g. labctl/<lab>
    port: int = 443
    user: str | None = None  # None: GOVC_USERNAME
    password_env: str | None = None
    insecure: bool = False
    thumbprint: str | None = None
    datacenter: str | None = None  # vCenter only; None: the only datacenter (ha-datacenter on ESXi)
    cluster: str | None = None  # vCenter only
    esx_host: str | None = None  # the physical host the VMs run on (with a cluster: one of its hosts)
    resource_pool: str | None = None  # path under the root pool of the cluster / host
    network_mode: str = "auto"  # auto | mac-learning | promiscuous
    dvswitch: str | None = None  # vCenter only: portgroups on this existing distributed switch
    portgroups: tuple[tuple[str, str], ...] = ()  # (lab network, existing portgroup) used as they are
    vlans: tuple[tuple[str, int], ...] = ()  # (lab network, VLAN ID) on the distributed switch
    disk_provisioning: str = "thin"  # thin | thick | eager-zeroed-thick
    appliance_ova: str | None = None  # absolute path of a Nested ESXi appliance OVA
    template: str | None = None  # inventory path of a Nested ESXi template
    kind: str = "vsphere"

    def existing_portgroup(self, network: str) -> str | None:
        """The user's existing portgroup for a lab network (`portgroups:`), or None: labctl creates one."""
        return dict(self.portgroups).get(network)

    def vlan(self, network: str) -> int | None:
        return dict(self.vlans).get(network)


@dataclass(frozen=True)
class Topology:
    lab: str
    path: Path  # the YAML file it came from
    workstation: Workstation
    networks: tuple[Network, ...]
    esx_hosts: tuple[EsxHost, ...]
    vms: tuple[Vm, ...]
    vcenter: VCenter | None
    ssh: SshSettings
    clusters: tuple[Cluster, ...]
    datastores: tuple[Datastore, ...]
    vibs: tuple[VibSpec, ...]
    warnings: tuple[str, ...] = field(default=(), compare=False)
    target: VsphereTarget | None = None  # None: VMware Workstation on this machine (`target:` absent or workstation)

    def host(self, name: str) -> EsxHost:
        for h in self.esx_hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    def network(self, name: str) -> Network:
        for n in self.networks:
            if n.name == name:
                return n
        raise KeyError(name)

    def vm(self, name: str) -> Vm:
        for v in self.vms:
            if v.name == name:
                return v
        raise KeyError(name)

    @property
    def state_dir(self) -> Path:
        """Lab-local state (known_hosts, manifests): <vm_dir>/.labctl"""
        return self.workstation.vm_dir / ".labctl"

    @property
    def known_hosts(self) -> Path:
        return self.state_dir / "known_hosts"

    def vib_file(self, spec: VibSpec) -> Path:
        """The .vib a `vibs:` entry deploys: its `file`, or (only `source` given) the one labctl builds from the stage
        directory into the lab's state, <vm_dir>/.labctl/vibs/<stage dir name>.vib — never into the checkout."""
        if spec.file is not None:
            return spec.file
        assert spec.source is not None, "the topology rules require file or source"
        return self.state_dir / "vibs" / f"{spec.source.name}.vib"

    def rebased(self, vm_dir: Path) -> Topology:
        """The same lab with its VMs (and its state) under another directory, as the simulated Workstation keeps
        them in the sim dir."""
        import dataclasses

        ws = dataclasses.replace(self.workstation, vm_dir=vm_dir)
        hosts = tuple(dataclasses.replace(h, vmx_path=vm_dir / h.name / f"{h.name}.vmx") for h in self.esx_hosts)
        vms = tuple(dataclasses.replace(v, vmx_path=vm_dir / v.name / f"{v.name}.vmx") for v in self.vms)
        return dataclasses.replace(self, workstation=ws, esx_hosts=hosts, vms=vms)

    def all_macs(self) -> dict[str, str]:
        """vNIC MAC -> 'vm/ethernetN' for every VM of the lab."""
        out: dict[str, str] = {}
        for vm in (*self.esx_hosts, *self.vms):
            for nic in vm.nics:
                out[nic.mac] = f"{vm.name}/ethernet{nic.index}"
        return out
