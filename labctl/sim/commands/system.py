"""System commands: hostname, uname, vmware -v, esxcfg-advcfg, esxcli system ..., auto-backup.sh, reboot, vim-cmd."""

from __future__ import annotations

from labctl.sim import state as S
from labctl.sim.commands import (
    Invocation,
    Result,
    command,
    esx_at_least,
    flavor_is,
    not_linux,
    parse_options,
)

def build_number(st: S.HostState) -> int:
    """The host's build: the one its install media had (a patch build from the topology), else the GA build of
    its update (labctl/releases.py: KB 2143832's table as kept in Wireshark, Broadcom 9.x release notes)."""
    return S.build_of(st)


def version_triplet(st: S.HostState) -> str:
    ma, mi, up = st.version_info
    return f"{ma}.{mi}.{up if ma >= 7 else 0}"


def version_string(st: S.HostState) -> str:
    """`vmware -v`: 'VMware ESX Server 3.5.0 build-207095', 'VMware ESXi 6.7.0 build-8169922'."""
    if st.is_classic:
        product = "VMware ESX Server" if st.release < (4, 0) else "VMware ESX"
    else:
        product = "VMware ESXi"
    return f"{product} {version_triplet(st)} build-{build_number(st)}"


@command("vmware", when=not_linux)
def vmware(inv: Invocation) -> Result:
    if not inv.args or inv.args[0] not in ("-v", "-vl", "-l"):
        return Result(1, "", "Usage: vmware -v | -l | -vl\n")
    st = inv.state
    lines = []
    if "v" in inv.args[0]:
        lines.append(version_string(st))
    if "l" in inv.args[0]:
        up = st.version_info[2]
        product = "VMware ESX" if st.is_classic else "VMware ESXi"
        if st.release >= (9, 0):  # 9.x has no "Update N" names (KB 395110); the release as 9.x names it [L]
            lines.append(f"{product} {version_triplet(st)}.{S.patch_of(st)[1] or '0'}")
        else:
            lines.append(f"{product} {st.release[0]}.{st.release[1]} " + (f"Update {up}" if up else "GA"))
    return Result(0, "\n".join(lines) + "\n")


@command("hostname")
def hostname(inv: Invocation) -> Result:
    st = inv.state
    if not inv.args:
        return Result(0, st.hostname + "\n")
    if inv.args == ["-f"]:
        return Result(0, f"{st.hostname}.{st.domain}\n")
    if inv.args == ["-s"]:
        return Result(0, st.hostname + "\n")
    if st.is_classic and len(inv.args) == 1 and not inv.args[0].startswith("-"):
        # the service console's (net-tools) hostname: the running name only; the boot takes it from esx.conf's
        # /adv/Misc/HostName and /etc/sysconfig/network again
        st.hostname = inv.args[0].split(".")[0]
        return Result(0)
    return Result(1, "", "sim: setting the hostname with `hostname` is not modelled (esxcli system hostname set)\n")


# Build dates as real hosts print them in `uname -v` (captures in public posts and code: see
# docs/simulator.md "Checked against real captures"); a build without a known date keeps a placeholder.
BUILD_DATES = {
    "1331820": "Sep 18 2013 23:08:31", "3248547": "Nov 17 2015 21:38:51", "8294253": "Apr 17 2018 19:05:39",
    "10719125": "Nov  4 2018 15:44:22", "8169922": "Apr  3 2018 14:48:22", "16324942": "Jun  2 2020 10:08:07",
    "20328353": "Sep 27 2023 19:41:06", "22380479": "Sep  4 2023 15:00:49",
}


