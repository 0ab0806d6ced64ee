"""The vSphere target's driver against vcsim twice: a vCenter with a cluster (govmomi's VPX model: DC0, cluster
DC0_C0 with three hosts, datastore LocalDS_0) and a standalone ESX host (`-esx`: ha-datacenter, LocalDS_0).

Each test works in a lab folder of its own; the simulators are shared by the session and stopped by PID.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from types import SimpleNamespace

import pytest

from labctl.errors import EnvironmentProblem

_counter = itertools.count()
TOPOLOGIES = Path(__file__).resolve().parents[3] / "topologies"


def _start(tmp_path_factory, request, **kwargs):
    from labctl.sim import vcsim as launcher

    try:
        binary = launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message} ({e.hint})")
    sim = launcher.start(binary, tmp_path_factory.mktemp("vcsim-target"), password="sim-target-pw", **kwargs)
    request.addfinalizer(sim.stop)
    return sim


@pytest.fixture(scope="session")
def sim_vc(tmp_path_factory, request):
    return _start(tmp_path_factory, request)


@pytest.fixture(scope="session")
def sim_esx(tmp_path_factory, request):
    return _start(tmp_path_factory, request, esx=True)


@pytest.fixture(params=["vcenter", "esx"])
def mode(request):
    return request.param


@pytest.fixture
def sim(mode, request):
    return request.getfixturevalue("sim_vc" if mode == "vcenter" else "sim_esx")


def open_session(sim):
    from labctl.vsphere.connection import resolve_target
    from labctl.vsphere.target.session import Session

    return Session.open(resolve_target(settings=None, environ={}, override_url=sim.url_with_credentials))


@pytest.fixture
def session(sim):
    s = open_session(sim)
    yield s
    s.close()


def target_for(mode: str, folder: str):
    """A `target:` as s14model's VsphereTarget names its fields (only those the driver reads)."""
    if mode == "vcenter":
        return SimpleNamespace(datacenter="DC0", cluster="DC0_C0", esx_host=None, resource_pool=None,
                               datastore="LocalDS_0", folder=folder, disk_provisioning="thin")
    return SimpleNamespace(datacenter=None, cluster=None, esx_host=None, resource_pool=None, datastore="LocalDS_0",
                           folder=folder, disk_provisioning="thin")


@pytest.fixture
def folder(request):
    return f"labs/t{next(_counter)}-{request.node.name[:24].replace('[', '-').replace(']', '')}"


@pytest.fixture
def make_driver(session, mode, tmp_path):
    from labctl.vsphere.target.driver import VsphereDriver

    def make(folder: str, state: Path | None = None, sess=None, **kw):
        kw.setdefault("portgroups", _AllToVmNetwork())
        return VsphereDriver(sess or session, target_for(mode, folder), state or tmp_path / "state", **kw)

    return make


class _AllToVmNetwork(dict):
    """Every lab network on the simulator's "VM Network" (the portgroup mapping is s14model's part)."""

    def get(self, key, default=None):
        return "VM Network"


def render(topology: str, out: Path, iso: Path | None = None) -> dict[str, Path]:
    """The example topology's .vmx files rendered into `out` (as the render stage does); the CD-ROMs carry `iso`
    (the install stage's patched ISO) instead of the topology's path on the user's machine."""
    from labctl.render import vmx as vmxlib
    from labctl.render.lab import render_lab
    from labctl.topology import load_topology

    topo = load_topology(TOPOLOGIES / f"{topology}.yaml")
    paths: dict[str, Path] = {}
    for f in render_lab(topo):
        if f.kind != "vmx":
            continue
        p = out / f.relpath
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(f.content)
        if iso is not None:
            doc = vmxlib.read(p)
            for k, v in list(doc.items()):
                if k.endswith(".deviceType") and v == "cdrom-image":
                    doc.set(k[: -len("deviceType")] + "fileName", str(iso))
            vmxlib.write(p, doc, force=True)
        paths[p.stem] = p
    return paths
