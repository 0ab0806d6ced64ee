"""The stages of `up`, in order, and the runner shared by `plan` (read only) and `up` (apply)."""

from __future__ import annotations

import importlib
import time
from collections import namedtuple

from labctl.errors import ExitStatus, LabctlError

TYPE_CHECKING = False  # `labctl up --help` imports this module: no typing, no dataclasses at start-up
if TYPE_CHECKING:
    from labctl.plan.context import Context
    from labctl.plan.model import PipelineReport


class Stage(namedtuple("Stage", "name title func")):
    """One stage: its name (--only/--skip), what it does, and "module:function" (imported only when it runs)."""

    __slots__ = ()


STAGES: tuple[Stage, ...] = (
    Stage("validate", "validate the topology", "labctl.plan.stages_local:validate"),
    Stage("render", "render .vmx files and clone plans", "labctl.plan.stages_local:render"),
    Stage("networks", "host networks (vmnets, LAN segments)", "labctl.plan.stages_local:networks"),
    Stage("vmnet", "/dev/vmnet* permissions (promiscuous mode)", "labctl.plan.stages_local:vmnet"),
    Stage("vms", "create VMs, their disks and install media", "labctl.plan.stages_vms:vms"),
    Stage("install", "install ESX unattended and prepare clone sources", "labctl.plan.stages_install:install"),
    Stage("clones", "snapshot clone sources and make the linked clones", "labctl.plan.stages_install:clones"),
    Stage("start", "start VMs", "labctl.plan.stages_vms:start"),
    Stage("identity", "linked clones take their own identity (hostname, addresses, host keys)",
          "labctl.plan.stages_identity:identity"),
    Stage("ssh", "wait for SSH on every host", "labctl.plan.stages_remote:ssh"),
    Stage("macs", "repair duplicate vswif/vmk MACs and system UUIDs", "labctl.plan.stages_remote:macs"),
    Stage("nfs", "mount NFS datastores", "labctl.plan.stages_remote:nfs"),
    Stage("vcenter", "vCenter: datacenter, cluster, hosts, HA isolation addresses", "labctl.plan.stages_remote:vcenter"),
    Stage("vibs", "build and deploy VIBs", "labctl.plan.stages_remote:vibs"),
)
STAGE_NAMES = tuple(s.name for s in STAGES)
# stages every host must pass; when one fails as a whole, the later stages skip all hosts instead of dialling them
HOST_STAGES = ("vms", "install", "clones", "start", "ssh")


def selected(only: tuple[str, ...], skip: tuple[str, ...]) -> list[Stage]:
    return [s for s in STAGES if (not only or s.name in only or s.name == "validate") and s.name not in skip]


def run_pipeline(ctx: Context) -> PipelineReport:
    """Run the selected stages in order. Ctrl-C, or a closed output (broken pipe), stops between steps; a re-run
    resumes (every stage reads state)."""
    from labctl.plan.model import PipelineReport, StageReport

    report = PipelineReport(ctx.topology.lab, "up" if ctx.apply else "plan", bool(ctx.sim_dir))
    try:
        for stage in selected(ctx.options.only, ctx.options.skip):
            rep = StageReport(stage.name, stage.title)
            report.stages.append(rep)
            ctx.progress.stage(stage.title)
            t0 = time.monotonic()
            mod, _, fn = stage.func.partition(":")
            try:
                getattr(importlib.import_module(mod), fn)(ctx, rep)
            except LabctlError as e:  # the stage as a whole could not run
                rep.fail(ctx.topology.lab, e.message, e.hint)
                if e.status == ExitStatus.ENVIRONMENT:
                    report.environment = True
                if stage.name in HOST_STAGES:  # no host got past it: later stages leave them all alone
                    for vm in (*ctx.topology.esx_hosts, *ctx.topology.vms):
                        ctx.failed_hosts.setdefault(vm.name, stage.name)
            rep.seconds = time.monotonic() - t0
            for n in rep.notes:
                ctx.progress.line(f"    · {n}")
            for c in rep.changes:
                ctx.progress.line(f"    {'+' if ctx.apply else '~'} {c.target}: {c.summary}",
                                  "change" if ctx.apply else "plan")
            for f in rep.failures:
                ctx.progress.line(f"    ! {f.target}: {f.message}", "fail")
            if rep.skipped:
                ctx.progress.line(f"    - skipped: {rep.skipped}")
            if not rep.changes and not rep.failures and not rep.skipped:
                ctx.progress.line("    = no changes")
            if getattr(ctx.progress, "broken", False):  # `labctl up … | head`: stop here, like Ctrl-C
                report.output_closed = True
                break
    except KeyboardInterrupt:
        report.interrupted = True
    finally:
        ctx.progress.close()
    return report
