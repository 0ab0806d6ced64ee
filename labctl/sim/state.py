"""The persistent state of one simulated ESX/ESXi host: plain dataclasses, JSON on disk, atomic writes.

Two layers, like a real host:
- the *disk*: the small filesystem `files` (path -> text), with `/etc/vmware/esx.conf`, ifcfg-vswif0, ... On ESXi
  only what `/sbin/auto-backup.sh` copied into `persisted_etc` survives a reboot.
- the *running configuration*: nics, vswitches, vmknics/vswifs, advanced options, uuid. Commands that change it
  also write esx.conf (as hostd does); editing esx.conf by hand changes nothing until the next boot
  (`labctl.sim.boot.boot`).

`fresh_install(...)` builds a host exactly as an installer leaves it; `labctl.sim.boot.clone(...)` copies a host's
disk the way a Workstation linked clone does (same esx.conf/ifcfg/uuid, new vNIC MACs) and boots it. This module
imports no other part of the simulator.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import secrets
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

STATE_FILE = "state.json"
ESX_CONF = "/etc/vmware/esx.conf"
IFCFG_VSWIF0 = "/etc/sysconfig/network-scripts/ifcfg-vswif0"
SYSCONFIG_NETWORK = "/etc/sysconfig/network"
SSHD_CONFIG = "/etc/ssh/sshd_config"
LOCAL_SH = "/etc/rc.local.d/local.sh"  # ESXi 5.1+: run at the end of every boot
RC_LOCAL = "/etc/rc.d/rc.local"  # ESX classic (Red Hat service console): run at the end of every boot
LOCAL_SH_STOCK = """#!/bin/sh

# local configuration options

# Note: modify at your own risk!  If you do/use anything in this
# script that is not part of a stable API (relying on files to be in
# specific places, specific tools, specific output, etc) there is a
# possibility you will end up with a broken system after patching or
# upgrading.  Changes are not supported unless under direction of
# VMware support.

