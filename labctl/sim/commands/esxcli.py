"""`esxcli`: the namespace dispatcher and its output formatters (ESXi >= 4.0 only).

The dispatcher strips the global options (`--formatter=csv|keyvalue`, `--debug`, `--server` is refused) and runs
the handler with the longest registered path `("esxcli", ns, ..., cmd)`. Unknown namespaces answer like esxcli 5+:
`Error: Unknown command or namespace network foo`. Formats (esx-hosts.md section 2):
- tables: columns sized to the widest cell, two spaces apart, a dashed rule, bool/int columns right-aligned;
- records (`... list`): key at column 0, `   Field: value` lines, a blank line between records;
- csv [M]: header names without spaces, sorted alphabetically, every line ending with a comma;
- keyvalue [L]: `Struct.FieldName.type=value` lines.
"""

from __future__ import annotations

from typing import Any

from labctl.sim import commands as C
from labctl.sim.commands import Invocation, Result, command


def _cell(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return "" if v is None else str(v)


def _right(values: list[Any]) -> bool:
    vals = [v for v in values if v is not None and v != ""]
    return bool(vals) and all(isinstance(v, (bool, int)) for v in vals)


def _key(name: str) -> str:
    return "".join(name.split()).replace("-", "")


def _type(v: Any) -> str:
    if isinstance(v, bool):
        return "boolean"
    if isinstance(v, int):
        return "integer"
    return "string"


def format_table(columns: list[str], rows: list[list[Any]], formatter: str | None, struct: str = "Item") -> str:
    if formatter == "csv":
        order = sorted(range(len(columns)), key=lambda i: _key(columns[i]))
        lines = [",".join(_key(columns[i]) for i in order) + ","]
        for r in rows:
            lines.append(",".join(_csv(_cell(r[i])) for i in order) + ",")
        return "\n".join(lines) + "\n"
    if formatter == "keyvalue":
        out = []
        for r in rows:
            for c, v in zip(columns, r):
                out.append(f"{struct}.{_key(c)}.{_type(v)}={_cell(v)}")
        return "\n".join(out) + ("\n" if out else "")
    widths = [max([len(c)] + [len(_cell(r[i])) for r in rows]) for i, c in enumerate(columns)]
    right = [_right([r[i] for r in rows]) for i in range(len(columns))]

    def line(cells: list[str]) -> str:
        parts = [(c.rjust(w) if rt else c.ljust(w)) for c, w, rt in zip(cells, widths, right)]
        return "  ".join(parts).rstrip()

    out = [line(columns), line(["-" * w for w in widths])]
    out += [line([_cell(v) for v in r]) for r in rows]
    return "\n".join(out) + "\n"


def _csv(s: str) -> str:
    return f'"{s}"' if ("," in s or '"' in s) else s


def format_records(records: list[tuple[str | None, list[tuple[str, Any]]]], formatter: str | None,
                   struct: str = "Item") -> str:
    """Record lists; a record whose key is None prints only its indented fields (`advanced list -o`)."""
    if formatter == "csv":
        if not records:
            return ""
        names = [k for k, _ in records[0][1]]
        order = sorted(range(len(names)), key=lambda i: _key(names[i]))
        lines = [",".join(_key(names[i]) for i in order) + ","]
        for _, fields in records:
            lines.append(",".join(_csv(_cell(fields[i][1])) for i in order) + ",")
        return "\n".join(lines) + "\n"
    if formatter == "keyvalue":
        out = []
        for _, fields in records:
            out += [f"{struct}.{_key(k)}.{_type(v)}={_cell(v)}" for k, v in fields]
        return "\n".join(out) + ("\n" if out else "")
    blocks = []
    for key, fields in records:
        lines = [key] if key is not None else []
        lines += [f"   {k}: {_cell(v)}".rstrip() if _cell(v) == "" else f"   {k}: {_cell(v)}" for k, v in fields]
        blocks.append("\n".join(lines) + "\n")
    return "\n".join(blocks)


def format_value(value: Any, formatter: str | None) -> str:
    """A command that returns one value (`system uuid get`)."""
    if formatter == "keyvalue":
        return f"{_type(value)}={_cell(value)}\n"
    if formatter == "csv":
        return f"{_cell(value)}\n"
    return f"{_cell(value)}\n"


FORMATTERS = ("csv", "keyvalue")


@command("esxcli", when=C.esx_at_least("esxi", 4, 0))
def esxcli(inv: Invocation) -> Result:
    args = list(inv.args)
    formatter: str | None = None
    while args and args[0].startswith("-"):
        a = args.pop(0)
        if a.startswith("--formatter"):
            value = a.partition("=")[2] if "=" in a else (args.pop(0) if args else "")
            if value == "xml":
                return Result(1, "", "sim: esxcli --formatter=xml is not modelled by the simulator\n")
            if value not in FORMATTERS or inv.state.release < (5, 0):
                return Result(1, "", f"Error: Invalid formatter: {value}\n")
            formatter = value
        elif a == "--debug":
            continue
        elif a.startswith(("--server", "-s", "--username", "-u")):
            return Result(1, "", "sim: remote esxcli (--server) is not modelled by the simulator\n")
        else:
            return Result(1, "", f"Error: Invalid option {a}\n")
    if not args:
        return Result(0, _usage(inv, ()))
    C.load_all()
    best = None
    for n in range(len(args), 0, -1):
        path = ("esxcli", *args[:n])
        cmd = C.REGISTRY.get(path)
        if cmd is not None and cmd.available(inv.state) and path != ("esxcli",):
            best = (cmd, n)
            break
    if best is None:
        words = [a for a in args if not a.startswith("-")]
        if _is_namespace(inv, tuple(words)):
            return Result(0, _usage(inv, tuple(words)))
        return Result(1, "", f"Error: Unknown command or namespace {' '.join(words)}\n")
    cmd, n = best
    sub = Invocation(argv=inv.argv, args=args[n:], path=cmd.path, state=inv.state, stdin=inv.stdin, fs=inv.fs,
                     host=inv.host, job=inv.job, formatter=formatter, env=inv.env, cwd=inv.cwd, io=inv.io)
    try:
        res = cmd.handler(sub)
    except C.UsageFailure as e:
        return Result(e.code, "", e.err)
    return Result(*(tuple(res) + ("", ""))[:3])


# localcli (5.0+) runs the same namespaces without going through hostd
command("localcli", when=C.esx_at_least("esxi", 5, 0))(esxcli)


def _children(inv: Invocation, prefix: tuple[str, ...]) -> list[str]:
    out = set()
    for path, cmd in C.REGISTRY.items():
        if path[0] == "esxcli" and len(path) > len(prefix) + 1 and path[1:len(prefix) + 1] == prefix:
            if cmd.available(inv.state):
                out.add(path[len(prefix) + 1])
    return sorted(out)


def _is_namespace(inv: Invocation, words: tuple[str, ...]) -> bool:
    return bool(words) and bool(_children(inv, words))


def _usage(inv: Invocation, prefix: tuple[str, ...]) -> str:
    kids = _children(inv, prefix)
    head = "Usage: esxcli [options] {namespace}+ {cmd} [cmd options]\n\n"
    return head + "Available Namespaces:\n" + "".join(f"  {k}\n" for k in kids)
