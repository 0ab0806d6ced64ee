"""Measure the SOAP calls `labctl vcenter` makes for one cluster's HA configuration, against the vcsim harness.

    python tests/vsphere/count_soap_calls.py

Creates the lab once, changes one isolation address, and prints the per-method call counts of the change run and
of a re-run (from the simulator's /_labctl/stats). Loopback only.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

from labctl.env import Env
from labctl.cli.main import main
from labctl.sim import vcsim

TOPOLOGY = """\
lab: count
workstation: {{version: "17.5", vm_dir: {vm_dir}}}
networks:
  - {{name: mgmt, type: host-only, vmnet: 3, subnet: 172.20.30.0/24, host_ip: 172.20.30.1, dhcp: false}}
esx_hosts:
  - {{name: a, flavor: esxi, version: "8.0u2", cpus: 2, memory_mb: 8192, disk_gb: 40, nics: [mgmt],
     management: {{network: mgmt, ip: 172.20.30.11}}}}
  - {{name: b, linked_clone_of: a, management: {{network: mgmt, ip: 172.20.30.12}}}}
vcenter: {{host: 172.20.30.10, password_env: VC_PW}}
ssh: {{password_env: ESX_PW}}
clusters:
  - {{name: Pair, hosts: [a, b], ha: {{enabled: true, isolation_addresses: [172.20.30.10, {second}]}}}}
"""


def main_() -> int:
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        sim = vcsim.start(vcsim.build(), tmp / "vcsim")
        try:
            def run(second: str) -> dict[str, int]:
                path = tmp / "lab.yaml"
                path.write_text(TOPOLOGY.format(vm_dir=tmp / "vms", second=second))
                sim.reset_counts()
                out = io.StringIO()
                rc = main(["vcenter", str(path), "--vcenter", sim.url_with_credentials],
                          Env(stdout=out, stderr=out, environ={"ESX_PW": "x"}, cwd=tmp))
                if rc != 0:
                    print(out.getvalue(), file=sys.stderr)
                    raise SystemExit(rc)
                return sim.call_counts()

            run("172.20.30.1")
            print("change one isolation address:", json.dumps(run("172.20.30.2"), sort_keys=True))
            print("re-run (no change):          ", json.dumps(run("172.20.30.2"), sort_keys=True))
        finally:
            sim.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main_())
