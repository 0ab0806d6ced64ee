"""SSH connections to lab hosts — the only paramiko importer in labctl outside labctl/sim.

- One connection per host, opened on first use and reused for every command of a labctl run (`LabConnections`).
- Hosts in parallel through a bounded thread pool (`LabConnections.run_all`); several commands on one host run
  concurrently on separate channels of its one connection (`Connection.run_many`).
- Strict host keys against a lab-local known_hosts (`<vm_dir>/.labctl/known_hosts`, or the sim dir's): an unknown
  key is refused unless `trust_new_hosts` pins it, a changed key is refused loudly with the command that forgets it.
  Keys are pinned under the address the host is dialled at (`Route.pin`): with a simulated lab the lab address,
  not the loopback port the connection goes to.
- Auth: ssh-agent, key files (topology, ~/.ssh/config, the sim's identity), a password from `password_env` or an
  interactive prompt (TTY only); paramiko falls back from password to keyboard-interactive (ESXi 5+ offers only
  publickey + keyboard-interactive).
- Reach: the target's address (access_ip, else management ip), through a ProxyJump host via a direct-tcpip channel
  (`sock=`); with a simulated lab every address is mapped through its EndpointMap and an unmapped address is an
  error, never dialled.
- Retries only for transient connect errors (refused, reset, timeout, no banner); never for auth or host keys.
- Uploads by SFTP, falling back to streaming into `cat > path` when the host has no SFTP subsystem.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from labctl.errors import LabctlError, UsageError
from labctl.remote.command import Argv, sh, write_stdin_to
from labctl.remote.hosts import HostTarget, JumpSpec
from labctl.remote.known_hosts import KEY_ALGORITHMS, KnownHosts, entry_name, fingerprint, forget_key_command
from labctl.remote.result import (
    AuthFailed,
    CommandTimeout,
    ConnectionDropped,
    HostKeyMismatch,
    HostKeyUnknown,
    HostUnreachable,
    Result,
)

T = TypeVar("T")

_CHUNK = 32 * 1024


class Endpoints(Protocol):
    """What the SSH layer needs from a simulated lab's EndpointMap (labctl.sim.endpoints)."""

    def resolve(self, address: str) -> tuple[str, int]: ...


@dataclass
class ConnectSettings:
    """Everything about how to connect that is not per host."""

    known_hosts: Path
    trust_new_hosts: bool = False
    endpoints: Endpoints | None = None  # a simulated lab: map every address, dial nothing else
    identity_files: tuple[Path, ...] = ()  # tried after the host's own key_file (e.g. the sim's client key)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    prompt: Callable[[str], str | None] | None = None  # asks for a password (only set when stdin is a TTY)
    ssh_config: Path | None = None  # ~/.ssh/config for real labs; None with --sim
    connect_timeout: float = 10.0
    command_timeout: float = 300.0
    connect_attempts: int = 3
    retry_delay: float = 0.5
    cache: SessionCache = field(default_factory=lambda: SessionCache(), repr=False, compare=False)


@dataclass(frozen=True)
class Route:
    """Where a host is actually dialled (`host`, `port`: where the TCP connection goes), and the name its key is
    pinned under (`pin`). For a real lab they agree (the address after ~/.ssh/config's HostName and Port, as OpenSSH
    pins); with a simulated lab the connection goes to a loopback port and the key is pinned under the lab address
    the host is dialled at, like OpenSSH's HostKeyAlias."""

    host: str
    port: int
    user: str
    key_files: tuple[str, ...]
    jump: JumpSpec | None
    jump_route: Route | None = None
    pin: str = ""  # the known_hosts name; empty: entry_name(host, port)

    @property
    def known_hosts_name(self) -> str:
        return self.pin or entry_name(self.host, self.port)


# ---------------------------------------------------------------------------------------------------------------
# one host


