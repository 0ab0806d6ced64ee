"""Results of remote commands as values, and the errors that name the host and the command.

No paramiko here: operations and the CLI import these without paying for it.
"""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import ExitStatus, LabctlError, UnreachableError


@dataclass(frozen=True)
class Result:
    """What one remote command did. `exit_status` is the remote exit code."""

    host: str
    command: str
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    def tail(self, stream: str = "stderr", lines: int = 5) -> str:
        text = self.stderr if stream == "stderr" else self.stdout
        return "\n".join(text.rstrip().splitlines()[-lines:])

    def check(self) -> Result:
        """Return self when the command succeeded, else raise CommandFailed."""
        if not self.ok:
            raise CommandFailed(self)
        return self


class RemoteError(LabctlError):
    """Something went wrong on or with one host; `host` (and `command` when there was one) name it."""

    status = ExitStatus.FAILED

    def __init__(self, host: str, message: str, *, command: str | None = None, hint: str | None = None,
                 status: ExitStatus | None = None):
        where = f"{host}: " + (f"`{command}`: " if command else "")
        super().__init__(where + message, hint=hint, status=status)
        self.host = host
        self.command = command
        self.reason = message


class CommandFailed(RemoteError):
    def __init__(self, result: Result):
        detail = result.tail() or result.tail("stdout") or "(no output)"
        super().__init__(result.host, f"exited with status {result.exit_status}: {detail}", command=result.command)
        self.result = result


class CommandTimeout(RemoteError):
    pass


class ConnectionDropped(RemoteError):
    """The SSH session went away during a command (no exit status came back)."""

    status = ExitStatus.UNREACHABLE


class HostUnreachable(UnreachableError):
    """Connect, authentication or host-key problem for one host."""

    def __init__(self, host: str, message: str, *, hint: str | None = None):
        super().__init__(f"{host}: {message}", hint=hint)
        self.host = host
        self.reason = message


class HostKeyUnknown(HostUnreachable):
    pass


class HostKeyMismatch(HostUnreachable):
    pass


class AuthFailed(HostUnreachable):
    pass
