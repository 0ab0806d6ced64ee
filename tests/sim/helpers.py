"""Shared helpers for the simulator tests: hosts in-process, SSH clients with pinned keys (never AutoAdd)."""

from __future__ import annotations

import contextlib
import time
from base64 import b64decode
from pathlib import Path

from labctl.sim.host import SimHost
from labctl.sim.state import HostState, fresh_install

DATA = Path(__file__).parent / "data"


def make_state(flavor: str = "esxi", version: str = "6.7", *, name: str = "esx1", ip: str = "192.168.69.11",
               netmask: str = "255.255.255.0", macs: tuple[str, ...] = ("00:50:56:00:00:11",), **kw) -> HostState:
    return fresh_install(name, flavor, version, nic_macs=list(macs), ip=ip, netmask=netmask, **kw)


def local_host(flavor: str = "esxi", version: str = "6.7", host_dir: Path | None = None, **kw) -> SimHost:
    return SimHost(make_state(flavor, version, **kw), host_dir)


def pinned_client(known_hosts: Path, address: str, port: int):
    """A strict paramiko client for a simulated host dialled at 127.0.0.1:port whose keys are pinned under its lab
    `address` in `known_hosts` (what OpenSSH's HostKeyAlias does); any other key is refused."""
    import paramiko

    from labctl.remote.known_hosts import pinned

    c = paramiko.SSHClient()
    for ktype, b64 in pinned(known_hosts, address):
        key = paramiko.PKey.from_type_string(ktype, b64decode(b64))
        c.get_host_keys().add(f"[127.0.0.1]:{port}", ktype, key)
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    return c


def connect(port: int, server_keys: dict, *, pkey=None, password: str | None = None, user: str = "root",
            timeout: float = 5.0):
    """A paramiko client that trusts exactly the given host keys for [127.0.0.1]:port."""
    import paramiko

    c = paramiko.SSHClient()
    for key in server_keys.values():
        c.get_host_keys().add(f"[127.0.0.1]:{port}", key.get_name(), key)
    c.connect("127.0.0.1", port, user, pkey=pkey, password=password, look_for_keys=False, allow_agent=False,
              timeout=timeout, banner_timeout=timeout, auth_timeout=timeout)
    import socket

    c.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # as OpenSSH's client does
    return c


def run(client, command: str, stdin: bytes | None = None, timeout: float = 10.0) -> tuple[int, str, str]:
    chan = client.get_transport().open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(command)
    if stdin is not None:
        chan.sendall(stdin)
        chan.shutdown_write()
    out = chan.makefile("rb").read().decode()
    err = chan.makefile_stderr("rb").read().decode()
    return chan.recv_exit_status(), out, err


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if predicate():
                return True
        time.sleep(interval)
    return False
