"""`labctl sim`: run a simulated lab on this machine (ESX/ESXi hosts over SSH on 127.0.0.1, vCenter)."""

from __future__ import annotations

import argparse
import sys

from labctl.errors import EnvironmentProblem, ExitStatus, UsageError, did_you_mean

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up
if TYPE_CHECKING:
    from typing import Any

    from labctl.env import Env

DESCRIPTION = """\
Run the topology's ESX/ESXi hosts as simulated hosts: real SSH servers on 127.0.0.1 that answer the commands
labctl uses with the outputs of their ESX version, keep state across commands and restarts, reboot, and drop
sessions the way real hosts do. Linked clones start as copies of their source's disk (same vswif/vmk MACs and
/system/uuid), so the duplicates labctl repairs are there. Every remote labctl command accepts --sim to use it."""

EPILOG = """\
examples:
  labctl sim up topologies/esx35-ha-pair.yaml            start it (background); prints the endpoints
  labctl sim status topologies/esx35-ha-pair.yaml --json
  labctl macs scan topologies/esx35-ha-pair.yaml --sim   use it
  labctl sim fault topologies/esx35-ha-pair.yaml esx2 --drop 'ifdown' --times 1
  labctl sim fault topologies/esx35-ha-pair.yaml esx2 --clear
  labctl sim up lab.yaml --latency 1 --reset             1 s per SSH command, reinstalled hosts
  labctl sim exec topologies/esx35-ha-pair.yaml esx2 'esxcfg-vswif -l'
  labctl sim down topologies/esx35-ha-pair.yaml          stops exactly the processes `up` started

state lives in --sim-dir, else $LABCTL_SIM_DIR, else $XDG_STATE_HOME/labctl/sim/<lab>. `down` is a power-off: a
second `up` boots the hosts again from their disks (on ESXi only what /sbin/auto-backup.sh saved survives);
--reset reinstalls them. The root password is the topology's ssh.password_env, if set (stored only as a salted
hash).

exit statuses: 0 done (`up` on a running lab prints its endpoints and changes nothing; `down` with nothing
running), 2 usage or topology error, 6 no simulated lab running (`status`, `fault`, `exec`: start it with
`labctl sim up FILE`), `exec`: the remote command's status (255: the connection dropped)."""


class _SimParser(argparse.ArgumentParser):
    """`sim exec` (dashdash=True) takes the remote command as the words after the first `--`, and everything before
    it as labctl's own (so options work anywhere: FILE HOST 'cmd' --sim-dir X), or as one quoted argument. Several
    words without `--` are refused: they would mix labctl's options and the command's."""

    dashdash = False
    _inner = False

    def parse_known_args(self, args=None, namespace=None):  # noqa: D102 - argparse's own
        if not self.dashdash or self._inner:
            return super().parse_known_args(args, namespace)
        args = list(sys.argv[1:] if args is None else args)
        rest = None
        if "--" in args:
            i = args.index("--")
            args, rest = args[:i], args[i + 1:]
        self._inner = True
        try:  # intermixed: FILE HOST --sim-dir X 'cmd' fills the optional 'cmd' after the option too
            ns, extra = self.parse_known_intermixed_args(args, namespace)
        finally:
            self._inner = False
        if self.dashdash:
            if extra:
                self.error(f"unrecognized arguments: {' '.join(extra)} — a command of several words goes after `--` "
                           "(labctl sim exec FILE HOST -- CMD ARG…) or in one quoted argument ('CMD ARG…')")
            ns.command_argv = rest
        return ns, extra


