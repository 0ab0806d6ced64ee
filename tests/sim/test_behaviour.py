"""Host behaviour without SSH: clones, boot rules, MAC changes, which commands exist on which version."""

from __future__ import annotations

import re

import pytest

from labctl.sim import state as S
from labctl.sim.boot import clone
from labctl.sim.host import SimHost

from .helpers import local_host, make_state


def reboot(h: SimHost) -> None:
    h.reboot(delay=0.01)
    assert h.wait_up(5) and not h.rebooting
    assert h.up


def test_esxi_clone_keeps_vmk0_mac_and_uuid_but_gets_new_vnic_macs():
    src = make_state("esxi", "5.5", macs=("00:50:56:00:00:11", "00:50:56:00:00:12"))
    cl = clone(src, "esx2", nic_macs=["00:50:56:00:00:21", "00:50:56:00:00:22"])
    assert [n.mac for n in cl.nics] == ["00:50:56:00:00:21", "00:50:56:00:00:22"]
    assert cl.vmknics[0].mac == src.vmknics[0].mac == "00:50:56:00:00:11"  # the duplicate
    assert cl.system_uuid == src.system_uuid
    conf = S.conf_items(cl.files[S.ESX_CONF])
    assert conf["/net/pnic/child[0000]/mac"] == "00:50:56:00:00:21"  # the vmkernel sees the new vNIC
    assert conf["/net/vmkernelnic/child[0000]/mac"] == "00:50:56:00:00:11"
    assert cl.boot_count == 1


def test_esx_classic_clone_keeps_vswif_mac_in_ifcfg():
    src = make_state("esx", "3.5u5")
    cl = clone(src, "esx2", nic_macs=["00:50:56:00:00:21"])
    assert cl.vswifs[0].mac == src.vswifs[0].mac
    assert cl.files[S.IFCFG_VSWIF0] == src.files[S.IFCFG_VSWIF0]
    assert cl.nics[0].mac == "00:50:56:00:00:21"


def test_esxi_clone_copies_the_backed_up_disk_only():
    src = make_state("esxi", "6.7")
    h = SimHost(src)
    h.run("echo edited >> /etc/vmware/esx.conf")
    cl = clone(src, "esx2", nic_macs=["00:50:56:00:00:21"])
    assert "edited" not in cl.files[S.ESX_CONF]


def test_follow_hardware_mac_needs_auto_backup_then_applies_at_boot():
    src = make_state("esxi", "6.7")
    h = SimHost(clone(src, "esx2", nic_macs=["00:50:56:00:00:21"]))
    assert h.run("esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1") == (0, "", "")
    assert h.state.vmknics[0].mac == "00:50:56:00:00:11"  # only at boot
    reboot(h)  # no auto-backup.sh: the setting is lost
    assert h.state.advanced["/Net/FollowHardwareMac"].int_value == 0
    assert h.state.vmknics[0].mac == "00:50:56:00:00:11"
    h.run("esxcfg-advcfg -s 1 /Net/FollowHardwareMac")
    assert h.run("/sbin/auto-backup.sh")[0] == 0
    reboot(h)
    assert h.state.vmknics[0].mac == "00:50:56:00:00:21"
    assert h.run("esxcfg-advcfg -g /Net/FollowHardwareMac") == (0, "Value of FollowHardwareMac is 1\n", "")
    assert S.conf_get(h.state.files[S.ESX_CONF], "/net/vmkernelnic/child[0000]/mac") == "00:50:56:00:00:21"
    assert h.state.boot_count == 3  # the clone's first boot + two reboots


def test_cleared_uuid_regenerates_at_boot_only_after_backup():
    h = local_host("esxi", "7.0u2")
    old = h.state.system_uuid
    h.run("sed -i 's#/system/uuid.*##' /etc/vmware/esx.conf")
    reboot(h)
    assert h.state.system_uuid == old  # edit lost without auto-backup.sh
    h.run("sed -i 's#/system/uuid.*##' /etc/vmware/esx.conf; /sbin/auto-backup.sh")
    reboot(h)
    new = h.run("esxcli system uuid get")[1].strip()
    assert new != old and new == h.state.system_uuid
    assert re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", new)


def test_classic_reboot_keeps_disk_edits_and_reads_ifcfg():
    h = local_host("esx", "4.1")
    h.run("sed -i 's#^MACADDR=.*#MACADDR=00:50:56:4f:00:01#' /etc/sysconfig/network-scripts/ifcfg-vswif0")
    assert h.state.vswifs[0].mac != "00:50:56:4f:00:01"
    reboot(h)
    assert h.state.vswifs[0].mac == "00:50:56:4f:00:01"
    assert "HWaddr 00:50:56:4F:00:01" in h.run("ifconfig vswif0")[1]


