"""Duplicate detection and repair planning, pure (no hosts): the typed changes and their exact commands."""

from __future__ import annotations

import shlex

import pytest

from labctl.remote import command as C
from labctl.remote.facts.base import Platform
from labctl.remote.facts.esxconf import EsxConf
from labctl.remote.operations.macs import (
    ConfMac,
    HostScan,
    Iface,
    MacChange,
    RebootChange,
    allocate_mac,
    find_duplicates,
    plan_fix,
    prep_template_commands,
)
from tests.remote.conftest import job_script

ESX35 = Platform("esx", (3, 5, 5))
ESXI8 = Platform("esxi", (8, 0, 0))
ESXI55 = Platform("esxi", (5, 5, 0))


def classic_pair():
    vswif = "00:50:56:4c:e5:09"
    vmk = "00:50:56:7a:00:01"
    hosts = []
    for i, vnic in ((1, "00:50:56:01:00:01"), (2, "00:50:56:01:00:02")):
        hosts.append(HostScan(
            f"esx{i}", ESX35, "vswif0",
            (Iface("vswif0", "vswif", vswif, f"192.168.69.1{i}", configured_mac=vswif),
             Iface("vmk0", "vmk", vmk, f"10.10.10.1{i}", "255.255.255.0", "VMkernel")),
            {"vmnic0": vnic}, "4ff35a91-ab62-fc60-8199-0050564ce509", None,
            EsxConf({"/net/vmkernelnic/child[0000]/name": "vmk0", "/net/vmkernelnic/child[0000]/mac": vmk,
                     "/net/vswif/child[0000]/name": "vswif0", "/net/vswif/child[0000]/mac": vswif})))
    return hosts


def esxi_trio():
    parent_vnic = "00:50:56:02:00:01"
    out = []
    for i in range(1, 4):
        out.append(HostScan(f"esxi{i}", ESXI8, "vmk0",
                            (Iface("vmk0", "vmk", parent_vnic, f"192.168.70.2{i}", "255.255.255.0", "Management Network"),),
                            {"vmnic0": f"00:50:56:02:00:0{i}"}, "5c1a2b3d-0001-0002-0003-005056020001", 0))
    return out


def test_classic_pair_duplicates_keep_first_host():
    dups = find_duplicates(classic_pair())
    macs = {d.value: d for d in dups if d.kind == "mac"}
    assert set(macs) == {"00:50:56:4c:e5:09", "00:50:56:7a:00:01"}
    d = macs["00:50:56:4c:e5:09"]
    assert str(d.keep) == "esx1/vswif0" and [str(h) for h in d.change] == ["esx2/vswif0"]
    assert str(d) == ("MAC 00:50:56:4c:e5:09: esx1/vswif0, esx2/vswif0 — esx1/vswif0 keeps it; "
                      "changes esx2/vswif0")
    uuids = [d for d in dups if d.kind == "uuid"]
    assert len(uuids) == 1 and [str(h) for h in uuids[0].change] == ["esx2"]


def test_vnic_keeps_and_own_vmk0_following_its_vnic_is_not_a_duplicate():
    dups = find_duplicates(esxi_trio(), {"00:50:56:02:00:01": "esxi1/ethernet0"})
    (d,) = [d for d in dups if d.kind == "mac"]
    assert d.keep.hardware and d.keep.owner == "esxi1"
    assert [str(h) for h in d.change] == ["esxi2/vmk0", "esxi3/vmk0"]


def test_guest_mac_equal_to_another_vms_vnic_is_flagged():
    scans = [HostScan("esx1", ESX35, "vswif0", (Iface("vswif0", "vswif", "00:50:56:00:00:10"),), {}, None)]
    dups = find_duplicates(scans, {"00:50:56:00:00:10": "vcenter/ethernet0"})
    assert len(dups) == 1 and str(dups[0].keep) == "vcenter/ethernet0"
    assert [str(h) for h in dups[0].change] == ["esx1/vswif0"]


def test_two_vnics_with_one_mac_cannot_be_fixed_over_ssh():
    scans = [HostScan("a", ESXI8, "vmk0", (), {"vmnic0": "00:50:56:00:00:01"}, None),
             HostScan("b", ESXI8, "vmk0", (), {"vmnic0": "00:50:56:00:00:01"}, None)]
    dups = find_duplicates(scans)
    assert len(dups) == 1 and dups[0].change == ()
    changes, problems = plan_fix("lab", scans, dups)
    assert changes == [] and problems == ["MAC 00:50:56:00:00:01 is on the vNICs a/vmnic0, b/vmnic0: vNIC MACs come "
                                          "from the topology/.vmx and cannot be changed over SSH; give one VM "
                                          "another MAC"]
    # a guest interface on that MAC is still repaired; the vNIC conflict is still reported
    scans[1] = HostScan("b", ESXI8, "vmk0", (Iface("vmk0", "vmk", "00:50:56:00:00:01"),), scans[1].nics, None)
    changes, problems = plan_fix("lab", scans, find_duplicates(scans))
    assert changes == [] and "FollowHardwareMac cannot help; use --strategy recreate-vmk" in problems[1]
    changes, problems = plan_fix("lab", scans, find_duplicates(scans), strategy="recreate-vmk")
    assert [(c.host, c.interface, c.method) for c in changes] == [("b", "vmk0", "recreate")] and len(problems) == 1


