"""What a simulated host does when it boots: re-read its disk and apply the boot-time rules.

- ESXi: /etc comes back as the last `/sbin/auto-backup.sh` saved it (edits since are lost; /tmp is a ramdisk).
  The issue models a reset without the backup that a clean shutdown would run [modelling choice].
- esx.conf records the NICs found now (`/net/pnic/child[N]/mac` = current vNIC MAC).
- vmk interfaces come from esx.conf `/net/vmkernelnic/child[N]/...`; a missing MAC for vmk0 means vmnic0's MAC.
- `/Net/FollowHardwareMac = 1` -> vmk0 takes vmnic0's current MAC (esx-hosts.md section 3A).
- missing or empty `/system/uuid` -> a new UUID, written back to esx.conf (section 3B).
- ESX classic: vswif0 comes up from ifcfg-vswif0 (MACADDR, IPADDR, NETMASK, ONBOOT) as the network scripts do.
- the management agent (hostd / mgmt-vmware) makes /etc/vmware/ssl/rui.crt and rui.key when they are missing.
- ESXi 5.1+: /etc/rc.local.d/local.sh runs at the end of the boot (by the running host, before SSH answers); on
  ESX classic /etc/rc.d/rc.local; the first boot after an install runs the kickstart's %firstboot before them.
- the SSH service (installed hosts) runs after the boot when its policy is on (`vim-cmd hostsvc/enable_ssh`).
"""

from __future__ import annotations

import re

from labctl.sim import state as S

_CHILD = re.compile(r"^/net/vmkernelnic/child\[(\d+)\]/(\w+)$")


def _vmknics_from_conf(st: S.HostState) -> list[S.NetIf]:
    items = S.conf_items(st.files.get(S.ESX_CONF, ""))
    children: dict[int, dict[str, str]] = {}
    for key, value in items.items():
        m = _CHILD.match(key)
        if m:
            children.setdefault(int(m.group(1)), {})[m.group(2)] = value
    old = {v.name: v for v in st.vmknics}
    out: list[S.NetIf] = []
    prefix = "00:50:56:7" if st.release < (6, 0) else "00:50:56:6"
    for idx in sorted(children):
        c = children[idx]
        name = c.get("name") or f"vmk{idx}"
        mac = c.get("mac") or (st.nics[0].mac if name == "vmk0" and st.nics else S.random_mac(prefix))
        prev = old.get(name)
        out.append(S.NetIf(
            name=name, portgroup=c.get("portgroup", prev.portgroup if prev else ""), mac=mac.lower(),
            ip=c.get("ipv4address", ""), netmask=c.get("ipv4netmask", ""), dhcp=c.get("dhcp") == "true",
            enabled=c.get("enable", "true") != "false", mtu=prev.mtu if prev else 1500,
            port_id=prev.port_id if prev else 33554436 + idx,
        ))
    return out


def _advanced_from_conf(st: S.HostState) -> None:
    text = st.files.get(S.ESX_CONF, "")
    for path, opt in st.advanced.items():
        raw = S.conf_get(text, f"/adv{path}")
        if opt.type == "integer":
            try:
                opt.int_value = int(raw) if raw not in (None, "") else opt.default_int
            except ValueError:
                opt.int_value = opt.default_int
        else:
            opt.string_value = raw if raw is not None else opt.default_string


def boot(st: S.HostState) -> None:
    """Apply the boot rules to `st` in place (the host is down while this runs)."""
    st.boot_count += 1
    if st.flavor == "linux":
        return
    if st.is_esxi:
        if st.persisted_etc is not None:
            st.files = {p: c for p, c in st.files.items() if not p.startswith("/etc/")} | dict(st.persisted_etc)
        st.files = {p: c for p, c in st.files.items() if not p.startswith("/tmp/")}
        st.blobs = {p: b for p, b in st.blobs.items() if not p.startswith("/tmp/")}
    S.write_pnic_conf(st)
    _advanced_from_conf(st)
    if st.is_esxi:
        st.vmknics = _vmknics_from_conf(st)
        follow = st.advanced.get(S.FOLLOW_HW_MAC)
        if follow is not None and follow.int_value == 1 and st.nics:
            for vmk in st.vmknics:
                if vmk.name == "vmk0":
                    vmk.mac = st.nics[0].mac
    else:
        st.vmknics = _vmknics_from_conf(st) or st.vmknics
        ifcfg = st.files.get(S.IFCFG_VSWIF0)
        for vsw in st.vswifs:
            if vsw.name == "vswif0" and ifcfg is not None:
                vsw.mac = (S.ifcfg_get(ifcfg, "MACADDR") or vsw.mac).lower()
                vsw.ip = S.ifcfg_get(ifcfg, "IPADDR") or vsw.ip
                vsw.netmask = S.ifcfg_get(ifcfg, "NETMASK") or vsw.netmask
                vsw.enabled = (S.ifcfg_get(ifcfg, "ONBOOT") or "yes").lower() == "yes"
    uuid = S.conf_get(st.files.get(S.ESX_CONF, ""), "/system/uuid")
    if not uuid:
        mgmt = st.interface(st.management_name)
        st.system_uuid = S.new_system_uuid(mgmt.mac if mgmt else (st.nics[0].mac if st.nics else "0"))
        st.files[S.ESX_CONF] = S.conf_set(st.files.get(S.ESX_CONF, ""), "/system/uuid", st.system_uuid)
    else:
        st.system_uuid = uuid
    if (st.is_esxi and S.LOCAL_SH in st.files) or (st.is_classic and S.RC_LOCAL in st.files):
        st.extra["boot_scripts_pending"] = True  # the running host runs it (SimHost.run_boot_scripts)
    svc = st.extra.get("ssh_service")
    if svc is not None:  # a service starts at boot when its policy is "on" (vim-cmd hostsvc/enable_ssh)
        svc["running"] = bool(svc.get("enabled"))
    hostname = st.advanced.get("/Misc/HostName")
    if hostname is not None and hostname.string_value:
        st.hostname = hostname.string_value.split(".")[0]
    S.sync_esx_conf(st)
    from labctl.sim.commands.identity import ensure_certificate

    ensure_certificate(st)  # the management agent starts at the end of the boot


def clone(source: S.HostState, name: str, *, nic_macs: list[str], hostname_unchanged: bool = True) -> S.HostState:
    """A Workstation linked clone of `source`'s disk: same esx.conf, ifcfg, uuid, vmk MACs; new vNIC MACs.

    The clone then boots (`boot`), which re-reads the disk. On ESXi the disk is what the last
    `auto-backup.sh` saved; a hostname stays the source's (a clone is an identical copy) unless changed later.
    """
    st = S.from_dict(S.to_dict(source))
    st.name = name
    if st.is_esxi and st.persisted_etc is not None:
        st.files = {p: c for p, c in st.files.items() if not p.startswith("/etc/")} | dict(st.persisted_etc)
    macs = [m.lower() for m in nic_macs]
    for i, nic in enumerate(st.nics):
        nic.mac = macs[i] if i < len(macs) else S.random_mac("00:0c:29")
    st.boot_count = 0
    boot(st)
    return st
