"""Duplicate vswif/vmk MACs and system UUIDs after linked clones: scan, plan, fix.

Linked clones copy the disk, so every clone keeps the parent's vswif0 MAC (ESX classic, stored in ifcfg-vswif0),
vmk MACs (esx.conf) and `/system/uuid`, while Workstation gives the clone new vNIC MACs. Hosts then see each other's
traffic as their own and cannot talk — the seed's story.

Three layers:
- `gather` (I/O): the facts of one host, all its commands on parallel channels of its one connection.
- `find_duplicates`, `plan_fix` (pure): which MACs/UUIDs are shared, which holder keeps each (hardware vNICs
  always keep theirs; otherwise the first host in topology order), and the typed changes for the others, with the
  exact remote commands (`Change.commands()`), so `--dry-run`, `labctl plan` and tests see what would run.
- `apply_change` (I/O): runs one change "commit confirmed": a detached job applies it, then waits for labctl's
  confirmation and restores the previous configuration itself when none comes before its deadline. labctl
  reconnects, reads the MAC back, and confirms only when it is the planned one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from labctl.errors import LabctlError
from labctl.remote import command as C
from labctl.remote.facts.base import FactParseError, Platform, normalize_mac
from labctl.remote.facts.classic import Ifconfig, IfcfgFile, VswifList4, VswifList35
from labctl.remote.facts.esxcli import AdvancedSettings, AdvcfgGet, NicList, SystemUuid
from labctl.remote.facts.esxconf import ESX_CONF, EsxConf, EsxConfFile
from labctl.remote.facts.vmknic import VmknicList5, VmknicList6
from labctl.remote.result import ConnectionDropped, HostUnreachable, RemoteError, Result

if TYPE_CHECKING:
    from labctl.remote.connection import Connection

FOLLOW_HW_MAC = "/Net/FollowHardwareMac"
STATIC_PREFIX = 0x005056000000  # 00:50:56:00:00:00 - 00:50:56:3f:ff:ff: VMware's static/manual range
STATIC_SPAN = 0x400000
HOST_PROBLEMS = (RemoteError, HostUnreachable)  # what one host's command or connection can raise


# ---------------------------------------------------------------------------------------------------------------
# scanned facts


@dataclass(frozen=True)
class Iface:
    """A guest-side interface: an ESX classic vswif or a VMkernel port."""

    name: str
    source: str  # "vswif" | "vmk"
    mac: str | None  # live MAC (ifconfig / esxcfg-vmknic)
    ip: str | None = None
    netmask: str | None = None
    portgroup: str | None = None
    enabled: bool | None = None
    dhcp: bool | None = None
    configured_mac: str | None = None  # ifcfg-vswif0 MACADDR (differs from `mac` until the interface bounces)


@dataclass(frozen=True)
class HostScan:
    name: str
    platform: Platform
    management: str
    interfaces: tuple[Iface, ...] = ()
    nics: Mapping[str, str] = field(default_factory=dict)  # vmnicN -> MAC (the vNICs)
    uuid: str | None = None
    follow_hardware_mac: int | None = None
    esx_conf: EsxConf | None = None

    def iface(self, name: str) -> Iface | None:
        return next((i for i in self.interfaces if i.name == name), None)


def scan_commands(platform: Platform) -> dict[str, str]:
    """The commands `gather` runs on a host of this platform, by role (run concurrently, one channel each)."""
    cmds: dict[str, str | None] = {"esx_conf": EsxConfFile().command(platform)}
    if platform.classic:
        vswif = VswifList35() if platform.version[0] == 3 else VswifList4()
        cmds |= {"vswif": vswif.command(platform), "ifcfg": IfcfgFile().command(platform),
                 "ifconfig": Ifconfig().command(platform), "vmknic": VmknicList5().command(platform)}
    else:
        vmknic = VmknicList6() if platform.version[0] >= 6 else VmknicList5()
        cmds["vmknic"] = vmknic.command(platform)
        if platform.version[0] >= 5:
            cmds |= {"nics": NicList().command(platform), "uuid": SystemUuid().command(platform),
                     "advanced": AdvancedSettings(FOLLOW_HW_MAC).command(platform)}
        else:
            cmds["advanced"] = AdvcfgGet(FOLLOW_HW_MAC).command(platform)
    return {k: v for k, v in cmds.items() if v}


def gather(conn: Connection) -> HostScan:
    """Read one host's MAC facts over its connection (all commands at once, on parallel channels)."""
    target = conn.target
    cmds = scan_commands(target.platform)
    results = dict(zip(cmds, conn.run_many(list(cmds.values()))))
    return parse_scan(target.name, target.platform, target.management, results)


