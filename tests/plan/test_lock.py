"""The lab lock (issue 13): two commands that change one lab never run at once; the second is refused with the
holder named (PID, command, since when); no process is left behind and the lab converges."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from labctl.lock import LOCK_NAME, LabBusy, lab_lock, read_holder

ROOT = Path(__file__).resolve().parents[2]
HOLD = ("import sys, time\nfrom labctl.lock import lab_lock\n"
        "with lab_lock(sys.argv[1], 'labctl up lab.yaml --sim'):\n"
        "    print('locked', flush=True)\n    time.sleep(60)\n")


def _holder_process(d: Path) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", HOLD, str(d)], stdout=subprocess.PIPE, text=True)
    assert p.stdout.readline().strip() == "locked"
    return p


def test_second_locker_is_refused_with_the_holder_named_and_the_lock_dies_with_its_holder(tmp_path):
    d = tmp_path / "sim"
    p = _holder_process(d)
    try:
        with pytest.raises(LabBusy) as e, lab_lock(d, "labctl down lab.yaml --sim", lab="pair"):
            pass
        msg = e.value.message
        assert msg.startswith("lab pair is busy: `labctl up lab.yaml --sim` (PID ")
        assert f"PID {p.pid})" in msg and " holds it since 20" in msg and " s ago" in msg
        assert e.value.status == 5
        assert read_holder(d)["pid"] == p.pid
    finally:
        p.send_signal(signal.SIGKILL)
        p.wait()
    # the kernel dropped the lock with its holder: no stale lock, no clean-up needed
    assert read_holder(d) is None
    with lab_lock(d, "labctl down lab.yaml --sim"):
        out = subprocess.run([sys.executable, "-c", "import sys, json; from labctl.lock import read_holder; "
                              "print(json.dumps(read_holder(sys.argv[1])))", str(d)], capture_output=True, text=True)
        assert json.loads(out.stdout)["command"] == "labctl down lab.yaml --sim"
    assert (d / LOCK_NAME).stat().st_mode & 0o777 == 0o600
    assert d.stat().st_mode & 0o777 == 0o700


def test_lock_is_reentrant_in_one_process_and_not_inherited_by_children(tmp_path):
    d = tmp_path / "lab"
    with lab_lock(d, "labctl up x"), lab_lock(d, "labctl up x"):
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])  # like a hostd: outlives us
    try:
        # the child still runs, yet the lab is free: the lock fd was not inherited
        assert child.poll() is None
        with lab_lock(d, "labctl down x"):
            pass
    finally:
        child.kill()
        child.wait()


def _lab_processes(root: Path) -> dict[int, list[str]]:
    """Every live process whose working directory or command line is under `root` (hostd, vcsim, labctl)."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode("utf-8", "replace").split("\0")
            cwd = os.readlink(entry / "cwd")
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state == "Z":
            continue
        if cwd.startswith(str(root)) or any(str(root) in a for a in argv):
            out[int(entry.name)] = argv
    return out


@pytest.mark.slow
def test_two_up_sim_at_once_one_is_refused_naming_the_holder_no_process_leaks_and_the_lab_converges(tmp_path):
    from labctl.sim import lab

    d = tmp_path / "sim"
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")  # vcsim is built once per machine
    environ = {**os.environ, "LABCTL_SIM_DIR": str(d), "HOME": str(tmp_path / "home"), "XDG_CACHE_HOME": cache}
    environ.pop("LAB_ESX_PASSWORD", None)
    topo = str(ROOT / "topologies" / "esx35-ha-pair.yaml")
    argv = [sys.executable, "-m", "labctl", "up", topo, "--sim", "--json", "-q"]
    try:
        procs = [subprocess.Popen(argv, env=environ, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True) for _ in range(2)]
        results = [(p.pid, *p.communicate(timeout=600), p.returncode) for p in procs]
        codes = sorted(r[3] for r in results)
        assert codes == [0, 5], results
        (winner,) = [r for r in results if r[3] == 0]
        (loser,) = [r for r in results if r[3] == 5]
        err = loser[2]
        assert f"(PID {winner[0]})" in err, err
        assert f"`labctl up {topo} --sim --json -q`" in err and "holds it since" in err, err
        assert "Traceback" not in err and "internal error" not in err
        assert json.loads(winner[1])["failures"] == []
        # every process the lab runs now is recorded in processes.json (nothing orphaned by the loser)
        recorded = {r["pid"] for r in lab.read_processes(d) if lab.is_ours(r)}
        running = {pid for pid, a in _lab_processes(tmp_path).items()}
        assert running and running == recorded, (running, recorded, lab.read_processes(d))
        # the lab converges: a second run changes nothing
        again = subprocess.run(argv, env=environ, cwd=tmp_path, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0, again.stderr
        rep = json.loads(again.stdout)
        assert rep["changes"] == [] and rep["failures"] == []
        assert read_holder(d) is None
        down = subprocess.run([sys.executable, "-m", "labctl", "down", topo, "--sim"], env=environ, cwd=tmp_path,
                              capture_output=True, text=True, timeout=120)
        assert down.returncode == 0, down.stderr
        deadline = time.monotonic() + 10
        while _lab_processes(tmp_path) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _lab_processes(tmp_path) == {}, "processes left after `down`"
    finally:
        lab.down(d)
        for pid in _lab_processes(tmp_path):  # only processes of this test's own tmp dir, by PID
            os.kill(pid, signal.SIGKILL)


def test_every_command_that_changes_a_lab_is_refused_while_another_holds_it(run_cli, tmp_path):
    text = (ROOT / "topologies" / "esx35-ha-pair.yaml").read_text()
    topo = tmp_path / "lab.yaml"
    topo.write_text(re.sub(r"(?m)^  vm_dir: .*$", f"  vm_dir: {tmp_path / 'vms'}", text))
    d = tmp_path / "sim"
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LABCTL_SIM_DIR": str(d)}
    from labctl.topology import load_topology

    state_dir = load_topology(topo).state_dir
    changing_sim = [("up", str(topo), "--sim"), ("down", str(topo), "--sim"), ("destroy", str(topo), "--sim", "--yes"),
                    ("sim", "up", str(topo), "--no-vcenter"), ("sim", "down", str(topo)),
                    ("macs", "fix", str(topo), "--sim"), ("nfs", str(topo), "--sim", "--via", "ssh")]
    changing_real = [("render", str(topo))]
    for directory, commands in ((d, changing_sim), (state_dir, changing_real)):
        p = _holder_process(directory)
        try:
            for argv in commands:
                r = run_cli(*argv, environ=env)
                assert r.status == 5 and f"is busy: `labctl up lab.yaml --sim` (PID {p.pid})" in r.err, (argv, r.err)
        finally:
            p.kill()
            p.wait()
    # reading is not changing: plan, a dry run and --output elsewhere do not take the lock
    p = _holder_process(d)
    try:
        assert "is busy" not in run_cli("macs", "fix", str(topo), "--sim", "--dry-run", environ=env).err
        assert "is busy" not in run_cli("plan", str(topo), "--sim", environ=env).err
    finally:
        p.kill()
        p.wait()
    assert run_cli("render", str(topo), "-o", str(tmp_path / "out"), environ=env).status == 0
