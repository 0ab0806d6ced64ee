"""`labctl vcenter FILE`: datacenter, clusters, hosts, HA isolation addresses (and with --nfs the NFS datastores)."""

from __future__ import annotations

import argparse

from labctl.errors import EnvironmentProblem, ExitStatus, LabctlError, UsageError

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing (start-up)
if TYPE_CHECKING:
    from pathlib import Path
    from typing import Any

    from labctl.env import Env

DESCRIPTION = """\
Converge the lab's vCenter: ensure the datacenter and each cluster, add the lab's hosts to their cluster, enable HA
and set its isolation addresses (FDM das.isolationaddress0..9, or the legacy AAM keys on vCenter 4.1 and older;
das.usedefaultisolationaddress=false when the management segment has no gateway) — what `labctl up`'s vcenter
stage does, so after `up` this finds nothing to change. With --nfs it also mounts the NFS datastores through vCenter
(`up` mounts them over SSH in its nfs stage, as `labctl nfs` does). The current state is read first and only the differences are sent (one reconfigure per cluster); a second run
changes nothing. A failure on one cluster or host is reported with its name and does not stop the others."""

EPILOG = """\
examples:
  labctl vcenter lab.yaml --dry-run          show the diff, change nothing
  labctl vcenter lab.yaml                    vCenter from the topology, password from its password_env
  labctl vcenter lab.yaml --sim              the simulated lab's vCenter (labctl sim up lab.yaml)
  labctl vcenter lab.yaml --vcenter http://user:pass@127.0.0.1:8989/sdk    any vCenter or simulator
  GOVC_URL=https://vc.lab/sdk GOVC_USERNAME=administrator@vsphere.local GOVC_PASSWORD=... labctl vcenter lab.yaml

certificates: checked by default. For a lab vCenter with a self-signed certificate pin it with
--thumbprint AA:BB:..:99 (or `thumbprint:` in the topology), or pass --insecure (also GOVC_INSECURE=1).
Hosts whose certificate vCenter does not know are added only when pinned (SSH known_hosts) or with
--trust-new-hosts.

exit statuses: 0 done (or nothing to do), 2 topology/usage error, 3 some cluster/host failed (listed),
4 vCenter unreachable or login refused, 6 missing prerequisite.
"""


def add_connection_args(parser: argparse.ArgumentParser) -> None:
    from labctl.cli.options import add_file, add_sim, add_thumbprint

    add_file(parser)
    parser.add_argument("--dry-run", action="store_true", help="print the differences only; change nothing")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--vcenter", metavar="URL", help="vCenter URL, may carry user:pass (overrides the topology "
                        "and GOVC_URL)")
    parser.add_argument("--insecure", action="store_true", help="do not check the vCenter's TLS certificate")
    add_thumbprint(parser)
    add_sim(parser, sim_help="use the simulated lab's vCenter (endpoints.json)")


def configure(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("--trust-new-hosts", action="store_true",
                        help="accept the certificate of hosts vCenter does not know yet (else: only pinned hosts)")
    parser.add_argument("--nfs", action="store_true",
                        help="also mount the NFS datastores through vCenter (CreateNasDatastore)")
    parser.add_argument("--no-nfs", action="store_true", help=argparse.SUPPRESS)  # the old default's opt-out


def load(args: argparse.Namespace, env: Env) -> Any:
    from labctl.topology import load_topology

    return load_topology(env.path(args.file))


def sim_directory(topo: Any, override: str | None, env: Env) -> Path:
    """The sim dir (shared contract 1)."""
    from labctl.sim.paths import sim_dir

    return sim_dir(topo.lab, env, override)


def sim_vcenter(topo: Any, args: argparse.Namespace, env: Env) -> tuple[dict[str, Any], str | None, Path]:
    """The endpoints.json `vcenter` entry, its password (topology password_env, else the entry's password_file)."""
    import json
    from pathlib import Path

    d = sim_directory(topo, args.sim_dir, env)
    path = d / "endpoints.json"
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise EnvironmentProblem(f"no simulated lab at {d} (no endpoints.json)",
                                 hint=f"start it: labctl sim up {args.file}") from None
    except (OSError, ValueError) as e:
        raise LabctlError(f"cannot read {path}: {e}") from e
    entry = data.get("vcenter")
    if not entry:
        raise EnvironmentProblem("the simulated lab runs without a vCenter simulator",
                          hint="install Go and govmomi (sudo apt-get install golang-go "
                          "golang-github-vmware-govmomi-dev), then `labctl sim up` again")
    password = None
    if topo.vcenter is not None and topo.vcenter.password_env:
        password = env.environ.get(topo.vcenter.password_env) or None
    if password is None and entry.get("password_file"):
        try:
            password = Path(entry["password_file"]).read_text().strip()
        except OSError as e:
            raise LabctlError(f"cannot read the simulator's password file: {e}") from e
    return entry, password, d


def connect(topo: Any, args: argparse.Namespace, env: Env):
    """(client, target, sim_dir or None) for the command's options."""
    from pathlib import Path

    from labctl.vsphere import adapter
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target

    sim_entry = sim_password = sim_dir = None
    if args.sim and not args.vcenter:
        sim_entry, sim_password, sim_dir = sim_vcenter(topo, args, env)
        if sim_entry.get("workdir"):  # CreateNasDatastore's localPath must exist in the simulator's directory
            from labctl.sim.vcsim import ensure_datastore_dirs

            ensure_datastore_dirs(Path(sim_entry["workdir"]), [d.name for d in adapter.nfs_specs(topo)])
    elif args.sim_dir and not args.sim:
        raise UsageError("--sim-dir goes with --sim")
    target = resolve_target(settings=adapter.vcenter_settings(topo), environ=env.environ,
                            override_url=args.vcenter, sim_vcenter=sim_entry, sim_password=sim_password,
                            insecure=args.insecure, thumbprint=args.thumbprint, prompt=env.secret_prompt())
    if args.sim and target.host not in ("127.0.0.1", "::1", "localhost"):
        raise UsageError(f"--sim points at {target.display}, not a loopback simulator")
    client = VSphereClient.connect(target)
    return client, target, sim_dir


def emit(result: Any, args: argparse.Namespace, env: Env, header: str) -> ExitStatus:
    import json

    if args.json:
        env.out(json.dumps(result.to_json(), indent=2))
    else:
        env.out(header)
        for line in result.lines():
            env.out(line)
    return ExitStatus.SUCCESS if result.ok else ExitStatus.FAILED


def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    topo = load(args, env)
    from labctl.cli.lablock import run_locked

    return run_locked(args, env, topo, lambda: _apply(args, env, topo), changes=not args.dry_run)


def _apply(args: argparse.Namespace, env: Env, topo) -> ExitStatus:
    from labctl.vsphere.adapter import apply_topology

    client, target, sim_dir = connect(topo, args, env)
    with client:
        result = apply_topology(client, topo, env.environ, known_hosts=[sim_dir / "known_hosts"] if sim_dir else [],
                                sim=args.sim, trust_new_hosts=args.trust_new_hosts, nfs=args.nfs and not args.no_nfs,
                                dry_run=args.dry_run)
    return emit(result, args, env, f"vCenter {target.display} ({target.source}): {client.full_name}")