def parse_scan(name: str, platform: Platform, management: str, results: Mapping[str, Result]) -> HostScan:
    """Pure: the HostScan from the command results of `scan_commands` (a failed command is an error naming it)."""

    def out(role: str, *, required: bool = True) -> str | None:
        r = results.get(role)
        if r is None:
            return None
        if not r.ok:
            if not required:
                return None
            raise RemoteError(name, f"exited with status {r.exit_status}: {r.tail() or r.tail('stdout')}",
                              command=r.command)
        return r.stdout

    try:
        conf = EsxConfFile().parse(out("esx_conf") or "")
        ifaces: list[Iface] = []
        vmk_rows = (VmknicList6() if not platform.classic and platform.version[0] >= 6 else VmknicList5()).parse(
            out("vmknic", required=False) or "")
        if platform.classic:
            vswif_fact = VswifList35() if platform.version[0] == 3 else VswifList4()
            live = {i.name: i for i in Ifconfig().parse(out("ifconfig") or "")}
            ifcfg = IfcfgFile().parse(out("ifcfg", required=False) or "")
            for row in vswif_fact.parse(out("vswif") or ""):
                configured = _norm(ifcfg.get("MACADDR")) if row.name == ifcfg.get("DEVICE", "vswif0") else None
                mac = live[row.name].mac if row.name in live else None
                ifaces.append(Iface(row.name, "vswif", mac or configured, row.ip, row.netmask, row.portgroup,
                                    row.enabled, row.dhcp, configured))
            nics = conf.macs("/net/pnic")
            uuid = conf.system_uuid
            follow = None
        else:
            if "nics" in results:
                nics = {n.name: n.mac for n in NicList().parse(out("nics") or "") if n.mac}
                uuid = SystemUuid().parse(out("uuid") or "")
            else:
                nics = conf.macs("/net/pnic")
                uuid = conf.system_uuid
            follow = _follow_hw(results, out)
        seen: set[str] = set()
        for row in vmk_rows:
            if row.name in seen:  # IPv6 rows repeat the interface
                continue
            seen.add(row.name)
            dhcp = None if row.type is None else row.type.upper().startswith("DHCP")
            ifaces.append(Iface(row.name, "vmk", row.mac, row.ip, row.netmask, row.portgroup, row.enabled, dhcp))
    except FactParseError as e:
        raise RemoteError(name, f"unexpected output from a command ({e})") from None
    return HostScan(name, platform, management, tuple(ifaces), dict(nics), uuid, follow, conf)


def _follow_hw(results: Mapping[str, Result], out) -> int | None:
    text = out("advanced", required=False)
    if text is None:
        return None
    r = results["advanced"]
    if r.command.startswith("esxcfg-advcfg"):
        v = AdvcfgGet().parse(text)
        return v if isinstance(v, int) else None
    opts = AdvancedSettings().parse(text)
    return opts[0].int_value if opts else None


def _norm(mac: str | None) -> str | None:
    if not mac:
        return None
    try:
        return normalize_mac(mac)
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------------------------
# duplicates (pure)


@dataclass(frozen=True)
class Holder:
    owner: str  # host or VM name
    interface: str  # vswif0, vmk1, vmnic0, ethernet0
    kind: str  # "vswif" | "vmk" | "vnic"

    @property
    def hardware(self) -> bool:
        return self.kind == "vnic"

    def __str__(self) -> str:
        return self.owner if self.kind == "uuid" else f"{self.owner}/{self.interface}"


@dataclass(frozen=True)
class Duplicate:
    kind: str  # "mac" | "uuid"
    value: str
    holders: tuple[Holder, ...]
    keep: Holder
    change: tuple[Holder, ...]  # the holders that need a new value (empty: not fixable over SSH)

    def __str__(self) -> str:
        what = "MAC" if self.kind == "mac" else "/system/uuid"
        change = (f"; changes {', '.join(map(str, self.change))}" if self.change
                  else "; not fixable over SSH (vNIC MACs come from the topology)")
        return f"{what} {self.value}: {', '.join(map(str, self.holders))} — {self.keep} keeps it{change}"

    def to_json(self) -> dict:
        return {"kind": self.kind, "value": self.value, "holders": [str(h) for h in self.holders],
                "keep": str(self.keep), "change": [str(h) for h in self.change]}