def test_clean_lab_has_no_duplicates_and_no_changes():
    scans = [HostScan(f"h{i}", ESXI8, "vmk0", (Iface("vmk0", "vmk", f"00:50:56:00:00:0{i}"),),
                      {"vmnic0": f"00:50:56:00:00:0{i}"}, f"00000000-0000-0000-0000-00000000000{i}") for i in range(3)]
    dups = find_duplicates(scans)
    assert dups == []
    assert plan_fix("lab", scans, dups) == ([], [])


def test_classic_plan_edits_ifcfg_in_a_commit_confirmed_job_then_one_reboot():
    scans = classic_pair()
    changes, problems = plan_fix("seed", scans, find_duplicates(scans), confirm_within=5)
    assert problems == []
    assert [type(c).__name__ for c in changes] == ["MacChange", "RebootChange"]
    vswif, boot = changes
    assert isinstance(vswif, MacChange) and isinstance(boot, RebootChange)
    assert (vswif.host, vswif.interface, vswif.method) == ("esx2", "vswif0", "ifcfg")
    new = vswif.new_mac
    assert new.startswith("00:50:56:") and int(new.split(":")[3], 16) <= 0x3F
    (cmd,) = vswif.commands()
    assert cmd.startswith(f"rm -rf {vswif.job.log} ") and "; nohup sh -c " in cmd and cmd.endswith(" 2>&1 &")
    script = job_script(cmd)
    assert f"sed -i 's/^MACADDR=.*/MACADDR={new}/' /etc/sysconfig/network-scripts/ifcfg-vswif0" in script
    assert f'\\/net\\/vswif\\/child[0000]\\/mac = "{new}"/' in script
    # the job waits for labctl's mkdir in one-second steps, ending as soon as it is there
    assert (f"ifdown vswif0; ifup vswif0; for i in 1 2 3 4 5; do test -d {vswif.job.decided} || sleep 1; done; "
            "mkdir ") in script
    assert f"test -f {vswif.job.rolled_back} && cp {vswif.job.backup('ifcfg')} " in script
    assert script.endswith(f"echo done > {vswif.job.done}")
    assert vswif.confirm_command() == f"mkdir {vswif.job.decided}"
    # ESX 3.5's esxcfg-vmknic has no -M: the vmk MAC is changed in esx.conf and applied by the uuid reboot
    (m,) = boot.conf_macs
    assert (m.interface, m.key, m.old_mac) == ("vmk0", "/net/vmkernelnic/child[0000]/mac", "00:50:56:7a:00:01")
    assert boot.clear_uuid and boot.follow_hardware is None
    cmds = boot.commands()
    assert cmds[0] == ("sed -i 's/^\\/net\\/vmkernelnic\\/child\\[0000\\]\\/mac.*/\\/net\\/vmkernelnic\\/child[0000]"
                       f"\\/mac = \"{m.new_mac}\"/' /etc/vmware/esx.conf")
    assert cmds[1] == "sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf"
    assert "auto-backup.sh" not in " ".join(cmds)  # ESX classic keeps /etc on disk
    assert "reboot" in cmds[-1] and cmds[-1].startswith("nohup sh -c ")


def test_esxi_default_plan_is_follow_hardware_with_new_uuid():
    scans = esxi_trio()
    changes, _ = plan_fix("trio", scans, find_duplicates(scans))
    assert [(c.host, c.follow_hardware, c.clear_uuid) for c in changes] == [
        ("esxi2", ("vmk0", "00:50:56:02:00:01", "00:50:56:02:00:02"), True),
        ("esxi3", ("vmk0", "00:50:56:02:00:01", "00:50:56:02:00:03"), True),
    ]
    cmds = changes[0].commands()
    assert cmds[0] == "esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1"
    assert cmds[1:3] == ["sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf", "/sbin/auto-backup.sh"]
    assert "reboot" in cmds[3]
    after = HostScan("esxi2", ESXI8, "vmk0", (Iface("vmk0", "vmk", "00:50:56:02:00:02"),), {}, "new-uuid")
    assert changes[0].verify(after) == []
    problems = changes[0].verify(scans[1])
    assert problems[0] == "vmk0 is 00:50:56:02:00:01, not 00:50:56:02:00:02"
    assert problems[1].startswith(f"/system/uuid is still {scans[1].uuid} (ESXi 7.0 U2+") and "KB 84349" in problems[1]


