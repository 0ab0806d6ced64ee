"""A simulated lab: host states from plain specs (or a Topology), host processes, endpoint map; up/status/down.

    spec = spec_from_topology(load_topology(path))      # or LabSpec(...) built by hand
    emap = up(sim_dir, spec, environ=os.environ, latency=0.0)
    status(sim_dir); down(sim_dir)

- A host that is a linked clone of another gets a copy of the source's disk (`boot.clone`), then the console
  step a user does after cloning: its own management/VMkernel IPs and hostname. MACs and /system/uuid stay the
  source's: the duplicates appear as in a real lab.
- States persist in `<sim dir>/hosts/<name>/`: a second `up` powers them on again — they boot, with the boot
  rules of `labctl.sim.boot` (`reset=True` reinstalls).
- `up` writes `<sim dir>/id_rsa` (the client key, 0600, authorized on every host), `known_hosts` (each host key
  pinned under its lab address, e.g. `192.168.69.11`: the model of a user who checked each fingerprint at the
  console of a lab installed and cloned by hand), `processes.json` (what `down` may stop:
  PID, argv, start time) and `endpoints.json` — and returns once every host answers with an SSH banner.
- A root password comes from the topology's `ssh.password_env` in the environment of `up`; only a salted hash is
  stored.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from labctl.errors import EnvironmentProblem, LabctlError, UsageError
from labctl.sim import state as S
from labctl.sim.boot import boot, clone
from labctl.sim.endpoints import Endpoint, EndpointMap, load_endpoints, write_endpoints
from labctl.sim.faults import Control, FaultRule, write_control
from labctl.sim.paths import ensure_private, host_dir

PROCESSES_FILE = "processes.json"
CLIENT_KEY = "id_rsa"
START_TIMEOUT = 60.0


@dataclass(frozen=True)
class VmkSpec:
    portgroup: str
    ip: str
    netmask: str
    mac: str | None = None


@dataclass(frozen=True)
class HostSpec:
    name: str
    flavor: str
    version: str
    ip: str
    netmask: str
    nic_macs: tuple[str, ...]
    address: str = ""  # what clients dial (access_ip or ip)
    gateway: str = ""
    vmkernel: tuple[VmkSpec, ...] = ()
    clone_of: str | None = None
    management_portgroup: str | None = None
    hostname: str | None = None
    build: int | None = None  # the install media's build (a patch build named by the topology's version)

    @property
    def addresses(self) -> list[str]:
        """The lab addresses the topology gives this host (management, VMkernel ports, access_ip)."""
        return list(dict.fromkeys(a for a in (self.ip, *(v.ip for v in self.vmkernel), self.address) if a))

    @property
    def via(self) -> str:
        """An access_ip on none of its interfaces is a port forward (Workstation NAT) to the management IP."""
        return self.ip if self.address and self.address not in (self.ip, *(v.ip for v in self.vmkernel)) else ""


@dataclass(frozen=True)
class JumpSpec:
    name: str
    address: str
    user: str = "root"


@dataclass(frozen=True)
class LabSpec:
    lab: str
    hosts: tuple[HostSpec, ...]
    jump: JumpSpec | None = None
    password_env: str | None = None
    vcenter: Any = None  # the topology's VCenter (for the vCenter simulator) or None
    datastores: tuple[str, ...] = ()
    clusters: int = 1


def spec_from_topology(topology: Any) -> LabSpec:
    """The thin adapter: Topology (labctl.topology) -> LabSpec."""
    hosts = []
    for h in topology.esx_hosts:
        vmk = tuple(VmkSpec(v.portgroup, v.ip, v.netmask, v.mac) for v in h.vmkernel)
        hosts.append(HostSpec(
            name=h.name, flavor=h.flavor, version=h.version, ip=h.management.ip, netmask=h.management.netmask,
            nic_macs=tuple(n.mac for n in h.nics), address=h.address, gateway=h.management.gateway or "",
            vmkernel=vmk, clone_of=h.linked_clone_of, management_portgroup=h.management.portgroup or None,
            build=getattr(h.version_info, "build", None),
        ))
    jumps = {j for j in [topology.ssh.jump, *(h.ssh.jump for h in topology.esx_hosts)] if j}
    jump = None
    if len(jumps) > 1:
        raise UsageError(f"the simulator models one jump host; this topology names {len(jumps)}: "
                         f"{', '.join(sorted(jumps))}")
    if jumps:
        text = jumps.pop()
        user, _, rest = text.rpartition("@")
        hostpart = rest.rsplit(":", 1)[0] if rest.count(":") == 1 else rest
        jump = JumpSpec(name="jump", address=hostpart.strip("[]"), user=user or "root")
    return LabSpec(lab=topology.lab, hosts=tuple(hosts), jump=jump, password_env=topology.ssh.password_env,
                   vcenter=topology.vcenter, datastores=tuple(d.name for d in topology.datastores),
                   clusters=max(1, len(topology.clusters)))


# ---------------------------------------------------------------- states


def _ordered(spec: LabSpec) -> list[HostSpec]:
    """Sources before their clones."""
    names = {h.name for h in spec.hosts}
    done: list[HostSpec] = []
    pending = list(spec.hosts)
    while pending:
        progressed = False
        for h in list(pending):
            if h.clone_of is None or h.clone_of not in names or any(d.name == h.clone_of for d in done):
                done.append(h)
                pending.remove(h)
                progressed = True
        if not progressed:
            raise UsageError("linked clones form a cycle: " + ", ".join(h.name for h in pending))
    return done


def _fresh(h: HostSpec, password_hash: str) -> S.HostState:
    return S.fresh_install(
        h.name, h.flavor, h.version, nic_macs=list(h.nic_macs), ip=h.ip, netmask=h.netmask, gateway=h.gateway,
        hostname=h.hostname, ssh_address=h.address or h.ip,
        vmkernel=[{"portgroup": v.portgroup, "ip": v.ip, "netmask": v.netmask, **({"mac": v.mac} if v.mac else {})}
                  for v in h.vmkernel],
        management_portgroup=h.management_portgroup, root_password_hash=password_hash, build=h.build,
    )


def customize_clone(st: S.HostState, h: HostSpec) -> None:
    """What the user does on a fresh clone's console: its own IPs and hostname (MACs and uuid untouched).

    Only `labctl sim up` uses it: its model of a lab the user cloned and addressed by hand (the MAC-repair scenario
    of the 2010 write-up). A clone the simulated Workstation makes for `labctl up --sim` gets no such help."""
    st.hostname = h.hostname or h.name
    st.ssh_address = h.address or h.ip
    if "/Misc/HostName" in st.advanced:
        st.advanced["/Misc/HostName"].string_value = st.hostname
    mgmt = st.interface(st.management_name)
    if mgmt is not None:
        mgmt.ip, mgmt.netmask = h.ip, h.netmask
    others = [v for v in st.vmknics if v.name != st.management_name]
    for vmk, vs in zip(others, h.vmkernel):
        vmk.ip, vmk.netmask = vs.ip, vs.netmask
    if h.gateway:
        st.gateway = h.gateway
    if st.is_classic:
        text = st.files.get(S.IFCFG_VSWIF0, "")
        for k, v in (("IPADDR", h.ip), ("NETMASK", h.netmask), ("BROADCAST", mgmt.broadcast if mgmt else "")):
            text = S.ifcfg_set(text, k, v)
        st.files[S.IFCFG_VSWIF0] = text
        net = st.files.get(S.SYSCONFIG_NETWORK, "")
        st.files[S.SYSCONFIG_NETWORK] = S.ifcfg_set(net, "HOSTNAME", f"{st.hostname}.{st.domain}")
    st.files[S.ESX_CONF] = S.conf_set(st.files.get(S.ESX_CONF, ""), "/adv/Misc/HostIPAddr", h.ip)
    S.sync_esx_conf(st)
    if st.is_esxi:
        st.persisted_etc = S.etc_snapshot(st)  # the DCUI saves its changes


def _jump_state(j: JumpSpec, password_hash: str) -> S.HostState:
    st = S.fresh_install(j.name, "linux", "1.0", nic_macs=[S.random_mac("00:0c:29")], ip=j.address,
                         netmask="255.255.255.0", hostname=j.name, root_password_hash=password_hash)
    st.extra["users"] = sorted({"root", j.user})
    return st


def client_key(sim: Path) -> Any:
    """The sim's client key (RSA: accepted by every ESX era), created once, 0600."""
    import paramiko

    path = Path(sim) / CLIENT_KEY
    if path.exists():
        return paramiko.RSAKey.from_private_key_file(str(path))
    key = paramiko.RSAKey.generate(bits=2048)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        key.write_private_key(f)
    path.with_suffix(".pub").write_text(f"{key.get_name()} {key.get_base64()} labctl-sim\n")
    return key


