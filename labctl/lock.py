"""One changing labctl command at a time per lab: an advisory lock that names its holder.

    with lab_lock(directory, "labctl up lab.yaml --sim"):   # <directory>/lab.lock; raises LabBusy when held
        ...

The lock is `flock(2)` on `<directory>/lab.lock` (the sim dir of a simulated lab, `<vm_dir>/.labctl` of a real
one). The kernel releases it when its holder exits, however it exits, so a crash never leaves a stale lock. While
it is held the file says who holds it — PID, command line, since when — and a second command that finds the lab
locked is refused with exactly that. The lock is re-entrant within one process (a command that locks and then
calls code that locks the same lab does not deadlock itself); it is not inherited by child processes (simulated
hosts and vcsim outlive the command that started them and must not keep the lab locked).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from labctl.errors import ExitStatus, LabctlError

LOCK_NAME = "lab.lock"

_held: dict[str, int] = {}  # realpath of a lock this process holds -> depth
_held_mutex = threading.Lock()


class LabBusy(LabctlError):
    """Another labctl command is changing this lab."""

    status = ExitStatus.REFUSED

    def __init__(self, message: str, *, hint: str | None = None, holder: dict | None = None):
        super().__init__(message, hint=hint)
        self.holder = holder or {}


def _describe(holder: dict, path: Path) -> str:
    if not holder.get("pid"):
        return f"another labctl process holds {path} (it has not written its name yet)"
    since = holder.get("since", "")
    ago = ""
    try:
        started = datetime.strptime(since, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        ago = f", {max(0, int(time.time() - started.timestamp()))} s ago"
    except ValueError:
        pass
    where = "" if holder.get("host") in (None, socket.gethostname()) else f" on {holder['host']}"
    return f"`{holder.get('command', '?')}` (PID {holder['pid']}{where}) holds it since {since}{ago}"


def read_holder(directory: str | os.PathLike[str]) -> dict | None:
    """Who holds the lab's lock now (None when nobody does)."""
    import fcntl

    path = Path(directory) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read(fd: int) -> dict:
    try:
        data = json.loads(os.pread(fd, 4096, 0).decode("utf-8", "replace") or "{}")
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


@contextlib.contextmanager
def lab_lock(directory: str | os.PathLike[str], command: str, *, lab: str = "") -> Iterator[None]:
    """Hold `<directory>/lab.lock` for the block; `LabBusy` (exit 5) names the holder when another process has it.

    `directory` is created private (0700) when missing; the lock file is 0600."""
    import fcntl

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = directory / LOCK_NAME
    key = os.path.realpath(path)
    with _held_mutex:
        if key in _held:
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_mutex:
                _held[key] -= 1
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            for _ in range(40):  # the holder writes its name right after it locks: give it that moment
                if holder.get("pid"):
                    break
                time.sleep(0.025)
                holder = _read(fd)
            name = f"lab {lab}" if lab else f"the lab in {directory}"
            raise LabBusy(f"{name} is busy: {_describe(holder, path)}",
                          hint="wait for that command to finish (or stop it: Ctrl-C there), then run this one again",
                          holder=holder) from None
        holder = {"pid": os.getpid(), "command": command, "host": socket.gethostname(),
                  "since": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        with _held_mutex:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_mutex:
                del _held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)  # nobody holds it now: a reader finds it empty and unlocked
    finally:
        os.close(fd)  # releases the flock
