"""Workstation host networking on Linux: `/etc/vmware/networking`, `netmap.conf`, the lab's vmnets, the diff.

The file (workstation.md §7, vagrant-vmware-desktop networking_file.go):

    VERSION=1,0
    answer VNET_1_DHCP yes
    answer VNET_1_HOSTONLY_NETMASK 255.255.255.0
    answer VNET_1_HOSTONLY_SUBNET 192.168.5.0
    answer VNET_1_VIRTUAL_ADAPTER yes
    answer VNET_8_NAT yes
    add_bridge_mapping eth1 2
    add_nat_portfwd 8 tcp 2222 192.168.5.10 22 [description]
    add_dhcp_mac_to_ip 8 00:50:56:00:00:01 192.168.5.10

Every line is kept as read (unknown ones too); edits replace one line or insert next to the vmnet's other lines.
Classification: NAT when `VNET_N_NAT yes`; bridged when a bridge mapping names it (or vmnet0, VMware's bridge);
host-only when it has a host virtual adapter; otherwise **private** — no host adapter and no bridge (Packer calls
that "bridged"; it is not). Applying a new file: `vmware-networks --stop`, `--migrate-network-settings FILE`,
`--start` (root only), after a timestamped backup.
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import EnvironmentProblem, LabctlError, RefusedError

if TYPE_CHECKING:
    from labctl.topology.model import Topology

ANSWER_RE = re.compile(r"^\s*answer\s+VNET_(\d+)_([A-Z0-9_]+)\s+(.*?)\s*$")
BRIDGE_RE = re.compile(r"^\s*add_bridge_mapping\s+(\S+)\s+(-?\d+)\s*$")
PORTFWD_RE = re.compile(r"^\s*add_nat_portfwd\s+(\d+)\s+(tcp|udp)\s+(\d+)\s+(\S+)\s+(\d+)(?:\s+(.*?))?\s*$")
DHCPMAC_RE = re.compile(r"^\s*add_dhcp_mac_to_ip\s+(\d+)\s+(\S+)\s+(\S+)\s*$")
NETMAP_RE = re.compile(r'^\s*network(\d+)\.(name|device)\s*=\s*"?([^"]*)"?\s*$')

DEFAULT_ETC = Path("/etc/vmware")
KINDS = ("bridged", "nat", "host-only", "private")


@dataclass
class _Line:
    raw: str
    vnet: int | None = None  # answer VNET_N_* lines
    key: str | None = None
    value: str | None = None


@dataclass(frozen=True)
class BridgeMapping:
    adapter: str
    vnet: int


@dataclass(frozen=True)
class PortForward:
    vnet: int
    protocol: str
    host_port: int
    guest_ip: str
    guest_port: int
    description: str | None


@dataclass(frozen=True)
class DhcpReservation:
    vnet: int
    mac: str
    ip: str


@dataclass(frozen=True)
class Vnet:
    number: int
    kind: str  # bridged | nat | host-only | private
    subnet: str | None
    netmask: str | None
    dhcp: bool
    virtual_adapter: bool
    bridge_adapter: str | None
    name: str | None = None  # from netmap.conf

    @property
    def device(self) -> str:
        return f"vmnet{self.number}"

    @property
    def cidr(self) -> str | None:
        if not (self.subnet and self.netmask):
            return None
        try:
            return str(ipaddress.ip_network(f"{self.subnet}/{self.netmask}", strict=False))
        except ValueError:
            return None

    def to_json(self) -> dict:
        return {
            "vmnet": self.number,
            "kind": self.kind,
            "subnet": self.subnet,
            "netmask": self.netmask,
            "dhcp": self.dhcp,
            "virtual_adapter": self.virtual_adapter,
            "bridge_adapter": self.bridge_adapter,
            "name": self.name,
        }


class NetworkingFile:
    """The parsed `networking` file; `dump()` gives back every line as read plus the edits."""

    def __init__(self, lines: list[_Line], trailing_newline: bool = True):
        self._lines = lines
        self._trailing_newline = trailing_newline

    @classmethod
    def parse(cls, text: str) -> NetworkingFile:
        lines = []
        for raw in text.splitlines():
            m = ANSWER_RE.match(raw)
            if m:
                lines.append(_Line(raw, int(m.group(1)), m.group(2), m.group(3)))
            else:
                lines.append(_Line(raw))
        return cls(lines, trailing_newline=text.endswith("\n") or not text)

    @classmethod
    def empty(cls) -> NetworkingFile:
        return cls([_Line("VERSION=1,0")])

    def dump(self) -> str:
        body = "\n".join(ln.raw for ln in self._lines)
        return body + ("\n" if self._trailing_newline and self._lines else "")

    # ---- reading --------------------------------------------------------------------------------------
    def answers(self, vnet: int) -> dict[str, str]:
        out: dict[str, str] = {}
        for ln in self._lines:
            if ln.vnet == vnet and ln.key is not None:
                out[ln.key] = ln.value or ""
        return out

    def get(self, vnet: int, key: str) -> str | None:
        return self.answers(vnet).get(key)

    def bridge_mappings(self) -> list[BridgeMapping]:
        out = []
        for ln in self._lines:
            m = BRIDGE_RE.match(ln.raw)
            if m:
                out.append(BridgeMapping(m.group(1), int(m.group(2))))
        return out

    def port_forwards(self) -> list[PortForward]:
        out = []
        for ln in self._lines:
            m = PORTFWD_RE.match(ln.raw)
            if m:
                out.append(
                    PortForward(
                        int(m.group(1)), m.group(2), int(m.group(3)), m.group(4), int(m.group(5)), m.group(6)
                    )
                )
        return out

    def dhcp_reservations(self) -> list[DhcpReservation]:
        out = []
        for ln in self._lines:
            m = DHCPMAC_RE.match(ln.raw)
            if m:
                out.append(DhcpReservation(int(m.group(1)), m.group(2).lower(), m.group(3)))
        return out

    def vnet_numbers(self) -> list[int]:
        nums = {ln.vnet for ln in self._lines if ln.vnet is not None}
        nums |= {b.vnet for b in self.bridge_mappings() if b.vnet >= 0}
        return sorted(nums)

    def vnets(self, names: Mapping[int, str] | None = None) -> dict[int, Vnet]:
        names = names or {}
        return {n: self.vnet(n, names.get(n)) for n in self.vnet_numbers()}

    def vnet(self, number: int, name: str | None = None) -> Vnet:
        a = self.answers(number)
        bridge = next((b.adapter for b in self.bridge_mappings() if b.vnet == number), None)
        return Vnet(
            number=number,
            kind=classify(number, a, bridge),
            subnet=a.get("HOSTONLY_SUBNET"),
            netmask=a.get("HOSTONLY_NETMASK"),
            dhcp=_yes(a.get("DHCP")),
            virtual_adapter=_yes(a.get("VIRTUAL_ADAPTER")),
            bridge_adapter=bridge,
            name=name,
        )

    # ---- editing --------------------------------------------------------------------------------------
    def set(self, vnet: int, key: str, value: str) -> None:
        """Set `answer VNET_<vnet>_<key> <value>`: the existing line in place, else next to the vmnet's lines."""
        hits = [ln for ln in self._lines if ln.vnet == vnet and ln.key == key]
        text = f"answer VNET_{vnet}_{key} {value}"
        if hits:
            for ln in hits[:-1]:
                self._lines.remove(ln)
            last = hits[-1]
            last.raw, last.value = text, value
            return
        self._lines.insert(self._insert_at(vnet, key), _Line(text, vnet, key, value))

    def delete(self, vnet: int, key: str) -> bool:
        before = len(self._lines)
        self._lines = [ln for ln in self._lines if not (ln.vnet == vnet and ln.key == key)]
        return len(self._lines) != before

    def _insert_at(self, vnet: int, key: str) -> int:
        """After the vmnet's last line with a key sorting before `key`, else before a higher vmnet's lines."""
        same = [i for i, ln in enumerate(self._lines) if ln.vnet == vnet]
        if same:
            before = [i for i in same if (self._lines[i].key or "") < key]
            return (before[-1] + 1) if before else same[0]
        higher = [i for i, ln in enumerate(self._lines) if ln.vnet is not None and ln.vnet > vnet]
        if higher:
            return higher[0]
        answers = [i for i, ln in enumerate(self._lines) if ln.vnet is not None]
        if answers:
            return answers[-1] + 1
        version = [i for i, ln in enumerate(self._lines) if ln.raw.startswith("VERSION=")]
        return version[-1] + 1 if version else len(self._lines)


