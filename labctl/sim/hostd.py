"""Process entry point: serve one or more simulated hosts of a sim dir.

    python -m labctl.sim.hostd --sim-dir DIR --host esx1 [--host esx2 ...]

Each host's state is `DIR/hosts/<name>/state.json` (made by `labctl sim up` or `labctl.sim.lab.prepare`). For
each host the process writes `DIR/hosts/<name>/listen.json` ({"port", "pid", "host_key_fingerprints"}) once it
listens on 127.0.0.1, keeps `runtime.json` (connection counts, faults fired) current, re-reads `control.json`
(latency, faults) when it changes, and on SIGTERM closes everything and saves the state.
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

from labctl.sim.paths import host_dir

LISTEN_FILE = "listen.json"


def jump_resolver(sim: Path):
    """A jump host forwards only to the lab's simulated hosts: a lab address (port 22) or their loopback port."""

    def resolve(address: str, port: int) -> tuple[str, int] | None:
        from labctl.errors import LabctlError
        from labctl.sim.endpoints import load_endpoints

        try:
            emap = load_endpoints(sim)
        except LabctlError:
            return None
        if emap.is_endpoint(address, port):
            return address, port
        for e in emap.hosts.values():
            if address in (e.address, e.name) and port == 22:
                return e.host, e.port
        return None

    return resolve


def serve(sim: Path, names: list[str], *, stop: threading.Event, log=None) -> None:
    from labctl.sim.host import SimHost
    from labctl.sim.server import HostServer
    from labctl.sim.state import load_state, write_json_atomic

    servers = []
    for name in names:
        hdir = host_dir(sim, name)
        st = load_state(hdir)
        host = SimHost(st, hdir, log=log)
        host.run_boot_scripts()  # a VM that just booted (clone, resume) finishes its boot before SSH answers
        port = 0
        try:
            port = int(json.loads((hdir / LISTEN_FILE).read_text())["port"])
        except (FileNotFoundError, KeyError, ValueError):
            pass
        resolve = jump_resolver(sim) if st.flavor == "linux" else None
        try:
            srv = HostServer(host, port=port, resolve=resolve).start()
        except OSError:  # the old port is taken: take a new one
            srv = HostServer(host, port=0, resolve=resolve).start()
        servers.append(srv)
        write_json_atomic(hdir / LISTEN_FILE, {"port": srv.port, "pid": os.getpid(),
                                               "host_key_fingerprints": srv.fingerprints})
        host.write_runtime()
    try:
        while not stop.wait(0.2):
            for srv in servers:
                if srv.host.reload_control() and not srv.host.rebooting:
                    srv.host.update_listener()
                    srv.host.write_runtime()
    finally:
        for srv in servers:
            srv.stop()
            srv.host.save()
            srv.host.write_runtime()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m labctl.sim.hostd", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sim-dir", required=True, type=Path)
    p.add_argument("--host", action="append", required=True, dest="hosts")
    args = p.parse_args(argv)
    stop = threading.Event()

    def on_signal(signum, frame):  # noqa: ARG001
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    import logging

    logging.getLogger("paramiko").setLevel(logging.CRITICAL)  # probes and dropped clients are normal here

    def log(msg: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {msg}", file=sys.stderr, flush=True)

    serve(args.sim_dir.resolve(), args.hosts, stop=stop, log=log)
    return 0


if __name__ == "__main__":
    sys.exit(main())
