"""What a user reads when a host refuses the login or does not answer (issue 12, item 4): a refused login fails at
once with what was offered (never a variable that is not set) and what to set; an unreachable host says what was
dialled; host names are not doubled; `sim exec` shows no paramiko internals. Real SSH against simulated hosts."""

from __future__ import annotations

import re
import socket
import time

from tests.remote.conftest import SEED


def _wait_refused(port: int) -> None:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the host re-reads its control file when it changes
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return
        time.sleep(0.05)


def _up_ssh(lab, environ=None):
    return lab.cli("up", str(lab.topology), "--sim", "--sim-dir", str(lab.sim_dir), "--only", "ssh",
                   environ={**lab.environ, **(environ or {})})


def test_a_refused_login_fails_at_once_and_names_what_was_offered_and_the_variable_to_set(sim_lab):
    lab = sim_lab(SEED)
    port = lab.endpoints().hosts["esx2"].port
    lab.fault("esx2", "--refuse-auth")
    start = time.monotonic()
    r = _up_ssh(lab)
    took = time.monotonic() - start
    assert r.status == 4, r.out + r.err
    assert took < 10, f"a refused login is not worth waiting for ({took:.1f} s)"
    summary = r.out.split("failure(s):", 1)[1]
    key = lab.sim_dir / "id_rsa"
    assert (f"  ssh: esx2: authentication failed at root@192.168.69.12:22 (simulated lab: 127.0.0.1:{port}); "
            f"offered key {key} ($LAB_ESX_PASSWORD is not set)\n") in summary
    assert "offered key" in summary and "the password from" not in summary  # the unset variable was not "tried"
    assert "    next: export LAB_ESX_PASSWORD='…' (root's password on esx2; ssh.password_env names it)" in summary
    assert "esx2: esx2" not in r.out and "rollback job" not in r.out and "did not come back" not in r.out
    # with the variable set, it was offered, and the hint says to check it
    r = _up_ssh(lab, {"LAB_ESX_PASSWORD": "not-the-password"})
    assert r.status == 4
    assert f"offered key {key}, the password from $LAB_ESX_PASSWORD\n" in r.out
    assert "next: check that $LAB_ESX_PASSWORD holds root's password on esx2" in r.out
    assert "not-the-password" not in r.out + r.err


def test_an_unreachable_host_says_what_was_dialled_in_plain_words(sim_lab):
    lab = sim_lab(SEED)
    port = lab.endpoints().hosts["esx2"].port
    lab.fault("esx2", "--down")
    _wait_refused(port)
    r = _up_ssh(lab)
    assert r.status == 4, r.out + r.err
    summary = r.out.split("failure(s):", 1)[1]
    assert re.search(rf"  ssh: esx2: no SSH answer from root@192\.168\.69\.12:22 \(simulated lab: 127\.0\.0\.1:{port}\) "
                     r"within \d+ s \(connection refused\)\n", summary), summary
    assert "next: is the simulated host up? `labctl sim status FILE`" in summary
    for internal in ("NoValidConnectionsError", "Errno", "rollback job", "esx2: esx2", "AuthFailed"):
        assert internal not in r.out + r.err, internal


def test_sim_exec_against_a_refusing_or_down_host_prints_no_paramiko_internals(sim_lab):
    lab = sim_lab(SEED)
    port = lab.endpoints().hosts["esx2"].port
    lab.fault("esx2", "--refuse-auth")
    r = lab.labctl("sim", "exec", str(SEED), "esx2", "--sim-dir", str(lab.sim_dir), "--", "vmware", "-v")
    assert r.status == 4
    assert r.err.splitlines()[0] == (f"labctl: error: esx2 (192.168.69.12, simulated at 127.0.0.1:{port}) refused the "
                                     f"login of root with the simulated lab's key {lab.sim_dir / 'id_rsa'}")
    lab.fault("esx2", "--clear")
    lab.fault("esx2", "--down")
    _wait_refused(port)
    r = lab.labctl("sim", "exec", str(SEED), "esx2", "--sim-dir", str(lab.sim_dir), "--", "vmware", "-v")
    assert r.status == 4
    assert r.err.splitlines()[0].endswith("does not answer SSH: connection refused"), r.err
    for internal in ("encountered RSA key", "OPENSSH", "Errno", "Traceback", "paramiko"):
        assert internal not in r.err, internal
