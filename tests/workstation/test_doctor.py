"""labctl doctor against a fake machine: temp /proc, /dev, /etc/vmware, a fake vmrun and vmware-vmx."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from labctl.workstation import doctor
from labctl.workstation.vmnet import Identity

from .conftest import install_script

ROOT = Path(__file__).resolve().parents[2]
ESX35 = ROOT / "topologies" / "esx35-ha-pair.yaml"
TRIO = ROOT / "topologies" / "esxi8-ha-trio.yaml"

CPUINFO_VT = (
    "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr vmx ept\n\nprocessor\t: 1\nflags\t\t: fpu vmx\n"
)
CPUINFO_NOVT = "processor\t: 0\nflags\t\t: fpu vme de pse tsc msr\n"
MEMINFO = "MemTotal:       {total} kB\nMemFree:         1000000 kB\nMemAvailable:   {avail} kB\n"
NETWORKING_OK = """\
VERSION=1,0
answer VNET_2_DHCP no
answer VNET_2_HOSTONLY_NETMASK 255.255.255.0
answer VNET_2_HOSTONLY_SUBNET 10.10.10.0
answer VNET_2_VIRTUAL_ADAPTER yes
answer VNET_8_NAT yes
"""


def make_machine(
    tmp_path: Path,
    *,
    cpuinfo=CPUINFO_VT,
    total_mb=32768,
    avail_mb=16384,
    swappiness=60,
    vmnet_mode=0o660,
    networking=NETWORKING_OK,
) -> Path:
    m = tmp_path / "machine"
    (m / "proc" / "sys" / "vm").mkdir(parents=True)
    (m / "proc" / "cpuinfo").write_text(cpuinfo)
    (m / "proc" / "meminfo").write_text(MEMINFO.format(total=total_mb * 1024, avail=avail_mb * 1024))
    (m / "proc" / "sys" / "vm" / "swappiness").write_text(f"{swappiness}\n")
    (m / "dev").mkdir()
    for n in (0, 1, 2, 8):
        p = m / "dev" / f"vmnet{n}"
        if os.geteuid() == 0:
            os.mknod(p, stat.S_IFCHR | vmnet_mode, os.makedev(119, n))
        else:  # pragma: no cover
            p.write_text("")
        os.chmod(p, vmnet_mode)
    (m / "etc").mkdir()
    if networking is not None:
        (m / "etc" / "networking").write_text(networking)
    src = tmp_path / "vmx.py"
    src.write_text('import sys\nsys.stderr.write("VMware Workstation 17.5.0 build-22583795 Release\\n")\n')
    install_script(m, "vmware-vmx", src)
    return m


def inputs(m: Path, environ, user=None) -> doctor.DoctorInputs:
    gid = os.stat(m / "dev" / "vmnet0").st_gid
    return doctor.DoctorInputs(
        environ=environ,
        proc_dir=m / "proc",
        dev_dir=m / "dev",
        etc_dir=m / "etc",
        vmware_vmx=m / "vmware-vmx",
        user=user or Identity("alice", 1000, frozenset({gid})),
    )


def by_name(checks):
    return {c.name: c for c in checks}


def needs_for(path: Path):
    from labctl.topology import load_topology

    return doctor.lab_needs(load_topology(path), str(path))


def test_all_good_machine(tmp_path, fake_vmrun):
    m = make_machine(tmp_path, swappiness=30)
    checks = by_name(doctor.run_checks(inputs(m, fake_vmrun.environ), needs_for(ESX35)))
    assert {n: c.status for n, c in checks.items()} == {
        "vmrun": "ok",
        "workstation-version": "ok",
        "virtualization": "ok",
        "vmnet-permissions": "ok",
        "vmnet2": "ok",
        "memory": "ok",
        "disk": checks["disk"].status,
        "swappiness": "ok",
        "host-tuning": "warn",
        "install-media": checks["install-media"].status,
    }
    assert 'prefvmx.minVmMemPct = "100"' in checks["host-tuning"].fix
    assert checks["workstation-version"].detail == "VMware Workstation 17.5.0 build-22583795"
    assert "5120 MB" in checks["memory"].detail  # 2048 + 2048 + 1024
    assert "total 48 GB" in checks["disk"].detail  # 16 + 16 + 16 (vcenter default)


def test_lab_needs_sums():
    n = needs_for(TRIO)
    assert n.memory_mb == 3 * 12288 + 14336 and n.disk_gb == 3 * 40 + 60 and n.needs_vt
    assert [v.number for v in n.vnets] == [3, 4]
    assert needs_for(ESX35).needs_vt is False


def test_broken_machine(tmp_path):
    m = make_machine(
        tmp_path,
        cpuinfo=CPUINFO_NOVT,
        total_mb=4096,
        avail_mb=2048,
        swappiness=60,
        vmnet_mode=0o600,
        networking=NETWORKING_OK.replace("10.10.10.0", "10.10.20.0"),
    )
    checks = by_name(doctor.run_checks(inputs(m, {"PATH": str(tmp_path / "empty")}), needs_for(TRIO)))
    assert checks["vmrun"].status == "fail" and "--sim" in checks["vmrun"].fix
    assert checks["virtualization"].blocks and "vmx/svm" in checks["virtualization"].detail
    v = checks["vmnet-permissions"]
    assert v.blocks and "alice cannot open vmnet0, vmnet1, vmnet2, vmnet8" in v.detail
    assert "attempted to enable promiscuous mode" in v.detail and v.fix.startswith("sudo labctl vmnet fix")
    assert checks["vmnet3"].blocks and "not configured" in checks["vmnet3"].detail
    assert checks["vmnet3"].fix == f"sudo labctl vmnet networks {TRIO} --apply-network"
    assert checks["memory"].blocks and "51200 MB" in checks["memory"].detail
    assert checks["swappiness"].status == "warn" and "sysctl vm.swappiness=40" in checks["swappiness"].fix


def test_vmnet_subnet_and_dhcp_mismatch(tmp_path, fake_vmrun):
    wrong = NETWORKING_OK.replace("10.10.10.0", "10.10.20.0").replace("VNET_2_DHCP no", "VNET_2_DHCP yes")
    m = make_machine(tmp_path, networking=wrong)
    c = by_name(doctor.run_checks(inputs(m, fake_vmrun.environ), needs_for(ESX35)))["vmnet2"]
    assert c.blocks
    assert "subnet 10.10.20.0/24, the lab needs 10.10.10.0/24" in c.detail and "DHCP on" in c.detail


def test_esx35_without_vt_is_only_a_warning(tmp_path, fake_vmrun):
    m = make_machine(tmp_path, cpuinfo=CPUINFO_NOVT)
    c = by_name(doctor.run_checks(inputs(m, fake_vmrun.environ), needs_for(ESX35)))["virtualization"]
    assert c.status == "warn" and not c.blocks


def test_old_workstation_for_new_topology(tmp_path, fake_vmrun):
    m = make_machine(tmp_path)
    src = tmp_path / "old.py"
    src.write_text('import sys\nsys.stderr.write("VMware Workstation 16.2.4 build-20089737 Release\\n")\n')
    install_script(m, "vmware-vmx", src)
    c = by_name(doctor.run_checks(inputs(m, fake_vmrun.environ), needs_for(TRIO)))["workstation-version"]
    assert c.blocks and "targets Workstation 17.5" in c.detail


def test_cli_doctor_exit_codes_and_json(run_cli, tmp_path, fake_vmrun):
    good = make_machine(tmp_path / "a", swappiness=10)
    args = [
        "--proc-dir",
        str(good / "proc"),
        "--dev-dir",
        str(good / "dev"),
        "--etc-dir",
        str(good / "etc"),
        "--vmware-vmx",
        str(good / "vmware-vmx"),
        "--preferences",
        str(tmp_path / "no-preferences"),
    ]
    r = run_cli("doctor", str(ESX35), *args, environ=fake_vmrun.environ)
    assert r.status == 0, r.out + r.err
    assert "ready for esx35-ha-pair" in r.out
    r = run_cli("doctor", str(ESX35), "--json", *args, environ=fake_vmrun.environ)
    doc = json.loads(r.out)
    assert doc["ok"] is True and doc["lab"] == "esx35-ha-pair"
    assert {c["name"] for c in doc["checks"]} >= {
        "vmrun",
        "virtualization",
        "vmnet-permissions",
        "vmnet2",
        "memory",
        "disk",
        "swappiness",
    }
    bad = make_machine(tmp_path / "b", networking=None)
    args = ["--proc-dir", str(bad / "proc"), "--dev-dir", str(bad / "dev"), "--etc-dir", str(bad / "etc")]
    args += ["--preferences", str(tmp_path / "no-preferences")]
    r = run_cli("doctor", str(ESX35), *args, environ={"PATH": str(tmp_path)})
    assert r.status == 1
    assert "FAIL  vmrun" in r.out and "fix: sudo labctl vmnet networks" in r.out
    r = run_cli("doctor", *args, environ={"PATH": str(tmp_path)})  # no topology: machine checks only
    assert r.status == 1 and "vmnet2" not in r.out


@pytest.mark.parametrize("topo", sorted((ROOT / "topologies").glob("*.yaml")))
def test_every_example_topology_works_with_doctor(topo, tmp_path, fake_vmrun):
    m = make_machine(tmp_path, networking="VERSION=1,0\n")
    checks = doctor.run_checks(inputs(m, fake_vmrun.environ), needs_for(topo))
    assert any(c.name.startswith("vmnet") and c.name != "vmnet-permissions" for c in checks)


def test_host_tuning_from_config_and_preferences(tmp_path, fake_vmrun):
    m = make_machine(tmp_path)
    (m / "etc" / "config").write_text('prefvmx.minVmMemPct = "100"\nmainMem.partialLazySave = "FALSE"\n')
    prefs_file = tmp_path / "preferences"
    prefs_file.write_text('mainMem.partialLazyRestore = "false"\n')
    inp = inputs(m, fake_vmrun.environ)
    assert doctor.check_host_tuning(inp, None).status == "warn"
    inp.preferences = prefs_file
    assert doctor.check_host_tuning(inp, None).status == "ok"


def test_install_media_and_unwritable_vm_dir(tmp_path, fake_vmrun):
    import dataclasses

    m = make_machine(tmp_path)
    needs = needs_for(ESX35)
    iso = tmp_path / "esx.iso"
    iso.write_text("")
    ok = dataclasses.replace(needs, isos=(("esx1", str(iso)),))
    assert by_name(doctor.run_checks(inputs(m, fake_vmrun.environ), ok))["install-media"].status == "ok"
    missing = dataclasses.replace(needs, isos=(("esx1", str(tmp_path / "nope.iso")),))
    c = by_name(doctor.run_checks(inputs(m, fake_vmrun.environ), missing))["install-media"]
    assert c.status == "warn" and "esx1: " in c.detail and not c.blocks
    assert [vm for vm, _ in needs.isos] == ["esx1"]  # esx2 is a linked clone: no install media needed
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    unwritable = dataclasses.replace(needs, vm_dir=ro / "lab")
    inp = inputs(m, fake_vmrun.environ)
    disk = doctor.check_disk(inp, unwritable)
    if os.geteuid() != 0:  # pragma: no cover - root may write anywhere
        assert disk.blocks and "not writable" in disk.detail
    blocker = tmp_path / "afile"
    blocker.write_text("")
    disk = doctor.check_disk(inp, dataclasses.replace(needs, vm_dir=blocker / "lab"))
    assert disk.blocks and f"{blocker} is a file" in disk.detail