def authorize(st: S.HostState, pubkey_line: str) -> None:
    path = st.authorized_keys_path
    text = st.files.get(path, "")
    if pubkey_line.split()[1] not in text:
        st.files[path] = text + pubkey_line.rstrip("\n") + "\n"
    parent = path.rsplit("/", 1)[0]
    while parent and parent not in st.dirs:
        st.dirs.append(parent)
        parent = parent.rsplit("/", 1)[0]
    if st.is_esxi and st.persisted_etc is not None and path.startswith("/etc/"):
        st.persisted_etc[path] = st.files[path]


def prepare(sim: Path, spec: LabSpec, *, password: str | None = None, reset: bool = False) -> dict[str, S.HostState]:
    """Create (or keep) every host's state under `sim`; authorize the client key; store the password hash."""
    from labctl.sim.server import hash_password

    sim = ensure_private(sim)
    key = client_key(sim)
    pub = f"{key.get_name()} {key.get_base64()} labctl-sim"
    pw_hash = hash_password(password) if password else ""
    states: dict[str, S.HostState] = {}
    names = {h.name for h in spec.hosts}
    for h in _ordered(spec):
        hdir = host_dir(sim, h.name)
        if (hdir / S.STATE_FILE).exists() and not reset:
            st = S.load_state(hdir)
            boot(st)  # powering the VM on again: the boot rules apply (lost ESXi /etc edits, FollowHardwareMac...)
        elif h.clone_of and h.clone_of in names:
            st = clone(states[h.clone_of], h.name, nic_macs=list(h.nic_macs))
            customize_clone(st, h)
        else:
            st = _fresh(h, pw_hash)
        if reset and (hdir / "blobs").exists():
            import shutil

            shutil.rmtree(hdir / "blobs")
        st.root_password_hash = pw_hash
        authorize(st, pub)
        S.save_state(hdir, st)
        states[h.name] = st
    if spec.jump is not None:
        hdir = host_dir(sim, spec.jump.name)
        if (hdir / S.STATE_FILE).exists() and not reset:
            st = S.load_state(hdir)
        else:
            st = _jump_state(spec.jump, pw_hash)
        st.root_password_hash = pw_hash
        authorize(st, pub)
        S.save_state(hdir, st)
        states[spec.jump.name] = st
    return states


