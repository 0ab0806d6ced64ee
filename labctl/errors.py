"""Exit statuses and the error types that map onto them.

`labctl.cli.main` is the one place that turns these into exit codes and messages; nothing else calls sys.exit.
"""

from __future__ import annotations

from enum import IntEnum

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing: `labctl --help` imports this module
if TYPE_CHECKING:
    from collections.abc import Iterable


class ExitStatus(IntEnum):
    """Every exit code labctl uses (documented in the README)."""

    SUCCESS = 0
    FINDINGS = 1  # a read command found something (duplicate MACs, VIB errors) — like diff(1)
    USAGE = 2  # bad arguments, invalid topology or YAML, unreadable input file
    FAILED = 3  # an operation failed on one or more hosts / vCenter; the summary says which
    UNREACHABLE = 4  # one or more hosts could not be reached (connect, auth or host-key problem)
    REFUSED = 5  # labctl refused to overwrite something (user-edited file, running VM) without --force
    ENVIRONMENT = 6  # a prerequisite is missing on this machine (vmrun, Go toolchain, permissions)
    INTERRUPTED = 130  # Ctrl-C
    OUTPUT_CLOSED = 141  # the reader of stdout went away (`| head`): 128 + SIGPIPE, as a shell reports it


class LabctlError(Exception):
    """A user-facing error: printed without a traceback, mapped to `status`.

    `hint` is the next thing the user should do (a command to run, a key to add).
    """

    status: ExitStatus = ExitStatus.FAILED

    def __init__(self, message: str, *, hint: str | None = None, status: ExitStatus | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if status is not None:
            self.status = status

    def __str__(self) -> str:
        return self.message


class UsageError(LabctlError):
    status = ExitStatus.USAGE


class TopologyError(LabctlError):
    """The topology file cannot be used; `problems` holds every problem found (already formatted)."""

    status = ExitStatus.USAGE

    def __init__(self, problems: list[str], *, hint: str | None = None):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems), hint=hint)


class RefusedError(LabctlError):
    status = ExitStatus.REFUSED


class EnvironmentProblem(LabctlError):
    status = ExitStatus.ENVIRONMENT


class UnreachableError(LabctlError):
    status = ExitStatus.UNREACHABLE


def did_you_mean(word: object, candidates: "Iterable[str]") -> str:
    """"did you mean 'x'?" for the closest candidate to a mistyped name, or "" when none is close."""
    import difflib

    if not isinstance(word, str) or not word:
        return ""
    cands = [c for c in candidates if isinstance(c, str)]
    by_lower = {c.lower(): c for c in cands}
    if word.lower() in by_lower and by_lower[word.lower()] != word:
        return f"did you mean '{by_lower[word.lower()]}'?"
    match = difflib.get_close_matches(word, cands, n=1, cutoff=0.6)
    if not match:
        match = [by_lower[m] for m in difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=0.6)]
    return f"did you mean '{match[0]}'?" if match else ""
