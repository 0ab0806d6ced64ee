"""Where a simulated lab keeps its state (shared contract 1)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Mapping


def sim_dir(lab_name: str, env: Any = None, override: str | os.PathLike[str] | None = None) -> Path:
    """`--sim-dir` (override), else $LABCTL_SIM_DIR, else $XDG_STATE_HOME/labctl/sim/<lab>
    (default ~/.local/state/labctl/sim/<lab>). `env` is a labctl Env (relative paths follow its cwd) or a mapping."""
    environ: Mapping[str, str] = getattr(env, "environ", None) or (env if isinstance(env, Mapping) else os.environ)

    def path(p: str | os.PathLike[str]) -> Path:
        if env is not None and hasattr(env, "path"):
            return Path(env.path(p))
        return Path(os.path.expanduser(os.fspath(p))).absolute()

    if override:
        return path(override)
    if environ.get("LABCTL_SIM_DIR"):
        return path(environ["LABCTL_SIM_DIR"])
    if "/" in lab_name or lab_name in ("", ".", ".."):
        raise ValueError(f"lab name {lab_name!r} cannot name a directory")
    state = environ.get("XDG_STATE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"),
                                                         ".local", "state")
    return path(state) / "labctl" / "sim" / lab_name


def ensure_private(sim: str | os.PathLike[str]) -> Path:
    """Create the sim dir (and its parents) if needed and make it 0700, whichever command gets there first: it
    holds the client key, the hosts' password hashes and the pinned host keys."""
    p = Path(sim)
    p.mkdir(parents=True, exist_ok=True, mode=0o700)
    if p.stat().st_mode & 0o777 != 0o700:
        os.chmod(p, 0o700)
    return p


def host_dir(sim: Path, name: str) -> Path:
    return Path(sim) / "hosts" / name
