"""Command registry of the simulated ESX/ESXi hosts (shared contract 4).

One module per area registers handlers by command path:

    from labctl.sim.commands import command, Invocation, Result, esx_at_least

    @command("esxcli", "storage", "nfs", "list", when=esx_at_least("esxi", 5, 0))
    def nfs_list(inv: Invocation) -> Result:
        rows = [...]
        return Result(0, inv.table(["Volume Name", "Host", ...], rows, struct="NasVolume"))

- The path is the command name followed by sub-words. For `esxcli`, the dispatcher in `esxcli.py` strips global
  options (`--formatter=csv|keyvalue`, `--debug`) and finds the longest registered path; an unknown namespace gives
  esxcli's own error. Other commands match the longest registered prefix of their argv (`vim-cmd hostsvc/net/refresh`).
- `when(state) -> bool` says whether the command exists on that host (flavour/version). A command that does not
  exist answers `sh: NAME: not found`, exit 127, exactly like an unknown one.
- A handler gets an `Invocation`: `argv` (the whole expanded argv), `args` (what follows the path), `state`
  (the `HostState`, mutate it in place; the host saves it after the command), `stdin` (`.read() -> bytes`,
  `inv.text_stdin() -> str`), `fs` (the host's filesystem, `labctl.sim.fs.SimFS`), `host` (services:
  `network_changed(bounced=...)` after changing interfaces, `reboot()`, `auto_backup()`, `lock`, `log()`), `job`
  (`sleep(seconds) -> bool`, False when a kill interrupted it), `formatter` (esxcli's --formatter or None), `env`
  and `cwd` (the shell's variables and directory), `io` (the shell's fds, for handlers that stream: `cat`, `scp`).
- State for features of other areas goes into `state.extra` (e.g. `extra["maintenance_mode"]`) or the typed
  fields (`nfs`, `vibs`, `acceptance_level`); the host saves the whole state after every command.
- It returns `Result(code, out, err)` (a plain `(code, out, err)` tuple is accepted); out/err are str or bytes.
- Handlers run with the host lock held unless registered with `lock=False` (e.g. `sleep`), after the configured
  per-command latency has passed. Raise `UsageFailure(code, err)` for a usage error.
- Nothing pretends to succeed: an option or form a handler does not model must fail loudly
  (`Result(1, "", "sim: ... is not modelled\\n")`), never print success.

Helpers for esxcli output: `inv.table(columns, rows, struct=...)` and `inv.records(records, struct=...)` format
per `inv.formatter` (default tables: two-space separated columns sized to content with a dashed rule, booleans and
numbers right-aligned; csv: header names without spaces, sorted, each line ending with a comma; keyvalue:
`Struct.Field.type=value`). Option parsing: `parse_options(args, spec)`.

Modules: files.py (shell utilities, scp), system.py, network.py, esxcli.py (dispatcher + formatting, localcli);
storage.py (vSphere engineer); software.py (VIB engineer). `load_all()` imports whichever exist.
"""

from __future__ import annotations

import importlib
import posixpath
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, NamedTuple, Protocol

if TYPE_CHECKING:
    from labctl.sim.fs import SimFS
    from labctl.sim.state import HostState

MODULES = ("files", "system", "network", "esxcli", "storage", "software", "guest", "identity")
BIN_DIRS = ("/bin", "/sbin", "/usr/bin", "/usr/sbin", "/usr/lib/vmware/bin", "/opt/vmware/bin",
            "/usr/lib/vmware/openssh/bin")


class Result(NamedTuple):
    code: int
    out: str | bytes = ""
    err: str | bytes = ""


class UsageFailure(Exception):
    def __init__(self, code: int, err: str):
        super().__init__(err)
        self.code = code
        self.err = err if err.endswith("\n") or not err else err + "\n"


class Stdin(Protocol):
    def read(self, n: int = -1) -> bytes: ...


class HostServices(Protocol):
    def network_changed(self, bounced: frozenset[str] = ...) -> None: ...
    def reboot(self) -> None: ...
    def auto_backup(self) -> None: ...
    def log(self, msg: str) -> None: ...


class JobControl(Protocol):
    def sleep(self, seconds: float) -> bool: ...


@dataclass
class Invocation:
    argv: list[str]
    args: list[str]
    path: tuple[str, ...]
    state: "HostState"
    stdin: Stdin
    fs: "SimFS"
    host: HostServices | Any = None  # labctl.sim.host.SimHost when run by a host
    job: JobControl | Any = None  # labctl.sim.shell.Job
    formatter: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    cwd: str = "/"
    io: Any = None  # the shell's IO (fds 0/1/2) for handlers that stream (cat)

    def text_stdin(self) -> str:
        return self.stdin.read().decode("utf-8", "surrogateescape")

    def table(self, columns: list[str], rows: list[list[Any]], *, struct: str = "Item") -> str:
        from labctl.sim.commands.esxcli import format_table

        return format_table(columns, rows, self.formatter, struct)

    def records(self, records: list[tuple[str | None, list[tuple[str, Any]]]], *, struct: str = "Item") -> str:
        from labctl.sim.commands.esxcli import format_records

        return format_records(records, self.formatter, struct)


