"""The outside world a command sees (streams, environment, working directory, the user at a terminal).

Every layer may take an `Env`: the CLI makes one per run and passes it down, so the whole CLI runs in-process in
tests with `Env(stdout=io.StringIO(), environ={...}, cwd=tmp_path)`. Lower layers never read `os.environ`,
`sys.stdin` or the process's cwd themselves, and never prompt on their own: they get `env` (or
`env.secret_prompt()`) from their caller.

Imported by `labctl --help`, so it imports only `os` and `sys` (no dataclasses, no pathlib until a path is made).
"""

from __future__ import annotations

import os
import sys

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Callable
    from pathlib import Path
    from typing import TextIO


class Env:
    """Streams, environ and cwd of one run; each defaults to this process's own, read when the Env is made."""

    __slots__ = ("stdout", "stderr", "stdin", "environ", "_cwd")

    def __init__(
        self,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
        stdin: TextIO | None = None,
        environ: dict[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
    ):
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        self.stdin = sys.stdin if stdin is None else stdin
        self.environ: dict[str, str] = dict(os.environ) if environ is None else environ
        self._cwd = os.getcwd() if cwd is None else cwd

    def __repr__(self) -> str:
        return f"Env(cwd={os.fspath(self._cwd)!r}, environ=<{len(self.environ)} variables>)"

    @property
    def cwd(self) -> Path:
        from pathlib import Path

        return Path(self._cwd)

    @property
    def stdout_isatty(self) -> bool:
        return bool(getattr(self.stdout, "isatty", lambda: False)())

    @property
    def stdin_isatty(self) -> bool:
        return bool(getattr(self.stdin, "isatty", lambda: False)())

    def out(self, text: str = "") -> None:
        print(text, file=self.stdout)

    def err(self, text: str = "") -> None:
        print(text, file=self.stderr)

    def path(self, p: str | os.PathLike[str]) -> Path:
        """A user-given path: `~` expanded, relative to this env's cwd."""
        from pathlib import Path

        q = Path(os.path.expanduser(os.fspath(p)))
        return q if q.is_absolute() else self.cwd / q

    def secret_prompt(self) -> Callable[[str], str | None] | None:
        """A function asking the user for a secret (no echo, on stderr), or None when stdin is not a terminal.

        This is how prompting reaches lower layers: callers pass `env.secret_prompt()` where a password may be
        asked for (SSH, vCenter); nothing below the CLI imports getpass or decides to prompt by itself. The
        function returns None when the user gives nothing (empty answer, Ctrl-D, Ctrl-C).
        """
        if not self.stdin_isatty:
            return None
        stream = self.stderr

        def prompt(text: str) -> str | None:
            import getpass

            try:
                return getpass.getpass(text, stream=stream) or None
            except (EOFError, KeyboardInterrupt):
                return None

        return prompt
