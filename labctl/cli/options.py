"""The options several commands share, spelled one way everywhere (one flag, one metavar, one meaning).

  FILE              the lab's topology, the first positional argument of every command about a lab
  --lab FILE        the topology where the first positional is something else (`vib deploy VIB --lab FILE`)
  --sim             the simulated lab on this machine;  --sim-dir DIR  its state directory
  --host NAME       one host; repeatable (also NAME,NAME); `--hosts` is kept as a hidden alias for old scripts
  --thumbprint SHA1 the vCenter certificate's pinned thumbprint

Standard library only: these run while `--help` is built.
"""

from __future__ import annotations

import argparse

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

SIM_DIR_HELP = "simulated lab state directory (default $LABCTL_SIM_DIR, else ~/.local/state/labctl/sim/LAB)"


def add_file(p: argparse.ArgumentParser, *, optional: bool = False, help: str = "topology YAML file") -> None:
    if optional:
        p.add_argument("file", nargs="?", metavar="FILE", help=help + " (optional)")
    else:
        p.add_argument("file", metavar="FILE", help=help)


def add_lab(p: argparse.ArgumentParser, *, required: bool = True) -> None:
    p.add_argument("--lab", required=required, metavar="FILE", help="the lab's topology YAML file")


def add_sim(p: argparse.ArgumentParser, *, sim_help: str = "the simulated lab (`labctl sim up FILE` starts it)",
            flag: bool = True) -> None:
    if flag:
        p.add_argument("--sim", action="store_true", help=sim_help)
    p.add_argument("--sim-dir", metavar="DIR", help=SIM_DIR_HELP + (" (with --sim)" if flag else ""))


class _HostList(argparse.Action):
    """Repeatable --host NAME; each value may also be NAME,NAME (what `--hosts h1,h2` took)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        got = list(getattr(namespace, self.dest, None) or [])
        got += [h.strip() for h in str(values).split(",") if h.strip()]
        setattr(namespace, self.dest, got)


def add_hosts(p: argparse.ArgumentParser, *, help: str = "only this host (repeatable; default: every ESX host)") -> None:
    p.add_argument("--host", action=_HostList, dest="host", metavar="NAME", default=None, help=help)
    p.add_argument("--hosts", action=_HostList, dest="host", default=None, help=argparse.SUPPRESS)


def add_thumbprint(p: argparse.ArgumentParser) -> None:
    p.add_argument("--thumbprint", metavar="SHA1",
                   help="accept only the vCenter certificate with this SHA-1 thumbprint (AA:BB:..:99)")


class StageList(argparse.Action):
    """`--only STAGE…` / `--skip STAGE…`: stage names, space- or comma-separated, validated here.

    A greedy `nargs="+"` would swallow the topology in `up --only macs nfs lab.yaml`; so when the last value is not
    a stage and FILE was not given yet, it is taken as FILE (the positional is declared `nargs="?"` and checked
    by `require_file`)."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, stages: Sequence[str], **kw: Any) -> None:
        self.stages = tuple(stages)
        super().__init__(option_strings, dest, nargs="+", **kw)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        from labctl.errors import did_you_mean

        words = [w for v in values for w in v.split(",") if w]
        if words and words[-1] not in self.stages and getattr(namespace, "file", None) is None:
            namespace.file_after_stages = words.pop()  # argparse sets the empty positional after this
        bad = [w for w in words if w not in self.stages]
        if bad:
            hint = did_you_mean(bad[0], self.stages)
            parser.error(f"argument {option_string}: invalid stage {bad[0]!r} (stages: {', '.join(self.stages)})"
                         + (f"; {hint}" if hint else ""))
        if not words:
            parser.error(f"argument {option_string}: expected at least one stage")
        setattr(namespace, self.dest, tuple(getattr(namespace, self.dest, None) or ()) + tuple(words))


def require_file(args: argparse.Namespace, command: str) -> None:
    if not getattr(args, "file", None):
        args.file = getattr(args, "file_after_stages", None)
    elif getattr(args, "file_after_stages", None):
        from labctl.errors import UsageError

        raise UsageError(f"{args.file_after_stages!r} is not a stage", hint="stages go after --only/--skip, the "
                         f"topology once: labctl {command} lab.yaml --only macs nfs")
    if not getattr(args, "file", None):
        from labctl.errors import UsageError

        raise UsageError(f"{command} needs the topology FILE", hint=f"labctl {command} lab.yaml")
