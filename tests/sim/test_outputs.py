"""Command outputs compared byte for byte with the exact samples of esx-hosts.md (tests/sim/data)."""

from __future__ import annotations

import re

import pytest

from labctl.sim import state as S
from labctl.sim.host import SimHost

from .helpers import DATA, local_host, make_state


def _sample(name: str) -> str:
    return (DATA / name).read_text()


def _run(host: SimHost, cmd: str) -> str:
    code, out, err = host.run(cmd)
    assert (code, err) == (0, ""), (cmd, code, err)
    return out


def test_vmknic_list_esxi5_with_ipv6_row():
    h = local_host("esxi", "5.5", macs=("00:50:56:a3:95:e5",), ip="10.144.139.7", netmask="255.255.252.0")
    h.state.vmknics[0].dhcp = True
    assert _run(h, "esxcfg-vmknic -l") == _sample("esxcfg_vmknic_l_5x.txt")


def test_vmknic_list_esxi6_netstack_and_unaddressed_vmk():
    h = local_host("esxi", "6.0", macs=("48:df:37:aa:bb:cc",), ip="172.31.0.82", netmask="255.255.0.0")
    h.state.ipv6 = False
    h.state.vmknics[0].dhcp = True
    h.state.vmknics.append(S.NetIf("vmk2", "PGvmnic0", "00:50:56:aa:bb:cc", mtu=9000))
    assert _run(h, "esxcfg-vmknic -l") == _sample("esxcfg_vmknic_l_60.txt")


def test_vswif_list_esx4():
    h = local_host("esx", "4.0", ip="10.0.1.130")
    assert _run(h, "esxcfg-vswif -l") == _sample("esxcfg_vswif_l_4x.txt")


def test_vswif_list_esx35_has_no_mac_and_dhcp_column():
    out = _run(local_host("esx", "3.5u5"), "esxcfg-vswif -l")
    head, row = out.splitlines()
    assert head.split() == ["Name", "Port", "Group", "IP", "Address", "Netmask", "Broadcast", "Enabled", "DHCP"]
    assert row.split() == ["vswif0", "Service", "Console", "192.168.69.11", "255.255.255.0", "192.168.69.255",
                           "true", "false"]


def test_vswitch_list_esxi6():
    h = local_host("esxi", "6.7")
    h.state.vswitches[0].portgroups[0].vms = 1
    assert _run(h, "esxcfg-vswitch -l") == _sample("esxcfg_vswitch_l_6x.txt")


def test_ip_interface_list_records_esxi6():
    h = local_host("esxi", "6.5", macs=("52:54:00:12:34:56",))
    assert _run(h, "esxcli network ip interface list") == _sample("esxcli_ip_interface_list_6x.txt")


@pytest.mark.parametrize("version,absent,present", [
    ("5.0", ["Netstack Instance", "VDS UUID", "Opaque Network ID", "RXDispQueue Size"], ["VDS Name", "Port ID"]),
    ("5.5", ["Opaque Network ID", "RXDispQueue Size"], ["Netstack Instance", "VDS UUID"]),
    ("7.0u2", [], ["Opaque Network ID", "External ID", "RXDispQueue Size"]),
])
def test_ip_interface_list_fields_per_version(version, absent, present):
    out = _run(local_host("esxi", version), "esxcli network ip interface list")
    fields = [ln.split(":")[0].strip() for ln in out.splitlines() if ln.startswith("   ")]
    assert not set(absent) & set(fields)
    assert set(present) <= set(fields)
    assert fields[:2] == ["Name", "MAC Address"] and fields[-1] == "Port ID"


def test_ipv4_get_esxi7_table():
    h = local_host("esxi", "7.0", ip="192.168.1.109", gateway="192.168.1.1")
    assert _run(h, "esxcli network ip interface ipv4 get") == _sample("esxcli_ipv4_get_7x.txt")


def test_ipv4_get_esxi5_has_no_gateway_column():
    out = _run(local_host("esxi", "5.1", gateway="192.168.69.1"), "esxcli network ip interface ipv4 get")
    assert "Gateway" not in out.splitlines()[0]


def test_nic_list_esxi6():
    h = local_host("esxi", "6.0", macs=("68:5b:35:c9:96:10",))
    nic = h.state.nics[0]
    nic.driver, nic.pci = "tg3", "0000:01:00.0"
    nic.description = "Broadcom Corporation NetXtreme BCM57766 Gigabit Ethernet"
    assert _run(h, "esxcli network nic list") == _sample("esxcli_nic_list_60.txt")


def test_advanced_list_follow_hardware_mac():
    out = _run(local_host("esxi", "6.7"), "esxcli system settings advanced list -o /Net/FollowHardwareMac")
    assert out == _sample("esxcli_advanced_list_followhardwaremac.txt")


