"""The lab-local known_hosts file, read once per labctl command as text (OpenSSH format, no key objects).

Lines: `names keytype base64 [comment]`; names comma-separated, `[host]:port` for ports other than 22, or hashed
(`|1|salt|hmac`, as `ssh-keygen -H` writes). Markers (`@cert-authority`, `@revoked`) and wildcard patterns are
not used for lab hosts and are ignored. Pinning appends a line (file mode 0600); `pin`/`pin_keys` replace every
entry of one name atomically (what labctl does when it knows a host's key before it connects: a key it generated
for an install, a key a clone published).

Names are what the host is dialled *as*: the lab address (`192.168.69.11`, `[192.168.69.11]:2222`), also with
`--sim`, where the connection itself goes to a loopback port (like OpenSSH's HostKeyAlias).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import shlex
import threading
from pathlib import Path

# host key types -> the signature algorithms a server may use with them (to ask only for pinned types)
KEY_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-dss": ("ssh-dss",),
}


def entry_name(host: str, port: int) -> str:
    return host if port == 22 else f"[{host}]:{port}"


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a base64 public key blob."""
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def forget_key_command(path: Path, name: str) -> str:
    return " ".join(["ssh-keygen", "-R", shlex.quote(name), "-f", shlex.quote(str(path))])


def _name_matches(field: str, name: str) -> bool:
    for pattern in field.split(","):
        if pattern.startswith("|1|"):
            try:
                _, _, salt, digest = pattern.split("|", 3)
                mac = hmac.new(base64.b64decode(salt), name.encode(), hashlib.sha1).digest()
                if hmac.compare_digest(base64.b64encode(mac).decode(), digest):
                    return True
            except (ValueError, TypeError):
                continue
        elif pattern == name:
            return True
    return False


def _read_lines(path: Path) -> list[str]:
    try:
        return Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return []


def _write_atomic(path: Path, lines: list[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write("".join(f"{ln}\n" for ln in lines))
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


class _FileLock:
    """An exclusive flock on `.<name>.lock` beside the file: pins from parallel threads or processes (hosts started
    together) never lose each other's lines."""

    def __init__(self, path: Path):
        self.path = Path(path).with_name(f".{Path(path).name}.lock")
        self.fd: int | None = None

    def __enter__(self) -> None:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # releases the lock
            self.fd = None


def _without_name(lines: list[str], name: str) -> list[str]:
    """The lines with `name` taken out of every entry (an entry naming only it goes; comments stay)."""
    out = []
    for line in lines:
        parts = line.split()
        if len(parts) < 3 or parts[0].startswith(("#", "@")):
            out.append(line)
            continue
        names = [n for n in parts[0].split(",") if not _name_matches(n, name)]
        if not names:
            continue
        out.append(line if len(names) == len(parts[0].split(",")) else " ".join([",".join(names), *parts[1:]]))
    return out


def pin_keys(path: Path, name: str, keys: list[tuple[str, str]]) -> None:
    """Make `keys` ([(key type, base64)]) the only keys pinned for `name`; atomic, mode 0600.

    `name` is the address the host is dialled at (`entry_name(address, port)`): with `--sim` too, the lab address,
    never the loopback port."""
    if not keys:
        raise ValueError(f"no key to pin for {name}")
    for key_type, b64 in keys:
        if not key_type or not b64 or any(c.isspace() for c in key_type + b64):
            raise ValueError(f"not a public key: {key_type!r} {b64!r}")
        base64.b64decode(b64, validate=True)
    with _FileLock(path):
        lines = _without_name(_read_lines(path), name)
        lines += [f"{name} {key_type} {b64}" for key_type, b64 in keys]
        _write_atomic(path, lines)


def pin(path: Path, name: str, key_type: str, b64: str) -> None:
    """Pin one key for `name`, replacing every key pinned for it before (shared contract 5)."""
    pin_keys(path, name, [(key_type, b64)])


def forget(path: Path, name: str) -> bool:
    """Remove every key pinned for `name` (as `ssh-keygen -R name` does); True when there was one."""
    with _FileLock(path):
        lines = _read_lines(path)
        kept = _without_name(lines, name)
        if kept == lines:
            return False
        _write_atomic(path, kept)
    return True


def pinned(path: Path, name: str) -> list[tuple[str, str]]:
    """[(key type, base64)] pinned for `name` in the file now."""
    return KnownHosts(path).lookup(name)


class KnownHosts:
    """Pinned host keys for one lab; thread-safe, loaded lazily and again when the file changes on disk (a key
    `pin` wrote during this command is seen by the next connection)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: list[tuple[str, str, str]] | None = None  # (names field, key type, base64)
        self._stamp: tuple[int, int, int] | None = None

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return st.st_ino, st.st_mtime_ns, st.st_size

    def _load(self) -> list[tuple[str, str, str]]:
        stamp = self._file_stamp()
        if self._entries is None or stamp != self._stamp:
            entries = []
            for line in _read_lines(self.path):
                parts = line.split()
                if len(parts) < 3 or parts[0].startswith(("#", "@")):
                    continue
                entries.append((parts[0], parts[1], parts[2]))
            self._entries, self._stamp = entries, stamp
        return self._entries

    def lookup(self, name: str) -> list[tuple[str, str]]:
        """[(key type, base64)] pinned for `name` ("host" or "[host]:port")."""
        with self._lock:
            return [(t, b) for names, t, b in self._load() if _name_matches(names, name)]

    def add(self, name: str, key_type: str, blob_b64: str) -> None:
        with self._lock:
            self._load().append((name, key_type, blob_b64))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with _FileLock(self.path):
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
                with os.fdopen(fd, "a", encoding="utf-8") as f:
                    f.write(f"{name} {key_type} {blob_b64}\n")
                self._stamp = self._file_stamp()