class Connection:
    """A lazily opened SSH connection to one host, safe to share between threads (commands use own channels)."""

    def __init__(self, target: HostTarget, settings: ConnectSettings, jumps: JumpClients | None = None):
        self.target = target
        self.settings = settings
        self._jumps = jumps or JumpClients()
        self._own_jumps = jumps is None
        self._lock = threading.Lock()
        self._client: Any = None

    # -- routing ---------------------------------------------------------------------------------------------
    def route(self) -> Route:
        t, s = self.target, self.settings
        key_files = [t.key_file] if t.key_file else []
        user, port, address, jump = t.user, t.port, t.address, t.jump
        if s.endpoints is None and s.ssh_config is not None and s.ssh_config.is_file():
            cfg = _ssh_config_lookup(s.ssh_config, t.address)
            address = cfg.get("hostname", address)
            if "user" in cfg and user == "root":
                user = cfg["user"]
            if "port" in cfg and port == 22:
                port = int(cfg["port"])
            key_files += [os.path.expanduser(p) for p in cfg.get("identityfile", [])]
            if jump is None and cfg.get("proxyjump") and cfg["proxyjump"].lower() != "none":
                jump = JumpSpec.parse(cfg["proxyjump"].split(",")[0])
        key_files += [str(p) for p in s.identity_files]
        pin = entry_name(address, port)  # the lab address it is dialled at
        jump_route = None
        if jump is not None:
            jaddr, jport = jump.host, jump.port
            jpin = entry_name(jaddr, jport)
            if s.endpoints is not None:
                jaddr, jport = s.endpoints.resolve(jump.host)
            jump_route = Route(host=jaddr, port=jport, user=jump.user or user, key_files=tuple(key_files),
                               jump=None, pin=jpin)
        if s.endpoints is not None and jump is None:
            address, port = s.endpoints.resolve(address)  # raises for anything not in the simulated lab
        elif s.endpoints is not None:
            s.endpoints.resolve(address)  # behind the jump host the lab address is forwarded as it is; still checked
        return Route(host=address, port=port, user=user, key_files=tuple(dict.fromkeys(key_files)), jump=jump,
                     jump_route=jump_route, pin=pin)

    # -- connect ---------------------------------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        c = self._client
        return c is not None and c.get_transport() is not None and c.get_transport().is_active()

    def client(self):
        with self._lock:
            if not self.connected:
                self._connect_with_retries()
            return self._client

    def _connect_with_retries(self) -> None:
        attempts = max(1, self.settings.connect_attempts)
        last: Exception | None = None
        for i in range(attempts):
            try:
                self._connect_once()
                return
            except _Transient as e:
                last = e.__cause__ or e
                if i + 1 < attempts:
                    time.sleep(self.settings.retry_delay * (2**i))
        route = self.route()
        raise HostUnreachable(
            self.target.name,
            f"cannot connect to {self.dialled(route)} after {attempts} attempt(s): {describe_connect_error(last)}",
            hint=self._unreachable_hint(),
        )

    def dialled(self, route: Route | None = None) -> str:
        """What labctl dials for this host, in the user's terms: the lab address and port, with the loopback port a
        simulated lab maps it to, and the jump host in between."""
        route = route or self.route()
        t = self.target
        text = f"{route.user}@{t.address}:{t.port}"
        if self.settings.endpoints is not None and route.jump_route is None:
            text += f" (simulated lab: {route.host}:{route.port})"
        elif (route.host, route.port) != (t.address, t.port):
            text += f" (as {route.host}:{route.port}, from ~/.ssh/config)"
        if route.jump is not None:
            text += f" via jump host {route.jump}"
        return text

    def _unreachable_hint(self) -> str:
        if self.settings.endpoints is not None:
            return "is the simulated host up? `labctl sim status FILE` (a `down` fault, or the lab is stopped)"
        return (f"is {self.target.name} powered on, with its SSH service enabled, and {self.target.address} reachable "
                "from this machine? (`labctl doctor FILE`; access_ip or ssh.jump when it is not)")

    def _connect_once(self) -> None:
        self.close()
        route = self.route()
        sock = None
        if route.jump_route is not None:
            jr = route.jump_route
            jump_client = self._jumps.get(jr, lambda: self._open_client(jr, None, label=f"jump host {route.jump}"))
            try:
                sock = jump_client.get_transport().open_channel(
                    "direct-tcpip", (route.host, route.port), ("127.0.0.1", 0),
                    timeout=self.settings.connect_timeout,
                )
            except Exception as e:  # noqa: BLE001 - a refused forward is transient (target still booting)
                raise _Transient() from e
        self._client = self._open_client(route, sock, label=None)
        raw = self._client.get_transport().sock
        if isinstance(raw, socket.socket):  # small requests and replies: no Nagle delay (as OpenSSH does)
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _open_client(self, route: Route, sock, *, label: str | None):
        import paramiko

        _quiet_paramiko()
        s = self.settings
        who = self.target.name + (f" ({label})" if label else "")
        client = paramiko.SSHClient()
        # The client's own key store stays empty, so paramiko hands every host key to _Policy, which checks it
        # against the lab-local known_hosts (parsed once per command; ~/.ssh/known_hosts is never consulted).
        name = route.known_hosts_name
        pinned = s.cache.known_hosts(s.known_hosts).lookup(name)
        client.set_missing_host_key_policy(_Policy(s, who, name, pinned))
        password = self._password()
        keys = s.cache.private_keys(route.key_files)  # loaded by us: paramiko's own loop hides an auth failure
        kwargs: dict[str, Any] = dict(                # behind a "wrong key type" error from its last attempt
            hostname=route.host,
            port=route.port,
            username=route.user,
            pkey=keys[0][1] if keys else None,
            key_filename=[path for path, _ in keys[1:]] or None,
            allow_agent=bool(s.environ.get("SSH_AUTH_SOCK")),
            look_for_keys=False,
            timeout=s.connect_timeout,
            banner_timeout=s.connect_timeout,
            auth_timeout=s.connect_timeout,
            channel_timeout=s.connect_timeout,
            sock=sock,
            disabled_algorithms=_only_pinned_key_types(pinned),
        )
        if password is None and not keys and not kwargs["allow_agent"] and s.prompt is not None:
            password = s.prompt(f"password for {route.user}@{self.target.name}: ")  # nothing else to try
        try:
            if password is None and not keys and not kwargs["allow_agent"]:
                raise paramiko.AuthenticationException("no key, agent or password to offer")
            try:
                client.connect(password=password, **kwargs)
            except paramiko.AuthenticationException:
                asked = None
                if password is None and s.prompt is not None:
                    asked = s.prompt(f"password for {route.user}@{self.target.name}: ")
                if not asked:
                    raise
                client.connect(password=asked, **kwargs)
        except LabctlError:
            client.close()
            raise
        except paramiko.AuthenticationException:
            client.close()
            raise self._auth_failed(who, route, keys=[path for path, _ in keys], agent=kwargs["allow_agent"],
                                    password=password is not None) from None
        except (OSError, EOFError) as e:  # refused, reset, timed out: the host may be (re)starting
            client.close()
            raise _Transient() from e
        except paramiko.SSHException as e:
            client.close()
            if any(t in str(e) for t in _TRANSIENT_SSH):
                raise _Transient() from e
            raise HostUnreachable(who, f"SSH with {route.host}:{route.port} failed: {e}",
                                  hint="an SSH server labctl cannot talk to (algorithms, protocol)") from None
        return client

    def _auth_failed(self, who: str, route: Route, *, keys: list[str], agent: bool, password: bool) -> AuthFailed:
        """The refusal, with exactly what was offered (a variable only when it was set) and what to set."""
        var = self.target.password_env
        tried = [f"key {k}" for k in keys] + (["ssh-agent's keys"] if agent else [])
        if password:
            tried.append(f"the password from ${var}" if var and self.settings.environ.get(var) else "a typed password")
        offered = ", ".join(tried) if tried else "nothing (no key, no agent, no password)"
        msg = f"authentication failed at {self.dialled(route)}; offered {offered}"
        if var and not self.settings.environ.get(var):
            msg += f" (${var} is not set)"
        if var and self.settings.environ.get(var):
            hint = f"check that ${var} holds {route.user}'s password on {self.target.name}"
        elif var:
            hint = f"export {var}='…' ({route.user}'s password on {self.target.name}; ssh.password_env names it)"
        else:
            hint = "set ssh.password_env to a variable holding the password, or ssh.key_file to a key the host accepts"
        if self.settings.endpoints is not None:
            hint += "; a simulated host refuses logins under a --refuse-auth fault (labctl sim fault FILE HOST --clear)"
        return AuthFailed(who, msg, hint=hint)

    def _password(self) -> str | None:
        env = self.target.password_env
        return self.settings.environ.get(env) if env else None

    def close(self) -> None:
        _close_quietly(self._client)
        self._client = None
        if self._own_jumps:
            self._jumps.close()

    def drop(self) -> None:
        """Forget the connection (e.g. the host is rebooting); the next command reconnects."""
        with self._lock:
            self.close()

    # -- commands ---------------------------------------------------------------------------------------------
    def run(self, command: Argv | str, *, stdin: bytes | str | None = None, timeout: float | None = None) -> Result:
        """Run one command; returns its Result (any exit status). Raises ConnectionDropped / CommandTimeout /
        HostUnreachable."""
        return self.run_many([command], stdin=[stdin], timeout=timeout)[0]

    def run_many(self, commands: Sequence[Argv | str], *, stdin: Sequence[bytes | str | None] | None = None,
                 timeout: float | None = None) -> list[Result]:
        """Run several commands concurrently, each on its own channel of this one connection."""
        cmds = [sh(c) for c in commands]
        stdins = list(stdin) if stdin is not None else [None] * len(cmds)
        client = self.client()
        transport = client.get_transport()
        deadline = time.monotonic() + (timeout or self.settings.command_timeout)
        channels = []
        try:
            for cmd, data in zip(cmds, stdins):
                chan = self._exec(transport, cmd)
                channels.append(chan)
                if data is not None:
                    try:
                        chan.sendall(data.encode() if isinstance(data, str) else data)
                        chan.shutdown_write()
                    except (OSError, EOFError, _ssh_exception()) as e:
                        self.drop()
                        raise ConnectionDropped(self.target.name, f"the connection dropped ({describe_connect_error(e)})",
                                                command=cmd) from None
            return [self._collect(chan, cmd, deadline) for chan, cmd in zip(channels, cmds)]
        finally:
            for chan in channels:
                _close_quietly(chan)

    def _exec(self, transport, cmd: str):
        import paramiko

        try:
            chan = transport.open_session(timeout=self.settings.connect_timeout)
            chan.exec_command(cmd)
            return chan
        except (paramiko.SSHException, OSError, EOFError) as e:
            self.drop()
            raise ConnectionDropped(self.target.name, f"the connection dropped ({describe_connect_error(e)})", command=cmd) from None

    def _collect(self, chan, cmd: str, deadline: float) -> Result:
        out, err = bytearray(), bytearray()
        try:
            for reader, buf in ((chan.recv, out), (chan.recv_stderr, err)):
                while True:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise socket.timeout()
                    chan.settimeout(remaining)
                    data = reader(_CHUNK)
                    if not data:
                        break
                    buf += data
            remaining = max(0.0, deadline - time.monotonic())
            if not chan.status_event.wait(remaining):
                raise socket.timeout()
        except (TimeoutError, socket.timeout):
            raise CommandTimeout(self.target.name, "timed out", command=cmd) from None
        except (OSError, EOFError, _ssh_exception()) as e:  # the transport died while we read
            self.drop()
            raise ConnectionDropped(self.target.name, f"the connection dropped ({describe_connect_error(e)})", command=cmd) from None
        status = chan.recv_exit_status()
        if status == -1:  # the channel closed without an exit status: the session went away
            self.drop()
            raise ConnectionDropped(self.target.name, "the connection dropped before the command finished",
                                    command=cmd)
        return Result(self.target.name, cmd, status, out.decode("utf-8", "replace"), err.decode("utf-8", "replace"))

    # -- files ------------------------------------------------------------------------------------------------
    def upload(self, local_path: str | os.PathLike[str], remote_path: str) -> str:
        """Copy a local file to the host; returns "sftp" or "cat" (the method used)."""
        import paramiko

        client = self.client()
        try:
            sftp = client.open_sftp()
        except (paramiko.SSHException, EOFError, OSError):
            sftp = None
        if sftp is not None:
            try:
                sftp.put(os.fspath(local_path), remote_path)
                return "sftp"
            except OSError as e:
                raise LabctlError(f"{self.target.name}: upload to {remote_path} failed: {e}") from None
            finally:
                _close_quietly(sftp)
        cmd = write_stdin_to(remote_path)
        transport = self.client().get_transport()
        chan = self._exec(transport, cmd)
        try:
            with open(local_path, "rb") as f:
                while block := f.read(_CHUNK):
                    chan.sendall(block)
            chan.shutdown_write()
            result = self._collect(chan, cmd, time.monotonic() + self.settings.command_timeout)
        except (OSError, EOFError) as e:
            self.drop()
            raise ConnectionDropped(self.target.name, f"the connection dropped during the upload ({describe_connect_error(e)})",
                                    command=cmd) from None
        finally:
            _close_quietly(chan)
        result.check()
        return "cat"

    # -- reboots and dropped sessions -------------------------------------------------------------------------
    def wait_until_back(self, deadline: float, *, probe: str = "true", interval: float = 0.2,
                        first: bool = False) -> None:
        """Until `deadline` (time.monotonic): use the open connection if it still answers `probe`, else reconnect
        (one attempt at a time) — for hosts that bounce their management interface or reboot, or (`first`) that are
        still booting. A refused login or a host-key problem is final at once: waiting cannot change it."""
        last: Exception | None = None
        start = time.monotonic()
        while True:
            try:
                with self._lock:
                    if not self.connected:
                        self._connect_once()
                if self.run(probe, timeout=max(1.0, deadline - time.monotonic())).ok:
                    return
            except (AuthFailed, HostKeyUnknown, HostKeyMismatch):
                self.drop()
                raise
            except (_Transient, HostUnreachable, ConnectionDropped, CommandTimeout) as e:
                last = e
                self.drop()
            if time.monotonic() + interval >= deadline:
                break
            time.sleep(interval)
        self.drop()
        waited = f"{time.monotonic() - start:.0f} s"
        if first:
            raise HostUnreachable(self.target.name, f"no SSH answer from {self.dialled()} within {waited} "
                                                    f"({describe_connect_error(last)})", hint=self._unreachable_hint())
        raise HostUnreachable(self.target.name, f"did not come back within {waited} at {self.dialled()} "
                                                f"({describe_connect_error(last)})",
                              hint="check the host's console; labctl left its rollback job in charge")

    def wait_for_drop(self, timeout: float, *, interval: float = 0.05) -> bool:
        """Wait until the host closes this connection (a reboot); True when it did within `timeout`."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.connected:
                self.drop()
                return True
            time.sleep(interval)
        return False


class JumpClients:
    """Jump-host connections shared by every host behind them (one connection per jump host, reused)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[Route, Any] = {}

    def get(self, route: Route, open_client: Callable[[], Any]) -> Any:
        with self._lock:
            c = self._clients.get(route)
            if c is None or c.get_transport() is None or not c.get_transport().is_active():
                _close_quietly(c)
                c = self._clients[route] = open_client()
            return c

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            _close_quietly(c)


