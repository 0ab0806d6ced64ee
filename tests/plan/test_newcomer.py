"""A new user's first runs (issue 12): what `up --sim` says about the vCenter simulator's build and about a lab
left from an earlier try. In-process CLI against the simulated lab; every process stopped by PID (the `sim` fixture)."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from tests.plan.test_pipeline import sim  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
SEED = str(ROOT / "topologies" / "esx35-ha-pair.yaml")


def _warm_go_cache() -> Path:
    """The Go build cache of this machine's vcsim build: a fresh labctl cache then relinks in seconds, not a minute."""
    from labctl.errors import LabctlError
    from labctl.sim import vcsim

    try:
        vcsim.build(os.environ)
    except LabctlError as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    return vcsim.cache_root(os.environ) / "go-build"


@pytest.mark.vcsim
def test_first_up_says_it_builds_the_vcenter_simulator_and_a_second_says_it_reuses_the_lab(sim, run_cli):  # noqa: F811
    d, environ = sim
    environ = {**environ, "XDG_CACHE_HOME": str(d.parent / "cache"), "GOCACHE": str(_warm_go_cache())}
    r = run_cli("up", SEED, "--sim", "--skip", "vibs", environ=environ)
    assert r.status == 0, r.out + r.err
    lines = r.out.splitlines()
    building = [i for i, ln in enumerate(lines) if "vcenter: building the vCenter simulator (once, 20 s to 2 minutes)" in ln]
    built = [i for i, ln in enumerate(lines) if re.search(r"vcenter: built the vCenter simulator in \d+\.\d s", ln)]
    assert building and built and building[0] < built[0], r.out
    assert "existing simulated lab" not in r.out  # a new lab
    assert (d / "created").is_file()
    # the next run: no build, and it says which lab it uses, since when, and how to start from scratch
    again = run_cli("up", SEED, "--sim", "--skip", "vibs", environ=environ)
    assert again.status == 0, again.out + again.err
    assert "building the vCenter simulator" not in again.out
    first = again.out.splitlines()[0]
    created = (d / "created").read_text().strip()
    assert re.fullmatch(
        rf"using the existing simulated lab in {re.escape(str(d))} \(created {created[:10]} {created[11:16]} UTC\); "
        rf"to start from scratch: labctl destroy {re.escape(SEED)} --sim --yes, then run this again", first), first
    assert "no changes — the lab matches the topology" in again.out
    # the hint works: destroy, and the next up is a new lab again (its duplicate-MAC story included)
    gone = run_cli("destroy", SEED, "--sim", "--yes", environ=environ)
    assert gone.status == 0 and not d.exists(), gone.out + gone.err
    fresh = run_cli("up", SEED, "--sim", "--skip", "vibs", "vcenter", environ=environ)
    assert fresh.status == 0, fresh.out + fresh.err
    assert "existing simulated lab" not in fresh.out and "duplicate: MAC" in fresh.out


def test_plan_on_an_existing_lab_says_so_and_plan_on_none_writes_nothing(sim, run_cli):  # noqa: F811
    d, environ = sim
    r = run_cli("plan", SEED, "--sim", environ=environ)
    assert r.status == 0 and "existing simulated lab" not in r.out and not d.exists()
    r = run_cli("up", SEED, "--sim", "--only", "validate", "render", environ=environ)
    assert r.status == 0, r.out + r.err
    r = run_cli("plan", SEED, "--sim", "--sim-dir", str(d), environ=environ)
    assert f"using the existing simulated lab in {d}" in r.out
    assert f"labctl destroy {SEED} --sim --sim-dir {d} --yes" in r.out


def test_vcsim_build_reports_progress(tmp_path):
    from labctl.sim import vcsim

    warm = _warm_go_cache()
    said: list[str] = []
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "XDG_CACHE_HOME": str(tmp_path / "c"),
           "GOCACHE": str(warm)}
    assert not vcsim.is_built(env)
    binary = vcsim.build(env, said.append, every=0)
    assert binary.is_file() and vcsim.is_built(env)
    assert said[0] == vcsim.BUILD_MESSAGE
    assert re.fullmatch(r"built the vCenter simulator in \d+\.\d s \(cached in .*\)", said[-1]), said
    said.clear()
    vcsim.build(env, said.append)
    assert said == []  # cached: nothing to say


@pytest.mark.slow
def test_a_broken_pipe_stops_the_run_with_141_and_a_rerun_converges(sim, run_cli):  # noqa: F811
    """`labctl up … | head -1`: the reader goes away after the first line; labctl stops after the step it is in,
    exits 141 (128 + SIGPIPE, as a shell reports a process killed by it) and says so on stderr; the same command
    then finishes the lab, and the next run changes nothing."""
    import json
    import subprocess
    import sys

    d, environ = sim
    argv = [sys.executable, "-m", "labctl", "up", SEED, "--sim", "--skip", "vcenter", "vibs"]
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=environ, cwd=d.parent)
    assert p.stdout.readline() == b"==> validate the topology\n"
    p.stdout.close()  # what `head -1` does after its line
    err = p.stderr.read().decode()
    assert p.wait(timeout=300) == 141, err
    assert re.fullmatch(r"labctl: output closed \(broken pipe\): stopped after \d+ stage\(s\), \d+ change\(s\) made\. "
                        r"Run the same command again to finish\.\n", err), err
    rerun = run_cli("up", SEED, "--sim", "--skip", "vcenter", "vibs", "--json", environ=environ)
    rep = json.loads(rerun.out)
    assert rerun.status == 0 and rep["failures"] == [], rerun.out + rerun.err
    again = json.loads(run_cli("up", SEED, "--sim", "--skip", "vcenter", "vibs", "--json", environ=environ).out)
    assert again["changes"] == [] and again["failures"] == []


