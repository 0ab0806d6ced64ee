"""Where a run is assembled: the real or the simulated backend, chosen in plan.backends and nowhere below."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from labctl.env import Env
from labctl.errors import EnvironmentProblem
from labctl.plan import backends
from labctl.sim.workstation import SimDriver
from labctl.topology import load_topology
from labctl.workstation.driver import Driver, VmrunDriver
from tests.workstation.conftest import fake_vmrun  # noqa: F401  (fixture)

ROOT = Path(__file__).resolve().parents[2]
ESX35 = ROOT / "topologies" / "esx35-ha-pair.yaml"


def _env(environ, cwd):
    return Env(stdout=io.StringIO(), stderr=io.StringIO(), stdin=io.StringIO(), environ=dict(environ), cwd=cwd)


def test_workstation_is_vmrun_or_the_simulated_one_behind_the_same_interface(tmp_path, fake_vmrun):  # noqa: F811
    topo = load_topology(ESX35)
    real = backends.workstation(topo, _env(fake_vmrun.environ, tmp_path))
    assert isinstance(real, VmrunDriver) and real.vmrun == fake_vmrun.exe
    planned = backends.workstation(topo, _env({}, tmp_path), sim_dir=tmp_path / "sim", create=False)
    assert isinstance(planned, SimDriver) and isinstance(planned, Driver)
    assert not (tmp_path / "sim").exists()  # planning creates nothing
    sim = backends.workstation(topo, _env({}, tmp_path), sim_dir=tmp_path / "sim")
    assert isinstance(sim, SimDriver) and (tmp_path / "sim" / "vms").is_dir()


def test_no_vmrun_is_an_environment_problem_with_the_sim_hint(tmp_path):
    with pytest.raises(EnvironmentProblem) as e:
        backends.workstation(load_topology(ESX35), _env({"PATH": str(tmp_path)}, tmp_path))
    assert "--sim" in (e.value.hint or "")


def test_ssh_settings_real_lab_or_a_missing_simulated_lab(tmp_path):
    topo = load_topology(ESX35)
    env = _env({"HOME": str(tmp_path)}, tmp_path)
    real = backends.ssh_settings(topo, env)
    assert real.endpoints is None and real.known_hosts == topo.known_hosts
    assert real.ssh_config == tmp_path / ".ssh" / "config"
    with pytest.raises(EnvironmentProblem) as e:
        backends.ssh_settings(topo, env, sim=True, sim_dir=str(tmp_path / "nothing"))
    assert "no simulated lab running" in e.value.message and "labctl sim up" in e.value.hint
