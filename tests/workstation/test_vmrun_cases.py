"""vmrun outputs as data: each `cases/vmrun/*.json` is {command, exit, stdout, result | error}.

Adding a captured output from a real Workstation is adding a file. Every case runs twice: through the pure
interpreter, and through `VmrunDriver` against the fake vmrun replaying exactly that output.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from labctl.workstation import vmrun_output as out
from labctl.workstation.driver import VmrunDriver, VmrunError

CASES = sorted((Path(__file__).parent / "cases" / "vmrun").glob("*.json"))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_interpret(path):
    case = load(path)
    if "error" in case:
        with pytest.raises((out.VmrunFailure, out.OutputFormatError)) as ei:
            out.interpret(case["command"], case["exit"], case["stdout"])
        assert case["error"] in str(ei.value)
    else:
        assert out.interpret(case["command"], case["exit"], case["stdout"]) == case["result"]


def _call(driver: VmrunDriver, command: str, vmx: Path):
    if command == "list":
        return [str(p) for p in driver.list_running()]
    if command == "listSnapshots":
        return driver.list_snapshots(vmx)
    if command == "getGuestIPAddress":
        return driver.guest_ip(vmx)
    if command == "readVariable":
        value = driver.read_guest_var(vmx, "labctl.hostname")
        return "" if value is None else value  # the driver's None for "unset" is the parser's empty line
    if command == "start":
        return driver.start(vmx)
    if command == "stop":
        return driver.stop(vmx)
    if command == "snapshot":
        return driver.snapshot(vmx, "base")
    if command == "clone":
        return driver.clone(vmx, vmx.parent / "clone" / "clone.vmx", snapshot="base", clone_name="clone")
    raise AssertionError(command)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_driver_replay(path, fake_vmrun, tmp_path):
    case = load(path)
    vmx = tmp_path / "vm" / "vm.vmx"
    vmx.parent.mkdir()
    vmx.write_text('.encoding = "UTF-8"\n')
    exit_code = case["exit"] if case["exit"] < 256 else 255  # a POSIX process cannot exit 4294967295
    fake_vmrun.canned({"command": case["command"], "stdout": case["stdout"], "exit": exit_code})
    d = VmrunDriver.find(fake_vmrun.environ, vmware_vmx=None)
    if "error" in case:
        with pytest.raises(VmrunError) as ei:
            _call(d, case["command"], vmx)
        assert case["error"] in ei.value.message and f"vmrun {case['command']}" in ei.value.message
    else:
        assert _call(d, case["command"], vmx) == case["result"]
