#!/usr/bin/env python3
"""Benchmark: 16 nested ESXi hosts (1 golden + 15 linked clones) onto a simulated vSphere, N workers against one.

What one run does, against the simulated physical side of a `target: vsphere` lab (`labctl.sim.target`: a vCenter
simulator with the target's datacenter DC1, cluster Compute, datastore vsanDatastore, and the watcher that boots a
simulated ESX host for each powered-on vmkernel VM), through labctl's own vSphere driver
(`labctl.vsphere.target.driver.VsphereDriver`, one counted session) and its bounded runner (`TaskRunner(workers)`):
  1. create the golden VM from its rendered .vmx, upload the patched installer ISO and the kickstart CD (by
     content hash), attach them, power on: the simulated installer installs from the datastore files; wait until
     the host answers; power off; snapshot `base`;
  2. 15 linked clones (CloneVM_Task, createNewChildDiskBacking from `base`) with their clone settings, by the
     runner;
  3. power on all 16 by the runner; wait until the simulated target serves all 16 hosts (SSH banner).
Timed from step 1 to the last host up, and the clones + power-ons phase alone (labctl's vSphere work; the rest is
the simulated hosts' boot in the harness); vSphere calls are the session's own count (every SOAP call and HTTP
transfer), per host = total / 16; the harness's long poll is not a vSphere call and is not counted.

Each figure compares `--workers` (A) with one worker (B) in the same script: alternating A B A B over `--pairs`
pairs, each run on a fresh simulated target; the result is the median of the B/A pair ratios (the medians of the
absolute times are printed for reference only). labctl runs from a non-editable install (a wheel of this tree in a
throw-away venv made from the same interpreter), like bench/render.py. Simulators at zero latency. Everything on
127.0.0.1; every process is stopped by its recorded PID at the end of each run, also on failure.

    python bench/vsphere_target.py [--hosts 16] [--workers 8] [--pairs 2] [--python PY]

Last figures (2 shared cores at load ~10, Python 3.11.7, labctl at d6be955 + this script, --pairs 3):
  wall time, 8 workers: median 9.78 s (golden install + snapshot 1.66 s); 1 worker: median 10.24 s
  1 worker / 8 workers, median of the pair ratios: wall 1.12x; the 15 clones + 16 power-ons alone 1.67x
  (2.03 s vs 3.20 s); vSphere calls 223 in all, 13.9 per host, 9 per linked clone with its settings, 3 per power-on

Target (issue 14): vSphere calls per host bounded — at most 14 per linked clone (clone with its settings ≤ 10,
power-on ≤ 3, and its share of the runner's reads), stated below as measured.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BOUND_PER_CLONE = 14


def topology_text(n: int, iso: Path, vm_dir: Path) -> str:
    names = [f"esxi{i:02d}" for i in range(1, n + 1)]
    hosts = [f"""  - name: {names[0]}
    flavor: esxi
    version: "8.0u2"
    cpus: 4
    memory_mb: 12288
    disk_gb: 40
    iso: {iso}
    nics: [mgmt, storage]
    management: {{network: mgmt, ip: 172.20.30.11}}
    vmkernel:
      - {{network: storage, ip: 172.20.40.11}}"""]
    for i, name in enumerate(names[1:], start=2):
        hosts.append(f"""  - name: {name}
    linked_clone_of: {names[0]}
    management: {{network: mgmt, ip: 172.20.30.{10 + i}}}
    vmkernel:
      - {{network: storage, ip: 172.20.40.{10 + i}}}""")
    # the lab as it renders for Workstation (the driver maps its networks to the target's portgroups: the
    # networks stage's part, not timed here); the target itself is the driver's `target` below
    return f"""lab: bench-target-{n}
workstation:
  version: "17.5"
  vm_dir: {vm_dir}
networks:
  - {{name: mgmt, type: host-only, vmnet: 3, subnet: 172.20.30.0/24, host_ip: 172.20.30.1, dhcp: false}}
  - {{name: storage, type: lan-segment, subnet: 172.20.40.0/24}}
