"""Clone identity: how a linked clone gets its own hostname, addresses, keys, certificate and UUID (pure).

Two paths (docs/install.md, "Clone identity"):
  guestinfo   ESXi 5.1 and later (ESX 9.x included): the clone's .vmx carries `guestinfo.labctl.*`
              (`guestinfo_settings`); the boot script its source's kickstart installed in
              /etc/rc.local.d/local.sh (`templates/kickstart/_identity_hook.ks.j2`) reads them with
              `vmtoolsd --cmd "info-get ..."`, applies what differs and publishes the new SSH host key as
              `guestinfo.labctl.hostkey`. Needs vmtoolsd (ESXi 5.0+) and local.sh (ESXi 5.1+).
  ssh         ESX classic 3.5/4.x, ESXi 4.1 and 5.0: no local.sh or no vmtoolsd. The `identity` stage starts one
              clone at a time while its source is off, reaches it at the source's address with the source's
              pinned key and re-addresses it over SSH, commit confirmed (`labctl.remote.operations.identity`).

Every value that reaches a .vmx or a remote command is checked here first (`check_name`, `check_ipv4`), so
nothing from the topology is ever pasted into a script unchecked.
"""

from __future__ import annotations

import ipaddress
import re
from typing import TYPE_CHECKING

from labctl.errors import UsageError

if TYPE_CHECKING:
    from labctl.topology.model import EsxHost, Topology

PREFIX = "guestinfo.labctl."
HOSTKEY_VAR = "labctl.hostkey"  # what the boot script publishes (read with Driver.read_guest_var)
# a VM name as the topology allows it (schema VMNAME): also what the boot script accepts for a hostname
NAME_RE = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
# a dotted-quad IPv4 address, as grep -E in BusyBox (and the simulator) reads it
IPV4_RE = r"^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}$"
MAX_VMK = 8  # vmk1..vmk8: how many extra VMkernel ports the boot script looks for
LOCAL_DATASTORE = "datastore1"  # what the installer names the local VMFS volume
B64_RE = r"^[A-Za-z0-9+/]+={0,2}$"


def source_public_key(topo: Topology, host: EsxHost) -> str | None:
    """The base64 of the SSH host key labctl made for `host`'s install (`<vm_dir>/.labctl/install/<host>/
    ssh_host_rsa_key.pub`, written by the vms stage, `plan.media.install_dir`), or None (not installed by labctl)."""
    import base64
    import binascii

    try:
        parts = (topo.state_dir / "install" / host.name / "ssh_host_rsa_key.pub").read_text().split()
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
    if len(parts) < 2 or parts[0] != "ssh-rsa" or not re.fullmatch(B64_RE, parts[1]):
        return None
    try:
        base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    return parts[1]


def method(host: EsxHost) -> str:
    """'guestinfo' or 'ssh' (see the module text)."""
    r = host.version_info.release
    if host.flavor == "esx" and r < (5, 0):
        return "ssh"  # ESX classic: a Red Hat service console, no vmtoolsd, no local.sh
    return "guestinfo" if r >= (5, 1) else "ssh"  # ESXi 4.1 has no vmtoolsd; ESXi 5.0 has no local.sh


def check_name(value: str, what: str) -> str:
    if not re.fullmatch(NAME_RE, value or ""):
        raise UsageError(f"{what} {value!r} is not a host name labctl can give a clone",
                         hint="letters, digits, '-', '_' and '.', starting with a letter or digit, at most 63")
    return value


def check_ipv4(value: str, what: str) -> str:
    try:
        ipaddress.IPv4Address(value)
    except ValueError:
        raise UsageError(f"{what} {value!r} is not an IPv4 address") from None
    if not re.fullmatch(IPV4_RE, value):  # e.g. leading zeros, which ipaddress may accept on some versions
        raise UsageError(f"{what} {value!r} is not a dotted-quad IPv4 address")
    return value


def local_datastore_name(host: EsxHost) -> str:
    """The name a clone's local VMFS volume gets when its golden image has one (`datastore1` otherwise twice)."""
    return check_name(f"{host.name}-local", f"{host.name}'s local datastore name")


def guestinfo_settings(topo: Topology, host: EsxHost, *, source_key: bool = True) -> dict[str, str | None]:
    """The `guestinfo.labctl.*` keys of a linked clone's .vmx ({} for a clone of the ssh path or a golden host).

    `guestinfo.labctl.sourcekey` is the public half of the host key labctl made for the source's install, when
    it did: a clone that still serves it takes a new identity even if someone already renamed it (lab state, not
    topology: `source_key=False` leaves it out, as the clone plan `labctl render` writes does).
    `guestinfo.labctl.hostkey` is removed (None): it is the guest's to set at run time, never the .vmx's."""
    if not host.is_clone or method(host) != "guestinfo":
        return {}
    m = host.management
    s: dict[str, str | None] = {
        PREFIX + "id": check_name(host.name, "host name"),
        PREFIX + "hostname": check_name(host.name, "host name"),
        PREFIX + "ip": check_ipv4(m.ip, f"{host.name}'s management ip"),
        PREFIX + "netmask": check_ipv4(m.netmask, f"{host.name}'s management netmask"),
        PREFIX + "gateway": check_ipv4(m.gateway, f"{host.name}'s gateway") if m.gateway else None,
        PREFIX + "datastore": local_datastore_name(host),
    }
    src_key = source_public_key(topo, topo.host(host.linked_clone_of)) if source_key else None
    if src_key:  # a clone still holding it has its source's identity, whatever its hostname says
        s[PREFIX + "sourcekey"] = src_key
    if len(host.vmkernel) > MAX_VMK:
        raise UsageError(f"{host.name} has {len(host.vmkernel)} VMkernel ports; a clone's boot script sets at "
                         f"most {MAX_VMK}")
    for i, v in enumerate(host.vmkernel, 1):
        s[f"{PREFIX}vmk{i}.ip"] = check_ipv4(v.ip, f"{host.name}'s vmk{i} ip")
        s[f"{PREFIX}vmk{i}.netmask"] = check_ipv4(v.netmask, f"{host.name}'s vmk{i} netmask")
        s[f"{PREFIX}vmk{i}.portgroup"] = _portgroup(v.portgroup, host.name, i)
    s[PREFIX + "hostkey"] = None
    return s


def _portgroup(name: str, host: str, i: int) -> str:
    # a port group name goes into the script only as a quoted "$variable"; still, no control characters or quotes
    if not name or len(name) > 80 or any(c in name for c in "\"'`$\\\n\r\t") or not name.isprintable():
        raise UsageError(f"{host}'s vmk{i} port group {name!r} cannot be passed to its clone's boot script",
                         hint="use letters, digits, spaces, '-', '_' and '.'")
    return name
