"""Entry point: lazy subcommand dispatch and the one place that maps errors to exit statuses.

Start-up must stay fast (every `--help` and `--version` < 3x `python -c pass`, `python bench/render.py`): this
module imports only argparse, importlib, os, re and sys. A subcommand's module is imported only when that
subcommand runs (or its --help is asked for), and those modules import paramiko, pyVmomi, Jinja2, and even
pathlib or dataclasses, inside the functions that need them (tests/test_cli_main.py checks which modules a
`--help` loads).
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import sys

from labctl import __version__
from labctl.env import Env
from labctl.errors import ExitStatus, LabctlError, did_you_mean

TYPE_CHECKING = False  # typing.TYPE_CHECKING without importing typing at start-up
if TYPE_CHECKING:
    from collections.abc import Sequence

# name -> (module, one-line summary). The summary is shown by `labctl --help` without importing the module.
COMMANDS: dict[str, tuple[str, str]] = {
    "validate": ("labctl.cli.validate", "check topology files; report every problem at once"),
    "render": ("labctl.cli.render", "write .vmx files, clone plans and host network files (offline)"),
    "schema": ("labctl.cli.schema", "print the JSON Schema of the topology format (for editors)"),
    "plan": ("labctl.cli.plan", "show what `up` would change, stage by stage; change nothing"),
    "up": ("labctl.cli.up", "build or converge the whole lab (all stages, idempotent)"),
    "down": ("labctl.cli.down", "stop the lab's VMs"),
    "destroy": ("labctl.cli.destroy", "delete the lab's VMs (asks first; never outside vm_dir)"),
    "sim": ("labctl.cli.sim", "run a simulated lab on this machine (ESX hosts over SSH, vCenter)"),
    "macs": ("labctl.cli.macs", "find and repair duplicate vswif/vmk MACs and system UUIDs"),
    "prep-template": ("labctl.cli.prep_template", "prepare a golden ESXi host so its clones come up unique"),
    "vcenter": ("labctl.cli.vcenter", "datacenter, clusters, hosts, HA isolation addresses (as up's stage)"),
    "nfs": ("labctl.cli.nfs", "mount the topology's NFS datastores on its hosts"),
    "vib": ("labctl.cli.vib", "build, inspect and deploy custom VIBs"),
    "iso": ("labctl.cli.iso", "inspect installer ISOs; patch a copy for an unattended install"),
    "vmnet": ("labctl.cli.vmnet", "check or fix /dev/vmnet* permissions (promiscuous mode)"),
    "doctor": ("labctl.cli.doctor", "check this machine (and a topology) for what a lab needs"),
    "kickstart": ("labctl.cli.kickstart", "print a host's kickstart (unattended install script), hash masked"),
    "graph": ("labctl.cli.graph", "draw the lab as SVG or Mermaid"),
    "inventory": ("labctl.cli.inventory", "print the lab's hosts for other tools (ansible, json)"),
}

EPILOG = """\
typical session:
  labctl validate topologies/esx35-ha-pair.yaml     check the file, every problem at once
  labctl render topologies/esx35-ha-pair.yaml -o out  see the .vmx and host files it would write
  labctl up topologies/esx35-ha-pair.yaml --sim      the whole pipeline against a simulated lab

exit statuses: 0 ok, 1 findings (e.g. duplicates found), 2 usage or topology error, 3 an operation failed,
4 host unreachable, 5 refused to overwrite (use --force) or the lab is busy, 6 missing prerequisite,
130 interrupted.
Run `labctl COMMAND --help` for each command's options and examples.
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """argparse's formatter with the terminal width read by `os` (argparse asks `shutil`, which imports
    bz2, lzma and fnmatch: a third of a bare `--help`)."""

    def __init__(self, prog: str, indent_increment: int = 2, max_help_position: int = 24, width: int | None = None):
        if width is None:
            width = _terminal_columns() - 2
        super().__init__(prog, indent_increment, max_help_position, width)


def _terminal_columns() -> int:
    """$COLUMNS, else the width of stdout's terminal, else 80 (what shutil.get_terminal_size does)."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or 80


class _Parser(argparse.ArgumentParser):
    """argparse, plus "did you mean" for a mistyped command, action or choice, and `HelpFormatter` unless told
    otherwise (subparsers made with `add_subparsers` inherit the class)."""

    def __init__(self, *args, formatter_class: type[argparse.HelpFormatter] = HelpFormatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)

    def error(self, message: str):  # type: ignore[override]
        m = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if m:
            hint = did_you_mean(m.group(1), re.findall(r"'([^']*)'", m.group(2)))
            if hint:
                message += f"; {hint}"
        super().error(message)


class _Listed:
    """A command's place in the top-level help (name and summary) where its parser is not needed."""

    def __init__(self, **kwargs):
        self.prog = kwargs.get("prog")


