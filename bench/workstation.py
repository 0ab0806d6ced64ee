#!/usr/bin/env python3
"""Benchmark: the simulated Workstation (`labctl up --sim`'s vms/start stages) and the machine checks.

Measures, in a temporary sim dir (everything on this machine, hosts on 127.0.0.1):
  1. N-1 linked clones of one golden simulated ESXi host (snapshot "base" first, clone settings applied to each
     clone's .vmx through labctl.render.vmx) — the Workstation side of the `vms` stage;
  2. N power-ons (each starts its own `labctl.sim.hostd` process and waits for its SSH banner), then N power-offs;
  3. `labctl vmnet check` on 20 /dev/vmnetN nodes in a temp dir, and `labctl doctor FILE` (wall clock, in-process).
Every process is stopped by PID at the end, also on failure.

Usage: python bench/workstation.py [--hosts 16] [--flavor esxi] [--version 8.0]

Last figures (2 cores shared with other work, Python 3.11, 16 ESXi 8.0 hosts), two runs:
  15 linked clones 0.11 s; 16 power-ons 5.4-7.3 s (each: own hostd process, listening and sending its SSH banner);
  16 power-offs 0.8-1.3 s
  vmnet check (20 nodes) 4-5 ms; doctor (esx35-ha-pair) 9 ms  (in-process, imports warm)
"""

from __future__ import annotations

import argparse
import io
import os
import stat
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def bench_sim(n: int, flavor: str, version: str) -> str:
    from labctl.sim.lab import HostSpec, LabSpec, down
    from labctl.workstation import clonecfg
    from labctl.sim.workstation import LabHosts, SimDriver

    hosts = tuple(
        HostSpec(
            f"h{i:02d}",
            flavor,
            version,
            f"10.0.0.{10 + i}",
            "255.255.255.0",
            (f"00:50:56:10:00:{i:02x}",),
            clone_of=None if i == 1 else "h01",
        )
        for i in range(1, n + 1)
    )
    with tempfile.TemporaryDirectory() as d:
        sim = Path(d)
        backend = LabHosts(
            sim, LabSpec(lab="bench", hosts=hosts), environ={"PATH": os.environ.get("PATH", "")}
        )
        drv = SimDriver(sim, backend)
        drv.verify()
        try:
            golden = drv.vmx_path("h01")
            golden.parent.mkdir(parents=True)
            golden.write_text(
                '.encoding = "UTF-8"\ndisplayName = "h01"\nethernet0.present = "TRUE"\n'
                'ethernet0.addressType = "static"\nethernet0.address = "00:50:56:10:00:01"\n'
            )
            t0 = time.perf_counter()
            for i in range(2, n + 1):
                name = f"h{i:02d}"
                clonecfg.ensure_linked_clone(
                    drv,
                    golden,
                    drv.vmx_path(name),
                    snapshot="base",
                    settings={
                        "displayName": name,
                        "uuid.action": "create",
                        "ethernet0.address": f"00:50:56:10:00:{i:02x}",
                    },
                )
            t1 = time.perf_counter()
            for i in range(1, n + 1):
                drv.start(drv.vmx_path(f"h{i:02d}"))
            t2 = time.perf_counter()
            assert len(drv.list_running()) == n
            for i in range(1, n + 1):
                drv.stop(drv.vmx_path(f"h{i:02d}"))
            t3 = time.perf_counter()
        finally:
            backend.stop_all()
            down(sim)
    return (
        f"{n} x {flavor} {version}: {n - 1} linked clones {t1 - t0:.2f} s; {n} power-ons {t2 - t1:.2f} s "
        f"(hostd up, SSH banner); {n} power-offs {t3 - t2:.2f} s"
    )


def bench_checks() -> str:
    from labctl.env import Env
    from labctl.cli.main import main

    with tempfile.TemporaryDirectory() as d:
        dev = Path(d) / "dev"
        dev.mkdir()
        for n in range(20):
            p = dev / f"vmnet{n}"
            if os.geteuid() == 0:
                os.mknod(p, stat.S_IFCHR | 0o600, os.makedev(119, n))
            else:
                p.write_text("")
        env = Env(stdout=io.StringIO(), stderr=io.StringIO(), environ={"PATH": "/usr/bin:/bin"})
        main(["vmnet", "check", "--dev-dir", str(dev), "--user", "nobody"], env)  # warm imports
        t0 = time.perf_counter()
        main(["vmnet", "check", "--dev-dir", str(dev), "--user", "nobody"], env)
        t1 = time.perf_counter()
        topo = str(ROOT / "topologies" / "esx35-ha-pair.yaml")
        main(["doctor", topo, "--dev-dir", str(dev), "--preferences", str(dev / "none")], env)
        t2 = time.perf_counter()
        main(["doctor", topo, "--dev-dir", str(dev), "--preferences", str(dev / "none")], env)
        t3 = time.perf_counter()
    return (
        f"vmnet check (20 nodes) {1000 * (t1 - t0):.0f} ms; doctor (esx35-ha-pair) {1000 * (t3 - t2):.0f} ms"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--flavor", default="esxi")
    ap.add_argument("--version", default="8.0")
    args = ap.parse_args()
    print(bench_sim(args.hosts, args.flavor, args.version))
    print(bench_checks())
    return 0


if __name__ == "__main__":
    sys.exit(main())
