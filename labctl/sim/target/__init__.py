"""The physical side of a simulated `target: vsphere` lab: a vcsim that plays the user's vSphere, and its hosts.

A lab with `target: {kind: vsphere, ...}` runs its nested ESX hosts as VMs on a physical ESXi host or vCenter.
With `--sim`, that physical side is a second vCenter simulator (`-esx` for a standalone host, else a vCenter with
the target's datacenter, cluster and datastore names), next to the lab's own vcsim (the nested lab's vCenter):

    <sim dir>/target/
        vcsim/            its working directory (datastore directories: where uploaded ISOs land)
        disks/<vm moid>/  each VM's disk: the simulated ESX host's state (copied at snapshots and clones)
        processes.json    the vcsim and the watcher (PID, argv, start time), written by `start`
        hosts.json        one hostd process per powered-on vmkernel VM, written by the watcher only
        endpoint.json     url, user, mode, password_file (0600) — never the password itself
        logs/             the watcher's log and each VM's console log (vmware.log's role)

The watcher (`python -m labctl.sim.target.watch`) is what the hypervisor is to a VM: when vcsim powers a VM whose
guestId is `vmkernel*` on, it translates the VM's configuration (MACs, CD-ROMs with the files behind their
datastore paths, boot order, firmware, extraConfig) into the .vmx keys the simulated installer takes and boots it
(`labctl.sim.installer.power_on`), then starts a `labctl.sim.hostd` process for it, published in the sim dir's
endpoints.json like the simulated Workstation's hosts; powering off stops that process. It learns of changes by
long-polling the simulator's own view (`/_labctl/vms`, see main.go): every answer is the whole state, so a change
missed, merged or made while no watcher ran is found at the next answer (the watcher reconciles, it does not
replay events). Why not PropertyCollector.WaitForUpdatesEx: vcsim 0.24.2 reports only changes made through its
registry's Update (not every device or extraConfig change), batches on a 250 ms ticker, and the watcher's calls
would be counted with labctl's own in the call statistics the benchmark reports.

Everything here is stopped by recorded PID only (`stop`), also when a test fails.
"""

from __future__ import annotations

import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from labctl.errors import EnvironmentProblem, LabctlError

TARGET_DIR = "target"
PROCESSES = "processes.json"
HOSTS = "hosts.json"
ENDPOINT = "endpoint.json"
WATCH_READY = "watch.ready"
START_TIMEOUT = 30.0


def target_dir(sim: Path) -> Path:
    return Path(sim) / TARGET_DIR


@dataclass(frozen=True)
class TargetSim:
    """A running physical side: where labctl's vSphere backend connects instead of the topology's target."""

    url: str
    user: str
    password: str
    mode: str  # "esx" | "vcenter"
    pid: int
    sim_dir: Path

    def vcsim(self):
        from labctl.sim.vcsim import Vcsim

        return Vcsim(url=self.url, user=self.user, password=self.password, pid=self.pid,
                     workdir=target_dir(self.sim_dir) / "vcsim")

    @property
    def url_with_credentials(self) -> str:
        return self.vcsim().url_with_credentials


# ---------------------------------------------------------------- records


def _read(path: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads(path.read_text())["processes"])
    except (FileNotFoundError, KeyError, ValueError):
        return []


def _write(path: Path, records: list[dict[str, Any]]) -> None:
    from labctl.sim.state import write_json_atomic

    write_json_atomic(path, {"processes": records}, mode=0o600)


def records(sim: Path) -> list[dict[str, Any]]:
    """The target's own processes (vcsim, watcher) still ours, then the hosts the watcher started."""
    from labctl.sim.lab import is_ours

    d = target_dir(sim)
    return [r for r in (*_read(d / PROCESSES), *_read(d / HOSTS)) if is_ours(r)]


def is_running(sim: Path) -> bool:
    kinds = {r.get("kind") for r in records(sim)}
    return {"vcsim-target", "vcsim-watch"} <= kinds


