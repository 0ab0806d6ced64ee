"""The simulated vSphere target (labctl/sim/target/ and main.go's target side) against the plain
vSphere API: a vmkernel VM powered on gets a simulated ESX host from its own configuration, powering off stops it,
and what vcsim 0.24.2 would drop (diskMoveType, a clone's extraConfig, extraConfig keys, UpdatePortGroup, guest
variables) is kept and served, so a wrong setting is seen instead of silently passing."""

from __future__ import annotations

import json
import os

import pytest

from labctl.sim import target as T

from tests.vsphere import targetkit as K

pytestmark = [pytest.mark.vcsim, pytest.mark.slow]

MAC = "00:50:56:3f:00:01"


@pytest.fixture(scope="module", params=["vcenter", "esx"])
def tsim(request, tmp_path_factory):
    from labctl.errors import EnvironmentProblem
    from labctl.sim import vcsim as launcher

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    sim = tmp_path_factory.mktemp(f"target-{request.param}")
    request.addfinalizer(lambda: T.stop(sim))  # by PID, also when a test fails
    kwargs = {"datacenter": "DC1", "cluster": "Compute"} if request.param == "vcenter" else {}
    return T.start(sim, mode=request.param, datastore="vsanDatastore", **kwargs)


@pytest.fixture(scope="module")
def si(tsim):
    si = K.connect(tsim)
    yield si
    si.content.sessionManager.Logout()


def install_disk(tsim, vm, name, ip="192.168.69.11"):
    """What an install leaves on the VM's disk (the installer's own tests cover how it gets there)."""
    from labctl.sim import state as S

    st = S.fresh_install(name, "esxi", "8.0u2", nic_macs=[MAC], ip=ip, netmask="255.255.255.0")
    S.save_state(T.target_dir(tsim.sim_dir) / "disks" / vm._moId, st)


def endpoints(tsim):
    try:
        return json.loads((tsim.sim_dir / "endpoints.json").read_text())["hosts"]
    except FileNotFoundError:
        return {}


def alive(pid):
    """Running (an exited child that PID 1 has not reaped yet is a zombie, not a process that runs)."""
    try:
        stat = open(f"/proc/{pid}/stat").read()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def test_physical_side_has_the_targets_names(tsim, si):
    dc, _, _, host, ds = K.placement(si)
    assert ds.name == "vsanDatastore"
    if tsim.mode == "vcenter":
        assert dc.name == "DC1" and dc.hostFolder.childEntity[0].name == "Compute"
        assert si.content.about.apiType == "VirtualCenter"
    else:
        assert si.content.about.apiType == "HostAgent"


def test_power_on_boots_a_host_from_the_vms_config_and_power_off_stops_it(tsim, si):
    from labctl.sim import lab
    from labctl.sim import state as S

    vm = K.create_vm(si, "esxa", macs=["00:50:56:3f:0a:01"])
    install_disk(tsim, vm, "esxa", ip="192.168.69.21")
    K.wait(vm.PowerOnVM_Task())
    hosts = K.until(lambda: endpoints(tsim).get("esxa") and endpoints(tsim), what="esxa in endpoints.json")
    e = hosts["esxa"]
    assert e["address"] == "192.168.69.21"  # where its own configuration puts it
    assert lab.ssh_banner_ok(e["port"])
    st = S.load_state(tsim.sim_dir / "hosts" / "esxa")
    assert st.nics[0].mac == "00:50:56:3f:0a:01"  # the VM's MAC, not the one the disk was installed with
    pid = e["pid"]
    K.wait(vm.PowerOffVM_Task())
    K.until(lambda: "esxa" not in endpoints(tsim), what="esxa gone from endpoints.json")
    K.until(lambda: not alive(pid), what="hostd stopped")
    K.wait(vm.Destroy_Task())
    assert not (T.target_dir(tsim.sim_dir) / "disks" / vm._moId).exists()  # the disk went with the VM


def test_a_vm_that_is_no_esx_host_gets_no_host(tsim, si):
    vm = K.create_vm(si, "linuxvm", guest_id="otherLinux64Guest")
    install_disk(tsim, vm, "linuxvm")
    K.wait(vm.PowerOnVM_Task())
    K.wait(vm.PowerOffVM_Task())
    assert "linuxvm" not in endpoints(tsim)
    assert not (tsim.sim_dir / "hosts" / "linuxvm").exists()


