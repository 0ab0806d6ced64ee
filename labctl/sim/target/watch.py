"""The simulated vSphere target's hypervisor side: boots a simulated ESX host for each powered-on vmkernel VM.

    python -m labctl.sim.target.watch --sim-dir DIR

Started and recorded by `labctl.sim.target.start` (read its docstring for the layout and for why it
long-polls the simulator's own view instead of WaitForUpdatesEx). Each round it compares the simulator's VMs with
the host processes it runs and changes only what differs:
- a `vmkernel*` VM powered on (a new `bootTime`: a power-on or a reset) and not served: its disk is
  `<target>/disks/<moid>` (the simulator copies it at snapshots and clones), reachable as `<sim>/hosts/<name>`
  for the host process; a clone's disk gets the clone's name and boots for the first time; the VM's
  configuration becomes .vmx keys (`target.vmx_config`) and `labctl.sim.installer.power_on` decides what the VM
  does (boot the disk, run the kickstart from the attached CD, wait at the EULA screen, nothing bootable, fail);
  when it booted an ESX host, one `labctl.sim.hostd` process serves it;
- a VM powered off, reset or deleted: its host process is stopped (by PID);
- guest variables a running host set (`vmtoolsd --cmd "info-set guestinfo.K V"`) are reported to the VM's
  configuration, where the vSphere API shows them;
- `<sim>/endpoints.json` and `known_hosts` list the hosts whose process runs now (each at the address its own
  configuration has, as ARP would find it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from labctl.sim import target as T

BOOT_WORKERS = 8  # VMs booted at once in one round
POLL_WAIT = 0.5  # seconds a long poll waits; guest variables and endpoints are checked at least this often


def log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)


class Watcher:
    def __init__(self, sim: Path, tsim: T.TargetSim):
        self.sim = Path(sim)
        self.dir = T.target_dir(self.sim)
        self.vc = tsim.vcsim()
        self.booted: dict[str, str] = {}  # moid -> bootTime of the power-on already handled
        self.outcome: dict[str, str] = {}  # moid -> what that power-on did (installer result)
        self.guestvars_seen: dict[str, dict[str, str]] = {}
        self.procs: dict[str, Any] = {}
        self.lock = threading.Lock()  # hosts.json is rewritten by the boot threads

    # ---- records -------------------------------------------------------------------------------------
    def host_records(self) -> list[dict[str, Any]]:
        return T._read(self.dir / T.HOSTS)

    def _record_of(self, moid: str) -> dict[str, Any] | None:
        from labctl.sim.lab import is_ours

        for r in self.host_records():
            if r.get("vm") == moid and is_ours(r):
                return r
        return None

    # ---- one round -----------------------------------------------------------------------------------
    def reconcile(self, vms: list[dict[str, Any]]) -> None:
        by_moid = {v["moid"]: v for v in vms if str(v.get("guestId", "")).startswith("vmkernel")}
        for rec in self.host_records():
            vm = by_moid.get(rec.get("vm"))
            if vm is None or vm.get("powerState") != "poweredOn" or vm.get("bootTime") != rec.get("boot_time"):
                why = "deleted" if vm is None else ("reset" if vm.get("powerState") == "poweredOn" else "powered off")
                self.stop_host(rec, why)
        for moid in list(self.booted):
            vm = by_moid.get(moid)
            if vm is None or vm.get("powerState") != "poweredOn":
                self.booted.pop(moid, None)
                self.outcome.pop(moid, None)
        todo = []
        for moid, vm in by_moid.items():
            if vm.get("powerState") != "poweredOn" or self.booted.get(moid) == vm.get("bootTime"):
                continue
            self.booted[moid] = str(vm.get("bootTime"))
            todo.append(vm)
        if len(todo) == 1:
            self._power_on_one(todo[0])
        elif todo:  # VMs boot side by side, as on a real host
            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=min(BOOT_WORKERS, len(todo))) as pool:
                list(pool.map(self._power_on_one, todo))
        self.report_guestvars(by_moid)
        self.publish()

    # ---- power ---------------------------------------------------------------------------------------
    def _power_on_one(self, vm: dict[str, Any]) -> None:
        try:
            self.power_on(vm)
        except Exception as e:  # noqa: BLE001 - one VM's failure is its console's, the others go on
            self.outcome[vm["moid"]] = "failed"
            log(f"{vm['name']}: power-on failed: {e}")
            self._console(vm["name"], f"power-on failed: {e}")

    def _console(self, name: str, text: str) -> None:
        with open(self.dir / "logs" / f"{name}.log", "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}\n")

    def host_link(self, name: str, moid: str) -> Path:
        """<sim>/hosts/<name> -> <target>/disks/<moid>: where hostd finds the VM's disk."""
        from labctl.errors import LabctlError
        from labctl.sim.paths import host_dir

        disk = self.dir / "disks" / moid
        disk.mkdir(parents=True, exist_ok=True, mode=0o700)
        link = host_dir(self.sim, name)
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink():
            if Path(os.readlink(link)) == disk:
                return disk
            other = Path(os.readlink(link)).name
            if self._record_of(other) is not None:
                raise LabctlError(f"two powered-on VMs are named {name} ({other} and {moid}); "
                                  "the simulated lab addresses hosts by name")
            link.unlink()
        elif link.exists():
            raise LabctlError(f"{link} is a simulated Workstation host's disk, not a vSphere VM's")
        os.symlink(disk, link)
        return disk

    def power_on(self, vm: dict[str, Any]) -> None:
        from labctl.sim import state as S

        name, moid = vm["name"], vm["moid"]
        disk = self.host_link(name, moid)
        marker = disk / "clone-of.json"
        if marker.is_file() and (disk / S.STATE_FILE).is_file():  # a clone's first power-on: its own name
            data = json.loads((disk / S.STATE_FILE).read_text())
            data["name"] = name
            data["boot_count"] = 0
            S.write_json_atomic(disk / S.STATE_FILE, data)
            marker.unlink()
        config = T.vmx_config(vm)
        result = boot(disk, config, log_path=self.dir / "logs" / f"{name}.log", vm_name=name)
        self.outcome[moid] = result
        log(f"{name} ({moid}) powered on: {result}")
        if result in ("disk", "installed"):
            self.start_host(vm)

    def start_host(self, vm: dict[str, Any]) -> None:
        from labctl.sim import lab
        from labctl.sim.faults import CONTROL_FILE, Control, write_control
        from labctl.sim.paths import host_dir

        name, moid = vm["name"], vm["moid"]
        hdir = host_dir(self.sim, name)
        if not (hdir / CONTROL_FILE).exists():
            write_control(hdir, Control(latency=0.0, reboot_delay=0.2))
        (hdir / "listen.json").unlink(missing_ok=True)
        p, rec = lab.spawn_hostd(self.sim, [name], f"hostd-{name}.log", os.environ)
        rec.update({"vm": moid, "boot_time": vm.get("bootTime")})
        with self.lock:
            others = [r for r in self.host_records() if r.get("vm") != moid]
            T._write(self.dir / T.HOSTS, [*others, rec])
        self.procs[moid] = p
        deadline = time.monotonic() + 60
        while True:
            try:
                if json.loads((hdir / "listen.json").read_text()).get("pid") == p.pid:
                    break
            except (FileNotFoundError, ValueError):
                pass
            if p.poll() is not None or time.monotonic() > deadline:
                lab.stop_process(rec)
                log(f"{name}: host process did not listen (exit {p.returncode})")
                return
            time.sleep(0.02)

    def stop_host(self, rec: dict[str, Any], why: str) -> None:
        from labctl.sim import lab
        from labctl.sim.paths import host_dir

        name = rec["hosts"][0]
        lab.stop_process(rec)
        p = self.procs.pop(rec.get("vm"), None)
        if p is not None:
            try:
                p.wait(timeout=5)
            except Exception:  # noqa: BLE001
                pass
        powered_off(host_dir(self.sim, name))
        with self.lock:
            T._write(self.dir / T.HOSTS, [r for r in self.host_records() if r.get("pid") != rec.get("pid")])
        self.guestvars_seen.pop(str(rec.get("vm")), None)
        log(f"{name}: {why}, host process {rec['pid']} stopped")

    # ---- guest variables -----------------------------------------------------------------------------
    def report_guestvars(self, by_moid: dict[str, dict[str, Any]]) -> None:
        from labctl.sim.paths import host_dir

        for rec in self.host_records():
            moid = str(rec.get("vm"))
            vm = by_moid.get(moid)
            if vm is None:
                continue
            try:
                data = json.loads((host_dir(self.sim, rec["hosts"][0]) / "guestvars.json").read_text())
            except (FileNotFoundError, ValueError):
                continue
            runtime = {str(k): str(v) for k, v in (data.get("runtime") or {}).items()}
            have = {k.lower(): v for k, v in (vm.get("extraConfig") or {}).items()}
            todo = {k: v for k, v in runtime.items() if have.get(k.lower()) != v
                    and self.guestvars_seen.get(moid, {}).get(k) != v}
            if todo:
                self.vc.set_guestinfo(moid, todo)
                self.guestvars_seen.setdefault(moid, {}).update(todo)

    # ---- the lab's endpoint map ----------------------------------------------------------------------
    def publish(self) -> None:
        T.publish(self.sim, self.host_records())


