"""The simulated installer: a blank VM boots its CD per firmware, reads the kickstart from the KS CD, installs
what the kickstart says (the version and build of the ISO), and nothing more.

Media are made the way the pipeline makes them: a synthetic installer ISO of the era (`labctl.iso.synthetic`)
patched with `labctl.iso.patch.patch_copy` (ks=cdrom:/KS.CFG in both BOOT.CFGs, or the isolinux append line), and
a kickstart CD from `labctl.iso.kickstart` carrying the kickstart rendered from the real templates
(`labctl.render.kickstart.render_kickstart`).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from labctl.iso import synthetic
from labctl.iso.kickstart import write_kickstart_iso
from labctl.iso.patch import patch_copy
from labctl.render import cryptpw
from labctl.sim import installer
from labctl.sim import state as S
from labctl.sim.host import SimHost
from labctl.topology import load_topology

from .installkit import PASSWORD, installer_iso, kickstart


# (flavor, version) of every era the installer supports, with the firmware its .vmx template uses
ERAS = [
    ("esx", "3.5u5", "bios"),
    ("esx", "4.1", "bios"),
    ("esxi", "4.1", "bios"),
    ("esxi", "5.5", "bios"),
    ("esxi", "6.7u3", "bios"),
    ("esxi", "6.7u3", "efi"),
    ("esxi", "7.0u3", "efi"),
    ("esxi", "8.0u2", "efi"),
    ("esxi", "8.0u2", "bios"),
    ("esx", "9.0.0", "efi"),
]


def topology(tmp_path: Path, flavor: str, version: str, firstboot: list[str] = ()) -> object:
    lines = "".join(f"\n        - {line!r}" for line in firstboot) or " []"
    text = f"""\
lab: inst
workstation: {{version: "17.5", vm_dir: {tmp_path / 'vms'}}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24, gateway: 192.168.69.1}}
esx_hosts:
  - name: esx1
    flavor: {flavor}
    version: "{version}"
    nics: [lan]
    management: {{network: lan, ip: 192.168.69.11}}
    install:
      firstboot:{lines}
ssh: {{user: root}}
"""
    path = tmp_path / "lab.yaml"
    path.write_text(text)
    return load_topology(path)


def ks_iso(tmp_path: Path, text: str, name: str = "ks.iso") -> Path:
    path = tmp_path / name
    write_kickstart_iso(path, text)
    return path


def kickstart_for(topo, flavor: str, version: str) -> str:
    return kickstart(topo, "esx1")


def vmx_config(cds: list[Path], *, firmware: str = "bios", sata: bool = True,
               mac: str = "00:50:56:01:00:01", order: str | None = "hdd,cdrom") -> dict[str, str]:
    cfg = {"displayName": "esx1", "ethernet0.present": "TRUE", "ethernet0.addressType": "static",
           "ethernet0.address": mac}
    if firmware == "efi":
        cfg["firmware"] = "efi"
    if order:
        cfg["bios.bootOrder"] = order
    ctrl = "sata0" if sata else "ide1"
    cfg[f"{ctrl}.present"] = "TRUE"
    for unit, iso in enumerate(cds, start=1 if sata else 0):
        dev = f"{ctrl}:{unit}"
        cfg.update({f"{dev}.present": "TRUE", f"{dev}.deviceType": "cdrom-image", f"{dev}.fileName": str(iso),
                    f"{dev}.startConnected": "TRUE"})
    return cfg


def power_on(tmp_path: Path, cfg: dict[str, str]) -> tuple[str, str]:
    hdir, log = tmp_path / "hosts" / "esx1", tmp_path / "esx1.vmware.log"
    result = installer.power_on(hdir, cfg, log=log, vm_name="esx1")
    assert result in installer.RESULTS
    return result, log.read_text() if log.exists() else ""


def booted_host(tmp_path: Path) -> SimHost:
    """The installed host after its first boot, with its boot scripts run (as the host's process does)."""
    hdir = tmp_path / "hosts" / "esx1"
    host = SimHost(S.load_state(hdir), hdir)
    host.run_boot_scripts()
    return host


@pytest.mark.parametrize("flavor, version, firmware", ERAS, ids=lambda v: str(v))
def test_kickstart_install_per_era(tmp_path, flavor, version, firmware):
    topo = topology(tmp_path, flavor, version)
    ks = kickstart_for(topo, flavor, version)
    inst = installer_iso(tmp_path, flavor, version)
    from labctl.iso.image import inspect_iso

    media = inspect_iso(inst)
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)], firmware=firmware,
                                                sata=firmware == "efi"))
    assert result == "installed", log
    host = booted_host(tmp_path)
    st = host.state
    assert st.flavor == ("esx" if flavor == "esx" and not version.startswith("9") else "esxi")
    assert st.version_info[:2] == media.version.release and str(S.build_of(st)) == media.build
    mgmt = st.interface(st.management_name)
    assert (mgmt.ip, mgmt.netmask, st.gateway, st.hostname) == ("192.168.69.11", "255.255.255.0",
                                                                "192.168.69.1", "esx1")
    assert st.root_password_hash.startswith("$6$" if st.release >= (6, 0) else "$1$")
    assert cryptpw.verify(PASSWORD, st.root_password_hash)
    assert host.reachable(), log  # the kickstart's %firstboot / %post turned SSH on
    if st.is_classic:
        assert st.root_login_allowed  # %post allowed root over SSH (PermitRootLogin yes)