def test_a_blank_disk_without_media_boots_nothing(tsim, si):
    vm = K.create_vm(si, "blank")
    K.wait(vm.PowerOnVM_Task())
    log = T.target_dir(tsim.sim_dir) / "logs" / "blank.log"
    K.until(log.exists, what="the console log")
    assert "blank" not in endpoints(tsim)
    K.wait(vm.PowerOffVM_Task())


def test_standalone_host_has_no_clone_vm_but_a_child_disk_starts_from_the_snapshot(tsim, si):
    from pyVmomi import vim, vmodl

    src = K.create_vm(si, "gold-h")
    install_disk(tsim, src, "gold-h")
    snap = K.wait(src.CreateSnapshot_Task(name="base", memory=False, quiesce=False))
    if tsim.mode == "esx":
        with pytest.raises(vmodl.fault.NotSupported):  # hostd has no CloneVM_Task
            K.wait(src.CloneVM_Task(folder=src.parent, name="x", spec=vim.vm.CloneSpec(
                snapshot=snap, location=vim.vm.RelocateSpec(diskMoveType="createNewChildDiskBacking"))))
    clone = K.host_linked_clone(si, src, snap, "esx-h2")
    disk = [d for d in clone.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][0]
    assert disk.backing.parent is not None
    disks = T.target_dir(tsim.sim_dir) / "disks"
    assert json.loads((disks / clone._moId / "state.json").read_text())["name"] == "gold-h"
    assert json.loads((disks / clone._moId / "clone-of.json").read_text()) == {
        "source_vm": src._moId, "source": "gold-h", "snapshot": snap._moId}
    K.wait(clone.PowerOnVM_Task())
    K.until(lambda: "esx-h2" in endpoints(tsim), what="the clone's host")
    from labctl.sim import state as S

    st = S.load_state(tsim.sim_dir / "hosts" / "esx-h2")
    assert st.name == "esx-h2" and st.boot_count == 1  # its own name, and its first boot
    assert st.ssh_address == "192.168.69.11"  # still its source's address: nobody gave it its own yet
    K.wait(clone.PowerOffVM_Task())


@pytest.mark.parametrize("tsim", ["vcenter"], indirect=True)  # a standalone host has no CloneVM_Task (above)
def test_linked_clone_is_recorded_and_its_disk_has_a_parent(tsim, si):
    from pyVmomi import vim

    src = K.create_vm(si, "gold", extra={"guestinfo.labctl.role": "golden"})
    install_disk(tsim, src, "gold")
    snap = K.wait(src.CreateSnapshot_Task(name="base", memory=False, quiesce=False))
    disks = T.target_dir(tsim.sim_dir) / "disks"
    assert (disks / f"{src._moId}@{snap._moId}" / "state.json").is_file()
    spec = vim.vm.CloneSpec(snapshot=snap, powerOn=False, template=False,
                            location=vim.vm.RelocateSpec(diskMoveType="createNewChildDiskBacking"),
                            config=vim.vm.ConfigSpec(extraConfig=[
                                vim.option.OptionValue(key="guestinfo.labctl.hostname", value="esx2")]))
    clone = K.wait(src.CloneVM_Task(folder=src.parent, name="esx2", spec=spec))
    disk = [d for d in clone.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][0]
    src_disk = [d for d in src.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][0]
    assert disk.backing.parent is not None and disk.backing.parent.fileName == src_disk.backing.fileName
    extra = {o.key: o.value for o in clone.config.extraConfig}
    assert extra["guestinfo.labctl.hostname"] == "esx2"
    assert extra["guestinfo.labctl.role"] == "golden"  # inherited from the source, as vSphere copies it
    rec = [c for c in tsim.vcsim().clones() if c["clone"] == clone._moId]
    assert rec == [{"clone": clone._moId, "name": "esx2", "source": src._moId, "snapshot": snap._moId,
                    "diskMoveType": "createNewChildDiskBacking", "linked": True}]
    data = json.loads((disks / clone._moId / "state.json").read_text())
    assert data["name"] == "gold"  # the source's disk as of the snapshot; renamed at its first power-on
    assert json.loads((disks / clone._moId / "clone-of.json").read_text())["snapshot"] == snap._moId


