"""vmware-vdiskmanager disk creation with a fake tool on PATH that records its argv and creates the file."""

from __future__ import annotations

import json
import os

import pytest

from labctl.errors import EnvironmentProblem, LabctlError
from labctl.workstation import disks

from .conftest import install_script

FAKE = """
import json, os, sys, time
with open(os.environ["FAKE_VDISK_LOG"], "a") as f:
    f.write(json.dumps(sys.argv[1:]) + "\\n")
time.sleep(float(os.environ.get("FAKE_VDISK_SLEEP", "0")))
if os.environ.get("FAKE_VDISK_FAIL"):
    print("Creating disk '%s'" % sys.argv[-1])
    print("Failed to create disk: The file already exists (0x500000000c)")
    sys.exit(1)
open(sys.argv[-1], "w").write("# Disk DescriptorFile\\n")
print("Virtual disk creation successful.")
"""


@pytest.fixture
def vdisk(tmp_path):
    src = tmp_path / "fake_vdisk.py"
    src.write_text(FAKE)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    install_script(bin_dir, "vmware-vdiskmanager", src)
    log = tmp_path / "vdisk.jsonl"
    environ = {"PATH": f"{bin_dir}{os.pathsep}/usr/bin{os.pathsep}/bin", "FAKE_VDISK_LOG": str(log)}

    def calls():
        return [json.loads(ln) for ln in log.read_text().splitlines()] if log.exists() else []

    return environ, calls


def test_create_is_idempotent(vdisk, tmp_path):
    environ, calls = vdisk
    disk = tmp_path / "vm" / "esx1.vmdk"
    disk.parent.mkdir()
    disks.create_disk(disk, 16, "lsilogic", environ=environ)
    assert calls() == [["-c", "-s", "16GB", "-a", "lsilogic", "-t", "0", str(disk)]]
    assert disk.is_file()
    disks.create_disk(disk, 16, "lsilogic", environ=environ)
    assert len(calls()) == 1


def test_failure_quotes_the_tool(vdisk, tmp_path):
    environ, _ = vdisk
    with pytest.raises(LabctlError, match="Failed to create disk: The file already exists"):
        disks.create_disk(tmp_path / "x.vmdk", 8, "ide", environ=dict(environ, FAKE_VDISK_FAIL="1"))


def test_timeout(vdisk, tmp_path):
    environ, _ = vdisk
    with pytest.raises(LabctlError, match="within 0.3 s"):
        disks.create_disk(
            tmp_path / "slow.vmdk", 8, "ide", environ=dict(environ, FAKE_VDISK_SLEEP="5"), timeout=0.3
        )


@pytest.mark.skipif(os.path.exists("/usr/bin/vmware-vdiskmanager"), reason="Workstation installed here")
def test_missing_tool(tmp_path):
    with pytest.raises(EnvironmentProblem, match="vmware-vdiskmanager was not found"):
        disks.create_disk(tmp_path / "x.vmdk", 8, "ide", environ={"PATH": str(tmp_path)})
