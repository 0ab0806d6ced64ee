"""The one place labctl starts a local process: argv lists, no shell, a timeout, output captured."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


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
    try:
        p = subprocess.run(
            args,
            check=False,
            capture_output=True,
            text=True,
            errors="replace",
            timeout=timeout,
            env=None if environ is None else dict(environ),
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as e:
        return Completed(args, None, _text(e.stdout), _text(e.stderr), time.monotonic() - t0)
    return Completed(args, p.returncode, p.stdout, p.stderr, time.monotonic() - t0)


def _text(b: bytes | str | None) -> str:
    if b is None:
        return ""
    return b if isinstance(b, str) else b.decode("utf-8", "replace")
