"""`labctl nfs FILE`: mount the topology's NFS datastores on its hosts, through vCenter or over SSH."""

from __future__ import annotations

import argparse

from labctl.env import Env
from labctl.cli.vcenter import add_connection_args, connect, emit, load
from labctl.errors import ExitStatus

DESCRIPTION = """\
Mount each NFS datastore of the topology on its hosts, idempotently: a datastore already mounted from the same
server/share is fine; the same name from another share is an error naming both; a host that cannot mount is
reported and does not stop the others. Over SSH by default (esxcfg-nas on ESX classic, esxcli storage nfs on
ESXi 5+), the same route as `labctl up`'s nfs stage, so `labctl nfs` after `labctl up` finds nothing to do;
`--via vcenter` (or a `--vcenter URL`) mounts through vCenter instead (CreateNasDatastore, localPath = the datastore name; the hosts must
be in vCenter already, which `up` does after the nfs stage)."""

EPILOG = """\
examples:
  labctl nfs lab.yaml --dry-run              what would be mounted where
  labctl nfs lab.yaml --via vcenter          through the lab's vCenter (CreateNasDatastore)
  labctl nfs lab.yaml --sim                  against the simulated lab (labctl sim up lab.yaml)

exit statuses: 0 done (or nothing to do), 2 topology/usage error, 3 some host failed (listed), 4 unreachable.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    add_connection_args(parser)
    parser.add_argument("--via", choices=("ssh", "vcenter"),
                        help="how to mount: ssh (default, as `labctl up` does; --vcenter URL means vcenter)")


def ssh_settings(topo, args: argparse.Namespace, env: Env):
    """labctl.remote ConnectSettings: the lab's known_hosts, or the simulated lab's endpoints, key and known_hosts."""
    from labctl.plan.backends import ssh_settings

    return ssh_settings(topo, env, sim=args.sim, sim_dir=args.sim_dir)


def run(args: argparse.Namespace, env: Env) -> ExitStatus:
    topo = load(args, env)
    from labctl.cli.lablock import run_locked

    return run_locked(args, env, topo, lambda: _mount(args, env, topo), changes=not args.dry_run)


def _mount(args: argparse.Namespace, env: Env, topo) -> ExitStatus:
    from labctl.vsphere import adapter

    via = args.via or ("vcenter" if args.vcenter else "ssh")  # a vCenter given on the command line is a choice
    specs = adapter.nfs_specs(topo)
    if via == "ssh":
        from labctl.vsphere.nfs_ssh import mount_over_ssh

        result = mount_over_ssh(topo, ssh_settings(topo, args, env), dry_run=args.dry_run)
        return emit(result, args, env, "NFS over SSH")

    from labctl.vsphere.operations import mount_nfs

    client, target, _ = connect(topo, args, env)
    with client:
        result = mount_nfs(client, adapter.datacenter_name(topo), specs, dry_run=args.dry_run)
    return emit(result, args, env, f"vCenter {target.display} ({target.source}): {client.full_name}")