def test_version_and_build_come_from_the_iso_not_the_topology(tmp_path):
    topo = topology(tmp_path, "esxi", "8.0u2")  # the topology says 8.0 U2; the CD is 8.0 U3 build 24022510
    inst = installer_iso(tmp_path, "esxi", "8.0u3", build="24022510")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, kickstart_for(topo, "esxi", "8.0u2"))]))
    assert result == "installed", log
    st = S.load_state(tmp_path / "hosts" / "esx1")
    assert st.version_info == (8, 0, 3) and S.build_of(st) == 24022510


def test_no_kickstart_waits_at_the_eula(tmp_path):
    inst = installer_iso(tmp_path, "esxi", "8.0u2", patched=False)  # stock media: no ks= in kernelopt
    topo = topology(tmp_path, "esxi", "8.0u2")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, kickstart_for(topo, "esxi", "8.0u2"))],
                                                firmware="efi"))
    assert result == "eula" and "EULA" in log and "no ks=" in log
    assert not (tmp_path / "hosts" / "esx1" / "state.json").exists()  # nothing installed, nothing to answer SSH
    result, _ = power_on(tmp_path, vmx_config([inst], firmware="efi"))
    assert result == "eula"  # still at the console at the next power-on


def test_kickstart_named_but_not_on_any_cd_fails(tmp_path):
    inst = installer_iso(tmp_path, "esxi", "7.0u3")
    result, log = power_on(tmp_path, vmx_config([inst], firmware="efi"))
    assert result == "failed"
    assert "cannot find kickstart file on cd-rom with path -- /KS.CFG" in log


def test_lowercase_ks_path_is_not_found_by_the_esxi_installer(tmp_path):
    src = tmp_path / "stock.iso"
    synthetic.write_esxi_iso(src, "8.0u2")
    inst = tmp_path / "lower.iso"
    patch_copy(src, inst, ks="cdrom:/ks.cfg")
    topo = topology(tmp_path, "esxi", "8.0u2")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, kickstart_for(topo, "esxi", "8.0u2"))]))
    assert result == "failed" and "with path -- /ks.cfg" in log  # the ISO 9660 name is KS.CFG


def test_unknown_command_stops_the_install_with_the_installers_text(tmp_path):
    topo = topology(tmp_path, "esxi", "8.0u2")
    ks = kickstart_for(topo, "esxi", "8.0u2").replace("vmaccepteula\n", "vmaccepteula\nenablessh --now\n")
    inst = installer_iso(tmp_path, "esxi", "8.0u2")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)]))
    assert result == "failed"
    assert "error:/KS.CFG:line" in log and "unknown command 'enablessh'" in log
    assert not (tmp_path / "hosts" / "esx1" / "state.json").exists()


@pytest.mark.parametrize("drop, why", [
    ("rootpw", "rootpw command was not specified"),
    ("vmaccepteula", "vmaccepteula command was not specified"),
    ("install", "one of install, installorupgrade or upgrade is required"),
])
def test_missing_required_command_fails(tmp_path, drop, why):
    topo = topology(tmp_path, "esxi", "8.0u2")
    ks = "".join(ln for ln in kickstart_for(topo, "esxi", "8.0u2").splitlines(keepends=True)
                 if not ln.startswith(drop))
    inst = installer_iso(tmp_path, "esxi", "8.0u2")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)]))
    assert result == "failed" and why in log


def test_classic_unknown_command_is_anacondas_error(tmp_path):
    topo = topology(tmp_path, "esx", "3.5u5")
    ks = kickstart_for(topo, "esx", "3.5u5").replace("skipx\n", "skipx\nvmaccepteula2\n")
    inst = installer_iso(tmp_path, "esx", "3.5u5")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)], sata=False))
    assert result == "failed"
    assert "error was found while parsing the kickstart" in log and "unknown command 'vmaccepteula2'" in log


