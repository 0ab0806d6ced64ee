"""The simulated Workstation: real .vmx/.vmsd files under a sim dir, clones of simulated ESX disks, power state."""

from __future__ import annotations

import pytest

from labctl.errors import LabctlError, RefusedError
from labctl.render import vmx as vmxlib
from labctl.sim import state as S
from labctl.workstation import clonecfg
from labctl.workstation.clonecfg import CloneSettings, NicSetting
from labctl.workstation.driver import VmrunError
from labctl.sim.workstation import DiskOnlyHosts, SimDriver, vnic_macs

VMX = """\
.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "7"
displayName = "{name}"
guestOS = "vmkernel"
memsize = "2048"
ethernet0.present = "TRUE"
ethernet0.connectionType = "pvn"
ethernet0.addressType = "static"
ethernet0.address = "{mac0}"
ethernet1.present = "TRUE"
ethernet1.connectionType = "custom"
ethernet1.vnet = "vmnet2"
ethernet1.addressType = "static"
ethernet1.address = "{mac1}"
"""


@pytest.fixture
def power_log():
    return []


@pytest.fixture
def sim(tmp_path, power_log):
    hosts = DiskOnlyHosts(
        tmp_path / "sim" / "hosts",
        on_power_on=lambda n: power_log.append(("on", n)),
        on_power_off=lambda n, hard: power_log.append(("off", n, hard)),
    )
    d = SimDriver(tmp_path / "sim", hosts)
    d.verify()
    return d


def install_host(d: SimDriver, name: str, flavor: str, version: str, macs: tuple[str, str], ip: str):
    vmx = d.vmx_path(name)
    vmx.parent.mkdir(parents=True)
    vmx.write_text(VMX.format(name=name, mac0=macs[0], mac1=macs[1]))
    st = S.fresh_install(name, flavor, version, nic_macs=list(macs), ip=ip, netmask="255.255.255.0")
    S.save_state(d.hosts.host_dir(name), st)
    return vmx


def clone_settings(name, macs):
    return CloneSettings(
        name, (NicSetting(0, macs[0], "pvn", pvn_id="52 aa"), NicSetting(1, macs[1], "custom", vnet="vmnet2"))
    )


def test_start_stop_list_like_vmrun(sim, power_log):
    vmx = install_host(
        sim, "esx1", "esx", "3.5u5", ("00:50:56:01:00:01", "00:50:56:01:01:01"), "192.168.69.11"
    )
    assert sim.list_running() == []
    sim.start(vmx)
    sim.start(vmx)  # already running: no error, no second power-on
    assert sim.list_running() == [vmx] and sim.is_running(vmx)
    assert (vmx.parent / "esx1.vmx.lck").is_dir()
    assert power_log == [("on", "esx1")]
    sim.stop(vmx, hard=True)
    assert power_log[-1] == ("off", "esx1", True) and sim.list_running() == []
    with pytest.raises(VmrunError) as ei:
        sim.stop(vmx)
    assert ei.value.not_powered_on and str(vmx) in ei.value.message
    with pytest.raises(VmrunError) as ei:
        sim.start(sim.vmx_path("ghost"))
    assert ei.value.cannot_open


def test_refuses_paths_outside_the_sim(sim, tmp_path):
    real = tmp_path / "real" / "esx1.vmx"
    real.parent.mkdir()
    real.write_text("x")
    with pytest.raises(LabctlError, match="outside the simulated Workstation"):
        sim.start(real)


def test_linked_clone_copies_the_disk_and_takes_the_vmx_macs_at_power_on(sim):
    macs1 = ("00:50:56:01:00:01", "00:50:56:01:01:01")
    esx1 = install_host(sim, "esx1", "esx", "3.5u5", macs1, "192.168.69.11")
    sim.start(esx1)
    esx1_state = S.load_state(sim.hosts.host_dir("esx1"))
    sim.stop(esx1)
    esx2 = sim.vmx_path("esx2")
    with pytest.raises(VmrunError, match="Invalid snapshot name 'base'"):
        sim.clone(esx1, esx2, snapshot="base", clone_name="esx2")
    macs2 = ("00:50:56:01:00:02", "00:50:56:01:01:02")
    done = clonecfg.ensure_linked_clone(
        sim, esx1, esx2, snapshot="base", settings=clone_settings("esx2", macs2)
    )
    assert len(done) == 3
    assert sim.list_snapshots(esx1) == ["base"]
    assert 'snapshot0.displayName = "base"' in esx1.with_suffix(".vmsd").read_text()
    assert sim.clone_parent(esx2) == esx1
    doc = vmxlib.read(esx2)
    assert doc["displayName"] == "esx2" and doc["uuid.action"] == "create"
    assert vnic_macs(doc) == list(macs2)
    with pytest.raises(RefusedError):
        sim.clone(esx1, esx2, snapshot="base", clone_name="esx2")

    sim.start(esx2)
    st2 = S.load_state(sim.hosts.host_dir("esx2"))
    assert st2.name == "esx2"
    assert [n.mac for n in st2.nics] == list(macs2)  # vNICs from the clone's .vmx
    # ... but the disk came from esx1: the service console keeps esx1's MAC and the system UUID is the same —
    # exactly the duplicates `labctl macs` has to find and repair.
    assert st2.interface("vswif0").mac == esx1_state.interface("vswif0").mac
    assert st2.system_uuid == esx1_state.system_uuid
    assert sorted(p.name for p in sim.list_running()) == ["esx2.vmx"]