@command("uname")
def uname(inv: Invocation) -> Result:
    """`uname` per era. ESXi 6.5+ (VMware's uname): `-a` = s n r v m p i o, e.g. "VMkernel esxi 6.7.0 #1 SMP Release
    build-8169922 Apr  3 2018 14:48:22 x86_64 x86_64 x86_64 ESXi"; ESXi 5.x (BusyBox): s n r v m o with "GNU/Linux"
    ("... build-3248547 Nov 17 2015 21:38:51 x86_64 GNU/Linux"); ESX classic (GNU coreutils): s n r v m p i o."""
    st = inv.state
    build = build_number(st)
    if st.is_esxi:
        v = f"#1 SMP Release build-{build} {BUILD_DATES.get(str(build), 'Jan  1 2020 00:00:00')}"
        fields = {"s": "VMkernel", "n": st.hostname, "r": version_triplet(st), "v": v, "m": "x86_64"}
        if st.release >= (6, 5):
            fields |= {"p": "x86_64", "i": "x86_64", "o": "ESXi"}
        else:  # BusyBox uname: no processor/platform fields in -a
            fields |= {"p": "unknown", "i": "unknown", "o": "GNU/Linux"}
    elif st.is_classic:
        four = st.release >= (4, 0)  # the ESX 4 service console is 64-bit (RHEL 5.2 based); 3.5's is i686 (RHEL 3)
        fields = {"s": "Linux", "n": st.hostname, "r": "2.6.18-164.ESX" if four else "2.4.21-57.ELvmnix",
                  "v": "#1 SMP Tue Oct 27 22:15:34 PDT 2009", "m": "x86_64" if four else "i686",
                  "p": "x86_64" if four else "i686", "i": "x86_64" if four else "i386", "o": "GNU/Linux"}
    else:
        fields = {"s": "Linux", "n": st.hostname, "r": "6.1.0-sim", "v": "#1 SMP Debian", "m": "x86_64",
                  "p": "unknown", "i": "unknown", "o": "GNU/Linux"}
    flags = "".join(a[1:] for a in inv.args if a.startswith("-")) or "s"
    bad = set(flags) - set("snrvmpioa")
    if bad:
        return Result(1, "", f"uname: invalid option -- '{sorted(bad)[0]}'\n")
    if "a" in flags:  # -a leaves out processor and platform when they are unknown (GNU and BusyBox alike)
        order = [k for k in "snrvmpio" if not (k in "pi" and fields[k] == "unknown")]
    else:
        order = [k for k in "snrvmpio" if k in flags]
    return Result(0, " ".join(fields[k] for k in order) + "\n")


# ---------------------------------------------------------------- advanced settings


def _opt(st: S.HostState, path: str) -> S.AdvOption | None:
    if not path.startswith("/"):
        path = "/" + path.replace(".", "/", 1)
    return st.advanced.get(path)


def set_advanced(inv: Invocation, opt: S.AdvOption, value: str) -> str | None:
    """Set an option at runtime and in esx.conf; an error message or None."""
    if opt.type == "integer":
        try:
            v = int(value)
        except ValueError:
            return f"Invalid value {value} for option {opt.path.rsplit('/', 1)[1]}"
        if not opt.min_value <= v <= opt.max_value:
            return f"Invalid value {value} for option {opt.path.rsplit('/', 1)[1]}: must be {opt.min_value}-{opt.max_value}"
        opt.int_value = v
    else:
        opt.string_value = value
    S.sync_esx_conf(inv.state)
    return None


@command("esxcfg-advcfg", when=not_linux)
def esxcfg_advcfg(inv: Invocation) -> Result:
    args = list(inv.args)
    if len(args) == 2 and args[0] in ("-g", "--get"):
        opt = _opt(inv.state, args[1])
        if opt is None:
            return Result(1, "", f"Error getting value for {args[1]}: Unable to find option\n")  # wording [L]
        value = opt.int_value if opt.type == "integer" else opt.string_value
        return Result(0, f"Value of {opt.path.rsplit('/', 1)[1]} is {value}\n")
    if len(args) == 3 and args[0] in ("-s", "--set"):
        opt = _opt(inv.state, args[2])
        if opt is None:
            return Result(1, "", f"Error setting value for {args[2]}: Unable to find option\n")
        err = set_advanced(inv, opt, args[1])
        if err:
            return Result(1, "", err + "\n")
        value = opt.int_value if opt.type == "integer" else opt.string_value
        return Result(0, f"Value of {opt.path.rsplit('/', 1)[1]} is {value}\n")
    if len(args) == 2 and args[0] in ("-d", "--default"):
        opt = _opt(inv.state, args[1])
        if opt is None:
            return Result(1, "", f"Error setting value for {args[1]}: Unable to find option\n")
        set_advanced(inv, opt, str(opt.default_int) if opt.type == "integer" else opt.default_string)
        return Result(0, f"Value of {opt.path.rsplit('/', 1)[1]} is {opt.int_value if opt.type == 'integer' else opt.string_value}\n")
    return Result(1, "", "sim: only esxcfg-advcfg -g PATH, -s VALUE PATH and -d PATH are modelled\n")


def _adv_record(st: S.HostState, opt: S.AdvOption) -> tuple[None, list[tuple[str, object]]]:
    integer = opt.type == "integer"
    fields: list[tuple[str, object]] = [
        ("Path", opt.path), ("Type", opt.type),
        ("Int Value", opt.int_value if integer else 0), ("Default Int Value", opt.default_int if integer else 0),
        ("Min Value", opt.min_value), ("Max Value", opt.max_value),
        ("String Value", "" if integer else opt.string_value),
        ("Default String Value", "" if integer else opt.default_string),
        ("Valid Characters", ""), ("Description", opt.description),
    ]
    if st.release >= (7, 0):  # 7.0 adds these two fields [L]
        fields[-1:-1] = [("Host Specific", False), ("Impact", "none")]
    return None, fields