def test_esxi_recreate_strategy_uses_unique_static_macs_and_a_uuid_reboot():
    scans = esxi_trio()
    changes, _ = plan_fix("trio", scans, find_duplicates(scans), strategy="recreate-vmk")
    macs = [c for c in changes if isinstance(c, MacChange)]
    assert [c.method for c in macs] == ["recreate", "recreate"]
    assert len({c.new_mac for c in macs}) == 2
    scanned = {m for s in scans for m in s.nics.values()} | {i.mac for s in scans for i in s.interfaces}
    assert not ({c.new_mac for c in macs} & scanned)
    script = job_script(macs[0].commands()[0])
    assert (f"esxcli network ip interface add -i vmk0 -p 'Management Network' -M {macs[0].new_mac}" in script)
    assert "esxcli network ip interface ipv4 set -i vmk0 -t static -I 192.168.70.22 -N 255.255.255.0" in script
    assert macs[0].confirm_command().endswith("&& /sbin/auto-backup.sh")
    reboots = [c for c in changes if isinstance(c, RebootChange)]
    assert [(c.host, c.clear_uuid, c.follow_hardware, c.conf_macs) for c in reboots] == [
        ("esxi2", True, None, ()), ("esxi3", True, None, ())]
    # deterministic: the same plan again
    again, _ = plan_fix("trio", scans, find_duplicates(scans), strategy="recreate-vmk")
    assert again == changes


def test_allocate_mac_skips_used_and_stays_in_range():
    first = allocate_mac("lab", "h", "vmk0", set())
    used = {first}
    second = allocate_mac("lab", "h", "vmk0", used)
    assert second != first and second in used
    assert int(second.split(":")[3], 16) <= 0x3F


def test_quoting_never_pastes_user_strings():
    evil = "Management Network'; reboot; '"
    c = MacChange("h", "vmk1", "00:50:56:00:00:01", "00:50:56:00:00:02", "recreate", ESXI55, portgroup=evil,
                  ip="1.2.3.4", netmask="255.0.0.0")
    assert ConfMac  # exported
    script = job_script(c.commands()[0])
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    tokens = list(lexer)
    i = tokens.index("add")
    assert tokens[i: i + 7] == ["add", "-i", "vmk1", "-p", evil, "-M", "00:50:56:00:00:02"]
    assert "reboot" not in tokens
    assert C.sh(["echo", "a b", "$(x)"]) == "echo 'a b' '$(x)'"


def test_prep_template_commands():
    assert prep_template_commands(ESXI8) == [
        "esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1",
        "sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf",
        "/sbin/auto-backup.sh",
    ]


@pytest.mark.parametrize("platform, configstore", [
    (ESX35, False), (Platform("esxi", (4, 1, 0)), False), (Platform("esxi", (6, 7, 3)), False),
    (Platform("esxi", (7, 0, 1)), False), (Platform("esxi", (7, 0, 2)), True), (ESXI8, True),
])
def test_uuid_removal_is_the_last_esx_conf_write_before_the_reboot_on_every_release(platform, configstore):
    """On ESXi 7.0 U2+ every configuration change writes /system/uuid back from the ConfigStore (KB 84349): only
    auto-backup.sh and the reboot may follow the removal. Earlier releases tolerate either order; labctl uses one."""
    from labctl.remote.operations.macs import uuid_in_configstore

    assert uuid_in_configstore(platform) is configstore
    follow = None if platform.classic else ("vmk0", "00:50:56:02:00:01", "00:50:56:02:00:02")
    conf = (ConfMac("vmk1", "/net/vmkernelnic/child[0001]/mac", "00:50:56:7a:00:01", "00:50:56:00:00:07"),)
    change = RebootChange("h", platform, follow, conf, clear_uuid=True, old_uuid="u")
    cmds = change.commands()
    at = cmds.index("sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf")
    assert all("esxcli" not in c and "esxcfg" not in c and "vmknic" not in c for c in cmds[at + 1:])
    assert cmds[at + 1:-1] == ([] if platform.classic else ["/sbin/auto-backup.sh"]) and "reboot" in cmds[-1]
    assert ("KB 84349" in change.describe()) is configstore
    if not platform.classic:
        prep = prep_template_commands(platform)
        assert prep[-2:] == ["sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf", "/sbin/auto-backup.sh"]
