"""The identity stage: every linked clone ends with its own hostname, addresses and SSH host key, pinned by labctl.

guestinfo clones (ESXi 5.1+, ESX 9): the clones stage wrote `guestinfo.labctl.*` into the clone's .vmx; the boot
script its source's kickstart installed applies them and publishes the new host key as `guestinfo.labctl.hostkey`.
This stage reads that through the hypervisor (`Driver.read_guest_var`) and pins it under the clone's lab address
before anything connects to the clone — parallel, and no network path to the clone's old address is needed.

ssh clones (ESX classic 3.5/4.x, ESXi 4.1 and 5.0: no vmtoolsd or no local.sh): one clone at a time, with its source
and the other clones still to do powered off, the clone is reached at its source's address with the source's pinned
key and changed over SSH (`labctl.remote.operations.identity`: hostname, new host keys read back and pinned, the
address commit confirmed). A clone whose own address already has its own key pinned is done.

Docs: docs/install.md, "Clone identity".
"""

from __future__ import annotations

import time

from labctl.errors import LabctlError
from labctl.plan.context import Context
from labctl.plan.model import StageReport
from labctl.plan.stages_vms import _running, driver

GUEST_WAIT_SIM = 60.0  # seconds for a clone's boot script (it reboots the clone once)
GUEST_WAIT_REAL = 900.0


def _known_hosts(ctx: Context):
    return ctx.sim_dir / "known_hosts" if ctx.sim_dir else ctx.topology.known_hosts


def _pin_name(host) -> str:
    from labctl.remote.known_hosts import entry_name

    return entry_name(host.address, host.ssh.port)


def identity(ctx: Context, rep: StageReport) -> None:
    from labctl.render import identity as ident

    topo = ctx.topology
    clones = [h for h in topo.esx_hosts if h.is_clone and h.name not in ctx.failed_hosts]
    if not clones:
        rep.skipped = "no linked clones" if not any(h.is_clone for h in topo.esx_hosts) else "no clones left"
        return
    by_method = {"guestinfo": [], "ssh": []}
    for h in clones:
        by_method[ident.method(h)].append(h)
    for h in by_method["guestinfo"]:
        _guestinfo(ctx, rep, h)
    if by_method["ssh"]:
        _sequential(ctx, rep, by_method["ssh"])


# ---------------------------------------------------------------------------------------------------------------
# guestinfo: read the key the clone published, pin it


def parse_published_key(value: str) -> tuple[str, str] | None:
    """'ssh-rsa AAAA… [comment]' -> (type, base64); None for anything else."""
    import base64
    import binascii

    from labctl.remote.known_hosts import KEY_ALGORITHMS

    parts = (value or "").split()
    if len(parts) < 2 or parts[0] not in KEY_ALGORITHMS:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    # the blob starts with its own type name (RFC 4253 section 6.6): a key of another type is no key of this type
    n = int.from_bytes(blob[:4], "big") if len(blob) > 4 else -1
    if blob[4:4 + n].decode("ascii", "replace") != parts[0]:
        return None
    return parts[0], parts[1]


