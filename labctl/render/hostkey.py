"""The SSH host key labctl makes for a host it installs: the kickstart writes it, labctl pins it before dialling.

One RSA key per installed host, kept 0600 in `<vm_dir>/.labctl/install/<host>/` (`ssh_host_rsa_key` and
`ssh_host_rsa_key.pub`) and reused on every run, so the kickstart that carries it is the same each time (a second
run rewrites nothing). The private half is written as traditional PEM (`-----BEGIN RSA PRIVATE KEY-----`, PKCS#1):
the OpenSSH of ESX 3.5's service console (OpenSSH 3.x/4.x era) reads that format, and every later sshd does too;
the newer `openssh-key-v1` format it would not. 2048 bits: what `ssh-keygen -t rsa` made by default then and now.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PRIVATE_NAME = "ssh_host_rsa_key"
PUBLIC_NAME = "ssh_host_rsa_key.pub"
KEY_TYPE = "ssh-rsa"
BITS = 2048


@dataclass(frozen=True)
class HostKey:
    private_pem: str  # traditional PEM, ends with a newline
    key_type: str  # ssh-rsa
    public_b64: str  # the public key blob, base64 (what known_hosts holds)

    def public_line(self, comment: str = "") -> str:
        return f"{self.key_type} {self.public_b64}" + (f" {comment}" if comment else "")


def _write_private(path: Path, data: bytes) -> None:
    """Atomically, mode 0600 from the first byte."""
    tmp = path.with_name(f".{path.name}.labctl-tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def read_host_key(directory: Path) -> HostKey | None:
    """The key kept in `directory`, or None when there is none (or it is not a key labctl wrote)."""
    from cryptography.hazmat.primitives import serialization

    try:
        pem = (Path(directory) / PRIVATE_NAME).read_bytes()
    except FileNotFoundError:
        return None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        return None
    pub = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    kind, b64 = pub.decode().split()[:2]
    return HostKey(pem.decode(), kind, b64)


def ensure_host_key(directory: Path, comment: str = "") -> tuple[HostKey, bool]:
    """The host key in `directory`, made first when missing; (key, made now?). Both files are mode 0600."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    directory = Path(directory)
    have = read_host_key(directory)
    made = have is None
    if have is None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=BITS)
        pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption())
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        _write_private(directory / PRIVATE_NAME, pem)
        have = read_host_key(directory)
        assert have is not None
    pub = (have.public_line(comment) + "\n").encode()
    pub_path = directory / PUBLIC_NAME
    if not pub_path.is_file() or pub_path.read_bytes() != pub:
        _write_private(pub_path, pub)
    for p in (directory / PRIVATE_NAME, pub_path):
        if p.stat().st_mode & 0o777 != 0o600:
            os.chmod(p, 0o600)
    return have, made