@command("esxcli", "system", "settings", "advanced", "list", when=esx_at_least("esxi", 5, 0))
def adv_list(inv: Invocation) -> Result:
    opts, _ = parse_options(inv.args, {"option": ("o", True), "delta": ("d", False), "tree": ("t", True)})
    st = inv.state
    if "option" in opts:
        opt = _opt(st, opts["option"])
        if opt is None:
            return Result(1, "", f"Unable to find option {opts['option'].rsplit('/', 1)[-1]}\n")
        chosen = [opt]
    else:
        chosen = sorted(st.advanced.values(), key=lambda o: o.path)
        if "tree" in opts:
            chosen = [o for o in chosen if o.path.startswith(opts["tree"])]
        if opts.get("delta"):
            chosen = [o for o in chosen if (o.int_value != o.default_int if o.type == "integer"
                                           else o.string_value != o.default_string)]
    return Result(0, inv.records([_adv_record(st, o) for o in chosen], struct="SettingsAdvancedOption"))


@command("esxcli", "system", "settings", "advanced", "set", when=esx_at_least("esxi", 5, 0))
def adv_set(inv: Invocation) -> Result:
    opts, _ = parse_options(inv.args, {"option": ("o", True), "int-value": ("i", True),
                                       "string-value": ("s", True), "default": ("d", False)})
    if "option" not in opts:
        return Result(1, "", "Error: Missing required parameter -o|--option\n")
    opt = _opt(inv.state, opts["option"])
    if opt is None:
        return Result(1, "", f"Unable to find option {opts['option'].rsplit('/', 1)[-1]}\n")
    if opts.get("default"):
        value = str(opt.default_int) if opt.type == "integer" else opt.default_string
    elif opt.type == "integer" and "int-value" in opts:
        value = opts["int-value"]
    elif opt.type == "string" and "string-value" in opts:
        value = opts["string-value"]
    else:
        return Result(1, "", f"Invalid value type for option {opt.path.rsplit('/', 1)[1]}\n")
    err = set_advanced(inv, opt, value)
    if err:
        return Result(1, "", err + "\n")
    return Result(0)


@command("esxcli", "system", "uuid", "get", when=esx_at_least("esxi", 5, 0))
def uuid_get(inv: Invocation) -> Result:
    from labctl.sim.commands.esxcli import format_value

    return Result(0, format_value(inv.state.system_uuid, inv.formatter))


@command("esxcli", "system", "hostname", "get", when=esx_at_least("esxi", 5, 0))
def hostname_get(inv: Invocation) -> Result:
    st = inv.state
    return Result(0, inv.records([(None, [("Domain Name", st.domain),
                                          ("Fully Qualified Domain Name", f"{st.hostname}.{st.domain}"),
                                          ("Host Name", st.hostname)])], struct="HostName"))


@command("esxcli", "system", "hostname", "set", when=esx_at_least("esxi", 5, 0))
def hostname_set(inv: Invocation) -> Result:
    opts, _ = parse_options(inv.args, {"host": ("H", True), "domain": ("d", True), "fqdn": ("f", True)})
    st = inv.state
    if "fqdn" in opts:
        host, _, dom = opts["fqdn"].partition(".")
        st.hostname, st.domain = host, dom or st.domain
    if "host" in opts:
        st.hostname = opts["host"]
    if "domain" in opts:
        st.domain = opts["domain"]
    if not opts:
        return Result(1, "", "Error: at least one of --host, --domain, --fqdn is required\n")
    opt = st.advanced.get("/Misc/HostName")
    if opt is not None:
        opt.string_value = st.hostname
    S.sync_esx_conf(st)
    return Result(0)


@command("esxcli", "system", "version", "get", when=esx_at_least("esxi", 5, 0))
def version_get(inv: Invocation) -> Result:
    st = inv.state
    # 7.0 U3c prints "Update: 3 / Patch: 20" (7.0.3-0.20.19193900); 9.0.0 adds "Maintenance: 0" between Update and
    # Patch and still says "Product: VMware ESXi" (real captures, tests/sim/data/esxcli_system_version_get_*.txt).
    # On 9.x the maintenance release is the third version field; Update stays 0 there [L].
    patch = S.patch_of(st)[0]
    if st.release >= (9, 0):
        fields = [("Product", "VMware ESXi"), ("Version", version_triplet(st)),
                  ("Build", f"Releasebuild-{build_number(st)}"), ("Update", 0), ("Maintenance", st.version_info[2]),
                  ("Patch", patch)]
    else:
        fields = [("Product", "VMware ESXi"), ("Version", version_triplet(st)),
                  ("Build", f"Releasebuild-{build_number(st)}"), ("Update", st.version_info[2]), ("Patch", patch)]
    return Result(0, inv.records([(None, fields)], struct="VersionGet"))


