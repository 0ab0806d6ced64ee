"""Certificate policy against an https simulator with a self-signed certificate: checked by default (pyVmomi
alone would skip the check for loopback), --insecure said explicitly, or a pinned thumbprint."""

from __future__ import annotations

import urllib.parse

import pytest

from labctl.errors import UnreachableError
from labctl.vsphere.client import VSphereClient
from labctl.vsphere.connection import resolve_target, server_thumbprint

pytestmark = pytest.mark.vcsim


def connect(sim, **kw):
    return VSphereClient.connect(resolve_target(settings=None, environ={}, override_url=sim.url_with_credentials, **kw))


def test_self_signed_certificate_is_refused_by_default(vcsim_tls):
    with pytest.raises(UnreachableError, match="certificate not trusted") as e:
        connect(vcsim_tls)
    assert "--thumbprint" in e.value.hint and "--insecure" in e.value.hint


def test_insecure_and_pinned_thumbprint_connect(vcsim_tls):
    u = urllib.parse.urlsplit(vcsim_tls.url)
    thumb = server_thumbprint(u.hostname, u.port)
    with connect(vcsim_tls, insecure=True) as c:
        assert c.api_version == "6.5"
    with connect(vcsim_tls, thumbprint=thumb.lower().replace(":", "")) as c:
        assert c.read_inventory().datacenters


def test_wrong_pin_is_refused_even_with_insecure(vcsim_tls):
    with pytest.raises(UnreachableError, match="does not match the pinned"):
        connect(vcsim_tls, thumbprint="00" * 20, insecure=True)


def test_cli_thumbprint_option(run_cli, vcsim_tls, tmp_path):
    u = urllib.parse.urlsplit(vcsim_tls.url)
    thumb = server_thumbprint(u.hostname, u.port)
    topo = tmp_path / "lab.yaml"
    topo.write_text(
        "lab: tls\nworkstation: {version: '17.5', vm_dir: %s}\n"
        "networks: [{name: mgmt, type: host-only, vmnet: 3, subnet: 10.9.0.0/24, host_ip: 10.9.0.1, dhcp: false}]\n"
        "esx_hosts:\n  - {name: e1, flavor: esxi, version: '8.0', cpus: 2, memory_mb: 8192, disk_gb: 40, nics: [mgmt],"
        " management: {network: mgmt, ip: 10.9.0.11}}\n"
        "vcenter: {host: 10.9.0.10, password_env: VCPW}\n"
        "clusters: [{name: C, hosts: [e1], ha: {enabled: true, isolation_addresses: [10.9.0.10]}}]\n" % (tmp_path / "vms")
    )
    r = run_cli("vcenter", str(topo), "--vcenter", vcsim_tls.url_with_credentials, "--dry-run")
    assert r.status == 4 and "certificate not trusted" in r.err
    r = run_cli("vcenter", str(topo), "--vcenter", vcsim_tls.url_with_credentials, "--dry-run", "--thumbprint", thumb)
    assert r.status == 0, r.err
    assert "[vcenter] 10.9.0.11: would add host to cluster C" in r.out