exit 0
"""

_VERSION_RE = re.compile(r"^(\d+)\.(\d+)(?:\.(\d+))?(?:\s*u(\d+))?$", re.IGNORECASE)


def parse_version(text: str) -> tuple[int, int, int]:
    """'3.5u5' -> (3, 5, 5); '7.0U2' -> (7, 0, 2); '6.7' -> (6, 7, 0)."""
    m = _VERSION_RE.match(str(text).strip())
    if not m:
        raise ValueError(f"not an ESX version: {text!r} (expected e.g. 3.5u5, 5.5, 7.0u2)")
    return int(m.group(1)), int(m.group(2)), int(m.group(4) or m.group(3) or 0)


# ---------------------------------------------------------------- MACs and UUIDs


def random_mac(prefix: str) -> str:
    """A random MAC under `prefix` ('00:0c:29', '00:50:56:4' — a trailing half byte is allowed)."""
    hexdigits = prefix.replace(":", "")
    rest = 12 - len(hexdigits)
    digits = hexdigits + secrets.token_hex(6)[:rest]
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2)).lower()


def new_system_uuid(mac: str) -> str:
    """ESX style: first group a hex timestamp, last 12 digits the management MAC ([M] esx-hosts.md)."""
    tail = mac.replace(":", "").lower()[-12:].rjust(12, "0")
    return f"{int(time.time()) & 0xFFFFFFFF:08x}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{secrets.token_hex(2)}-{tail}"


# ---------------------------------------------------------------- the model


@dataclass
class Nic:
    """A physical NIC as ESX sees it: a Workstation vNIC."""

    name: str  # vmnic0
    mac: str
    driver: str = "e1000"
    pci: str = "0000:02:01.0"
    link_up: bool = True
    speed: int = 1000
    mtu: int = 1500
    description: str = "Intel Corporation 82545EM Gigabit Ethernet Controller (Copper)"


@dataclass
class PortGroup:
    name: str
    vlan: int = 0
    vms: int = 0  # VM ports in use (for "Used Ports")


@dataclass
class VSwitch:
    name: str
    uplinks: list[str] = field(default_factory=list)
    portgroups: list[PortGroup] = field(default_factory=list)
    mtu: int = 1500
    configured_ports: int = 128


@dataclass
class NetIf:
    """A vmknic (vmkN) or an ESX classic service console interface (vswifN)."""

    name: str
    portgroup: str
    mac: str
    ip: str = ""
    netmask: str = ""
    dhcp: bool = False
    enabled: bool = True
    mtu: int = 1500
    netstack: str = "defaultTcpipStack"
    port_id: int = 33554436

    @property
    def broadcast(self) -> str:
        if not self.ip or not self.netmask:
            return ""
        import ipaddress

        try:
            return str(ipaddress.ip_network(f"{self.ip}/{self.netmask}", strict=False).broadcast_address)
        except ValueError:
            return ""


@dataclass
class AdvOption:
    path: str
    type: str  # integer | string
    int_value: int = 0
    default_int: int = 0
    min_value: int = 0
    max_value: int = 0
    string_value: str = ""
    default_string: str = ""
    description: str = ""


@dataclass
class NfsMount:
    volume_name: str
    host: str
    share: str
    readonly: bool = False
    accessible: bool = True
    mounted: bool = True


@dataclass
class Vib:
    name: str
    version: str
    vendor: str = "VMware"
    acceptance_level: str = "VMwareCertified"
    summary: str = ""
    install_date: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class HostState:
    name: str  # the topology name (esx1)
    flavor: str  # esx | esxi | linux (a jump host)
    version: str
    hostname: str
    domain: str = "localdomain"
    ssh_address: str = ""  # the lab address clients dial; sessions use the interface holding it
    nics: list[Nic] = field(default_factory=list)
    vswitches: list[VSwitch] = field(default_factory=list)
    vmknics: list[NetIf] = field(default_factory=list)
    vswifs: list[NetIf] = field(default_factory=list)
    gateway: str = ""
    system_uuid: str = ""
    advanced: dict[str, AdvOption] = field(default_factory=dict)
    nfs: list[NfsMount] = field(default_factory=list)
    vibs: list[Vib] = field(default_factory=list)
    acceptance_level: str = "PartnerSupported"
    files: dict[str, str] = field(default_factory=dict)
    blobs: dict[str, str] = field(default_factory=dict)  # path -> file name under <host dir>/blobs
    dirs: list[str] = field(default_factory=list)
    persisted_etc: dict[str, str] | None = None  # ESXi: /etc as saved by the last auto-backup.sh
    sftp: bool = True
    ipv6: bool = False  # IPv6 link-local rows in `esxcfg-vmknic -l` (on by default on ESXi 5+)
    root_password_hash: str = ""  # "scrypt$salt$hash" or empty (no password login)
    boot_count: int = 1
    extra: dict[str, Any] = field(default_factory=dict)  # room for other engineers' handlers

    # ---- version facts
    @property
    def version_info(self) -> tuple[int, int, int]:
        return parse_version(self.version)

    @property
    def release(self) -> tuple[int, int]:
        v = self.version_info
        return v[0], v[1]

    @property
    def is_esxi(self) -> bool:
        return self.flavor == "esxi"

    @property
    def is_classic(self) -> bool:
        return self.flavor == "esx"

    @property
    def management_name(self) -> str:
        return "vswif0" if self.is_classic else "vmk0"

    @property
    def authorized_keys_path(self) -> str:
        """Where root's keys live: RHEL service console, dropbear-era ESXi 4.x, OpenSSH ESXi 5+."""
        if self.flavor in ("esx", "linux"):
            return "/root/.ssh/authorized_keys"
        if self.release < (5, 0):
            return "/.ssh/authorized_keys"
        return "/etc/ssh/keys-root/authorized_keys"

    @property
    def root_login_allowed(self) -> bool:
        """ESX classic honours `PermitRootLogin` in /etc/ssh/sshd_config (default no, KB 1002866)."""
        if not self.is_classic or SSHD_CONFIG not in self.files:  # (states from before sshd_config was modelled)
            return True
        for line in self.files.get(SSHD_CONFIG, "").splitlines():
            parts = line.split()
            if len(parts) >= 2 and parts[0].lower() == "permitrootlogin":
                return parts[1].lower() in ("yes", "without-password", "prohibit-password")
        return False

    @property
    def auth_methods(self) -> tuple[str, ...]:
        """ESXi 5+ has `PasswordAuthentication no` + keyboard-interactive (esx-hosts.md section 6)."""
        if self.is_esxi and self.release >= (5, 0):
            return ("publickey", "keyboard-interactive")
        return ("publickey", "password")

    # ---- lookups
    def interface(self, name: str) -> NetIf | None:
        for i in (*self.vmknics, *self.vswifs):
            if i.name == name:
                return i
        return None

    def nic(self, name: str) -> Nic | None:
        return next((n for n in self.nics if n.name == name), None)

    def portgroup(self, name: str) -> tuple[VSwitch, PortGroup] | None:
        for vs in self.vswitches:
            for pg in vs.portgroups:
                if pg.name == name:
                    return vs, pg
        return None

    def vswitch(self, name: str) -> VSwitch | None:
        return next((v for v in self.vswitches if v.name == name), None)


