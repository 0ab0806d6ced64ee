import socket

import pytest


def test_help_lists_every_command(run_cli):
    from labctl.cli.main import COMMANDS

    r = run_cli("--help")
    assert r.status == 0
    for name in COMMANDS:
        assert name in r.out


def test_version(run_cli):
    from labctl import __version__

    r = run_cli("--version")
    assert r.status == 0 and __version__ in r.out


def test_no_command_is_usage_error(run_cli):
    assert run_cli().status == 2


def test_unknown_command_is_usage_error(run_cli):
    r = run_cli("frobnicate")
    assert r.status == 2


def test_non_loopback_connections_are_blocked():
    from pytest_socket import SocketConnectBlockedError

    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(0.2)
    try:
        with pytest.raises(SocketConnectBlockedError):
            s.connect(("192.168.69.11", 22))
    finally:
        s.close()


# What a `--help` or `--version` may not import. Third-party libraries are imported by the functions that use them;
# the standard-library modules here cost a third of a bare `labctl --help` together (`python -X importtime -m
# labctl --help`): dataclasses pulls in inspect, ast and dis; pathlib pulls in fnmatch and urllib.parse; argparse's
# own formatter would import shutil (with bz2 and lzma) to ask for the terminal width.
HEAVY = ("paramiko", "pyVmomi", "jinja2", "cryptography", "yaml", "netaddr", "defusedxml")
STDLIB = ("dataclasses", "inspect", "pathlib", "urllib", "urllib.parse", "ipaddress", "shutil", "typing",
          "subprocess", "tempfile", "socket", "datetime", "zipfile", "logging", "json")


def test_help_and_version_import_no_heavy_library_and_no_costly_stdlib_module():
    """Start-up budget (bench/render.py): every `--help` and `--version` stays off the modules above.

    Run with `-S` from the source tree, so nothing a site hook loads first (an editable install's finder imports
    pathlib) can hide an import; the check of the baseline below keeps the test from going blind.
    """
    import subprocess
    import sys
    from pathlib import Path

    from labctl.cli.main import COMMANDS

    root = str(Path(__file__).resolve().parents[1])
    code = (
        "import sys\n"
        "watch = sys.argv[2].split(',')\n"
        "blind = [m for m in watch if m in sys.modules]\n"
        "assert not blind, f'imported before labctl: {blind}'\n"
        "sys.path.insert(0, sys.argv[1])\n"
        "import io, contextlib\n"
        "from labctl.cli.main import main\n"
        "bad = {}\n"
        "for argv in [a.split() for a in sys.argv[3:]]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(argv) == 0, argv\n"
        "    got = [m for m in watch if m in sys.modules and m not in sum(bad.values(), [])]\n"
        "    if got: bad[' '.join(argv)] = got\n"
        "print(bad)\n"
    )
    argvs = ["--help", "--version", *(f"{c} --help" for c in COMMANDS)]
    r = subprocess.run([sys.executable, "-S", "-c", code, root, ",".join(HEAVY + STDLIB), *argvs],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "{}", f"a --help imported modules outside the start-up budget: {r.stdout}"