# ---------------------------------------------------------------- processes


def start_ticks(pid: int) -> int | None:
    """Field 22 of /proc/PID/stat (start time): with the argv, what proves a PID is still our process."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(text.rsplit(")", 1)[1].split()[19])


def _cmdline(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return [a.decode("utf-8", "surrogateescape") for a in raw.split(b"\0") if a]


def is_ours(rec: Mapping[str, Any]) -> bool:
    """Is the PID still the process we started (same argv and start time)?"""
    pid = int(rec["pid"])
    return _cmdline(pid) == list(rec["argv"]) and start_ticks(pid) == rec.get("start_ticks")


def read_processes(sim: Path) -> list[dict[str, Any]]:
    try:
        return list(json.loads((Path(sim) / PROCESSES_FILE).read_text())["processes"])
    except (FileNotFoundError, KeyError, ValueError):
        return []


def running(sim: Path) -> list[dict[str, Any]]:
    return [r for r in read_processes(sim) if is_ours(r)]


def ssh_banner_ok(port: int, timeout: float = 2.0) -> bool:
    """Does 127.0.0.1:port greet with an SSH banner, as a booted host's sshd does? (loopback only)"""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64).startswith(b"SSH-2.0")
    except OSError:
        return False


def stop_process(rec: Mapping[str, Any], timeout: float = 5.0) -> bool:
    """SIGTERM the recorded process if it is still ours, SIGKILL after `timeout`. True if it was running."""
    if not is_ours(rec):
        return False
    pid = int(rec["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not is_ours(rec):
            return True
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.02)
    if is_ours(rec):
        os.kill(pid, signal.SIGKILL)
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    return True


def up(sim: Path, spec: LabSpec, *, environ: Mapping[str, str] | None = None, latency: float = 0.0,
       command_latency: Mapping[str, float] | None = None, reboot_delay: float = 2.0,
       faults: Mapping[str, list[FaultRule]] | None = None, hosts_per_process: int = 8, reset: bool = False,
       vcenter: bool = True, timeout: float = START_TIMEOUT, notes: list[str] | None = None,
       progress: Callable[[str], None] | None = None) -> EndpointMap:
    """Start the lab in the background; return its endpoint map once every host answers SSH. `progress` hears about
    a first build of the vCenter simulator."""
    sim = Path(sim)
    environ = dict(os.environ if environ is None else environ)
    notes = notes if notes is not None else []
    if running(sim):
        raise LabctlError(f"a simulated lab is already running in {sim}",
                          hint="stop it first: labctl sim down FILE (or use another --sim-dir)")
    password = environ.get(spec.password_env) if spec.password_env else None
    states = prepare(sim, spec, password=password, reset=reset)
    names = list(states)
    for name in names:
        rules = list((faults or {}).get(name, []))
        write_control(host_dir(sim, name), Control(latency=latency, command_latency=dict(command_latency or {}),
                                                   reboot_delay=reboot_delay, faults=rules))
    logs = sim / "logs"
    logs.mkdir(exist_ok=True)
    groups = [names[i:i + max(1, hosts_per_process)] for i in range(0, len(names), max(1, hosts_per_process))]
    records: list[dict[str, Any]] = []
    before = {n: _listen_mtime(sim, n) for n in names}
    from labctl.sim.segment import Segment

    Segment(sim).allocate([a for h in spec.hosts for a in h.addresses] + ([spec.jump.address] if spec.jump else []))
    try:
        for k, group in enumerate(groups):
            _, rec = spawn_hostd(sim, group, f"hostd-{k}.log", environ)
            records.append(rec)
            write_processes(sim, records)
        listen = _wait_listening(sim, names, records, before, timeout)
        emap = _endpoint_map(sim, spec, states, listen, records)
        _write_known_hosts(sim, emap, listen)
        vc = None
        if spec.vcenter is not None and vcenter:
            vc = _start_vcenter(sim, spec, environ, records, notes, progress)
        elif spec.vcenter is not None:
            notes.append("vCenter simulator not started (--no-vcenter)")
        emap = EndpointMap(lab=emap.lab, sim_dir=sim, hosts=emap.hosts, jump=emap.jump, vcenter=vc,
                           known_hosts=emap.known_hosts, identity_file=emap.identity_file)
        write_processes(sim, records)
        write_endpoints(sim, emap)
        return emap
    except BaseException:
        for r in records:
            stop_process(r)
        raise


def spawn_hostd(sim: Path, hosts: list[str], log_name: str,
                environ: Mapping[str, str]) -> tuple[subprocess.Popen, dict[str, Any]]:
    """Start one `labctl.sim.hostd` process serving `hosts` of the sim dir, in a session of its own (it outlives
    this labctl run, like a VM), logging to <sim>/logs/<log_name>. Returns the process and its record for
    processes.json (PID, argv and start time: what later proves the PID is still ours)."""
    sim = Path(sim)
    argv = [sys.executable, "-m", "labctl.sim.hostd", "--sim-dir", str(sim.resolve())]
    for n in hosts:
        argv += ["--host", n]
    env = {"PATH": environ.get("PATH", os.defpath), "PYTHONPATH": os.pathsep.join(sys.path)}
    logs = sim / "logs"
    logs.mkdir(exist_ok=True)
    with open(logs / log_name, "ab") as log:
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, env=env,
                                start_new_session=True, cwd=str(sim))
    try:
        rec = {"pid": proc.pid, "argv": wait_cmdline(proc.pid, argv), "hosts": list(hosts),
               "start_ticks": start_ticks(proc.pid), "kind": "hostd"}
    except BaseException:  # interrupted before the caller could record it: stop it now rather than orphan it
        proc.kill()
        proc.wait()
        raise
    return proc, rec


