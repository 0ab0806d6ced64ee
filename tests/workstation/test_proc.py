"""The process helper: exit codes, output, timeouts, and a child that leaves a process holding its pipes."""

from __future__ import annotations

import os
import signal
import sys
import time

from labctl.workstation import proc

PY = sys.executable


def test_output_and_exit_code():
    r = proc.run(
        [PY, "-c", "import sys; print('Total running VMs: 0'); sys.stderr.write('warn\\n'); sys.exit(3)"]
    )
    assert (r.exit_code, r.stdout, r.stderr) == (3, "Total running VMs: 0\n", "warn\n") and not r.timed_out


def test_argv_is_not_a_shell_string(tmp_path):
    r = proc.run([PY, "-c", "import sys; print(sys.argv[1])", "a b; rm -rf $HOME"])
    assert r.stdout == "a b; rm -rf $HOME\n"


def test_timeout_kills_the_program():
    t0 = time.monotonic()
    r = proc.run([PY, "-c", "import time; print('started', flush=True); time.sleep(30)"], timeout=0.5)
    assert r.timed_out and r.exit_code is None
    assert time.monotonic() - t0 < 5
    assert "started" in r.stdout


def test_a_left_behind_process_holding_the_pipes_does_not_block(tmp_path):
    # like `vmrun start`: the program exits 0 at once, a process it started keeps stdout open for a long time
    pidfile = tmp_path / "vm.pid"
    code = (
        "import subprocess, sys; "
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(20)']); "
        f"open({str(pidfile)!r}, 'w').write(str(p.pid)); "
        "print('started VM'); sys.exit(0)"
    )
    t0 = time.monotonic()
    try:
        r = proc.run([PY, "-c", code], timeout=30)
        took = time.monotonic() - t0
        assert r.exit_code == 0 and "started VM" in r.stdout
        assert took < 5, took
    finally:
        if pidfile.exists():  # the stand-in VM process: stopped by its PID
            try:
                os.kill(int(pidfile.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