def _ssh_exception() -> type[Exception]:
    import paramiko

    return paramiko.SSHException


def _close_quietly(client: Any) -> None:
    if client is not None:
        try:
            client.close()
        except Exception:  # noqa: BLE001, S110 - closing a dead connection
            pass


# paramiko SSHException texts that mean "the other end went away or is not ready yet" (worth another attempt)
_TRANSIENT_SSH = ("Error reading SSH protocol banner", "Connection reset", "Timeout opening channel", "No existing session",
                  "Unable to open channel", "Channel closed")


class _Transient(Exception):
    """A connect error worth retrying; the real one is __cause__."""


def _policy_class():
    import paramiko

    class Policy(paramiko.MissingHostKeyPolicy):
        """Strict: accept only a pinned key; pin an unknown one only when asked; refuse a changed one loudly."""

        def __init__(self, settings: ConnectSettings, who: str, name: str, pinned: list[tuple[str, str]]):
            self.settings, self.who, self.name, self.pinned = settings, who, name, pinned

        def missing_host_key(self, client, hostname, key):
            s, hostname = self.settings, self.name  # the name it is pinned under, not the loopback port it was dialled at
            offered = (key.get_name(), key.get_base64())
            if offered in self.pinned:
                return
            if self.pinned:
                expected = ", ".join(f"{t} {fingerprint(b)}" for t, b in self.pinned)
                raise HostKeyMismatch(
                    self.who,
                    f"HOST KEY MISMATCH for {hostname}: {s.known_hosts} pins {expected}, the host now presents "
                    f"{offered[0]} {fingerprint(offered[1])}. If the host was re-installed or re-cloned this is "
                    "expected; otherwise someone may be intercepting the connection.",
                    hint=f"forget the old key with: {forget_key_command(s.known_hosts, hostname)} "
                    "and re-run with --trust-new-hosts",
                )
            if not s.trust_new_hosts:
                raise HostKeyUnknown(
                    self.who,
                    f"unknown host key for {hostname} ({offered[0]} {fingerprint(offered[1])}); strict checking "
                    f"against {s.known_hosts}",
                    hint="if this is your freshly installed host, re-run with --trust-new-hosts to pin its key",
                )
            s.cache.known_hosts(s.known_hosts).add(hostname, *offered)

    return Policy