def test_esxi_clone_vmk0_keeps_the_parent_mac(sim):
    macs1 = ("00:50:56:02:00:01", "00:50:56:02:01:01")
    a = install_host(sim, "esxi-a", "esxi", "8.0", macs1, "172.20.30.11")
    sim.start(a)
    assert S.load_state(sim.hosts.host_dir("esxi-a")).interface("vmk0").mac == macs1[0]
    b = sim.vmx_path("esxi-b")
    macs2 = ("00:50:56:02:00:02", "00:50:56:02:01:02")
    clonecfg.ensure_linked_clone(sim, a, b, snapshot="base", settings=clone_settings("esxi-b", macs2))
    sim.start(b)
    st = S.load_state(sim.hosts.host_dir("esxi-b"))
    assert st.nics[0].mac == macs2[0]
    assert st.interface("vmk0").mac == macs1[0]  # esx.conf copied from esxi-a: vmk0 is a duplicate
    assert sim.guest_ip(b) == "172.20.30.11"


def test_clone_uses_the_disk_as_it_was_at_the_snapshot(sim):
    esx1 = install_host(
        sim, "esx1", "esx", "3.5u5", ("00:50:56:01:00:01", "00:50:56:01:01:01"), "192.168.69.11"
    )
    sim.snapshot(esx1, "base")
    st = S.load_state(sim.hosts.host_dir("esx1"))
    st.files["/etc/after-snapshot"] = "written later\n"
    S.save_state(sim.hosts.host_dir("esx1"), st)
    sim.clone(esx1, sim.vmx_path("esx2"), snapshot="base", clone_name="esx2")
    assert "/etc/after-snapshot" not in S.load_state(sim.hosts.host_dir("esx2")).files


def test_plain_vm_and_guest_ip_without_tools(sim, power_log):
    vmx = sim.vmx_path("vcenter")
    vmx.parent.mkdir(parents=True)
    vmx.write_text('.encoding = "UTF-8"\ndisplayName = "vcenter"\n')
    sim.start(vmx)
    assert power_log == []  # not a simulated ESX host: only the power state changes
    with pytest.raises(VmrunError, match="VMware Tools are not running"):
        sim.guest_ip(vmx)


def test_delete_refuses_running_vm_and_linked_parent(sim):
    esx1 = install_host(
        sim, "esx1", "esx", "3.5u5", ("00:50:56:01:00:01", "00:50:56:01:01:01"), "192.168.69.11"
    )
    sim.snapshot(esx1, "base")
    esx2 = sim.vmx_path("esx2")
    sim.clone(esx1, esx2, snapshot="base", clone_name="esx2")
    sim.start(esx2)
    with pytest.raises(VmrunError, match="in use"):
        sim.delete_vm(esx2)
    with pytest.raises(VmrunError, match="parent of linked clone"):
        sim.delete_vm(esx1)
    sim.stop(esx2)
    sim.delete_vm(esx2)
    assert not esx2.parent.exists() and not sim.hosts.host_dir("esx2").exists()
    sim.delete_vm(esx1)
    assert sim.list_running() == []


def test_guest_variables_from_the_vmx_then_info_set_and_gone_at_power_off(sim):
    """guestinfo.* of the .vmx at power-on, `vmtoolsd --cmd info-set` in the guest, `readVariable` outside;
    power-off forgets what the guest set (Workstation keeps guest variables for the running VM only)."""
    from labctl.sim.host import SimHost

    vmx = install_host(sim, "esx2", "esxi", "8.0u2", ("00:50:56:01:00:02", "00:50:56:01:01:02"), "192.168.69.12")
    with vmx.open("a") as f:
        f.write('guestinfo.labctl.hostname = "esx2.lab.local"\n')
    with pytest.raises(VmrunError) as ei:
        sim.read_guest_var(vmx, "labctl.hostname")
    assert ei.value.not_powered_on
    sim.start(vmx)
    hdir = sim.hosts.host_dir("esx2")
    host = SimHost(S.load_state(hdir), hdir)
    assert sim.read_guest_var(vmx, "labctl.hostname") == "esx2.lab.local"
    assert host.run('vmtoolsd --cmd "info-get guestinfo.labctl.hostname"') == (0, "esx2.lab.local\n", "")
    assert host.run('vmtoolsd --cmd "info-get guestinfo.labctl.hostkey"') == (1, "", "No value found\n")
    assert host.run('vmtoolsd --cmd "info-get labctl.hostname"')[0] == 1  # only guestinfo.* is the guest's
    assert sim.read_guest_var(vmx, "labctl.hostkey") is None
    assert host.run('vmtoolsd --cmd "info-set guestinfo.labctl.hostkey ssh-rsa AAAAB3 x"') == (0, "", "")
    assert sim.read_guest_var(vmx, "labctl.hostkey") == "ssh-rsa AAAAB3 x"
    assert "hostkey" not in vmx.read_text()  # runtime only: never written back to the .vmx
    sim.stop(vmx)
    sim.start(vmx)
    assert sim.read_guest_var(vmx, "labctl.hostkey") is None
    assert sim.read_guest_var(vmx, "labctl.hostname") == "esx2.lab.local"


@pytest.mark.parametrize("flavor, version", [("esx", "4.1"), ("esxi", "4.1")])
def test_no_vmtoolsd_before_esxi_5(sim, flavor, version):
    from labctl.sim.host import SimHost

    vmx = install_host(sim, "old", flavor, version, ("00:50:56:01:00:03", "00:50:56:01:01:03"), "192.168.69.13")
    sim.start(vmx)
    hdir = sim.hosts.host_dir("old")
    code, _, err = SimHost(S.load_state(hdir), hdir).run('vmtoolsd --cmd "info-get guestinfo.labctl.hostname"')
    assert code == 127 and "not found" in err