def find_duplicates(scans: Sequence[HostScan], vnic_macs: Mapping[str, str] | None = None) -> list[Duplicate]:
    """Every MAC held by more than one owner (or by two guest interfaces of one host), and every shared UUID.

    `vnic_macs` are the topology's vNIC MACs (MAC -> "vm/ethernetN", `Topology.all_macs()`), so a guest MAC equal
    to another VM's vNIC counts. A host's own vNIC sharing its MAC with its own vmk0 is normal (ESXi's design).
    The keeper: a hardware vNIC when one holds the MAC (it cannot be changed over SSH), else the first guest
    holder in topology order. Scans are in topology order.
    """
    holders: dict[str, list[Holder]] = {}

    def add(mac: str | None, h: Holder) -> None:
        if not mac:
            return
        lst = holders.setdefault(mac, [])
        if h.hardware and any(x.hardware and x.owner == h.owner for x in lst):
            return  # the same vNIC seen by the host (vmnic0) and by the topology (ethernet0)
        lst.append(h)

    for s in scans:
        for nic, mac in s.nics.items():
            add(mac, Holder(s.name, nic, "vnic"))
    for mac, where in (vnic_macs or {}).items():
        owner, _, iface = where.partition("/")
        add(mac.lower(), Holder(owner, iface or "vnic", "vnic"))
    for s in scans:
        for i in s.interfaces:
            add(i.mac, Holder(s.name, i.name, i.source))
            if i.configured_mac and i.configured_mac != i.mac:
                add(i.configured_mac, Holder(s.name, i.name, i.source))

    dups: list[Duplicate] = []
    for mac, hs in holders.items():
        hs = list(dict.fromkeys(hs))
        owners = list(dict.fromkeys(h.owner for h in hs))
        guests_per_owner = {o: [h for h in hs if h.owner == o and not h.hardware] for o in owners}
        if len(owners) < 2 and all(len(g) < 2 for g in guests_per_owner.values()):
            continue
        hard = [h for h in hs if h.hardware]
        keep = hard[0] if hard else hs[0]
        change = []
        for h in hs:
            if h.hardware or h == keep:
                continue
            if h.owner == keep.owner and not keep.hardware:
                change.append(h)  # a second guest interface on the keeper's host
            elif h.owner == keep.owner and keep.hardware and h == guests_per_owner[h.owner][0]:
                continue  # the keeper host's own management interface following its vNIC
            else:
                change.append(h)
        dups.append(Duplicate("mac", mac, tuple(hs), keep, tuple(change)))

    by_uuid: dict[str, list[str]] = {}
    for s in scans:
        if s.uuid:
            by_uuid.setdefault(s.uuid, []).append(s.name)
    for uuid, names in by_uuid.items():
        if len(names) > 1:
            hs = tuple(Holder(n, "/system/uuid", "uuid") for n in names)
            dups.append(Duplicate("uuid", uuid, hs, hs[0], hs[1:]))
    return dups


# ---------------------------------------------------------------------------------------------------------------
# changes (typed, printable)


@dataclass(frozen=True)
class JobFiles:
    """Where a detached job keeps its backups, log and the commit-confirmed markers (all under /tmp)."""

    base: str

    @property
    def log(self) -> str:
        return self.base + ".log"

    @property
    def decided(self) -> str:  # created (mkdir, atomic) by whoever decides first: labctl (commit) or the job
        return self.base + ".decided"

    @property
    def rolled_back(self) -> str:  # the job decided: it restores the previous configuration
        return self.base + ".rolledback"

    @property
    def done(self) -> str:  # the job has finished (after a restore, the host is back to where it was)
        return self.base + ".done"

    def backup(self, what: str) -> str:
        return f"{self.base}.{what}.bak"

    def all(self) -> list[str]:
        return [self.log, self.decided, self.rolled_back, self.done, self.backup("ifcfg"), self.backup("esxconf")]


