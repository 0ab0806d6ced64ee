"""VMware Tools in the guest: `vmtoolsd --cmd "info-get|info-set guestinfo.NAME [VALUE]"` (ESXi 5.0+).

ESXi ships vmtoolsd from 5.0 on; ESX classic's service console and ESXi 4.x have none, so there the command is
not found (the identity of their clones goes over SSH instead). The variables are the VM's (`labctl.sim.guestvars`):
the .vmx's `guestinfo.*` at power-on, then what the guest sets; gone at power-off.

Real behaviour modelled: `info-get` prints the value and a newline, exit 0; for a variable nobody set it prints
`No value found` on stderr and exits non-zero (open-vm-tools issue #209: "No value found" when the key is in
neither the .vmx nor set with info-set; guest init scripts test `$?` after `info-get` for "undefined"; the exact
status 1 is [M]). `info-set NAME VALUE` prints nothing, exit 0; the value is everything after the
name (spaces kept).
"""

from __future__ import annotations

from labctl.sim.commands import Invocation, Result, esx_at_least, command

USAGE = "Usage: vmtoolsd --cmd \"<rpc command>\"\n"


def _rpc(inv: Invocation) -> str | None:
    args = list(inv.args)
    if len(args) == 2 and args[0] == "--cmd":
        return args[1]
    if len(args) == 1 and args[0].startswith("--cmd="):
        return args[0][len("--cmd="):]
    return None


def _guestinfo(name: str) -> bool:
    """Only `guestinfo.*` variables are the guest's to read and write."""
    return name.lower().startswith("guestinfo.") and len(name) > len("guestinfo.")


@command("vmtoolsd", when=esx_at_least("esxi", 5, 0))
def vmtoolsd(inv: Invocation) -> Result:
    from labctl.sim import guestvars

    rpc = _rpc(inv)
    if rpc is None:
        return Result(1, "", "sim: vmtoolsd is modelled only as `vmtoolsd --cmd \"info-get|info-set ...\"`\n")
    verb, _, rest = rpc.lstrip().partition(" ")
    hdir = getattr(inv.host, "host_dir", None)
    if verb == "info-get":
        name = rest.strip()
        value = guestvars.get(hdir, name) if hdir is not None and _guestinfo(name) else None
        if value is None:
            return Result(1, "", "No value found\n")
        return Result(0, value + "\n", "")
    if verb == "info-set":
        name, _, value = rest.lstrip().partition(" ")
        if not _guestinfo(name):
            return Result(1, "", "Invalid key/value\n")  # wording not confirmed by a capture [L]
        if hdir is None or not guestvars.set_value(hdir, name, value):
            return Result(1, "", "sim: this host runs outside a simulated Workstation VM: no guest variables\n")
        return Result(0, "", "")
    return Result(1, "", f"sim: vmtoolsd --cmd {verb!r} is not modelled (only info-get, info-set)\n")
