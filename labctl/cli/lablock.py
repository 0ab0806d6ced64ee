"""The lab lock for commands that change a lab (labctl.lock): where it lives and how the holder is named."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any


def command_line(args: Any) -> str:
    """The labctl command line of this run, as the lock's holder is shown to a second command."""
    argv = getattr(args, "_argv", None)
    return "labctl " + (shlex.join(argv) if argv else str(getattr(args, "command", "")))


def lab_lock(args: Any, topology: Any, sim_dir: Path | None = None):
    """The lock of the lab a command changes: the sim dir of a simulated lab, `<vm_dir>/.labctl` of a real one."""
    from labctl.lock import lab_lock as _lock

    return _lock(sim_dir if sim_dir is not None else topology.state_dir, command_line(args), lab=topology.lab)


def run_locked(args: Any, env: Any, topology: Any, fn: Any, *, changes: bool = True) -> Any:
    """`fn()` under the lab's lock when the command `changes` the lab (not for --dry-run)."""
    if not changes:
        return fn()
    with lab_lock_from_args(args, env, topology):
        return fn()


def lab_lock_from_args(args: Any, env: Any, topology: Any):
    """`lab_lock` for a command with `--sim [--sim-dir DIR]` options."""
    sim = None
    if getattr(args, "sim", False):
        from labctl.sim.paths import sim_dir

        sim = Path(sim_dir(topology.lab, env, getattr(args, "sim_dir", None)))
        if not sim.is_dir():  # no simulated lab: the command says so (status 6); locking would create its dir
            import contextlib

            return contextlib.nullcontext()
    return lab_lock(args, topology, sim)