def boot(disk: Path, config: dict[str, str], *, log_path: Path, vm_name: str) -> str:
    """What a VM does at power-on (shared contract 3): the hypervisor hands the guest its `guestinfo.*`, then the
    VM's firmware boots the disk or, when it is blank, the simulated installer's CD (`labctl.sim.installer`)."""
    from labctl.sim import guestvars, installer

    guestvars.powered_on(disk, config)
    return installer.power_on(disk, config, log=log_path, vm_name=vm_name)


def powered_off(hdir: Path) -> None:
    from labctl.sim import guestvars

    guestvars.powered_off(hdir)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labctl.sim.target.watch", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sim-dir", required=True, type=Path)
    args = p.parse_args(argv)
    sim = args.sim_dir.resolve()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    import logging

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)
    d = T.target_dir(sim)
    info = json.loads((d / T.ENDPOINT).read_text())
    tsim = T.TargetSim(url=info["url"], user=info["user"], password=Path(info["password_file"]).read_text().strip(),
                       mode=info["mode"], pid=int(info["pid"]), sim_dir=sim)
    w = Watcher(sim, tsim)
    gen = None
    first = True
    while not stop.is_set():
        try:
            state = w.vc.vms(after=gen, wait=POLL_WAIT)
        except OSError as e:
            log(f"cannot read the simulator's VMs: {e}")
            if stop.wait(0.5):
                break
            continue
        gen = int(state["generation"])
        w.reconcile(state["vms"])
        if first:
            (d / T.WATCH_READY).write_text(f"{os.getpid()}\n")
            first = False
    log("stopping")
    return 0


if __name__ == "__main__":
    sys.exit(main())
