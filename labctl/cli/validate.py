"""labctl validate FILE…"""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Check topology files and report every problem at once, each as
  FILE:LINE:COL: PATH: MESSAGE
Errors make the file unusable; warnings (reachability, HA without isolation address, ...) say what to add.
Nothing is contacted: validation is offline. A golden host's installer ISO is read from this machine (metadata
only): a missing file, a file that is no ESX installer, or an installer of another version is an error at its
`iso:` line. With --sim a missing ISO is fine: `up --sim` writes a synthetic installer of the host's version."""

EPILOG = """\
examples:
  labctl validate topologies/esx35-ha-pair.yaml
  labctl validate topologies/*.yaml --json
  labctl validate lab.yaml --strict          # warnings count as errors (for CI)
  labctl validate topologies/*.yaml --sim    # for a simulated run: ISOs this machine lacks are not needed

exit status: 0 valid, 2 errors (or warnings with --strict)."""


def configure(p) -> None:
    p.add_argument("files", nargs="+", metavar="FILE", help="topology YAML files")
    p.add_argument("--json", action="store_true", help="print one JSON object with every problem")
    p.add_argument("--strict", action="store_true", help="treat warnings as errors")
    p.add_argument("-q", "--quiet", action="store_true", help="print errors only (no warnings, no summary)")
    p.add_argument("--sim", action="store_true",
                   help="validate for `up --sim`: an installer ISO missing on this machine is not an error")


def run(args, env) -> ExitStatus:
    import json

    from labctl.cli.style import style_for
    from labctl.topology import load
    from labctl.topology.loader import format_path

    err, out = style_for(env, env.stderr, args), style_for(env, env.stdout, args)

    failed = False
    report = []
    for f in args.files:
        res = load(env.path(f), display_name=f)
        if res.topology is not None:
            _check_isos(res, sim=args.sim)
        errors, warnings = res.errors, res.warnings
        bad = bool(errors) or (args.strict and bool(warnings))
        failed |= bad
        if args.json:
            report.append({
                "file": f,
                "valid": not bad,
                "problems": [
                    {"severity": p.severity, "line": res.marks.at(p.path, key=p.key)[0],
                     "column": res.marks.at(p.path, key=p.key)[1], "path": format_path(p.path), "message": p.message}
                    for p in res.problems
                ],
            })
            continue
        for line in res.formatted("error"):
            env.err(err.fail(line))
        if not args.quiet or args.strict:  # with --strict a warning is an error: never hidden
            for line in res.formatted("warning"):
                env.err(err.fail(line) if args.strict else err.warn(line))
        if not args.quiet:
            if errors:
                env.err(err.fail(f"{f}: {len(errors)} error(s), {len(warnings)} warning(s)"))
            elif bad:
                env.err(err.fail(f"{f}: fails --strict: {len(warnings)} warning(s) above, and --strict counts "
                                 "warnings as errors (fix them, or drop --strict)"))
            else:
                t = res.topology
                summary = (f"{len(t.esx_hosts)} ESX host(s), {len(t.vms)} other VM(s), {len(t.networks)} network(s)"
                           if t else "")
                if t and t.target is not None:
                    summary += f", onto vSphere {t.target.host}"
                env.out(out.ok(f"{f}: ok") + f" ({summary}{', ' if summary else ''}{len(warnings)} warning(s))")
    if args.json:
        env.out(json.dumps({"valid": not failed, "files": report}, indent=2))
    return ExitStatus.USAGE if failed else ExitStatus.SUCCESS


def _check_isos(res, *, sim: bool) -> None:
    """The golden hosts' installer ISOs are read from this machine (metadata only): a missing one (unless `sim`:
    `up --sim` writes a synthetic installer), no ESX installer, or an installer of another version is an error at
    the host's `iso:`, as `plan`/`up` refuse them."""
    from labctl.plan.media import iso_problems
    from labctl.topology.loader import Problem

    hosts = list(res.topology.esx_hosts)
    for c in iso_problems(hosts, sim=sim):
        msg = c.message.removeprefix("iso ")
        if msg.endswith("does not exist"):  # the way out: the real ISO, or a simulated run
            msg += f": {c.hint} (labctl validate FILE --sim checks a topology for that)"
        res.problems.append(Problem(("esx_hosts", hosts.index(c.host), "iso"), msg))