@dataclass(frozen=True)
class MacChange:
    """Give one interface a new MAC at once, commit confirmed (no reboot).

    method "ifcfg": ESX classic vswif — MACADDR in its ifcfg file (+ the esx.conf key when present), bounce it.
    method "recreate": ESXi 5+ vmk — remove it and add it back with `-M`, then its IPv4 settings.
    Both run as one detached job that waits `confirm_within` seconds for labctl's confirmation and otherwise
    restores the previous configuration itself.
    """

    host: str
    interface: str
    old_mac: str
    new_mac: str
    method: str
    platform: Platform
    portgroup: str | None = None
    ip: str | None = None
    netmask: str | None = None
    dhcp: bool = False
    esx_conf_key: str | None = None
    confirm_within: float = 60.0

    kind = "mac"
    reboots = False

    @property
    def job(self) -> JobFiles:
        digest = hashlib.sha256(f"{self.host}|{self.interface}|{self.old_mac}|{self.new_mac}".encode()).hexdigest()
        return JobFiles(f"/tmp/labctl-mac-{self.interface}-{digest[:10]}")

    def describe(self) -> str:
        how = {"ifcfg": f"edit ifcfg-{self.interface} and bounce it", "recreate": f"re-create {self.interface}"}
        return f"{self.host}: {self.interface} {self.old_mac} -> {self.new_mac} ({how[self.method]}, commit confirmed)"

    def commands(self) -> list[str]:
        """The exact remote command: one detached job (apply, wait, roll back unless confirmed)."""
        j = self.job
        apply_, restore = self._apply_and_restore()
        script = [*apply_,
                  # until labctl's confirmation (its mkdir) or the deadline: a confirmed job ends within a second,
                  # so labctl removes its files before a reboot that follows could kill it (ESX classic keeps /tmp)
                  C.wait_while_not(["test", "-d", j.decided], self.confirm_within),
                  C.all_of(["mkdir", j.decided], C.redirect_out(["echo", "rollback"], j.rolled_back)),
                  *(C.all_of(["test", "-f", j.rolled_back], r) for r in restore),
                  C.redirect_out(["echo", "done"], j.done)]
        # markers of an earlier run go first, so "no log" later means "the job never started"
        return [C.seq(["rm", "-rf", j.log, j.decided, j.rolled_back, j.done], C.detached(script, log=j.log))]

    def confirm_command(self) -> str:
        """Run by labctl once it read the new MAC back: wins the decision; on ESXi also persists the change."""
        cmd = C.sh(["mkdir", self.job.decided])
        if not self.platform.classic:
            cmd = C.all_of(cmd, ["/sbin/auto-backup.sh"])
        return cmd

    def _apply_and_restore(self) -> tuple[list[str], list[str]]:
        j = self.job
        if self.method == "ifcfg":
            path = f"/etc/sysconfig/network-scripts/ifcfg-{self.interface}"
            apply_ = [C.sh(["cp", path, j.backup("ifcfg")]), C.sh(["cp", ESX_CONF, j.backup("esxconf")]),
                      C.sh(C.sed_replace_line("MACADDR=", f"MACADDR={self.new_mac}", path))]
            restore = [C.sh(["cp", j.backup("ifcfg"), path]), C.sh(["cp", j.backup("esxconf"), ESX_CONF])]
            if self.esx_conf_key:
                apply_.append(C.sh(C.sed_replace_line(self.esx_conf_key, f'{self.esx_conf_key} = "{self.new_mac}"',
                                                      ESX_CONF)))
            bounce = [C.sh(["ifdown", self.interface]), C.sh(["ifup", self.interface])]
            return apply_ + bounce, restore + bounce
        if self.method == "recreate":
            return self._recreate(self.new_mac), self._recreate(self.old_mac)
        raise ValueError(self.method)

    def _recreate(self, mac: str) -> list[str]:
        base = ["esxcli", "network", "ip", "interface"]
        cmds = [C.sh([*base, "remove", "-i", self.interface]),
                C.sh([*base, "add", "-i", self.interface, "-p", self.portgroup or "Management Network", "-M", mac])]
        if self.dhcp:
            cmds.append(C.sh([*base, "ipv4", "set", "-i", self.interface, "-t", "dhcp"]))
        elif self.ip:
            cmds.append(C.sh([*base, "ipv4", "set", "-i", self.interface, "-t", "static", "-I", self.ip,
                              "-N", self.netmask or "255.255.255.0"]))
        return cmds


@dataclass(frozen=True)
class ConfMac:
    """A vmk MAC changed in esx.conf (`/net/vmkernelnic/child[N]/mac`), effective at the next boot."""

    interface: str
    key: str
    old_mac: str
    new_mac: str


