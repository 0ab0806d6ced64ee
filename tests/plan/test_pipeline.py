"""The whole pipeline (`labctl plan` / `labctl up`) against simulated labs: simulated Workstation, simulated
ESX/ESXi hosts over real SSH on 127.0.0.1, and vcsim. Every process is stopped by PID in the fixture's finalizer."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "topologies"
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = ["esx35-ha-pair", "esxi8-ha-trio", "esxi67-70-mixed", "esx9-pair-25h2"]
REQUIRE_VCSIM = os.environ.get("LABCTL_REQUIRE_VCSIM") == "1"


@pytest.fixture
def sim(tmp_path):
    """A private sim dir; the finalizer stops whatever the run started (hosts, vcsim) by recorded PID."""
    d = tmp_path / "sim"
    environ = {**os.environ, "LABCTL_SIM_DIR": str(d), "HOME": str(tmp_path / "home")}
    environ.pop("LAB_ESX_PASSWORD", None)
    yield d, environ
    from labctl.sim import lab

    if d.exists():
        records = lab.read_processes(d)
        lab.down(d)
        import time

        leaked = []
        for r in records:
            pid = r["pid"]
            deadline = time.monotonic() + 3  # a process being torn down keeps its /proc entry a little longer
            while True:
                try:
                    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                except OSError:
                    state = "gone"
                if state in ("gone", "Z") or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            if state == "gone":
                continue
            if state == "Z":  # stopped, not yet reaped: our in-process CLI run was its parent
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
                continue
            if lab.start_ticks(pid) == r.get("start_ticks"):  # still the process the run started
                leaked.append(r)
                os.kill(pid, 9)
        assert not leaked, f"`down` left these running (now killed by PID): {leaked}"


def _json(r):
    assert r.out.strip(), r.err
    return json.loads(r.out)


def _vcsim_available() -> bool:
    from labctl.errors import LabctlError
    from labctl.sim import vcsim

    try:
        vcsim.build(os.environ)
        return True
    except LabctlError:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_up_sim_example_converges_and_second_run_changes_nothing(name, sim, run_cli):
    d, environ = sim
    topo = str(TOPOLOGIES / f"{name}.yaml")
    r = run_cli("up", topo, "--sim", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    stages = {s["name"]: s for s in rep["stages"]}
    by_stage = {k: [c["summary"] for c in s["changes"]] for k, s in stages.items()}
    assert by_stage["start"] and by_stage["render"]
    # every golden host is installed unattended from its (synthetic) installer and kickstart CD, and recorded so
    golden = [h["name"] for h in yaml.safe_load((TOPOLOGIES / f"{name}.yaml").read_text())["esx_hosts"]
              if "linked_clone_of" not in h]
    assert sorted(c["target"] for c in stages["install"]["changes"] if "unattended" in c["summary"]) == sorted(golden)
    for g in golden:
        assert (d / "vms" / ".labctl" / "install" / g / "installed.json").is_file()
        assert "Installation complete" in (d / "logs" / f"{g}.vmware.log").read_text()  # the simulated installer ran
    if name != "esxi67-70-mixed":
        assert any("linked clone of" in c for c in by_stage["clones"])
    if name == "esx35-ha-pair":  # ESX classic: the clone's service console keeps its source's vswif MAC: repaired
        assert any(n.startswith("duplicate: MAC") and "vswif0" in n for n in stages["macs"]["notes"])
        assert by_stage["macs"], "the clone's duplicated vswif MAC must be repaired"
    else:  # ESXi: the source's kickstart set FollowHardwareMac and dropped /system/uuid: the clones come up unique
        assert by_stage["macs"] == [] and not any(n.startswith("duplicate:") for n in stages["macs"]["notes"])
    assert sum("mount" in c for c in by_stage["nfs"]) == 2 if name != "esxi8-ha-trio" else 3
    vc_ok = _vcsim_available()
    if REQUIRE_VCSIM:
        assert vc_ok, "CI must have the vCenter simulator (golang-go + golang-github-vmware-govmomi-dev)"
    if vc_ok:
        # the lab's vCenter speaks its hosts' era: VirtualCenter 2.5 for ESX 3.5 (AAM keys), FDM from 5.0
        key = "set das.isolationaddress = " if name == "esx35-ha-pair" else "set das.isolationaddress0 = "
        assert any(key in c for c in by_stage["vcenter"]), by_stage["vcenter"]
        assert any("enable HA" in c for c in by_stage["vcenter"])
    if name == "esxi8-ha-trio":
        assert sum(c.startswith("installed labctl_bootbank_lab-tools") for c in by_stage["vibs"]) == 3
    # a second run reports no changes; plan agrees
    again = _json(run_cli("up", topo, "--sim", "--json", environ=environ))
    assert again["changes"] == [] and again["failures"] == []
    plan = _json(run_cli("plan", topo, "--sim", "--json", environ=environ))
    assert plan["changes"] == [] and plan["failures"] == []
    # and the scan agrees that the lab is clean
    scan = run_cli("macs", "scan", topo, "--sim", "--json", environ=environ)
    assert scan.status == 0, scan.out + scan.err
    assert json.loads(scan.out)["duplicates"] == []


def _normalize(report: dict, sim_dir: Path) -> dict:
    text = json.dumps({"changes": report["changes"], "failures": report["failures"],
                       "skipped": {s["name"]: s["skipped"] for s in report["stages"] if s["skipped"]}}, indent=2)
    text = text.replace(str(sim_dir), "<sim>")
    return json.loads(re.sub(r'"seconds": [0-9.]+', '"seconds": 0', text))


@pytest.mark.parametrize("name", EXAMPLES)
def test_plan_of_a_fresh_sim_lab_is_golden_and_changes_nothing(name, sim, run_cli):
    d, environ = sim
    r = run_cli("plan", str(TOPOLOGIES / f"{name}.yaml"), "--sim", "--json", environ=environ)
    assert r.status == 0, r.err
    got = _normalize(_json(r), d)
    golden = GOLDEN / f"plan-{name}.json"
    if os.environ.get("LABCTL_UPDATE_GOLDEN") == "1":
        golden.parent.mkdir(exist_ok=True)
        golden.write_text(json.dumps(got, indent=2) + "\n")
    assert got == json.loads(golden.read_text())
    # nothing was started or written: no processes, no endpoint map, no rendered files
    assert not d.exists(), sorted(str(p) for p in d.rglob("*"))


@pytest.mark.slow
def test_a_failing_host_does_not_stop_the_others_and_a_rerun_converges(sim, run_cli):
    d, environ = sim
    topo = str(TOPOLOGIES / "esxi8-ha-trio.yaml")
    r = run_cli("up", topo, "--sim", "--skip", "nfs", "vcenter", "vibs", "-q", environ=environ)
    assert r.status == 0, r.out + r.err
    # esxi-b drops the connection when it is asked to mount NFS, before mounting (once)
    f = run_cli("sim", "fault", topo, "esxi-b", "--drop", "storage nfs add", "--times", "1", "--phase", "before",
                "--sim-dir", str(d), environ=environ)
    assert f.status == 0, f.err
    r = run_cli("up", topo, "--sim", "--only", "nfs", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 3
    assert [f["target"] for f in rep["failures"]] == ["esxi-b"]
    mounted = sorted(c["target"] for c in rep["changes"] if c["stage"] == "nfs")
    assert mounted == ["esxi-a", "esxi-c"]
    assert "esxi-b" in r.err and "nfs" in r.err  # the summary names the stage and host
    r = run_cli("up", topo, "--sim", "--only", "nfs", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0 and [c["target"] for c in rep["changes"]] == ["esxi-b"]
    assert _json(run_cli("up", topo, "--sim", "--only", "nfs", "--json", environ=environ))["changes"] == []


def test_ctrl_c_stops_between_stages_and_a_rerun_resumes(sim, run_cli, monkeypatch):
    d, environ = sim
    topo = str(TOPOLOGIES / "esxi67-70-mixed.yaml")
    import labctl.plan.stages_install as si

    def interrupted(ctx, rep):
        raise KeyboardInterrupt

    monkeypatch.setattr(si, "install", interrupted)
    r = run_cli("up", topo, "--sim", "--skip", "vcenter", environ=environ)
    assert r.status == 130 and "Run the same command again to resume" in r.out
    assert not (d / "endpoints.json").exists()  # nothing was started after the interrupt
    monkeypatch.undo()
    r = run_cli("up", topo, "--sim", "--skip", "vcenter", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    assert [s["name"] for s in rep["stages"] if s["changes"]][0] == "install"  # render, media were already done


def _real_trio(tmp_path: Path, **replace: str) -> Path:
    """The ESXi 8 trio for a real Workstation in tmp_path, its installer a synthetic 8.0 U2 ISO that exists."""
    from labctl.iso.synthetic import write_esxi_iso

    (tmp_path / "isos").mkdir(exist_ok=True)
    iso = write_esxi_iso(tmp_path / "isos" / "VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso", "8.0u2")
    text = (TOPOLOGIES / "esxi8-ha-trio.yaml").read_text().replace("~/vmware/esxi8-trio", str(tmp_path / "vms"))
    text = text.replace("source: ../examples", f"source: {ROOT}/examples")
    text = text.replace("~/isos/VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso", str(iso))
    for old, new in replace.items():
        text = text.replace(old, new)
    topo = tmp_path / "lab.yaml"
    topo.write_text(text)
    return topo


def test_up_on_a_real_lab_needs_yes_without_a_terminal(run_cli, tmp_path):
    r = run_cli("up", str(_real_trio(tmp_path)), environ={"HOME": str(tmp_path), "LAB_ESX_PASSWORD": "pw"})
    assert r.status == 2 and "--yes" in r.err and "Traceback" not in r.err


def test_plan_on_a_real_host_with_fake_vmrun_reads_state_and_dials_nothing(run_cli, tmp_path):
    """No VM exists yet: plan lists render/vms/start and leaves SSH and vCenter for later (pytest-socket would
    fail the test on any non-loopback connection)."""
    from tests.workstation.conftest import HERE, install_script

    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install_script(bin_dir, "vmrun", HERE / "fake_vmrun.py")
    environ = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"),
               "FAKE_VMRUN_LOG": str(tmp_path / "calls.jsonl"), "FAKE_VMRUN_STATE": str(tmp_path / "state.json"),
               "FAKE_VMRUN_SCRIPT": str(tmp_path / "script.json"), "LAB_ESX_PASSWORD": "pw"}
    topo = _real_trio(tmp_path)
    r = run_cli("plan", str(topo), "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    stages = {s["name"]: s for s in rep["stages"]}
    assert len(stages["render"]["changes"]) == 4 and len(stages["start"]["changes"]) == 4
    assert any("vmware-vdiskmanager" in " ".join(c["commands"]) for c in stages["vms"]["changes"])
    for name in ("ssh", "macs", "nfs", "vcenter", "vibs"):
        assert stages[name]["skipped"], name
    assert not (tmp_path / "vms").exists()  # plan wrote nothing
    calls = [json.loads(x) for x in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert all(c[c.index("-T") + 2] in ("list", "listSnapshots") for c in calls if "-T" in c)


def test_up_without_workstation_says_so_and_dials_nothing(run_cli, tmp_path):
    """No vmrun on this machine: the VM stages fail with the install hint, every later stage leaves the hosts and
    the vCenter VM alone (pytest-socket would fail the test on any non-loopback connection), exit 6."""
    environ = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LAB_ESX_PASSWORD": "pw"}
    topo = _real_trio(tmp_path)
    if any((Path(d) / "vmrun").exists() for d in ("/usr/bin", "/bin")):
        pytest.skip("this machine has a vmrun")
    r = run_cli("up", str(topo), "--yes", "--json", "--skip", "networks", environ=environ)
    rep = _json(r)
    assert r.status == 6, rep["failures"]
    stages = {s["name"]: s for s in rep["stages"]}
    assert "vmrun" in stages["vms"]["failures"][0]["message"] or "Workstation" in stages["vms"]["failures"][0]["message"]
    assert "--sim" in (stages["vms"]["failures"][0]["hint"] or "")
    for name in ("install", "clones", "start", "ssh", "macs", "nfs", "vcenter", "vibs"):
        assert stages[name]["changes"] == [] and (stages[name]["skipped"] or stages[name]["failures"]
                                                   or name in ("install", "clones")), name
    assert (tmp_path / "vms" / "esxi-a" / "esxi-a.vmx").exists()  # render still did its part
