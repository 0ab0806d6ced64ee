"""Pure parsers for vmrun output."""

from __future__ import annotations

import pytest

from labctl.workstation import vmrun_output as out


def test_list():
    text = "Total running VMs: 2\n/vms/esx1/esx1.vmx\n/vms/my vm/my vm.vmx\n"
    assert out.parse_list(text) == ["/vms/esx1/esx1.vmx", "/vms/my vm/my vm.vmx"]
    assert out.parse_list("Total running VMs: 0\n") == []
    assert out.parse_list("Total running VMs: 1\r\nC:\\VMs\\esx1\\esx1.vmx\r\n") == [
        "C:\\VMs\\esx1\\esx1.vmx"
    ]


@pytest.mark.parametrize("bad", ["", "Running: 1\n/a.vmx", "Total running VMs: 3\n/a.vmx\n"])
def test_list_rejects(bad):
    with pytest.raises(out.OutputFormatError):
        out.parse_list(bad)


def test_list_snapshots():
    assert out.parse_list_snapshots("Total snapshots: 2\nbase\nafter install\n") == ["base", "after install"]
    assert out.parse_list_snapshots("Total snapshots: 0\n") == []
    with pytest.raises(out.OutputFormatError):
        out.parse_list_snapshots("base\n")


def test_errors():
    assert out.error_message("Error: The virtual machine is not powered on: /v/a.vmx\n") == (
        "The virtual machine is not powered on: /v/a.vmx"
    )
    assert out.error_message("Total running VMs: 0\n") is None
    assert out.is_failure(0, "Error: Invalid snapshot name 'base'\n")
    assert out.is_failure(255, "")
    assert out.is_failure(4294967295, "")
    assert not out.is_failure(0, "Total snapshots: 0\n")


def test_guest_ip():
    assert out.parse_guest_ip("192.168.69.11\n") == "192.168.69.11"
    for bad in ("unknown\n", "", "300.1.1.1"):
        with pytest.raises(out.OutputFormatError):
            out.parse_guest_ip(bad)


def test_vmx_version():
    v = out.parse_vmx_version("VMware Workstation 16.2.4 build-20089737 Release\n")
    assert str(v) == "VMware Workstation 16.2.4 build-20089737" and v.major == 16
    assert out.parse_vmx_version("VMware Player 6.0.0 build-1295980 Release").product == "Player"
    assert out.parse_vmx_version("vmware-vmx: unknown option") is None


def test_same_vmx():
    assert out.same_vmx("/a/b.vmx", "/a//b.vmx")
    assert out.same_vmx("C:\\VMs\\A.vmx", "c:/vms/a.vmx")
    assert not out.same_vmx("/a/b.vmx", "/a/B.vmx")