def _yes(v: str | None) -> bool:
    return (v or "").strip().lower() in ("yes", "true", "1")


def classify(number: int, answers: Mapping[str, str], bridge_adapter: str | None) -> str:
    """bridged / nat / host-only / private (a vmnet with no host adapter and no bridge is private)."""
    if _yes(answers.get("NAT")):
        return "nat"
    if bridge_adapter is not None or (number == 0 and not answers):
        return "bridged"
    if _yes(answers.get("VIRTUAL_ADAPTER")):
        return "host-only"
    return "private"


def parse_netmap(text: str) -> dict[int, str]:
    """`netmap.conf` → {vmnet number: name} (`networkN.name` paired with `networkN.device = "vmnetM"`)."""
    names: dict[str, str] = {}
    devices: dict[str, str] = {}
    for raw in text.splitlines():
        m = NETMAP_RE.match(raw)
        if m:
            (names if m.group(2) == "name" else devices)[m.group(1)] = m.group(3)
    out: dict[int, str] = {}
    for idx, dev in devices.items():
        dm = re.fullmatch(r"vmnet(\d+)", dev.strip())
        if dm and idx in names:
            out[int(dm.group(1))] = names[idx]
    return out


@dataclass(frozen=True)
class HostNetworking:
    """What is configured on this machine: the file, its vmnets, netmap names, where they came from."""

    path: Path
    file: NetworkingFile
    vnets: dict[int, Vnet]
    exists: bool

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "exists": self.exists,
            "vnets": [v.to_json() for v in self.vnets.values()],
        }


