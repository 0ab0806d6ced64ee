"""Simulator throughput (not collected by pytest): N simulated ESXi hosts, one connection + one command each.

    python -m tests.sim.bench_hosts [--hosts 64] [--latency 1.0] [--hosts-per-process 8]

Prints the `sim up` time, the wall time for one command on every host in parallel (one client process, like
`labctl macs scan`), and the SSH connections each host counted.
"""

from __future__ import annotations

import argparse
import json
import socket
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    import paramiko

    from labctl.sim import lab

    p = argparse.ArgumentParser()
    p.add_argument("--hosts", type=int, default=64)
    p.add_argument("--latency", type=float, default=1.0)
    p.add_argument("--hosts-per-process", type=int, default=8)
    a = p.parse_args()
    hosts = tuple(lab.HostSpec(f"h{i:03d}", "esxi", "6.7", f"10.9.{i // 200}.{i % 200 + 10}", "255.255.0.0",
                               (f"00:50:56:00:{i // 256:02x}:{i % 256:02x}",), clone_of=None if i == 0 else "h000")
                  for i in range(a.hosts))
    d = Path(tempfile.mkdtemp(prefix="labctl-bench-"))
    t0 = time.monotonic()
    emap = lab.up(d, lab.LabSpec("bench", hosts), environ={}, latency=a.latency,
                  hosts_per_process=a.hosts_per_process)
    print(f"sim up, {a.hosts} hosts: {time.monotonic() - t0:.2f} s")
    try:
        key = paramiko.RSAKey.from_private_key_file(str(emap.identity_file))
        results: list[bytes] = []

        def one(port: int) -> None:
            c = paramiko.SSHClient()
            c.load_host_keys(str(emap.known_hosts))
            c.set_missing_host_key_policy(paramiko.RejectPolicy())
            c.connect("127.0.0.1", port, "root", pkey=key, look_for_keys=False, allow_agent=False, timeout=60,
                      banner_timeout=60)
            c.get_transport().sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _, out, _ = c.exec_command("esxcfg-vmknic -l; esxcli system uuid get")
            results.append(out.read())
            c.close()

        t0 = time.monotonic()
        threads = [threading.Thread(target=one, args=(e.port,)) for e in emap.hosts.values()]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        print(f"one command on every host in parallel ({a.latency:g} s latency each): "
              f"{time.monotonic() - t0:.2f} s, {len(results)} results")
        time.sleep(0.3)
        counts = [json.loads((d / "hosts" / n / "runtime.json").read_text())["connections"] for n in emap.hosts]
        print(f"SSH connections per host: min {min(counts)}, max {max(counts)}")
    finally:
        lab.down(d)


if __name__ == "__main__":
    main()
