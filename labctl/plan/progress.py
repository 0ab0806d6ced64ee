"""Progress for long work: a live status line on a terminal, plain lines otherwise (logs, CI, pipes)."""

from __future__ import annotations

import threading
import time
from typing import Callable, TextIO


class Progress:
    def __init__(self, stream: TextIO, *, live: bool, quiet: bool = False,
                 paint: Callable[[str, str | None], str] | None = None):
        self.stream = stream
        self.live = live
        self.quiet = quiet
        self.paint = paint or (lambda text, kind: text)  # colour by kind ("change", "fail", ...): the CLI's
        self._lock = threading.Lock()
        self._stage = ""
        self._hosts: dict[str, str] = {}
        self._shown = 0
        self._t0 = time.monotonic()
        self.broken = False  # the stream's reader went away (EPIPE): nothing more is written; see run_pipeline

    def _write(self, text: str) -> None:
        """Write and flush, never raising for a closed pipe in the middle of a step (a half-made change would be
        worse than a missing line): the pipeline checks `broken` between stages and stops there."""
        if self.broken:
            return
        try:
            self.stream.write(text)
            self.stream.flush()
        except BrokenPipeError:
            self.broken = True

    def stage(self, title: str) -> None:
        with self._lock:
            self._clear()
            self._stage = title
            self._hosts = {}
            if not self.quiet:
                self._write(f"==> {title}\n")

    def host(self, name: str, state: str) -> None:
        """Per-host state within the current stage (e.g. 'connecting', 'rebooting', 'done')."""
        with self._lock:
            self._hosts[name] = state
            if self.quiet:
                return
            if self.live:
                self._draw()
            else:
                self._write(f"    {name}: {state}\n")

    def ticker(self, name: str, *, every_plain: float = 15.0):
        """A callback for long work that reports as it goes (e.g. vcsim.build): on a terminal each report redraws
        the host's status line; in plain output (logs, pipes) the first and last reports are lines of their own, and
        the ones between at most every `every_plain` seconds."""
        last = [float("-inf")]

        def report(text: str) -> None:
            now = time.monotonic()
            final = text.startswith(("built ", "done"))
            if final and self.live:
                self.line(f"    {name}: {text}")  # stays on screen after the status line is gone
            elif self.live or final or now - last[0] >= every_plain:
                last[0] = now
                self.host(name, text)

        return report

    def line(self, text: str, kind: str | None = None) -> None:
        with self._lock:
            self._clear()
            if not self.quiet:
                self._write(self.paint(text, kind) + "\n")

    def _draw(self) -> None:
        parts = "  ".join(f"{h}:{s}" for h, s in self._hosts.items())
        text = f"    {parts}"
        width = 120
        if len(text) > width:
            text = text[: width - 1] + "…"
        self._write("\r\x1b[2K" + text)
        self._shown = 1

    def _clear(self) -> None:
        if self.live and self._shown:
            self._write("\r\x1b[2K")
            self._shown = 0

    def close(self) -> None:
        with self._lock:
            self._clear()
