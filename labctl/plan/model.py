"""What a stage reports: typed changes (planned or made), failures per target, notes. JSON-ready, secret-free."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass(frozen=True)
class Change:
    stage: str
    target: str  # a host, VM, cluster, datastore or file
    summary: str  # one line a person reads
    commands: tuple[str, ...] = ()  # the exact commands / calls, shown by plan and --dry-run

    def to_json(self) -> dict:
        d = asdict(self)
        d["commands"] = list(self.commands)
        return d


@dataclass(frozen=True)
class Failure:
    stage: str
    target: str
    message: str
    hint: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


@dataclass
class StageReport:
    name: str
    title: str
    changes: list[Change] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    skipped: str | None = None  # why the stage did not run
    seconds: float = 0.0

    def change(self, target: str, summary: str, *commands: str) -> Change:
        summary = summary.removeprefix(f"{target}: ")  # layers often name the target themselves
        c = Change(self.name, target, summary, tuple(commands))
        self.changes.append(c)
        return c

    def fail(self, target: str, message: str, hint: str | None = None) -> Failure:
        # errors about one host already start with its name ("esx2: …"): the summary prints the target once
        while message.startswith(f"{target}: "):
            message = message[len(target) + 2:]
        f = Failure(self.name, target, message, hint)
        self.failures.append(f)
        return f

    def to_json(self) -> dict:
        return {
            "name": self.name, "title": self.title, "skipped": self.skipped, "seconds": round(self.seconds, 3),
            "changes": [c.to_json() for c in self.changes], "failures": [f.to_json() for f in self.failures],
            "notes": list(self.notes),
        }


@dataclass
class PipelineReport:
    lab: str
    mode: str  # plan | up
    sim: bool
    stages: list[StageReport] = field(default_factory=list)
    interrupted: bool = False
    output_closed: bool = False  # stdout's reader went away (a broken pipe): the run stopped between stages
    environment: bool = False  # a stage could not run for want of something on this machine (vmrun, root, Go)

    @property
    def changes(self) -> list[Change]:
        return [c for s in self.stages for c in s.changes]

    @property
    def failures(self) -> list[Failure]:
        return [f for s in self.stages for f in s.failures]

    def to_json(self) -> dict:
        return {
            "lab": self.lab, "mode": self.mode, "sim": self.sim, "interrupted": self.interrupted,
            "changes": [c.to_json() for c in self.changes],
            "failures": [f.to_json() for f in self.failures],
            "stages": [s.to_json() for s in self.stages],
        }
