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


def test_help_of_every_command_imports_no_heavy_library():
    """Start-up budget: --help of any command must not import paramiko, pyVmomi, jinja2 or cryptography."""
    import subprocess
    import sys

    from labctl.cli.main import COMMANDS

    code = (
        "import sys, io, contextlib; from labctl.cli.main import main\n"
        "heavy = ('paramiko', 'pyVmomi', 'jinja2', 'cryptography', 'yaml')\n"
        "bad = {}\n"
        "for cmd in sys.argv[1:]:\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main([cmd, '--help']) == 0, cmd\n"
        "    got = [m for m in heavy if m in sys.modules]\n"
        "    if got: bad[cmd] = got\n"
        "print(bad)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, *COMMANDS], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "{}", f"--help imported heavy modules: {r.stdout}"