def _listen_mtime(sim: Path, name: str) -> float:
    try:
        return (host_dir(sim, name) / "listen.json").stat().st_mtime
    except FileNotFoundError:
        return 0.0


def wait_cmdline(pid: int, argv: list[str]) -> list[str]:
    """The child's argv once it has exec'd (before that /proc shows the parent's command line)."""
    for _ in range(200):
        if _cmdline(pid) == argv:
            return argv
        time.sleep(0.005)
    return argv


def write_processes(sim: Path, records: list[dict[str, Any]]) -> None:
    S.write_json_atomic(sim / PROCESSES_FILE, {"processes": records}, mode=0o600)


def _wait_listening(sim: Path, names: list[str], records: list[dict[str, Any]], before: dict[str, float],
                    timeout: float) -> dict[str, dict[str, Any]]:
    pid_of = {n: r["pid"] for r in records for n in r["hosts"]}
    deadline = time.monotonic() + timeout
    out: dict[str, dict[str, Any]] = {}
    while True:
        for n in names:
            if n in out:
                continue
            p = host_dir(sim, n) / "listen.json"
            try:
                d = json.loads(p.read_text())
            except (FileNotFoundError, ValueError):
                continue
            if d.get("pid") == pid_of[n]:
                out[n] = d
        if len(out) == len(names):
            break
        dead = [r for r in records if not is_ours(r)]
        if dead or time.monotonic() > deadline:
            log = (sim / "logs" / "hostd-0.log")
            tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
            why = "exited" if dead else f"did not listen within {timeout:.0f} s"
            raise EnvironmentProblem(f"a simulated host process {why}:\n{tail}",
                                     hint=f"see the logs in {sim / 'logs'}")
        time.sleep(0.02)
    from labctl.sim.faults import read_control
    from labctl.sim.host import SimHost

    for n, d in out.items():  # every host that should be up (no `down` fault, address present) answers SSH
        hdir = host_dir(sim, n)
        if SimHost(S.load_state(hdir), None, control=read_control(hdir)).reachable():
            while not ssh_banner_ok(int(d["port"])):
                if time.monotonic() > deadline:
                    raise EnvironmentProblem(f"simulated host {n} does not answer SSH on 127.0.0.1:{d['port']}")
                time.sleep(0.05)
    return out


