"""NFS datastores on simulated hosts: `esxcfg-nas` (ESX classic and ESXi before 8) and `esxcli storage nfs`
(ESXi 5+), modelled on shared/reference/esx-hosts.md.

Exact outputs from the reference [H]: `esxcfg-nas -a` ("Connecting to NAS volume: X" / "X created and
connected."), the esxcli 6.x+ list columns, the esxcli duplicate-share error. Marked [L] below where the
reference has no sample (our best rendering, kept plain so parsers stay tolerant).

Mount failures are modelled by the host's state: a server listed in `state.extra["nfs_unreachable"]` denies the
mount (the reference's failed-add text), so tests can make one host fail.
"""

from __future__ import annotations

from labctl.sim.commands import (
    Invocation, Result, UsageFailure, command, esx_at_least, esx_below, flavor_is, parse_options,
)
from labctl.sim.state import NfsMount


def _has_esxcfg_nas(state) -> bool:
    # ESX classic always; ESXi keeps the esxcfg-* wrappers through 7.x [L: dropped in 8.0 per release notes].
    return flavor_is("esx")(state) or esx_below("esxi", 8, 0)(state)


def _find(state, name: str) -> NfsMount | None:
    return next((m for m in state.nfs if m.volume_name == name), None)


def _find_share(state, host: str, share: str) -> NfsMount | None:
    return next((m for m in state.nfs if m.host == host and m.share.rstrip("/") == share.rstrip("/")), None)


def _denied(state, host: str) -> bool:
    return host in (state.extra.get("nfs_unreachable") or [])


# ---- esxcfg-nas

NAS_OPTS = {
    "add": ("a", False), "delete": ("d", False), "list": ("l", False), "host": ("o", True), "share": ("s", True),
    "readonly": ("y", False), "restore": ("r", False), "help": ("h", False),
}

NAS_USAGE = """\
esxcfg-nas <options> [<label>]
   -a|--add                Add a new NAS filesystem to /vmfs volumes.
                           Requires --host and --share options.
                           Use --readonly option only for readonly access.
   -o|--host <host>        Set the host name or ip address for a NAS mount.
   -s|--share <share>      Set the name of the NAS share on the remote system.
   -y|--readonly           Add the new NAS filesystem with readonly access.
   -d|--delete             Unmount and delete a filesystem.
   -l|--list               List the currently mounted NAS file systems.
   -r|--restore            Restore all NAS mounts from the configuration file.
                           (FOR INTERNAL USE ONLY).
   -h|--help               Show this message.
"""


@command("esxcfg-nas", when=_has_esxcfg_nas)
def esxcfg_nas(inv: Invocation) -> Result:
    try:
        opts, rest = parse_options(inv.args, NAS_OPTS)
    except UsageFailure as e:
        return Result(1, NAS_USAGE, e.err)
    state = inv.state
    if opts.get("help") or not (opts.get("add") or opts.get("delete") or opts.get("list")):
        return Result(0 if opts.get("help") else 1, NAS_USAGE, "")
    if opts.get("list"):
        if not state.nfs:
            return Result(0, "No NAS datastore found\n", "")  # [L]
        lines = []
        for m in state.nfs:
            status = "mounted" if m.mounted else "unmounted"
            if state.is_esxi and state.release >= (5, 1):
                status += " available" if m.accessible else " unavailable"  # [M] later ESXi
            lines.append(f"{m.volume_name} is {m.share} from {m.host} {status}")
        return Result(0, "\n".join(lines) + "\n", "")
    if len(rest) != 1:
        return Result(1, NAS_USAGE, "Error: a label is required\n")  # [L]
    label = rest[0]
    if opts.get("delete"):
        if _find(state, label) is None:
            return Result(1, "", f"Error performing operation: NAS volume {label} does not exist.\n")  # [L]
        state.nfs = [m for m in state.nfs if m.volume_name != label]
        return Result(0, f"NAS volume {label} deleted.\n", "")  # [L]
    host, share = opts.get("host"), opts.get("share")
    if not host or not share:
        return Result(1, NAS_USAGE, "Error: --host and --share are required with --add\n")  # [L]
    out = f"Connecting to NAS volume: {label}\n"
    if _find(state, label) is not None:
        return Result(1, out, f"Unable to connect to NAS volume {label}: A volume with the name {label} already "
                      "exists\n")  # [L]
    dup = _find_share(state, host, share)
    if dup is not None:
        return Result(1, out, f"Unable to connect to NAS volume {label}: {host}:{share} is already exported by a "
                      f"volume with the name {dup.volume_name}\n")  # [L] wording borrowed from esxcli
    if _denied(state, host):
        return Result(1, out, f"Unable to connect to NAS volume {label}: Unable to complete Sysinfo operation.  "
                      "Please see the VMkernel log file for more details.: Sysinfo error: The NFS server denied "
                      "the mount requestSee VMkernel log for details.\n")
    state.nfs.append(NfsMount(volume_name=label, host=host, share=share, readonly=bool(opts.get("readonly"))))
    return Result(0, out + f"{label} created and connected.\n", "")