esx_hosts:
{chr(10).join(hosts)}
ssh: {{user: root, password_env: LAB_ESX_PASSWORD}}
"""


# ---------------------------------------------------------------- one run (inside the venv)


def one_run(n: int, workers: int) -> dict:
    from types import SimpleNamespace

    from labctl.iso import synthetic
    from labctl.iso.kickstart import write_kickstart_iso
    from labctl.iso.patch import patch_copy
    from labctl.render import cryptpw
    from labctl.render import vmx as vmxlib
    from labctl.render.kickstart import render_kickstart
    from labctl.render.lab import clone_settings, render_lab
    from labctl.sim import lab
    from labctl.sim import target as T
    from labctl.topology import load_topology
    from labctl.vsphere.connection import resolve_target
    from labctl.vsphere.target.driver import VsphereDriver
    from labctl.vsphere.target.session import Session, TaskRunner
    from labctl.vsphere.target.vmxfacts import network_refs

    with tempfile.TemporaryDirectory(prefix="bench-vsphere-") as tmp:
        work = Path(tmp)
        sim = work / "sim"
        src_iso, iso = work / "src.iso", work / "patched.iso"
        synthetic.write_esxi_iso(src_iso, "8.0u2")
        patch_copy(src_iso, iso)
        topo_path = work / "lab.yaml"
        topo_path.write_text(topology_text(n, iso, work / "vms"))
        topo = load_topology(topo_path)
        golden = topo.esx_hosts[0]
        ks = work / "ks.iso"
        pw_hash = cryptpw.hash_password("bench-pw-1", cryptpw.scheme_for("esxi", golden.version_info.release))
        write_kickstart_iso(ks, render_kickstart(topo, golden, pw_hash))
        vmxs: dict[str, Path] = {}
        for f in render_lab(topo):
            if f.kind == "vmx":
                p = work / "vms" / f.relpath
                p.parent.mkdir(parents=True, exist_ok=True)
                p.write_text(f.content)
                vmxs[p.stem] = p
        # the portgroups exist already: the user's Lab-Mgmt and the networks stage's private one (not timed)
        storage_pg = f"labctl-{topo.lab}-storage"
        tsim = T.start(sim, mode="vcenter", datacenter="DC1", cluster="Compute", datastore="vsanDatastore",
                       portgroups=["Lab-Mgmt", storage_pg])
        try:
            vc = tsim.vcsim()
            session = Session.open(resolve_target(settings=None, environ={}, override_url=tsim.url_with_credentials))
            target = SimpleNamespace(datacenter="DC1", cluster="Compute", esx_host=None, resource_pool=None,
                                     datastore="vsanDatastore", folder=f"labs/bench-target-{n}",
                                     disk_provisioning="thin")
            drv = VsphereDriver(session, target, work / "vms", portgroups={"mgmt": "Lab-Mgmt", "storage": storage_pg},
                                network_refs=network_refs(topo.networks))

            def up(names) -> None:
                deadline = time.monotonic() + 300
                while True:
                    try:
                        hosts = json.loads((sim / "endpoints.json").read_text()).get("hosts", {})
                    except (FileNotFoundError, ValueError):
                        hosts = {}
                    if all(x in hosts and lab.ssh_banner_ok(hosts[x]["port"]) for x in names):
                        return
                    if time.monotonic() > deadline:
                        raise SystemExit(f"hosts not up: {sorted(set(names) - set(hosts))}")
                    time.sleep(0.05)

            t0 = time.perf_counter()
            g = vmxs[golden.name]
            drv.create_disk(g, golden.disk_gb, "pvscsi")
            drv.attach_media(g, iso, kickstart=ks)
            drv.start(g)
            up([golden.name])
            drv.stop(g)
            drv.snapshot(g, "base")
            t_golden = time.perf_counter() - t0
            runner = TaskRunner(workers=workers)
            clones = [h for h in topo.esx_hosts if h.is_clone]

            def make_clone(name: str) -> None:
                h = topo.host(name)
                drv.clone(g, h.vmx_path, snapshot="base", clone_name=name)
                drv.reconfigure(h.vmx_path, clone_settings(topo, h))

            calls_before_clones = session.total
            bad = [o for o in runner.run([h.name for h in clones], make_clone, what="cloning") if not o.ok]
            if bad:
                raise SystemExit(f"clones failed: {[str(o.error) for o in bad][:3]}")
            calls_clones = session.total - calls_before_clones
            t_clones = time.perf_counter() - t0 - t_golden
            names = [h.name for h in topo.esx_hosts]
            before = session.total
            bad = [o for o in runner.run(names, lambda x: drv.start(topo.host(x).vmx_path), what="powering on") if not o.ok]
            if bad:
                raise SystemExit(f"power-ons failed: {[str(o.error) for o in bad][:3]}")
            calls_start = session.total - before
            t_power = time.perf_counter() - t0 - t_golden - t_clones
            up(names)
            wall = time.perf_counter() - t0
            linked = sum(1 for c in vc.clones() if c["linked"])
            total = session.total
            calls = dict(session.calls)
            session.close()
        finally:
            T.stop(sim)
    return {"workers": workers, "hosts": n, "wall": wall, "golden": t_golden, "clones": t_clones,
            "vsphere": t_clones + t_power,
            "calls_total": total, "calls_per_host": total / n, "calls_per_clone": calls_clones / max(1, n - 1),
            "calls_per_power_on": calls_start / n, "linked_clones": linked, "calls": calls}


# ---------------------------------------------------------------- the comparison (outside)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=16)
    ap.add_argument("--workers", type=int, default=8)
    ap.add_argument("--pairs", type=int, default=2)
    ap.add_argument("--python", help="an existing non-editable install's interpreter (default: build one)")
    ap.add_argument("--one", type=int, metavar="WORKERS", help=argparse.SUPPRESS)  # a single run, JSON out
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one_run(args.hosts, args.one)))
        return 0
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from render import install_copy  # the same non-editable install as the start-up bench

    with tempfile.TemporaryDirectory(prefix="bench-vsphere-venv-") as tmp:
        py = Path(args.python) if args.python else install_copy(Path(tmp))

        def run(workers: int) -> dict:
            p = subprocess.run([str(py), str(Path(__file__).resolve()), "--hosts", str(args.hosts), "--one",
                                str(workers)], capture_output=True, text=True, cwd=tmp)
            if p.returncode != 0:
                raise SystemExit(f"run with {workers} workers failed ({p.returncode}):\n{p.stderr[-3000:]}")
            return json.loads(p.stdout.strip().splitlines()[-1])

        a_runs, b_runs, ratios, vratios = [], [], [], []
        for _ in range(args.pairs):
            a = run(args.workers)
            b = run(1)
            a_runs.append(a)
            b_runs.append(b)
            ratios.append(b["wall"] / a["wall"])
            vratios.append(b["vsphere"] / a["vsphere"])
            print(f"  pair: {args.workers} workers {a['wall']:.2f} s (clones + power-ons {a['vsphere']:.2f} s), "
                  f"1 worker {b['wall']:.2f} s ({b['vsphere']:.2f} s)", flush=True)
    a = a_runs[-1]
    print(f"{args.hosts} nested ESXi hosts ({args.hosts - 1} linked clones: {a['linked_clones']} made with "
          f"createNewChildDiskBacking) onto simulated vSphere ({sys.version.split()[0]}):")
    print(f"  wall time, {args.workers} workers: median {statistics.median(r['wall'] for r in a_runs):.2f} s "
          f"(golden install + snapshot {statistics.median(r['golden'] for r in a_runs):.2f} s)")
    print(f"  wall time, 1 worker:  median {statistics.median(r['wall'] for r in b_runs):.2f} s")
    print(f"  1 worker / {args.workers} workers, median of {args.pairs} pair ratios: wall {statistics.median(ratios):.2f}x,"
          f" the 15 clones + 16 power-ons alone {statistics.median(vratios):.2f}x (medians "
          f"{statistics.median(r['vsphere'] for r in a_runs):.2f} s vs {statistics.median(r['vsphere'] for r in b_runs):.2f} s)")
    print("  (the rest of the wall time is the simulated hosts booting: the harness's, not labctl's)")
    print(f"  vSphere calls: {a['calls_total']} in all, {a['calls_per_host']:.1f} per host; per linked clone with "
          f"its settings {a['calls_per_clone']:.1f} (bound {BOUND_PER_CLONE}), per power-on "
          f"{a['calls_per_power_on']:.1f}")
    top = sorted(a["calls"].items(), key=lambda kv: -kv[1])[:8]
    print("  by call: " + ", ".join(f"{k} {v}" for k, v in top))
    ok = a["calls_per_clone"] <= BOUND_PER_CLONE and a["linked_clones"] == args.hosts - 1
    if not ok:
        print("  OVER THE BOUND or not all linked", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
