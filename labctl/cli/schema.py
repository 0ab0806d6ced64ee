"""labctl schema"""

from __future__ import annotations

from labctl.errors import ExitStatus

DESCRIPTION = """\
Print the JSON Schema of the topology format, so editors can complete and check topology files.
With the YAML language server (VS Code "YAML" extension, neovim, ...), put this first line in a topology:
  # yaml-language-server: $schema=<path to the schema file>"""

EPILOG = """\
examples:
  labctl schema > topology.schema.json
  labctl schema -o docs/topology.schema.json"""


def schema_text() -> str:
    import json

    from labctl.topology.schema import SCHEMA

    return json.dumps(SCHEMA, indent=2, sort_keys=False) + "\n"


def configure(p) -> None:
    p.add_argument("-o", "--output", metavar="FILE", help="write the schema to FILE instead of stdout")
    p.add_argument("--force", action="store_true", help="overwrite FILE even if it was edited")


def run(args, env) -> ExitStatus:
    text = schema_text()
    if args.output:
        from labctl.render.files import write_atomic

        write_atomic(env.path(args.output), text, force=args.force)
        env.err(f"wrote {args.output}")
    else:
        env.stdout.write(text)
    return ExitStatus.SUCCESS
