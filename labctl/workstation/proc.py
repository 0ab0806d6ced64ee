"""The one place labctl starts a local process: argv lists, no shell, a timeout, output captured.

A detail that matters for vmrun: `vmrun start` launches vmware-vmx, and a process it leaves behind could keep
vmrun's stdout/stderr pipes open. Waiting for end-of-file on those pipes would then wait for the VM to stop.
So `run` waits for the *program* to exit, then gives its pipes a short grace period and returns what it read;
on a timeout it kills only the program itself (never its process group: that could be the VM).
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

PIPE_GRACE = 0.5  # seconds to wait for end-of-file after the program exited
_POLL = 0.05


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    exit_code: int | None  # None: killed after the timeout
    stdout: str
    stderr: str
    seconds: float

    @property
    def timed_out(self) -> bool:
        return self.exit_code is None


def run(
    argv: Sequence[str | os.PathLike[str]],
    *,
    environ: Mapping[str, str] | None = None,
    timeout: float = 120.0,
) -> Completed:
    """Run argv (never through a shell); returns exit code and output, or exit_code None after a timeout.

    Raises FileNotFoundError / PermissionError when the program cannot be started (callers turn those into
    `EnvironmentProblem` with an install hint).
    """
    args = tuple(os.fspath(a) for a in argv)
    t0 = time.monotonic()
    p = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=None if environ is None else dict(environ),
    )
    deadline = t0 + timeout
    exited_at: float | None = None
    while True:
        now = time.monotonic()
        wait = (
            min(_POLL, max(0.0, deadline - now))
            if exited_at is None
            else max(0.0, exited_at + PIPE_GRACE - now)
        )
        try:
            out, err = p.communicate(timeout=max(wait, 0.001))
            return Completed(args, p.returncode, _text(out), _text(err), time.monotonic() - t0)
        except subprocess.TimeoutExpired as e:
            partial_out, partial_err = e.output, e.stderr
        now = time.monotonic()
        if exited_at is None and p.poll() is not None:
            exited_at = now  # the program is done; something it started holds the pipes
            continue
        if exited_at is not None and now >= exited_at + PIPE_GRACE:
            _close(p)
            return Completed(args, p.returncode, _text(partial_out), _text(partial_err), now - t0)
        if exited_at is None and now >= deadline:
            p.kill()
            try:
                out, err = p.communicate(timeout=PIPE_GRACE)
            except subprocess.TimeoutExpired as e2:
                out, err = e2.output, e2.stderr
                _close(p)
            p.wait()
            return Completed(
                args, None, _text(out or partial_out), _text(err or partial_err), time.monotonic() - t0
            )


def _close(p: subprocess.Popen) -> None:
    for f in (p.stdout, p.stderr):
        if f is not None:
            try:
                f.close()
            except OSError:
                pass


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode("utf-8", "replace")
