"""`labctl vib build|inspect|deploy`: custom VIBs for lab hosts."""

from __future__ import annotations

import argparse

from labctl.errors import ExitStatus, UsageError

DESCRIPTION = "Build, inspect and deploy custom VIBs (ESXi 5+ and ESX 4 formats, offline bundles)."
EPILOG = """\
examples:
  labctl vib build examples/vib/lab-tools -o build/lab-tools-1.0.0-1.vib
  labctl vib build STAGE -o out.vib --bundle out.zip --platform 8.0 --release-date 2024-06-25T07:17:37+00:00
  labctl vib build STAGE -o out.vib --sign lab.key --cert lab.crt
  labctl vib build STAGE -o out.vib --format esx4-deb
  labctl vib inspect build/lab-tools-1.0.0-1.vib
  labctl vib inspect bundle.zip --json
  labctl vib deploy build/lab-tools-1.0.0-1.vib --lab topologies/esxi8-ha-trio.yaml --sim
  labctl vib deploy out.vib --lab lab.yaml --host esxi-a --allow-community --reboot

stage directory (vib build):
  STAGE/descriptor.yaml   name, version (1.0.0-1), vendor, summary, description, acceptance-level,
                          live-install-allowed, ... (or a descriptor.xml to start from)
  STAGE/payloads/NAME/    one tree per payload, laid out as on the host (etc/vmware/firewall/x.xml)

exit statuses: 0 ok (inspect: no error findings), 1 inspect found errors, 2 usage error,
3 deploy failed on a host, 4 host unreachable.
"""


def configure(parser: argparse.ArgumentParser) -> None:
    from labctl.cli.options import add_hosts, add_lab, add_sim

    sub = parser.add_subparsers(dest="vib_command", metavar="ACTION", required=True)

    b = sub.add_parser("build", help="build a .vib (and optionally an offline bundle) from a stage directory",
                       description="Build a VIB from STAGE_DIR (descriptor.yaml or descriptor.xml + payloads/NAME/).",
                       epilog=EPILOG, formatter_class=parser.formatter_class)
    b.add_argument("stage", metavar="STAGE_DIR")
    b.add_argument("-o", "--output", required=True, metavar="OUT.vib")
    b.add_argument("--bundle", metavar="OUT.zip", help="also write an offline bundle (depot zip)")
    b.add_argument("--format", default="esxi", choices=("esxi", "esx4-rpm", "esx4-deb", "esx4-cross"),
                   help="esxi (5.0+, default) or an ESX 4-era VIB")
    b.add_argument("--release-date", metavar="ISO8601",
                   help="release date (xsd:dateTime); fixes every timestamp, so output is reproducible "
                        "(default: the descriptor's, else SOURCE_DATE_EPOCH, else now)")
    b.add_argument("--platform", action="append", default=[], metavar="VERSION",
                   help="a release the VIB targets (8.0, 7.0.3, 8.*; repeatable): the descriptor's "
                        "softwarePlatform and the bundle's platforms (a --bundle needs one)")
    b.add_argument("--sign", metavar="KEY", help="PEM private key: sign descriptor.xml (CMS, SHA-256)")
    b.add_argument("--cert", metavar="CERT", help="PEM certificate matching --sign")
    b.add_argument("--json", action="store_true", help="print the result as JSON")

    i = sub.add_parser("inspect", help="show a VIB's or bundle's contents; verify every checksum",
                       description="Inspect a .vib or offline bundle: descriptor, payloads (every checksum "
                                   "verified), file-list, extensibility rules, signature, findings.",
                       epilog="examples:\n"
                              "  labctl vib inspect build/lab-tools-1.0.0-1.vib\n"
                              "  labctl vib inspect bundle.zip --json | jq '.vibs[].vib_id'\n"
                              "  labctl vib inspect signed.vib --ca lab-ca.pem     also check the signer's chain\n"
                              "  labctl vib inspect untrusted.vib --max-uncompressed 104857600\n\n"
                              "exit status: 0 no error findings, 1 errors found, 2 usage error",
                       formatter_class=parser.formatter_class)
    i.add_argument("file", metavar="FILE.vib|BUNDLE.zip")
    i.add_argument("--ca", metavar="CA.pem", help="also check that the signer certificate chains to this CA")
    i.add_argument("--json", action="store_true", help="one JSON object (kind, vib_id, payloads, findings, vibs)")
    i.add_argument("--max-uncompressed", type=int, default=None, metavar="BYTES",
                   help="cap on a payload's decompressed size (gzip-bomb guard; default 2 GiB)")

    d = sub.add_parser("deploy", help="upload and install a VIB on the lab's hosts",
                       description="Upload FILE.vib to each host, check/lower the acceptance level, install, "
                                   "reboot when asked. Hosts with the same version installed are skipped.",
                       epilog=EPILOG, formatter_class=parser.formatter_class)
    d.add_argument("file", metavar="FILE.vib")
    add_lab(d)
    add_hosts(d)
    add_sim(d)
    d.add_argument("--allow-community", action="store_true",
                   help="lower the host acceptance level to CommunitySupported when the VIB needs it")
    d.add_argument("--reboot", action="store_true", help="reboot hosts that need it and wait for them")
    d.add_argument("--force", action="store_true", help="pass -f (extensibility-rule violations)")
    d.add_argument("--json", action="store_true", help="print per-host results as JSON")


