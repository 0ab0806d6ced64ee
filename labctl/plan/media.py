"""What an unattended install needs, per golden host: the installer ISO, its patched copy, the kickstart CD, the
SSH host key, root's password hash and authorized key, and whether the host is installed yet.

Everything that carries a secret (the kickstart CD: the root hash and the host's private key; the host key
itself) is mode 0600 in `<vm_dir>/.labctl/` (with `--sim` that is inside the sim dir):

    <vm_dir>/.labctl/isos/NAME.ks-HASH.iso       patched installer, one per source content + boot options (cache)
    <vm_dir>/.labctl/install/HOST/ks.iso         the host's kickstart CD (KS.CFG, volume LABCTL-KS)
    <vm_dir>/.labctl/install/HOST/ssh_host_rsa_key{,.pub}   the host key the kickstart installs
    <vm_dir>/.labctl/install/HOST/installed.json the install was seen to complete (SSH answered with that key)
    <sim dir>/isos/NAME.iso                      --sim only: a synthetic installer where the topology's is missing

Installed or blank: a host is installed when `installed.json` names its current disk as the driver identifies it (Workstation: same path and inode; a vSphere target:
the VM's instanceUuid and its disk's backing file and uuid; the
vms stage removes the record whenever it makes a disk, so a disk made again after `destroy` is blank again), or when the disk holds more than `INSTALLED_BYTES` of data (a
host installed by hand, or before labctl tracked installs: a fresh growable disk from `vmware-vdiskmanager -c -t 0`
holds a few hundred KB, an installed ESX several hundred MB). Anything else is blank.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import LabctlError, UsageError

if TYPE_CHECKING:
    from labctl.env import Env
    from labctl.topology.model import EsxHost, Topology

INSTALLED_BYTES = 64 * 1024 * 1024
MARKER = "installed.json"


# --- which hosts -------------------------------------------------------------------------------------------------

def installs(host: EsxHost) -> bool:
    """A golden host labctl boots an installer for (it has an `iso`)."""
    return not host.is_clone and bool(host.iso) and host.install is not None


def kickstarted(host: EsxHost) -> bool:
    """…and installs it unattended (kickstart auto or the user's template; not `kickstart: none`)."""
    return installs(host) and host.install.kickstart != "none"


def install_dir(topology: Topology, host: EsxHost) -> Path:
    return topology.state_dir / "install" / host.name


def ks_iso_path(topology: Topology, host: EsxHost) -> Path:
    return install_dir(topology, host) / "ks.iso"


def cache_dir(topology: Topology) -> Path:
    return topology.state_dir / "isos"


def private_dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o700)
    return path


# --- installed or blank -------------------------------------------------------------------------------------------

def disk_path(host: EsxHost) -> Path:
    return host.vmx_path.with_name(f"{host.name}.vmdk")


def _allocated(p: Path) -> int:
    st = p.stat()
    return min(st.st_size, getattr(st, "st_blocks", 0) * 512) if hasattr(st, "st_blocks") else st.st_size


def read_marker(topology: Topology, host: EsxHost) -> dict | None:
    try:
        d = json.loads((install_dir(topology, host) / MARKER).read_text())
    except (OSError, ValueError):
        return None
    return d if isinstance(d, dict) else None


def _identity(host: EsxHost, drv) -> dict | None:
    """The host's current disk as its driver names it (Workstation: path + inode; vSphere: the VM's instanceUuid
    and disk backing); without a driver, the local disk beside the .vmx."""
    if drv is not None:
        return drv.disk_identity(host.vmx_path)
    disk = disk_path(host)
    try:
        return {"disk": os.fspath(disk), "inode": disk.stat().st_ino}
    except FileNotFoundError:
        return None


def installed(topology: Topology, host: EsxHost, drv=None) -> bool:
    """Has this host's current disk an installed ESX (see the module docstring)?"""
    ident = _identity(host, drv)
    if ident is None:
        return False
    m = read_marker(topology, host)
    if m is not None and all(m.get(k) == v for k, v in ident.items()):
        return True
    if "inode" not in ident:  # a disk on a vSphere target: only the marker tells
        return False
    return _allocated(Path(ident["disk"])) >= INSTALLED_BYTES