def _maintenance(st: S.HostState) -> bool:
    return bool(st.extra.get("maintenance_mode"))


@command("esxcli", "system", "maintenanceMode", "get", when=esx_at_least("esxi", 5, 0))
def maintenance_get(inv: Invocation) -> Result:
    return Result(0, ("Enabled" if _maintenance(inv.state) else "Disabled") + "\n")


@command("esxcli", "system", "maintenanceMode", "set", when=esx_at_least("esxi", 5, 0))
def maintenance_set(inv: Invocation) -> Result:
    opts, _ = parse_options(inv.args, {"enable": ("e", True), "timeout": ("t", True), "vsanmode": ("m", True)})
    if "enable" not in opts:
        return Result(1, "", "Error: Missing required parameter -e|--enable\n")
    want = str(opts["enable"]).lower() in ("true", "1", "yes")
    if want == _maintenance(inv.state):
        return Result(1, "", f"Maintenance mode is already {'enabled' if want else 'disabled'}.\n")  # wording [L]
    inv.state.extra["maintenance_mode"] = want
    return Result(0)


@command("esxcli", "system", "shutdown", "reboot", when=esx_at_least("esxi", 5, 0))
def shutdown_reboot(inv: Invocation) -> Result:
    opts, _ = parse_options(inv.args, {"reason": ("r", True), "delay": ("d", True)})
    if "reason" not in opts:
        return Result(1, "", "Error: Missing required parameter -r|--reason\n")
    if not _maintenance(inv.state):
        return Result(1, "", "Maintenance mode is required for this operation, but the host is not in maintenance "
                             "mode.\n")  # wording [L]; plain `reboot` has no such check
    inv.host.reboot()
    return Result(0)


@command("auto-backup.sh", when=flavor_is("esxi"))
def auto_backup(inv: Invocation) -> Result:
    inv.host.auto_backup()
    return Result(0, "Saving current state in /bootbank\n")  # wording [L]


@command("sync", lock=False)
def sync(inv: Invocation) -> Result:
    """coreutils/busybox `sync`: flush the page cache. The simulated disk has none (every write is already on it),
    so there is nothing to flush; the command exists because labctl runs it before a clone source's power-off."""
    if inv.args:
        return Result(1, "", f"sync: extra operand '{inv.args[0]}'\n")
    return Result(0)


@command("reboot", when=not_linux)
def reboot(inv: Invocation) -> Result:
    bad = [a for a in inv.args if a not in ("-f", "-n", "-d", "0")]
    if bad:
        return Result(1, "", f"reboot: invalid option -- '{bad[0]}'\n")
    inv.host.reboot()
    return Result(0)


# ESXi's SSH service (TSM-SSH): `vim-cmd hostsvc/enable_ssh` sets its policy on (it starts at every boot),
# `start_ssh` starts it now; ESXi 4.1 calls it remote Tech Support Mode (`enable_remote_tsm`, `start_remote_tsm`;
# VMware KB 1017910). They print nothing on success. Which vim-cmd names exist in which release: [M].
_SSH_VIM_CMDS = {
    "hostsvc/enable_ssh": (lambda r: r >= (5, 0), "enable"),
    "hostsvc/disable_ssh": (lambda r: r >= (5, 0), "disable"),
    "hostsvc/start_ssh": (lambda r: r >= (5, 0), "start"),
    "hostsvc/stop_ssh": (lambda r: r >= (5, 0), "stop"),
    "hostsvc/enable_remote_tsm": (lambda r: (4, 1) <= r < (5, 0), "enable"),
    "hostsvc/disable_remote_tsm": (lambda r: (4, 1) <= r < (5, 0), "disable"),
    "hostsvc/start_remote_tsm": (lambda r: (4, 1) <= r < (5, 0), "start"),
    "hostsvc/stop_remote_tsm": (lambda r: (4, 1) <= r < (5, 0), "stop"),
}