def _endpoint_map(sim: Path, spec: LabSpec, states: dict[str, S.HostState], listen: dict[str, dict[str, Any]],
                  records: list[dict[str, Any]]) -> EndpointMap:
    from labctl.sim.segment import Segment

    ports = Segment(sim).allocate([a for h in spec.hosts for a in h.addresses]
                                  + ([spec.jump.address] if spec.jump else []))
    hosts: dict[str, Endpoint] = {}
    for h in spec.hosts:
        st, d = states[h.name], listen[h.name]
        address = h.address or h.ip
        hosts[h.name] = Endpoint(h.name, address, "127.0.0.1", ports[h.via or address], int(d["pid"]), st.flavor,
                                 st.version, dict(d.get("host_key_fingerprints") or {}), via=h.via)
    jump = None
    if spec.jump is not None:
        d = listen[spec.jump.name]
        jump = Endpoint(spec.jump.name, spec.jump.address, "127.0.0.1", ports[spec.jump.address], int(d["pid"]),
                        "linux", "", dict(d.get("host_key_fingerprints") or {}))
    return EndpointMap(lab=spec.lab, sim_dir=sim, hosts=hosts, jump=jump, vcenter=None,
                       known_hosts=sim / "known_hosts", identity_file=sim / CLIENT_KEY)


def _write_known_hosts(sim: Path, emap: EndpointMap, listen: dict[str, dict[str, Any]]) -> None:
    publish_known_hosts(sim, {e.name: e.address for e in emap.all()})


TRUST_FILE = "trusted_keys.json"


