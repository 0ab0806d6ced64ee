"""The vcsim launcher: start/stop by PID, start failures reported with the log, loopback-only URL."""

from __future__ import annotations

import os

import pytest

from labctl.errors import EnvironmentProblem
from labctl.sim import vcsim as launcher


def fake_binary(tmp_path, body: str):
    p = tmp_path / "fake-vcsim"
    p.write_text("#!/bin/sh\n" + body + "\n")
    p.chmod(0o755)
    return p


def test_start_failure_reports_exit_and_log(tmp_path):
    binary = fake_binary(tmp_path, 'echo "labctl-vcsim: flag provided but not defined" >&2; exit 2')
    with pytest.raises(EnvironmentProblem, match=r"did not start \(exit 2\)[\s\S]*flag provided"):
        launcher.start(binary, tmp_path / "w", timeout=5)


def test_non_loopback_url_is_refused_and_the_process_stopped(tmp_path):
    binary = fake_binary(tmp_path, 'echo "http://u:p@10.1.2.3:8989/sdk"; exec sleep 30')
    with pytest.raises(EnvironmentProblem, match="unexpected URL host"):
        launcher.start(binary, tmp_path / "w", timeout=5)


def test_bad_datastore_name_is_refused_before_starting(tmp_path):
    with pytest.raises(Exception, match="plain names only"):
        launcher.start(tmp_path / "never-run", tmp_path / "w", datastores=["../escape"])


@pytest.mark.vcsim
def test_stop_by_pid_removes_the_process_and_the_url_file_has_no_password(tmp_path):
    try:
        binary = launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(e.message)
    sim = launcher.start(binary, tmp_path / "w", datastores=["ds1"], password="pw-not-on-disk")
    try:
        assert (tmp_path / "w" / "ds1").is_dir()
        assert "pw-not-on-disk" not in (tmp_path / "w" / "vcsim.url").read_text()
        assert sim.url.startswith("http://127.0.0.1:") and "@" not in sim.url
        os.kill(sim.pid, 0)
    finally:
        sim.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(sim.pid, 0)
    assert not [p for p in (tmp_path / "w").iterdir() if p.name.startswith("govcsim-")]


def _alive(pid: int) -> bool:
    try:
        state = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_the_process_is_handed_to_the_caller_before_the_wait_and_stopped_when_the_wait_is_interrupted(tmp_path):
    """Record first, wait second (issue 13): a Ctrl-C while waiting for the URL must not leave an unrecorded vcsim."""
    binary = fake_binary(tmp_path, "exec sleep 30")  # never prints its URL
    seen = []

    def on_spawn(pid, argv):
        seen.append((pid, argv))
        raise KeyboardInterrupt  # as if Ctrl-C arrived right after the process was recorded

    with pytest.raises(KeyboardInterrupt):
        launcher.start(binary, tmp_path / "w", timeout=30, on_spawn=on_spawn)
    (pid, argv), = seen
    assert argv[0] == str(binary)
    assert not _alive(pid)


def test_a_start_that_times_out_was_recorded_and_is_stopped(tmp_path):
    binary = fake_binary(tmp_path, "exec sleep 30")
    seen = []
    with pytest.raises(EnvironmentProblem, match="did not start"):
        launcher.start(binary, tmp_path / "w", timeout=0.5, on_spawn=lambda pid, argv: seen.append(pid))
    assert len(seen) == 1 and not _alive(seen[0])
