#!/usr/bin/env python3
"""Benchmark: `labctl up FILE --sim` as a whole process (python -m labctl), cold and converged, and `labctl plan --sim`
on the converged lab, for
  (a) the seed lab topologies/esx35-ha-pair.yaml (2 ESX 3.5 hosts, one a linked clone; HA; NFS), and
  (b) a generated ESXi 8 lab: one golden host + N-1 linked clones (default 16 hosts) on a host-only management vmnet
      with a host adapter, a storage vmnet, one HA cluster with an isolation address, one NFS datastore on all hosts
      and the example VIB examples/vib/lab-tools built from its `source:` and installed on every host.

Each lab gets a fresh sim dir under a temp dir. The second `up` must report no changes (`--json`: changes == []),
and so must `plan`. The simulated lab is stopped at the end with `labctl down --sim` and `labctl destroy --sim --yes`
(processes stopped by their recorded PIDs), in a `finally`, also on failure; the script then checks that none of the
recorded PIDs is still alive. Everything runs on 127.0.0.1 (simulated hosts over SSH, govmomi's vcsim).

    python bench/up.py [--hosts 16] [--only seed|generated] [--keep]

Last figures (2 shared cores, Python 3.11, vcsim from the ~/.cache/labctl build; labctl at fd8c10f):
  esx35-ha-pair  (2 hosts + vCenter VM): up cold 3.37 s (28 changes), up again 0.77 s, plan 0.78 s
  esxi8-16 (16 hosts + vCenter VM):      up cold 7.84 s (146 changes), up again 1.10 s, plan 1.10 s
(earlier runs at 2129c9c: 3.21-3.31 / 0.75-0.81 / 0.75-0.83 s and 7.73-7.92 / 0.98-1.06 / 0.98-1.12 s)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "topologies" / "esx35-ha-pair.yaml"
STAGES = ("validate", "render", "networks", "vmnet", "vms", "start", "ssh", "macs", "nfs", "vcenter", "vibs")


def generated_topology(n: int, build_dir: Path) -> str:
    """n ESXi 8 hosts: esxi01 is the golden host, esxi02..esxiNN its linked clones."""
    names = [f"esxi{i:02d}" for i in range(1, n + 1)]
    hosts = [f"""  - name: {names[0]}
    flavor: esxi
    version: "8.0u2"
    cpus: 4
    memory_mb: 12288
    disk_gb: 40
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
    all_hosts = ", ".join(names)
    return f"""lab: bench-up-{n}
workstation:
  version: "17.5"
  vm_dir: ~/vmware/bench-up-{n}
networks:
  - name: mgmt
    type: host-only
    vmnet: 3
    subnet: 172.20.30.0/24
    host_ip: 172.20.30.1
    dhcp: false
  - name: storage
    type: host-only
    vmnet: 4
    subnet: 172.20.40.0/24
    host_ip: 172.20.40.1
    dhcp: false
esx_hosts:
{chr(10).join(hosts)}
vms:
  - name: vcsa
    guest_os: other5xlinux-64
    cpus: 2
    memory_mb: 14336
    disk_gb: 60
    nics: [mgmt]
    ip: 172.20.30.10
vcenter: {{host: 172.20.30.10, user: administrator@vsphere.local, password_env: LAB_VC_PASSWORD, datacenter: Lab, insecure: true}}
ssh: {{user: root, password_env: LAB_ESX_PASSWORD}}
clusters:
  - name: Big
    hosts: [{all_hosts}]
    ha: {{enabled: true, isolation_addresses: [172.20.30.10]}}
datastores:
  - {{name: nfs-shared, type: nfs, server: 172.20.40.1, share: /export/bench, hosts: [{all_hosts}]}}
vibs:
  - {{file: {build_dir / "lab-tools-1.0.0-1.vib"}, source: {ROOT / "examples" / "vib" / "lab-tools"}, hosts: [{all_hosts}], allow_community: true}}
"""


def labctl(env: dict[str, str], *argv: str) -> tuple[float, subprocess.CompletedProcess]:
    start = time.perf_counter()
    p = subprocess.run([sys.executable, "-m", "labctl", *argv], capture_output=True, text=True, cwd=ROOT, env=env)
    return time.perf_counter() - start, p


