"""The SSH face of a simulated host (paramiko server mode, loopback only).

- Auth like the real hosts (esx-hosts.md section 6): ESXi 5+ offers publickey + keyboard-interactive (no
  `password`), ESX classic and dropbear-era ESXi 4.x publickey + password. Root only. Keys are checked against the
  host's own authorized_keys file in its simulated filesystem; the password against the disk's root hash: the
  crypt hash an installer wrote (`$1$` MD5, `$6$` SHA-512, checked with labctl.render.cryptpw) or the salted
  scrypt hash `labctl sim up` stores.
- Host keys (RSA + ECDSA) are the disk's `/etc/ssh/ssh_host_rsa_key` and `/etc/ssh/ssh_host_ecdsa_key`, as sshd
  reads them; missing ones are generated at the first start and written to the disk, as sshd's first boot does
  (a clone, a copy of the disk, serves its source's keys). `<host dir>/keys/` mirrors them for the sim's
  known_hosts.
- exec requests run through the host's shell; `shell` gives a minimal interactive prompt; `sftp` exists where
  the host has it (ESXi 5+); a jump host (flavour linux) forwards `direct-tcpip` only to lab addresses in the
  sim's endpoint map (never to a real address).
- The listener closes while the host is down (reboot, `down` fault, management interface gone): clients see
  "connection refused", as on a rebooting host whose sshd is not up yet. In a lab (`segment=`) there is one
  listener per address the host has configured now (labctl.sim.segment: ARP, modelled).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import socket
import threading
from pathlib import Path
from typing import Any, Callable

from labctl.sim.host import Conn, Session, SimHost

KEY_FILES = {"ssh-rsa": "ssh_host_rsa_key", "ecdsa-sha2-nistp256": "ssh_host_ecdsa_key"}


# ---------------------------------------------------------------- passwords (never stored in clear)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=2 ** 14, r=8, p=1)
    return f"scrypt${salt.hex()}${digest.hex()}"


def check_password(stored: str, password: str) -> bool:
    if stored.startswith(("$1$", "$6$")):
        from labctl.render import cryptpw

        return cryptpw.verify(password, stored)
    try:
        kind, salt, digest = stored.split("$")
    except ValueError:
        return False
    if kind != "scrypt":
        return False
    got = hashlib.scrypt(password.encode(), salt=bytes.fromhex(salt), n=2 ** 14, r=8, p=1)
    return hmac.compare_digest(got.hex(), digest)


# ---------------------------------------------------------------- algorithms

# ESXi 8 runs sshd with the FIPS set (esx-hosts.md section 6): ecdh-sha2-nistp*, aes-ctr, hmac-sha2, rsa-sha2 (and
# its ECDSA host key). ESX classic and ESXi before 5.0 ran OpenSSH 4.x (or dropbear): SHA-1 key exchange, ssh-rsa
# host keys and signatures, hmac-sha1 — the simulator offers only those, so labctl's client is tested against what
# such hosts really speak (it is why labctl stays on paramiko 3.x, which still implements them). ESXi 5.x-7.x
# and the Linux jump host (a current OpenSSH) get paramiko's defaults.
FIPS = {
    "kex": {"ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521"},
    "ciphers": {"aes128-ctr", "aes192-ctr", "aes256-ctr"},
    "macs": {"hmac-sha2-256", "hmac-sha2-512", "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com"},
    "keys": {"rsa-sha2-256", "rsa-sha2-512", "ecdsa-sha2-nistp256"},
    "pubkeys": {"rsa-sha2-256", "rsa-sha2-512", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521"},
}


LEGACY = {
    # (OpenSSH 4.x also offered diffie-hellman-group-exchange-sha1; paramiko's server side needs a moduli file for it)
    "kex": {"diffie-hellman-group14-sha1", "diffie-hellman-group1-sha1"},
    "ciphers": {"aes128-ctr", "aes192-ctr", "aes256-ctr", "aes128-cbc", "aes256-cbc", "3des-cbc"},
    "macs": {"hmac-sha1", "hmac-md5"},
    "keys": {"ssh-rsa"},
    "pubkeys": {"ssh-rsa"},
}


def disabled_algorithms(st: Any) -> dict[str, list[str]]:
    """paramiko `disabled_algorithms` for this host's sshd (empty: paramiko's defaults)."""
    import paramiko

    if st.is_esxi and st.release >= (8, 0):
        allowed = FIPS
    elif st.flavor != "linux" and (not st.is_esxi or st.release < (5, 0)):
        allowed = LEGACY
    else:
        return {}
    T = paramiko.Transport
    offered = {"kex": T._preferred_kex, "ciphers": T._preferred_ciphers, "macs": T._preferred_macs,
               "keys": T._preferred_keys, "pubkeys": T._preferred_pubkeys}
    out = {kind: [a for a in algos if a not in allowed[kind]] for kind, algos in offered.items()}
    missing = [a for kind in ("kex", "keys") for a in allowed[kind] if a not in offered[kind]]
    if missing and allowed is LEGACY:
        raise RuntimeError(f"this paramiko ({paramiko.__version__}) lacks {', '.join(missing)}: the simulated "
                           "host cannot speak like a real ESX classic host (labctl needs paramiko < 4)")
    return out


# ---------------------------------------------------------------- the identification string

# What the real sshd of each era sends first (not paramiko's "SSH-2.0-paramiko_x.y"). ESX classic's service console
# is Red Hat based (3.5: RHEL 3, whose OpenSSH is 3.6.1p2; 4.x: RHEL 5.2, OpenSSH 4.3p2, which announces itself as
# "OpenSSH_4.3"); ESXi 4.x runs dropbear [L]; ESXi 5+ runs VMware's OpenSSH build, which drops the "pN" suffix: a
# captured ESXi 6.7 U3 host answers "SSH-2.0-OpenSSH_8.3" (docs/simulator.md, "Checked against real captures").
# Versions without a capture are the OpenSSH of that release's era [L].
BANNERS = (  # (flavor, first release it applies to, identification string), newest first per flavor
    ("esx", (4, 0), "SSH-2.0-OpenSSH_4.3"),
    ("esx", (3, 0), "SSH-2.0-OpenSSH_3.6.1p2"),
    ("esxi", (8, 0), "SSH-2.0-OpenSSH_9.3"),
    ("esxi", (7, 0), "SSH-2.0-OpenSSH_8.4"),
    ("esxi", (6, 7), "SSH-2.0-OpenSSH_8.3"),
    ("esxi", (6, 5), "SSH-2.0-OpenSSH_7.4"),
    ("esxi", (6, 0), "SSH-2.0-OpenSSH_6.6.1"),
    ("esxi", (5, 0), "SSH-2.0-OpenSSH_5.6"),
    ("esxi", (3, 0), "SSH-2.0-dropbear_0.52"),
    ("linux", (0, 0), "SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3"),
)


def ssh_banner(st: Any) -> str:
    """The identification string this host's sshd sends."""
    for flavor, since, banner in BANNERS:
        if st.flavor == flavor and st.release >= since:
            return banner
    return "SSH-2.0-OpenSSH_9.3"


