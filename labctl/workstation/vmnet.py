"""Who may open `/dev/vmnetN`, why that decides promiscuous mode, and the fix (workstation.md §7).

`/dev/vmnetN` are character devices, major 119, minor N, created root:root 0600 by VMware's network service
(again at every `vmware-networks` restart). A VM whose user cannot open its vmnet read/write is refused
promiscuous mode — and nested ESX needs it (its vSwitch must receive frames for the inner VMs' and vmk MACs):

    The virtual machine's operating system has attempted to enable promiscuous mode on adapter 'Ethernet0'.
    This is not allowed for security reasons.

Fix (VMware KB 287): a group the lab's users belong to, `chgrp <group> /dev/vmnet*; chmod g+rw /dev/vmnet*`.
udev rules on KERNEL=="vmnet*" do NOT fire for these nodes (vmnet.ko registers no device class), so persistence
is a systemd unit ordered after VMware's network service. LAN segments also go through /dev/vmnet* nodes, so all
nodes are fixed, not only the lab's vmnets.

Every function takes the device directory and the user as parameters; tests use a temp dir, never /dev.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from labctl.errors import EnvironmentProblem, LabctlError, UsageError

VMNET_MAJOR = 119
DEFAULT_DEV = Path("/dev")
DEFAULT_GROUP = "vmware"
UNIT_NAME = "labctl-vmnet-permissions.service"
PROMISC_REFUSAL = (
    "The virtual machine's operating system has attempted to enable promiscuous mode on adapter 'Ethernet0'. "
    "This is not allowed for security reasons."
)
PROMISC_REFUSAL_OLD = (
    "The virtual machines operating system has attempted to enable promiscuous mode on adapter Ethernet0. "
    "This is not allowed for security reasons."
)
_NODE_RE = re.compile(r"^vmnet(\d+)$")
_GROUP_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,31}\$?$")


@dataclass(frozen=True)
class Identity:
    """The user who will run the VMs (under sudo: SUDO_USER, not root)."""

    name: str
    uid: int
    gids: frozenset[int]
    from_database: bool = False  # groups from /etc/group (another user), not from a running session

    @property
    def is_root(self) -> bool:
        return self.uid == 0


def identity_for(user: str) -> Identity:
    try:
        pw = pwd.getpwnam(user)
    except KeyError:
        raise UsageError(
            f"no such user: {user}", hint="pass --user NAME of the user who runs Workstation"
        ) from None
    return Identity(
        pw.pw_name, pw.pw_uid, frozenset(os.getgrouplist(pw.pw_name, pw.pw_gid)), from_database=True
    )


def current_identity(environ: Mapping[str, str] | None = None) -> Identity:
    """This process's user — or, when running as root through sudo, the user who ran sudo."""
    environ = os.environ if environ is None else environ
    sudo_user = environ.get("SUDO_USER")
    if os.geteuid() == 0 and sudo_user and sudo_user != "root":
        try:
            return identity_for(sudo_user)
        except UsageError:
            pass
    uid = os.geteuid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    return Identity(name, uid, frozenset({os.getegid(), *os.getgroups()}))


def _name(lookup, ident: int) -> str:
    try:
        return lookup(ident)[0]
    except KeyError:
        return str(ident)


@dataclass(frozen=True)
class Node:
    path: Path
    number: int
    is_char: bool
    major: int | None
    minor: int | None
    uid: int
    gid: int
    owner: str
    group: str
    mode: int  # permission bits
    readable: bool
    writable: bool
    problems: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def mode_str(self) -> str:
        return stat.filemode(self.mode | (stat.S_IFCHR if self.is_char else stat.S_IFREG))

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "vmnet": self.number,
            "char_device": self.is_char,
            "major": self.major,
            "minor": self.minor,
            "owner": self.owner,
            "group": self.group,
            "mode": f"{self.mode:04o}",
            "readable": self.readable,
            "writable": self.writable,
            "ok": self.ok,
            "problems": list(self.problems),
        }


def access_for(st: os.stat_result, who: Identity) -> tuple[bool, bool]:
    """(read, write) for `who` by the classic owner/group/other rule (root may open anything)."""
    if who.is_root:
        return True, True
    if st.st_uid == who.uid:
        bits = (st.st_mode >> 6) & 0o7
    elif st.st_gid in who.gids:
        bits = (st.st_mode >> 3) & 0o7
    else:
        bits = st.st_mode & 0o7
    return bool(bits & 0o4), bool(bits & 0o2)


