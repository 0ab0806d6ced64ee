"""Colour for failures, warnings and changes — on a terminal only.

Off when the stream is not a TTY (pipes, files, CI logs), when NO_COLOR is set to anything non-empty
(https://no-color.org), with `--no-color` (main turns it into NO_COLOR=1 for the run), with TERM=dumb, and for
every stream of a `--json` run. Standard library only, no import-time work.
"""

from __future__ import annotations

from typing import Any, TextIO

_SGR = {
    "fail": "1;31",  # bold red: errors, failures, FAIL, DUPLICATE
    "warn": "33",  # yellow: warnings, WARN
    "change": "32",  # green: a change made
    "plan": "36",  # cyan: a change `plan` would make
    "ok": "32",  # green: ok, no changes
}


class Style:
    def __init__(self, enabled: bool):
        self.enabled = enabled

    def __call__(self, text: str, kind: str | None) -> str:
        if not self.enabled or not kind or kind not in _SGR or not text:
            return text
        return f"\x1b[{_SGR[kind]}m{text}\x1b[0m"

    def fail(self, text: str) -> str:
        return self(text, "fail")

    def warn(self, text: str) -> str:
        return self(text, "warn")

    def change(self, text: str) -> str:
        return self(text, "change")

    def ok(self, text: str) -> str:
        return self(text, "ok")


def style_for(env: Any, stream: TextIO | None = None, args: Any = None) -> Style:
    """The Style for writing to `stream` (default: env.stdout) in this run."""
    stream = env.stdout if stream is None else stream
    environ = getattr(env, "environ", {}) or {}
    enabled = (
        bool(getattr(stream, "isatty", lambda: False)())
        and not environ.get("NO_COLOR")
        and environ.get("TERM") != "dumb"
        and not getattr(args, "json", False)
    )
    return Style(enabled)