# ---- esxcli storage nfs (ESXi 5.0+)

ESXCLI_ADD_OPTS = {"host": ("H", True), "share": ("s", True), "volume-name": ("v", True), "readonly": ("r", False)}


@command("esxcli", "storage", "nfs", "list", when=esx_at_least("esxi", 5, 0))
def esxcli_nfs_list(inv: Invocation) -> Result:
    state = inv.state
    modern = state.release >= (6, 0)
    if modern:
        columns = ["Volume Name", "Host", "Share", "Accessible", "Mounted", "Read-Only", "isPE",
                   "Hardware Acceleration"]
        rows = [[m.volume_name, m.host, m.share, m.accessible, m.mounted, m.readonly, False, "Not Supported"]
                for m in state.nfs]
    else:  # 5.x [M]
        columns = ["Volume Name", "Host", "Share", "Accessible", "Mounted", "Hardware Acceleration"]
        rows = [[m.volume_name, m.host, m.share, m.accessible, m.mounted, "Not Supported"] for m in state.nfs]
    return Result(0, inv.table(columns, rows, struct="NasVolume"), "")


@command("esxcli", "storage", "nfs", "add", when=esx_at_least("esxi", 5, 0))
def esxcli_nfs_add(inv: Invocation) -> Result:
    opts, rest = parse_options(inv.args, ESXCLI_ADD_OPTS)
    missing = [f"--{k}" for k in ("host", "share", "volume-name") if not opts.get(k)]
    if missing or rest:
        return Result(1, "", f"Error: Missing required parameter {' '.join(missing) or rest[0]}\n")  # [L]
    state, host, share, name = inv.state, opts["host"], opts["share"], opts["volume-name"]
    dup = _find_share(state, host, share)
    if dup is not None:
        return Result(1, f"Unable to create new NAS volume.  {host}:{share} is already exported by a volume with "
                      f"the name {dup.volume_name}\n", "")
    if _find(state, name) is not None:
        return Result(1, f"Unable to create new NAS volume.  A volume with the name {name} already exists\n",
                      "")  # [L]
    if _denied(state, host):
        return Result(1, "Unable to complete Sysinfo operation.  Please see the VMkernel log file for more "
                      "details.: Sysinfo error: The NFS server denied the mount requestSee VMkernel log for "
                      "details.\n", "")
    state.nfs.append(NfsMount(volume_name=name, host=host, share=share, readonly=bool(opts.get("readonly"))))
    return Result(0, "", "")


@command("esxcli", "storage", "nfs", "remove", when=esx_at_least("esxi", 5, 0))
def esxcli_nfs_remove(inv: Invocation) -> Result:
    opts, rest = parse_options(inv.args, {"volume-name": ("v", True)})
    name = opts.get("volume-name")
    if not name or rest:
        return Result(1, "", "Error: Missing required parameter -v|--volume-name\n")  # [L]
    if _find(inv.state, name) is None:
        return Result(1, f"Error performing operation: NFS volume {name} not found\n", "")  # [L]
    inv.state.nfs = [m for m in inv.state.nfs if m.volume_name != name]
    return Result(0, "", "")