def report(p: subprocess.CompletedProcess, what: str) -> dict:
    if p.returncode != 0 or not p.stdout.strip():
        raise RuntimeError(f"{what} failed (exit {p.returncode}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout)


def recorded(sim: Path) -> dict[int, dict]:
    """The processes `labctl up --sim` recorded in processes.json, by PID."""
    try:
        return {int(r["pid"]): r for r in json.loads((sim / "processes.json").read_text())["processes"]}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def still_ours(rec: dict) -> bool:
    """Is the recorded PID still that process (same executable and start time)? A PID can be reused."""
    pid = int(rec["pid"])
    try:
        exe = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
        ticks = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        return False
    return exe == rec["argv"][0] and ticks == rec.get("start_ticks")


def stop_leftovers(records: dict[int, dict]) -> list[str]:
    """Stop (by PID) what `labctl down`/`destroy` left running of the processes the runs recorded; say what it was."""
    left = [r for r in records.values() if still_ours(r)]
    for r in left:
        os.kill(int(r["pid"]), signal.SIGTERM)
    deadline = time.monotonic() + 5
    while any(still_ours(r) for r in left) and time.monotonic() < deadline:
        time.sleep(0.05)
    for r in left:
        if still_ours(r):
            os.kill(int(r["pid"]), signal.SIGKILL)
    return [f"{r.get('kind')} pid {r['pid']}" for r in left]


def bench(label: str, topo: Path, work: Path, env: dict[str, str], keep: bool) -> dict:
    sim = work / f"sim-{label}"
    common = (str(topo), "--sim", "--sim-dir", str(sim))
    row: dict = {"label": label, "error": None, "left_running": []}
    records: dict[int, dict] = {}
    try:
        _, p = labctl(env, "validate", "-q", str(topo))
        if p.returncode != 0:
            raise RuntimeError(f"validate {topo} failed (exit {p.returncode}):\n{p.stdout}{p.stderr}")
        row["cold"], p = labctl(env, "up", *common, "--json")
        records.update(recorded(sim))
        first = report(p, f"{label}: first up")
        if first["failures"]:
            raise RuntimeError(f"first up: failures {first['failures']}")
        row["per_stage"] = Counter(c["stage"] for c in first["changes"])
        row["changes"] = len(first["changes"])
        row["vms"] = sum(1 for c in first["changes"] if c["stage"] == "start")  # VMs powered on: hosts + other VMs
        row["skipped"] = {s["name"]: s["skipped"] for s in first["stages"] if s["skipped"]}
        row["notes"] = [n for s in first["stages"] for n in s.get("notes", []) if "simulator" in n.lower()]
        row["warm"], p = labctl(env, "up", *common, "--json")
        records.update(recorded(sim))
        again = report(p, f"{label}: second up")
        if again["changes"] or again["failures"]:
            raise RuntimeError(f"second up is not a no-op: changes {[c['summary'] for c in again['changes']]}, "
                               f"failures {again['failures']}")
        row["plan"], p = labctl(env, "plan", *common, "--json")
        plan = report(p, f"{label}: plan")
        if plan["changes"] or plan["failures"]:
            raise RuntimeError(f"plan of the converged lab is not empty: {[c['summary'] for c in plan['changes']]}")
        records.update(recorded(sim))
    except RuntimeError as e:
        row["error"] = str(e)
    finally:
        records.update(recorded(sim))
        if keep:
            print(f"{label}: kept {sim} (stop it: labctl down {topo} --sim --sim-dir {sim})", file=sys.stderr)
        else:
            for sub in (("down",), ("destroy", "--yes")):
                _, p = labctl(env, sub[0], *common, *sub[1:])
                if p.returncode != 0:
                    print(f"{label}: labctl {' '.join(sub)} exit {p.returncode}: {p.stderr.strip()[-500:]}",
                          file=sys.stderr)
            row["left_running"] = stop_leftovers(records)
            if row["left_running"]:
                print(f"{label}: labctl down/destroy left {row['left_running']} running; the bench stopped them by "
                      f"PID", file=sys.stderr)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=16, help="hosts in the generated ESXi 8 lab (1 golden + N-1 clones)")
    ap.add_argument("--only", choices=("seed", "generated"), help="run just one of the two labs")
    ap.add_argument("--keep", action="store_true", help="leave the simulated labs running (and their temp dir)")
    args = ap.parse_args()

    env = dict(os.environ)
    for var in ("LAB_ESX_PASSWORD", "LAB_VC_PASSWORD", "LABCTL_SIM_DIR"):
        env.pop(var, None)
    work = Path(tempfile.mkdtemp(prefix="labctl-bench-up-"))
    gen = work / f"bench-up-{args.hosts}.yaml"
    gen.write_text(generated_topology(args.hosts, work / "build"))
    labs = [("esx35-ha-pair", SEED), (f"esxi8-{args.hosts}", gen)]
    if args.only:
        labs = labs[:1] if args.only == "seed" else labs[1:]

    sys.path.insert(0, str(ROOT))  # this checkout's labctl, like the `python -m labctl` runs (cwd=ROOT)
    from labctl.errors import LabctlError
    from labctl.sim import vcsim

    try:
        t = time.perf_counter()
        binary = vcsim.build(env)
        vc_note = f"vcsim available: {binary} (cache lookup/build {time.perf_counter() - t:.1f} s)"
    except LabctlError as e:
        vc_note = f"vcsim NOT available ({e.message}): the vcenter stage cannot run"
    print(vc_note)

    rows = []
    try:
        for label, topo in labs:
            rows.append(bench(label, topo, work, env, args.keep))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    def sec(r: dict, key: str) -> str:
        return f"{r[key]:7.2f} s" if key in r else f"{'-':>9}"

    print()
    print(f"{'lab':<16} {'VMs':>4} {'up cold':>9} {'up again':>9} {'plan':>9} {'changes':>8}  {'leaked':>6}  result")
    for r in rows:
        print(f"{r['label']:<16} {r.get('vms', '-'):>4} {sec(r, 'cold')} {sec(r, 'warm')} {sec(r, 'plan')} "
              f"{r.get('changes', '-'):>8}  {len(r['left_running']):>6}  {'FAILED' if r['error'] else 'ok'}")
    print()
    print("changes made by the first up, per stage:")
    print(f"{'stage':<10}" + "".join(f"{r['label']:>16}" for r in rows))
    for stage in STAGES:
        print(f"{stage:<10}" + "".join(f"{r.get('per_stage', {}).get(stage, 0) if 'per_stage' in r else '-':>16}" for r in rows))
    for r in rows:
        for name, why in r.get("skipped", {}).items():
            print(f"{r['label']}: stage {name} skipped: {why}")
        for n in r.get("notes", []):
            print(f"{r['label']}: {n}")
        if r["left_running"]:
            print(f"{r['label']}: left running by labctl down/destroy (stopped by the bench): {r['left_running']}")
        if r["error"]:
            print(f"{r['label']}: FAILED: {r['error']}")
    print("checked: second up --json changes == [], plan --json changes == [] (per lab)")
    return 1 if any(r["error"] or r["left_running"] for r in rows) else 0

if __name__ == "__main__":
    sys.exit(main())