def load(sim: Path) -> TargetSim:
    """The running physical side of this sim dir (EnvironmentProblem when there is none)."""
    d = target_dir(sim)
    if not is_running(sim):
        raise EnvironmentProblem(f"no simulated vSphere target running in {d}")
    info = json.loads((d / ENDPOINT).read_text())
    password = Path(info["password_file"]).read_text().strip()
    return TargetSim(url=info["url"], user=info["user"], password=password, mode=info["mode"], pid=int(info["pid"]),
                     sim_dir=Path(sim))


# ---------------------------------------------------------------- start / stop


def ensure_for(sim: Path, target: Any, *, environ: Mapping[str, str] | None = None,
               progress: Callable[[str], None] | None = None) -> tuple[TargetSim, bool]:
    """The physical side a topology's `target:` (a `topology.model.VsphereTarget`) describes, started when it is
    not running: a vCenter with its datacenter and cluster when it names either, else a standalone ESXi host; its
    datastore; its existing portgroups (`target.portgroups`). Returns (it, whether it was started now); the sim
    dir's endpoints.json gets its `target` entry (url, user, mode, pid, password_file — never the password)."""
    vcenter = bool(getattr(target, "datacenter", None) or getattr(target, "cluster", None))
    user = getattr(target, "user", None) or ("administrator@vsphere.local" if vcenter else "root")
    existing = sorted({pg for _, pg in (getattr(target, "portgroups", None) or ())})
    return ensure(sim, mode="vcenter" if vcenter else "esx", datacenter=getattr(target, "datacenter", None),
                  cluster=getattr(target, "cluster", None), datastore=getattr(target, "datastore", None), user=user,
                  portgroups=existing, environ=environ, progress=progress)


def ensure(sim: Path, *, mode: str, datacenter: str | None = None, cluster: str | None = None,
            datastore: str | None = None, user: str = "root", portgroups: Sequence[str] = (),
           environ: Mapping[str, str] | None = None,
           progress: Callable[[str], None] | None = None) -> tuple[TargetSim, bool]:
    """The physical side, started when it is not running; (it, whether it was started now). A simulator whose
    watcher is gone gets a new watcher (it starts from the simulator's whole state, so nothing is replayed); a
    watcher without its simulator is stopped and everything starts afresh."""
    kinds = {r.get("kind") for r in records(sim)}
    if kinds >= {"vcsim-target"} and "vcsim-watch" not in kinds:
        _restart_watcher(Path(sim), dict(os.environ if environ is None else environ))
    if is_running(sim):
        t = load(sim)
        _publish_target(Path(sim), t)
        return t, False
    stop(sim)  # whatever is left of an earlier one (by PID)
    return start(sim, mode=mode, datacenter=datacenter, cluster=cluster, datastore=datastore, user=user,
                 portgroups=portgroups, environ=environ, progress=progress), True


