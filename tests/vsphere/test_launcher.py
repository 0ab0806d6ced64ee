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