# ---------------------------------------------------------------- host keys


def fingerprint(key: Any) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")


SSH_DIR = "/etc/ssh"
_KEYS_ON_DISK = "ssh_host_keys_on_disk"  # from now on a missing key file means "make a new one", as sshd does


def disk_host_keys(host: SimHost) -> dict[str, Any]:
    """{key type: paramiko PKey} from the host's disk (`/etc/ssh/ssh_host_*_key`); what is missing is generated
    (or, for a state made before keys lived on the disk, taken from `<host dir>/keys/`) and written to the disk."""
    import io

    import paramiko

    st = host.state
    keys: dict[str, Any] = {}
    changed = False
    kdir = Path(host.host_dir) / "keys" if host.host_dir is not None else None
    for ktype, fname in KEY_FILES.items():
        cls = paramiko.RSAKey if ktype == "ssh-rsa" else paramiko.ECDSAKey
        path = f"{SSH_DIR}/{fname}"
        text = st.files.get(path)
        key = None
        if text:
            try:
                key = cls.from_private_key(io.StringIO(text))
            except (paramiko.SSHException, ValueError) as e:
                host.log(f"sshd: could not load host key {path}: {e}")  # as sshd: that key is skipped
                continue
        if key is None and kdir is not None and (kdir / fname).is_file() and not st.extra.get(_KEYS_ON_DISK):
            key = cls.from_private_key_file(str(kdir / fname))  # once: a state from before keys lived on its disk
        if key is None:
            key = cls.generate(bits=2048) if ktype == "ssh-rsa" else cls.generate()
        if not text:
            buf = io.StringIO()
            key.write_private_key(buf)
            st.files[path] = buf.getvalue()
            st.files[path + ".pub"] = f"{key.get_name()} {key.get_base64()}\n"
            if st.persisted_etc is not None:  # saved with the first backup after sshd made them
                st.persisted_etc[path] = st.files[path]
                st.persisted_etc[path + ".pub"] = st.files[path + ".pub"]
            changed = True
        keys[ktype] = key
    if SSH_DIR not in st.dirs:
        st.dirs.append(SSH_DIR)
    if not st.extra.get(_KEYS_ON_DISK):
        st.extra[_KEYS_ON_DISK] = True
        changed = True
    if changed:
        host.save()
    if kdir is not None:
        _mirror_keys(kdir, keys)
    return keys


