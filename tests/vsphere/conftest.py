"""The vcsim harness: labctl's Go simulator built once (cached by source hash), started once per session on
127.0.0.1 in a temporary directory, stopped by PID in a finalizer (also when tests fail).

Tests share one simulator and keep out of each other's way by using their own datacenter names.
"""

from __future__ import annotations

import itertools

import pytest

from labctl.errors import EnvironmentProblem

_counter = itertools.count()


def _start(tmp_path_factory, request, **kwargs):
    from labctl.sim import vcsim as launcher

    try:
        binary = launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message} ({e.hint})")
    workdir = tmp_path_factory.mktemp("vcsim")
    sim = launcher.start(binary, workdir, password="sim-secret-pw", **kwargs)
    request.addfinalizer(sim.stop)
    return sim


@pytest.fixture(scope="session")
def vcsim(tmp_path_factory, request):
    """A vCenter 6.5 simulator (FDM): DC0 with cluster DC0_C0 (hosts DC0_C0_H0..2) and standalone DC0_H0."""
    return _start(tmp_path_factory, request, standalone_hosts=1)


@pytest.fixture(scope="session")
def vcsim_esx(tmp_path_factory, request):
    """A standalone ESX host (`-esx`): ha-datacenter, host localhost.localdomain, datastore LocalDS_0."""
    return _start(tmp_path_factory, request, esx=True)


@pytest.fixture(scope="session")
def vcsim80(tmp_path_factory, request):
    """A vCenter reporting API 8.0.2 (MAC learning exists from 6.7): DC0, cluster DC0_C0 of three hosts."""
    return _start(tmp_path_factory, request, api_version="8.0.2.0")


@pytest.fixture(scope="session")
def vcsim41(tmp_path_factory, request):
    """A simulator that reports vCenter API 4.1 (legacy AAM HA keys)."""
    return _start(tmp_path_factory, request, api_version="4.1")


def _client(sim):
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target

    target = resolve_target(settings=None, environ={}, override_url=sim.url_with_credentials)
    return VSphereClient.connect(target)


@pytest.fixture
def client(vcsim):
    c = _client(vcsim)
    yield c
    c.close()


@pytest.fixture
def client41(vcsim41):
    c = _client(vcsim41)
    yield c
    c.close()


@pytest.fixture
def dc_name(request):
    """A datacenter name of this test's own."""
    return f"DC-{request.node.name[:40]}-{next(_counter)}"


@pytest.fixture(scope="session")
def vcsim_tls(tmp_path_factory, request):
    """A simulator serving https with a self-signed certificate."""
    return _start(tmp_path_factory, request, tls=True)
