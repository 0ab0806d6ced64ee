"""labctl plan FILE — what `up` would change, changing nothing."""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Read the lab's current state — files, running VMs, vmnet permissions, SSH facts of each host, the vCenter — and
print, per stage and target, what `labctl up` would change. Nothing is changed (no file written, no command that
modifies a host). `--json` prints one object whose `changes` list is empty exactly when the lab already matches
the topology."""

EPILOG = """\
examples:
  labctl plan topologies/esx35-ha-pair.yaml --sim
  labctl plan lab.yaml --json | jq '.changes | length'
  labctl plan lab.yaml --only macs vcenter

exit status: 0 the plan was made (changes or not), 2 usage or topology errors, 3 some state could not be read,
4 a host was unreachable, 6 a prerequisite is missing (vmrun, a running simulated lab's vCenter)."""


def configure(p) -> None:
    from labctl.cli.up import add_pipeline_args

    add_pipeline_args(p, up=False)


def run(args, env) -> ExitStatus:
    from labctl.cli.up import build_context, print_summary, status_for
    from labctl.plan.pipeline import run_pipeline

    ctx = build_context(args, env, apply=False)
    try:
        report = run_pipeline(ctx)
    finally:
        ctx.close()
    print_summary(report, env, args, apply=False)
    return status_for(report)