def inspect_node(path: Path, number: int, who: Identity) -> Node:
    st = path.stat()
    is_char = stat.S_ISCHR(st.st_mode)
    major = os.major(st.st_rdev) if is_char else None
    minor = os.minor(st.st_rdev) if is_char else None
    r, w = access_for(st, who)
    problems: list[str] = []
    if not is_char:
        problems.append("not a character device (VMware's vmnet driver creates char devices, major 119)")
    elif major != VMNET_MAJOR or minor != number:
        problems.append(f"device numbers {major}:{minor}, expected {VMNET_MAJOR}:{number}")
    if not (r and w):
        problems.append(
            f"{who.name} cannot open it read/write, so a VM of {who.name} on it is refused promiscuous mode"
        )
    return Node(
        path=path,
        number=number,
        is_char=is_char,
        major=major,
        minor=minor,
        uid=st.st_uid,
        gid=st.st_gid,
        owner=_name(pwd.getpwuid, st.st_uid),
        group=_name(grp.getgrgid, st.st_gid),
        mode=stat.S_IMODE(st.st_mode),
        readable=r,
        writable=w,
        problems=tuple(problems),
    )


def list_nodes(dev_dir: Path = DEFAULT_DEV) -> list[tuple[int, Path]]:
    out = []
    try:
        entries = list(Path(dev_dir).iterdir())
    except FileNotFoundError:
        return []
    for p in entries:
        m = _NODE_RE.match(p.name)
        if m:
            out.append((int(m.group(1)), p))
    return sorted(out)


@dataclass
class CheckReport:
    dev_dir: Path
    user: Identity
    nodes: list[Node]
    notes: list[str] = field(default_factory=list)

    @property
    def problems(self) -> list[str]:
        out = [f"{n.path}: {p}" for n in self.nodes for p in n.problems]
        if not self.nodes:
            out.append(
                f"no vmnet device nodes in {self.dev_dir}: VMware's network service is not running "
                "(or Workstation is not installed)"
            )
        return out

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_json(self) -> dict:
        return {
            "dev_dir": str(self.dev_dir),
            "user": self.user.name,
            "ok": self.ok,
            "nodes": [n.to_json() for n in self.nodes],
            "problems": self.problems,
            "notes": self.notes,
        }


def check(dev_dir: Path = DEFAULT_DEV, who: Identity | None = None) -> CheckReport:
    who = who or current_identity()
    nodes = [inspect_node(p, n, who) for n, p in list_nodes(dev_dir)]
    notes = []
    if who.is_root:
        notes.append("checked for root, who may open every node; pass --user NAME to check for the VMs' user")
    elif who.from_database:
        notes.append(
            f"{who.name}'s groups come from the group database: a session {who.name} started before "
            "being added to a group still lacks it until they log in again"
        )
    return CheckReport(Path(dev_dir), who, nodes, notes)


# ---- fixing -------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FixChange:
    path: Path
    what: str

    def __str__(self) -> str:
        return f"{self.path}: {self.what}"


def group_id(group: str) -> int:
    if not _GROUP_RE.match(group):
        raise UsageError(f"{group!r} is not a valid group name")
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        raise EnvironmentProblem(
            f"group {group!r} does not exist on this machine",
            hint=f"create it and add the lab's users: groupadd {group} && usermod -aG {group} $SUDO_USER "
            "(log in again for the new group to count), or pass --group of an existing group",
        ) from None


def fix(
    dev_dir: Path = DEFAULT_DEV, group: str = DEFAULT_GROUP, *, euid: int | None = None
) -> list[FixChange]:
    """Give `group` read/write on every vmnet node: chgrp + chmod g+rw, only where needed (idempotent)."""
    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise EnvironmentProblem(
            f"changing the group and mode of {dev_dir}/vmnet* needs root",
            hint=f"sudo labctl vmnet fix --group {group}",
        )
    gid = group_id(group)
    changes: list[FixChange] = []
    nodes = list_nodes(dev_dir)
    if not nodes:
        raise EnvironmentProblem(
            f"no vmnet device nodes in {dev_dir}",
            hint="start VMware's networks first: vmware-networks --start",
        )
    for _, path in nodes:
        st = path.stat()
        if st.st_gid != gid:
            os.chown(path, -1, gid)
            changes.append(FixChange(path, f"group {_name(grp.getgrgid, st.st_gid)} -> {group}"))
        mode = stat.S_IMODE(st.st_mode)
        if mode & 0o060 != 0o060:
            os.chmod(path, mode | 0o060)
            changes.append(FixChange(path, f"mode {mode:04o} -> {mode | 0o060:04o}"))
    return changes