def _guestinfo(ctx: Context, rep: StageReport, h) -> None:
    from labctl.remote.known_hosts import fingerprint, pin, pinned

    from labctl.render.identity import HOSTKEY_VAR

    from labctl.render.identity import source_public_key

    src = ctx.topology.host(h.linked_clone_of)
    installed_by_labctl = src.install is not None and src.install.kickstart != "none" and (
        src.name in ctx.pending or source_public_key(ctx.topology, src) is not None)  # (pending: installed first)
    if not installed_by_labctl:
        rep.notes.append(f"{h.name}: its source {src.name} was not installed by labctl's kickstart, so it has no "
                         "identity boot script; give the clone its hostname and addresses at its console (the macs "
                         "stage still repairs its MACs and /system/uuid)")
        return
    name = _pin_name(h)
    how = (f"takes its own identity at boot (its guestinfo.labctl.* through the boot script of "
           f"{h.linked_clone_of}); pin the SSH host key it publishes under {name}")
    cmd = f"vmrun -T ws readVariable {h.vmx_path} guestVar {HOSTKEY_VAR}"
    if h.name in ctx.pending:
        rep.change(h.name, how, cmd)
        return
    drv = driver(ctx)
    if h.vmx_path.resolve() not in _running(drv):
        rep.notes.append(f"{h.name} is not running: its identity is checked when it runs")
        return
    wait = GUEST_WAIT_SIM if ctx.sim_dir else GUEST_WAIT_REAL
    deadline = time.monotonic() + (wait if ctx.apply else 0.0)
    ctx.progress.host(h.name, "waiting for its identity")
    while True:
        try:
            value = drv.read_guest_var(h.vmx_path, HOSTKEY_VAR)
        except LabctlError as e:
            rep.fail(h.name, e.message, e.hint)
            ctx.failed_hosts[h.name] = "identity"
            return
        if value or time.monotonic() >= deadline:
            break
        time.sleep(0.1 if ctx.sim_dir else 5.0)
    if not value:
        if not ctx.apply:
            rep.change(h.name, how, cmd)
            return
        rep.fail(h.name, f"published no SSH host key (guestinfo.{HOSTKEY_VAR}) within {wait:.0f} s",
                 hint=f"{h.linked_clone_of} must have been installed by labctl's kickstart (it installs the "
                      f"identity boot script /etc/rc.local.d/local.sh); for a source installed by hand give "
                      f"{h.name} its identity at its console and pin its key (--trust-new-hosts)")
        ctx.failed_hosts[h.name] = "identity"
        return
    key = parse_published_key(value)
    if key is None:
        rep.fail(h.name, f"guestinfo.{HOSTKEY_VAR} holds no SSH public key", hint="look at the clone's console")
        ctx.failed_hosts[h.name] = "identity"
        return
    path = _known_hosts(ctx)
    if pinned(path, name) == [key]:
        return
    rep.change(h.name, f"pin the SSH host key it published ({key[0]} {fingerprint(key[1])}) under {name}", cmd)
    if ctx.apply:
        pin(path, name, *key)


# ---------------------------------------------------------------------------------------------------------------
# sequential over SSH


def wanted(h):
    from labctl.remote.operations.identity import Wanted
    from labctl.render.identity import check_ipv4, check_name

    m = h.management
    vmk = tuple((f"vmk{i}", check_ipv4(v.ip, f"{h.name}'s vmk{i} ip"), check_ipv4(v.netmask, "netmask"), v.portgroup)
                for i, v in enumerate(h.vmkernel, 0 if h.flavor == "esx" and h.version_info.release < (5, 0) else 1))
    return Wanted(name=h.name, hostname=check_name(h.name, "host name"), management=h.management_name,
                  ip=check_ipv4(m.ip, f"{h.name}'s management ip"), netmask=check_ipv4(m.netmask, "netmask"),
                  gateway=check_ipv4(m.gateway, "gateway") if m.gateway else None, portgroup=m.portgroup,
                  vmkernel=vmk)


def _sequential(ctx: Context, rep: StageReport, clones) -> None:
    from labctl.remote.hosts import target_from_host
    from labctl.remote.known_hosts import pinned
    from labctl.remote.operations import identity as op

    topo = ctx.topology
    path = _known_hosts(ctx)
    todo = []
    for h in clones:
        src = topo.host(h.linked_clone_of)
        own, theirs = pinned(path, _pin_name(h)), pinned(path, _pin_name(src))
        if not theirs and h.name not in ctx.pending and src.name not in ctx.pending:
            rep.notes.append(f"{h.name}: no key of its source {src.name} is pinned under {_pin_name(src)} (installed "
                             "by hand?), so the clone cannot be recognised at its source's address; give it its "
                             "hostname and address at its console (the macs stage still repairs its MACs and UUID)")
            continue
        if own and not set(own) & set(theirs):
            continue  # only keys of its own are pinned under its address: it took its identity (ssh checks them)
        todo.append((h, src))
    if not todo:
        return
    if not ctx.apply or any(h.name in ctx.pending for h, _ in todo):
        for h, src in todo:
            change = op.plan(h.name, target_from_host(h).platform, wanted(h), None, source_key=None)
            rep.change(h.name, f"identity over SSH, one clone at a time: {src.name} powered off, {h.name} reached "
                               f"at {src.address} with {src.name}'s key; " + change.describe().split(": ", 1)[1]
                       + f"; its new key pinned under {_pin_name(h)}", *change.commands())
        return
    drv = driver(ctx)
    sources = {src.name: src for _, src in todo}
    waiting = {h.name for h, _ in todo}
    try:
        _power_off(ctx, drv, [*sources.values(), *(h for h, _ in todo)])
    except LabctlError as e:
        for h, _ in todo:
            rep.fail(h.name, e.message, e.hint)
            ctx.failed_hosts[h.name] = "identity"
        return
    for h, src in todo:
        waiting.discard(h.name)
        try:
            _one(ctx, rep, drv, h, src, op, target_from_host)
        except LabctlError as e:
            rep.fail(h.name, e.message, e.hint)
            ctx.failed_hosts[h.name] = "identity"
    for src in sources.values():  # the sources come back once no copy of their address is left
        try:
            drv.start(src.vmx_path)
        except LabctlError as e:
            rep.fail(src.name, f"could not start it again after its clones' identity: {e.message}", e.hint)