def read_host_networking(etc_dir: Path = DEFAULT_ETC) -> HostNetworking:
    """Read `<etc_dir>/networking` (empty when absent) and `netmap.conf` names when present."""
    path = Path(etc_dir) / "networking"
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
        exists = True
    except FileNotFoundError:
        text, exists = "", False
    f = NetworkingFile.parse(text) if exists else NetworkingFile.empty()
    names: dict[int, str] = {}
    netmap = Path(etc_dir) / "netmap.conf"
    if netmap.is_file():
        names = parse_netmap(netmap.read_text(encoding="utf-8", errors="replace"))
    return HostNetworking(path, f, f.vnets(names), exists)


# ---- what the lab needs -----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabVnet:
    """A host-only vmnet the lab needs: `host_adapter` only when the topology gives the host an IP on it."""

    number: int
    subnet: str  # network address, e.g. 192.168.69.0
    netmask: str
    host_adapter: bool
    dhcp: bool = False
    networks: tuple[str, ...] = ()  # topology network names using it

    def wanted(self) -> dict[str, str]:
        return {
            "DHCP": "yes" if self.dhcp else "no",
            "HOSTONLY_NETMASK": self.netmask,
            "HOSTONLY_SUBNET": self.subnet,
            "VIRTUAL_ADAPTER": "yes" if self.host_adapter else "no",
        }


@dataclass(frozen=True)
class Change:
    vnet: int
    key: str
    old: str | None
    new: str | None  # None: delete the line

    def __str__(self) -> str:
        if self.new is None:
            return f"vmnet{self.vnet}: remove VNET_{self.vnet}_{self.key} (was {self.old})"
        if self.old is None:
            return f"vmnet{self.vnet}: add VNET_{self.vnet}_{self.key} {self.new}"
        return f"vmnet{self.vnet}: VNET_{self.vnet}_{self.key} {self.old} -> {self.new}"

    def to_json(self) -> dict:
        return {"vmnet": self.vnet, "key": f"VNET_{self.vnet}_{self.key}", "old": self.old, "new": self.new}


@dataclass
class NetworkPlan:
    changes: list[Change]
    new_text: str
    notes: list[str] = field(default_factory=list)

    @property
    def needed(self) -> bool:
        return bool(self.changes)


def lab_vnets(topology: Topology) -> list[LabVnet]:
    """The topology's host-only vmnets (LAN segments, NAT and bridged networks need no networking-file entry)."""
    by_number: dict[int, LabVnet] = {}
    for net in topology.networks:
        if net.type != "host-only" or net.vmnet is None or not net.subnet:
            continue
        ip_net = ipaddress.ip_network(net.subnet, strict=False)
        lv = LabVnet(
            number=net.vmnet,
            subnet=str(ip_net.network_address),
            netmask=str(ip_net.netmask),
            host_adapter=net.host_ip is not None,
            dhcp=bool(net.dhcp),
            networks=(net.name,),
        )
        prev = by_number.get(net.vmnet)
        if prev is not None:
            if (prev.subnet, prev.netmask) != (lv.subnet, lv.netmask):
                raise LabctlError(
                    f"vmnet{net.vmnet} is used by networks {prev.networks[0]!r} and {net.name!r} with different subnets"
                )
            lv = LabVnet(
                lv.number,
                lv.subnet,
                lv.netmask,
                prev.host_adapter or lv.host_adapter,
                prev.dhcp or lv.dhcp,
                prev.networks + lv.networks,
            )
        by_number[net.vmnet] = lv
    return [by_number[k] for k in sorted(by_number)]


