"""A clone's identity over SSH, for hosts without the guestinfo boot script (ESX classic 3.5/4.x, ESXi 4.1, 5.0).

A linked clone of such a host boots as a copy of its source: the source's hostname, address and SSH host keys.
With the source powered off it is reached at the source's address with the source's pinned key; then:
- `gather` (I/O): what the clone is now — hostname, management address, SSH host key.
- `plan` (pure): the typed change that turns it into the topology's host, or None when it already is.
- `apply` (I/O): over the old connection, the non-disruptive part (hostname, VMkernel addresses, new SSH host keys
  and an sshd restart — the running session survives it); the new public key is read over that authenticated
  connection and pinned under the clone's own lab address; then the management address changes *commit confirmed*,
  the way `labctl macs fix` changes a MAC: one detached job edits the interface's files, bounces it, and restores
  them unless labctl confirms from the new address (with the new key) before the job's deadline.
The vswif0 MAC and /system/uuid stay the `macs` stage's (docs/uuid.md), as for a clone made by hand.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

from labctl.remote import command as C
from labctl.remote.facts.base import FactParseError, Platform
from labctl.remote.facts.classic import VswifList4, VswifList35
from labctl.remote.facts.esxconf import ESX_CONF
from labctl.remote.facts.vmknic import VmknicList5, VmknicList6
from labctl.remote.operations.macs import HOST_PROBLEMS, JobFiles
from labctl.remote.result import ConnectionDropped, RemoteError

if TYPE_CHECKING:
    from labctl.remote.connection import Connection

IFCFG = "/etc/sysconfig/network-scripts/ifcfg-{}"
SYSCONFIG_NETWORK = "/etc/sysconfig/network"
HOST_KEYS = ("/etc/ssh/ssh_host_rsa_key", "/etc/ssh/ssh_host_dsa_key", "/etc/ssh/ssh_host_ecdsa_key")  # RSA first
RSA_PUB = "/etc/ssh/ssh_host_rsa_key.pub"


@dataclass(frozen=True)
class Wanted:
    """What the clone must become (checked values: `labctl.render.identity`)."""

    name: str
    hostname: str
    management: str  # vswif0 | vmk0
    ip: str
    netmask: str
    gateway: str | None
    portgroup: str
    vmkernel: tuple[tuple[str, str, str, str], ...] = ()  # (vmkN, ip, netmask, port group)


@dataclass(frozen=True)
class Facts:
    hostname: str
    ip: str | None
    netmask: str | None
    host_key: tuple[str, str] | None  # (type, base64) of the RSA host key
    vmkernel: tuple[tuple[str, str | None], ...] = ()  # (vmkN, ip)


def _mgmt_fact(platform: Platform):
    if platform.classic:
        return VswifList35() if platform.version[0] == 3 else VswifList4()
    return VmknicList6() if platform.version[0] >= 6 else VmknicList5()


def fact_commands(platform: Platform) -> dict[str, str]:
    cmds = {"hostname": C.sh(["hostname"]), "mgmt": _mgmt_fact(platform).command(platform),
            "key": C.sh(["cat", RSA_PUB])}
    if platform.classic:
        cmds["vmknic"] = VmknicList5().command(platform)
    return {k: v for k, v in cmds.items() if v}


def gather(conn: Connection) -> Facts:
    t = conn.target
    cmds = fact_commands(t.platform)
    results = dict(zip(cmds, conn.run_many(list(cmds.values()))))
    for role in ("hostname", "mgmt"):
        r = results[role]
        if not r.ok:
            raise RemoteError(t.name, f"exited with status {r.exit_status}: {r.tail()}", command=r.command)
    try:
        rows = _mgmt_fact(t.platform).parse(results["mgmt"].stdout)
        vmk_rows = VmknicList5().parse(results["vmknic"].stdout) if results.get("vmknic") and results[
            "vmknic"].ok else []
    except FactParseError as e:
        raise RemoteError(t.name, str(e)) from e
    mgmt = next((r for r in rows if r.name == t.management), None)
    key = None
    if results["key"].ok:
        parts = results["key"].stdout.split()
        if len(parts) >= 2:
            key = (parts[0], parts[1])
    vmk = tuple((r.name, r.ip) for r in vmk_rows if r.name != t.management)
    return Facts(results["hostname"].stdout.strip().split(".")[0], mgmt.ip if mgmt else None,
                 mgmt.netmask if mgmt else None, key, vmk)


CERT_FILES = ("/etc/vmware/ssl/rui.crt", "/etc/vmware/ssl/rui.key")


@dataclass(frozen=True)
class IdentityChange:
    host: str
    platform: Platform
    want: Wanted
    rename: bool
    rekey: bool
    readdress: bool
    vmkernel: tuple[tuple[str, str, str, str], ...] = ()
    confirm_within: float = 60.0

    @property
    def job(self) -> JobFiles:
        digest = hashlib.sha256(f"{self.host}|{self.want.ip}|{self.want.netmask}".encode()).hexdigest()
        return JobFiles(f"/tmp/labctl-identity-{digest[:10]}")

    def describe(self) -> str:
        parts = []
        if self.rename:
            parts.append(f"hostname {self.want.hostname}")
        if self.rekey:
            parts.append("new SSH host keys" + (" and certificate" if self.platform.classic
                                                  or self.platform.version[:2] >= (5, 0) else ""))
        parts += [f"{n} {ip}" for n, ip, _, _ in self.vmkernel]
        if self.readdress:
            parts.append(f"{self.want.management} {self.want.ip}/{self.want.netmask} (commit confirmed)")
        return f"{self.host}: " + ", ".join(parts)

    def prepare_commands(self) -> list[str]:
        """Over the connection at the old address; none of these drops it."""
        w, cmds = self.want, []
        if self.rename:
            if self.platform.classic:
                cmds += [C.sh(["sed", "-i", f"s/^HOSTNAME=[^.]*/HOSTNAME={w.hostname}/", SYSCONFIG_NETWORK]),
                         C.sh(C.sed_replace_line("/adv/Misc/HostName ", f'/adv/Misc/HostName = "{w.hostname}"',
                                                 ESX_CONF)),
                         C.sh(["hostname", w.hostname])]
            elif self.platform.version[:2] >= (5, 0):
                cmds.append(C.sh(["esxcli", "system", "hostname", "set", f"--host={w.hostname}"]))
            else:
                cmds.append(C.sh(["esxcfg-advcfg", "-s", w.hostname, "/Misc/HostName"]))
        for name, ip, mask, pg in self.vmkernel:
            if self.platform.classic or self.platform.version[:2] < (5, 0):
                cmds.append(C.sh(["esxcfg-vmknic", "-i", ip, "-n", mask, pg]))
            else:
                cmds.append(C.sh(["esxcli", "network", "ip", "interface", "ipv4", "set", "-i", name, "-t", "static",
                                  "-I", ip, "-N", mask]))
        if self.rekey:
            keys = [p for k in HOST_KEYS for p in (k, k + ".pub")]
            cmds.append(C.sh(["rm", "-f", *keys]))
            cmds.append(C.sh(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-N", "", "-C", "", "-f", HOST_KEYS[0]]))
            cmds.append(C.sh(["service", "sshd", "restart"]) if self.platform.classic
                        else C.sh(["/etc/init.d/SSH", "restart"]))
            # a new certificate with the new keys: remove both files, restart the agent that makes missing ones
            # (KB 1002826 on ESX 3.x/4.x; vSphere Security 5.5, "Generate New Self-Signed Certificates for ESXi")
            if self.platform.classic:
                cmds += [C.sh(["rm", "-f", *CERT_FILES]), C.sh(["service", "mgmt-vmware", "restart"])]
            elif self.platform.version[:2] >= (5, 0):
                cmds += [C.sh(["rm", "-f", *CERT_FILES]), C.sh(["/sbin/generate-certificates"])]
        return cmds

    def readdress_commands(self) -> list[str]:
        """One detached job: apply the address, wait for labctl's confirmation, restore it unless confirmed."""
        j, w = self.job, self.want
        iface = w.management
        if self.platform.classic:
            ifcfg = IFCFG.format(iface)
            import ipaddress

            bcast = str(ipaddress.ip_network(f"{w.ip}/{w.netmask}", strict=False).broadcast_address)
            apply_ = [C.sh(["cp", ifcfg, j.backup("ifcfg")]), C.sh(["cp", SYSCONFIG_NETWORK, j.backup("network")]),
                      C.sh(C.sed_replace_line("IPADDR=", f"IPADDR={w.ip}", ifcfg)),
                      C.sh(C.sed_replace_line("NETMASK=", f"NETMASK={w.netmask}", ifcfg)),
                      C.sh(C.sed_replace_line("BROADCAST=", f"BROADCAST={bcast}", ifcfg))]
            if w.gateway:
                apply_.append(C.sh(C.sed_replace_line("GATEWAY=", f"GATEWAY={w.gateway}", SYSCONFIG_NETWORK)))
            restore = [C.sh(["cp", j.backup("ifcfg"), ifcfg]), C.sh(["cp", j.backup("network"), SYSCONFIG_NETWORK])]
            bounce = [C.sh(["ifdown", iface]), C.sh(["ifup", iface])]
            apply_, restore = apply_ + bounce, restore + bounce
        else:
            base = ["esxcli", "network", "ip", "interface", "ipv4", "set", "-i", iface, "-t", "static"]
            if self.platform.version[:2] < (5, 0):
                base_new = ["esxcfg-vmknic", "-i", w.ip, "-n", w.netmask, w.portgroup]
                apply_ = [C.sh(base_new)]
                restore = [C.sh(["sh", "-c", f"esxcfg-vmknic -i \"$(cat {j.backup('ip')})\" -n \"$(cat "
                                             f"{j.backup('mask')})\" {C.sh([w.portgroup])}"])]
            else:
                apply_ = [C.sh([*base, "-I", w.ip, "-N", w.netmask])]
                restore = [C.sh(["sh", "-c", f"{C.sh(base)} -I \"$(cat {j.backup('ip')})\" -N \"$(cat "
                                             f"{j.backup('mask')})\""])]
        script = [*apply_,
                  C.wait_while_not(["test", "-d", j.decided], self.confirm_within),
                  C.all_of(["mkdir", j.decided], C.redirect_out(["echo", "rollback"], j.rolled_back)),
                  *(C.all_of(["test", "-f", j.rolled_back], r) for r in restore),
                  C.redirect_out(["echo", "done"], j.done)]
        return [C.seq(["rm", "-rf", j.log, j.decided, j.rolled_back, j.done], C.detached(script, log=j.log))]

    def save_old_address_commands(self, facts: Facts) -> list[str]:
        """ESXi: the old address for the job's restore (the interface has no file to copy)."""
        if self.platform.classic:
            return []
        j = self.job
        return [C.redirect_out(["echo", facts.ip or ""], j.backup("ip")),
                C.redirect_out(["echo", facts.netmask or ""], j.backup("mask"))]

    def confirm_command(self) -> str:
        cmd = C.sh(["mkdir", self.job.decided])
        if not self.platform.classic:
            cmd = C.all_of(cmd, ["/sbin/auto-backup.sh"])
        return cmd

    def commands(self) -> list[str]:
        """Everything, in order (for `plan`)."""
        return [*self.prepare_commands(), C.sh(["cat", RSA_PUB]), *self.readdress_commands(), self.confirm_command()]