def test_wrong_ssh_command_in_firstboot_leaves_the_host_without_ssh(tmp_path):
    topo = topology(tmp_path, "esxi", "8.0u2")
    ks = kickstart_for(topo, "esxi", "8.0u2")
    assert "vim-cmd hostsvc/enable_ssh\nvim-cmd hostsvc/start_ssh\n" in ks
    ks = ks.replace("vim-cmd hostsvc/enable_ssh\nvim-cmd hostsvc/start_ssh\n",
                    "vim-cmd hostsvc/enable_sshd\nvim-cmd hostsvc/start_sshd\n")
    inst = installer_iso(tmp_path, "esxi", "8.0u2")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)], firmware="efi"))
    assert result == "installed", log  # the install itself is fine ...
    host = booted_host(tmp_path)
    assert not host.ssh_running() and not host.reachable()  # ... but SSH never comes up
    host.reboot(delay=0)  # nor after a reboot: its policy was never turned on
    assert host.wait_up(10) and not host.reachable()


def test_ssh_is_off_on_a_fresh_esxi_without_firstboot(tmp_path):
    topo = topology(tmp_path, "esxi", "6.7u3")
    ks = kickstart_for(topo, "esxi", "6.7u3").split("%firstboot")[0]
    inst = installer_iso(tmp_path, "esxi", "6.7u3")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)]))
    assert result == "installed", log
    assert not booted_host(tmp_path).reachable()


def test_efi_vm_with_bios_only_media_has_nothing_to_boot(tmp_path):
    topo = topology(tmp_path, "esxi", "5.5")
    inst = installer_iso(tmp_path, "esxi", "5.5")  # ESXi 5.x media have no UEFI El Torito entry
    cfg = vmx_config([inst, ks_iso(tmp_path, kickstart_for(topo, "esxi", "5.5"))], firmware="efi")
    result, log = power_on(tmp_path, cfg)
    assert result == "no-os" and "no connected CD-ROM has a UEFI boot entry" in log
    assert "No compatible bootloader found" in log


def test_a_kickstart_cd_alone_does_not_boot(tmp_path):
    result, log = power_on(tmp_path, vmx_config([ks_iso(tmp_path, "vmaccepteula\n")]))
    assert result == "no-os" and "Operating System not found" in log


def test_missing_iso_file_is_logged_and_not_booted(tmp_path):
    result, log = power_on(tmp_path, vmx_config([tmp_path / "nowhere.iso"]))
    assert result == "no-os" and "nowhere.iso does not exist" in log


def test_without_reboot_the_installer_waits_at_its_last_screen(tmp_path):
    topo = topology(tmp_path, "esxi", "8.0u2")
    ks = kickstart_for(topo, "esxi", "8.0u2").replace("\nreboot\n", "\n")
    inst = installer_iso(tmp_path, "esxi", "8.0u2")
    cfg = vmx_config([inst, ks_iso(tmp_path, ks)])
    result, log = power_on(tmp_path, cfg)
    assert result == "failed" and "press Enter to reboot" in log
    assert power_on(tmp_path, cfg)[0] == "disk"  # a reset boots the installed disk (boot order hdd first)


def test_cd_first_in_the_boot_order_reinstalls(tmp_path):
    topo = topology(tmp_path, "esxi", "8.0u2")
    inst = installer_iso(tmp_path, "esxi", "8.0u2")
    cfg = vmx_config([inst, ks_iso(tmp_path, kickstart_for(topo, "esxi", "8.0u2"))], order="cdrom,hdd")
    result, log = power_on(tmp_path, cfg)
    assert result == "failed" and "the installer starts again" in log


def test_plaintext_rootpw_is_hashed_like_the_installer(tmp_path):
    topo = topology(tmp_path, "esxi", "6.0")
    ks = kickstart_for(topo, "esxi", "6.0")
    ks = "\n".join(f"rootpw {PASSWORD}" if ln.startswith("rootpw") else ln for ln in ks.splitlines()) + "\n"
    inst = installer_iso(tmp_path, "esxi", "6.0")
    result, log = power_on(tmp_path, vmx_config([inst, ks_iso(tmp_path, ks)]))
    assert result == "installed", log
    st = S.load_state(tmp_path / "hosts" / "esx1")
    assert st.root_password_hash.startswith("$6$") and cryptpw.verify(PASSWORD, st.root_password_hash)
    assert PASSWORD not in (tmp_path / "hosts" / "esx1" / "state.json").read_text()


def test_installed_disk_boots_at_the_next_power_on(tmp_path):
    topo = topology(tmp_path, "esxi", "8.0u2")
    inst = installer_iso(tmp_path, "esxi", "8.0u2")
    cfg = vmx_config([inst, ks_iso(tmp_path, kickstart_for(topo, "esxi", "8.0u2"))])
    assert power_on(tmp_path, cfg)[0] == "installed"
    assert power_on(tmp_path, cfg)[0] == "disk"
    assert S.load_state(tmp_path / "hosts" / "esx1").boot_count == 2