def _power_off(ctx: Context, drv, vms) -> None:
    running = _running(drv)
    for vm in vms:
        if vm.vmx_path.resolve() in running:
            ctx.progress.host(vm.name, "powering off (a clone takes its identity)")
            try:
                drv.stop(vm.vmx_path, hard=False)
            except LabctlError:  # no VMware Tools in an ESX classic guest
                drv.stop(vm.vmx_path, hard=True)


def _settings(ctx: Context):
    if ctx.sim_dir:
        from labctl.sim.endpoints import ssh_settings

        return ssh_settings(ctx.sim_dir, environ=dict(ctx.env.environ), prompt=ctx.env.secret_prompt())
    from labctl.remote.lab import connect_settings

    return connect_settings(ctx.topology, ctx.env)


def _one(ctx: Context, rep: StageReport, drv, h, src, op, target_from_host) -> None:
    import dataclasses

    from labctl.remote.connection import Connection
    from labctl.remote.known_hosts import fingerprint, pin, pinned

    ctx.progress.host(h.name, "starting alone")
    drv.start(h.vmx_path)
    path = _known_hosts(ctx)
    source_keys = pinned(path, _pin_name(src))
    if not source_keys:
        raise LabctlError(f"no key of its source {src.name} is pinned under {_pin_name(src)}",
                          hint="the install stage pins it; run `labctl up` from the start")
    wait = 60.0 if ctx.sim_dir else 600.0
    target = target_from_host(h)
    at_source = dataclasses.replace(target, address=src.address, port=src.ssh.port)
    settings = _settings(ctx)
    conn = _reach(ctx, h, src, at_source, target, settings, source_keys, wait)
    try:
        facts = op.gather(conn)
        change = op.plan(h.name, target.platform, wanted(h), facts, source_key=facts.host_key
                         if facts.host_key in source_keys else None)
        if change is None:
            return
        ctx.progress.host(h.name, "taking its identity")

        def pin_new(key):
            pin(path, _pin_name(h), *key)

        out = op.apply(conn, change, facts, new=lambda: Connection(target, _settings(ctx)), pin=pin_new,
                       back_within=wait)
        if out.ok:
            fp = f" (key {out.new_key[0]} {fingerprint(out.new_key[1])} pinned under {_pin_name(h)})" \
                if out.new_key else ""
            rep.change(h.name, change.describe().split(": ", 1)[1] + fp + (f" — {out.detail}" if out.detail else ""))
        else:
            rep.fail(h.name, f"{change.describe()}: {out.status}: {out.detail}",
                     hint="a re-run continues from what the clone shows")
            ctx.failed_hosts[h.name] = "identity"
    finally:
        conn.close()


def _reach(ctx: Context, h, src, at_source, target, settings, source_keys, wait: float):
    """The clone, started alone: at its source's address with its source's key (a copy of the source's disk), or,
    when someone already gave it its own address at the console, there — still with the source's key, which is
    then expected under its own address too (its disk is a copy: no trust on first use). Both are tried in turn
    until `wait` has passed (a real ESX classic host takes minutes to boot)."""
    from labctl.remote.connection import Connection
    from labctl.remote.known_hosts import pin, pinned

    path = _known_hosts(ctx)
    step = 2.0 if ctx.sim_dir else 15.0
    deadline = time.monotonic() + wait
    last: LabctlError | None = None
    while True:
        for t in (at_source, target):
            if t is target and not pinned(path, _pin_name(h)):
                pin(path, _pin_name(h), *source_keys[0])
            conn = Connection(t, settings if t is at_source else _settings(ctx))
            try:
                conn.wait_until_back(min(deadline, time.monotonic() + step), first=True)
                return conn
            except LabctlError as e:
                conn.close()
                if t is at_source:
                    last = e
        if time.monotonic() >= deadline:
            assert last is not None
            raise last
