"""A host's kickstart (installation script), rendered from `templates/kickstart/` per ESX era.

    hash_ = root_password_hash(topology, host, env.environ, env.secret_prompt())   # crypt hash, never plaintext
    text = render_kickstart(topology, host, hash_)                                  # str
    path = write_kickstart(topology, host, hash_)                                   # <vm_dir>/.labctl/<host>.ks.cfg

Eras (docs/install.md cites the syntax of each):
  esx-classic-3   ESX 3.5 (Anaconda with VMware's commands; %post)
  esx-classic-4   ESX 4.0 and 4.1 (accepteula, part ... --onfirstdisk, virtualdisk esxconsole; %post)
  esxi-4.1        ESXi 4.1 (autopart --firstdisk --overwritevmfs; %firstboot --unsupported)
  esxi            ESXi 5.0 – 8.x and ESX 9.x (install --firstdisk --overwritevmfs; %firstboot --interpreter=busybox)
ESXi 3.5 and 4.0 have no scripted install (validation refuses `kickstart: auto` there).

A user's template directory (`template_dir`, as for .vmx files) overrides `kickstart/<era>.ks.j2`; a host's
`install.kickstart: PATH` renders that template instead. Every template gets the same variables (see `context`).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from labctl.errors import UsageError
from labctl.render.cryptpw import MASK, hash_password, scheme_for
from labctl.topology.model import EsxHost, InstallSettings, Topology

KICKSTART_MODE = 0o600
ERAS = ("esx-classic-3", "esx-classic-4", "esxi-4.1", "esxi")


class NoScriptedInstall(UsageError):
    """The host's era has no scripted install, or the host is a linked clone, or kickstart: none."""


def era(host: EsxHost) -> str | None:
    """The kickstart template family of a host, or None when its installer reads no kickstart."""
    r = host.version_info.release
    if host.flavor == "esx" and r < (5, 0):
        return "esx-classic-3" if r < (4, 0) else "esx-classic-4"
    if r < (4, 1):
        return None  # ESXi Installable 3.5 / 4.0
    if r < (5, 0):
        return "esxi-4.1"
    return "esxi"  # ESXi 5.0 – 8.x, ESX 9.x (either flavor spelling)


def host_named(topology: Topology, name: str, filename: str) -> EsxHost:
    """The ESX host `name` of the topology, or a usage error naming the hosts there are."""
    from labctl.errors import did_you_mean

    names = [h.name for h in topology.esx_hosts]
    if name not in names:
        hint = did_you_mean(name, names)
        raise UsageError(f"unknown host '{name}' in {filename}" + (f"; {hint}" if hint else ""),
                         hint="hosts: " + ", ".join(names))
    return topology.host(name)


def is_clone_source(topology: Topology, host: EsxHost) -> bool:
    return any(h.linked_clone_of == host.name for h in topology.esx_hosts)


# root's authorized_keys per era: the service console (RHEL), dropbear-era ESXi 4.x, OpenSSH ESXi 5.0+
# (/work/shared/reference/esx-hosts.md §6; VMware KB 1002866 for ESX classic, KB 1002866/2004746 for ESXi)
def authorized_keys_path(host: EsxHost) -> str:
    if host.flavor == "esx" and host.version_info.release < (5, 0):
        return "/root/.ssh/authorized_keys"
    if host.version_info.release < (5, 0):
        return "/.ssh/authorized_keys"
    return "/etc/ssh/keys-root/authorized_keys"


def context(topology: Topology, host: EsxHost, password_hash: str, host_key=None,
            authorized_keys: tuple[str, ...] | list[str] = ()) -> dict:
    """The variables every kickstart template sees. `host_key` (`labctl.render.hostkey.HostKey`): the SSH host key
    the kickstart installs; `authorized_keys`: public key lines root accepts (labctl's own key)."""
    from labctl.render import identity

    mgmt = host.management
    inst = host.install or InstallSettings()
    r = host.version_info.release
    return {
        "host": host,
        "lab": topology.lab,
        "label": host.label,
        "hostname": host.name,
        "ip": mgmt.ip,
        "netmask": mgmt.netmask,
        "gateway": mgmt.gateway,
        "device": "vmnic0",
        "password_hash": password_hash,
        "firstboot": list(inst.firstboot),
        "clone_source": is_clone_source(topology, host),
        "release": r,
        "scsi_disk": "sda",
        "host_key_pem": host_key.private_pem.rstrip("\n") if host_key is not None else None,
        "host_key_pub": host_key.public_line(f"root@{host.name}") if host_key is not None else None,
        "authorized_keys": [k.strip() for k in authorized_keys if k.strip()],
        "authorized_keys_path": authorized_keys_path(host),
        # clone identity (labctl.render.identity): which path this host's clones take, and what the boot script
        # checks values against
        "identity_method": identity.method(host),
        "name_re": identity.NAME_RE,
        "ipv4_re": identity.IPV4_RE,
        "b64_re": identity.B64_RE,
        "vmk_numbers": " ".join(str(n) for n in range(1, identity.MAX_VMK + 1)),
        "local_datastore": identity.LOCAL_DATASTORE,
    }