Handler = Callable[[Invocation], "Result | tuple[int, str | bytes, str | bytes]"]


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]
    handler: Handler
    when: Callable[["HostState"], bool] | None = None
    lock: bool = True

    def available(self, state: "HostState") -> bool:
        return self.when is None or bool(self.when(state))


REGISTRY: dict[tuple[str, ...], Command] = {}


def command(*path: str, when: Callable[["HostState"], bool] | None = None, lock: bool = True):
    """Register a handler under `path` (decorator). Re-registering a path replaces it (later module wins)."""
    if not path:
        raise ValueError("a command path needs at least the command name")

    def deco(fn: Handler) -> Handler:
        REGISTRY[tuple(path)] = Command(tuple(path), fn, when, lock)
        return fn

    return deco


# ---- availability predicates


def flavor_is(*flavors: str) -> Callable[["HostState"], bool]:
    return lambda st: st.flavor in flavors


def esx_at_least(flavor: str | tuple[str, ...], major: int, minor: int = 0) -> Callable[["HostState"], bool]:
    flavors = (flavor,) if isinstance(flavor, str) else flavor
    return lambda st: st.flavor in flavors and st.release >= (major, minor)


def esx_below(flavor: str | tuple[str, ...], major: int, minor: int = 0) -> Callable[["HostState"], bool]:
    flavors = (flavor,) if isinstance(flavor, str) else flavor
    return lambda st: st.flavor in flavors and st.release < (major, minor)


def not_linux(st: "HostState") -> bool:
    return st.flavor != "linux"


# ---- lookup

_loaded = False


def load_all() -> None:
    """Import every handler module present (storage/software belong to other engineers and may be absent)."""
    global _loaded
    if _loaded:
        return
    for name in MODULES:
        try:
            importlib.import_module(f"labctl.sim.commands.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"labctl.sim.commands.{name}":
                raise
    _loaded = True


def command_name(word: str) -> str | None:
    """`/sbin/auto-backup.sh` -> `auto-backup.sh`; a path outside the bin dirs is not a known command."""
    if "/" not in word:
        return word
    d, base = posixpath.split(posixpath.normpath(word))
    return base if d in BIN_DIRS else None


def lookup(argv: list[str], state: "HostState") -> tuple[Command, int] | None:
    """The available command with the longest registered prefix of argv, and how many words it used."""
    load_all()
    if not argv:
        return None
    name = command_name(argv[0])
    if name is None:
        return None
    words = [name, *argv[1:]]
    for n in range(len(words), 0, -1):
        cmd = REGISTRY.get(tuple(words[:n]))
        if cmd is not None and cmd.available(state):
            return cmd, n
    return None


def is_available(path: tuple[str, ...], state: "HostState") -> bool:
    load_all()
    cmd = REGISTRY.get(path)
    return cmd is not None and cmd.available(state)


def parse_options(args: list[str], spec: dict[str, tuple[str | None, bool]]) -> tuple[dict[str, Any], list[str]]:
    """Parse `-i vmk0`, `--interface-name=vmk0`, `--interface-name vmk0`, `-e`-style flags.

    `spec` maps a long name to (short letter or None, takes_value). Returns ({long: value or True}, positional).
    Raises UsageFailure(1, ...) for an unknown option or a missing value, in esxcli's words.
    """
    by_short = {s: long for long, (s, _) in spec.items() if s}
    opts: dict[str, Any] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        long = None
        value: str | None = None
        if a.startswith("--") and len(a) > 2:
            name, eq, v = a[2:].partition("=")
            long = name
            value = v if eq else None
        elif a.startswith("-") and len(a) == 2 and a != "--":
            long = by_short.get(a[1])
            if long is None:
                raise UsageFailure(1, f"Error: Invalid option {a}")
        elif a.startswith("-") and len(a) > 2 and a[1] in by_short and spec[by_short[a[1]]][1]:
            long, value = by_short[a[1]], a[2:]
        else:
            rest.append(a)
            i += 1
            continue
        if long not in spec:
            raise UsageFailure(1, f"Error: Invalid option --{long}")
        takes = spec[long][1]
        if takes:
            if value is None:
                if i + 1 >= len(args):
                    raise UsageFailure(1, f"Error: Missing value for option --{long}")
                value = args[i + 1]
                i += 1
            opts[long] = value
        else:
            opts[long] = True if value is None else value
        i += 1
    return opts, rest
