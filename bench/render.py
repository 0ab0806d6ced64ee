#!/usr/bin/env python3
"""Benchmark: start-up of `labctl --help` vs `python -c pass`, and validate + render as whole processes for
generated topologies of 50, 200 and 800 ESXi hosts (target: 200 hosts <= 1 s, cost linear in hosts).

    python bench/render.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def topology(n: int) -> str:
    lines = [
        f"lab: bench-{n}",
        'workstation: {version: "17.5", vm_dir: /tmp/labctl-bench-vms}',
        "networks:",
        "  - {name: mgmt, type: host-only, vmnet: 3, subnet: 10.0.0.0/16, host_ip: 10.0.0.1, dhcp: false}",
        "  - {name: storage, type: host-only, vmnet: 4, subnet: 10.1.0.0/16, host_ip: 10.1.0.1, dhcp: false}",
        "esx_hosts:",
        "  - name: esx0",
        "    flavor: esxi",
        '    version: "8.0u2"',
        "    memory_mb: 8192",
        "    nics: [mgmt, storage]",
        "    management: {network: mgmt, ip: 10.0.0.10}",
        "    vmkernel: [{network: storage, ip: 10.1.0.10}]",
    ]
    for i in range(1, n):
        lines += [f"  - name: esx{i}", "    linked_clone_of: esx0",
                  f"    management: {{network: mgmt, ip: 10.0.{(i + 10) // 250}.{(i + 10) % 250 + 2}}}",
                  "    vmkernel: [{network: storage}]"]
    hosts = ", ".join(f"esx{i}" for i in range(n))
    lines += ["clusters:", f"  - {{name: big, hosts: [{hosts}], ha: {{enabled: true, isolation_addresses: [10.0.0.1]}}}}",
              "datastores:", f"  - {{name: nfs, server: 10.1.0.1, share: /export/bench, hosts: [{hosts}]}}"]
    return "\n".join(lines) + "\n"


def timed(argv: list[str], repeat: int) -> float:
    best = []
    for _ in range(repeat):
        t = time.perf_counter()
        r = subprocess.run(argv, capture_output=True, text=True)
        best.append(time.perf_counter() - t)
        if r.returncode not in (0,):
            sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return statistics.median(best)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    py = sys.executable
    base = timed([py, "-c", "pass"], args.repeat * 2)
    helpt = timed([py, "-m", "labctl", "--help"], args.repeat * 2)
    print(f"python -c pass      {base * 1000:7.1f} ms")
    print(f"labctl --help       {helpt * 1000:7.1f} ms   ({helpt / base:.2f}x python -c pass; target < 3x)")
    for sub in ("render", "vib", "macs", "vcenter", "up"):
        try:
            t = timed([py, "-m", "labctl", sub, "--help"], args.repeat)
        except SystemExit:
            print(f"labctl {sub} --help: not available")
            continue
        print(f"labctl {sub} --help".ljust(20) + f"{t * 1000:7.1f} ms   ({t / base:.2f}x)")
    print()
    print(f"{'hosts':>6} {'validate':>10} {'render':>10} {'render/host':>12}")
    with tempfile.TemporaryDirectory() as d:
        for n in (50, 200, 800):
            f = Path(d) / f"bench-{n}.yaml"
            f.write_text(topology(n))
            v = timed([py, "-m", "labctl", "validate", "-q", str(f)], args.repeat)
            r = timed([py, "-m", "labctl", "render", str(f), "-o", str(Path(d) / f"out-{n}"), "--force"], args.repeat)
            print(f"{n:>6} {v * 1000:8.0f} ms {r * 1000:8.0f} ms {r / n * 1000:9.2f} ms")


if __name__ == "__main__":
    main()