@dataclass(frozen=True)
class RebootChange:
    """Changes that take effect at boot, applied together with one reboot.

    - `follow_hardware`: ESXi vmk0 — /Net/FollowHardwareMac=1, so vmk0 takes vmnic0's MAC (`new_mac`) at boot.
    - `conf_macs`: vmk MACs edited in esx.conf (ESX classic and ESXi 4.x, whose esxcfg-vmknic has no -M).
    - `clear_uuid`: /system/uuid removed from esx.conf; the host generates a new one at boot. On ESXi 7.0 U2 and later
      esx.conf is written from the ConfigStore, /system/uuid included, by every configuration change: the removal
      must be the last esx.conf write before the reboot (VMware KB 84349; docs/uuid.md), which `commands` keeps.
    ESXi: auto-backup.sh saves /etc first (otherwise the edits are lost at boot). The host's network identity
    (addresses, port groups) is untouched, so it comes back where it was; labctl verifies by reading back.
    """

    host: str
    platform: Platform
    follow_hardware: tuple[str, str, str] | None = None  # (interface, old MAC, new MAC = vmnic0's)
    conf_macs: tuple[ConfMac, ...] = ()
    clear_uuid: bool = False
    old_uuid: str | None = None

    kind = "reboot"
    reboots = True

    def describe(self) -> str:
        parts = []
        if self.follow_hardware:
            i, old, new = self.follow_hardware
            parts.append(f"{i} {old} -> {new} (FollowHardwareMac)")
        parts += [f"{m.interface} {m.old_mac} -> {m.new_mac} (esx.conf)" for m in self.conf_macs]
        if self.clear_uuid:
            parts.append(f"/system/uuid {self.old_uuid} -> a new one")
            if uuid_in_configstore(self.platform):
                parts.append("nothing else may change the host's configuration before the reboot (KB 84349)")
        return f"{self.host}: " + ", ".join(parts) + " (reboot)"

    def commands(self) -> list[str]:
        cmds = []
        if self.follow_hardware:
            if self.platform.version[0] >= 5:
                cmds.append(C.sh(["esxcli", "system", "settings", "advanced", "set", "-o", FOLLOW_HW_MAC, "-i", "1"]))
            else:
                cmds.append(C.sh(["esxcfg-advcfg", "-s", "1", FOLLOW_HW_MAC]))
        # esx.conf edits after any esxcli call (hostd rewrites its keys on every configuration change)
        for m in self.conf_macs:
            cmds.append(C.sh(C.sed_replace_line(m.key, f'{m.key} = "{m.new_mac}"', ESX_CONF)))
        if self.clear_uuid:  # the last esx.conf write before auto-backup.sh and the reboot (7.0 U2+: KB 84349)
            cmds.append(C.sh(C.sed_delete_lines("/system/uuid", ESX_CONF)))
        if not self.platform.classic:
            cmds.append(C.sh(["/sbin/auto-backup.sh"]))
        cmds.append(_reboot_command())
        return cmds

    def verify(self, scan: HostScan) -> list[str]:
        """What the read-back after the reboot disagrees with (empty: applied)."""
        problems = []
        expected = [(m.interface, m.new_mac) for m in self.conf_macs]
        if self.follow_hardware:
            expected.append((self.follow_hardware[0], self.follow_hardware[2]))
        for name, mac in expected:
            iface = scan.iface(name)
            if iface is None or iface.mac != mac:
                problems.append(f"{name} is {iface.mac if iface else 'missing'}, not {mac}")
        if self.clear_uuid and (not scan.uuid or scan.uuid == self.old_uuid):
            problems.append(f"/system/uuid is still {scan.uuid}" + (
                " (ESXi 7.0 U2+ keeps it in the ConfigStore when esx.conf was rewritten after the removal, KB 84349;"
                " if it persists, install this host instead of cloning it: docs/uuid.md)"
                if uuid_in_configstore(self.platform) else ""))
        return problems


Change = MacChange | RebootChange


def uuid_in_configstore(platform: Platform) -> bool:
    """ESXi 7.0 U2 and later keep /system/uuid in the ConfigStore and write it back into esx.conf with every
    configuration change; before that (ESX classic, ESXi 4.0 – 7.0 U1) esx.conf is where it lives."""
    return tuple(platform.version) >= (7, 0, 2)  # (ESX classic ended at 4.1)


def _reboot_command() -> str:
    # detached, so the command returns before the session drops
    return C.detached([C.sh(["sleep", "1"]), C.sh(["reboot"])], log="/tmp/labctl-reboot.log")


def prep_template_commands(platform: Platform) -> list[str]:
    """Run on a golden ESXi host before cloning so clones come up unique (no reboot: it is about to be cloned)."""
    if platform.classic:
        raise ValueError("prep-template is for ESXi; ESX classic clones are repaired with `labctl macs fix`")
    change = RebootChange("golden", platform, follow_hardware=("vmk0", "", ""), clear_uuid=True)
    return change.commands()[:-1]


def allocate_mac(lab: str, host: str, interface: str, used: set[str]) -> str:
    """A deterministic MAC in VMware's static range, unique against `used` (which it then joins)."""
    n = int(hashlib.sha256(f"{lab}/{host}/{interface}".encode()).hexdigest(), 16) % STATIC_SPAN
    for _ in range(STATIC_SPAN):
        value = STATIC_PREFIX + n
        mac = ":".join(f"{(value >> s) & 0xFF:02x}" for s in range(40, -8, -8))
        if mac not in used:
            used.add(mac)
            return mac
        n = (n + 1) % STATIC_SPAN
    raise ValueError("the static MAC range is exhausted")