def _top_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="labctl",
        description="Build nested VMware ESX/ESXi labs inside VMware Workstation from one YAML topology.",
        epilog=EPILOG,
    )
    p.add_argument("--version", action="version", version=f"labctl {__version__}")
    p.add_argument("--debug", action="store_true", help="show tracebacks for unexpected errors")
    p.add_argument("--no-color", action="store_true",
                   help="no colour (also: NO_COLOR=1; never in pipes or with --json); may follow the command")
    return p


def _find_command(argv: Sequence[str]) -> str | None:
    for tok in argv:
        if tok.startswith("-"):
            continue
        return tok
    return None


def build_parser(argv: Sequence[str]) -> argparse.ArgumentParser:
    """The parser for this argv: every command listed, only the chosen one fully configured."""
    parser = _top_parser()
    chosen = _find_command(argv)
    # A known command needs only its own parser. Without one (`labctl --help`, `--version`, a misspelt command)
    # every command is listed by name and summary only: `_Listed` stands in for parsers that never parse.
    known = chosen in COMMANDS
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands",
                                parser_class=_Parser if known else _Listed)
    for name in [chosen] if known else list(COMMANDS):
        module, summary = COMMANDS[name]
        if name == chosen:
            mod = importlib.import_module(module)
            sp = sub.add_parser(
                name,
                help=summary,
                description=getattr(mod, "DESCRIPTION", summary),
                epilog=getattr(mod, "EPILOG", None),
            )
            mod.configure(sp)
            sp.set_defaults(_run=mod.run)
        else:
            sub.add_parser(name, help=summary)
    return parser


def main(argv: Sequence[str] | None = None, env: Env | None = None) -> int:
    """Run labctl in-process; returns the exit status (tests call this directly)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    env = env or Env()
    debug = "--debug" in argv
    cut = argv.index("--") if "--" in argv else len(argv)  # after `--`, words belong to a remote command
    if "--no-color" in argv[:cut]:  # accepted anywhere before `--`: the same as NO_COLOR=1 for this run
        argv = [a for i, a in enumerate(argv) if not (a == "--no-color" and i < cut)]
        env.environ["NO_COLOR"] = "1"
    try:
        parser = build_parser(argv)
        try:
            saved = sys.stdout, sys.stderr  # argparse prints to sys.stdout/stderr: this run's streams instead
            sys.stdout, sys.stderr = env.stdout, env.stderr
            try:
                args = parser.parse_args(argv)
            finally:
                sys.stdout, sys.stderr = saved
        except SystemExit as e:  # argparse: --help/--version (0) or a usage error (2)
            return int(e.code or 0)
        args._argv = argv  # the holder's command line when a command takes its lab's lock
        run = getattr(args, "_run", None)
        if run is None:
            parser.print_help(env.stdout)
            return ExitStatus.USAGE
        status = run(args, env)
        return int(ExitStatus.SUCCESS if status is None else status)
    except LabctlError as e:
        from labctl.cli.style import style_for

        env.err(style_for(env, env.stderr).fail("labctl: error:") + f" {e.message}")
        if e.hint:
            env.err(f"hint: {e.hint}")
        return int(e.status)
    except KeyboardInterrupt:
        env.err("labctl: interrupted; nothing more was started. Re-run the same command to resume.")
        return int(ExitStatus.INTERRUPTED)
    except BrokenPipeError:  # `labctl … | head`: the output was cut short, so the run was too
        try:
            env.err("labctl: output closed (broken pipe); stopped")
        except OSError:
            pass
        return int(ExitStatus.OUTPUT_CLOSED)
    except Exception as e:  # a bug: say so plainly, traceback only with --debug
        if debug:
            raise
        env.err(f"labctl: internal error: {type(e).__name__}: {e}")
        env.err("This is a bug in labctl. Re-run with --debug for the traceback and report it.")
        return int(ExitStatus.FAILED)


def entry() -> None:
    status = main()
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        status = int(ExitStatus.OUTPUT_CLOSED)
    if status == ExitStatus.OUTPUT_CLOSED:  # no "Exception ignored … BrokenPipeError" from the flush at exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(status)
