"""Everything a pipeline run needs, passed explicitly (no global state, no string-keyed bags)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from labctl.env import Env
    from labctl.plan.progress import Progress
    from labctl.topology import Topology


@dataclass(frozen=True)
class Options:
    sim: bool = False
    sim_dir: str | None = None
    force: bool = False
    trust_new_hosts: bool = False
    apply_network: bool = False
    vcenter_url: str | None = None
    insecure: bool = False
    thumbprint: str | None = None
    mac_strategy: str | None = None
    only: tuple[str, ...] = ()
    skip: tuple[str, ...] = ()
    vmnet_group: str | None = None
    reboot_for_vibs: bool = False
    install_timeout: float | None = None  # seconds the install stage waits per host (None: its default)


def rebase(topo: Topology, vm_dir: Path) -> Topology:
    """The same lab with its VMs under another directory (the simulated Workstation keeps them in the sim dir)."""
    return topo.rebased(vm_dir)


@dataclass
class Context:
    topology: Topology  # rebased into the sim dir when simulating
    env: Env  # the outside world: streams, environ, cwd, secret prompts
    options: Options
    progress: Progress
    apply: bool  # False: plan only, change nothing
    display_name: str = ""
    sim_dir: Path | None = None
    failed_hosts: dict[str, str] = field(default_factory=dict)  # host -> stage it failed in
    pending: set[str] = field(default_factory=set)  # plan only: VMs this run would create or start first
    _closers: list = field(default_factory=list)
    _cache: dict = field(default_factory=dict)

    # Host-side paths: the real ones, or a private tree inside the sim dir.
    @property
    def host_root(self) -> Path:
        return self.sim_dir / "host" if self.sim_dir else Path("/")

    @property
    def etc_vmware(self) -> Path:
        return self.host_root / "etc" / "vmware"

    @property
    def dev_dir(self) -> Path:
        return self.host_root / "dev"

    @property
    def preferences(self) -> Path:
        if self.sim_dir:
            return self.host_root / "home" / ".vmware" / "preferences"
        from labctl.workstation.preferences import default_preferences_path

        return default_preferences_path(self.env.environ)

    def live_hosts(self, names) -> list[str]:
        """Hosts that have not failed in an earlier stage (and, when planning, that already run)."""
        return [n for n in names if n not in self.failed_hosts and n not in self.pending]

    def once(self, key: str, make):
        """A lazily made, cached resource (driver, SSH connections, vSphere client) closed at the end."""
        if key not in self._cache:
            value = make()
            self._cache[key] = value
            close = getattr(value, "close", None)
            if close:
                self._closers.append(close)
        return self._cache[key]

    def close(self) -> None:
        while self._closers:
            fn = self._closers.pop()
            try:
                fn()
            except Exception:  # closing must not hide the run's own result
                pass


def default_sim_dir(lab: str, environ: dict[str, str], override: str | None) -> Path:
    try:
        from labctl.sim.paths import sim_dir
    except ImportError:  # pragma: no cover - the sim package ships with labctl
        sim_dir = None
    if sim_dir is not None:
        return Path(sim_dir(lab, _EnvView(environ), override))
    if override:
        return Path(override)
    if environ.get("LABCTL_SIM_DIR"):
        return Path(environ["LABCTL_SIM_DIR"])
    state = environ.get("XDG_STATE_HOME") or os.path.join(environ.get("HOME", "~"), ".local", "state")
    return Path(os.path.expanduser(state)) / "labctl" / "sim" / lab


class _EnvView:
    def __init__(self, environ: dict[str, str]):
        self.environ = environ