def test_ifcfg_vswif0_written_by_the_installer():
    st = make_state("esx", "3.5u5", ip="192.168.251.60", management_portgroup="portgroup6")
    mac = st.vswifs[0].mac
    assert re.fullmatch(r"00:50:56:4[0-9a-f](:[0-9a-f]{2}){2}", mac)
    expected = _sample("ifcfg_vswif0.txt").replace("00:50:56:43:a3:52", mac)
    assert st.files[S.IFCFG_VSWIF0] == expected
    assert S.conf_get(st.files[S.ESX_CONF], "/net/vswif/child[0000]/mac") == mac


def test_csv_formatter_sorted_headers_trailing_comma():
    out = _run(local_host("esxi", "7.0", ip="192.168.1.109", gateway="192.168.1.1"),
               "esxcli --formatter=csv network ip interface ipv4 get")
    assert out.splitlines() == [
        "AddressType,DHCPDNS,Gateway,IPv4Address,IPv4Broadcast,IPv4Netmask,Name,",
        "STATIC,false,192.168.1.1,192.168.1.109,192.168.1.255,255.255.255.0,vmk0,",
    ]


def test_keyvalue_formatter():
    h = local_host("esxi", "6.7", macs=("52:54:00:12:34:56",))
    out = _run(h, "esxcli --formatter=keyvalue network ip interface list")
    assert "NetworkInterface.MACAddress.string=52:54:00:12:34:56" in out.splitlines()
    assert "NetworkInterface.Enabled.boolean=true" in out.splitlines()
    assert _run(h, "esxcli --formatter=keyvalue system uuid get") == f"string={h.state.system_uuid}\n"


@pytest.mark.parametrize("flavor,version,expected", [
    ("esx", "3.5u5", "VMware ESX Server 3.5.0 build-207095"),
    ("esx", "4.1", "VMware ESX 4.1.0 build-260247"),
    ("esxi", "5.5", "VMware ESXi 5.5.0 build-1331820"),
    ("esxi", "6.7", "VMware ESXi 6.7.0 build-8169922"),
    ("esxi", "7.0u3", "VMware ESXi 7.0.3 build-18644231"),
    ("esxi", "8.0", "VMware ESXi 8.0.0 build-20513097"),
])
def test_vmware_v(flavor, version, expected):
    assert _run(local_host(flavor, version), "vmware -v") == expected + "\n"


def test_ifconfig_shows_vswif_hwaddr_upper_case():
    h = local_host("esx", "3.5u5")
    out = _run(h, "ifconfig vswif0")
    assert f"HWaddr {h.state.vswifs[0].mac.upper()}" in out
    assert "inet addr:192.168.69.11  Bcast:192.168.69.255  Mask:255.255.255.0" in out


def test_uuid_get_matches_esx_conf_and_mac_tail():
    h = local_host("esxi", "6.7")
    uuid = _run(h, "esxcli system uuid get").strip()
    assert f'/system/uuid = "{uuid}"' in h.state.files[S.ESX_CONF]
    assert uuid.endswith(h.state.vmknics[0].mac.replace(":", ""))
    assert re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", uuid)


def test_esx_conf_keys_of_a_fresh_esxi():
    st = make_state("esxi", "6.7", macs=("00:50:56:00:00:11", "00:50:56:00:00:12"))
    conf = S.conf_items(st.files[S.ESX_CONF])
    assert conf["/net/vmkernelnic/child[0000]/mac"] == "00:50:56:00:00:11"
    assert conf["/net/pnic/child[0000]/mac"] == "00:50:56:00:00:11"
    assert conf["/net/pnic/child[0001]/mac"] == "00:50:56:00:00:12"
    assert conf["/adv/Net/FollowHardwareMac"] == "0"
    assert conf["/adv/Net/ManagementIface"] == "vmk0"
    assert re.fullmatch(r"00:50:56:5[0-9a-f](:[0-9a-f]{2}){2}", conf["/net/pnic/child[0000]/virtualMac"])


def test_vmknic_list_esxi4_has_the_columns_of_a_real_41_capture():
    """No IP Family, no TSO MSS: the layout of a nested ESXi 4.x on Workstation (capture squeezed by its author, so
    the columns and values are compared, not the spacing)."""
    real = (DATA.parent.parent / "remote" / "facts" / "vmknic_list_5" / "esxi4_workstation_nested.txt").read_text()
    h = local_host("esxi", "4.1", macs=("00:0c:29:2c:54:17",), ip="10.0.1.128", netmask="255.255.255.0")
    h.state.vmknics[0].portgroup = "Management Network"
    out = _run(h, "esxcfg-vmknic -l")
    assert [ln.replace("_", " ").split() for ln in out.splitlines()] == \
        [ln.replace("Port_Group", "Port Group").replace("IP_Address", "IP Address").split()
         for ln in real.splitlines()]
    from labctl.remote.facts.vmknic import VmknicList5

    assert VmknicList5().parse(out) == VmknicList5().parse(real)