def configure(p: argparse.ArgumentParser) -> None:
    # the parent's parser class too (its help formatter reads the terminal width without importing shutil)
    sub = p.add_subparsers(dest="sim_command", metavar="ACTION", required=True,
                           parser_class=type("SimParser", (_SimParser, type(p)), {}))

    from labctl.cli.options import add_file, add_sim

    def common(sp: argparse.ArgumentParser) -> None:
        add_file(sp)
        add_sim(sp, flag=False)

    u = sub.add_parser("up", help="start the simulated lab in the background",
                       description="Start one simulated host per ESX host (and a jump host when ssh.jump is set), "
                       "write endpoints.json, known_hosts and a client key; return once every host accepts SSH.")
    common(u)
    u.add_argument("--latency", type=float, default=0.0, metavar="S", help="seconds added to every SSH command")
    u.add_argument("--command-latency", action="append", default=[], metavar="CMD=S",
                   help="seconds added to each run of CMD (e.g. esxcli=1); repeatable")
    u.add_argument("--reboot-delay", type=float, default=2.0, metavar="S",
                   help="how long a rebooting host stays unreachable (default 2)")
    u.add_argument("--fault", action="append", default=[], metavar="HOST:KIND[@N][:REGEX]",
                   help="start with a fault: KIND is drop, refuse_auth or down; @N fires N times; REGEX selects "
                   "the commands a drop applies to (e.g. 'esx2:drop@1:ifdown'); repeatable")
    u.add_argument("--hosts-per-process", type=int, default=8, metavar="N", help="hosts served by one process")
    u.add_argument("--reset", action="store_true", help="reinstall every host (forget their state)")
    u.add_argument("--no-vcenter", action="store_true", help="do not start the vCenter simulator")
    u.add_argument("--json", action="store_true", help="print the endpoint map as JSON")

    s = sub.add_parser("status", help="show the simulated lab's hosts, ports and counters")
    common(s)
    s.add_argument("--json", action="store_true")

    d = sub.add_parser("down", help="stop the simulated lab (only the processes `up` started)")
    common(d)

    x = sub.add_parser("exec", help="run a command on a simulated host (exit status: the command's)",
                       usage="labctl sim exec [-h] [--sim-dir SIM_DIR] FILE HOST ('COMMAND LINE' | -- CMD [ARG ...])",
                       description="Run one command on a simulated host over SSH with the sim's key and pinned host "
                       "key; stdout/stderr pass through, the exit status is the command's (255 when the connection "
                       "dropped before it finished). The command is either one quoted argument, run as the host's "
                       "shell reads it (pipes and all), or the words after `--`, each passed as one argument "
                       "(quoted for the remote shell). labctl's own options may come anywhere before `--`.",
                       epilog="examples:\n"
                       "  labctl sim exec topologies/esx35-ha-pair.yaml esx2 'esxcfg-vswif -l | grep vswif0'\n"
                       "  labctl sim exec topologies/esx35-ha-pair.yaml esx2 --sim-dir /tmp/lab -- cat /etc/hosts",
                       formatter_class=p.formatter_class)
    x.dashdash = True
    common(x)
    x.add_argument("host", metavar="HOST")
    x.add_argument("command", metavar="'COMMAND LINE'", nargs="?",
                   help="the command line, quoted as one argument (or give the command after --)")

    f = sub.add_parser("fault", help="inject faults or latency into a running simulated host",
                       description="Change a running host's faults/latency (its control.json); takes effect at once.")
    common(f)
    f.add_argument("host", metavar="HOST", help="host name from the topology (or the jump host's name)")
    g = f.add_mutually_exclusive_group()
    g.add_argument("--drop", metavar="REGEX", help="drop the connection of commands matching REGEX")
    g.add_argument("--refuse-auth", action="store_true", help="make authentication fail")
    g.add_argument("--down", action="store_true", help="close the host's SSH port until --clear")
    g.add_argument("--clear", action="store_true", help="remove every fault")
    f.add_argument("--times", type=int, metavar="N", help="fire only N times")
    f.add_argument("--phase", choices=("before", "after"), default="after",
                   help="drop before the command runs or after it ran (default)")
    f.add_argument("--latency", type=float, metavar="S", help="set seconds added to every SSH command")
    f.add_argument("--command-latency", action="append", default=[], metavar="CMD=S")

    for sp, text in ((u, SUB_EPILOGS["up"]), (s, SUB_EPILOGS["status"]), (d, SUB_EPILOGS["down"]),
                     (x, SUB_EPILOGS["exec"]), (f, SUB_EPILOGS["fault"])):
        sp.epilog, sp.formatter_class = text, p.formatter_class


