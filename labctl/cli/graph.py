"""`labctl graph FILE [-o lab.svg|lab.mmd|lab.dot] [--format svg|mermaid|dot]`: a picture of the lab."""

from __future__ import annotations

from labctl.errors import ExitStatus, UsageError

DESCRIPTION = """\
Draw the lab described by FILE: its VMs (ESX hosts with flavour and version, linked clones marked as clones of
their source, other VMs), its networks (LAN segments, vmnets with subnets, "no gateway"), management and
VMkernel IPs, cluster membership (HA, isolation addresses) and NFS datastores.

Formats: svg (Graphviz `dot` when it is on PATH, else labctl's own layout: networks as bus lines, clusters as
rectangles), mermaid (`graph LR`, renders in GitHub/GitLab Markdown) and dot (Graphviz source). The format
follows the output file's extension unless --format is given; without -o the text goes to stdout.
The output is deterministic: the same topology gives the same bytes (with the built-in SVG layout)."""

EPILOG = """\
examples:
  labctl graph topologies/esx35-ha-pair.yaml -o lab.svg           SVG (Graphviz if installed, else built-in)
  labctl graph topologies/esx35-ha-pair.yaml -o lab.svg --engine builtin
  labctl graph topologies/esx35-ha-pair.yaml -o lab.mmd           Mermaid text
  labctl graph topologies/esx35-ha-pair.yaml --format dot | dot -Tpng -o lab.png
"""

_BY_SUFFIX = {
    ".svg": "svg",
    ".mmd": "mermaid",
    ".mermaid": "mermaid",
    ".md": "mermaid",
    ".dot": "dot",
    ".gv": "dot",
}


def configure(p) -> None:
    p.add_argument("file", metavar="FILE", help="topology YAML file")
    p.add_argument(
        "-o", "--output", metavar="PATH", help="write here (format from the extension: .svg .mmd .dot)"
    )
    p.add_argument(
        "--format", choices=("svg", "mermaid", "dot"), help="output format (default: from -o, else mermaid)"
    )
    p.add_argument(
        "--engine",
        choices=("auto", "graphviz", "builtin"),
        default="auto",
        help="SVG layout: Graphviz `dot` (auto: when on PATH) or labctl's built-in layout",
    )
    p.add_argument(
        "--force", action="store_true", help="overwrite PATH even if it was edited or not written by labctl"
    )


def _format(args) -> str:
    if args.format:
        return args.format
    if args.output:
        from pathlib import PurePath

        suffix = PurePath(args.output).suffix.lower()
        if suffix not in _BY_SUFFIX:
            raise UsageError(
                f"cannot tell the format from {args.output!r}",
                hint="name the file .svg, .mmd or .dot, or pass --format svg|mermaid|dot",
            )
        return _BY_SUFFIX[suffix]
    return "mermaid"


def render_text(topology, fmt: str, *, engine: str = "builtin", dot_exe: str | None = None) -> str:
    """The picture of `topology` as text in `fmt` (svg, mermaid or dot)."""
    from labctl.render import graph

    g = graph.from_topology(topology)
    if fmt == "mermaid":
        return graph.to_mermaid(g)
    if fmt == "dot":
        return graph.to_dot(g)
    if engine == "graphviz":
        if not dot_exe:
            from labctl.errors import EnvironmentProblem

            raise EnvironmentProblem(
                "Graphviz `dot` is not on PATH",
                hint="install graphviz, or use --engine builtin (no dependency)",
            )
        return graph.dot_to_svg(graph.to_dot(g), dot_exe)
    return graph.to_svg(g)


def run(args, env) -> ExitStatus:
    import shutil

    from labctl.topology import load_topology

    fmt = _format(args)
    topology = load_topology(env.path(args.file))
    engine = args.engine
    dot_exe = (
        shutil.which("dot", path=env.environ.get("PATH", ""))
        if fmt == "svg" and engine != "builtin"
        else None
    )
    if engine == "auto":
        engine = "graphviz" if dot_exe else "builtin"
    text = render_text(topology, fmt, engine=engine, dot_exe=dot_exe)
    if not args.output or args.output == "-":
        env.stdout.write(text)
        return ExitStatus.SUCCESS
    from labctl.render.files import write_atomic

    status = write_atomic(env.path(args.output), text, force=args.force)
    how = f"{fmt}, {engine} layout" if fmt == "svg" else fmt
    env.err(f"{args.output}: {status} ({how})")
    return ExitStatus.SUCCESS
