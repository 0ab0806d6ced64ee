"""Latency and fault injection for a simulated host, as data (`<host dir>/control.json`).

    {"latency": 1.0,                      # seconds added to every exec request (one SSH command)
     "command_latency": {"esxcli": 1.0},  # seconds added to each run of a command (by name; "*" = every command)
     "reboot_delay": 0.2,                 # seconds a rebooting host stays unreachable
     "faults": [
        {"kind": "drop", "pattern": "esxcli network ip interface remove", "times": 1, "phase": "after"},
        {"kind": "refuse_auth", "times": 2},
        {"kind": "down"}]}

- drop: an exec request whose command line matches `pattern` (a regular expression, searched) loses its connection,
  either before the command runs (`phase: before`) or after it ran but before the exit status is sent (`after`,
  the default: the change happened, the caller cannot know).
  SFTP transfers match as `sftp put /tmp/x.vib` / `sftp get PATH`: `before` fails the open and drops the
  connection, `after` drops it once the file is complete (an upload is stored, the client never hears so).
- refuse_auth: authentication fails (like a wrong password or a locked account).
- down: the host does not accept connections (its listener is closed: connection refused) while the rule exists.
`times` counts how often a rule fires (absent = every time). The host re-reads the file when it changes, so faults
are set at start (`labctl sim up --fault ...`) or at runtime (`labctl sim fault ...`, or by writing the file).
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

CONTROL_FILE = "control.json"
KINDS = ("drop", "refuse_auth", "down")


@dataclass
class FaultRule:
    kind: str
    pattern: str = ""
    times: int | None = None
    phase: str = "after"

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r} (expected one of {', '.join(KINDS)})")
        if self.phase not in ("before", "after"):
            raise ValueError(f"unknown drop phase {self.phase!r} (before|after)")
        re.compile(self.pattern)

    def matches(self, command: str) -> bool:
        return not self.pattern or re.search(self.pattern, command) is not None


@dataclass
class Control:
    latency: float = 0.0
    command_latency: dict[str, float] = field(default_factory=dict)
    reboot_delay: float = 2.0
    faults: list[FaultRule] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["faults"] = [{k: v for k, v in asdict(f).items() if v is not None} for f in self.faults]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Control":
        return cls(
            latency=float(d.get("latency", 0.0)),
            command_latency={str(k): float(v) for k, v in (d.get("command_latency") or {}).items()},
            reboot_delay=float(d.get("reboot_delay", 2.0)),
            faults=[FaultRule(**f) for f in d.get("faults") or []],
        )


class FaultBook:
    """The rules in force on a running host, with how often each has fired."""

    def __init__(self, control: Control):
        self.control = control
        self.fired: list[int] = [0] * len(control.faults)

    def take(self, kind: str, command: str = "") -> FaultRule | None:
        for i, rule in enumerate(self.control.faults):
            if rule.kind != kind or not rule.matches(command):
                continue
            if rule.times is not None and self.fired[i] >= rule.times:
                continue
            self.fired[i] += 1
            return rule
        return None

    def is_down(self) -> bool:
        return any(r.kind == "down" for r in self.control.faults)

    def summary(self) -> list[dict[str, Any]]:
        return [{**{k: v for k, v in asdict(r).items() if v is not None}, "fired": n}
                for r, n in zip(self.control.faults, self.fired)]


def read_control(host_dir: Path) -> Control:
    p = Path(host_dir) / CONTROL_FILE
    try:
        return Control.from_dict(json.loads(p.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return Control()


def write_control(host_dir: Path, control: Control) -> None:
    from labctl.sim.state import write_json_atomic

    write_json_atomic(Path(host_dir) / CONTROL_FILE, control.to_dict())