def run(args: argparse.Namespace, env) -> ExitStatus:
    if args.vib_command == "inspect":
        return _inspect(args, env)
    if args.vib_command == "build":
        return _build(args, env)
    if args.vib_command == "deploy":
        return _deploy(args, env)
    raise UsageError(f"unknown action {args.vib_command!r}")


def _inspect(args, env) -> ExitStatus:
    import json

    from labctl.vib.inspect import KIND_LABELS, inspect_path
    from labctl.vib.payload import Limits

    path = env.path(args.file)
    if not path.is_file():
        raise UsageError(f"{args.file}: no such file", hint="give a .vib or an offline bundle .zip")
    ca = None
    if args.ca:
        try:
            ca = env.path(args.ca).read_bytes()
        except OSError as e:
            raise UsageError(f"cannot read CA {args.ca}: {e.strerror}") from None
    limits = Limits() if args.max_uncompressed is None else Limits(max_total=args.max_uncompressed)
    try:
        rep = inspect_path(path, ca_pem=ca, limits=limits)
    except Exception as e:
        if not args.json or isinstance(e, UsageError):
            raise
        # --json always prints JSON; a bug is still a bug (exit 3), but the caller gets a parseable verdict
        env.out(json.dumps({"path": str(path), "kind": "unknown", "kind_label": KIND_LABELS["unknown"],
                            "vib_id": None, "ok": False, "payloads": [], "findings": [
                                {"severity": "error", "message": f"internal error while inspecting: "
                                                                 f"{type(e).__name__}: {e} (a bug in labctl; "
                                                                 "please report it)"}]}, indent=2))
        return ExitStatus.FAILED
    if args.json:
        env.out(json.dumps(rep.to_json(), indent=2))
    else:
        _print_report(rep, env, KIND_LABELS)
    return ExitStatus.SUCCESS if rep.ok else ExitStatus.FINDINGS


def _print_report(rep, env, labels, indent: str = "") -> None:
    """Every line goes through printable(): descriptor text, member names and the messages quoting them are
    untrusted (a summary with newlines could otherwise forge 'signature: valid' and 'result: ok' lines)."""
    from labctl.vib.findings import printable

    class _Out:
        def out(self, text: str = "") -> None:
            env.out(printable(text))

    _report_lines(rep, _Out(), labels, indent)