@pytest.mark.parametrize("version", ["7.0u3", "8.0u2", "8.0u3"])
def test_esxi7_plus_nics_are_vmxnet3_with_nvmxnet3_as_real_hosts_show(version):
    h = local_host("esxi", version, macs=("00:50:56:9f:78:3b",))
    h.state.nics[0].mtu = 9000
    nics = _run(h, "esxcfg-nics -l")
    assert nics == _sample("esxcfg_nics_l_90_vmxnet3.txt")
    h.state.nics[0].mac, h.state.nics[0].mtu = "00:50:56:b3:6c:01", 1500
    real = _sample("esxcli_nic_list_90_vmxnet3.txt").splitlines()
    got = _run(h, "esxcli network nic list").splitlines()
    assert (got[0], got[2]) == (real[0], real[2])
    vibs = {v.name: v for v in h.state.vibs}
    assert "net-e1000" not in vibs and vibs["nvmxnet3"].vendor == "VMW"


def test_esxi6_keeps_the_e1000():
    h = local_host("esxi", "6.7")
    assert h.state.nics[0].driver == "e1000" and "net-e1000" in {v.name for v in h.state.vibs}


@pytest.mark.parametrize("flavor, version, expected", [
    # real captures: VMkernel ... x86_64 GNU/Linux (BusyBox uname on 5.5), x86_64 x86_64 x86_64 ESXi from 6.5 on
    ("esxi", "5.5", "VMkernel {h} 5.5.0 #1 SMP Release build-{b} {d} x86_64 GNU/Linux"),
    ("esxi", "6.7", "VMkernel {h} 6.7.0 #1 SMP Release build-{b} {d} x86_64 x86_64 x86_64 ESXi"),
    ("esxi", "8.0u2", "VMkernel {h} 8.0.2 #1 SMP Release build-{b} {d} x86_64 x86_64 x86_64 ESXi"),
    ("esx", "4.1", "Linux {h} 2.6.18-164.ESX #1 SMP {d} x86_64 x86_64 x86_64 GNU/Linux"),
])
def test_uname_a_has_the_fields_of_real_hosts(flavor, version, expected):
    from labctl.sim.commands.system import BUILD_DATES, build_number

    h = local_host(flavor, version)
    b = str(build_number(h.state))
    out = _run(h, "uname -a").rstrip("\n")
    d = BUILD_DATES.get(b, "Jan  1 2020 00:00:00") if flavor == "esxi" else out.split(" #1 SMP ")[1].rsplit(" x86_64", 3)[0]
    assert out == expected.format(h=h.state.hostname, b=b, d=d)
    assert _run(h, "uname -m") == "x86_64\n"


# ESX classic's service console is Red Hat (3.5: RHEL 3; 4.x: RHEL 5.2 per VMware's "Changes to the ESX Service
# Console for ESX 4.0") with bash and GNU coreutils 4.5/5.x. The texts are coreutils' own format strings at v4.5.3
# and v5.92 (src/cat.c `error (0, errno, "%s", infile)`, remove.c "cannot remove %s" / "cannot remove directory %s",
# touch.c "cannot touch %s", mkdir "cannot create directory %s", each quote()d `like this' in the C locale; ls.c
# reports a missing operand as `"%s", quotearg_colon (name)` until 6.0 made it "cannot access"); ESXi's are
# BusyBox's ("can't open 'X'").
GNU_VS_BUSYBOX = [
    ("cat /nope", "cat: /nope: No such file or directory", "cat: can't open '/nope': No such file or directory"),
    ("rm /nope", "rm: cannot remove `/nope': No such file or directory",
     "rm: can't remove '/nope': No such file or directory"),
    ("rm /etc", "rm: cannot remove directory `/etc': Is a directory", "rm: can't remove '/etc': Is a directory"),
    ("touch /a/b", "touch: cannot touch `/a/b': No such file or directory", "touch: /a/b: No such file or directory"),
    ("mkdir /a/b", "mkdir: cannot create directory `/a/b': No such file or directory",
     "mkdir: can't create directory '/a/b': No such file or directory"),
    ("ls /nope", "ls: /nope: No such file or directory", "ls: /nope: No such file or directory"),
    ("md5sum /nope", "md5sum: /nope: No such file or directory", "md5sum: can't open '/nope': No such file or directory"),
    ("sed -i s/a/b/ /nope", "sed: can't read /nope: No such file or directory",
     "sed: can't open '/nope': No such file or directory"),
    ("nosuchcmd", "bash: nosuchcmd: command not found", "sh: nosuchcmd: not found"),
    ("cat < /nope", "bash: /nope: No such file or directory", "sh: can't open '/nope': No such file or directory"),
]


