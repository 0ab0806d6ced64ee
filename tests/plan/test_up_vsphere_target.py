"""End to end: `labctl up topologies/esxi8-ha-trio-on-vsphere.yaml --sim` onto the simulated physical vSphere
(labctl.sim.target: a vCenter simulator named as the topology's target, with the watcher that boots a simulated ESX
host per powered-on vmkernel VM). The golden host installs from the ISOs uploaded to the datastore, the clones are
linked clones that take their identity from guestinfo (extraConfig), the lab's own vCenter gets the HA cluster; a
second run changes nothing; `destroy` removes exactly what labctl made (the physical inventory is listed before and
after). The topology's target address is never dialled."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.vsphere import targetkit as K

pytestmark = [pytest.mark.vcsim, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def inventory(si) -> dict[str, list[str]]:
    """Everything on the physical side a lab could leave behind: VMs (with their folder path), folders,
    portgroups of every host, and datastore directories."""
    from pyVmomi import vim

    content = si.RetrieveContent()
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.ManagedEntity], True)
    try:
        entities = list(view.view)
    finally:
        view.Destroy()

    def path(e) -> str:
        parts = []
        while e is not None and e != content.rootFolder:
            parts.append(e.name)
            e = e.parent
        return "/".join(reversed(parts))

    out: dict[str, list[str]] = {"vms": [], "folders": [], "portgroups": [], "networks": []}
    for e in entities:
        if isinstance(e, vim.VirtualMachine):
            out["vms"].append(path(e))
        elif isinstance(e, vim.Folder):
            out["folders"].append(path(e))
        elif isinstance(e, vim.Network):
            out["networks"].append(e.name)
        elif isinstance(e, vim.HostSystem):
            out["portgroups"] += [f"{e.name}:{p.spec.name}" for p in e.configManager.networkSystem.networkInfo.portgroup]
            out["portgroups"] += [f"{e.name}:vswitch:{v.name}" for v in e.configManager.networkSystem.networkInfo.vswitch]
    return {k: sorted(v) for k, v in out.items()}


@pytest.fixture
def lab(tmp_path, request):
    with_iso = getattr(request, "param", True)  # False: the user has no ISO (--sim writes a synthetic one)
    pytest.importorskip("labctl.vsphere.target.driver", reason="the vSphere target driver is not here")
    pytest.importorskip("labctl.sim.installer", reason="the simulated installer is not here")
    from labctl.errors import EnvironmentProblem
    from labctl.sim import lab as simlab
    from labctl.sim import target as T
    from labctl.sim import vcsim as launcher

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    text = (ROOT / "topologies" / "esxi8-ha-trio-on-vsphere.yaml").read_text()
    text = text.replace("vm_dir: ~/labctl/esxi8-trio", f"vm_dir: {tmp_path / 'vms'}")
    from labctl.iso import synthetic

    iso = tmp_path / "isos" / "VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso"  # the user's ISO, made here
    iso.parent.mkdir()
    if with_iso:
        synthetic.write_esxi_iso(iso, "8.0u2", "22380479")
    text = text.replace("iso: ~/isos/VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso", f"iso: {iso}")
    topo = tmp_path / "esxi8-ha-trio-on-vsphere.yaml"
    topo.write_text(text)
    sim = tmp_path / "sim"
    environ = {**os.environ, "HOME": str(tmp_path / "home"), "LAB_ESX_PASSWORD": "VMware1!lab",
               "LAB_VC_PASSWORD": "VMware1!vc"}
    for k in ("TARGET_PASSWORD", "GOVC_URL", "GOVC_USERNAME", "GOVC_PASSWORD", "LABCTL_SIM_DIR"):
        environ.pop(k, None)
    yield topo, sim, environ
    T.stop(sim)  # by PID, also when the test failed
    simlab.down(sim)


def _json(r):
    assert r.out.strip(), r.err
    return json.loads(r.out)


def test_up_onto_simulated_vsphere_converges_and_destroy_removes_what_it_made(lab, run_cli):
    from pyVmomi import vim

    from labctl.sim import target as T
    from labctl.topology import load_topology

    topo, sim, environ = lab
    # the user's vSphere as it is before the lab: started here so it can be listed first (up finds it running)
    tsim, _ = T.ensure_for(sim, load_topology(topo).target, environ=environ)
    si = K.connect(tsim)
    before = inventory(si)

    common = (str(topo), "--sim", "--sim-dir", str(sim))
    r = run_cli("up", *common, "--json", environ=environ)
    report = _json(r)
    assert report["failures"] == [], (report["failures"], r.err[-3000:])
    folder = "DC1/vm/labs/esxi8-trio"
    after = inventory(si)
    assert sorted(v for v in after["vms"] if v not in before["vms"]) == [
        f"{folder}/{n}" for n in ("esxi-a", "esxi-b", "esxi-c", "nfs", "vcsa")]
    # the clones are linked clones of the golden host's snapshot, as requested and as their disks show
    clones = {c["name"]: c for c in tsim.vcsim().clones()}
    assert {n: (clones[n]["diskMoveType"], clones[n]["linked"]) for n in ("esxi-b", "esxi-c")} == {
        "esxi-b": ("createNewChildDiskBacking", True), "esxi-c": ("createNewChildDiskBacking", True)}
    vm_b = si.content.searchIndex.FindByInventoryPath(f"{folder}/esxi-b")
    disk = [d for d in vm_b.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][0]
    assert disk.backing.parent is not None
    # every host answers at its own address (its identity came through guestinfo), the lab's vCenter has HA
    hosts = json.loads((sim / "endpoints.json").read_text())["hosts"]
    assert {n: hosts[n]["address"] for n in ("esxi-a", "esxi-b", "esxi-c")} == {
        "esxi-a": "172.20.30.11", "esxi-b": "172.20.30.12", "esxi-c": "172.20.30.13"}
    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target
    from labctl.sim.endpoints import load_endpoints

    vc = load_endpoints(sim).vcenter
    pw = environ["LAB_VC_PASSWORD"]
    client = VSphereClient.connect(resolve_target(settings=None, environ={}, sim_vcenter=vc, sim_password=pw))
    try:
        cl = client.read_inventory().datacenters["Lab"].clusters["Trio"]
        assert cl.das_enabled and cl.options["das.isolationaddress0"] == "172.20.30.10"
    finally:
        client.close()

    again = _json(run_cli("up", *common, "--json", environ=environ))
    assert again["changes"] == [] and again["failures"] == [], json.dumps([again["changes"], again["failures"]])

    r = run_cli("destroy", *common, "--yes", environ=environ)
    assert r.status == 0, r.err
    assert inventory(si) == before
    si.content.sessionManager.Logout()


@pytest.mark.parametrize("lab", [False], indirect=True)
def test_up_sim_without_the_iso_writes_the_synthetic_installer_before_the_upload(lab, run_cli):
    """The topology's ISO is not on this machine: with --sim the synthetic installer is written before the golden
    VM (whose .vmx names the ISO) is created on the target and its media uploaded; the host installs from it."""
    topo, sim, environ = lab
    missing = tmp_iso = topo.parent / "isos" / "VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso"
    assert not tmp_iso.exists()
    r = run_cli("up", str(topo), "--sim", "--sim-dir", str(sim), "--json", environ=environ)
    report = _json(r)
    assert report["failures"] == [], (report["failures"], r.err[-3000:])
    assert (sim / "isos" / missing.name).is_file() and not missing.exists()
    assert any(f"{missing} does not exist" in n for n in report.get("notes", []) + [r.err]), r.err[-2000:]
    marker = json.loads((sim / "vms" / ".labctl" / "install" / "esxi-a" / "installed.json").read_text())
    assert marker["disk"].endswith("esxi-a/esxi-a.vmdk") and marker["instance_uuid"]
