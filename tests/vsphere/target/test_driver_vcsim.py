"""VsphereDriver against vcsim, as a vCenter with a cluster and as a standalone ESX host (every test runs twice).

What is checked is what vSphere holds afterwards, read back through the API (and the harness's own records where
vcsim would otherwise drop a setting: /_labctl/clones for diskMoveType), never what the driver says it did.
"""

from __future__ import annotations

import urllib.request

import pytest

from labctl.errors import LabctlError, RefusedError
from labctl.vsphere.target import vmxfacts as vf
from tests.vsphere.target.conftest import open_session, render, target_for

pytestmark = pytest.mark.vcsim

# vcsim adds this to every VM it creates; nothing else may differ
SIM_KEYS = {"govcsim", ".encoding"}  # and the VmxFile's own header line


@pytest.fixture
def iso(tmp_path):
    p = tmp_path / "VMware-VMvisor-Installer-patched.iso"
    p.write_bytes(b"\x00" * 32768 + b"CD001" + bytes(range(256)) * 400)
    return p


def _compare(drv, vmx, name):
    """Every fact of the rendered .vmx as the VM on vSphere has it (key by key)."""
    from labctl.render import vmx as vmxlib

    facts = vf.facts(vmxlib.read(vmx), name)
    want = vf.facts_to_vmx(facts, network_name=lambda _ref: "VM Network")
    got = drv.read_config(vmx).to_dict()
    for k, v in want.items():
        if k.endswith(".fileName"):
            continue  # local paths became datastore paths: checked separately
        assert got.get(k) == v, f"{name}: {k}: vSphere has {got.get(k)!r}, the .vmx {v!r}"
    extra = {k for k in got if k not in want and not k.endswith(".fileName")} - SIM_KEYS - {vf.FOLDER_KEY}
    assert not extra, f"{name}: keys on vSphere the .vmx does not have: {sorted(extra)}"
    return facts, got


@pytest.mark.parametrize("topology", ["esxi8-ha-trio", "esx35-ha-pair", "esxi67-70-mixed", "esx9-pair-25h2"])
def test_create_from_rendered_vmx_reads_back_every_fact(make_driver, folder, tmp_path, iso, topology, mode):
    vmxs = render(topology, tmp_path / "state", iso)
    drv = make_driver(folder, tmp_path / "state")
    for name, vmx in vmxs.items():
        assert drv.create_disk(vmx, 40, "pvscsi") is True
    again = make_driver(folder, tmp_path / "state")  # a fresh look: from vSphere, not the driver's cache
    for name, vmx in vmxs.items():
        facts, got = _compare(again, vmx, name)
        assert got[vf.FOLDER_KEY] == folder
        ref = again.find(vmx)
        assert ref.path == f"[LocalDS_0] {folder}/{name}/{name}.vmx"
        from pyVmomi import vim

        devices = ref.obj.config.hardware.device
        disks = [d for d in devices if isinstance(d, vim.vm.device.VirtualDisk)]
        assert [d.capacityInKB for d in disks] == [40 * 1024 * 1024]
        assert disks[0].backing.thinProvisioned is True
        for c in facts.cdroms:
            assert got[f"{c.device}.fileName"].startswith("[LocalDS_0] labctl-media/")
            assert got[f"{c.device}.fileName"].endswith(iso.name)
        if facts.guest_id.startswith("vmkernel"):
            assert ref.obj.config.guestId == facts.guest_id
    # a second run changes nothing
    assert all(again.create_disk(vmx, 40, "pvscsi") is False for vmx in vmxs.values())


def test_guest_ids_cover_every_rendered_vmx(tmp_path):
    from labctl.render import vmx as vmxlib

    seen = set()
    for topology in ("esxi8-ha-trio", "esx35-ha-pair", "esxi67-70-mixed", "esx9-pair-25h2"):
        for name, vmx in render(topology, tmp_path / topology).items():
            seen.add(vf.facts(vmxlib.read(vmx), name).guest_id)
    assert {"vmkernel8Guest", "vmkernelGuest", "vmkernel65Guest", "vmkernel7Guest", "vmkernel9Guest",
            "other5xLinux64Guest", "winXPProGuest"} <= seen