def test_ifdown_ifup_rereads_macaddr():
    h = local_host("esx", "3.5u5")
    h.run("sed -i 's#^MACADDR=.*#MACADDR=00:50:56:4e:01:02#' /etc/sysconfig/network-scripts/ifcfg-vswif0")
    assert h.run("ifdown vswif0 && ifup vswif0") == (0, "", "")
    assert h.state.vswifs[0].mac == "00:50:56:4e:01:02" and h.state.vswifs[0].enabled


def test_vswif_delete_and_re_add_gives_the_same_mac():
    h = local_host("esx", "4.0")
    mac = h.state.vswifs[0].mac
    assert h.run("esxcfg-vswif -d vswif0")[0] == 0
    assert h.run("esxcfg-vswif -l")[1].count("vswif0") == 0
    assert h.run("esxcfg-vswif -a vswif0 -p 'Service Console' -i 192.168.69.11 -n 255.255.255.0")[0] == 0
    assert h.state.vswifs[0].mac == mac


def test_vmk0_recreated_with_and_without_mac():
    h = local_host("esxi", "6.7")
    cmds = ("esxcli network ip interface remove -i vmk0; "
            "esxcli network ip interface add -i vmk0 -p 'Management Network' -M 00:50:56:01:02:03; "
            "esxcli network ip interface ipv4 set -i vmk0 -t static -I 192.168.69.11 -N 255.255.255.0")
    assert h.run(cmds) == (0, "", "")
    assert h.state.vmknics[0].mac == "00:50:56:01:02:03"
    assert S.conf_get(h.state.files[S.ESX_CONF], "/net/vmkernelnic/child[0000]/mac") == "00:50:56:01:02:03"
    h.run("esxcli network ip interface remove -i vmk0; "
          "esxcli network ip interface add -i vmk0 -p 'Management Network'")
    assert re.fullmatch(r"00:50:56:6[0-9a-f](:[0-9a-f]{2}){2}", h.state.vmknics[0].mac)
    assert h.state.vmknics[0].ip == ""  # no address until ipv4 set
    assert h.run("esxcli network ip interface remove -i vmk9") == (
        1, "", "Unable to find vmknic for interface vmk9\n")
    assert h.run("esxcli network ip interface add -i vmk1 -p Nope")[0] == 1


def test_esxcli_errors_and_usage():
    h = local_host("esxi", "6.7")
    assert h.run("esxcli network ip interface bogus") == (
        1, "", "Error: Unknown command or namespace network ip interface bogus\n")
    code, out, _ = h.run("esxcli network ip")
    assert code == 0 and "interface" in out
    assert h.run("esxcli --formatter=json system uuid get")[0] == 1
    assert h.run("esxcli network ip interface ipv4 set -i vmk0") == (1, "", "Error: Missing required parameter -t|--type\n")


@pytest.mark.parametrize("flavor,version,command,exists", [
    ("esx", "3.5u5", "esxcli system uuid get", False),
    ("esx", "4.1", "esxcli network ip interface list", False),
    ("esx", "4.1", "/sbin/auto-backup.sh", False),
    ("esx", "3.5u5", "esxcfg-vswif -l", True),
    ("esx", "3.5u5", "ifconfig vswif0", True),
    ("esxi", "6.7", "esxcfg-vswif -l", False),
    ("esxi", "6.7", "ifconfig", False),
    ("esxi", "5.0", "esxcli system uuid get", True),
    ("esxi", "4.1", "esxcfg-vmknic -l", True),
    ("esxi", "6.7", "/sbin/auto-backup.sh", True),
])
def test_commands_exist_per_flavour_and_version(flavor, version, command, exists):
    code, _, err = local_host(flavor, version).run(command)
    if exists:
        assert code == 0, err
    elif flavor == "esx":  # the service console's bash
        assert code == 127 and err == f"bash: {command.split()[0]}: command not found\n"
    else:  # ESXi's BusyBox ash
        assert code == 127 and err == f"sh: {command.split()[0]}: not found\n"


def test_esxi4_esxcli_has_no_network_namespace():
    code, _, err = local_host("esxi", "4.1").run("esxcli network ip interface list")
    assert code == 1 and err.startswith("Error: Unknown command or namespace")


def test_auth_methods_and_key_paths_per_era():
    assert make_state("esxi", "5.0").auth_methods == ("publickey", "keyboard-interactive")
    assert make_state("esxi", "4.1").auth_methods == ("publickey", "password")
    assert make_state("esx", "3.5u5").auth_methods == ("publickey", "password")
    assert make_state("esxi", "8.0").authorized_keys_path == "/etc/ssh/keys-root/authorized_keys"
    assert make_state("esx", "4.0").authorized_keys_path == "/root/.ssh/authorized_keys"
    assert make_state("esxi", "8.0").sftp and not make_state("esxi", "4.1").sftp and not make_state("esx", "4.1").sftp


def test_state_round_trips_through_json(tmp_path):
    st = make_state("esxi", "7.0u2", vmkernel=[{"portgroup": "NFS", "ip": "10.0.0.1", "netmask": "255.0.0.0"}])
    S.save_state(tmp_path, st)
    assert S.load_state(tmp_path) == st