@pytest.mark.parametrize("tsim", ["vcenter"], indirect=True)  # a standalone host has no CloneVM_Task
def test_a_wrong_disk_move_type_is_seen_not_dropped(tsim, si):
    from pyVmomi import vim, vmodl

    src = K.create_vm(si, "gold2")
    snap = K.wait(src.CreateSnapshot_Task(name="base", memory=False, quiesce=False))
    full = K.wait(src.CloneVM_Task(folder=src.parent, name="full", spec=vim.vm.CloneSpec(
        snapshot=snap, location=vim.vm.RelocateSpec(diskMoveType="moveAllDiskBackingsAndDisallowSharing"))))
    disk = [d for d in full.config.hardware.device if isinstance(d, vim.vm.device.VirtualDisk)][0]
    assert disk.backing.parent is None  # a full copy: whoever checks for a linked clone sees it is not one
    rec = [c for c in tsim.vcsim().clones() if c["clone"] == full._moId][0]
    assert rec["linked"] is False and rec["diskMoveType"] == "moveAllDiskBackingsAndDisallowSharing"
    with pytest.raises(vmodl.fault.InvalidArgument) as e:  # a linked clone needs the snapshot
        K.wait(src.CloneVM_Task(folder=src.parent, name="nosnap", spec=vim.vm.CloneSpec(
            location=vim.vm.RelocateSpec(diskMoveType="createNewChildDiskBacking"))))
    assert e.value.invalidProperty == "spec.snapshot"
    with pytest.raises(vmodl.fault.InvalidArgument) as e:
        K.wait(src.CloneVM_Task(folder=src.parent, name="typo", spec=vim.vm.CloneSpec(
            snapshot=snap, location=vim.vm.RelocateSpec(diskMoveType="createNewChildDisk"))))
    assert e.value.invalidProperty == "spec.location.diskMoveType"
    names = {v.name for v in src.parent.childEntity}
    assert "nosnap" not in names and "typo" not in names


def test_reconfigure_replaces_extra_config_keys_and_an_empty_value_removes(tsim, si):
    from pyVmomi import vim

    vm = K.create_vm(si, "extra", extra={"guestinfo.a": "1", "guestinfo.b": "2"})
    K.wait(vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(extraConfig=[
        vim.option.OptionValue(key="guestinfo.a", value="9"), vim.option.OptionValue(key="guestinfo.b", value="")])))
    keys = [o.key for o in vm.config.extraConfig]
    assert keys.count("guestinfo.a") == 1 and "guestinfo.b" not in keys
    assert {o.key: o.value for o in vm.config.extraConfig}["guestinfo.a"] == "9"


def test_update_port_group_is_applied(tsim, si):
    from pyVmomi import vim

    _, _, _, host, _ = K.placement(si)
    ns = host.configManager.networkSystem
    ns.AddVirtualSwitch(vswitchName="labctl-vs", spec=vim.host.VirtualSwitch.Specification(numPorts=64))
    pg = vim.host.PortGroup.Specification(name="lab-seg", vlanId=0, vswitchName="labctl-vs",
                                          policy=vim.host.NetworkPolicy())
    ns.AddPortGroup(portgrp=pg)
    pg.policy = vim.host.NetworkPolicy(security=vim.host.NetworkPolicy.SecurityPolicy(
        allowPromiscuous=True, forgedTransmits=True, macChanges=True))
    ns.UpdatePortGroup(pgName="lab-seg", portgrp=pg)
    got = [p for p in ns.networkInfo.portgroup if p.spec.name == "lab-seg"][0].spec.policy.security
    assert (got.allowPromiscuous, got.forgedTransmits, got.macChanges) == (True, True, True)
    with pytest.raises(vim.fault.NotFound):
        ns.UpdatePortGroup(pgName="no-such-pg", portgrp=vim.host.PortGroup.Specification(
            name="no-such-pg", vlanId=0, vswitchName="labctl-vs", policy=vim.host.NetworkPolicy()))


def test_uploaded_iso_is_the_file_behind_the_cdrom(tsim, si, tmp_path):
    iso = tmp_path / "media.iso"
    iso.write_bytes(b"CD001" * 1000)
    ds_path = K.upload(tsim, si, iso, "labctl-media/abc123.iso")
    vm = K.create_vm(si, "withcd", isos=[ds_path, "[vsanDatastore] labctl-media/missing.iso"])
    facts = [v for v in tsim.vcsim().vms()["vms"] if v["moid"] == vm._moId][0]
    cfg = T.vmx_config(facts)
    with open(cfg["sata0:1.fileName"], "rb") as f:
        assert f.read() == iso.read_bytes()
    assert cfg["sata0:1.deviceType"] == "cdrom-image" and cfg["sata0:1.startConnected"] == "TRUE"
    assert not os.path.exists(cfg["sata0:2.fileName"])
    assert cfg["bios.bootOrder"] == "hdd,cdrom" and cfg["firmware"] == "efi" and cfg["guestOS"] == "vmkernel8"
    assert cfg["ethernet0.addressType"] == "static" and cfg["ethernet0.address"] == MAC
    assert cfg["ethernet0.virtualDev"] == "vmxnet3" and "govcsim" not in cfg


