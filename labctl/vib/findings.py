"""Findings reported by inspect/validate, and the error raised for input that must not be read further."""

from __future__ import annotations

from dataclasses import dataclass

from labctl.errors import ExitStatus, LabctlError

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    message: str

    def to_json(self) -> dict[str, str]:
        return {"severity": self.severity, "message": self.message}

    def __str__(self) -> str:
        return f"{self.severity}: {self.message}"


class VibFormatError(LabctlError):
    """The file is malformed or unsafe; reading stopped here. Inspect turns it into an `error` finding."""

    status = ExitStatus.FINDINGS


class VibBuildError(LabctlError):
    """The stage directory or options cannot produce a valid VIB."""

    status = ExitStatus.USAGE


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
