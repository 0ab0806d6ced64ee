"""The simulated lab's network segment: an address reaches the running host that has it configured now (ARP).

On a real lab segment nothing routes a topology address to "the VM it was meant for": a client's ARP request for
192.168.69.11 is answered by whichever host has that address on an interface at that moment. A linked clone that
still carries its source's address answers there; two hosts with one address both answer ARP, and which one a
connection reaches is a matter of whose reply the client's ARP cache kept — unpredictable, per connection, and
reported by ESXi as an IP address conflict. A re-addressed host is reachable at its new address at once.

The simulator models that with one loopback port per lab address, recorded in `<sim dir>/segment.json`:

    {"addresses": {"192.168.69.11": {"port": 40123, "holders": {"esx1": 1234}}}}

- A simulated host's SSH server listens on the port of every address it has configured *now* on an interface its
  sshd answers on (ESXi: enabled VMkernel ports; ESX classic and Linux: the service console / eth), read from the
  host's running state and updated whenever it changes (`esxcli network ip interface ipv4 set`, `esxcfg-vswif`,
  a reboot, a `down` fault): `bind` when it gains an address, `release` when it loses it.
- Sockets carry SO_REUSEPORT, so two hosts holding one address both listen on its port and the kernel hands each
  new connection to one of them (hashed per connection: not always the same one). `bind` then logs the conflict
  in `<sim dir>/logs/network.log` (and the host's own log); `labctl sim status` lists the current conflicts.
- An address nobody holds has its port closed: the client's connection is refused, as today. An address that is
  not in the table at all is not part of the lab and is never dialled (`labctl.sim.endpoints`).
- The table is written under an flock beside it; holders are recorded with their process id and ignored once that
  process is gone (a host killed without cleaning up holds nothing). An address's port is not held while nobody
  has the address: when a host binds it and finds something else of this machine listening there (another lab's
  host), the address moves to a new port rather than share one with a stranger.
"""

from __future__ import annotations

import json
import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

SEGMENT_FILE = "segment.json"
NETWORK_LOG = "network.log"
_BIND = "127.0.0.1"


def _alive(pid: int) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except (OSError, ValueError):
        return False
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((_BIND, 0))
        return s.getsockname()[1]


def _answers(port: int) -> bool:
    """Does anything accept connections on 127.0.0.1:port now?"""
    try:
        with socket.create_connection((_BIND, port), timeout=0.5):
            return True
    except OSError:
        return False


def _listener(port: int) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        s.bind((_BIND, port))
        s.listen(128)
    except BaseException:
        s.close()
        raise
    return s


class Segment:
    """The address table of one sim dir (cheap to create; every call reads the file)."""

    def __init__(self, sim_dir: Path | str):
        self.sim_dir = Path(sim_dir)
        self.path = self.sim_dir / SEGMENT_FILE

    # ---- the table ---------------------------------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[dict[str, Any]]:
        import fcntl

        self.sim_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.sim_dir / f".{SEGMENT_FILE}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            doc = self._read()
            before = json.dumps(doc, sort_keys=True)
            yield doc
            if json.dumps(doc, sort_keys=True) != before:
                from labctl.sim.state import write_json_atomic

                write_json_atomic(self.path, doc, mode=0o600)
        finally:
            os.close(fd)

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (FileNotFoundError, ValueError):
            doc = {}
        if not isinstance(doc.get("addresses"), dict):
            doc["addresses"] = {}
        return doc

    def port(self, address: str) -> int | None:
        """The loopback port of a lab address, None when it is not in the table."""
        entry = self._read()["addresses"].get(address)
        return int(entry["port"]) if isinstance(entry, dict) and entry.get("port") else None

    def ports(self) -> set[int]:
        return {int(e["port"]) for e in self._read()["addresses"].values() if isinstance(e, dict) and e.get("port")}

    def allocate(self, addresses: list[str]) -> dict[str, int]:
        """Give each address a port (kept when it has one): the lab's addresses, before any host holds them."""
        with self._locked() as doc:
            table = doc["addresses"]
            for a in addresses:
                if a and a not in table:
                    table[a] = {"port": _free_port(), "holders": {}}
            return {a: int(table[a]["port"]) for a in addresses if a}

    def holders(self, address: str) -> list[str]:
        """The hosts that hold `address` now (their process still runs)."""
        entry = self._read()["addresses"].get(address) or {}
        return sorted(h for h, pid in (entry.get("holders") or {}).items() if _alive(pid))

    def conflicts(self) -> dict[str, list[str]]:
        """{address: [hosts]} for every address more than one running host has configured."""
        out = {}
        for a, entry in sorted(self._read()["addresses"].items()):
            live = sorted(h for h, pid in (entry.get("holders") or {}).items() if _alive(pid))
            if len(live) > 1:
                out[a] = live
        return out

    # ---- a host's side -----------------------------------------------------------------------------------
    def bind(self, address: str, host: str, pid: int | None = None,
             log: Any = None) -> socket.socket:
        """A listening socket on `address`'s port for `host` (its process `pid`); records it as a holder and logs a
        conflict when another running host holds the address too."""
        pid = os.getpid() if pid is None else pid
        with self._locked() as doc:
            table = doc["addresses"]
            entry = table.get(address) or {"port": 0, "holders": {}}
            others = {h: p for h, p in (entry.get("holders") or {}).items() if h != host and _alive(p)}
            port = int(entry.get("port") or 0)
            if port and not others and _answers(port):
                port = 0  # someone outside this lab listens there (SO_REUSEPORT would share it): take a new port
            try:
                sock = _listener(port)
            except OSError:  # its port went to some other program meanwhile: the address moves to a new one
                sock = _listener(0)
            table[address] = {"port": sock.getsockname()[1], "holders": {**others, host: pid}}
        if others:
            names = ", ".join(sorted([*others, host]))
            self.log(f"IP address conflict: {address} is configured on {names}; a connection to {address} reaches "
                     "any one of them")
            if log is not None:
                log(f"IP address conflict: {address} is also configured on {', '.join(sorted(others))}")
        return sock

    def release(self, address: str, host: str) -> None:
        with self._locked() as doc:
            entry = doc["addresses"].get(address)
            if isinstance(entry, dict):
                (entry.get("holders") or {}).pop(host, None)

    def log(self, message: str) -> None:
        logs = self.sim_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        with open(logs / NETWORK_LOG, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {message}\n")