def publish_known_hosts(sim: Path, addresses: Mapping[str, str]) -> None:
    """Pin, in the sim dir's known_hosts, the keys of the hosts running now (`addresses`: name -> the lab address
    it is dialled at) that were never pinned: the console step of a user who installed (or cloned) a host by hand
    and compared its key fingerprint at the console before trusting it.

    Keys are pinned under the lab address (`192.168.69.11`), not the loopback port the simulator listens on, so
    the file reads like a real lab's and outlives restarts. Each host is pinned from its own keys/ only the first
    time it runs (recorded by host name in trusted_keys.json); after that the file is the user's: a key the user
    forgot (`ssh-keygen -R`) stays forgotten, a key labctl pinned with --trust-new-hosts stays, and a host whose
    keys changed since (re-keyed, see docs/security.md) is refused like any changed host key. When the topology
    gives a host another address, what was pinned under its old address is pinned under the new one."""
    from labctl.remote.known_hosts import pin_keys, pinned

    sim = Path(sim)
    kh_path, trust_path = sim / "known_hosts", sim / TRUST_FILE
    try:
        trust: dict[str, dict[str, Any]] = json.loads(trust_path.read_text())
    except (FileNotFoundError, ValueError):
        trust = {}
    _drop_loopback_pins(kh_path)
    for name, address in addresses.items():
        t = trust.get(name)
        if t is None:  # first run since its install: the host's own keys
            keys = [pub.read_text().split()[:2] for pub in sorted((host_dir(sim, name) / "keys").glob("*.pub"))]
            if not keys:
                continue  # no keys yet: nothing to trust (it is pinned when it has them)
            t = trust[name] = {"keys": keys, "address": address}
            pin_keys(kh_path, address, [(k, b) for k, b in keys])
        elif t.get("address") != address:
            old = pinned(kh_path, t["address"]) if t.get("address") else []
            if not pinned(kh_path, address) and (old or t.get("keys")):
                pin_keys(kh_path, address, old or [(k, b) for k, b in t["keys"]])
            t["address"] = address
    S.write_json_atomic(trust_path, trust, mode=0o600)
    if not kh_path.exists():
        os.close(os.open(kh_path, os.O_WRONLY | os.O_CREAT, 0o600))


