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
