"""Stages on a vSphere target (`target: {kind: vsphere}`) that replace the Workstation host's: networks (the lab's
portgroups instead of vmnets and LAN segments) and vmnet (nothing: no /dev/vmnet* on a vSphere target)."""

from __future__ import annotations

from labctl.plan.context import Context
from labctl.plan.model import StageReport


def networks(ctx: Context, rep: StageReport) -> None:
    from labctl.plan.backends import target_session
    from labctl.vsphere.target.networks import apply, plan_networks, read_state

    topo = ctx.topology
    ctx.progress.host("target", "connecting")
    client = target_session(ctx)
    ctx.progress.host("target", "reading networks")
    state = read_state(client, topo, topo.state_dir)
    plan = plan_networks(topo, state)
    rep.notes.extend(plan.notes)
    for target, message, hint in plan.failures:
        rep.fail(target, message, hint)
    if not ctx.apply:
        for call in plan.calls:
            rep.change(call.obj, f"{call.display} — {call.why}", call.display)
        return
    for result in apply(client, state, plan, topo.state_dir):
        if result.ok:
            rep.change(result.call.obj, f"{result.call.display} — {result.call.why}", result.call.display)
        else:
            rep.fail(result.call.obj, f"{result.call.method}: {result.message}")


def vmnet(ctx: Context, rep: StageReport) -> None:
    rep.skipped = "a vSphere target has no /dev/vmnet* (the portgroups' policy lets nested ESX see its frames)"
