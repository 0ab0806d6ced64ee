"""`labctl vcenter` and `labctl nfs` end to end (in-process CLI) against the vcsim harness."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.vcsim

TOPOLOGY = """\
lab: {lab}
workstation: {{version: "17.5", vm_dir: {vm_dir}}}
networks:
  - {{name: mgmt, type: host-only, vmnet: 3, subnet: 172.20.30.0/24, host_ip: 172.20.30.1, dhcp: false}}
esx_hosts:
  - name: esxi-a
    flavor: esxi
    version: "8.0u2"
    cpus: 2
    memory_mb: 8192
    disk_gb: 40
    nics: [mgmt]
    management: {{network: mgmt, ip: 172.20.30.11}}
  - {{name: esxi-b, linked_clone_of: esxi-a, management: {{network: mgmt, ip: 172.20.30.12}}}}
  - {{name: esxi-c, linked_clone_of: esxi-a, management: {{network: mgmt, ip: 172.20.30.13}}}}
vcenter: {{host: 172.20.30.10, user: administrator@vsphere.local, password_env: LAB_VC_PASSWORD,
          datacenter: {dc}, insecure: true}}
ssh: {{user: root, password_env: LAB_ESX_PASSWORD}}
clusters:
  - name: Trio
    hosts: [esxi-a, esxi-b, esxi-c]
    ha: {{enabled: true, isolation_addresses: [{iso}]}}
datastores:
  - {{name: {ds}, type: nfs, server: 172.20.30.1, share: /export/lab, hosts: [esxi-a, esxi-b, esxi-c]}}