def start(sim: Path, *, mode: str, datacenter: str | None = None, cluster: str | None = None,
          datastore: str | None = None, user: str = "root", portgroups: Sequence[str] = (),
          environ: Mapping[str, str] | None = None,
          progress: Callable[[str], None] | None = None, timeout: float = START_TIMEOUT) -> TargetSim:
    """Start the physical vcsim (`mode` "esx": a standalone ESX host; "vcenter": a vCenter with one cluster of
    one host) and its watcher; both recorded in <sim>/target/processes.json before anything waits on them."""
    import secrets

    from labctl.sim import vcsim as launcher
    from labctl.sim.lab import start_ticks, stop_process, wait_cmdline
    from labctl.sim.paths import ensure_private

    if mode not in ("esx", "vcenter"):
        raise LabctlError(f"simulated vSphere target mode {mode!r}: esx or vcenter")
    environ = dict(os.environ if environ is None else environ)
    sim = ensure_private(Path(sim))
    d = target_dir(sim)
    if is_running(sim):
        raise LabctlError(f"a simulated vSphere target already runs in {d}", hint="stop it first")
    for sub in ("vcsim", "disks", "logs"):
        (d / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(d, 0o700)
    (d / HOSTS).unlink(missing_ok=True)
    (d / WATCH_READY).unlink(missing_ok=True)
    recs: list[dict[str, Any]] = []

    def record(pid: int, argv: list[str], kind: str) -> None:
        recs.append({"pid": pid, "argv": wait_cmdline(pid, argv), "hosts": [], "start_ticks": start_ticks(pid),
                     "kind": kind})
        _write(d / PROCESSES, recs)

    password = secrets.token_urlsafe(12)
    try:
        binary = launcher.build(environ, progress)
        vc = launcher.start(binary, d / "vcsim", esx=(mode == "esx"), disks=d / "disks", password=password,
                            user=user, hosts_per_cluster=1, clusters=1 if mode == "vcenter" else 0,
                            datacenter_name=datacenter if mode == "vcenter" else None,
                            cluster_name=cluster if mode == "vcenter" else None, datastore_name=datastore,
                            portgroups=list(portgroups),
                            on_spawn=lambda pid, argv: record(pid, argv, "vcsim-target"))
        pw_file = d / "vcsim.password"
        fd = os.open(pw_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(password + "\n")
        from labctl.sim.state import write_json_atomic

        write_json_atomic(d / ENDPOINT, {"url": vc.url, "user": user, "mode": mode, "pid": vc.pid,
                                         "password_file": str(pw_file)}, mode=0o600)
        _spawn_watcher(sim, environ, lambda pid, argv: record(pid, argv, "vcsim-watch"))
        deadline = time.monotonic() + timeout
        while not (d / WATCH_READY).exists():
            watcher = next(r for r in recs if r["kind"] == "vcsim-watch")
            from labctl.sim.lab import is_ours

            if not is_ours(watcher) or time.monotonic() > deadline:
                log = d / "logs" / "watch.log"
                tail = log.read_text(errors="replace")[-1200:] if log.exists() else ""
                raise EnvironmentProblem(f"the simulated vSphere target's watcher did not start:\n{tail}")
            time.sleep(0.02)
    except BaseException:
        for r in reversed(recs):
            stop_process(r)
        _write(d / PROCESSES, [])
        raise
    t = TargetSim(url=vc.url, user=user, password=password, mode=mode, pid=vc.pid, sim_dir=sim)
    _publish_target(sim, t)
    return t


class _EndpointsLock:
    """flock beside endpoints.json for this side's read-modify-write of it (the watcher and labctl both edit it)."""

    def __init__(self, sim: Path):
        self.path = Path(sim) / ".endpoints.lock"

    def __enter__(self):
        import fcntl

        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self.fd)  # releases the lock


def _publish_target(sim: Path, t: TargetSim) -> None:
    """endpoints.json's `target` entry: where `--sim` reaches the simulated vSphere (shared with the lab's hosts'
    entries; the rest of the file is left as it is)."""
    with _EndpointsLock(sim):
        _publish_target_locked(sim, t)


def _publish_target_locked(sim: Path, t: TargetSim) -> None:
    from labctl.sim.endpoints import ENDPOINTS_FILE
    from labctl.sim.state import write_json_atomic

    path = Path(sim) / ENDPOINTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        data = {"lab": "", "hosts": {}, "jump": None, "vcenter": None,
                "known_hosts": str(Path(sim) / "known_hosts"), "identity_file": str(Path(sim) / "id_rsa")}
    entry = {"url": t.url, "user": t.user, "mode": t.mode, "pid": t.pid,
             "password_file": str(target_dir(sim) / "vcsim.password")}
    if data.get("target") != entry:
        data["target"] = entry
        write_json_atomic(path, data)


def _restart_watcher(sim: Path, environ: Mapping[str, str], timeout: float = START_TIMEOUT) -> None:
    from labctl.sim.lab import is_ours, start_ticks, wait_cmdline

    d = target_dir(sim)
    recs = [r for r in _read(d / PROCESSES) if r.get("kind") != "vcsim-watch" and is_ours(r)]
    (d / WATCH_READY).unlink(missing_ok=True)

    def record(pid: int, argv: list[str]) -> None:
        recs.append({"pid": pid, "argv": wait_cmdline(pid, argv), "hosts": [], "start_ticks": start_ticks(pid),
                     "kind": "vcsim-watch"})
        _write(d / PROCESSES, recs)

    _spawn_watcher(sim, environ, record)
    deadline = time.monotonic() + timeout
    while not (d / WATCH_READY).exists() and time.monotonic() < deadline:
        time.sleep(0.02)


def _spawn_watcher(sim: Path, environ: Mapping[str, str], on_spawn: Callable[[int, list[str]], None]) -> None:
    import subprocess

    argv = [sys.executable, "-m", "labctl.sim.target.watch", "--sim-dir", str(Path(sim).resolve())]
    env = {"PATH": environ.get("PATH", os.defpath), "PYTHONPATH": os.pathsep.join(sys.path)}
    log = target_dir(sim) / "logs" / "watch.log"
    with open(log, "ab") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out, env=env,
                                start_new_session=True, cwd=str(sim))
    try:
        on_spawn(proc.pid, argv)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def stop(sim: Path) -> list[dict[str, Any]]:
    """Stop the physical side by recorded PIDs: the watcher first (so it starts nothing more), then the hosts it
    started, then vcsim. Returns the records of what was running. The disks stay (like a datastore's files) until
    the directory is removed."""
    from labctl.sim.lab import stop_process
    from labctl.sim.vcsim import remove_scratch

    d = target_dir(sim)
    own = _read(d / PROCESSES)
    stopped = []
    for r in [*[r for r in own if r.get("kind") == "vcsim-watch"], *_read(d / HOSTS),
              *[r for r in own if r.get("kind") != "vcsim-watch"]]:
        if stop_process(r):
            stopped.append(r)
        _reap(int(r["pid"]))
    _write(d / PROCESSES, [])
    _write(d / HOSTS, [])
    remove_scratch(d / "vcsim")
    (d / WATCH_READY).unlink(missing_ok=True)
    if stopped:
        unpublish(Path(sim))
    _unpublish_target(Path(sim))
    return stopped