# ---------------------------------------------------------------- esx.conf text helpers

_CONF_LINE = re.compile(r'^\s*(/[^=]*?)\s*=\s*"(.*)"\s*$')


def conf_get(text: str, key: str) -> str | None:
    for line in text.splitlines():
        m = _CONF_LINE.match(line)
        if m and m.group(1) == key:
            return m.group(2)
    return None


def conf_items(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        m = _CONF_LINE.match(line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def conf_set(text: str, key: str, value: str) -> str:
    lines = text.splitlines()
    new = f'{key} = "{value}"'
    for i, line in enumerate(lines):
        m = _CONF_LINE.match(line)
        if m and m.group(1) == key:
            lines[i] = new
            break
    else:
        lines.append(new)
    return "\n".join(lines) + "\n"


def conf_delete_prefix(text: str, prefix: str) -> str:
    keep = [ln for ln in text.splitlines() if not ((m := _CONF_LINE.match(ln)) and m.group(1).startswith(prefix))]
    return "\n".join(keep) + ("\n" if keep else "")


def ifcfg_get(text: str, key: str) -> str | None:
    for line in text.splitlines():
        k, sep, v = line.partition("=")
        if sep and k.strip() == key:
            return v.strip().strip('"')
    return None


def ifcfg_set(text: str, key: str, value: str) -> str:
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.partition("=")[0].strip() == key:
            lines[i] = f"{key}={value}"
            break
    else:
        lines.append(f"{key}={value}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- hostd's view: running config -> esx.conf


def vmknic_conf_prefix(index: int) -> str:
    return f"/net/vmkernelnic/child[{index:04d}]"


def sync_esx_conf(state: HostState) -> None:
    """Write the running network config into esx.conf, as hostd does after every change."""
    text = state.files.get(ESX_CONF, "")
    text = conf_delete_prefix(text, "/net/vmkernelnic/")
    for i, vmk in enumerate(state.vmknics):
        p = vmknic_conf_prefix(i)
        text = conf_set(text, f"{p}/name", vmk.name)
        text = conf_set(text, f"{p}/mac", vmk.mac)
        text = conf_set(text, f"{p}/portgroup", vmk.portgroup)
        text = conf_set(text, f"{p}/ipv4address", vmk.ip)
        text = conf_set(text, f"{p}/ipv4netmask", vmk.netmask)
        text = conf_set(text, f"{p}/dhcp", "true" if vmk.dhcp else "false")
        text = conf_set(text, f"{p}/enable", "true" if vmk.enabled else "false")
    if state.is_classic:
        text = conf_delete_prefix(text, "/net/vswif/")
        for i, vsw in enumerate(state.vswifs):
            p = f"/net/vswif/child[{i:04d}]"  # key names unverified [L] (esx-hosts.md section 1)
            text = conf_set(text, f"{p}/name", vsw.name)
            text = conf_set(text, f"{p}/mac", vsw.mac)
            text = conf_set(text, f"{p}/portgroup", vsw.portgroup)
            text = conf_set(text, f"{p}/ipv4address", vsw.ip)
            text = conf_set(text, f"{p}/ipv4netmask", vsw.netmask)
            text = conf_set(text, f"{p}/enable", "true" if vsw.enabled else "false")
    for path, opt in state.advanced.items():
        value = str(opt.int_value) if opt.type == "integer" else opt.string_value
        text = conf_set(text, f"/adv{path}", value)
    if uuid_in_configstore(state) and state.system_uuid:
        # ESXi 7.0 U2+: esx.conf is written from the ConfigStore, /system/uuid included, so a /system/uuid line
        # removed by hand comes back with the next configuration change (VMware KB 84349; docs/uuid.md)
        text = conf_set(text, "/system/uuid", state.system_uuid)
    state.files[ESX_CONF] = text


def uuid_in_configstore(state: HostState) -> bool:
    """ESXi 7.0 U2 moved host configuration into the ConfigStore; esx.conf became a view written from it."""
    return state.flavor != "linux" and tuple(state.version_info) >= (7, 0, 2)  # (ESX classic ended at 4.1)


def write_pnic_conf(state: HostState) -> None:
    """At boot the vmkernel records the NICs it found (their current hardware MACs)."""
    text = state.files.get(ESX_CONF, "")
    for i, nic in enumerate(state.nics):
        p = f"/net/pnic/child[{i:04d}]"
        text = conf_set(text, f"{p}/name", nic.name)
        text = conf_set(text, f"{p}/mac", nic.mac)
        if conf_get(text, f"{p}/virtualMac") is None:
            text = conf_set(text, f"{p}/virtualMac", random_mac("00:50:56:5"))
    state.files[ESX_CONF] = text


# ---------------------------------------------------------------- fresh install and clone

FOLLOW_HW_MAC = "/Net/FollowHardwareMac"


def _default_advanced(flavor: str, release: tuple[int, int]) -> dict[str, AdvOption]:
    opts: dict[str, AdvOption] = {}
    if flavor == "esxi":
        # FollowHardwareMac dates from the 4.x/5.0 era; first version unverified [L] — modelled on ESXi >= 4.0.
        opts[FOLLOW_HW_MAC] = AdvOption(
            FOLLOW_HW_MAC, "integer", 0, 0, 0, 1,
            description="If set to 1, the management interface MAC address will update whenever the hardware MAC "
            "address changes.",
        )
        if release >= (5, 0):
            opts["/UserVars/SuppressShellWarning"] = AdvOption(
                "/UserVars/SuppressShellWarning", "integer", 0, 0, 0, 1,
                description="Don't show warning for enabled local and remote shell access",
            )
    opts["/Misc/HostName"] = AdvOption("/Misc/HostName", "string", description="Host name")
    return opts


def nic_model(flavor: str, release: tuple[int, int]) -> dict:
    """What ESX(i) sees of the Workstation vNIC labctl renders (topology.versions.nic_device): vmxnet3 for ESXi 7+
    (which has no e1000 driver), claimed by the native nvmxnet3 driver, as a real nested 7.x/8.x/9.x host shows
    (`esxcli network nic list`: "nvmxnet3 ... 10000 ... VMware Inc. vmxnet3 Virtual Ethernet Controller"); an
    e1000 (82545EM) before that."""
    if flavor == "esxi" and release >= (7, 0):
        return {"driver": "nvmxnet3", "speed": 10000, "description": "VMware Inc. vmxnet3 Virtual Ethernet Controller"}
    return {}


def build_of(st: HostState) -> int:
    """The build this host runs: the one its install media carried (st.extra["build"]), else its update's GA
    build from labctl/releases.py."""
    from labctl import releases

    if st.extra.get("build"):
        return int(st.extra["build"])
    ma, mi, up = st.version_info
    flavor = "esxi" if (ma, mi) >= (9, 0) else st.flavor
    for u in releases.updates(flavor, ma, mi):
        if u.number == up:
            return u.build
    return 100000 + ma * 1000 + mi * 100 + up  # a release labctl has no table for (only reachable in unit tests)


def patch_of(st: HostState) -> tuple[int, str]:
    """(the patch number esxcli prints, the 9.x EEHH field) of the host's build: 0 and "" on an update's GA build."""
    from labctl import releases

    build = build_of(st)
    for p in releases.PATCHES:
        if p.build == build:
            if (p.major, p.minor) >= (9, 0):
                eehh = p.full.split("-", 1)[1].split(".")[0]
                return int(eehh), eehh
            return int(p.full.split("-", 1)[1].split(".")[1]), ""
    return 0, ""


def base_vib_version(st: HostState) -> str:
    """esx-base's version as `esxcli software vib list` shows it: 8.0.2-0.40.23825572 (8.0 U2c), 8.0.0-1.0.20513097
    (8.0 GA), 9.0.1-0.24957456 (9.x keeps a hyphen in VIB versions), 6.7.0-3.0.14320388 (before 7.0: x.y.0-U.P)
    (KB 395110; 9.x: Broadcom ESX 9.0.0.0100 release notes, "VMware_bootbank_esx-base_9.0.0-0100.24813472")."""
    from labctl import releases

    ma, mi, up = st.version_info
    build = build_of(st)
    for p in releases.PATCHES:
        if p.build == build:
            return p.full
    if (ma, mi) >= (9, 0):
        return f"{ma}.{mi}.{up}-0.{build}"
    if ma >= 7:
        return f"{ma}.{mi}.{up}-{1 if (ma, mi, up) == (8, 0, 0) else 0}.0.{build}"
    return f"{ma}.{mi}.0-{up}.0.{build}"  # the patch field of pre-7.0 builds is not modelled [L]


def driver_vib_version(st: HostState, base: str, rev: str) -> str:
    """A VMware driver VIB's version on this host's build: "2.0.0.31-16vmw.900.0.24755229" on ESX 9.0.0 (a real host's
    `vib list`), "1.5.2.0-1vmw.803.0.0.24022510" on 8.0 U3; before 7.0 "x-Nvmw.550.0.0.1331820" (5.5 GA) [M]."""
    ma, mi, up = st.version_info
    build = build_of(st)
    if (ma, mi) >= (9, 0):
        return f"{base}-{rev}vmw.{ma}{mi}{up}.0.{build}"
    return f"{base}-{rev}vmw.{ma}{mi}{up if ma >= 7 else 0}.0.0.{build}"


def _base_vibs(st: HostState, release: tuple[int, int]) -> list[Vib]:
    if release < (5, 0):
        return []
    v = base_vib_version(st)
    day = time.strftime("%Y-%m-%d", time.gmtime())  # installed today: `vib list` shows the install date
    vibs = [Vib("esx-base", v, summary="ESXi base system", install_date=day),
            Vib("esx-tboot", v, summary="ESXi Tboot", install_date=day)]
    if release < (7, 0):  # the e1000 driver VIB went with vmklinux in 7.0; the vNIC there is vmxnet3
        vibs.append(Vib("net-e1000", driver_vib_version(st, "8.0.3.1", "2"), summary="e1000 driver",
                        install_date=day))
    else:
        # a real ESX 9.0 host lists "nvmxnet3  2.0.0.31-16vmw.900.0.24755229  VMW  VMwareCertified" (no net-e1000)
        vibs.append(Vib("nvmxnet3", driver_vib_version(st, "2.0.0.31", "16"), vendor="VMW",
                        summary="VMware vmxnet3 native driver", install_date=day))
    return vibs


def fresh_install(
    name: str,
    flavor: str,
    version: str,
    *,
    nic_macs: list[str],
    ip: str,
    netmask: str,
    gateway: str = "",
    hostname: str | None = None,
    ssh_address: str | None = None,
    vmkernel: list[dict[str, str]] | None = None,
    management_portgroup: str | None = None,
    root_password_hash: str = "",
    build: int | None = None,
) -> HostState:
    """A host exactly as the installer leaves it (`build`: the install media's build when it is not the update's
    GA build, e.g. 23825572 for 8.0 U2c).

    ESXi: vmk0 on "Management Network" takes vmnic0's MAC. ESX classic: vswif0 on "Service Console" with a MAC
    generated in 00:50:56:4x, stored in ifcfg-vswif0 and esx.conf. `vmkernel` adds further vmk ports
    ({"portgroup", "ip", "netmask", "mac"?}) with generated 00:50:56:6x/7x MACs unless given.
    """
    if flavor not in ("esx", "esxi", "linux"):
        raise ValueError(f"unknown flavor {flavor!r}")
    if not nic_macs:
        raise ValueError("a host needs at least one NIC")
    release = parse_version(version)[:2]
    st = HostState(name=name, flavor=flavor, version=version, hostname=hostname or name,
                   ssh_address=ssh_address or ip, gateway=gateway, root_password_hash=root_password_hash)
    if build:
        st.extra["build"] = int(build)
    st.nics = [Nic(f"vmnic{i}" if flavor != "linux" else f"eth{i}", mac.lower(), pci=f"0000:02:{i + 1:02x}.0",
                   **nic_model(flavor, release)) for i, mac in enumerate(nic_macs)]
    st.dirs = ["/", "/etc", "/tmp", "/root", "/var", "/var/log", "/bin", "/sbin"]
    if flavor == "linux":
        st.vswifs = [NetIf("eth0", "", st.nics[0].mac, ip, netmask)]
        st.files["/etc/hostname"] = f"{st.hostname}\n"
        st.files[st.authorized_keys_path] = ""
        return st
    mgmt_pg = management_portgroup or ("Service Console" if flavor == "esx" else "Management Network")
    pgs = [PortGroup("VM Network"), PortGroup(mgmt_pg)]
    st.vswitches = [VSwitch("vSwitch0", ["vmnic0"], pgs, configured_ports=64 if release < (5, 0) else 128)]
    st.advanced = _default_advanced(flavor, release)
    st.advanced["/Misc/HostName"].string_value = st.hostname
    st.dirs += ["/etc/vmware", "/etc/ssh", "/vmfs", "/vmfs/volumes", "/vmfs/volumes/datastore1", "/scratch"]
    port = 33554436
    if flavor == "esx":
        st.sftp = False  # brief/issue: no SFTP before ESXi 5 (dropbear era); uploads go through `cat >`
        mac = random_mac("00:50:56:4")
        st.vswifs = [NetIf("vswif0", mgmt_pg, mac, ip, netmask)]
        st.dirs += ["/etc/sysconfig", "/etc/sysconfig/network-scripts", "/root/.ssh"]
        st.files[IFCFG_VSWIF0] = (
            f"DEVICE=vswif0\nMACADDR={mac}\nPORTGROUP={mgmt_pg}\nBOOTPROTO=static\n"
            f"BROADCAST={st.vswifs[0].broadcast}\nIPADDR={ip}\nNETMASK={netmask}\nONBOOT=yes\n"
        )
        # root login over SSH is off after a stock install (KB 1002866); labctl's kickstart turns it on
        st.files[SSHD_CONFIG] = "Protocol 2\nPermitRootLogin yes\nPasswordAuthentication yes\n"
        st.files[SYSCONFIG_NETWORK] = (
            f"NETWORKING=yes\nHOSTNAME={st.hostname}.{st.domain}\n"
            + (f"GATEWAY={gateway}\nGATEWAYDEV=vswif0\n" if gateway else "")
        )
    else:
        st.sftp = release >= (5, 0)
        st.ipv6 = release >= (5, 0)
        st.vmknics = [NetIf("vmk0", mgmt_pg, st.nics[0].mac, ip, netmask, port_id=port)]
        st.dirs += ["/etc/ssh/keys-root", "/etc/rc.local.d"]
        if release >= (5, 1):
            st.files[LOCAL_SH] = LOCAL_SH_STOCK
    for extra in vmkernel or []:
        pg_name = extra.get("portgroup") or f"VMkernel{len(st.vmknics)}"
        if not st.portgroup(pg_name):
            st.vswitches[0].portgroups.append(PortGroup(pg_name))
        port += 1
        prefix = "00:50:56:7" if release < (6, 0) else "00:50:56:6"
        st.vmknics.append(NetIf(f"vmk{len(st.vmknics)}", pg_name, (extra.get("mac") or random_mac(prefix)).lower(),
                                extra.get("ip", ""), extra.get("netmask", ""), port_id=port))
    st.system_uuid = new_system_uuid(st.vswifs[0].mac if st.vswifs else st.vmknics[0].mac)
    text = f'/system/uuid = "{st.system_uuid}"\n/adv/Net/ManagementIface = "{st.management_name}"\n'
    text += f'/adv/Misc/HostIPAddr = "{ip}"\n'
    if gateway:
        text += f'/net/routes/kernel/gateway = "{gateway}"\n'
    text += '/net/vswitch/child[0000]/name = "vSwitch0"\n/net/vswitch/child[0000]/uplinks/child[0000]/pnic = "vmnic0"\n'
    st.files[ESX_CONF] = text
    st.files[st.authorized_keys_path] = ""
    st.files["/etc/hosts"] = f"127.0.0.1 localhost.localdomain localhost\n{ip} {st.hostname}.{st.domain} {st.hostname}\n"
    write_pnic_conf(st)
    sync_esx_conf(st)
    if st.is_esxi:
        st.vibs = _base_vibs(st, release)
        st.persisted_etc = etc_snapshot(st)
    return st


def etc_snapshot(state: HostState) -> dict[str, str]:
    return {p: c for p, c in state.files.items() if p.startswith("/etc/")}


# ---------------------------------------------------------------- persistence


def to_dict(state: HostState) -> dict[str, Any]:
    return dataclasses.asdict(state)


def from_dict(data: dict[str, Any]) -> HostState:
    d = dict(data)
    d["nics"] = [Nic(**n) for n in d.get("nics", [])]
    d["vswitches"] = [
        VSwitch(**{**v, "portgroups": [PortGroup(**p) for p in v.get("portgroups", [])]})
        for v in d.get("vswitches", [])
    ]
    d["vmknics"] = [NetIf(**i) for i in d.get("vmknics", [])]
    d["vswifs"] = [NetIf(**i) for i in d.get("vswifs", [])]
    d["advanced"] = {k: AdvOption(**v) for k, v in d.get("advanced", {}).items()}
    d["nfs"] = [NfsMount(**m) for m in d.get("nfs", [])]
    d["vibs"] = [Vib(**v) for v in d.get("vibs", [])]
    known = {f.name for f in dataclasses.fields(HostState)}
    return HostState(**{k: v for k, v in d.items() if k in known})


def write_json_atomic(path: Path, data: Any, *, mode: int = 0o600) -> None:
    """Lab state is private (a host's state holds its root password hash): 0600 unless asked otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=1, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_state(host_dir: Path, state: HostState) -> None:
    write_json_atomic(Path(host_dir) / STATE_FILE, to_dict(state))


def load_state(host_dir: Path) -> HostState:
    with open(Path(host_dir) / STATE_FILE, encoding="utf-8") as f:
        return from_dict(json.load(f))