def _Policy(settings: ConnectSettings, who: str, name: str, pinned: list[tuple[str, str]]):  # noqa: N802 - lazy
    return _policy_class()(settings, who, name, pinned)


def _only_pinned_key_types(pinned: list[tuple[str, str]]) -> dict[str, list[str]] | None:
    """Ask the server only for host key types we pinned (as paramiko does with a loaded known_hosts)."""
    if not pinned:
        return None
    import paramiko

    allowed = {a for t, _ in pinned for a in KEY_ALGORITHMS.get(t, (t,))}
    return {"keys": [a for a in paramiko.Transport._preferred_keys if a not in allowed]}


class SessionCache:
    """What every connection of one command shares: the parsed known_hosts, the loaded private keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._known: dict[Path, KnownHosts] = {}
        self._keys: dict[str, Any] = {}

    def known_hosts(self, path: Path) -> KnownHosts:
        with self._lock:
            kh = self._known.get(path)
            if kh is None:
                kh = self._known[path] = KnownHosts(path)
            return kh

    def private_keys(self, paths: Sequence[str]) -> list[tuple[str, Any]]:
        """(path, key) for the loadable private keys (any type); passphrase-protected ones are skipped."""
        with self._lock:
            for p in paths:
                if p not in self._keys:
                    self._keys[p] = _load_key(p)
            return [(p, self._keys[p]) for p in paths if self._keys[p] is not None]


def _load_key(path: str) -> Any:
    import paramiko

    if not os.path.isfile(path):
        return None
    try:
        return paramiko.PKey.from_path(path)
    except (paramiko.SSHException, OSError, ValueError):
        return None


def _quiet_paramiko() -> None:
    """paramiko logs a dropped socket at ERROR from its transport thread; labctl reports drops itself."""
    import logging

    log = logging.getLogger("paramiko")
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
        log.propagate = False


def _ssh_config_lookup(path: Path, address: str) -> dict:
    import paramiko

    try:
        return dict(paramiko.SSHConfig.from_path(str(path)).lookup(address))
    except Exception as e:  # noqa: BLE001 - a broken user config is a usage problem, not a crash
        raise UsageError(f"cannot read {path}: {e}") from None


def describe_connect_error(e: BaseException | None) -> str:
    """Why a connect failed, in plain words (no paramiko class names); also for `labctl sim exec`."""
    if e is None:
        return "no attempt finished"
    if isinstance(e, _Transient) and e.__cause__ is not None:
        e = e.__cause__
    if isinstance(e, HostUnreachable):
        return e.reason
    errors = getattr(e, "errors", None)  # paramiko's NoValidConnectionsError: {(addr, port): OSError}
    if isinstance(errors, dict) and errors:
        e = next(iter(errors.values()))
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, (socket.timeout, TimeoutError)):
        return "timed out (no answer: host down, or a firewall drops the packets)"
    if isinstance(e, ConnectionResetError):
        return "connection reset by the host"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror[:1].lower() + e.strerror[1:]
    if isinstance(e, EOFError):
        return "the host closed the connection during the SSH handshake"
    text = str(e) or type(e).__name__
    if "Error reading SSH protocol banner" in text:
        return "no SSH banner (the port answers, but not with SSH yet)"
    return text


# ---------------------------------------------------------------------------------------------------------------
# the lab


@dataclass(frozen=True)
class Outcome:
    """One host's result from `run_all`: a value, or the error that stopped it."""

    host: str
    value: Any = None
    error: LabctlError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class LabConnections:
    """The connections of one labctl command: one per host, reused, closed on exit (a context manager)."""

    def __init__(self, targets: Iterable[HostTarget], settings: ConnectSettings):
        self.targets = {t.name: t for t in targets}
        self.settings = settings
        self._conns: dict[str, Connection] = {}
        self._lock = threading.Lock()
        self.jumps = JumpClients()

    def __enter__(self) -> LabConnections:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def connection(self, host: str) -> Connection:
        with self._lock:
            conn = self._conns.get(host)
            if conn is None:
                if host not in self.targets:
                    raise UsageError(f"unknown host {host!r}")
                conn = self._conns[host] = Connection(self.targets[host], self.settings, self.jumps)
            return conn

    def run(self, host: str, command: Argv | str, **kw) -> Result:
        return self.connection(host).run(command, **kw)

    def upload(self, host: str, local_path: str | os.PathLike[str], remote_path: str) -> str:
        return self.connection(host).upload(local_path, remote_path)

    def run_all(self, hosts: Iterable[str], fn: Callable[[Connection], T], *, max_workers: int = 32) -> list[Outcome]:
        """fn(connection) for every host, in parallel (bounded), results in the given host order.

        A LabctlError stops only its host (returned in its Outcome); any other exception is a bug and propagates.
        """
        names = list(hosts)

        def one(name: str) -> Outcome:
            try:
                return Outcome(name, value=fn(self.connection(name)))
            except LabctlError as e:
                return Outcome(name, error=e)

        if not names:
            return []
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(names))), thread_name_prefix="ssh") as pool:
            return list(pool.map(one, names))

    def close(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns.values()), {}
        for c in conns:
            c.close()
        self.jumps.close()