def test_maintenance_mode_esxcli_and_vim_cmd():
    h = local_host("esxi", "6.7")
    assert h.run("esxcli system maintenanceMode get") == (0, "Disabled\n", "")
    assert h.run("esxcli system maintenanceMode set -e true") == (0, "", "")
    assert h.state.extra["maintenance_mode"] is True
    assert h.run("esxcli system maintenanceMode set --enable true")[0] == 1
    assert h.run("vim-cmd hostsvc/maintenance_mode_exit")[0] == 0
    assert h.run("esxcli system maintenanceMode get") == (0, "Disabled\n", "")


def test_esxcli_shutdown_reboot_requires_maintenance_mode():
    h = local_host("esxi", "7.0u2")
    code, _, err = h.run("esxcli system shutdown reboot -r test")
    assert code == 1 and "Maintenance mode is required" in err
    h.run("esxcli system maintenanceMode set -e true")
    assert h.run("esxcli system shutdown reboot -r test") == (0, "", "")
    assert h.wait_up(5) and h.state.boot_count == 2


def test_esx_classic_sshd_answers_on_the_service_console_only():
    h = local_host("esx", "4.1", vmkernel=[{"portgroup": "VMkernel", "ip": "10.10.10.11", "netmask": "255.255.255.0"}])
    assert h.ssh_interface() == ("vswif0", "192.168.69.11")
    h.state.ssh_address = "10.10.10.11"  # an access_ip on a VMkernel port
    assert h.ssh_interface() is None and not h.reachable()
    e = local_host("esxi", "6.7", vmkernel=[{"portgroup": "Storage", "ip": "10.10.10.11", "netmask": "255.255.255.0"}])
    e.state.ssh_address = "10.10.10.11"
    assert e.ssh_interface() == ("vmk1", "10.10.10.11")
    e.state.ssh_address = "203.0.113.7"  # NAT / port forward: lands on the management interface
    assert e.ssh_interface() == ("vmk0", "192.168.69.11")


def test_local_sh_runs_at_the_end_of_each_boot_when_backed_up():
    h = local_host("esxi", "6.7")
    assert "exit 0" in h.fs.read_text("/etc/rc.local.d/local.sh")
    h.run("sed -i 's#^exit 0#echo boot-$(cat /etc/vmware/esx.conf | grep -c uuid) >> /tmp/boots#' "
          "/etc/rc.local.d/local.sh")
    reboot(h)
    assert not h.fs.is_file("/tmp/boots")  # the edit was not backed up: lost
    h.run("echo 'echo after-exit >> /tmp/boots' >> /etc/rc.local.d/local.sh")  # never runs: after `exit 0`
    h.run("sed -i 's#^exit 0#echo ran >> /tmp/boots; exit 0#' /etc/rc.local.d/local.sh; /sbin/auto-backup.sh")
    reboot(h)
    assert h.fs.read_text("/tmp/boots") == "ran\n"
    assert "boot_scripts_pending" not in h.state.extra
    assert not local_host("esxi", "5.0").fs.is_file("/etc/rc.local.d/local.sh")


SED_UUID = "sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf"


@pytest.mark.parametrize("version, kept_after_a_later_change", [
    ("6.7", False), ("7.0u1", False), ("7.0u2", True), ("8.0u2", True),
])
def test_uuid_regeneration_per_release(version, kept_after_a_later_change):
    """Removing /system/uuid from esx.conf, saving and rebooting gives a new UUID on every release when nothing
    changes the configuration in between (labctl's order). On 7.0 U2+ a configuration change after the removal
    writes it back from the ConfigStore, so the host keeps its UUID (KB 84349, as packer-maas#35's firstboot saw:
    it removed the line, then configured the network)."""
    h = local_host("esxi", version)
    old = h.state.system_uuid
    for cmd in ("esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1", SED_UUID, "/sbin/auto-backup.sh"):
        assert h.run(cmd)[0] == 0
    reboot(h)
    assert h.run("esxcli system uuid get")[1].strip() not in ("", old)

    h = local_host("esxi", version)
    old = h.state.system_uuid
    for cmd in (SED_UUID, "esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1", "/sbin/auto-backup.sh"):
        assert h.run(cmd)[0] == 0
    assert ("/system/uuid" in h.state.files[S.ESX_CONF]) is kept_after_a_later_change
    reboot(h)
    assert (h.run("esxcli system uuid get")[1].strip() == old) is kept_after_a_later_change


def test_esx_classic_uuid_regenerates_at_boot_without_a_backup():
    h = local_host("esx", "3.5u5")
    old = h.state.system_uuid
    assert h.run(SED_UUID)[0] == 0
    reboot(h)
    assert h.state.system_uuid != old
    assert S.conf_get(h.state.files[S.ESX_CONF], "/system/uuid") == h.state.system_uuid