def membership_note(group: str, who: Identity) -> str | None:
    """A sentence when `who` is not in `group` (so the fix does not help them yet), else None."""
    if who.is_root:
        return None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        return None
    if gid in who.gids:
        return None
    return (
        f"{who.name} is not in group {group}: sudo usermod -aG {group} {who.name} "
        "(then log in again; a running session keeps its old groups)"
    )


# ---- persistence ---------------------------------------------------------------------------------------------
def unit_text(group: str) -> str:
    """The systemd unit re-applying the permissions after VMware's network service starts.

    Rendered by `labctl.render.lab.vmnet_unit` (the render engineer's `host/vmnet-permissions.service.j2`, the
    same file `labctl render` writes), after checking the group name — it ends up on an ExecStart line.
    """
    if not _GROUP_RE.match(group):
        raise UsageError(f"{group!r} is not a valid group name")
    try:
        from labctl.render.lab import vmnet_unit
    except ImportError:  # render without its lab module (older checkout): the same text, without Jinja2
        return builtin_unit_text(group)
    return vmnet_unit(group)


def builtin_unit_text(group: str) -> str:
    """The unit text of `templates/host/vmnet-permissions.service.j2`, kept equal to it by a test."""
    return (
        f"# labctl: let group {group} open /dev/vmnet* so nested ESX may use promiscuous mode\n"
        '# ("... attempted to enable promiscuous mode ... This is not allowed for security reasons").\n'
        "# VMware's network service recreates the nodes root:root 0600 on every start, and udev rules do not fire for\n"
        "# them, so this unit re-applies group and mode after the service starts (and after each restart).\n"
        f"# Install: labctl vmnet fix --group {group} --persist\n"
        "[Unit]\n"
        f"Description=labctl: group {group} read/write on /dev/vmnet* (promiscuous mode for nested ESX)\n"
        "After=vmware.service vmware-networks.service\n"
        "PartOf=vmware-networks.service\n"
        "\n"
        "[Service]\n"
        "Type=oneshot\n"
        "RemainAfterExit=yes\n"
        f"ExecStart=/usr/bin/find /dev -maxdepth 1 -name vmnet* -type c -exec /bin/chgrp {group} {{}} + "
        "-exec /bin/chmod g+rw {} +\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target vmware.service vmware-networks.service\n"
    )


@dataclass
class Persisted:
    unit_path: Path
    changed: bool
    commands: list[list[str]]


def persist(
    group: str,
    *,
    unit_dir: Path = Path("/etc/systemd/system"),
    environ: Mapping[str, str] | None = None,
    euid: int | None = None,
    timeout: float = 60.0,
) -> Persisted:
    """Install the unit (only rewritten when different) and `systemctl daemon-reload` + `enable` it."""
    from labctl.workstation import proc, sysfiles
    from labctl.workstation.networking import find_tool

    euid = os.geteuid() if euid is None else euid
    if euid != 0:
        raise EnvironmentProblem(
            "installing a systemd unit needs root", hint=f"sudo labctl vmnet fix --group {group} --persist"
        )
    text = unit_text(group)
    path = Path(unit_dir) / UNIT_NAME
    try:
        changed = path.read_text() != text
    except FileNotFoundError:
        changed = True
    if changed:
        sysfiles.replace_file(path, text, backup=path.exists(), mode=0o644)
    systemctl = find_tool("systemctl", environ)
    if systemctl is None:
        raise EnvironmentProblem(
            f"wrote {path}, but systemctl was not found: this machine does not run systemd",
            hint="re-apply after each boot instead: sudo labctl vmnet fix --group " + group,
        )
    commands = []
    for args in (["daemon-reload"], ["enable", UNIT_NAME]):
        argv = [str(systemctl), *args]
        commands.append(argv)
        done = proc.run(argv, environ=environ, timeout=timeout)
        if done.exit_code != 0:
            why = "timed out" if done.timed_out else f"exit {done.exit_code}"
            raise LabctlError(
                f"systemctl {' '.join(args)} failed ({why}): {(done.stderr or done.stdout).strip()}"
            )
    return Persisted(path, changed, commands)