def test_guest_variables_set_in_the_host_reach_the_vms_config(tsim, si):
    vm = K.create_vm(si, "gv", macs=["00:50:56:3f:0b:01"])
    install_disk(tsim, vm, "gv", ip="192.168.69.31")
    K.wait(vm.PowerOnVM_Task())
    K.until(lambda: "gv" in endpoints(tsim), what="gv up")
    gv = tsim.sim_dir / "hosts" / "gv" / "guestvars.json"
    data = json.loads(gv.read_text()) if gv.exists() else {"config": {}}
    data["runtime"] = {"guestinfo.labctl.hostkey": "ssh-rsa AAAAB3"}
    gv.write_text(json.dumps(data))  # what the guest's vmtoolsd info-set writes in the simulator
    K.until(lambda: {o.key: o.value for o in vm.config.extraConfig}.get("guestinfo.labctl.hostkey")
            == "ssh-rsa AAAAB3", what="the guest variable in extraConfig")
    K.wait(vm.PowerOffVM_Task())


def test_stop_leaves_no_process(tmp_path):
    from labctl.errors import EnvironmentProblem
    from labctl.sim import vcsim as launcher

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    t = T.start(tmp_path, mode="esx")
    try:
        pids = [r["pid"] for r in T.records(tmp_path)]
        assert len(pids) == 2 and T.is_running(tmp_path)
        si = K.connect(t)
        vm = K.create_vm(si, "h1")
        install_disk(t, vm, "h1")
        K.wait(vm.PowerOnVM_Task())
        K.until(lambda: "h1" in endpoints(t), what="h1 up")
        pids += [r["pid"] for r in T._read(T.target_dir(tmp_path) / T.HOSTS)]
        assert len(pids) == 3
    finally:
        T.stop(tmp_path)
    assert not [p for p in pids if alive(p)]
    assert not T.is_running(tmp_path)


def test_a_topologys_target_gives_the_physical_side_and_its_endpoint(tmp_path):
    from labctl.errors import EnvironmentProblem
    from labctl.sim import vcsim as launcher
    from types import SimpleNamespace as VsphereTarget  # the fields of topology.model.VsphereTarget it reads

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    target = VsphereTarget(host="vcenter.example.lab", datastore="vsanDatastore", folder="labs/x", datacenter="DC1",
                           cluster="Compute", user="administrator@vsphere.local",
                           portgroups=(("mgmt", "Lab-Mgmt"),))
    try:
        t, started = T.ensure_for(tmp_path, target)
        assert started and t.mode == "vcenter" and t.user == "administrator@vsphere.local"
        entry = json.loads((tmp_path / "endpoints.json").read_text())["target"]
        assert entry["url"] == t.url and "password" not in entry
        assert t.password not in (tmp_path / "endpoints.json").read_text()
        assert os.stat(entry["password_file"]).st_mode & 0o777 == 0o600
        si = K.connect(t)
        _, _, _, host, _ = K.placement(si)
        assert "Lab-Mgmt" in [p.spec.name for p in host.configManager.networkSystem.networkInfo.portgroup]
        again, started = T.ensure_for(tmp_path, target)
        assert not started and again.pid == t.pid
    finally:
        T.stop(tmp_path)
    assert "target" not in json.loads((tmp_path / "endpoints.json").read_text())


def test_a_blank_vm_installs_from_the_uploaded_iso_and_kickstart(tsim, si, tmp_path):
    """The golden host's way onto vSphere: the patched installer and the kickstart CD uploaded to the datastore,
    attached as two CD-ROMs; at power-on the simulated installer reads them through the datastore paths."""
    installer = pytest.importorskip("labctl.sim.installer", reason="the simulated installer (issue 10) is not here")
    from labctl.iso import synthetic
    from labctl.iso.kickstart import write_kickstart_iso
    from labctl.iso.patch import patch_copy
    from labctl.sim import lab
    from labctl.sim import state as S

    src, patched, ks = tmp_path / "src.iso", tmp_path / "patched.iso", tmp_path / "ks.iso"
    synthetic.write_esxi_iso(src, "8.0u2")
    patch_copy(src, patched)
    write_kickstart_iso(ks, "vmaccepteula\ninstall --firstdisk --overwritevmfs\n"
                            "rootpw --iscrypted $6$salt$" + "x" * 86 + "\n"
                            "network --bootproto=static --ip=192.168.69.41 --netmask=255.255.255.0 --hostname=inst1\n"
                            "reboot\n%firstboot --interpreter=busybox\nvim-cmd hostsvc/enable_ssh\n"
                            "vim-cmd hostsvc/start_ssh\n")
    iso_path = K.upload(tsim, si, patched, "labctl-media/patched-8.0u2.iso")
    ks_path = K.upload(tsim, si, ks, "labctl-media/inst1-ks.iso")
    vm = K.create_vm(si, "inst1", macs=["00:50:56:3f:0c:01"], isos=[iso_path, ks_path])
    K.wait(vm.PowerOnVM_Task())
    e = K.until(lambda: endpoints(tsim).get("inst1"), timeout=60, what="the installed host")
    log = (T.target_dir(tsim.sim_dir) / "logs" / "inst1.log").read_text()
    assert e["address"] == "192.168.69.41", log
    st = S.load_state(tsim.sim_dir / "hosts" / "inst1")
    assert st.version.startswith("8.0") and st.hostname.startswith("inst1")
    assert lab.ssh_banner_ok(e["port"])
    assert installer is not None
    K.wait(vm.PowerOffVM_Task())
    K.until(lambda: "inst1" not in endpoints(tsim), what="inst1 stopped")


