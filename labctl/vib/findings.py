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


def printable(text: str) -> str:
    """Untrusted text made safe for a terminal line: control characters (newlines, ESC, C1), format characters
    (bidi overrides, zero-width) and line/paragraph separators become visible escapes (\\n, \\x1b, \\u202e),
    so a descriptor cannot forge report lines or drive the terminal."""
    import unicodedata

    if text.isascii() and text.isprintable():
        return text
    out = []
    for ch in text:
        if ch.isprintable() and unicodedata.category(ch) not in ("Cf", "Zl", "Zp"):
            out.append(ch)
        elif ch in "\n\r\t":
            out.append({"\n": "\\n", "\r": "\\r", "\t": "\\t"}[ch])
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) < 0x10000 else f"\\U{ord(ch):08x}")
    return "".join(out)


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == ERROR for f in findings)
