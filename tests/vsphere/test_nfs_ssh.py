"""NFS over SSH: the pure list parsers (reference samples), and converge/idempotency against simulated hosts'
own command handlers (labctl.sim SimHost running the real shell and command registry, no network)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from labctl.vsphere.model import NfsSpec
from labctl.vsphere.nfs_ssh import (
    NasMount, SshHost, add_command, converge_host, list_command, parse_esxcfg_nas_list, parse_esxcli_nfs_list,
)

ESXCLI_6 = """\
Volume Name  Host          Share                 Accessible  Mounted  Read-Only   isPE  Hardware Acceleration
-----------  ------------  --------------------  ----------  -------  ---------  -----  ---------------------
nfsbackup    192.168.1.22  /volume1/vmnfsbackup        true     true      false  false  Not Supported
"""

ESXCLI_5_SPACES = """\
Volume Name     Host        Share         Accessible  Mounted  Hardware Acceleration
--------------  ----------  ------------  ----------  -------  ---------------------
lab iso store   10.0.0.1    /export/iso         true    false  Not Supported
"""


def test_parse_esxcli_list_6x_exact_sample():
    assert parse_esxcli_nfs_list(ESXCLI_6) == [NasMount("nfsbackup", "192.168.1.22", "/volume1/vmnfsbackup",
                                                        False, True)]


def test_parse_esxcli_list_5x_without_read_only_and_names_with_spaces():
    assert parse_esxcli_nfs_list(ESXCLI_5_SPACES) == [NasMount("lab iso store", "10.0.0.1", "/export/iso", None,
                                                               False)]
    assert parse_esxcli_nfs_list("") == []


def test_parse_esxcfg_nas_list_variants():
    text = ("NAS_1 is /vol/data1 from 10.178.250.10\n"
            "Win2k8 Share is /nfs_share from 10.131.9.153 mounted\n"
            "nfs-a is /export/a from nas.lab mounted available\n"
            "old is /x from 10.0.0.9 unmounted\n")
    assert parse_esxcfg_nas_list(text) == [
        NasMount("NAS_1", "10.178.250.10", "/vol/data1", None, None),
        NasMount("Win2k8 Share", "10.131.9.153", "/nfs_share", None, True),
        NasMount("nfs-a", "nas.lab", "/export/a", None, True),
        NasMount("old", "10.0.0.9", "/x", None, False),
    ]
    assert parse_esxcfg_nas_list("No NAS datastore found\n") == []


def test_commands_per_platform():
    spec = NfsSpec("ds", "10.0.0.1", "/e", ("h",), readonly=True)
    assert list_command("esx", (3, 5, 5)) == ["esxcfg-nas", "-l"]
    assert list_command("esxi", (4, 1, 0)) == ["esxcfg-nas", "-l"]
    assert list_command("esxi", (5, 0, 0)) == ["esxcli", "storage", "nfs", "list"]
    assert add_command("esx", (4, 0, 0), spec) == ["esxcfg-nas", "-a", "-o", "10.0.0.1", "-s", "/e", "-y", "ds"]
    assert add_command("esxi", (8, 0, 2), spec) == ["esxcli", "storage", "nfs", "add", "-H", "10.0.0.1", "-s", "/e",
                                                    "-v", "ds", "-r"]


@dataclass
class R:
    exit_status: int
    stdout: str
    stderr: str


def sim_host(flavor, version):
    from labctl.sim import state as S
    from labctl.sim.host import SimHost

    st = S.fresh_install("h", flavor, version, nic_macs=["00:50:56:00:00:01"], ip="192.168.69.11",
                         netmask="255.255.255.0")
    return SimHost(st)


def runner(host, log):
    from labctl.remote.command import sh

    def run(_name, argv):
        line = sh(argv)
        log.append(line)
        return R(*host.run(line))

    return run


@pytest.mark.parametrize("flavor,version", [("esx", "3.5u5"), ("esxi", "4.1"), ("esxi", "5.5"), ("esxi", "7.0u2")])
def test_converge_rerun_conflict_and_denied(flavor, version):
    host = sim_host(flavor, version)
    v = host.state.version_info
    log: list[str] = []
    run = runner(host, log)
    specs = (NfsSpec("lab iso", "10.0.0.1", "/export/iso", ("h",)), NfsSpec("vms", "10.0.0.1", "/export/vms", ("h",),
                                                                          readonly=True))
    target = SshHost("h", flavor, v, specs)
    first = converge_host(run, target, dry_run=False)
    assert first.ok, first.failures
    assert [c.description for c in first.changes] == ["mount 10.0.0.1:/export/iso as lab iso",
                                                      "mount 10.0.0.1:/export/vms as vms read-only"]
    assert {(m.volume_name, m.share, m.readonly) for m in host.state.nfs} == {("lab iso", "/export/iso", False),
                                                                             ("vms", "/export/vms", True)}
    log.clear()
    again = converge_host(run, target, dry_run=False)
    assert again.ok and again.changes == [] and len(log) == 1  # one listing, no add

    other = SshHost("h", flavor, v, (NfsSpec("vms", "10.0.0.2", "/elsewhere", ("h",)),))
    conflict = converge_host(run, other, dry_run=False)
    assert len(conflict.failures) == 1
    assert "10.0.0.1:/export/vms" in conflict.failures[0].message and "10.0.0.2:/elsewhere" in conflict.failures[0].message

    host.state.extra["nfs_unreachable"] = ["10.0.0.3"]
    denied = converge_host(run, SshHost("h", flavor, v, (NfsSpec("x", "10.0.0.3", "/x", ("h",)),)), dry_run=False)
    assert [f.target for f in denied.failures] == ["h"]
    assert "denied the mount request" in denied.failures[0].message

    dry = converge_host(run, SshHost("h", flavor, v, (NfsSpec("y", "10.0.0.1", "/y", ("h",)),)), dry_run=True)
    assert [c.description for c in dry.changes] == ["mount 10.0.0.1:/y as y"]
    assert "y" not in {m.volume_name for m in host.state.nfs}


def test_sim_handlers_exact_texts():
    esx = sim_host("esx", "3.5u5")
    assert esx.run("esxcfg-nas -a -o 10.131.9.153 -s /nfs_share Win2k8_Share") == (
        0, "Connecting to NAS volume: Win2k8_Share\nWin2k8_Share created and connected.\n", "")
    assert esx.run("esxcli storage nfs list")[0] == 127  # no esxcli storage on ESX classic
    esxi = sim_host("esxi", "6.7")
    assert esxi.run("esxcli storage nfs add -H 192.168.1.22 -s /volume1/vmnfsbackup -v nfsbackup")[0] == 0
    assert esxi.run("esxcli storage nfs list") == (0, ESXCLI_6, "")
    code, out, _ = esxi.run("esxcli storage nfs add -H 192.168.1.22 -s /volume1/vmnfsbackup -v again")
    assert code == 1 and out == ("Unable to create new NAS volume.  192.168.1.22:/volume1/vmnfsbackup is already "
                                 "exported by a volume with the name nfsbackup\n")
    assert esxi.run("esxcli storage nfs remove -v nfsbackup")[0] == 0
    assert esxi.run("esxcfg-nas -l") == (0, "No NAS datastore found\n", "")
    assert sim_host("esxi", "8.0u2").run("esxcfg-nas -l")[0] == 127