def _ssh_service(inv: Invocation, action: str) -> Result:
    svc = inv.state.extra.setdefault("ssh_service", {"enabled": True, "running": True})
    if action in ("enable", "disable"):
        svc["enabled"] = action == "enable"
    else:
        svc["running"] = action == "start"
        if inv.host is not None and hasattr(inv.host, "update_listener"):
            inv.host.update_listener()  # sshd answers (or stops answering) now
    return Result(0)


@command("chkconfig", when=flavor_is("esx"))
def chkconfig(inv: Invocation) -> Result:
    """Red Hat's chkconfig in the ESX classic service console: `chkconfig NAME on|off`, `--list [NAME]`."""
    services = inv.state.extra.setdefault("chkconfig", {"sshd": True})
    args = inv.args
    if len(args) == 2 and args[1] in ("on", "off"):
        services[args[0]] = args[1] == "on"
        return Result(0)
    if args[:1] == ["--list"]:
        names = args[1:] or sorted(services)
        rows = "".join(f"{n:<16}0:off\t1:off\t2:{'on' if services.get(n) else 'off'}\t3:"
                       f"{'on' if services.get(n) else 'off'}\t4:{'on' if services.get(n) else 'off'}\t5:"
                       f"{'on' if services.get(n) else 'off'}\t6:off\n" for n in names)
        return Result(0, rows)
    return Result(1, "", "sim: chkconfig is modelled only as `chkconfig NAME on|off` and `chkconfig --list`\n")


@command("esxcfg-firewall", when=flavor_is("esx"))
def esxcfg_firewall(inv: Invocation) -> Result:
    """ESX classic's service console firewall: `--enableService NAME` / `--disableService NAME` / `-q NAME`."""
    fw = inv.state.extra.setdefault("firewall_services", {"sshServer": True})
    args = inv.args
    if len(args) == 2 and args[0] in ("--enableService", "-e", "--disableService", "-d"):
        fw[args[1]] = args[0] in ("--enableService", "-e")
        return Result(0)
    if len(args) == 2 and args[0] in ("-q", "--query"):
        return Result(0, f"Service {args[1]} is {'enabled' if fw.get(args[1]) else 'blocked'}.\n")
    return Result(1, "", "sim: esxcfg-firewall is modelled only with --enableService, --disableService, -q\n")


@command("vim-cmd", when=not_linux)
def vim_cmd(inv: Invocation) -> Result:
    if not inv.args:
        return Result(1, "", "Commands available under /:\nhostsvc/  vmsvc/  solo/  proxysvc/  vimsvc/\n")
    sub, rest = inv.args[0], inv.args[1:]
    if sub == "hostsvc/net/refresh":
        return Result(0)
    svc_cmd = _SSH_VIM_CMDS.get(sub)
    if svc_cmd is not None and inv.state.is_esxi and svc_cmd[0](inv.state.release):
        return _ssh_service(inv, svc_cmd[1])
    if sub in ("hostsvc/maintenance_mode_enter", "hostsvc/maintenance_mode_exit"):
        want = sub.endswith("enter")
        if want == _maintenance(inv.state):
            return Result(1, "", "(vim.fault.InvalidState) {\n   msg = \"The operation is not allowed in the current "
                                 "state.\"\n}\n")
        inv.state.extra["maintenance_mode"] = want
        return Result(0, "'vim.Task:haTask-ha-host-vim.HostSystem." + ("enterMaintenanceMode" if want
                                                                       else "exitMaintenanceMode") + "-1'\n")
    if sub == "hostsvc/advopt/update" and len(rest) == 3:
        opt = _opt(inv.state, rest[0])
        if opt is None:
            return Result(1, "", f"(vim.fault.InvalidName) {{ name = \"{rest[0]}\" }}\n")
        err = set_advanced(inv, opt, rest[2])
        return Result(1, "", err + "\n") if err else Result(0)
    if sub == "hostsvc/advopt/view" and len(rest) == 1:
        opt = _opt(inv.state, rest[0])
        if opt is None:
            return Result(1, "", f"(vim.fault.InvalidName) {{ name = \"{rest[0]}\" }}\n")
        value = opt.int_value if opt.type == "integer" else f'"{opt.string_value}"'
        key = opt.path.lstrip("/").replace("/", ".")
        return Result(0, f"(vim.option.OptionValue) [\n   (vim.option.OptionValue) {{\n      key = \"{key}\",\n"
                         f"      value = {value}\n   }}\n]\n")
    if sub == "hostsvc/datastore/rename" and len(rest) == 2:
        from labctl.sim.commands.identity import rename_datastore

        return rename_datastore(inv, rest[0], rest[1])
    return Result(1, "", f"sim: vim-cmd {sub} is not modelled by the simulator\n")