"""

HOSTS = ["172.20.30.11", "172.20.30.12", "172.20.30.13"]


@pytest.fixture
def topo(tmp_path, vcsim, dc_name):
    ds = f"nfs-{dc_name[-12:]}".replace("_", "-")
    vcsim.add_datastore_dirs([ds])

    def write(iso="172.20.30.10"):
        path = tmp_path / "lab.yaml"
        path.write_text(TOPOLOGY.format(lab="vstest", vm_dir=tmp_path / "vms", dc=dc_name, iso=iso, ds=ds))
        return path

    write.dc, write.ds = dc_name, ds
    return write


ENV = {"LAB_ESX_PASSWORD": "esx-root-pw"}


def test_vcenter_json_then_rerun_noop(run_cli, vcsim, topo):
    path = topo()
    r = run_cli("vcenter", str(path), "--vcenter", vcsim.url_with_credentials, "--json", "--nfs", environ=ENV)
    assert r.status == 0, r.err
    data = json.loads(r.out)
    assert data["failures"] == [] and data["dry_run"] is False
    got = [(c["stage"], c["target"], c["description"]) for c in data["changes"]]
    assert ("ha", "Trio", "set das.isolationaddress0 = 172.20.30.10") in got
    assert ("ha", "Trio", "set das.usedefaultisolationaddress = false") in got  # mgmt has no gateway
    assert [t for s, t, _ in got if s == "nfs"] == HOSTS

    vcsim.reset_counts()
    r = run_cli("vcenter", str(path), "--vcenter", vcsim.url_with_credentials, "--nfs", environ=ENV)
    assert r.status == 0 and "nothing to change" in r.out
    assert not {"ReconfigureComputeResource_Task", "AddHost_Task", "CreateNasDatastore"} & set(vcsim.call_counts())
    assert vcsim.password not in r.out + r.err


def test_dry_run_after_changing_the_topology(run_cli, vcsim, topo):
    assert run_cli("vcenter", str(topo()), "--vcenter", vcsim.url_with_credentials, environ=ENV).status == 0
    path = topo(iso="172.20.30.10, 172.20.30.99")
    r = run_cli("vcenter", str(path), "--vcenter", vcsim.url_with_credentials, "--dry-run", environ=ENV)
    assert r.status == 0
    assert "[ha] Trio: would set das.isolationaddress1 = 172.20.30.99" in r.out
    r = run_cli("vcenter", str(path), "--vcenter", vcsim.url_with_credentials, "--dry-run", environ=ENV)
    assert "would set das.isolationaddress1" in r.out  # the dry run changed nothing


def test_sim_uses_endpoints_json_and_govc_style_credentials(run_cli, vcsim, topo, tmp_path):
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    (sim_dir / "endpoints.json").write_text(json.dumps({
        "lab": "vstest", "hosts": {}, "vcenter": {"url": vcsim.url, "user": vcsim.user, "pid": vcsim.pid}}))
    env = {"LAB_VC_PASSWORD": vcsim.password}
    r = run_cli("vcenter", str(topo()), "--sim", "--sim-dir", str(sim_dir), "--no-nfs", environ=env)
    assert r.status == 0, r.err
    assert f"vCenter {vcsim.url} (--sim)" in r.out and vcsim.password not in r.out

    env = {"GOVC_URL": vcsim.url, "GOVC_USERNAME": vcsim.user, "GOVC_PASSWORD": vcsim.password}
    r = run_cli("nfs", str(topo()), "--dry-run", "--via", "vcenter", environ=env)
    assert r.status == 0, r.err
    assert "(GOVC_URL)" in r.out and r.out.count("would mount") == 3


def test_nfs_command_reports_failed_host_and_exit_status(run_cli, vcsim, topo):
    path = topo()
    assert run_cli("vcenter", str(path), "--vcenter", vcsim.url_with_credentials, "--no-nfs", environ=ENV).status == 0
    vcsim.inject_fault("CreateNasDatastore", HOSTS[2], "PlatformConfigFault", "mount refused")
    r = run_cli("nfs", str(path), "--vcenter", vcsim.url_with_credentials, "--json")
    assert r.status == 3
    data = json.loads(r.out)
    assert [f["target"] for f in data["failures"]] == [HOSTS[2]]
    assert [c["target"] for c in data["changes"]] == HOSTS
    r = run_cli("nfs", str(path), "--vcenter", vcsim.url_with_credentials)
    assert r.status == 0 and f"[nfs] {HOSTS[2]}: mount 172.20.30.1:/export/lab" in r.out


def test_wrong_password_is_a_clean_unreachable_error(run_cli, vcsim, topo):
    url = vcsim.url.replace("http://", "http://administrator%40vsphere.local:wrong@")
    r = run_cli("vcenter", str(topo()), "--vcenter", url)
    assert r.status == 4
    assert "refused the login" in r.err and "wrong" not in r.err and "Traceback" not in r.err


def test_missing_password_without_terminal(run_cli, topo):
    r = run_cli("vcenter", str(topo()), "--dry-run")
    assert r.status == 2 and "$LAB_VC_PASSWORD" in r.err


def test_sim_password_file_from_the_launcher(run_cli, vcsim, topo, tmp_path):
    sim_dir = tmp_path / "sim2"
    sim_dir.mkdir()
    entry = vcsim.endpoint_entry(sim_dir / "vcenter-password")
    assert oct((sim_dir / "vcenter-password").stat().st_mode & 0o777) == "0o600"
    (sim_dir / "endpoints.json").write_text(json.dumps({"lab": "vstest", "hosts": {}, "vcenter": entry}))
    r = run_cli("vcenter", str(topo()), "--sim", "--sim-dir", str(sim_dir), "--dry-run", environ={})
    assert r.status == 0, r.err
    assert vcsim.password not in r.out + r.err
    (vcsim.workdir / topo.ds).rmdir()  # --sim creates the simulator's datastore directory itself
    r = run_cli("vcenter", str(topo()), "--sim", "--sim-dir", str(sim_dir), "--nfs", environ={})
    assert r.status == 0, r.err
    assert r.out.count(f"mount 172.20.30.1:/export/lab as {topo.ds}") == 3


def test_sim_without_vcenter_says_how_to_get_one(run_cli, topo, tmp_path):
    (tmp_path / "endpoints.json").write_text(json.dumps({"lab": "vstest", "hosts": {}, "vcenter": None}))
    r = run_cli("vcenter", str(topo()), "--sim", "--sim-dir", str(tmp_path))
    assert r.status == 6 and "golang-github-vmware-govmomi-dev" in r.err