def _drop_loopback_pins(kh_path: Path) -> None:
    """A sim dir from before keys were pinned by lab address: its `[127.0.0.1]:PORT` lines name ports that other
    hosts may take next; they go."""
    try:
        lines = kh_path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    kept = [ln for ln in lines if not ln.startswith("[127.0.0.1]:")]
    if kept != lines:
        tmp = kh_path.with_name(".known_hosts.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write("".join(f"{ln}\n" for ln in kept))
        os.replace(tmp, kh_path)


def _start_vcenter(sim: Path, spec: LabSpec, environ: Mapping[str, str], records: list[dict[str, Any]],
                   notes: list[str], progress: Callable[[str], None] | None = None) -> dict[str, Any] | None:
    try:
        from labctl.sim import vcsim
    except ImportError:
        notes.append("vCenter simulator not available in this labctl (labctl.sim.vcsim missing); continuing")
        return None
    def record(pid: int, argv: list[str]) -> None:  # before waiting for it: nothing can orphan it unrecorded
        records.append({"pid": pid, "argv": wait_cmdline(pid, argv), "hosts": [], "start_ticks": start_ticks(pid),
                        "kind": "vcsim"})
        write_processes(sim, records)

    try:
        binary = vcsim.build(environ, progress)
        vc = spec.vcenter
        password = environ.get(vc.password_env) if getattr(vc, "password_env", None) else None
        sim_vc = vcsim.start(binary, sim / "vcsim", datastores=list(spec.datastores), password=password,
                             clusters=spec.clusters, hosts_per_cluster=max(1, len(spec.hosts)),
                             user=getattr(vc, "user", None) or "administrator@vsphere.local",
                             api_version=getattr(vc, "api_version", None),  # the lab's vCenter, not vcsim's 6.5
                             on_spawn=record)
    except LabctlError as e:
        records[:] = [r for r in records if r.get("kind") != "vcsim" or is_ours(r)]  # a start that failed
        write_processes(sim, records)
        notes.append(f"vCenter simulator not started: {e.message}" + (f" ({e.hint})" if e.hint else ""))
        return None
    pw_file = None if password else sim / "vcsim.password"
    return sim_vc.endpoint_entry(password_file=pw_file)


def ensure_vcenter(sim: Path, spec: LabSpec, environ: Mapping[str, str], progress: Callable[[str], None] | None = None,
                   ) -> tuple[dict[str, Any] | None, list[str]]:
    """The running lab's vCenter simulator: started (and recorded in processes.json and endpoints.json) when it is
    not running yet; `progress` hears about a first build (vcsim.build). Returns (its endpoint entry or None when it
    could not start, notes)."""
    notes: list[str] = []
    sim = Path(sim)
    if any(r.get("kind") == "vcsim" for r in running(sim)):
        try:
            return load_endpoints(sim).vcenter, notes
        except LabctlError:
            return None, notes
    records = read_processes(sim)
    entry = _start_vcenter(sim, spec, environ, records, notes, progress)
    write_processes(sim, records)
    if entry is None:
        return None, notes
    try:
        emap = load_endpoints(sim)
    except LabctlError:
        emap = EndpointMap(lab=spec.lab, sim_dir=sim, hosts={}, known_hosts=sim / "known_hosts",
                           identity_file=sim / CLIENT_KEY)
    write_endpoints(sim, EndpointMap(lab=emap.lab, sim_dir=sim, hosts=emap.hosts, jump=emap.jump, vcenter=entry,
                                     known_hosts=emap.known_hosts, identity_file=emap.identity_file))
    return entry, notes


def stop_vcenter(sim: Path) -> bool:
    """Stop the lab's vCenter simulator (by its recorded PID); True when one was running."""
    stopped = False
    for r in running(sim):
        if r.get("kind") == "vcsim" and stop_process(r):
            stopped = True
    write_processes(sim, [r for r in read_processes(sim) if is_ours(r)])
    return stopped


def down(sim: Path) -> list[dict[str, Any]]:
    """Stop exactly the processes `up` recorded (still ours by argv + start time); remove endpoints.json."""
    sim = Path(sim)
    stopped = []
    for rec in read_processes(sim):
        if stop_process(rec):
            stopped.append(rec)
    for name in ("endpoints.json", PROCESSES_FILE):
        (sim / name).unlink(missing_ok=True)
    return stopped


@dataclass
class HostStatus:
    name: str
    flavor: str
    version: str
    address: str
    port: int | None
    pid: int | None
    running: bool
    listening: bool
    boot_count: int
    counters: dict[str, Any] = field(default_factory=dict)
    answers_at: list[str] = field(default_factory=list)  # the lab addresses it has configured now (ARP)


def status(sim: Path) -> dict[str, Any]:
    sim = Path(sim)
    procs = read_processes(sim)
    alive = {r["pid"] for r in procs if is_ours(r)}
    try:
        emap: EndpointMap | None = load_endpoints(sim)
    except LabctlError:
        emap = None
    hosts = []
    for e in (emap.all() if emap else []):
        rt: dict[str, Any] = {}
        try:
            rt = json.loads((host_dir(sim, e.name) / "runtime.json").read_text())
        except (FileNotFoundError, ValueError):
            pass
        run = e.pid in alive
        live: dict[str, int] = {}
        try:
            d = json.loads((host_dir(sim, e.name) / "listen.json").read_text())
            if run and d.get("pid") == e.pid:
                live = {str(a): int(p) for a, p in (d.get("addresses") or {}).items()}
        except (FileNotFoundError, ValueError, AttributeError):
            pass
        ports = list(dict.fromkeys([live[a] for a in (e.via or e.address,) if a in live] + list(live.values())
                                   or [e.port]))
        hosts.append(HostStatus(e.name, e.flavor, e.version, e.address, e.port, e.pid, run,
                                run and any(ssh_banner_ok(p, 1.0) for p in ports), int(rt.get("boot_count", 0)),
                                {k: rt[k] for k in ("tcp_accepts", "connections", "auth_ok", "auth_failed", "execs", "commands",
                                                    "drops", "faults") if k in rt}, sorted(live)))
    vc = emap.vcenter if emap else None
    vc_running = bool(vc) and any(r["pid"] == vc.get("pid") for r in procs if r["pid"] in alive)
    from labctl.sim.segment import Segment

    return {"sim_dir": str(sim), "lab": emap.lab if emap else None, "running": bool(alive),
            "hosts": hosts, "vcenter": ({**vc, "running": vc_running} if vc else None),
            "conflicts": Segment(sim).conflicts() if alive else {}}


def exec_on(sim: Path, name: str, command: str, *, stdin: bytes | None = None,
            timeout: float = 60.0) -> tuple[int, bytes, bytes]:
    """Run one command on a running simulated host over SSH (its pinned host key, the sim's client key).

    It dials an address the host has configured now (its topology address when it still has it), like any SSH
    client on the segment: when another host has the same address, the connection may reach that one instead."""
    import paramiko

    emap = load_endpoints(sim)
    e = emap.hosts.get(name) or (emap.jump if emap.jump and emap.jump.name == name else None)
    if e is None:
        raise UsageError(f"{name} is not a host of the simulated lab {emap.lab}",
                         hint="hosts: " + ", ".join(x.name for x in emap.all()))
    try:
        live = dict(json.loads((host_dir(sim, name) / "listen.json").read_text()).get("addresses") or {})
    except (FileNotFoundError, ValueError, AttributeError):
        live = {}
    if (e.via or e.address) in live:
        e = Endpoint(e.name, e.address, e.host, int(live[e.via or e.address]), e.pid, e.flavor, e.version)
    elif live:  # re-addressed, or a clone still at its source's address: where it answers now
        address, port = next(iter(live.items()))
        e = Endpoint(e.name, address, e.host, int(port), e.pid, e.flavor, e.version)
    from labctl.errors import UnreachableError
    from labctl.remote.connection import describe_connect_error

    log = logging.getLogger("paramiko")  # its transport thread logs a refused or dropped session at ERROR
    if not any(isinstance(h, logging.NullHandler) for h in log.handlers):
        log.addHandler(logging.NullHandler())
        log.propagate = False
    c = paramiko.SSHClient()
    # the keys pinned under its lab address, checked for the loopback port it listens on (OpenSSH's HostKeyAlias)
    from labctl.remote.known_hosts import pinned

    for ktype, b64 in pinned(emap.known_hosts, e.address) if emap.known_hosts else []:
        try:
            key = paramiko.PKey.from_type_string(ktype, base64.b64decode(b64))
            c.get_host_keys().add(f"[{e.host}]:{e.port}", ktype, key)
        except (paramiko.SSHException, ValueError):
            continue  # a key type this paramiko cannot read: never trusted
    c.set_missing_host_key_policy(paramiko.RejectPolicy())
    where = f"{name} ({e.address}, simulated at 127.0.0.1:{e.port})"
    try:
        # the key loaded here, not through key_filename: paramiko's probing of key formats would report its last
        # "encountered RSA key, expected OPENSSH key" instead of the refusal
        key = paramiko.RSAKey.from_private_key_file(str(emap.identity_file))
        c.connect(e.host, e.port, "root", pkey=key, look_for_keys=False, allow_agent=False, timeout=10,
                  banner_timeout=10, auth_timeout=10)
    except paramiko.AuthenticationException:
        c.close()
        raise UnreachableError(f"{where} refused the login of root with the simulated lab's key {emap.identity_file}",
                               hint=f"a --refuse-auth fault? labctl sim fault FILE {name} --clear") from None
    except (OSError, EOFError, paramiko.SSHException) as err:
        c.close()
        raise UnreachableError(f"{where} does not answer SSH: {describe_connect_error(err)}",
                               hint="labctl sim status FILE; a rebooting or `down` host answers again later") from None
    try:
        chan = c.get_transport().open_session(timeout=10)
        chan.settimeout(timeout)
        chan.exec_command(command)
        if stdin is not None:
            chan.sendall(stdin)
        chan.shutdown_write()
        out = chan.makefile("rb").read()
        err = chan.makefile_stderr("rb").read()
        return chan.recv_exit_status(), out, err
    finally:
        c.close()