def _mirror_keys(kdir: Path, keys: dict[str, Any]) -> None:
    kdir.mkdir(parents=True, exist_ok=True)
    for ktype, key in keys.items():
        fname = KEY_FILES[ktype]
        pub = f"{key.get_name()} {key.get_base64()}\n"
        if (kdir / (fname + ".pub")).is_file() and (kdir / (fname + ".pub")).read_text() == pub:
            continue
        tmp = kdir / (fname + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            key.write_private_key(f)
        os.replace(tmp, kdir / fname)
        (kdir / (fname + ".pub")).write_text(pub)


def load_or_create_host_keys(host_dir: Path) -> dict[str, Any]:
    """{key type: paramiko PKey}; generated on first use, persisted 0600."""
    import paramiko

    kdir = Path(host_dir) / "keys"
    kdir.mkdir(parents=True, exist_ok=True)
    keys: dict[str, Any] = {}
    for ktype, fname in KEY_FILES.items():
        path = kdir / fname
        cls = paramiko.RSAKey if ktype == "ssh-rsa" else paramiko.ECDSAKey
        if path.exists():
            keys[ktype] = cls.from_private_key_file(str(path))
            continue
        key = cls.generate(bits=2048) if ktype == "ssh-rsa" else cls.generate()
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            key.write_private_key(f)
        os.replace(tmp, path)
        (kdir / (fname + ".pub")).write_text(f"{key.get_name()} {key.get_base64()}\n")
        keys[ktype] = key
    return keys


# ---------------------------------------------------------------- channels


class ChannelReader:
    def __init__(self, channel: Any):
        self.channel = channel
        self.eof = False

    def read(self, n: int = -1) -> bytes:
        if self.eof:
            return b""
        if n is None or n < 0:
            chunks = []
            while True:
                try:
                    data = self.channel.recv(1 << 16)
                except OSError:
                    data = b""
                if not data:
                    self.eof = True
                    return b"".join(chunks)
                chunks.append(data)
        try:
            data = self.channel.recv(n)
        except OSError:
            data = b""
        if not data:
            self.eof = True
        return data


def _server_interface_class():
    import paramiko

    class HostInterface(paramiko.ServerInterface):
        def __init__(self, server: "HostServer", conn_box: list[Conn | None]):
            self.server = server
            self.host = server.host
            self.conn_box = conn_box
            self.refused: bool | None = None
            self.forwards: dict[int, tuple[str, int]] = {}

        # ---- auth
        def _refuse(self) -> bool:
            if self.refused is None:
                self.host.reload_control()
                self.refused = self.host.faults.take("refuse_auth") is not None
            return self.refused

        def _result(self, ok: bool) -> int:
            if ok and not self._refuse():
                self.host.counters["auth_ok"] += 1
                return paramiko.AUTH_SUCCESSFUL
            self.host.counters["auth_failed"] += 1
            return paramiko.AUTH_FAILED

        def get_allowed_auths(self, username: str) -> str:
            return ",".join(self.host.state.auth_methods)

        def check_auth_none(self, username: str) -> int:
            return paramiko.AUTH_FAILED

        def _user_ok(self, username: str) -> bool:
            st = self.host.state
            if username == "root":
                return st.root_login_allowed
            return (st.flavor == "linux" and username in st.extra.get("users", []))

        def check_auth_publickey(self, username: str, key: Any) -> int:
            if not self._user_ok(username):
                return paramiko.AUTH_FAILED
            with self.host.lock:
                path = self.host.state.authorized_keys_path
                text = self.host.fs.read_text(path) if self.host.fs.is_file(path) else ""
            for line in text.splitlines():
                parts = line.split()
                for i in range(len(parts) - 1):
                    if parts[i] == key.get_name() and parts[i + 1] == key.get_base64():
                        return self._result(True)
            return paramiko.AUTH_FAILED

        def _password_ok(self, username: str, password: str) -> bool:
            stored = self.host.state.root_password_hash
            return self._user_ok(username) and bool(stored) and check_password(stored, password)

        def check_auth_password(self, username: str, password: str) -> int:
            if "password" not in self.host.state.auth_methods:
                return paramiko.AUTH_FAILED
            return self._result(self._password_ok(username, password))

        def check_auth_interactive(self, username: str, submethods: str) -> Any:
            if "keyboard-interactive" not in self.host.state.auth_methods:
                return paramiko.AUTH_FAILED
            self._ki_user = username
            return paramiko.InteractiveQuery("", "", ("Password: ", False))

        def check_auth_interactive_response(self, responses: list[str]) -> int:
            ok = len(responses) == 1 and self._password_ok(getattr(self, "_ki_user", ""), responses[0])
            return self._result(ok)

        # ---- channels
        def check_channel_request(self, kind: str, chanid: int) -> int:
            if kind == "session":
                return paramiko.OPEN_SUCCEEDED
            return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

        def check_channel_direct_tcpip_request(self, chanid: int, origin: Any, destination: Any) -> int:
            if self.host.state.flavor != "linux" or self.server.resolve is None:
                return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            target = self.server.resolve(destination[0], int(destination[1]))
            if target is None:
                return paramiko.OPEN_FAILED_CONNECT_FAILED
            self.forwards[chanid] = target
            return paramiko.OPEN_SUCCEEDED

        def check_channel_pty_request(self, *a: Any) -> bool:
            return True

        def check_channel_env_request(self, channel: Any, name: bytes, value: bytes) -> bool:
            return True

        def check_channel_exec_request(self, channel: Any, command: bytes) -> bool:
            conn = self.conn_box[0]
            text = command.decode("utf-8", "surrogateescape")
            threading.Thread(target=self.server.run_exec, args=(conn, channel, text), daemon=True,
                             name="sim-exec").start()
            return True

        def check_channel_shell_request(self, channel: Any) -> bool:
            conn = self.conn_box[0]
            threading.Thread(target=self.server.run_shell, args=(conn, channel), daemon=True,
                             name="sim-shell").start()
            return True

    return HostInterface


class HostServer:
    """Serves one SimHost on loopback; `resolve(addr, port)` maps lab addresses for a jump host.

    Alone (tests, `port=`): one listener on 127.0.0.1:port, open while the host is reachable at its SSH address.
    On a lab segment (`segment=`, labctl.sim.segment): one listener per address the host has configured now on an
    interface its sshd answers on, on that address's port — so an address reaches whichever host holds it, and
    `on_change()` hears when the set changes (hostd rewrites listen.json)."""

    def __init__(self, host: SimHost, *, bind: str = "127.0.0.1", port: int = 0,
                 resolve: Callable[[str, int], tuple[str, int] | None] | None = None,
                 segment: Any = None, on_change: Callable[[], None] | None = None):
        if bind not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("simulated hosts listen on loopback only")
        self.host = host
        self.bind = bind
        self.port = port
        self.resolve = resolve
        self.segment = segment
        self.on_change = on_change
        self._sock: socket.socket | None = None
        self._socks: dict[str, socket.socket] = {}  # segment mode: lab address -> its listening socket
        self._lock = threading.Lock()
        self.keys = disk_host_keys(host) if host.host_dir else _ephemeral_keys()
        self.fingerprints = {k: fingerprint(v) for k, v in self.keys.items()}
        host.listener = self
        self._stopped = False

    def reload_keys(self) -> None:
        """After a reboot: sshd starts again and reads the disk's host keys (they may have been replaced)."""
        if self.host.host_dir is not None:
            self.keys = disk_host_keys(self.host)
            self.fingerprints = {k: fingerprint(v) for k, v in self.keys.items()}

    # ---- listener
    def update(self) -> None:
        """Listen where the host answers now (called when its interfaces, power or faults changed)."""
        if self.segment is not None:
            self._sync()
        elif self.host.reachable():
            self.open()
        else:
            self.close()

    @property
    def addresses(self) -> dict[str, int]:
        """Segment mode: {lab address: port} this host listens on now."""
        with self._lock:
            return {a: s.getsockname()[1] for a, s in self._socks.items()}

    def _sync(self) -> None:
        host = self.host
        off = self._stopped or not host.up or host.faults.is_down() or not host.ssh_running()
        wanted = {} if off else host.ssh_addresses()
        changed = False
        with self._lock:
            for address in [a for a in self._socks if a not in wanted]:
                _close_listener(self._socks.pop(address))
                self.segment.release(address, host.state.name)
                changed = True
            for address in wanted:
                if address not in self._socks:
                    s = self.segment.bind(address, host.state.name, log=host.log)
                    self._socks[address] = s
                    threading.Thread(target=self._accept_loop, args=(s, address), daemon=True,
                                     name="sim-accept").start()
                    changed = True
            held = {a: s.getsockname()[1] for a, s in self._socks.items()}
            own = host.state.ssh_address
            self.port = held.get(own) or next(iter(held.values()), 0) or (self.segment.port(own) or 0)
        if changed and self.on_change is not None:
            self.on_change()

    def open(self) -> None:
        if self.segment is not None:
            self._sync()
            return
        with self._lock:
            if self._sock is not None or self._stopped:
                return
            fam = socket.AF_INET6 if ":" in self.bind else socket.AF_INET
            s = socket.socket(fam, socket.SOCK_STREAM)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((self.bind, self.port))
            s.listen(128)
            self.port = s.getsockname()[1]
            self._sock = s
            threading.Thread(target=self._accept_loop, args=(s, None), daemon=True, name="sim-accept").start()

    def close(self) -> None:
        with self._lock:
            s, self._sock = self._sock, None
            socks, self._socks = dict(self._socks), {}
        if s is not None:
            _close_listener(s)
        for address, sock in socks.items():
            _close_listener(sock)
            self.segment.release(address, self.host.state.name)
        if socks and self.on_change is not None:
            self.on_change()

    @property
    def listening(self) -> bool:
        return self._sock is not None or bool(self._socks)

    def start(self) -> "HostServer":
        if self.segment is not None:
            self._sync()
            return self
        self.open()
        if not self.host.reachable():
            self.close()
        return self

    def stop(self) -> None:
        self._stopped = True
        self.close()
        self.host.drop_all("host stopped")

    def _accept_loop(self, s: socket.socket, address: str | None) -> None:
        while True:
            try:
                c, _ = s.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(c, address), daemon=True, name="sim-conn").start()

    # ---- connections
    def _handle(self, sock: socket.socket, address: str | None = None) -> None:
        import paramiko

        host = self.host
        host.counters["tcp_accepts"] += 1
        if address is None:
            where = host.ssh_interface()
        else:  # the interface that has this address now (it may have moved since the connection was queued)
            iface = host.ssh_addresses().get(address)
            where = (iface, address) if iface else None
        if where is None or not host.up:
            sock.close()
            return
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # like sshd; avoids 40 ms Nagle stalls
        # OpenSSH 4.x and dropbear know nothing of the strict-kex extension (Terrapin, 2023): do not offer it
        legacy = host.state.flavor != "linux" and (not host.state.is_esxi or host.state.release < (5, 0))
        t = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms(host.state), strict_kex=not legacy)
        t.local_version = ssh_banner(host.state)
        for key in self.keys.values():
            t.add_server_key(key)
        if host.state.sftp:
            from labctl.sim.sftp import sftp_server_class, sftp_subsystem_class

            t.set_subsystem_handler("sftp", sftp_subsystem_class(), sftp_server_class(), host)
        conn = Conn(where[0], where[1], t.close)
        _track_replies(t, conn)
        box: list[Conn | None] = [conn]
        iface = _server_interface_class()(self, box)
        host.conns.add(conn)
        try:
            t.start_server(server=iface)
            host.counters["connections"] += 1  # SSH connections (key exchange done); banner probes do not count
            host.write_runtime()
            held: list[Any] = []  # paramiko closes a Channel when its last reference goes: keep accepted ones
            while t.is_active() and not conn.dropped:
                ch = t.accept(0.5)
                if ch is not None and ch.get_id() in iface.forwards:
                    target = iface.forwards.pop(ch.get_id())
                    threading.Thread(target=_pump, args=(ch, target), daemon=True, name="sim-fwd").start()
                elif ch is not None:
                    held.append(ch)  # until its exec request arrives (run_exec holds it from then on)
                held = [c for c in held if not c.closed]
        except (paramiko.SSHException, EOFError, OSError):
            pass
        finally:
            host.conns.discard(conn)
            t.close()

    def run_exec(self, conn: Conn, channel: Any, command: str) -> None:
        host = self.host
        session = Session(conn, channel.sendall, channel.sendall_stderr)
        conn.sessions.add(session)
        try:
            # The reply to the exec request must leave before anything that could close the channel.
            _reply_event(conn, channel.remote_chanid).wait(5.0)
            host.reload_control()
            rule = host.faults.take("drop", command)
            if rule is not None and rule.phase == "before":
                host.drop_conn(conn, "fault: drop before command")
                return
            code = host.exec_session(command, session, ChannelReader(channel))
            if code is not None:
                session.wait_released()
            if rule is not None:
                host.drop_conn(conn, "fault: drop after command")
                return
            if code is None or session.dropped:
                return
            try:
                channel.send_exit_status(code)
                channel.close()
            except (OSError, EOFError):
                pass
        finally:
            conn.sessions.discard(session)
            with conn.replies_lock:
                conn.replies.pop(channel.remote_chanid, None)
            host.write_runtime()

    def run_shell(self, conn: Conn, channel: Any) -> None:
        """A minimal interactive shell: one command line per line, prompt per version."""
        host = self.host
        st = host.state
        prompt = (f"[root@{st.hostname}:~] " if st.is_esxi and st.release >= (6, 0)
                  else "~ # " if st.is_esxi else f"[root@{st.hostname} ~]# ")
        session = Session(conn, channel.sendall, channel.sendall_stderr)
        conn.sessions.add(session)
        keep: dict[str, Any] = {}
        buf = b""
        try:
            channel.sendall(prompt.encode())
            while not session.dropped:
                data = channel.recv(1024)
                if not data:
                    break
                channel.sendall(data.replace(b"\r", b"\r\n"))  # echo like a pty
                buf += data.replace(b"\r", b"\n")
                while b"\n" in buf:
                    line, buf = buf.split(b"\n", 1)
                    text = line.decode("utf-8", "surrogateescape").strip()
                    if text in ("exit", "logout"):
                        channel.send_exit_status(0)
                        channel.close()
                        return
                    if text:
                        from labctl.sim.shell import NullReader

                        host.exec_session(text, session, NullReader(), keep)
                    if not session.dropped:
                        channel.sendall(prompt.encode())
        except (OSError, EOFError):
            pass
        finally:
            conn.sessions.discard(session)