SUB_EPILOGS = {
    "up": """\
examples:
  labctl sim up topologies/esx35-ha-pair.yaml              start it; prints each host's 127.0.0.1 port
  labctl sim up lab.yaml --sim-dir /tmp/lab --no-vcenter   elsewhere, without the vCenter simulator
  labctl sim up lab.yaml --latency 1 --fault 'esx2:drop@1:ifdown'
  labctl sim up lab.yaml --reset                           reinstall the hosts (the lab must be stopped)

exit status: 0 up (or already running: its endpoints are printed, nothing is started), 2 usage or topology
error, 3 a host did not start (see <sim-dir>/logs), 6 a prerequisite is missing.""",
    "status": """\
examples:
  labctl sim status topologies/esx35-ha-pair.yaml
  labctl sim status lab.yaml --json | jq '.hosts[] | {name, port, listening}'

exit status: 0 running, 6 no simulated lab running there.""",
    "down": """\
examples:
  labctl sim down topologies/esx35-ha-pair.yaml    stop exactly the processes `sim up` started (by PID)
  labctl sim down lab.yaml --sim-dir /tmp/lab

exit status: 0 stopped, or nothing was running.""",
    "exec": """\
examples:
  labctl sim exec topologies/esx35-ha-pair.yaml esx2 'esxcfg-vswif -l'
  labctl sim exec lab.yaml esxi-a -- esxcli network ip interface list

exit status: the command's own; 255 the connection dropped; 4 the host refused or did not answer;
6 no simulated lab running there.""",
    "fault": """\
examples:
  labctl sim fault topologies/esx35-ha-pair.yaml esx2 --drop 'ifdown' --times 1
  labctl sim fault lab.yaml esx2 --refuse-auth          every login fails until --clear
  labctl sim fault lab.yaml esx2 --down                 the SSH port closes until --clear
  labctl sim fault lab.yaml esx2 --latency 0.5 --command-latency esxcli=2
  labctl sim fault lab.yaml esx2 --clear

exit status: 0 set, 2 usage error (unknown host), 6 no simulated lab running there.""",
}


def _topology(args: argparse.Namespace, env: "Env") -> Any:
    from labctl.topology import load_topology

    return load_topology(env.path(args.file))


def _dir(topo: Any, args: argparse.Namespace, env: "Env"):
    from labctl.sim.paths import sim_dir

    return sim_dir(topo.lab, env, args.sim_dir)