@pytest.mark.parametrize("cmd, gnu, busybox", GNU_VS_BUSYBOX)
@pytest.mark.parametrize("flavor, version", [("esx", "3.5u5"), ("esx", "4.1"), ("esxi", "4.1"), ("esxi", "8.0u2")])
def test_service_console_speaks_gnu_and_esxi_busybox(flavor, version, cmd, gnu, busybox):
    code, out, err = local_host(flavor, version).run(cmd)
    assert code != 0 and out == ""
    assert err == (gnu if flavor == "esx" else busybox) + "\n"


def test_esx35_has_esxupdate_for_bundles_and_no_vib_option():
    """ESX 3.5's esxupdate (man page: `esxupdate <Bundle Spec> [OPTIONS] update`, `esxupdate [-l] query`) manages
    bundles; `--vib` arrived with ESX 4's VIB format."""
    h = local_host("esx", "3.5u5")
    assert h.run("esxupdate query") == (0, "Installed software bundles:\n", "")
    code, out, err = h.run("esxupdate --vib=/tmp/x.vib update")
    assert code == 2 and err == "esxupdate: error: no such option: --vib\n" and out.startswith("Usage: esxupdate")
    assert local_host("esxi", "5.0").run("esxupdate query")[0] == 127


def test_ifcfg_vswif0_keys_in_the_order_of_a_real_vi3_file():
    """A real VI3 service console's ifcfg-vswif0 (a notes post in the code index, host "VI3"):
    DEVICE, MACADDR, PORTGROUP, BOOTPROTO, BROADCAST, IPADDR, NETMASK, ONBOOT."""
    st = make_state("esx", "3.5u5")
    keys = [ln.split("=", 1)[0] for ln in st.files[S.IFCFG_VSWIF0].splitlines()]
    assert keys == ["DEVICE", "MACADDR", "PORTGROUP", "BOOTPROTO", "BROADCAST", "IPADDR", "NETMASK", "ONBOOT"]
    assert "PORTGROUP=Service Console" in st.files[S.IFCFG_VSWIF0]


# ---- real build numbers per update (issue 11; labctl/releases.py, cited in tests/topology/data/releases.yaml)

@pytest.mark.parametrize("flavor,version,build,expected", [
    ("esxi", "8.0u3", None, "VMware ESXi 8.0.3 build-24022510"),
    ("esxi", "8.0u2", 23825572, "VMware ESXi 8.0.2 build-23825572"),  # 8.0 U2c install media
    ("esxi", "6.7u3", None, "VMware ESXi 6.7.0 build-14320388"),  # before 7.0: x.y.0 for every update
    ("esxi", "9.0.0", None, "VMware ESXi 9.0.0 build-24755229"),  # "vmware -v" on ESX 9 still says ESXi
    ("esxi", "9.0.1", None, "VMware ESXi 9.0.1 build-24957456"),
    ("esxi", "9.1.0", 25433460, "VMware ESXi 9.1.0 build-25433460"),
])
def test_vmware_v_reports_the_build_of_the_update(flavor, version, build, expected):
    assert _run(local_host(flavor, version, build=build), "vmware -v") == expected + "\n"


def test_esxcli_system_version_get_on_esx9_matches_a_real_host():
    assert _run(local_host("esxi", "9.0.0"), "esxcli system version get") == _sample("esxcli_system_version_get_90.txt")


def test_esxcli_system_version_get_on_a_patched_7_0_u3_matches_a_real_host():
    def fields(text):
        return [tuple(x.strip() for x in line.split(":", 1)) for line in text.splitlines() if line.strip()]

    out = _run(local_host("esxi", "7.0u3", build=19193900), "esxcli system version get")
    assert fields(out) == fields(_sample("esxcli_system_version_get_70u3c.txt"))


@pytest.mark.parametrize("version,build,expected", [
    ("8.0u2", 23825572, "8.0.2-0.40.23825572"),  # KB 395110's example of 8.0 U2c
    ("8.0", None, "8.0.0-1.0.20513097"),  # 8.0 GA (KB 395110)
    ("8.0u2", None, "8.0.2-0.0.22380479"),  # 8.0 U2 (KB 395110)
    ("9.0.0", 24813472, "9.0.0-0100.24813472"),  # esx-base of ESX 9.0.0.0100 (its release notes)
    ("9.0.1", None, "9.0.1-0.24957456"),  # image ESXi_9.0.1-0.24957456 (ESX 9.0.1.0 release notes)
])
def test_vib_list_shows_the_real_esx_base_version_and_an_install_date(version, build, expected):
    import time

    out = _run(local_host("esxi", version, build=build), "esxcli software vib list")
    row = next(line.split() for line in out.splitlines() if line.startswith("esx-base "))
    assert row[1] == expected
    assert row[4] == time.strftime("%Y-%m-%d", time.gmtime())