def test_media_is_uploaded_once_and_reused_by_a_second_lab(make_driver, folder, tmp_path, iso, sim, session):
    vmxs = render("esxi8-ha-trio", tmp_path / "a", iso)
    render("esxi8-ha-trio", tmp_path / "b", iso)
    first = make_driver(folder, tmp_path / "a")
    before = session.calls["HTTP PUT"]
    first.create_disk(vmxs["esxi-a"], 40, "pvscsi")
    path = first.read_config(vmxs["esxi-a"]).get("sata0:1.fileName")
    # the second lab (another folder, another session): found by name and size, not uploaded again
    other = open_session(sim)
    try:
        second = make_driver(folder + "-second", tmp_path / "b", sess=other)
        second.create_disk(tmp_path / "b" / "esxi-a" / "esxi-a.vmx", 40, "pvscsi")
        assert other.calls["HTTP PUT"] == 0
        assert other.calls["SearchDatastore_Task"] == 1
        assert second.read_config(tmp_path / "b" / "esxi-a" / "esxi-a.vmx").get("sata0:1.fileName") == path
    finally:
        other.close()
    uploaded = session.calls["HTTP PUT"] - before
    assert uploaded in (0, 1)  # 0: an earlier test of this session put the same bytes there
    # what is on the datastore is the file, byte for byte (read back over the same HTTP interface)
    dc = "DC0" if session.is_vcenter else "ha-datacenter"
    rel = path.split("] ", 1)[1]
    req = urllib.request.Request(f"{sim.base}/folder/{rel}?dcPath={dc}&dsName=LocalDS_0",
                                 headers={"Cookie": session.cookie})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.read() == iso.read_bytes()


def test_a_short_file_of_that_name_is_replaced(make_driver, folder, tmp_path, sim, session):
    from labctl.vsphere.target import upload

    iso = tmp_path / "short.iso"
    iso.write_bytes(b"labctl" * 5000)
    drv = make_driver(folder)
    p = drv.placement()
    media = upload.hash_file(iso)
    partial = tmp_path / "partial.iso"
    partial.write_bytes(iso.read_bytes()[:1000])  # an interrupted upload left this much
    upload.put_file(session, upload.Media(partial, media.sha256, 1000), datacenter=p.datacenter_name,
                    datastore="LocalDS_0", rel=f"{upload.MEDIA_DIR}/{media.file_name}")
    path, made = upload.ensure_uploaded(session, p.browser, media, datacenter=p.datacenter_name,
                                        datastore="LocalDS_0")
    assert made is True
    assert upload.existing_size(session, p.browser, "LocalDS_0", upload.MEDIA_DIR, media.file_name) == media.size
    assert upload.ensure_uploaded(session, p.browser, media, datacenter=p.datacenter_name,
                                  datastore="LocalDS_0") == (path, False)


def _golden(make_driver, folder, tmp_path, iso):
    vmxs = render("esxi8-ha-trio", tmp_path / "state", iso)
    drv = make_driver(folder, tmp_path / "state")
    drv.create_disk(vmxs["esxi-a"], 40, "pvscsi")
    return drv, vmxs["esxi-a"]