def _refuse(host: EsxHost) -> None:
    if host.install is None:
        raise NoScriptedInstall(f"{host.name} is a linked clone of {host.linked_clone_of}: it is cloned, never "
                                "installed, so it has no kickstart", hint=f"ask for {host.linked_clone_of}'s kickstart")
    if host.install.kickstart == "none":
        raise NoScriptedInstall(f"{host.name} has install: {{kickstart: none}} (installed by hand at the console)",
                                hint="set install.kickstart to auto or to your own template")
    if era(host) is None and host.install.template is None:
        raise NoScriptedInstall(f"{host.label} ({host.name}) has no scripted install",
                                hint="set install: {kickstart: none} and install it at the console")


def render_kickstart(topology: Topology, host: EsxHost, password_hash: str,
                     template_dir: str | os.PathLike[str] | None = None, *, host_key=None,
                     authorized_keys: tuple[str, ...] | list[str] = ()) -> str:
    """The kickstart text for `host`, carrying `password_hash` (a crypt hash; never a plaintext password), and
    when given the SSH host key to install and root's authorized keys."""
    from labctl.render.templates import environment, render

    _refuse(host)
    if not re.fullmatch(r"\$(1|6)\$[^\s$]+\$[./0-9A-Za-z]+|\*{8}", password_hash):
        raise ValueError("render_kickstart takes a crypt hash ($1$ or $6$), never a plaintext password")
    own = host.install.template if host.install else None
    if own is not None:
        env, name = environment(template_dir, first=(own.parent,)), own.name
    else:
        env, name = environment(template_dir), f"kickstart/{era(host)}.ks.j2"
    for line in authorized_keys:
        if "\n" in line.strip() or len(line.split()) < 2:
            raise UsageError(f"not a public key line for {host.name}'s authorized_keys: {line[:40]!r}",
                             hint="give an OpenSSH public key file (KEY.pub: 'ssh-rsa AAAA... comment')")
    ctx = context(topology, host, password_hash, host_key, authorized_keys)
    ctx["identity_script"] = render(env, "kickstart/_identity_local.sh.j2", ctx)  # the clones' boot script
    return render(env, name, ctx)


def mask(text: str) -> str:
    """The kickstart with its root password hash and any private key replaced by ******** (for printing)."""
    text = re.sub(r"(?m)^(\s*rootpw\b.*?--iscrypted\s+)\S+", lambda m: m.group(1) + MASK, text)
    return re.sub(r"(-----BEGIN [A-Z ]*PRIVATE KEY-----\n).*?(\n-----END [A-Z ]*PRIVATE KEY-----)",
                  lambda m: m.group(1) + MASK + m.group(2), text, flags=re.S)


def kickstart_path(topology: Topology, host: EsxHost) -> Path:
    return topology.state_dir / "kickstart" / f"{host.name}.ks.cfg"


def write_kickstart(topology: Topology, host: EsxHost, password_hash: str, *,
                    template_dir: str | os.PathLike[str] | None = None, force: bool = False, host_key=None,
                    authorized_keys: tuple[str, ...] | list[str] = ()) -> Path:
    """Render and write `<vm_dir>/.labctl/kickstart/<host>.ks.cfg` atomically, mode 0600 (it carries the hash)."""
    from labctl.render.files import Manifest, write_atomic

    text = render_kickstart(topology, host, password_hash, template_dir, host_key=host_key,
                            authorized_keys=authorized_keys)
    path = kickstart_path(topology, host)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    with Manifest.open(topology.workstation.vm_dir) as manifest:
        write_atomic(path, text, force=force, manifest=manifest, mode=KICKSTART_MODE)
    os.chmod(path, KICKSTART_MODE)  # also when an older copy had another mode
    return path


def hash_in(text: str | None) -> str | None:
    """The `rootpw --iscrypted` hash of a kickstart text, or None."""
    m = re.search(r"(?m)^\s*rootpw\b.*?--iscrypted\s+(\S+)", text or "")
    return m.group(1) if m else None


def root_password_hash(topology: Topology, host: EsxHost, environ: dict[str, str], prompt=None, *,
                       salt: str | None = None, previous: str | None = None) -> str:
    """The crypt hash for `host`'s root password, from `ssh.password_env` in `environ` or from `prompt` (a TTY).

    Only the hash leaves this function; the scheme is the one the host's era accepts (`cryptpw.scheme_for`).
    `previous` (the hash in the kickstart written last time) is returned as it is when it is of that scheme and
    the password still matches it, so an unchanged password rewrites nothing (each new hash has a new salt)."""
    var = host.ssh.password_env
    password = environ.get(var) if var else None
    if not password and prompt is not None:
        password = prompt(f"root password for {host.name} (goes into its kickstart as a hash): ")
    if not password:
        where = f"set {var} in the environment" if var else "set ssh.password_env in the topology and that variable"
        raise UsageError(f"no root password for {host.name}'s kickstart", hint=f"{where}, or run on a terminal to be "
                                                                               "asked for it")
    from labctl.render.cryptpw import SCHEMES, verify

    scheme = scheme_for(host.flavor, host.version_info.release)
    if previous and previous.startswith(SCHEMES[scheme][0]) and verify(password, previous):
        return previous
    return hash_password(password, scheme, salt=salt)
