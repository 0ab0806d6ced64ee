"""`labctl inventory FILE --format ansible|ini|json [--sim]`: the lab's hosts for other tools.

The inventory itself (hosts, groups, the ansible/INI/JSON writers) is `labctl.remote.inventory`; this module is
the command, and imports it only when the command runs (start-up).
"""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Print the lab's hosts for other tools: an ansible inventory (YAML, or INI with --format ini) or JSON.

Groups: `esx` (ESX classic) and `esxi`, one group per cluster (`cluster_<name>`), `vms` for the other VMs, all
under a group named after the lab. Host variables: ansible_host / ansible_port / ansible_user (the address
labctl dials: access_ip, else the management IP), the SSH key file and jump host when set, flavour, version,
management and VMkernel addresses. ESX 3.5/4.x and ESXi 4.x hosts get the legacy algorithm options a current
OpenSSH client needs for them (SHA-1 key exchange, ssh-rsa host keys and user-key signatures) in
ansible_ssh_common_args. Passwords are never printed: ansible gets a lookup of the environment
variable named by the topology (ssh.password_env), JSON gets that variable's name.

With --sim the addresses are the simulated lab's loopback endpoints (127.0.0.1:port from endpoints.json),
with its known_hosts file and client key."""

EPILOG = """\
examples:
  labctl inventory topologies/esx35-ha-pair.yaml > hosts.yml && ansible -i hosts.yml esx -m raw -a 'vmware -v'
  labctl inventory topologies/esx35-ha-pair.yaml --format ini
  labctl inventory topologies/esxi8-ha-trio.yaml --sim --format json | jq '.hosts[].port'
"""


# ---- the command ---------------------------------------------------------------------------------------
def configure(p) -> None:
    p.add_argument("file", metavar="FILE", help="topology YAML file")
    p.add_argument(
        "--format",
        choices=("ansible", "ini", "json"),
        default="ansible",
        help="ansible YAML inventory (default), ansible INI inventory, or JSON",
    )
    p.add_argument("--json", action="store_true", help="same as --format json")
    p.add_argument(
        "--sim", action="store_true", help="the simulated lab's loopback endpoints (endpoints.json)"
    )
    p.add_argument("--sim-dir", metavar="DIR", help="simulated lab state directory (with --sim)")
    p.add_argument("-o", "--output", metavar="PATH", help="write to PATH (atomically) instead of stdout")
    p.add_argument("--force", action="store_true", help="overwrite PATH even if it was edited")


def run(args, env) -> ExitStatus:
    from labctl.remote.inventory import from_topology, load_sim_endpoints, to_ini, to_json, to_yaml
    from labctl.sim.paths import sim_dir
    from labctl.topology import load_topology

    t = load_topology(env.path(args.file))
    sim = load_sim_endpoints(sim_dir(t.lab, env, args.sim_dir), args.file) if args.sim else None
    inv = from_topology(t, sim)
    fmt = "json" if args.json else args.format
    text = {"ansible": to_yaml, "ini": to_ini, "json": to_json}[fmt](inv)
    if not args.output or args.output == "-":
        env.stdout.write(text)
        return ExitStatus.SUCCESS
    from labctl.render.files import write_atomic

    status = write_atomic(env.path(args.output), text, force=args.force)
    env.err(f"{args.output}: {status}")
    return ExitStatus.SUCCESS