def test_linked_clone_from_snapshot_base(make_driver, folder, tmp_path, iso, sim, session, mode):
    from pyVmomi import vim

    drv, src = _golden(make_driver, folder, tmp_path, iso)
    drv.snapshot(src, "base")
    assert drv.list_snapshots(src) == ["base"]
    dst = tmp_path / "state" / "esxi-b" / "esxi-b.vmx"
    before = dict(session.calls)
    drv.clone(src, dst, snapshot="base", clone_name="esxi-b")
    clone = make_driver(folder, tmp_path / "state").find(dst)
    assert clone is not None and dst.is_file()  # the clone's .vmx mirrors the VM (the stages look for it)
    disks = [d for d in clone.obj.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)]
    src_ref = drv.find(src)
    snap = src_ref.obj.snapshot.rootSnapshotList[0]
    base_disk = next(d for d in snap.snapshot.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
    assert len(disks) == 1
    assert disks[0].backing.parent is not None
    assert disks[0].backing.parent.fileName == base_disk.backing.fileName
    calls = {k: v - before.get(k, 0) for k, v in session.calls.items() if v - before.get(k, 0)}
    if mode == "vcenter":
        # what vCenter was asked for, as the harness recorded it (vcsim itself ignores diskMoveType)
        rec = [c for c in sim.clones() if c["name"] == "esxi-b" and c["clone"] == clone.obj._moId]
        assert rec and rec[0]["diskMoveType"] == "createNewChildDiskBacking"
        assert rec[0]["snapshot"] == snap.snapshot._moId and rec[0]["linked"] is True
        assert calls.get("CloneVM_Task") == 1
    else:
        # a host has no CloneVM_Task: the clone is a new VM on a child disk of the snapshot's disk
        assert "CloneVM_Task" not in calls and calls.get("CreateVM_Task") == 1
        assert clone.path == f"[LocalDS_0] {folder}/esxi-b/esxi-b.vmx"
    # the clone keeps the golden host's hardware
    got = drv.read_config(dst).to_dict()
    assert got["guestOS"] == "vmkernel8" and got["ethernet0.virtualDev"] == "vmxnet3"
    assert got[vf.FOLDER_KEY] == folder
    with pytest.raises(RefusedError, match="already exists"):
        drv.clone(src, dst, snapshot="base", clone_name="esxi-b")
    with pytest.raises(LabctlError, match="no snapshot 'nope'"):
        drv.clone(src, tmp_path / "state" / "esxi-c" / "esxi-c.vmx", snapshot="nope", clone_name="esxi-c")


def test_clone_settings_applied_once_then_nothing_differs(make_driver, folder, tmp_path, iso):
    drv, src = _golden(make_driver, folder, tmp_path, iso)
    drv.snapshot(src, "base")
    dst = tmp_path / "state" / "esxi-b" / "esxi-b.vmx"
    drv.clone(src, dst, snapshot="base", clone_name="esxi-b")
    settings = {"displayName": "esxi-b", "uuid.action": "create", "msg.autoAnswer": "TRUE", "numvcpus": "4",
                "memsize": "12288", "ethernet0.addressType": "static", "ethernet0.address": "00:50:56:11:22:33",
                "ethernet0.generatedAddress": None, "guestinfo.labctl.hostname": "esxi-b"}
    todo = drv.reconfigure(dst, settings, dry_run=True)
    assert set(todo) == {"ethernet0.address", "guestinfo.labctl.hostname"}
    assert drv.reconfigure(dst, settings) == todo
    fresh = make_driver(folder, tmp_path / "state")
    assert fresh.reconfigure(dst, settings, dry_run=True) == []
    got = fresh.read_config(dst)
    assert got.get("ethernet0.address") == "00:50:56:11:22:33"
    assert fresh.read_guest_var(dst, "labctl.hostname") == "esxi-b"
    assert fresh.read_guest_var(dst, "labctl.hostkey") is None


def test_reconfigure_refused_while_powered_on_unless_forced(make_driver, folder, tmp_path, iso):
    drv, vmx = _golden(make_driver, folder, tmp_path, iso)
    drv.start(vmx)
    assert drv.is_running(vmx) and drv.list_running() == [drv.vmx_of("esxi-a")]
    with pytest.raises(RefusedError, match="esxi-a: the VM is running; its configuration needs numvcpus"):
        drv.reconfigure(vmx, {"numvcpus": "2"})
    assert drv.read_config(vmx).get("numvcpus") == "4"
    assert drv.reconfigure(vmx, {"numvcpus": "2"}, dry_run=True) == ["numvcpus"]
    assert drv.reconfigure(vmx, {"numvcpus": "2"}, force=True) == ["numvcpus"]
    assert drv.read_config(vmx).get("numvcpus") == "2"
    drv.stop(vmx, hard=True)
    assert not drv.is_running(vmx) and drv.list_running() == []
    with pytest.raises(LabctlError, match="not powered on"):
        drv.stop(vmx, hard=True)


def test_attach_media_puts_the_iso_on_the_cd_and_disconnects_it(make_driver, folder, tmp_path, iso):
    drv, vmx = _golden(make_driver, folder, tmp_path, iso)
    assert drv.attach_media(vmx, iso) == []  # created with it: nothing differs
    assert drv.attach_media(vmx, None) == ["sata0:1.startConnected"]
    assert drv.read_config(vmx).get("sata0:1.startConnected") == "FALSE"
    other = tmp_path / "ks.iso"
    other.write_bytes(b"KS" * 4096)
    assert "sata0:1.fileName" in drv.attach_media(vmx, other)
    assert drv.read_config(vmx).get("sata0:1.fileName").endswith("-ks.iso")


def _vm_outside(session, mode, name):
    """A VM of the same name that labctl did not make: the datacenter's root vm folder, the datastore's root."""
    from pyVmomi import vim

    content = session.content
    dc = content.searchIndex.FindByInventoryPath("DC0") if mode == "vcenter" else content.rootFolder.childEntity[0]
    compute = next(e for e in dc.hostFolder.childEntity if isinstance(e, vim.ComputeResource))
    spec = vim.vm.ConfigSpec(name=name, guestId="otherGuest", numCPUs=1, memoryMB=128,
                             files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"))
    task = dc.vmFolder.CreateVM_Task(config=spec, pool=compute.resourcePool)
    return session.wait(task, f"creating {name} outside the lab")


def test_delete_only_inside_the_labs_folder(make_driver, folder, tmp_path, iso, session, mode):
    name = f"outsider{abs(hash(folder)) % 10000}"
    outsider = _vm_outside(session, mode, name)
    drv, vmx = _golden(make_driver, folder, tmp_path, iso)
    with pytest.raises(LabctlError, match=f"{name}: no such VM in the lab's folder"):
        drv.delete_vm(tmp_path / "state" / name / f"{name}.vmx")
    # a VM the lab listed that is no longer where labctl put it (moved out by someone): refused on a fresh read
    drv.vms()[name] = type(drv.find(vmx))(name, outsider, "[LocalDS_0] elsewhere.vmx")
    with pytest.raises(RefusedError, match=f"{name}: refusing to delete a VM outside the lab's folder"):
        drv.delete_vm(tmp_path / "state" / name / f"{name}.vmx")
    assert outsider.name == name  # still there
    drv.delete_vm(vmx)
    assert make_driver(folder, tmp_path / "state").find(vmx) is None
    with pytest.raises(LabctlError, match="no such VM"):
        drv.delete_vm(vmx)


@pytest.mark.parametrize("mode", ["esx"])  # the datastore-directory rule is the standalone host's
def test_on_a_host_the_folder_marker_is_required(make_driver, folder, tmp_path, iso, session, mode):
    drv, vmx = _golden(make_driver, folder, tmp_path, iso)
    ref = drv.find(vmx)
    from pyVmomi import vim

    task = ref.obj.ReconfigVM_Task(spec=vim.vm.ConfigSpec(
        extraConfig=[vim.option.OptionValue(key=vf.FOLDER_KEY, value="labs/someone-else")]))
    session.wait(task, "changing the marker")
    with pytest.raises(RefusedError, match="refusing to delete"):
        drv.delete_vm(vmx)


def test_a_failing_vm_is_named_and_the_others_finish(make_driver, folder, tmp_path, iso, sim, session):
    from labctl.vsphere.target.session import TaskRunner

    vmxs = render("esxi67-70-mixed", tmp_path / "state", iso)
    drv = make_driver(folder, tmp_path / "state")
    runner = TaskRunner(workers=3)
    out = runner.run(list(vmxs), lambda n: drv.create_disk(vmxs[n], 16, "pvscsi"), what="create")
    assert [o.ok for o in out] == [True] * len(vmxs)
    sim.inject_fault("PowerOnVM_Task", "esxi70", "InsufficientResourcesFault", "not enough memory")
    seen: list[tuple[str, str]] = []
    runner = TaskRunner(workers=3, progress=lambda n, t: seen.append((n, t)))
    out = runner.run(list(vmxs), lambda n: drv.start(vmxs[n]), what="power on")
    bad = [o for o in out if not o.ok]
    assert [o.name for o in bad] == ["esxi70"]
    assert "esxi70: powering on failed: InsufficientResourcesFault" in bad[0].error.message
    assert sorted(p.stem for p in drv.list_running()) == sorted(n for n in vmxs if n != "esxi70")
    assert ("esxi70", "power on…") in seen and any(n == "esxi70" and t.startswith("failed") for n, t in seen)


def test_every_call_is_counted(make_driver, folder, tmp_path, iso, sim, session):
    vmxs = render("esxi8-ha-trio", tmp_path / "state", iso)
    drv = make_driver(folder, tmp_path / "state")
    drv.placement()
    sim.reset_counts()
    before = session.total - session.calls["HTTP PUT"]
    drv.create_disk(vmxs["esxi-a"], 40, "pvscsi")
    drv.snapshot(vmxs["esxi-a"], "base")
    seen = sum(sim.call_counts().values())
    assert session.total - session.calls["HTTP PUT"] - before == seen


def test_version_and_verify(make_driver, folder, mode):
    drv = make_driver(folder)
    drv.verify()
    v = drv.version()
    assert v.product == ("vCenter Server" if mode == "vcenter" else "ESXi")
    assert v.version.startswith("6.")


def test_wrong_placement_is_a_clear_error(session, mode, tmp_path, folder):
    from labctl.errors import EnvironmentProblem
    from labctl.vsphere.target.driver import VsphereDriver

    t = target_for(mode, folder)
    t.datastore = "nope"
    with pytest.raises(EnvironmentProblem, match="no datastore 'nope'"):
        VsphereDriver(session, t, tmp_path).verify()
    if mode == "vcenter":
        t = target_for(mode, folder)
        t.cluster = "Compute"
        with pytest.raises(EnvironmentProblem, match="has no cluster 'Compute'"):
            VsphereDriver(session, t, tmp_path).verify()


def _lab_on_target(make_driver, folder, tmp_path, iso, mode):
    """esx35-ha-pair rendered into its vm_dir and created on the target: golden esx1, its clone esx2, vcenter."""
    from labctl.plan.context import rebase
    from labctl.render.lab import clone_settings
    from labctl.topology import load_topology
    from tests.vsphere.target.conftest import TOPOLOGIES

    topo = rebase(load_topology(TOPOLOGIES / "esx35-ha-pair.yaml"), tmp_path / "vms")
    vmxs = render("esx35-ha-pair", tmp_path / "vms", iso)
    drv = make_driver(folder, tmp_path / "vms")
    for name, vmx in vmxs.items():
        drv.create_disk(vmx, 8, "lsilogic")
    drv.snapshot(vmxs["esx1"], "base")
    clone = topo.host("esx2")
    drv.clone(vmxs["esx1"], clone.vmx_path, snapshot="base", clone_name="esx2")
    drv.reconfigure(clone.vmx_path, clone_settings(topo, clone))
    return topo, drv


def _inventory(session, mode):
    """Every VM name on the simulator (the inventory a user would look at)."""
    from pyVmomi import vim

    view = session.content.viewManager.CreateContainerView(session.content.rootFolder, [vim.VirtualMachine], True)
    try:
        return sorted(vm.name for vm in view.view)
    finally:
        view.Destroy()


def test_down_and_destroy_touch_only_the_labs_folder(make_driver, folder, tmp_path, iso, session, mode):
    import argparse
    import io
    import json

    from labctl.cli import destroy, down
    from labctl.env import Env
    from labctl.errors import UsageError

    outsider = _vm_outside(session, mode, "esx1")  # same name as a lab VM, outside the folder
    before = _inventory(session, mode)
    topo, drv = _lab_on_target(make_driver, folder, tmp_path, iso, mode)
    made = _inventory(session, mode)
    assert sorted(made) == sorted(before + ['esx1', 'esx2', 'vcenter'])
    for vm in ("esx1", "esx2", "vcenter"):
        drv.start(topo.host(vm).vmx_path if vm != "vcenter" else topo.vms[0].vmx_path)
    outsider_task = outsider.PowerOnVM_Task()
    session.wait(outsider_task, "powering the outsider on")

    out, err = io.StringIO(), io.StringIO()
    env = Env(stdout=out, stderr=err, stdin=io.StringIO(""), environ={}, cwd=tmp_path)
    args = argparse.Namespace(hard=True, json=True, yes=False)
    assert down._stop(args, env, topo, drv, None) == 0
    assert json.loads(out.getvalue())["stopped"] == ["esx2", "esx1", "vcenter"]
    assert str(outsider.runtime.powerState) == "poweredOn"  # not the lab's
    with pytest.raises(UsageError, match="pass --yes"):
        destroy._destroy(args, env, topo, drv, None)  # asks first; no terminal here
    out.truncate(0), out.seek(0)
    args.yes = True
    assert destroy._destroy(args, env, topo, drv, None) == 0
    assert json.loads(out.getvalue())["deleted"] == ["esx2", "esx1", "vcenter"]
    assert _inventory(session, mode) == before  # exactly what labctl made is gone; the outsider esx1 stays
    assert outsider.name == "esx1"
    out.truncate(0), out.seek(0)
    args.json = False
    assert destroy._destroy(args, env, topo, drv, None) == 0  # a second run: nothing there
    assert f"no VMs to delete in folder {folder}" in out.getvalue()


def test_nics_on_the_portgroups_a_target_lab_renders(sim, mode, folder, tmp_path):
    """A target lab's .vmx names each vNIC's portgroup (networkName): standard, or distributed on a vCenter."""
    from pyVmomi import vim

    from labctl.vsphere.client import VSphereClient
    from labctl.vsphere.connection import resolve_target
    from labctl.vsphere.target.driver import VsphereDriver

    client = VSphereClient.connect(resolve_target(settings=None, environ={}, override_url=sim.url_with_credentials))
    try:
        dvpg = "DC0_DVPG0" if mode == "vcenter" else "VM Network"
        vmx = tmp_path / "vms" / "nfs" / "nfs.vmx"
        vmx.parent.mkdir(parents=True)
        vmx.write_text('.encoding = "UTF-8"\nguestOS = "otherlinux-64"\nnumvcpus = "1"\nmemsize = "512"\n'
                       'ide0:0.present = "TRUE"\nide0:0.fileName = "nfs.vmdk"\n'
                       'ethernet0.present = "TRUE"\nethernet0.virtualDev = "e1000"\n'
                       'ethernet0.networkName = "VM Network"\nethernet0.addressType = "static"\n'
                       'ethernet0.address = "00:50:56:3f:00:01"\n'
                       f'ethernet1.present = "TRUE"\nethernet1.virtualDev = "e1000"\nethernet1.networkName = "{dvpg}"\n')
        # the run's one session as the networks stage opened it, the lab's state dir as backends passes it
        drv = VsphereDriver(client, target_for(mode, folder), tmp_path / "vms" / ".labctl")
        assert drv.create_disk(vmx, 1, "ide") is True
        got = drv.read_config(vmx)
        assert (got.get("ethernet0.networkName"), got.get("ethernet1.networkName")) == ("VM Network", dvpg)
        assert got.get("ethernet0.address") == "00:50:56:3f:00:01" and got.get("ide0:0.present") == "TRUE"
        nics = sorted((d for d in drv.find(vmx).obj.config.hardware.device
                       if isinstance(d, vim.vm.device.VirtualEthernetCard)), key=lambda d: d.key)
        if mode == "vcenter":
            assert isinstance(nics[1].backing, vim.vm.device.VirtualEthernetCard.DistributedVirtualPortBackingInfo)
        assert drv.session.calls["CreateVM_Task"] >= 1  # counted on the shared stub
        assert drv.list_running() == [] and drv.vmx_of("nfs") == vmx
        vmx2 = tmp_path / "vms" / "nfs2" / "nfs2.vmx"
        vmx2.parent.mkdir()
        vmx2.write_text(vmx.read_text().replace(f'ethernet1.networkName = "{dvpg}"',
                                                'ethernet1.networkName = "no-such-pg"'))
        with pytest.raises(LabctlError, match="nfs2: ethernet1: datacenter .* has no portgroup 'no-such-pg'"):
            drv.create_disk(vmx2, 1, "ide")
    finally:
        client.close()


def test_install_media_installer_and_kickstart_cd_then_boot_order(make_driver, folder, tmp_path, iso, mode):
    """s10pipe's install media on vSphere: CD 1 the installer, CD 2 the KS image, boot disk then CD."""
    from pyVmomi import vim

    for topology, first, second in (("esxi8-ha-trio", "sata0:1", "sata0:2"), ("esx35-ha-pair", "ide1:0", "ide1:1")):
        vmxs = render(topology, tmp_path / topology, iso)
        drv = make_driver(f"{folder}-{topology}", tmp_path / topology)
        vmx = vmxs["esxi-a" if topology == "esxi8-ha-trio" else "esx1"]
        drv.create_disk(vmx, 8, "pvscsi")
        ks = tmp_path / f"{topology}-ks.iso"
        ks.write_bytes(b"LABCTL-KS" * 3000)
        todo = drv.attach_media(vmx, iso, kickstart=ks)
        assert set(todo) >= {f"{second}.present", f"{second}.fileName", "bios.bootOrder"}
        media = drv.media(vmx)
        assert [(d, (f or "").rsplit("-", 1)[-1], c) for d, f, c in media] == [
            (first, iso.name.rsplit("-", 1)[-1], True), (second, "ks.iso", True)]
        fresh = make_driver(f"{folder}-{topology}", tmp_path / topology)
        assert fresh.read_config(vmx).get("bios.bootOrder") == "hdd,cdrom"
        order = fresh.find(vmx).obj.config.bootOptions.bootOrder
        disk = next(d for d in fresh.find(vmx).obj.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk))
        assert [type(b).__name__.split(".")[-1] for b in order] == ["BootableDiskDevice", "BootableCdromDevice"]
        assert order[0].deviceKey == disk.key
        assert fresh.attach_media(vmx, iso, kickstart=ks) == []  # a second run: nothing differs
        assert sorted(fresh.attach_media(vmx, None)) == [f"{first}.startConnected", f"{second}.startConnected"]
        assert [c for _d, _f, c in fresh.media(vmx)] == [False, False]


def test_reading_changes_nothing(make_driver, folder, tmp_path, sim, session, mode):
    """What plan does (placement, listing, looking a VM up) makes no folder and no call that changes anything."""
    vmxs = render("esxi8-ha-trio", tmp_path / "state")
    sim.reset_counts()
    drv = make_driver(folder, tmp_path / "state")
    drv.verify()
    assert drv.vms() == {} and drv.list_running() == [] and not drv.exists(vmxs["esxi-a"])
    calls = sim.call_counts()
    assert set(calls) <= {"RetrievePropertiesEx", "FindByInventoryPath", "Fetch", "RetrieveServiceContent"}, calls
    if mode == "vcenter":
        assert session.content.searchIndex.FindByInventoryPath(f"DC0/vm/{folder}") is None


def test_plan_names_the_calls_and_makes_none(make_driver, folder, tmp_path, iso, sim, mode):
    vmxs = render("esxi8-ha-trio", tmp_path / "state", iso)
    drv = make_driver(folder, tmp_path / "state")
    drv.verify()
    sim.reset_counts()
    calls = drv.plan_create(vmxs["esxi-a"], 40)
    assert calls[0] == f"FileManager.MakeDirectory [LocalDS_0] {folder}/esxi-a"
    assert calls[1].startswith("HTTP PUT [LocalDS_0] labctl-media/<sha256>-") and calls[1].count(iso.name) == 1
    assert ("vmkernel8Guest, vmx-21, 4 vCPU (2/socket), 12288 MB, efi, nestedHV, pvscsi disk 40 GB thin, "
            "vmxnet3 00:50:56:04:79:37 on VM Network") in calls[2]
    clone = drv.plan_clone(vmxs["esxi-a"], tmp_path / "state" / "esxi-b" / "esxi-b.vmx", snapshot="base")
    assert ("diskMoveType createNewChildDiskBacking" in clone[0]) == (mode == "vcenter")
    assert sim.call_counts() == {}


def test_calls_per_clone_are_bounded(make_driver, folder, tmp_path, iso, session):
    """A linked clone with its settings costs at most 10 vSphere calls, a power-on 3, whatever the lab's size."""
    drv, src = _golden(make_driver, folder, tmp_path, iso)
    drv.snapshot(src, "base")
    for i in range(3):
        dst = tmp_path / "state" / f"c{i}" / f"c{i}.vmx"
        before = session.total
        drv.clone(src, dst, snapshot="base", clone_name=f"c{i}")
        drv.reconfigure(dst, {"ethernet0.address": f"00:50:56:3a:00:0{i}", "guestinfo.labctl.hostname": f"c{i}"})
        assert session.total - before <= 10
        before = session.total
        drv.start(dst)
        assert session.total - before <= 3


MUTATING = {"CreateVM_Task", "CloneVM_Task", "ReconfigVM_Task", "CreateSnapshot_Task", "PowerOnVM_Task",
            "PowerOffVM_Task", "Destroy_Task", "MakeDirectory", "CreateFolder", "HTTP PUT", "ShutdownGuest"}


def test_a_second_run_changes_nothing(make_driver, folder, tmp_path, iso, sim, mode):
    """The vms/clones/start sequence twice, each run with its own session: the second makes no changing call."""
    from labctl.render.lab import clone_settings

    topo, _drv = _lab_on_target(make_driver, folder, tmp_path, iso, mode)
    first = _drv.session
    again = open_session(sim)
    try:
        drv = make_driver(folder, tmp_path / "vms", sess=again)
        vmxs = {vm.name: vm.vmx_path for vm in (*topo.esx_hosts, *topo.vms)}
        for name in ("esx1", "vcenter"):
            assert drv.create_disk(vmxs[name], 8, "lsilogic") is False
        assert drv.list_snapshots(vmxs["esx1"]) == ["base"]
        clone = topo.host("esx2")
        assert drv.exists(clone.vmx_path)
        assert drv.reconfigure(clone.vmx_path, clone_settings(topo, clone), dry_run=True) == []
        assert drv.attach_media(vmxs["esx1"], iso) == []
        assert set(again.calls) & MUTATING == set(), dict(again.calls)
    finally:
        again.close()
    assert first is not again


def test_power_and_guest_ip(make_driver, folder, tmp_path, iso):
    drv, vmx = _golden(make_driver, folder, tmp_path, iso)
    with pytest.raises(LabctlError, match="esxi-a: the VM is not powered on, so it has no guest IP"):
        drv.guest_ip(vmx, wait=False)
    drv.start(vmx)
    drv.start(vmx)  # already on: nothing to do
    assert drv.session.calls["PowerOnVM_Task"] == 1
    try:
        ip = drv.guest_ip(vmx, wait=False)
    except LabctlError as e:  # nested ESX has no tools IP before its installer ran
        assert "VMware Tools report no IP address" in e.message
    else:
        assert ip.count(".") == 3
    drv.stop(vmx)  # soft: the guest is asked (ShutdownGuest), then labctl waits for poweredOff
    assert not drv.is_running(vmx)
    assert drv.session.calls["ShutdownGuest"] == 1 and drv.session.calls["PowerOffVM_Task"] == 0


def test_what_the_vms_stage_asks(make_driver, folder, tmp_path, iso):
    """has_disk and create_disk_commands: the vms stage's questions, answered from vSphere, not from local files."""
    vmxs = render("esxi8-ha-trio", tmp_path / "state", iso)
    drv = make_driver(folder, tmp_path / "state")
    vmx = vmxs["esxi-a"]
    assert drv.has_disk(vmx) is False
    assert drv.create_disk_commands(vmx, 40, "pvscsi") == drv.plan_create(vmx, 40)
    drv.create_disk(vmx, 40, "pvscsi")
    assert drv.has_disk(vmx) is True and not vmx.with_name("esxi-a.vmdk").exists()


def test_destroy_removes_the_folders_labctl_made_and_only_those(sim_vc, folder, tmp_path):
    """(vCenter only: a standalone host has no inventory folders.) The folders the first VM's CreateFolder made are
    recorded (before the call) and removed again deepest first, each only when empty; a folder that was there
    before (here the parent) stays."""
    import json

    from pyVmomi import vim

    from labctl.vsphere.target.driver import VsphereDriver

    session = open_session(sim_vc)
    content = session.content
    dc = content.searchIndex.FindByInventoryPath("DC0")
    parent = folder.replace("/", "-")  # the user's folder, there before the lab
    dc.vmFolder.CreateFolder(name=parent)
    drv = VsphereDriver(session, target_for("vcenter", f"{parent}/lab/x"), tmp_path / "state")
    drv.lab_folder()
    assert json.loads(drv.folder_record.read_text())["folders"] == [f"{parent}/lab", f"{parent}/lab/x"]
    lab = content.searchIndex.FindByInventoryPath(f"DC0/vm/{parent}/lab")
    keep = lab.CreateFolder(name="users-own")  # not labctl's: its parent is not empty, so it stays too
    assert drv.remove_folders() == [(f"{parent}/lab/x", None), (f"{parent}/lab", "not empty: left as it is")]
    assert content.searchIndex.FindByInventoryPath(f"DC0/vm/{parent}/lab/x") is None
    assert content.searchIndex.FindByInventoryPath(f"DC0/vm/{parent}/lab/users-own") is not None
    assert json.loads(drv.folder_record.read_text())["folders"] == [f"{parent}/lab"]
    session.wait(keep.Destroy_Task(), "removing the user's folder")
    assert drv.remove_folders() == [(f"{parent}/lab", None)]
    assert not drv.folder_record.exists()
    assert isinstance(content.searchIndex.FindByInventoryPath(f"DC0/vm/{parent}"), vim.Folder)
    assert content.searchIndex.FindByInventoryPath(f"DC0/vm/{parent}/lab") is None
    session.close()