def test_sim_down_stops_the_simulated_target_too(tmp_path, run_cli):
    from labctl.errors import EnvironmentProblem
    from labctl.sim import vcsim as launcher

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    topo = os.path.join(os.path.dirname(__file__), "..", "..", "topologies", "esxi8-ha-trio.yaml")
    try:
        T.start(tmp_path, mode="esx")
        pids = [r["pid"] for r in T.records(tmp_path)]
        r = run_cli("sim", "down", topo, "--sim-dir", str(tmp_path), environ={"HOME": str(tmp_path)})
        assert r.status == 0, r.err
        assert "stopped 2 process(es)" in r.out
    finally:
        T.stop(tmp_path)
    assert not [p for p in pids if alive(p)] and not T.is_running(tmp_path)


def test_a_host_is_published_at_the_address_its_configuration_has_now(tsim, si):
    """A clone re-addressed by its identity script answers at its new vmk0 address, not the one it was installed
    with (ARP finds the interface that has the address)."""
    from labctl.sim import state as S

    vm = K.create_vm(si, "readdr", macs=["00:50:56:3f:0d:01"])
    st = S.fresh_install("readdr", "esxi", "8.0u2", nic_macs=[MAC], ip="192.168.69.51", netmask="255.255.255.0")
    st.interface(st.management_name).ip = "192.168.69.52"  # what `esxcli network ip interface ipv4 set` leaves
    S.sync_esx_conf(st)  # ... in esx.conf, saved by auto-backup.sh for the next boot
    st.persisted_etc = S.etc_snapshot(st)
    S.save_state(T.target_dir(tsim.sim_dir) / "disks" / vm._moId, st)
    K.wait(vm.PowerOnVM_Task())
    e = K.until(lambda: endpoints(tsim).get("readdr"), what="readdr up")
    assert e["address"] == "192.168.69.52"
    K.wait(vm.PowerOffVM_Task())


def test_a_lost_watcher_is_replaced_and_finds_the_running_vms(tmp_path):
    """The watcher reconciles from the simulator's whole state: a new one adopts what is on and stops what went
    off while no watcher ran."""
    from labctl.errors import EnvironmentProblem
    from labctl.sim import lab
    from labctl.sim import vcsim as launcher

    try:
        launcher.build()
    except EnvironmentProblem as e:
        pytest.skip(f"vcsim unavailable: {e.message}")
    target = type("Target", (), {"datastore": "vsanDatastore", "user": "root"})()
    try:
        t, _ = T.ensure_for(tmp_path, target)
        si = K.connect(t)
        vm = K.create_vm(si, "w1")
        install_disk(t, vm, "w1")
        K.wait(vm.PowerOnVM_Task())
        K.until(lambda: "w1" in endpoints(t), what="w1 up")
        watcher = next(r for r in T.records(tmp_path) if r["kind"] == "vcsim-watch")
        lab.stop_process(watcher)  # the watcher dies; vcsim and the host keep running
        K.wait(vm.PowerOffVM_Task())  # ... and the VM goes off while nobody watches
        again, started = T.ensure_for(tmp_path, target)
        assert not started and again.pid == t.pid
        K.until(lambda: "w1" not in endpoints(t), what="the new watcher stopping w1's host")
        K.wait(vm.PowerOnVM_Task())
        K.until(lambda: "w1" in endpoints(t), what="w1 up again")
    finally:
        T.stop(tmp_path)
    assert not T.is_running(tmp_path)
