"""Process entry point: serve one or more simulated hosts of a sim dir.

    python -m labctl.sim.hostd --sim-dir DIR --host esx1 [--host esx2 ...]

Each host's state is `DIR/hosts/<name>/state.json` (made by `labctl sim up` or `labctl.sim.lab.prepare`). For
each host the process writes `DIR/hosts/<name>/listen.json` ({"port", "pid", "addresses": {lab address: port},
"host_key_fingerprints"}) once it listens on 127.0.0.1 — one port per address the host has configured now, shared
with any other host that has the same address (labctl.sim.segment) — and again whenever those addresses change;
keeps `runtime.json` (connection counts, faults fired) current, re-reads `control.json` (latency, faults) when it
changes, and on SIGTERM closes everything and saves the state.
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
    """A jump host forwards only into the lab: a lab address (port 22) goes to whichever simulated host has that
    address configured now (labctl.sim.segment), a loopback port only when it is one of the lab's."""

    def resolve(address: str, port: int) -> tuple[str, int] | None:
        from labctl.errors import LabctlError
        from labctl.sim.endpoints import load_endpoints
        from labctl.sim.segment import Segment

        if port == 22:
            seg_port = Segment(sim).port(address)
            if seg_port is not None:
                return "127.0.0.1", seg_port
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

    from labctl.sim.segment import Segment

    servers = []
    segment = Segment(sim)
    for name in names:
        hdir = host_dir(sim, name)
        st = load_state(hdir)
        host = SimHost(st, hdir, log=log)
        host.run_boot_scripts()  # a VM that just booted (clone, resume) finishes its boot before SSH answers
        resolve = jump_resolver(sim) if st.flavor == "linux" else None
        srv = HostServer(host, resolve=resolve, segment=segment)

        def publish(srv=srv, hdir=hdir) -> None:  # where it answers now: sim exec, sim status, the tests read it
            write_json_atomic(hdir / LISTEN_FILE, {"port": srv.port, "pid": os.getpid(), "addresses": srv.addresses,
                                                   "host_key_fingerprints": srv.fingerprints})

        srv.start()
        publish()
        srv.on_change = publish
        servers.append(srv)
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