def _report_lines(rep, env, labels, indent: str = "") -> None:
    env.out(f"{indent}{rep.path}")
    env.out(f"{indent}  kind:     {labels.get(rep.kind, rep.kind)}")
    if rep.vib_id:
        env.out(f"{indent}  VIB ID:   {rep.vib_id}")
    d = rep.descriptor
    if d is not None:
        env.out(f"{indent}  name:     {d.name}  version: {d.version}  vendor: {d.vendor}")
        env.out(f"{indent}  summary:  {d.summary}")
        env.out(f"{indent}  acceptance: {d.acceptance_level}  live-install: {str(d.live_install_allowed).lower()}"
                f"  maintenance-mode: {d.maintenance_mode}  released: {d.release_date}")
        for label, items in (("depends", d.depends), ("conflicts", d.conflicts), ("replaces", d.replaces)):
            if items:
                env.out(f"{indent}  {label}: " + ", ".join(
                    c.name + (f" {c.relation} {c.version}" if c.relation else "") for c in items))
        env.out(f"{indent}  files:    {len(d.file_list)} in file-list")
    if rep.esx4 is not None:
        e = rep.esx4
        env.out(f"{indent}  name:     {e.name}  version: {e.version}  vendor: {e.vendor}  vibType: {e.vib_type}")
    if rep.signature is not None:
        env.out(f"{indent}  signature: {rep.signature.message}")
    for p in rep.payloads:
        sums = ", ".join(f"{c['type']}{'/' + c['verify_process'] if c['verify_process'] else ''} "
                         f"{'ok' if c['ok'] else 'MISMATCH'}" for c in p.checksums)
        env.out(f"{indent}  payload {p.name} ({p.type}, {p.size} bytes"
                + (f", {p.uncompressed_size} uncompressed" if p.uncompressed_size is not None else "")
                + f"): {sums or 'no checksum declared'}")
    if rep.bundle:
        b = rep.bundle
        env.out(f"{indent}  vendor: {b.get('vendor')}  platform: {b.get('platform_version')}  "
                f"bulletins: {', '.join(x for x in b.get('bulletins', []) if x)}")
    for f in rep.findings:
        env.out(f"{indent}  {f.severity}: {f.message}")
    for p in rep.payloads:
        for f in p.findings:
            env.out(f"{indent}  {f.severity}: {f.message}")
    for v in rep.vibs:
        _report_lines(v, env, labels, indent + "  ")
    if not indent:
        errs = len(rep.all_errors())
        env.out("result: " + ("ok" if not errs else f"{errs} error(s)"))


def _build(args, env) -> ExitStatus:
    import json

    from labctl.vib.build import BuildOptions, build_vib

    if bool(args.sign) != bool(args.cert):
        raise UsageError("--sign and --cert go together", hint="--sign lab.key --cert lab.crt")
    opts = BuildOptions(
        stage=env.path(args.stage),
        output=env.path(args.output),
        bundle=env.path(args.bundle) if args.bundle else None,
        format=args.format,
        release_date=args.release_date,
        sign_key=env.path(args.sign) if args.sign else None,
        sign_cert=env.path(args.cert) if args.cert else None,
        source_date_epoch=env.environ.get("SOURCE_DATE_EPOCH"),
        platforms=tuple(args.platform),
    )
    result = build_vib(opts)
    if args.json:
        env.out(json.dumps(result.to_json(), indent=2))
    else:
        env.out(f"built {result.output} ({result.size} bytes): {result.vib_id}")
        for p in result.payloads:
            env.out(f"  payload {p['name']}: {p['size']} bytes, {p['uncompressed_size']} uncompressed, "
                    f"{len(p['files'])} file(s)")
        if result.bundle:
            env.out(f"bundle  {result.bundle}")
        for f in result.findings:
            env.out(f"  {f.severity}: {f.message}")
    return ExitStatus.SUCCESS


def _deploy(args, env) -> ExitStatus:
    from labctl.cli.lablock import run_locked
    from labctl.topology import load_topology

    topology = load_topology(env.path(args.lab))
    return run_locked(args, env, topology, lambda: _deploy_locked(args, env, topology))


def _deploy_locked(args, env, topology) -> ExitStatus:
    import json

    from labctl.plan.backends import open_lab
    from labctl.vib.deploy import DeployOptions, _topology_allows, deploy, load_vib_info, render_report

    if args.sim:  # the simulated lab keeps its state (and the VIBs `up` built) in the sim dir, as `up --sim` does
        from labctl.sim.paths import sim_dir

        topology = topology.rebased(sim_dir(topology.lab, env, args.sim_dir) / "vms")
    vib = load_vib_info(env.path(args.file))
    hosts = args.host or None  # --host NAME (repeatable, or NAME,NAME); --hosts is its hidden alias
    if hosts:
        unknown = [h for h in hosts if h not in {e.name for e in topology.esx_hosts}]
        if unknown:
            raise UsageError(f"--host: {', '.join(unknown)} not in {topology.lab}",
                             hint="hosts: " + ", ".join(e.name for e in topology.esx_hosts))
    lab, targets = open_lab(topology, env, hosts=hosts, sim=args.sim, sim_dir=args.sim_dir)
    opts = DeployOptions(allow_community=args.allow_community or _topology_allows(topology, vib),
                         reboot=args.reboot, force=args.force)
    with lab:
        report = deploy(lab, targets, vib, opts)
    if args.json:
        env.out(json.dumps(report.to_json(), indent=2))
    else:
        for line in render_report(report):
            env.out(line)
    return report.status