def plan_fix(lab: str, scans: Sequence[HostScan], duplicates: Sequence[Duplicate], *, strategy: str = "follow-hardware",
             vnic_macs: Mapping[str, str] | None = None, confirm_within: float = 60.0) -> tuple[list[Change], list[str]]:
    """The changes that make every MAC and UUID lab-unique (topology order; per host: the interface changes, the
    management interface's last, then at most one reboot), and the problems it cannot fix over SSH."""
    if strategy not in ("follow-hardware", "recreate-vmk"):
        raise ValueError(strategy)
    used: set[str] = {m.lower() for m in (vnic_macs or {})}
    for s in scans:
        used |= set(s.nics.values())
        for i in s.interfaces:
            used |= {m for m in (i.mac, i.configured_mac) if m}
    to_change: dict[str, list[str]] = {}
    uuid_dup: set[str] = set()
    problems: list[str] = []
    for d in duplicates:
        if d.kind == "uuid":
            uuid_dup |= {h.owner for h in d.change}
            continue
        if len({h.owner for h in d.holders if h.hardware}) > 1:
            vnics = ", ".join(str(h) for h in d.holders if h.hardware)
            problems.append(f"MAC {d.value} is on the vNICs {vnics}: vNIC MACs come from the topology/.vmx and "
                            "cannot be changed over SSH; give one VM another MAC")
        for h in d.change:
            if h.interface not in to_change.setdefault(h.owner, []):
                to_change[h.owner].append(h.interface)
    changes: list[Change] = []
    for s in scans:
        now: list[MacChange] = []
        follow = None
        conf_macs: list[ConfMac] = []
        for name in to_change.get(s.name, []):
            iface = s.iface(name)
            if iface is None or iface.mac is None:
                continue
            if iface.source == "vswif":
                key = s.esx_conf.key_for("/net/vswif", name, "mac") if s.esx_conf else None
                now.append(MacChange(s.name, name, iface.mac, allocate_mac(lab, s.name, name, used), "ifcfg",
                                     s.platform, iface.portgroup, iface.ip, iface.netmask, bool(iface.dhcp), key,
                                     confirm_within))
            elif (not s.platform.classic and name == s.management and strategy == "follow-hardware"
                  and s.nics.get("vmnic0")):
                hw = s.nics["vmnic0"]
                if any(d.kind == "mac" and d.value == hw and any(h.owner != s.name for h in d.holders)
                       for d in duplicates):
                    problems.append(f"{s.name}: vmnic0's MAC {hw} is not unique in the lab, so FollowHardwareMac "
                                    "cannot help; use --strategy recreate-vmk")
                    continue
                follow = (name, iface.mac, hw)
            elif not s.platform.classic and s.platform.version[0] >= 5:
                now.append(MacChange(s.name, name, iface.mac, allocate_mac(lab, s.name, name, used), "recreate",
                                     s.platform, iface.portgroup, iface.ip, iface.netmask, bool(iface.dhcp), None,
                                     confirm_within))
            else:
                key = s.esx_conf.key_for("/net/vmkernelnic", name, "mac") if s.esx_conf else None
                if key is None:
                    problems.append(f"{s.name}: {name}'s MAC is not in esx.conf; cannot change it on "
                                    f"{s.platform.flavor} {'.'.join(map(str, s.platform.version[:2]))}")
                    continue
                conf_macs.append(ConfMac(name, key, iface.mac, allocate_mac(lab, s.name, name, used)))
        now.sort(key=lambda c: c.interface == s.management)  # the one that drops the session last
        changes += now
        clear_uuid = s.name in uuid_dup and bool(s.uuid)
        if follow or conf_macs or clear_uuid:
            changes.append(RebootChange(s.name, s.platform, follow, tuple(conf_macs), clear_uuid, s.uuid))
    return changes, problems


# ---------------------------------------------------------------------------------------------------------------
# applying, commit confirmed


@dataclass(frozen=True)
class ChangeOutcome:
    change: Change
    status: str  # "applied" | "rolled-back" | "failed" | "unreachable"
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.status == "applied"


def apply_change(conn: Connection, change: Change, *, back_within: float = 300.0, poll: float = 0.2) -> ChangeOutcome:
    """Apply one change and verify it by reading back; never leaves the host without its rollback job in charge."""
    if isinstance(change, RebootChange):
        return _apply_with_reboot(conn, change, back_within=back_within, poll=poll)
    return _apply_confirmed(conn, change, back_within=back_within, poll=poll)


def _mac_of(conn: Connection, interface: str) -> str | None:
    iface = gather(conn).iface(interface)
    return iface.mac if iface else None