def _latencies(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        name, eq, value = item.partition("=")
        try:
            if not eq or not name:
                raise ValueError
            out[name] = float(value)
        except ValueError:
            raise UsageError(f"--command-latency {item!r} is not CMD=SECONDS",
                             hint="e.g. --command-latency esxcli=1") from None
    return out


def _faults(items: list[str], hosts: set[str]) -> dict[str, list[Any]]:
    import re

    from labctl.sim.faults import KINDS, FaultRule

    out: dict[str, list[Any]] = {}
    for item in items:
        m = re.fullmatch(r"([^:]+):([a-z_]+)(?:@(\d+))?(?::(.*))?", item)
        if not m or m.group(2) not in KINDS:
            raise UsageError(f"--fault {item!r} is not HOST:KIND[@N][:REGEX]",
                             hint=f"KIND is one of {', '.join(KINDS)}, e.g. --fault 'esx2:drop@1:ifdown'")
        if m.group(1) not in hosts:
            raise UsageError(f"--fault names {m.group(1)!r}, which is not a host of this lab",
                             hint="hosts: " + ", ".join(sorted(hosts)))
        try:
            rule = FaultRule(m.group(2), m.group(4) or "", int(m.group(3)) if m.group(3) else None)
        except Exception as e:  # a bad regular expression
            raise UsageError(f"--fault {item!r}: {e}") from None
        out.setdefault(m.group(1), []).append(rule)
    return out


def run(args: argparse.Namespace, env: "Env") -> ExitStatus:
    topo = _topology(args, env)
    sim = _dir(topo, args, env)
    actions = {"up": _up, "status": _status, "down": _down, "fault": _fault, "exec": _exec}
    if args.sim_command in ("up", "down"):  # they start and stop the lab's processes
        from labctl.cli.lablock import lab_lock

        with lab_lock(args, topo, sim):
            return actions[args.sim_command](topo, sim, args, env)
    return actions[args.sim_command](topo, sim, args, env)


def _exec(topo: Any, sim: Any, args: argparse.Namespace, env: "Env") -> int:
    from labctl.sim import lab

    import shlex

    argv = getattr(args, "command_argv", None)
    if argv is not None and args.command is not None:
        raise UsageError(f"two commands given: {args.command!r} and the words after `--`",
                         hint="give one: a quoted command line, or the command after --")
    line = shlex.join(argv) if argv else args.command
    if not line:
        raise UsageError("no command given", hint=f"labctl sim exec {args.file} {args.host} 'esxcfg-vmknic -l'   "
                                                  f"(or: … {args.host} -- esxcfg-vmknic -l)")
    code, out, err = lab.exec_on(sim, args.host, line)
    env.stdout.write(out.decode("utf-8", "replace"))
    env.stderr.write(err.decode("utf-8", "replace"))
    return code if code >= 0 else 255


HAND_MADE_NOTE = ("sim up models a lab the user installed and set up by hand: every host has the sim's client key "
                  "authorized and root's password hash stored, with no kickstart; each linked clone was given its own "
                  "IPs and hostname at its console; each host key was checked at the console and is pinned under the "
                  "host's lab address once after its install (`labctl up FILE --sim` installs from the ISO and gets "
                  "only what the kickstart gives)")


def _up(topo: Any, sim: Any, args: argparse.Namespace, env: "Env") -> ExitStatus:
    from labctl.sim import lab
    from labctl.sim.paths import describe_existing, mark_created

    spec = lab.spec_from_topology(topo)
    notes: list[str] = []
    if lab.running(sim):  # already up: say so and show it (idempotent, like every other command)
        if args.reset:
            raise UsageError(f"the simulated lab {topo.lab} is running; --reset reinstalls stopped hosts only",
                             hint=f"labctl sim down {args.file}, then labctl sim up {args.file} --reset")
        from labctl.sim.endpoints import load_endpoints

        emap = load_endpoints(sim)
        if not args.json:
            env.out(f"simulated lab {topo.lab} is already running ({sim}); nothing started")
        _print_endpoints(emap, topo, args, env)
        if args.latency or args.command_latency or args.fault:
            env.err("note: --latency, --command-latency and --fault apply when a lab starts; change a running "
                    f"one with `labctl sim fault {args.file} HOST ...`")
        return ExitStatus.SUCCESS
    existing = None if args.reset else describe_existing(sim, args.file, f"--sim-dir {args.sim_dir}" if args.sim_dir else "")
    if existing:
        env.err(existing)
    emap = lab.up(sim, spec, environ=env.environ, latency=args.latency,
                  command_latency=_latencies(args.command_latency), reboot_delay=args.reboot_delay,
                  faults=_faults(args.fault, {h.name for h in spec.hosts} | ({spec.jump.name} if spec.jump else set())),
                  hosts_per_process=args.hosts_per_process, reset=args.reset, vcenter=not args.no_vcenter,
                  notes=notes, progress=_build_ticker(env))
    mark_created(sim)
    notes.insert(0, HAND_MADE_NOTE)
    if not args.json:
        env.out(f"simulated lab {topo.lab} is up ({sim})")
    _print_endpoints(emap, topo, args, env)
    for n in notes:
        env.err(f"note: {n}")
    return ExitStatus.SUCCESS


def _print_endpoints(emap: Any, topo: Any, args: argparse.Namespace, env: "Env") -> None:
    if args.json:
        import json

        env.out(json.dumps(emap.to_dict(), indent=2))
    else:
        for e in emap.all():
            env.out(f"  {e.name:<10} {e.address:<16} -> 127.0.0.1:{e.port}  {e.flavor} {e.version}".rstrip())
        if emap.vcenter:
            env.out(f"  vcenter    {emap.vcenter.get('url')}")
        env.out(f"known_hosts {emap.known_hosts}, client key {emap.identity_file}")
        first = next(iter(emap.hosts.values()), None)
        if first is not None:
            from labctl.remote.hosts import openssh_options

            legacy = "".join(f" -o {o}" for o in openssh_options(first.flavor, first.version))
            env.out(f"by hand: ssh -i {emap.identity_file} -o UserKnownHostsFile={emap.known_hosts} "
                    f"-o StrictHostKeyChecking=yes -o HostKeyAlias={first.address}{legacy} -p {first.port} "
                    "root@127.0.0.1")
        env.out(f"use it: labctl macs scan {args.file} --sim" + (f" --sim-dir {args.sim_dir}" if args.sim_dir else ""))


def _build_ticker(env: "Env"):
    """vcsim's first build takes a minute: say so on stderr (stdout may be --json)."""
    from labctl.plan.progress import Progress

    return Progress(env.stderr, live=bool(getattr(env.stderr, "isatty", lambda: False)())).ticker("vcenter")


def _status(topo: Any, sim: Any, args: argparse.Namespace, env: "Env") -> ExitStatus:
    import json
    from dataclasses import asdict

    from labctl.sim import lab

    st = lab.status(sim)
    if not st["running"] and not args.json:
        raise EnvironmentProblem(f"no simulated lab running in {sim}", hint=f"start it: labctl sim up {args.file}"
                                 + (f" --sim-dir {args.sim_dir}" if args.sim_dir else ""))
    if args.json:
        env.out(json.dumps({**st, "hosts": [asdict(h) for h in st["hosts"]]}, indent=2))
    else:
        env.out(f"simulated lab {st['lab']} in {sim}")
        env.out(f"  {'HOST':<10} {'ADDRESS':<16} {'PORT':>6} {'STATE':<8} {'BOOTS':>5} {'CONNS':>6} {'EXECS':>6}")
        for h in st["hosts"]:
            state = "up" if h.listening else ("down" if h.running else "stopped")  # down: no SSH answer
            env.out(f"  {h.name:<10} {h.address:<16} {h.port or '-':>6} {state:<8} {h.boot_count:>5} "
                    f"{h.counters.get('connections', 0):>6} {h.counters.get('execs', 0):>6}")
        for h in st["hosts"]:  # the segment answers by what each host has configured, not by the topology
            if h.running and h.answers_at and h.address not in h.answers_at:
                env.out(f"  {h.name} has {', '.join(h.answers_at)} configured, not its topology address {h.address}")
        for address, names in st.get("conflicts", {}).items():
            env.out(f"  IP address conflict: {address} is configured on {', '.join(names)}; a connection reaches "
                    f"any one of them (logs/network.log)")
        if st["vcenter"]:
            env.out(f"  vcenter {st['vcenter'].get('url')} ({'running' if st['vcenter']['running'] else 'stopped'})")
    return ExitStatus.SUCCESS if st["running"] else ExitStatus.ENVIRONMENT


def _down(topo: Any, sim: Any, args: argparse.Namespace, env: "Env") -> ExitStatus:
    from labctl.sim import lab
    from labctl.sim import target as simtarget

    stopped = lab.down(sim) + simtarget.stop(sim)  # the lab's processes, then a simulated vSphere target's
    if stopped:
        env.out(f"stopped {len(stopped)} process(es) of {topo.lab}: " + ", ".join(str(r['pid']) for r in stopped))
    else:
        env.out(f"nothing to stop for {topo.lab} in {sim}")
    return ExitStatus.SUCCESS


def _fault(topo: Any, sim: Any, args: argparse.Namespace, env: "Env") -> ExitStatus:
    import json

    from labctl.sim.faults import FaultRule, read_control, write_control
    from labctl.sim.paths import host_dir

    from labctl.sim import lab

    if not lab.running(sim):
        raise EnvironmentProblem(f"no simulated lab running in {sim}", hint=f"start it: labctl sim up {args.file}"
                                 + (f" --sim-dir {args.sim_dir}" if args.sim_dir else ""))
    hdir = host_dir(sim, args.host)
    if not (hdir / "state.json").exists():
        names = sorted(p.parent.name for p in (sim / "hosts").glob("*/state.json"))
        hint = did_you_mean(args.host, names)
        raise UsageError(f"{args.host} is not a host of the simulated lab {topo.lab}" + (f"; {hint}" if hint else ""),
                         hint="hosts: " + ", ".join(names))
    control = read_control(hdir)
    if args.clear:
        control.faults = []
    elif args.drop is not None:
        control.faults.append(FaultRule("drop", args.drop, args.times, args.phase))
    elif args.refuse_auth:
        control.faults.append(FaultRule("refuse_auth", "", args.times))
    elif args.down:
        control.faults.append(FaultRule("down"))
    if args.latency is not None:
        control.latency = args.latency
    if args.command_latency:
        control.command_latency.update(_latencies(args.command_latency))
    write_control(hdir, control)
    env.out(f"{args.host}: {json.dumps(control.to_dict())}")
    return ExitStatus.SUCCESS
