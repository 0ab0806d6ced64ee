"""Where a simulated lab keeps its state (shared contract 1)."""

from __future__ import annotations

import os
from pathlib import Path
from datetime import datetime, timezone
from typing import Any, Mapping

CREATED_FILE = "created"  # when labctl first made this simulated lab (ISO 8601, UTC)


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


def lab_created(sim: Path) -> datetime | None:
    """When the simulated lab in `sim` was created, or None when there is none there yet (no VMs, no hosts)."""
    sim = Path(sim)
    if not ((sim / "vms").is_dir() or (sim / "hosts").is_dir()):
        return None
    try:
        return datetime.fromisoformat((sim / CREATED_FILE).read_text().strip())
    except (OSError, ValueError):  # a lab from before the marker: its oldest entry is the best guess
        times = [e.stat().st_mtime for e in sim.iterdir()]
        return datetime.fromtimestamp(min(times), timezone.utc) if times else None


def mark_created(sim: Path) -> None:
    """Record the creation time of a new simulated lab (kept when there is one already)."""
    sim = Path(sim)
    sim.mkdir(parents=True, exist_ok=True)
    marker = sim / CREATED_FILE
    if marker.exists():
        return
    # Two commands may start a new lab at once (the second is then refused by the lab lock): each writes its own
    # temporary file and links it into place, which fails for the later one instead of replacing the first's time.
    import tempfile

    fd, name = tempfile.mkstemp(prefix=f".{CREATED_FILE}.", suffix=".tmp", dir=sim)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(datetime.now(timezone.utc).isoformat(timespec="seconds") + "\n")
        try:
            os.link(tmp, marker)
        except FileExistsError:
            pass
    finally:
        tmp.unlink(missing_ok=True)


def describe_existing(sim: Path, file: str, extra: str = "") -> str | None:
    """The line that tells a user an existing simulated lab is used, and how to start afresh; None when there is
    no lab in `sim`. `extra` is any option the commands need besides --sim (e.g. `--sim-dir X`)."""
    created = lab_created(sim)
    if created is None:
        return None
    when = created.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    opts = f"--sim {extra}".rstrip()
    return (f"using the existing simulated lab in {sim} (created {when}); to start from scratch: "
            f"labctl destroy {file} {opts} --yes, then run this again")
