"""`labctl plan/up --sim --only networks` on a `target: vsphere` lab: the simulated physical side is the vcsim named
in the sim dir's endpoints.json (`target`); the topology's address is never dialled (pytest-socket: loopback only)."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.vcsim

TOPO = """
lab: stagelab
target: {kind: vsphere, host: esx-phys-01.example.lab, user: root, password_env: TARGET_PASSWORD, datastore: LocalDS_0}
networks:
  - {name: lab, type: lan-segment, subnet: 192.168.69.0/24}
ssh: {jump: root@192.168.69.2}
esx_hosts:
  - {name: esx1, flavor: esxi, version: "8.0", memory_mb: 8192, nics: [lab], management: {network: lab, ip: 192.168.69.11}}
"""


def test_plan_lists_the_calls_up_makes_them_and_a_second_up_changes_nothing(vcsim_esx, run_cli, tmp_path):
    (tmp_path / "lab.yaml").write_text(TOPO)
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    (sim_dir / "endpoints.json").write_text(json.dumps(
        {"lab": "stagelab", "hosts": {}, "target": vcsim_esx.endpoint_entry(sim_dir / "target.password")}))
    args = ("lab.yaml", "--sim", "--sim-dir", str(sim_dir), "--only", "networks")
    environ = {"TARGET_PASSWORD": "never-used-with-sim", "GOVC_URL": "https://10.9.9.9/sdk"}

    r = run_cli("plan", *args, "--json", environ=environ)
    assert r.status == 0, r.err
    plan = json.loads(r.out)
    calls = [c for ch in plan["changes"] for c in ch["commands"]]
    assert calls == [
        "HostNetworkSystem.AddVirtualSwitch[localhost.localdomain](vswitchName='labctl-stagelab', numPorts=128, "
        "bridge=None)",
        "HostNetworkSystem.AddPortGroup[localhost.localdomain](name='labctl-stagelab-lab', vswitchName="
        "'labctl-stagelab', vlanId=0, security='promiscuous accept, forged transmits accept, MAC changes accept')"]
    notes = [n for s in plan["stages"] for n in s["notes"]]
    assert any("a standard vSwitch has no MAC learning" in n for n in notes)

    r = run_cli("up", *args, environ=environ)
    assert r.status == 0, r.out + r.err
    assert "+ localhost.localdomain: HostNetworkSystem.AddPortGroup" in r.out
    r = run_cli("up", *args, environ=environ)
    assert r.status == 0 and "= no changes" in r.out.split("host networks", 1)[1], r.out
    record = tmp_path / "sim" / "vms" / ".labctl"
    for text in (r.out, r.err, (record / "vsphere-target.json").read_text()):
        assert vcsim_esx.password not in text and "never-used-with-sim" not in text

    # destroy removes exactly what labctl's record lists (the shared simulator is left as found)
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target

    r = run_cli("destroy", "lab.yaml", "--sim", "--sim-dir", str(sim_dir), "--yes", environ=environ)
    assert r.status == 0, r.out + r.err
    assert "removed HostNetworkSystem.RemovePortGroup[localhost.localdomain](pgName='labctl-stagelab-lab')" in r.out
    assert "removed HostNetworkSystem.RemoveVirtualSwitch[localhost.localdomain](vswitchName='labctl-stagelab')" in r.out
    with VSphereClient.connect(resolve_target(settings=None, environ={},
                                              override_url=vcsim_esx.url_with_credentials)) as client:
        from pyVmomi import vim

        view = client.content.viewManager.CreateContainerView(client.content.rootFolder, [vim.HostSystem], True)
        info = view.view[0].configManager.networkSystem.networkInfo
        assert not any(v.name.startswith("labctl-stagelab") for v in info.vswitch)
        assert not any(p.spec.name.startswith("labctl-stagelab") for p in info.portgroup)
        assert any(p.spec.name == "VM Network" for p in info.portgroup)


def test_no_simulated_target_is_a_clear_error(tmp_path):
    """Without `start` (down, destroy) a missing simulated physical side is named, with what starts it."""
    import io

    from labctl.env import Env
    from labctl.errors import EnvironmentProblem
    from labctl.plan.backends import vsphere_session
    from labctl.topology import load_topology

    (tmp_path / "lab.yaml").write_text(TOPO)
    env = Env(stdout=io.StringIO(), stderr=io.StringIO(), stdin=io.StringIO(), environ={}, cwd=tmp_path)
    with pytest.raises(EnvironmentProblem, match="no simulated vSphere target for stagelab") as e:
        vsphere_session(load_topology(tmp_path / "lab.yaml"), env, sim_dir=tmp_path / "sim")
    assert "--sim` starts it" in e.value.hint


def test_the_real_target_needs_its_password_from_the_environment_or_a_terminal(run_cli, tmp_path):
    """Without --sim labctl would dial the topology's target: with no password variable and no terminal it stops
    before any connection (pytest-socket would refuse one) and says where the password comes from."""
    (tmp_path / "lab.yaml").write_text(TOPO)
    r = run_cli("plan", "lab.yaml", "--only", "networks")
    assert r.status == 3, r.out + r.err  # the stage failed (README: exit statuses)
    assert "no password for vCenter user root" in r.out + r.err and "TARGET_PASSWORD" in r.out + r.err
    assert "Traceback" not in r.out + r.err


def test_plan_sim_starts_the_simulated_physical_side_and_reads_it(run_cli, tmp_path, request):
    """The simulated vSphere stands in for infrastructure that exists before labctl runs: `plan --sim` starts it
    (labctl.sim.target.ensure_for, stopped by PID here) and lists the calls `up` would make on it."""
    from labctl.errors import EnvironmentProblem
    from labctl.sim import target as simtarget
    from labctl.sim import vcsim as launcher

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    (tmp_path / "lab.yaml").write_text(TOPO)
    sim_dir = tmp_path / "sim"
    request.addfinalizer(lambda: simtarget.stop(sim_dir))
    r = run_cli("plan", "lab.yaml", "--sim", "--sim-dir", str(sim_dir), "--only", "networks", "--json")
    assert r.status == 0, r.out + r.err
    calls = [c for ch in json.loads(r.out)["changes"] for c in ch["commands"]]
    assert [c.split("[")[0] for c in calls] == ["HostNetworkSystem.AddVirtualSwitch", "HostNetworkSystem.AddPortGroup"]
    assert json.loads((sim_dir / "endpoints.json").read_text())["target"]["url"].startswith("http://127.0.0.1:")