def plan(host: str, platform: Platform, want: Wanted, facts: Facts | None, *, source_key: tuple[str, str] | None
         ) -> IdentityChange | None:
    """The change that makes the clone `want` (None: it already is). Without facts (`plan` before the clone runs)
    everything is planned."""
    if facts is None:  # VMkernel ports: only those the clone turns out to have (see below), so none planned here
        return IdentityChange(host, platform, want, True, True, True)
    rename = facts.hostname != want.hostname
    rekey = facts.host_key is None or (source_key is not None and facts.host_key == source_key)
    readdress = (facts.ip, facts.netmask) != (want.ip, want.netmask)
    have = dict(facts.vmkernel)
    # only the VMkernel ports the clone has (its source's): making missing ones is no part of its identity
    vmk = tuple(v for v in want.vmkernel if v[0] in have and have[v[0]] != v[1])
    if not (rename or rekey or readdress or vmk):
        return None
    return IdentityChange(host, platform, want, rename, rekey, readdress, vmk)


@dataclass
class Outcome:
    change: IdentityChange
    status: str  # applied | rolled-back | failed | unreachable
    detail: str = ""
    new_key: tuple[str, str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "applied"


def apply(old: Connection, change: IdentityChange, facts: Facts, *, new: Callable[[], Connection],
          pin: Callable[[tuple[str, str]], None], back_within: float = 120.0, poll: float = 0.2) -> Outcome:
    """Run `change` on the clone reached as `old`; `pin(key)` pins its new host key under its own lab address;
    `new()` opens a connection to that address (used only when the address changes)."""
    try:
        for cmd in [*change.prepare_commands(), *change.save_old_address_commands(facts)]:
            old.run(cmd).check()
        r = old.run(C.sh(["cat", RSA_PUB])).check()
    except HOST_PROBLEMS as e:
        return Outcome(change, "failed", getattr(e, "reason", str(e)))
    parts = r.stdout.split()
    if len(parts) < 2:
        return Outcome(change, "failed", f"{RSA_PUB} holds no public key")
    key = (parts[0], parts[1])
    pin(key)  # read over the authenticated connection: the clone's own key, pinned before it is ever dialled
    if not change.readdress:
        if change.platform.classic is False:
            try:
                old.run(C.sh(["/sbin/auto-backup.sh"])).check()
            except HOST_PROBLEMS as e:
                return Outcome(change, "failed", getattr(e, "reason", str(e)), key)
        return Outcome(change, "applied", "", key)
    job = change.job
    try:
        old.run(change.readdress_commands()[0]).check()
    except ConnectionDropped:
        pass  # the bounce may beat the reply; the read-back at the new address decides
    except HOST_PROBLEMS as e:
        return Outcome(change, "failed", f"the re-address job did not start: {getattr(e, 'reason', e)}", key)
    old.drop()
    deadline = time.monotonic() + change.confirm_within
    conn = new()
    last = ""
    while time.monotonic() < deadline:
        try:
            conn.wait_until_back(deadline, interval=poll)
            f = gather(conn)
            if (f.ip, f.hostname) == (change.want.ip, change.want.hostname):
                conn.run(change.confirm_command()).check()
                _cleanup(conn, job, poll)
                return Outcome(change, "applied", f"answers at {change.want.ip} with its own key", key)
            last = f"it shows {f.hostname} at {f.ip}"
        except HOST_PROBLEMS as e:
            last = getattr(e, "reason", str(e))
        time.sleep(poll)
    return Outcome(change, "rolled-back", f"no answer from {change.want.ip} in {change.confirm_within:g} s "
                   f"({last}); its job puts the old address back", key)


def _cleanup(conn: Connection, job: JobFiles, poll: float, within: float = 5.0) -> None:
    end = time.monotonic() + within
    try:
        while not conn.run(C.sh(["test", "-f", job.done])).ok and time.monotonic() < end:
            time.sleep(poll)
        conn.run(C.sh(["rm", "-rf", *job.all(), job.backup("network"), job.backup("ip"), job.backup("mask")]))
    except HOST_PROBLEMS:
        pass