def _apply_confirmed(conn: Connection, change: MacChange, *, back_within: float, poll: float) -> ChangeOutcome:
    """Start the detached job, read the new MAC back, then win the decision (`mkdir <job>.decided`) before the
    job does; if labctl cannot, the job restores the previous configuration at its deadline."""
    job = change.job
    start = time.monotonic()
    try:
        r = conn.run(change.commands()[0])
        if not r.ok:
            return ChangeOutcome(change, "failed", f"the job did not start: {r.tail() or r.exit_status}")
    except ConnectionDropped:
        pass  # the bounce may beat the reply; the job runs on (nohup) and the read-back decides
    except HOST_PROBLEMS as e:
        return ChangeOutcome(change, "failed", f"the job did not start: {e.reason}")
    deadline = start + change.confirm_within
    seen: str | None = None
    while time.monotonic() < deadline:
        try:
            conn.wait_until_back(deadline, interval=poll)
            seen = _mac_of(conn, change.interface)
            if seen == change.new_mac:
                if conn.run(change.confirm_command()).ok:
                    _remove_job_files(conn, job, poll)
                    return ChangeOutcome(change, "applied", f"{change.interface} now {change.new_mac}")
                break  # the decision was already made: find out which below
        except HOST_PROBLEMS:
            pass
        time.sleep(poll)
    # No confirmation (or the confirm's reply was lost): the markers say who decided; wait for the verdict.
    limit = time.monotonic() + change.confirm_within + back_within

    def exists(flag: str, path: str) -> bool:
        return conn.run(C.sh(["test", flag, path])).ok

    while time.monotonic() < limit:
        try:
            conn.wait_until_back(limit, interval=poll)
            if exists("-f", job.rolled_back):
                if exists("-f", job.done):
                    now = _mac_of(conn, change.interface)
                    _remove_job_files(conn, job, poll)
                    restored = "restored" if now == change.old_mac else f"tried to restore (now {now})"
                    return ChangeOutcome(change, "rolled-back", f"could not confirm {change.new_mac} in time (saw "
                                         f"{seen}); the job {restored} {change.interface}")
            elif time.monotonic() > deadline + 2 * max(poll, 1.0) and not exists("-f", job.log):
                now = _mac_of(conn, change.interface)
                return ChangeOutcome(change, "failed", f"the job never started (the connection was lost first); "
                                     f"nothing changed, {change.interface} is {now}")
            elif exists("-d", job.decided):
                time.sleep(1.0)  # the job writes its rollback marker right after its mkdir
                if not exists("-f", job.rolled_back):  # labctl's confirm won; only its reply was lost
                    if not change.platform.classic:
                        conn.run(C.sh(["/sbin/auto-backup.sh"])).check()
                    _remove_job_files(conn, job, poll)
                    return ChangeOutcome(change, "applied", f"{change.interface} now {change.new_mac}")
        except HOST_PROBLEMS:
            pass
        time.sleep(poll)
    return ChangeOutcome(change, "unreachable", "no verdict from the host's rollback job in time; check it and "
                         "re-run `labctl macs fix`")


def _read_back_after_lost_reply(conn: Connection, change: RebootChange, reason: str, *, back_within: float,
                                poll: float) -> ChangeOutcome:
    """The reply to the reboot command was lost: the host may be rebooting or may never have got the command.
    Every change here takes effect only at boot, so the read-back tells: poll until it shows them (applied) or
    until `back_within` has passed (report what it shows)."""
    end = time.monotonic() + back_within
    problems = ["the host did not answer"]
    while time.monotonic() < end:
        try:
            conn.wait_until_back(end, interval=poll)
            problems = change.verify(gather(conn))
            if not problems:
                return ChangeOutcome(change, "applied", f"the reply to the reboot command was lost ({reason}); "
                                     "verified after the reboot")
        except HOST_PROBLEMS:
            pass
        time.sleep(max(poll, 0.5))
    return ChangeOutcome(change, "failed", f"the reply to the reboot command was lost ({reason}) and after "
                         f"{back_within:g} s the host still shows: {'; '.join(problems)}; it may not have rebooted "
                         "— re-run `labctl macs fix`")


def _remove_job_files(conn: Connection, job: JobFiles, poll: float, *, within: float = 5.0) -> None:
    """Once the decision is made, remove the job's log, markers and backups from /tmp (ESX classic keeps /tmp
    across the reboot that often follows). The markers go only when the job has finished (`.done`): until it has
    passed its own mkdir, `.decided` is what keeps it from rolling back. Best effort: a host that drops now keeps
    them, and the next run of the same change starts by removing them."""
    end = time.monotonic() + within
    try:
        while not conn.run(C.sh(["test", "-f", job.done])).ok:
            if time.monotonic() > end:  # still running: the backups and log are no longer needed, the marker is
                conn.run(C.sh(["rm", "-f", job.log, job.backup("ifcfg"), job.backup("esxconf")]))
                return
            time.sleep(poll)
        conn.run(C.sh(["rm", "-rf", *job.all()]))
    except HOST_PROBLEMS:
        pass


def _apply_with_reboot(conn: Connection, change: RebootChange, *, back_within: float, poll: float) -> ChangeOutcome:
    """Reboot-based changes keep the host's network identity (IP, port group), so it comes back where it was."""
    cmds = change.commands()
    for i, cmd in enumerate(cmds):
        try:
            conn.run(cmd).check()
        except ConnectionDropped as e:
            if i == len(cmds) - 1:  # the reboot itself: scheduled or not, only the read-back can tell
                return _read_back_after_lost_reply(conn, change, e.reason, back_within=back_within, poll=poll)
            return ChangeOutcome(change, "failed", f"the connection dropped before the reboot was scheduled "
                                 f"({e.reason}); nothing takes effect until the host reboots — re-run `labctl macs fix`")
        except HOST_PROBLEMS as e:
            return ChangeOutcome(change, "failed", e.reason)
    conn.wait_for_drop(timeout=min(back_within, 60.0))
    try:
        conn.wait_until_back(time.monotonic() + back_within, interval=poll)
        scan = gather(conn)
    except HOST_PROBLEMS as e:
        return ChangeOutcome(change, "unreachable", e.reason)
    problems = change.verify(scan)
    if problems:
        hint = " (try --strategy recreate-vmk)" if change.follow_hardware else ""
        return ChangeOutcome(change, "failed", "; ".join(problems) + hint)
    return ChangeOutcome(change, "applied", "verified after the reboot" + (f", uuid {scan.uuid}" if change.clear_uuid
                                                                            else ""))


