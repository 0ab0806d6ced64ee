"""The lab-local known_hosts file, read once per labctl command as text (OpenSSH format, no key objects).

Lines: `names keytype base64 [comment]`; names comma-separated, `[host]:port` for ports other than 22, or hashed
(`|1|salt|hmac`, as `ssh-keygen -H` writes). Markers (`@cert-authority`, `@revoked`) and wildcard patterns are
not used for lab hosts and are ignored. Pinning appends a line (file mode 0600).
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


class KnownHosts:
    """Pinned host keys for one lab; thread-safe, loaded lazily once."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: list[tuple[str, str, str]] | None = None  # (names field, key type, base64)

    def _load(self) -> list[tuple[str, str, str]]:
        if self._entries is None:
            entries = []
            try:
                text = self.path.read_text(encoding="utf-8")
            except FileNotFoundError:
                text = ""
            for line in text.splitlines():
                parts = line.split()
                if len(parts) < 3 or parts[0].startswith(("#", "@")):
                    continue
                entries.append((parts[0], parts[1], parts[2]))
            self._entries = entries
        return self._entries

    def lookup(self, name: str) -> list[tuple[str, str]]:
        """[(key type, base64)] pinned for `name` ("host" or "[host]:port")."""
        with self._lock:
            return [(t, b) for names, t, b in self._load() if _name_matches(names, name)]

    def add(self, name: str, key_type: str, blob_b64: str) -> None:
        with self._lock:
            self._load().append((name, key_type, blob_b64))
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(f"{name} {key_type} {blob_b64}\n")