def _close_listener(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()


def _reply_event(conn: Conn, chanid: int) -> threading.Event:
    with conn.replies_lock:
        return conn.replies.setdefault(chanid, threading.Event())


def _track_replies(t: Any, conn: Conn) -> None:
    """Note when the transport has answered a channel request (SUCCESS/FAILURE), per remote channel id.

    paramiko sends that reply after `check_channel_exec_request` returns; a fast command's thread must not close
    the channel before it, or the client sees "Channel closed." instead of its result.
    """
    import struct

    from paramiko.common import MSG_CHANNEL_FAILURE, MSG_CHANNEL_SUCCESS

    conn.replies = {}
    conn.replies_lock = threading.Lock()
    send = t._send_user_message

    def send_and_note(m: Any) -> None:
        send(m)
        data = m.asbytes()
        if data and data[0] in (MSG_CHANNEL_SUCCESS, MSG_CHANNEL_FAILURE) and len(data) >= 5:
            _reply_event(conn, struct.unpack(">I", data[1:5])[0]).set()

    t._send_user_message = send_and_note


def _pump(channel: Any, target: tuple[str, int]) -> None:
    """Forward a direct-tcpip channel to a loopback endpoint (jump host)."""
    import select

    try:
        sock = socket.create_connection(target, timeout=5)
    except OSError:
        channel.close()
        return
    try:
        while True:
            r, _, _ = select.select([sock, channel], [], [], 1.0)
            if sock in r:
                data = sock.recv(1 << 15)
                if not data:
                    break
                channel.sendall(data)
            if channel in r:
                data = channel.recv(1 << 15)
                if not data:
                    break
                sock.sendall(data)
    except OSError:
        pass
    finally:
        sock.close()
        channel.close()


def _ephemeral_keys() -> dict[str, Any]:
    import paramiko

    return {"ssh-rsa": paramiko.RSAKey.generate(bits=2048), "ecdsa-sha2-nistp256": paramiko.ECDSAKey.generate()}
