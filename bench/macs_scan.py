#!/usr/bin/env python3
"""Benchmark: `labctl macs scan` on 64 simulated ESXi hosts with 1 s latency per SSH command.

Measures, in one run against the same simulated lab (everything on 127.0.0.1):
  1. `labctl macs scan FILE --sim --json`           (hosts in parallel, one connection each, facts on parallel channels)
  2. the same with `--workers 1`                    (hosts one after the other)
  3. `ansible all -m raw -a '<the same commands>' -f 64`   (ansible-core from PyPI; inventory from the endpoint map)
and the SSH connections each host saw during (1), from the simulator's counters (target: 1 per host).

Usage: python bench/macs_scan.py [--hosts 64] [--latency 1.0] [--skip-sequential] [--skip-ansible]

Last figures (2 shared cores, Python 3.11, paramiko 5.1, ansible-core 2.19, 8 hosts per simulator process):
  labctl macs scan (parallel):   2.00-2.09 s  (SSH connections per host: 1; 5 commands per host on parallel channels)
  labctl macs scan --workers 1:  69.6-70.1 s
  ansible -m raw -f 64:          3.62-5.04 s  (the 5 commands joined in one raw command; OpenSSH client; 1 conn/host)
Processes are started by `labctl sim up` and stopped by `labctl sim down` (by PID), also on failure.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def topology(n: int) -> str:
    hosts = []
    for i in range(1, n + 1):
        name = f"esxi{i:02d}"
        if i == 1:
            hosts.append(f"""  - name: {name}
    flavor: esxi
    version: "8.0u2"
    cpus: 2
    memory_mb: 8192
    disk_gb: 40
    nics: [mgmt]
    management: {{network: mgmt, ip: 172.31.0.{10 + i}}}""")
        else:
            hosts.append(f"""  - name: {name}
    linked_clone_of: esxi01
    management: {{network: mgmt, ip: 172.31.0.{10 + i}}}""")
    return f"""lab: bench-macs-{n}
workstation:
  version: "17.5"
  vm_dir: ~/vmware/bench-macs-{n}
networks:
  - name: mgmt
    type: host-only
    vmnet: 9
    subnet: 172.31.0.0/24
    host_ip: 172.31.0.1
    dhcp: false
esx_hosts:
{chr(10).join(hosts)}
ssh: {{user: root}}
"""


def labctl(*argv: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    p = subprocess.run([sys.executable, "-m", "labctl", *argv], capture_output=True, text=True, cwd=ROOT)
    elapsed = time.monotonic() - start
    if check and p.returncode not in (0, 1):
        raise SystemExit(f"labctl {' '.join(argv)} failed ({p.returncode}):\n{p.stderr}")
    return elapsed, p


def counters(sim: Path, hosts: list[str]) -> dict[str, int]:
    return {h: json.loads((sim / "hosts" / h / "runtime.json").read_text())["connections"] for h in hosts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hosts", type=int, default=64)
    ap.add_argument("--latency", type=float, default=1.0, help="seconds added to every SSH command (exec)")
    ap.add_argument("--skip-sequential", action="store_true")
    ap.add_argument("--skip-ansible", action="store_true")
    args = ap.parse_args()

    work = Path(tempfile.mkdtemp(prefix="labctl-bench-macs-"))
    topo = work / "lab.yaml"
    topo.write_text(topology(args.hosts))
    sim = work / "sim"
    names = [f"esxi{i:02d}" for i in range(1, args.hosts + 1)]
    try:
        t_up, p = labctl("sim", "up", str(topo), "--sim-dir", str(sim), "--latency", f"{args.latency:g}",
                         "--no-vcenter", "--reset")
        if p.returncode != 0:
            raise SystemExit(p.stderr)
        print(f"sim up: {args.hosts} simulated ESXi 8 hosts, {args.latency:g} s per SSH command ({t_up:.1f} s to start)")

        from labctl.remote.facts.base import Platform
        from labctl.remote.operations.macs import scan_commands

        commands = list(scan_commands(Platform("esxi", (8, 0, 2))).values())
        print(f"per host: {len(commands)} commands: {'; '.join(commands)}")

        before = counters(sim, names)
        t_scan, p = labctl("macs", "scan", str(topo), "--sim", "--sim-dir", str(sim), "--json")
        after = counters(sim, names)
        report = json.loads(p.stdout)
        per_host = sorted({after[h] - before[h] for h in names})
        assert len(report["hosts"]) == args.hosts and not report["unreachable"], p.stderr
        print(f"labctl macs scan (parallel):   {t_scan:6.2f} s  (exit {p.returncode}, {len(report['duplicates'])} "
              f"duplicate groups; SSH connections per host: {per_host})")

        if not args.skip_sequential:
            t_seq, p = labctl("macs", "scan", str(topo), "--sim", "--sim-dir", str(sim), "--json", "--workers", "1")
            print(f"labctl macs scan --workers 1:  {t_seq:6.2f} s  (hosts one after the other)")

        if not args.skip_ansible:
            ansible = shutil.which("ansible")
            if ansible is None:
                print("ansible: not installed (pip install ansible-core); skipped")
            else:
                from labctl.sim.endpoints import load_endpoints

                emap = load_endpoints(sim)
                inv = work / "inventory.ini"
                inv.write_text("[esxi]\n" + "".join(
                    f"{e.name} ansible_host={e.host} ansible_port={e.port}\n" for e in emap.hosts.values()))
                joined = "; echo ---; ".join(commands)  # one exec per host, like labctl's channels together
                env = dict(os.environ, ANSIBLE_HOME=str(work / "ansible"), ANSIBLE_HOST_KEY_CHECKING="True",
                           ANSIBLE_SSH_CONTROL_PATH_DIR=str(work / "cp"), ANSIBLE_LOCAL_TEMP=str(work / "tmp"),
                           ANSIBLE_FORKS=str(args.hosts))
                argv = [ansible, "all", "-i", str(inv), "-m", "raw", "-a", joined, "-f", str(args.hosts),
                        "-u", "root", "--private-key", str(emap.identity_file),
                        f"--ssh-common-args=-o UserKnownHostsFile={emap.known_hosts} -o StrictHostKeyChecking=yes"]
                before = counters(sim, names)
                start = time.monotonic()
                a = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=work)
                t_ans = time.monotonic() - start
                after = counters(sim, names)
                ok = a.stdout.count("| CHANGED |") + a.stdout.count("| SUCCESS |")
                conns = sorted({after[h] - before[h] for h in names})
                print(f"ansible -m raw -f {args.hosts}:        {t_ans:6.2f} s  (exit {a.returncode}, {ok}/{args.hosts} hosts ok; "
                      f"SSH connections per host: {conns})")
                if a.returncode != 0:
                    print("ansible stderr (tail):", "\n".join(a.stderr.strip().splitlines()[-5:]))
                print(f"  command: ansible all -i {inv.name} -m raw -a {shlex.quote(joined)} -f {args.hosts}")
    finally:
        labctl("sim", "down", str(topo), "--sim-dir", str(sim), check=False)
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
