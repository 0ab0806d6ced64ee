"""VmrunDriver against a fake vmrun on PATH that records its calls and answers with real vmrun texts."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from labctl.errors import EnvironmentProblem, ExitStatus, RefusedError
from labctl.workstation import driver as drv
from labctl.workstation.driver import Timeouts, VmrunDriver, VmrunError, find_vmrun, windows_install_path

from .conftest import install_script

HERE = Path(__file__).resolve().parent


def make_vmx(path: Path, name: str = "esx1") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f'.encoding = "UTF-8"\ndisplayName = "{name}"\nmemsize = "2048"\n')
    return path


@pytest.fixture
def driver(fake_vmrun):
    return VmrunDriver.find(fake_vmrun.environ, vmware_vmx=None)


def test_find_vmrun_prefers_path(fake_vmrun):
    assert find_vmrun(fake_vmrun.environ, system="Linux") == fake_vmrun.exe


def test_find_vmrun_linux_default_and_missing(tmp_path):
    fallback = tmp_path / "usr-bin-vmrun"
    assert find_vmrun({"PATH": str(tmp_path / "none")}, system="Linux", linux_default=fallback) is None
    install_script(tmp_path, "usr-bin-vmrun", HERE / "fake_vmrun.py")
    assert find_vmrun({"PATH": str(tmp_path / "none")}, system="Linux", linux_default=fallback) == fallback


def test_find_vmrun_windows_registry(tmp_path):
    (tmp_path / "vmrun.exe").write_text("")
    seen = []

    def registry(key, value):
        seen.append((key, value))
        return str(tmp_path) if "WOW6432Node" in key else None

    assert find_vmrun({"PATH": ""}, system="Windows", registry=registry) == tmp_path / "vmrun.exe"
    assert seen[0] == (r"SOFTWARE\WOW6432Node\VMware, Inc.\VMware Workstation", "InstallPath")
    # 32-bit key as fallback
    assert windows_install_path(lambda k, v: "C:\\VMW" if "WOW6432Node" not in k else None) == "C:\\VMW"


def test_missing_vmrun_is_environment_problem(tmp_path):
    with pytest.raises(EnvironmentProblem) as ei:
        drv.workstation_driver({"PATH": str(tmp_path)}, vmware_vmx=None)
    assert ei.value.status == ExitStatus.ENVIRONMENT
    assert "--sim" in ei.value.hint


def test_list_snapshot_start_stop_roundtrip(fake_vmrun, driver, tmp_path):
    vmx = make_vmx(tmp_path / "vms" / "esx1" / "esx1.vmx")
    assert driver.list_running() == []
    driver.start(vmx)
    assert driver.list_running() == [vmx]
    assert driver.is_running(vmx)
    driver.snapshot(vmx, "base")
    driver.snapshot(vmx, "after install")
    assert driver.list_snapshots(vmx) == ["base", "after install"]
    assert driver.guest_ip(vmx) == "192.0.2.10"
    driver.stop(vmx, hard=True)
    assert not driver.is_running(vmx)
    calls = fake_vmrun.calls()
    assert calls[1] == ["-T", "ws", "start", str(vmx), "nogui"]
    assert ["-T", "ws", "snapshot", str(vmx), "after install"] in calls  # one argv element, no shell quoting
    assert ["-T", "ws", "getGuestIPAddress", str(vmx), "-wait"] in calls
    assert calls[-2] == ["-T", "ws", "stop", str(vmx), "hard"]
    assert all(c[:2] == ["-T", "ws"] for c in calls)


def test_stop_not_powered_on_names_vm_and_command(driver, tmp_path):
    vmx = make_vmx(tmp_path / "esx2.vmx")
    with pytest.raises(VmrunError) as ei:
        driver.stop(vmx)
    e = ei.value
    assert e.not_powered_on and e.exit_code == 255 and e.command == "stop"
    assert str(vmx) in e.message and "vmrun stop" in e.message
    assert f"The virtual machine is not powered on: {vmx}" in e.message
    assert e.status == ExitStatus.FAILED


def test_cannot_open_vm(driver, tmp_path):
    missing = tmp_path / "nope" / "ghost.vmx"
    with pytest.raises(VmrunError) as ei:
        driver.start(missing)
    assert ei.value.cannot_open
    assert "Cannot open VM" in ei.value.message and "vmrun start" in ei.value.message
    assert "exists" in ei.value.hint


def test_error_line_with_exit_zero_is_a_failure(fake_vmrun, driver, tmp_path):
    vmx = make_vmx(tmp_path / "esx1.vmx")
    fake_vmrun.canned(
        {
            "command": "snapshot",
            "stdout": "Error: Insufficient permissions in host operating system\n",
            "exit": 0,
        }
    )
    with pytest.raises(VmrunError) as ei:
        driver.snapshot(vmx, "base")
    assert ei.value.exit_code == 0
    assert "Insufficient permissions" in ei.value.message and "vmrun snapshot" in ei.value.message


def test_nonzero_exit_without_error_line_is_a_failure(fake_vmrun, driver, tmp_path):
    vmx = make_vmx(tmp_path / "esx1.vmx")
    fake_vmrun.canned({"command": "start", "stdout": "", "exit": 1})
    with pytest.raises(VmrunError) as ei:
        driver.start(vmx)
    assert ei.value.exit_code == 1


def test_windows_exit_code_4294967295(fake_vmrun, driver, tmp_path):
    fake_vmrun.canned({"command": "list", "stdout": "Error: Unable to connect to host.\n", "exit": 255})
    with pytest.raises(VmrunError, match="Unable to connect to host"):
        driver.list_running()


def test_clone_linked_argv_and_vmsd(fake_vmrun, driver, tmp_path):
    src = make_vmx(tmp_path / "golden" / "golden.vmx", "golden")
    dst = tmp_path / "lab" / "esx2" / "esx2.vmx"
    with pytest.raises(VmrunError, match="Invalid snapshot name 'base'"):
        driver.clone(src, dst, snapshot="base", clone_name="esx2")
    driver.snapshot(src, "base")
    driver.clone(src, dst, snapshot="base", clone_name="esx2")
    assert fake_vmrun.calls()[-1] == [
        "-T",
        "ws",
        "clone",
        str(src),
        str(dst),
        "linked",
        "-snapshot=base",
        "-cloneName=esx2",
    ]
    assert 'displayName = "esx2"' in dst.read_text()
    assert f'cloneOf0 = "{src}"' in dst.with_suffix(".vmsd").read_text()
    with pytest.raises(RefusedError):
        driver.clone(src, dst, snapshot="base", clone_name="esx2")


def test_full_clone(fake_vmrun, driver, tmp_path):
    src = make_vmx(tmp_path / "golden.vmx")
    dst = tmp_path / "full" / "copy.vmx"
    driver.clone(src, dst, snapshot="base", clone_name="copy", linked=False)
    assert fake_vmrun.calls()[-1][5] == "full"
    assert not dst.with_suffix(".vmsd").exists()


def test_timeout_names_vm(fake_vmrun, tmp_path):
    d = VmrunDriver.find(fake_vmrun.environ, vmware_vmx=None, timeouts=Timeouts(start=0.5))
    vmx = make_vmx(tmp_path / "slow.vmx")
    fake_vmrun.canned({"command": "start", "sleep": 5})
    t0 = time.monotonic()
    with pytest.raises(VmrunError) as ei:
        d.start(vmx)
    assert time.monotonic() - t0 < 4
    assert "timed out after 0.5 s" in ei.value.message and str(vmx) in ei.value.message
    assert ei.value.exit_code is None


def test_garbled_list_output_is_an_error(fake_vmrun, driver):
    fake_vmrun.canned({"command": "list", "stdout": "Total running VMs: 2\n/a.vmx\n", "exit": 0})
    with pytest.raises(VmrunError, match="announced 2"):
        driver.list_running()


def test_guest_ip_tools_not_running(fake_vmrun, driver, tmp_path):
    vmx = make_vmx(tmp_path / "esx1.vmx")
    fake_vmrun.canned(
        {
            "command": "getGuestIPAddress",
            "stdout": "Error: The VMware Tools are not running in the virtual machine: " + str(vmx) + "\n",
            "exit": 255,
        }
    )
    with pytest.raises(VmrunError) as ei:
        driver.guest_ip(vmx)
    assert "Tools" in ei.value.hint


def test_version_from_vmware_vmx(fake_vmrun, tmp_path):
    src = tmp_path / "vmx_src.py"
    src.write_text('import sys\nsys.stderr.write("VMware Workstation 17.5.0 build-22583795 Release\\n")\n')
    vmx_bin = install_script(tmp_path, "vmware-vmx", src)
    d = VmrunDriver.find(fake_vmrun.environ, vmware_vmx=vmx_bin)
    v = d.version()
    assert (v.product, v.version, v.build, v.major) == ("Workstation", "17.5.0", 22583795, 17)
    assert VmrunDriver.find(fake_vmrun.environ, vmware_vmx=tmp_path / "absent").version() is None


def test_delete_vm(driver, fake_vmrun, tmp_path):
    vmx = make_vmx(tmp_path / "lab" / "x" / "x.vmx")
    driver.delete_vm(vmx)
    assert not vmx.parent.exists()


def test_new_driver_keeps_first_that_verifies(tmp_path, fake_vmrun):
    def broken():
        return VmrunDriver(tmp_path / "missing-vmrun", vmware_vmx=None)

    choice = drv.new_driver([broken, lambda: VmrunDriver.find(fake_vmrun.environ, vmware_vmx=None)])
    assert choice.driver.vmrun == fake_vmrun.exe
    assert "missing-vmrun" in choice.skipped[0]


def test_read_guest_var_argv_value_and_unset(fake_vmrun, driver, tmp_path):
    vmx = make_vmx(tmp_path / "vms" / "esx2" / "esx2.vmx", "esx2")
    with vmx.open("a") as f:
        f.write('guestinfo.labctl.hostname = "esx2.lab.local"\n')
    with pytest.raises(VmrunError) as ei:
        driver.read_guest_var(vmx, "labctl.hostname")
    assert ei.value.not_powered_on and "readVariable" in ei.value.message
    driver.start(vmx)
    assert driver.read_guest_var(vmx, "labctl.hostname") == "esx2.lab.local"
    assert driver.read_guest_var(vmx, "guestinfo.labctl.hostname") == "esx2.lab.local"  # prefix given: kept
    assert driver.read_guest_var(vmx, "labctl.hostkey") is None  # vmrun's empty line: unset
    assert ["-T", "ws", "readVariable", str(vmx), "guestVar", "guestinfo.labctl.hostname"] in fake_vmrun.calls()
    with pytest.raises(drv.LabctlError, match="not a guest variable name"):
        driver.read_guest_var(vmx, "labctl.host key")