def _reap(pid: int) -> None:
    """Collect a stopped child of this process (the one that started it) so no zombie keeps its PID."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


# ---------------------------------------------------------------- a VM's configuration as .vmx keys


def vmx_config(vm: Mapping[str, Any]) -> dict[str, str]:
    """The .vmx keys (interface 3 of the shared contract) that a vcsim VM's configuration stands for.

    NICs become `ethernetN.*` in device order (a manual MAC is `addressType = "static"`, else the generated one);
    CD-ROMs keep their controller position (`sata0:1`, `ide1:0`) with the *local file* behind the datastore path
    as `fileName` (a CD whose datastore path names no file has an empty fileName, which boots nothing); the boot
    order and firmware as Workstation spells them; extraConfig keys as they are (guestinfo.* included)."""
    cfg: dict[str, str] = {"displayName": str(vm.get("name", ""))}
    gid = str(vm.get("guestId") or "")
    if gid:
        cfg["guestOS"] = gid[:-len("Guest")] if gid.endswith("Guest") else gid
    if vm.get("firmware"):
        cfg["firmware"] = str(vm["firmware"])
    if vm.get("bootOrder"):
        cfg["bios.bootOrder"] = ",".join(vm["bootOrder"])
    for i, nic in enumerate(vm.get("nics") or []):
        p = f"ethernet{i}"
        cfg[f"{p}.present"] = "TRUE"
        cfg[f"{p}.virtualDev"] = {"VirtualVmxnet3": "vmxnet3", "VirtualE1000": "e1000",
                                  "VirtualE1000e": "e1000e"}.get(str(nic.get("type")), str(nic.get("type", "")))
        cfg[f"{p}.startConnected"] = "TRUE" if nic.get("startConnected", True) else "FALSE"
        mac = str(nic.get("mac") or "").lower()
        if str(nic.get("addressType") or "").lower() == "manual":
            cfg[f"{p}.addressType"] = "static"
            cfg[f"{p}.address"] = mac
        else:
            cfg[f"{p}.addressType"] = "generated"
            cfg[f"{p}.generatedAddress"] = mac
    for cd in vm.get("cdroms") or []:
        ctl = cd.get("controller") or "ide"
        p = f"{ctl}{int(cd.get('bus') or 0)}:{int(cd.get('unit') or 0)}"
        if ctl == "sata":
            cfg[f"sata{int(cd.get('bus') or 0)}.present"] = "TRUE"
        cfg[f"{p}.present"] = "TRUE"
        cfg[f"{p}.deviceType"] = "cdrom-image" if cd.get("iso") else "atapi-cdrom"
        cfg[f"{p}.fileName"] = str(cd.get("localPath") or "")
        cfg[f"{p}.startConnected"] = "TRUE" if cd.get("startConnected") else "FALSE"
    for key, value in (vm.get("extraConfig") or {}).items():
        if key != "govcsim":  # vcsim's own marker, not part of a real VM's configuration
            cfg[str(key)] = str(value)
    return cfg


# ---------------------------------------------------------------- the lab's endpoint map


def publish(sim: Path, recs: list[dict[str, Any]]) -> None:
    """endpoints.json's hosts (and known_hosts) for the hosts running now. Only the `hosts` entry is this side's:
    every other entry (the lab's vCenter, the target's own entry, a jump host) is kept as it is in the file."""
    with _EndpointsLock(sim):
        _publish_locked(sim, recs)


def _publish_locked(sim: Path, recs: list[dict[str, Any]]) -> None:
    from labctl.errors import LabctlError
    from labctl.sim import lab
    from labctl.sim import state as S
    from labctl.sim.endpoints import ENDPOINTS_FILE, Endpoint
    from labctl.sim.paths import host_dir

    hosts: dict[str, Endpoint] = {}
    for r in recs:
        if not lab.is_ours(r):
            continue
        name = r["hosts"][0]
        hdir = host_dir(sim, name)
        try:
            d = json.loads((hdir / "listen.json").read_text())
            st = S.load_state(hdir)
        except (FileNotFoundError, ValueError, LabctlError):
            continue
        if d.get("pid") != r["pid"]:
            continue
        # the address its own configuration has now (a clone re-addressed by its identity script has its own)
        mgmt = st.interface(st.management_name)
        address = mgmt.ip if mgmt is not None and mgmt.ip else st.ssh_address
        hosts[name] = Endpoint(name, address or "", "127.0.0.1", int(d["port"]), int(d["pid"]), st.flavor,
                               st.version, dict(d.get("host_key_fingerprints") or {}))
    path = Path(sim) / ENDPOINTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        data = {"lab": "", "hosts": {}, "jump": None, "vcenter": None,
                "known_hosts": str(Path(sim) / "known_hosts"), "identity_file": str(Path(sim) / lab.CLIENT_KEY)}
    new = {n: e.to_dict() for n, e in hosts.items()}
    if data.get("hosts") == new:
        return
    lab.publish_known_hosts(sim, {n: e.port for n, e in hosts.items()})
    data["hosts"] = new
    S.write_json_atomic(path, data)


def _unpublish_target(sim: Path) -> None:
    with _EndpointsLock(sim):
        _unpublish_target_locked(sim)


def _unpublish_target_locked(sim: Path) -> None:
    from labctl.sim.endpoints import ENDPOINTS_FILE
    from labctl.sim.state import write_json_atomic

    path = Path(sim) / ENDPOINTS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return
    if data.pop("target", None) is not None:
        write_json_atomic(path, data)


def unpublish(sim: Path) -> None:
    publish(sim, [])