def forget_install(topology: Topology, host: EsxHost) -> None:
    """The host's disk is made anew: what was recorded about the old one's install no longer holds."""
    (install_dir(topology, host) / MARKER).unlink(missing_ok=True)


def write_private(path: Path, data: bytes) -> None:
    """Write `data` atomically, mode 0600 from the first byte, in a 0700 directory."""
    private_dir(path.parent)
    tmp = path.with_name(f".{path.name}.labctl-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def mark_installed(topology: Topology, host: EsxHost, *, installer: Path | None, seconds: float, drv=None) -> None:
    """Record that the install of the current disk was seen to complete."""
    ident = _identity(host, drv)
    if ident is None:
        raise LabctlError(f"{host.name}: its disk is gone after the install", hint="run `labctl up` again")
    doc = {"host": host.name, **ident,
           "installer": os.fspath(installer) if installer else None, "seconds": round(seconds, 1),
           "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    write_private(install_dir(topology, host) / MARKER, (json.dumps(doc, indent=2) + "\n").encode())


@dataclass(frozen=True)
class IsoCheck:
    host: EsxHost
    message: str
    hint: str | None = None


def iso_problems(hosts, *, sim: bool) -> list[IsoCheck]:
    """Each golden host's `iso` that cannot install it: missing (a real run; with --sim a synthetic installer is
    used instead), no ESX installer, or an installer of another ESX version than the host's."""
    from labctl.iso.image import KIND_CLASSIC, KIND_OTHER, IsoError, inspect_iso

    out: list[IsoCheck] = []
    for h in hosts:
        if not installs(h):
            continue
        p = Path(h.iso)
        if not p.exists():
            if not sim:
                out.append(IsoCheck(h, f"iso {h.iso} does not exist",
                                    f"download the {h.label} installer to that path (or fix iso:); to try the lab "
                                    "without it use --sim, which writes a synthetic installer"))
            continue
        try:
            info = inspect_iso(p)
        except IsoError as e:
            out.append(IsoCheck(h, f"iso {h.iso}: {e.message}", e.hint or "give the host its ESX installer ISO"))
            continue
        if info.kind == KIND_OTHER:
            out.append(IsoCheck(h, f"iso {h.iso} is no ESX installer (volume id {info.volume_id!r}, no ESX boot "
                                   "configuration)", f"give {h.name} the {h.label} installer ISO"))
            continue
        want = h.version_info
        classic = info.kind == KIND_CLASSIC
        if classic != (h.flavor == "esx" and want.release < (5, 0)) or info.version is None or \
                (info.version.major, info.version.minor, info.version.update) != (want.major, want.minor, want.update):
            what = "an ESX classic installer" if classic else "an ESXi installer"
            got = f"{what} of {info.version.display if info.version else 'an unknown version'}" + \
                  (f" (build {info.build})" if info.build else "")
            out.append(IsoCheck(h, f"iso {h.iso} is {got}, but {h.name} is {h.label}",
                                "give the host the installer of its version, or set its version to the ISO's"))
    return out


def check_isos(topology: Topology, *, sim: bool) -> None:
    """Raise UsageError (exit 2) naming every golden host whose ISO cannot install it."""
    problems = iso_problems(topology.esx_hosts, sim=sim)
    if not problems:
        return
    lines = [f"{c.host.name}: {c.message}" for c in problems]
    raise UsageError("; ".join(lines) if len(lines) == 1 else
                     f"{len(lines)} hosts cannot be installed from their iso:\n  " + "\n  ".join(lines),
                     hint=problems[0].hint)


# --- the installer ISO ------------------------------------------------------------------------------------------

def source_iso(host: EsxHost, sim_dir: Path | None) -> tuple[Path, bool]:
    """(the installer this run boots, is it a synthetic one?). With --sim, a topology ISO that does not exist on
    this machine is replaced by a synthetic installer of the host's version in `<sim dir>/isos/`."""
    p = Path(host.iso)
    if sim_dir is not None and not p.exists():
        return Path(sim_dir) / "isos" / p.name, True
    return p, False


def write_synthetic(path: Path, host: EsxHost) -> bool:
    """A synthetic installer of the host's version and build at `path` (labctl.iso.synthetic); False when there."""
    from labctl.iso import synthetic

    if path.is_file():
        return False
    private_dir(path.parent)
    v = host.version_info
    build = str(v.build) if v.build else None
    if host.flavor == "esx" and v.release < (5, 0):
        synthetic.write_classic_iso(path, v, build)
    else:
        synthetic.write_esxi_iso(path, v, build)
    os.chmod(path, 0o600)
    return True


def patched_name(topology: Topology, host: EsxHost, src: Path) -> Path:
    """Where the patched copy of `src` is (or will be) in the cache: known when the source was hashed before."""
    from labctl.iso.patch import patch_key, remembered_sha256

    cache = cache_dir(topology)
    stem = src.name[:-4] if src.name.lower().endswith(".iso") else src.name
    digest = remembered_sha256(src, cache) if src.exists() and cache.is_dir() else None
    opts = list(host.install.boot_options)
    return cache / (f"{stem}.ks-{patch_key(digest, opts)[:16]}.iso" if digest else f"{stem}.ks-<sha256>.iso")


# --- credentials --------------------------------------------------------------------------------------------------

def authorized_key(topology: Topology, host: EsxHost, sim_dir: Path | None, *, create: bool) -> str | None:
    """The public key line root's authorized_keys gets: with --sim the sim's client key, else ssh.key_file's .pub.

    `create` (with --sim): make the sim's client key when it does not exist yet (`plan` makes nothing and returns
    a stand-in naming the file)."""
    if sim_dir is not None:
        pub = Path(sim_dir) / "id_rsa.pub"
        if not pub.is_file():
            if not create:
                return f"ssh-rsa <the simulated lab's client key, {pub}>"
            from labctl.plan.backends import sim_client_key

            sim_client_key(Path(sim_dir))
        return pub.read_text().strip()
    if not host.ssh.key_file:
        return None
    pub = Path(os.path.expanduser(host.ssh.key_file) + ".pub")
    try:
        line = pub.read_text().strip()
    except FileNotFoundError:
        raise UsageError(f"{host.name}: ssh.key_file {host.ssh.key_file} has no public half {pub} to install",
                         hint=f"write it with: ssh-keygen -y -f {host.ssh.key_file} > {pub}") from None
    except OSError as e:
        raise UsageError(f"{host.name}: cannot read {pub}: {e.strerror}") from None
    if len(line.split()) < 2 or "\n" in line:
        raise UsageError(f"{host.name}: {pub} is not one OpenSSH public key line")
    return line


def password_from(env: Env, host: EsxHost) -> str | None:
    var = host.ssh.password_env
    return env.environ.get(var) or None if var else None


def check_credentials(topology: Topology, env: Env, sim_dir: Path | None) -> None:
    """Before anything runs: every host about to be installed gets a root password or a key to log in with
    (exit 2 with the hint otherwise). A terminal can still be asked for the password later."""
    for h in topology.esx_hosts:
        if not kickstarted(h) or installed(topology, h):
            continue
        if password_from(env, h) or env.stdin_isatty:
            continue
        if authorized_key(topology, h, sim_dir, create=False):
            continue
        var = h.ssh.password_env
        raise UsageError(
            f"{h.name}: no root password and no SSH key for its unattended install",
            hint=(f"set {var} in the environment" if var else "set ssh.password_env in the topology (and that "
                  "variable)") + ", or ssh.key_file (its .pub is installed for root), or run on a terminal")


def root_hash(ctx, host: EsxHost, key: str | None, previous: str | None) -> tuple[str, str | None]:
    """(crypt hash for the kickstart, a note for the report). Only the hash leaves this function.

    The password: ssh.password_env's variable, else (no key to install) a prompt on a terminal. With a key to
    install and no password, the password is random, kept nowhere and shown to nobody (the key logs in); a kickstart
    written before keeps its hash, so a second run rewrites nothing."""
    import secrets

    from labctl.render.cryptpw import SCHEMES, hash_password, scheme_for, verify

    scheme = scheme_for(host.flavor, host.version_info.release)
    same_scheme = bool(previous) and previous.startswith(SCHEMES[scheme][0])
    password = password_from(ctx.env, host)
    if not password and key is None:
        prompt = ctx.env.secret_prompt()
        if prompt is not None:
            password = ctx.once(f"root-password:{host.ssh.password_env}",
                                lambda: prompt(f"root password for {host.name} (goes into its kickstart as a "
                                               "hash): ") or "")
    if password:
        if same_scheme and verify(password, previous):
            return previous, None
        return hash_password(password, scheme), None
    if key is None:
        var = host.ssh.password_env
        raise UsageError(f"{host.name}: no root password and no SSH key for its unattended install",
                         hint=f"set {var or 'ssh.password_env'} or ssh.key_file")
    note = (f"{host.name}: root password is random (no {host.ssh.password_env or 'ssh.password_env'} set); it is "
            "kept nowhere and shown to nobody — root logs in with labctl's key")
    if same_scheme:
        return previous, note
    return hash_password(secrets.token_urlsafe(24), scheme), note


# --- building the media -----------------------------------------------------------------------------------------

@dataclass
class Media:
    installer: Path  # CD 1: the patched installer (the stock one with kickstart: none)
    kickstart: Path | None  # CD 2: the host's kickstart CD
    done: list[str]  # what was written, one line each
    notes: list[str]


def build_media(ctx, host: EsxHost) -> Media:
    """Write (or reuse) the installer and the kickstart CD for `host`; every file 0600 under the lab's state."""
    from labctl.iso.image import IsoError
    from labctl.iso.kickstart import read_kickstart_iso, write_kickstart_iso
    from labctl.iso.patch import build_patched
    from labctl.render import kickstart as ks
    from labctl.render.hostkey import ensure_host_key

    topo = ctx.topology
    done: list[str] = []
    notes: list[str] = []
    src, synthetic = source_iso(host, ctx.sim_dir)
    if synthetic and write_synthetic(src, host):
        notes.append(f"{host.name}: {host.iso} does not exist: using a synthetic {host.label} installer, {src}")
    elif synthetic:
        notes.append(f"{host.name}: using the synthetic {host.label} installer {src} ({host.iso} does not exist)")
    if synthetic:  # the synthetic one is held to the same checks as the user's
        from dataclasses import replace

        bad = iso_problems([replace(host, iso=str(src))], sim=False)
        if bad:
            raise LabctlError(f"{host.name}: {bad[0].message}", hint=f"remove {src}; the next run writes it again")
    if not kickstarted(host):
        return Media(src, None, done, notes)
    cache = private_dir(cache_dir(topo))
    try:
        res = build_patched(src, cache, list(host.install.boot_options))
    except IsoError as e:
        raise LabctlError(f"{host.name}: {e.message}", hint=e.hint) from None
    if res.method != "cached":
        done.append(f"patched installer {res.path} ({res.method}, kickstart: ks=cdrom:/KS.CFG)")
    hdir = private_dir(install_dir(topo, host))
    hkey, made = ensure_host_key(hdir, f"root@{host.name}")
    if made:
        done.append(f"SSH host key {hdir / 'ssh_host_rsa_key'}")
    key = authorized_key(topo, host, ctx.sim_dir, create=True)
    ks_iso = ks_iso_path(topo, host)
    previous = None
    if ks_iso.is_file():
        try:
            previous = ks.hash_in((read_kickstart_iso(ks_iso) or b"").decode("utf-8", "replace"))
        except IsoError:
            previous = None
    hashed, note = root_hash(ctx, host, key, previous)
    if note:
        notes.append(note)
    text = ks.render_kickstart(topo, host, hashed, host_key=hkey, authorized_keys=[key] if key else [])
    if write_kickstart_iso(ks_iso, text):
        done.append(f"kickstart CD {ks_iso}")
    return Media(res.path, ks_iso, done, notes)