def test_a_broken_pipe_on_any_command_is_not_success(tmp_path):
    """Any command whose output is cut short (`labctl schema | head -1`) exits 141, not 0."""
    import io

    from labctl.env import Env
    from labctl.cli.main import main

    class ClosedPipe(io.StringIO):
        def write(self, s):
            raise BrokenPipeError(32, "Broken pipe")

    err = io.StringIO()
    status = main(["schema"], Env(stdout=ClosedPipe(), stderr=err, stdin=io.StringIO(), environ={}, cwd=tmp_path))
    assert status == 141 and err.getvalue() == "labctl: output closed (broken pipe); stopped\n"


TRIO = str(ROOT / "topologies" / "esxi8-ha-trio.yaml")


@pytest.mark.slow
def test_the_trio_builds_its_vib_under_the_labs_state_and_every_stage_command_agrees_with_up(sim, run_cli):  # noqa: F811
    """Items 8 and 9: `up` builds the example VIB into the lab's state (not the checkout), says "built …" and counts
    it; then each stage's own command, run right after the converged `up`, finds nothing to change."""
    import json

    d, environ = sim
    checkout_vib = ROOT / "build" / "lab-tools-1.0.0-1.vib"
    before = checkout_vib.stat().st_mtime_ns if checkout_vib.exists() else None
    vib = d / "vms" / ".labctl" / "vibs" / "lab-tools.vib"
    r = run_cli("up", TRIO, "--sim", "--json", environ=environ)
    rep = json.loads(r.out)
    assert r.status == 0, rep["failures"]
    vibs = [c for c in rep["changes"] if c["stage"] == "vibs"]
    assert vibs[0]["target"] == "lab-tools.vib"
    assert re.fullmatch(rf"built {re.escape(str(vib))} \(\d+ bytes\) from {re.escape(str(ROOT / 'examples/vib/lab-tools'))}",
                        vibs[0]["summary"]), vibs[0]
    assert sum(c["summary"].startswith("installed labctl_bootbank_lab-tools") for c in vibs) == 3
    assert vib.is_file()
    assert (checkout_vib.stat().st_mtime_ns if checkout_vib.exists() else None) == before, "nothing built in the checkout"
    assert f"+ lab-tools.vib: built {vib}" in r.err  # the progress (on stderr with --json) says it too
    # the converged lab: every stage-as-command agrees
    sim_opts = ("--sim", "--sim-dir", str(d))
    scan = run_cli("macs", "scan", TRIO, *sim_opts, "--json", environ=environ)
    assert scan.status == 0 and json.loads(scan.out)["duplicates"] == [], scan.out + scan.err
    fix = run_cli("macs", "fix", TRIO, *sim_opts, environ=environ)
    assert fix.status == 0 and "no changes" in fix.out, fix.out + fix.err
    nfs = run_cli("nfs", TRIO, *sim_opts, "--json", environ=environ)
    assert nfs.status == 0 and json.loads(nfs.out)["changes"] == [], nfs.out + nfs.err
    if (d / "vcsim").is_dir():  # the vCenter simulator ran (Go installed)
        vc = run_cli("vcenter", TRIO, *sim_opts, "--json", environ=environ)
        assert vc.status == 0 and json.loads(vc.out)["changes"] == [], vc.out + vc.err
    dep = run_cli("vib", "deploy", str(vib), "--lab", TRIO, *sim_opts, "--json", environ=environ)
    assert dep.status == 0 and {h["status"] for h in json.loads(dep.out)["hosts"]} == {"skipped"}, dep.out + dep.err
    chk = run_cli("vmnet", "check", "--dev-dir", str(d / "host" / "dev"), environ=environ)
    assert chk.status == 0, chk.out + chk.err
    again = json.loads(run_cli("up", TRIO, "--sim", "--json", environ=environ).out)
    assert again["changes"] == [] and again["failures"] == []
    # the built file older than its stage directory: plan says it would build it (and only that)
    import os

    src = ROOT / "examples" / "vib" / "lab-tools" / "descriptor.yaml"
    os.utime(vib, (vib.stat().st_atime, src.stat().st_mtime - 10))
    plan = json.loads(run_cli("plan", TRIO, "--sim", "--json", environ=environ).out)
    assert [c["summary"] for c in plan["changes"]] == [f"build {vib} from {ROOT / 'examples/vib/lab-tools'}"]
