"""The known_hosts pin API (shared contract 5): what labctl pins, OpenSSH's own ssh-keygen reads the same way."""

from __future__ import annotations

import base64
import os
import shutil
import stat
import struct
import subprocess
import threading

import pytest

from labctl.remote.known_hosts import KnownHosts, forget, pin, pin_keys, pinned

def _blob(key_type: str, body: bytes) -> str:
    """A public key blob as OpenSSH writes it: the type as an SSH string, then the key's fields."""
    return base64.b64encode(struct.pack(">I", len(key_type)) + key_type.encode() + body).decode()


RSA = _blob("ssh-rsa", b"\x00\x00\x00\x03\x01\x00\x01\x00\x00\x00\x41\x00" + b"\x11" * 64)
RSA2 = _blob("ssh-rsa", b"\x00\x00\x00\x03\x01\x00\x01\x00\x00\x00\x41\x00" + b"\x22" * 64)
ED = _blob("ssh-ed25519", b"\x00\x00\x00\x20" + b"\x33" * 32)


def test_pin_replaces_every_entry_of_that_name_and_keeps_the_others(tmp_path):
    kh = tmp_path / "known_hosts"
    kh.write_text(f"# a comment stays\n192.168.69.11,esx1 ssh-rsa {RSA}\n192.168.69.11 ssh-ed25519 {ED}\n"
                  f"192.168.69.12 ssh-rsa {RSA}\n[192.168.69.11]:2222 ssh-rsa {RSA}\n")
    pin(kh, "192.168.69.11", "ssh-rsa", RSA2)
    lines = kh.read_text().splitlines()
    assert lines == ["# a comment stays", f"esx1 ssh-rsa {RSA}", f"192.168.69.12 ssh-rsa {RSA}",
                     f"[192.168.69.11]:2222 ssh-rsa {RSA}", f"192.168.69.11 ssh-rsa {RSA2}"]
    assert pinned(kh, "192.168.69.11") == [("ssh-rsa", RSA2)]
    assert stat.S_IMODE(os.stat(kh).st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []  # no temporary file left behind


def test_pin_keys_pins_several_types_and_a_second_pin_is_no_change(tmp_path):
    kh = tmp_path / "sub" / "known_hosts"  # the directory is made
    pin_keys(kh, "192.168.69.11", [("ssh-rsa", RSA), ("ssh-ed25519", ED)])
    before = kh.read_bytes()
    pin_keys(kh, "192.168.69.11", [("ssh-rsa", RSA), ("ssh-ed25519", ED)])
    assert kh.read_bytes() == before
    assert pinned(kh, "192.168.69.11") == [("ssh-rsa", RSA), ("ssh-ed25519", ED)]


def test_hashed_entries_of_the_name_are_replaced_too(tmp_path):
    keygen = shutil.which("ssh-keygen")
    if keygen is None:
        pytest.skip("ssh-keygen not installed (.ci/run installs OpenSSH)")
    kh = tmp_path / "known_hosts"
    kh.write_text(f"192.168.69.11 ssh-rsa {RSA}\n192.168.69.12 ssh-rsa {RSA}\n")
    subprocess.run([keygen, "-H", "-f", str(kh)], check=True, capture_output=True)  # OpenSSH hashes the names
    assert "192.168.69.11" not in kh.read_text()
    pin(kh, "192.168.69.11", "ssh-ed25519", ED)
    assert pinned(kh, "192.168.69.11") == [("ssh-ed25519", ED)]
    assert pinned(kh, "192.168.69.12") == [("ssh-rsa", RSA)]
    # OpenSSH's own lookup agrees: exactly the new key for .11, the old one for .12
    found = subprocess.run([keygen, "-F", "192.168.69.11", "-f", str(kh)], capture_output=True, text=True)
    assert found.returncode == 0 and ED in found.stdout and RSA not in found.stdout
    found = subprocess.run([keygen, "-F", "192.168.69.12", "-f", str(kh)], capture_output=True, text=True)
    assert found.returncode == 0 and RSA in found.stdout


def test_forget_is_ssh_keygen_minus_r(tmp_path):
    kh = tmp_path / "known_hosts"
    pin(kh, "192.168.69.11", "ssh-rsa", RSA)
    pin(kh, "[192.168.69.12]:2222", "ssh-rsa", RSA2)
    assert forget(kh, "192.168.69.11") is True
    assert forget(kh, "192.168.69.11") is False
    assert pinned(kh, "192.168.69.11") == [] and pinned(kh, "[192.168.69.12]:2222") == [("ssh-rsa", RSA2)]
    if shutil.which("ssh-keygen"):
        found = subprocess.run(["ssh-keygen", "-F", "[192.168.69.12]:2222", "-f", str(kh)], capture_output=True,
                               text=True)
        assert found.returncode == 0 and RSA2 in found.stdout


def test_a_loaded_known_hosts_sees_a_pin_made_after_it_was_read(tmp_path):
    kh = tmp_path / "known_hosts"
    cache = KnownHosts(kh)
    assert cache.lookup("192.168.69.11") == []
    pin(kh, "192.168.69.11", "ssh-rsa", RSA)
    assert cache.lookup("192.168.69.11") == [("ssh-rsa", RSA)]
    cache.add("192.168.69.12", "ssh-rsa", RSA2)  # --trust-new-hosts appends
    pin(kh, "192.168.69.11", "ssh-rsa", RSA2)
    assert cache.lookup("192.168.69.12") == [("ssh-rsa", RSA2)] and cache.lookup("192.168.69.11") == [("ssh-rsa", RSA2)]


def test_pins_from_parallel_threads_lose_nothing(tmp_path):
    kh = tmp_path / "known_hosts"
    names = [f"192.168.69.{i}" for i in range(10, 40)]
    threads = [threading.Thread(target=pin, args=(kh, n, "ssh-rsa", RSA)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(ln.split()[0] for ln in kh.read_text().splitlines()) == sorted(names)


@pytest.mark.parametrize("key_type, b64", [("ssh-rsa", "not base64!"), ("ssh rsa", RSA), ("", RSA), ("ssh-rsa", "")])
def test_pin_refuses_what_is_no_public_key(tmp_path, key_type, b64):
    kh = tmp_path / "known_hosts"
    with pytest.raises(ValueError):
        pin(kh, "192.168.69.11", key_type, b64)
    assert not kh.exists()