# ---------------------------------------------------------------------------------------------------------------
# the lab: what `labctl macs scan|fix` and the pipeline call


@dataclass(frozen=True)
class ScanReport:
    hosts: tuple[HostScan, ...]
    duplicates: tuple[Duplicate, ...]
    unreachable: Mapping[str, LabctlError]  # host -> why (connect, auth, host key, or a failed fact command)

    def status_of(self, host: str, interface: str) -> str:
        for d in self.duplicates:
            if d.kind != "mac":
                continue
            for h in d.holders:
                if h.owner == host and h.interface == interface:
                    if h in d.change:
                        return f"duplicate of {d.keep} (will change)"
                    return "duplicate (keeps its MAC)" if h == d.keep or h.owner == d.keep.owner else "duplicate"
        return "ok"

    def to_json(self) -> dict:
        hosts = []
        for s in self.hosts:
            hosts.append({
                "name": s.name, "flavor": s.platform.flavor, "version": _version_text(s.platform),
                "uuid": s.uuid, "follow_hardware_mac": s.follow_hardware_mac,
                "interfaces": [{"name": i.name, "mac": i.mac, "ip": i.ip, "source": i.source,
                                "portgroup": i.portgroup, "enabled": i.enabled,
                                "configured_mac": i.configured_mac, "status": self.status_of(s.name, i.name)}
                               for i in s.interfaces],
                "nics": [{"name": n, "mac": m} for n, m in s.nics.items()],
            })
        return {"hosts": hosts, "duplicates": [d.to_json() for d in self.duplicates],
                "unreachable": [{"name": n, "error": str(e), "hint": e.hint} for n, e in self.unreachable.items()]}


def _version_text(p: Platform) -> str:
    major, minor, update = p.version
    return f"{major}.{minor}" + (f"u{update}" if update else "")


def scan_lab(lab, hosts: Sequence[str], *, vnic_macs: Mapping[str, str] | None = None,
             max_workers: int = 64) -> ScanReport:
    """Gather every host in parallel (one connection each) and find the duplicates among those that answered."""
    outcomes = lab.run_all(hosts, gather, max_workers=max_workers)
    scans = tuple(o.value for o in outcomes if o.ok)
    unreachable = {o.host: o.error for o in outcomes if o.error is not None}
    return ScanReport(scans, tuple(find_duplicates(scans, vnic_macs)), unreachable)


@dataclass(frozen=True)
class FixReport:
    before: ScanReport
    changes: tuple[Change, ...]
    problems: tuple[str, ...]
    outcomes: tuple[ChangeOutcome, ...] = ()
    after: ScanReport | None = None


def fix_lab(lab, report: ScanReport, *, lab_name: str, strategy: str = "follow-hardware",
            vnic_macs: Mapping[str, str] | None = None, dry_run: bool = False, confirm_within: float = 60.0,
            back_within: float = 300.0, poll: float = 0.2, max_workers: int = 64) -> FixReport:
    """Plan (and unless dry_run apply) the repair; hosts in parallel, one host's changes in order; re-scan after."""
    changes, problems = plan_fix(lab_name, report.hosts, report.duplicates, strategy=strategy, vnic_macs=vnic_macs,
                                 confirm_within=confirm_within)
    if dry_run or not changes:
        return FixReport(report, tuple(changes), tuple(problems))
    per_host: dict[str, list[Change]] = {}
    for c in changes:
        per_host.setdefault(c.host, []).append(c)

    def run_host(conn) -> list[ChangeOutcome]:
        done: list[ChangeOutcome] = []
        for c in per_host[conn.target.name]:
            outcome = apply_change(conn, c, back_within=back_within, poll=poll)
            done.append(outcome)
            if not outcome.ok:
                break  # leave the rest of this host alone; a re-run starts from what is there
        return done

    results = lab.run_all(list(per_host), run_host, max_workers=max_workers)
    outcomes: list[ChangeOutcome] = []
    for r in results:
        if r.ok:
            outcomes.extend(r.value)
        else:
            outcomes.extend(ChangeOutcome(c, "unreachable", str(r.error)) for c in per_host[r.host][:1])
    after = scan_lab(lab, [s.name for s in report.hosts], vnic_macs=vnic_macs, max_workers=max_workers)
    return FixReport(report, tuple(changes), tuple(problems), tuple(outcomes), after)