def plan_network(current: NetworkingFile, wanted: Iterable[LabVnet]) -> NetworkPlan:
    """The changes that make `current` carry the lab's vmnets; refuses to turn a bridged or NAT vmnet host-only."""
    text = current.dump()
    new = NetworkingFile.parse(text) if text.strip() else NetworkingFile.empty()
    changes: list[Change] = []
    notes: list[str] = []
    problems: list[str] = []
    for lv in wanted:
        have = current.vnet(lv.number)
        if lv.number == 0 or have.bridge_adapter is not None:
            problems.append(
                f"vmnet{lv.number} is bridged on this machine"
                + (f" (to {have.bridge_adapter})" if have.bridge_adapter else "")
                + f"; the topology wants it host-only for {', '.join(lv.networks) or 'the lab'}"
            )
            continue
        if have.kind == "nat":
            problems.append(
                f"vmnet{lv.number} is this machine's NAT network; the topology wants it host-only "
                f"for {', '.join(lv.networks) or 'the lab'}"
            )
            continue
        answers = current.answers(lv.number)
        if have.cidr and (answers.get("HOSTONLY_SUBNET"), answers.get("HOSTONLY_NETMASK")) != (
            lv.subnet,
            lv.netmask,
        ):
            notes.append(
                f"vmnet{lv.number} carries {have.cidr} now; VMs of another lab on vmnet{lv.number} lose that subnet"
            )
        for key, value in lv.wanted().items():
            old = answers.get(key)
            if old != value:
                changes.append(Change(lv.number, key, old, value))
                new.set(lv.number, key, value)
        if lv.host_adapter and lv.dhcp:
            notes.append(f"vmnet{lv.number}: DHCP on a lab segment can hand out the ESX hosts' addresses")
    if problems:
        raise RefusedError(
            "the lab's vmnets clash with this machine's networks:\n  " + "\n  ".join(problems),
            hint="pick free vmnet numbers in the topology (vmnet2-vmnet7 or vmnet9-vmnet19 are usually unused)",
        )
    return NetworkPlan(changes, new.dump(), notes)


# ---- applying -----------------------------------------------------------------------------------------------------
@dataclass
class AppliedNetwork:
    path: Path
    backup: Path | None
    commands: list[list[str]]


def find_tool(name: str, environ: Mapping[str, str] | None = None) -> Path | None:
    environ = os.environ if environ is None else environ
    found = shutil.which(name, path=environ.get("PATH", ""))
    if found:
        return Path(found)
    default = Path("/usr/bin") / name
    return default if default.is_file() else None


def apply_network(
    plan: NetworkPlan,
    etc_dir: Path = DEFAULT_ETC,
    *,
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
    timeout: float = 300.0,
) -> AppliedNetwork:
    """Write the new networking file (backup first) and make VMware use it: stop, migrate, start. Root only."""
    from labctl.workstation import proc, sysfiles

    euid = os.geteuid() if euid is None else euid
    path = Path(etc_dir) / "networking"
    if euid != 0:
        raise EnvironmentProblem(
            f"changing {path} needs root (it is VMware's host network configuration)",
            hint="re-run the same command with sudo, or apply the changes shown by `labctl vmnet networks FILE`",
        )
    tool = find_tool("vmware-networks", environ)
    if tool is None:
        raise EnvironmentProblem(
            "vmware-networks was not found (PATH, /usr/bin)", hint="install VMware Workstation first"
        )
    backup = sysfiles.replace_file(path, plan.new_text, mode=0o644)
    staged = path.with_name("networking.labctl-migrate")
    sysfiles.replace_file(staged, plan.new_text, backup=False, mode=0o600)
    commands: list[list[str]] = []
    try:
        for args in (["--stop"], ["--migrate-network-settings", str(staged)], ["--start"]):
            argv = [str(tool), *args]
            commands.append(argv)
            done = proc.run(argv, environ=environ, timeout=timeout)
            if done.exit_code == 0:
                continue
            tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            why = "timed out" if done.timed_out else f"exit {done.exit_code}"
            restored = ""
            if args[0] != "--start":
                # Put the previous file back and never leave the host without its networks.
                if backup is not None:
                    sysfiles.replace_file(path, backup.read_bytes(), backup=False)
                    restored = f"; {path} was restored from {backup}"
                proc.run([str(tool), "--start"], environ=environ, timeout=timeout)
            raise LabctlError(
                f"vmware-networks {' '.join(args)} failed ({why}): {' | '.join(tail) or 'no output'}{restored}",
                hint="check `vmware-networks --status`; `labctl vmnet networks FILE` shows the changes wanted",
            )
    finally:
        staged.unlink(missing_ok=True)
    return AppliedNetwork(path, backup, commands)
