"""`esxcli software` and `esxupdate` on simulated hosts (in-process SimHost), with VIBs built by labctl."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from labctl.vib.build import BuildOptions, build_vib

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vib" / "lab-tools"
DATE = "2024-06-25T07:17:37+00:00"

sim_state = pytest.importorskip("labctl.sim.state")
sim_host = pytest.importorskip("labctl.sim.host")


def _host(tmp_path: Path, flavor: str = "esxi", version: str = "7.0u3"):
    st = sim_state.fresh_install("esx1", flavor, version, nic_macs=["00:0c:29:00:00:01"], ip="192.168.69.11",
                                 netmask="255.255.255.0")
    h = sim_host.SimHost(st, tmp_path / "host")
    h.fs.mkdir("/tmp", parents=True)
    return h


def _build(tmp_path: Path, name: str = "lt.vib", *, fmt: str = "esxi", edit=None, stage_name="stage") -> bytes:
    stage = tmp_path / stage_name
    if not stage.exists():
        shutil.copytree(EXAMPLE, stage)
    if edit:
        edit(stage)
    out = tmp_path / name
    build_vib(BuildOptions(stage, out, format=fmt, release_date=DATE))
    return out.read_bytes()


def _put(h, path: str, data: bytes) -> None:
    h.fs.write(path, data)


def _ok(h, cmd: str) -> str:
    code, out, err = h.run(cmd)
    assert code == 0, (cmd, out, err)
    return out


def _fails(h, cmd: str) -> str:
    code, out, err = h.run(cmd)
    assert code != 0, (cmd, out, err)
    return out + err


def test_fresh_host_is_partner_supported(tmp_path):
    h = _host(tmp_path)
    assert _ok(h, "esxcli software acceptance get") == "PartnerSupported\n"


def test_install_rules_in_order(tmp_path):
    h = _host(tmp_path)
    _put(h, "/tmp/lt.vib", _build(tmp_path))
    out = _fails(h, "esxcli software vib install -v lt.vib --no-sig-check")
    assert "[VibDownloadError]" in out and "unknown url type: 'lt.vib'" in out
    out = _fails(h, "esxcli software vib install -v /tmp/lt.vib --no-sig-check")
    assert "[AcceptanceConfigError]" in out
    assert ("VIB labctl_bootbank_lab-tools_1.0.0-1's acceptance level is community, which is not compliant with "
            "the ImageProfile acceptance level partner") in out
    assert "To change the host acceptance level, use the 'esxcli software acceptance set' command." in out
    assert "changed to 'CommunitySupported'" in _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    assert "[VibSigMissingError]" in _fails(h, "esxcli software vib install -v /tmp/lt.vib")
    out = _ok(h, "esxcli software vib install -v /tmp/lt.vib --no-sig-check")
    assert "Message: Operation finished successfully." in out
    assert "VIBs Installed: labctl_bootbank_lab-tools_1.0.0-1" in out and "Reboot Required: false" in out
    # live install placed the file; list shows it
    assert "<port>8000</port>" in _ok(h, "cat /etc/vmware/firewall/labtools.xml")
    listing = _ok(h, "esxcli software vib list")
    assert listing.splitlines()[0].split() == ["Name", "Version", "Vendor", "Acceptance", "Level", "Install", "Date"]
    assert any(line.split()[:4] == ["lab-tools", "1.0.0-1", "labctl", "CommunitySupported"]
               for line in listing.splitlines())
    # same again: skipped
    out = _ok(h, "esxcli software vib install -v /tmp/lt.vib --no-sig-check")
    assert "Host is not changed." in out and "VIBs Skipped: labctl_bootbank_lab-tools_1.0.0-1" in out


def test_same_id_different_content(tmp_path):
    h = _host(tmp_path)
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    _put(h, "/tmp/a.vib", _build(tmp_path, "a.vib"))

    def change(stage):
        (stage / "payloads" / "labtools" / "etc" / "vmware" / "firewall" / "labtools.xml").write_text("<x/>")

    _put(h, "/tmp/b.vib", _build(tmp_path, "b.vib", edit=change))
    _ok(h, "esxcli software vib install -v /tmp/a.vib --no-sig-check")
    out = _fails(h, "esxcli software vib install -v /tmp/b.vib --no-sig-check")
    assert ("[ValueError]" in out and "VIBs labctl_bootbank_lab-tools_1.0.0-1 and labctl_bootbank_lab-tools_1.0.0-1 "
            "have unequal values of the 'payloads' attribute") in out

    def bump(stage):
        y = stage / "descriptor.yaml"
        y.write_text(y.read_text().replace("version: 1.0.0-1", "version: 1.0.0-2"))

    _put(h, "/tmp/c.vib", _build(tmp_path, "c.vib", edit=bump))
    out = _ok(h, "esxcli software vib update -v /tmp/c.vib --no-sig-check")
    assert "VIBs Installed: labctl_bootbank_lab-tools_1.0.0-2" in out
    assert "VIBs Removed: labctl_bootbank_lab-tools_1.0.0-1" in out
    out = _ok(h, "esxcli software vib update -v /tmp/a.vib --no-sig-check")  # older: update skips it
    assert "VIBs Skipped: labctl_bootbank_lab-tools_1.0.0-1" in out


def test_reboot_required_and_esx8_format(tmp_path):
    h = _host(tmp_path, version="8.0u2")
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")

    def no_live(stage):
        y = stage / "descriptor.yaml"
        y.write_text(y.read_text().replace("live-install-allowed: true", "live-install-allowed: false"))

    _put(h, "/tmp/lt.vib", _build(tmp_path, edit=no_live))
    out = _ok(h, "esxcli software vib install -v /tmp/lt.vib --no-sig-check")
    assert ("Message: The update completed successfully, but the system needs to be rebooted for the changes to "
            "be effective.") in out
    lines = out.splitlines()
    assert lines[0] == "Installation Result"
    assert [ln.split(":")[0].strip() for ln in lines[1:]] == [
        "Message", "VIBs Installed", "VIBs Removed", "VIBs Skipped", "Reboot Required", "DPU Results"]
    assert "Reboot Required: true" in out
    assert not h.fs.is_file("/etc/vmware/firewall/labtools.xml")  # not live
    assert "lab-tools" in _ok(h, "esxcli software vib list --rebooting-image")  # a pending-reboot image
    h.state.boot_count += 1  # what a boot does to the counter
    assert _ok(h, "esxcli software vib list --rebooting-image") == ""


def test_extensibility_rules_need_force(tmp_path):
    h = _host(tmp_path)
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")

    def etc_file(stage):
        d = stage / "payloads" / "labtools" / "etc" / "lab"
        d.mkdir(parents=True)
        (d / "x.conf").write_text("x=1\n")

    _put(h, "/tmp/lt.vib", _build(tmp_path, edit=etc_file))
    out = _fails(h, "esxcli software vib install -v /tmp/lt.vib --no-sig-check")
    assert ("[VibValidationError]" in out and "VIB labctl_bootbank_lab-tools_1.0.0-1 violates extensibility rule "
            "checks: ['(line 1: col 0) Element vib failed to validate content']") in out
    assert "Operation finished successfully" in _ok(h, "esxcli software vib install -f -v /tmp/lt.vib --no-sig-check")


def test_real_fixture_vibs(tmp_path, fixtures_dir):
    h = _host(tmp_path, version="8.0u2")
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    _put(h, "/tmp/fw.vib", (fixtures_dir / "vib" / "fwrule-ntpServer-1.0.0-1.vib").read_bytes())
    out = _fails(h, "esxcli software vib install -v /tmp/fw.vib --no-sig-check")
    assert "[ProfileValidationError]" in out and "does not have sha-256 gunzip checksum" in out
    h7 = _host(tmp_path / "h7", version="7.0u3")
    _ok(h7, "esxcli software acceptance set --level=CommunitySupported")
    _put(h7, "/tmp/fw.vib", (fixtures_dir / "vib" / "fwrule-ntpServer-1.0.0-1.vib").read_bytes())
    assert "VIBs Installed: github.com_tcely_bootbank_fwrule-ntpServer_1.0.0-1" in _ok(
        h7, "esxcli software vib install -v /tmp/fw.vib --no-sig-check")
    _put(h7, "/tmp/g.vib", (fixtures_dir / "vib" / "vghetto-ghettoVCB.vib").read_bytes())
    assert "extensibility rule checks" in _fails(h7, "esxcli software vib install -v /tmp/g.vib --no-sig-check")
    out = _ok(h7, "esxcli software sources vib get -v /tmp/g.vib")
    assert out.startswith("virtuallyGhetto_bootbank_ghettoVCB_1.0.0-0.0.0\n") and "   Name: ghettoVCB" in out


def test_corrupt_and_esx4_vibs_refused(tmp_path):
    h = _host(tmp_path)
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    data = bytearray(_build(tmp_path))
    data[-20] ^= 0xFF  # inside the payload
    _put(h, "/tmp/bad.vib", bytes(data))
    out = _fails(h, "esxcli software vib install -v /tmp/bad.vib --no-sig-check")
    assert "[VibFormatError]" in out
    _put(h, "/tmp/e4.vib", _build(tmp_path, "e4.vib", fmt="esx4-deb"))
    out = _fails(h, "esxcli software vib install -v /tmp/e4.vib --no-sig-check")
    assert "This VIB is a ESX 4.x VIB and is not supported on this version of ESX." in out


def test_signed_vib_needs_trust(tmp_path):
    from .test_build import _ca_and_leaf

    key, crt, ca = _ca_and_leaf(tmp_path)
    stage = tmp_path / "stage"
    shutil.copytree(EXAMPLE, stage)
    build_vib(BuildOptions(stage, tmp_path / "s.vib", release_date=DATE, sign_key=key, sign_cert=crt))
    h = _host(tmp_path)
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    _put(h, "/tmp/s.vib", (tmp_path / "s.vib").read_bytes())
    assert "is not trusted by this host" in _fails(h, "esxcli software vib install -v /tmp/s.vib")
    h.fs.mkdir("/etc/vmware/vib-trust", parents=True)
    h.fs.write("/etc/vmware/vib-trust/lab-ca.pem", ca.read_bytes())
    assert "VIBs Installed:" in _ok(h, "esxcli software vib install -v /tmp/s.vib")


def test_remove_and_acceptance_raise_blocked(tmp_path):
    h = _host(tmp_path)
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    _put(h, "/tmp/lt.vib", _build(tmp_path))
    _ok(h, "esxcli software vib install -v /tmp/lt.vib --no-sig-check")
    assert "[AcceptanceConfigError]" in _fails(h, "esxcli software acceptance set --level=PartnerSupported")
    out = _ok(h, "esxcli software vib remove -n lab-tools")
    assert "VIBs Removed: labctl_bootbank_lab-tools_1.0.0-1" in out
    assert not h.fs.is_file("/etc/vmware/firewall/labtools.xml")
    out = _fails(h, "esxcli software vib remove -n lab-tools")
    assert "[NoMatchError]" in out and "No VIB matching VIB search specification 'lab-tools'." in out
    assert "[NoMatchError]" in _fails(h, "esxcli software vib get -n lab-tools")


def test_esxupdate_on_esx4(tmp_path):
    h = _host(tmp_path, flavor="esx", version="4.1")
    _put(h, "/tmp/r.vib", _build(tmp_path, "r.vib", fmt="esx4-rpm"))
    _put(h, "/tmp/d.vib", _build(tmp_path, "d.vib", fmt="esx4-deb"))
    _put(h, "/tmp/e.vib", _build(tmp_path, "e.vib"))
    assert "not signed; use --nosigcheck" in _fails(h, "esxupdate --vib=/tmp/r.vib update")
    assert "not for this platform" in _fails(h, "esxupdate --nosigcheck --vib=/tmp/d.vib update")
    assert "not an ESX 4 VIB" in _fails(h, "esxupdate --nosigcheck --vib=/tmp/e.vib update")
    assert "completed successfully" in _ok(h, "esxupdate --nosigcheck --vib=/tmp/r.vib update")
    assert "already up to date" in _ok(h, "esxupdate --nosigcheck --vib=/tmp/r.vib update")
    assert "lab-tools" in _ok(h, "esxupdate query")
    assert _fails(h, "esxcli software vib list")  # no esxcli software on ESX 4


def test_esxupdate_checks_the_software_platform_version(tmp_path):
    h = _host(tmp_path, flavor="esx", version="4.0u2")
    build_vib(BuildOptions(EXAMPLE, tmp_path / "41.vib", format="esx4-rpm", release_date=DATE, platforms=("4.1",)))
    build_vib(BuildOptions(EXAMPLE, tmp_path / "4x.vib", format="esx4-rpm", release_date=DATE, platforms=("4.*",)))
    _put(h, "/tmp/41.vib", (tmp_path / "41.vib").read_bytes())
    _put(h, "/tmp/4x.vib", (tmp_path / "4x.vib").read_bytes())
    out = _fails(h, "esxupdate --nosigcheck --vib=/tmp/41.vib update")
    assert "This VIB supports product version '4.1', but host reports product version as '4.0.0'." in out
    assert "completed successfully" in _ok(h, "esxupdate --nosigcheck --vib=/tmp/4x.vib update")


def test_depot_install_and_sources(tmp_path, fixtures_dir):
    h = _host(tmp_path, version="8.0u2")
    _put(h, "/tmp/cf.zip", (fixtures_dir / "vib" / "customfirewall-offline-bundle.zip").read_bytes())
    out = _fails(h, "esxcli software vib install -d cf.zip --no-sig-check")
    assert "[MetadataDownloadError]" in out and "zip:cf.zip?index.xml" in out
    assert "[AcceptanceConfigError]" in _fails(h, "esxcli software vib install -d /tmp/cf.zip --no-sig-check")
    _ok(h, "esxcli software acceptance set --level=CommunitySupported")
    out = _ok(h, "esxcli software sources vib get -d /tmp/cf.zip")
    assert out.startswith("soulTec_bootbank_customfirewall_1.0.2\n")
    assert "[NoMatchError]" in _fails(h, "esxcli software vib install -d /tmp/cf.zip -n nope --no-sig-check")
    out = _ok(h, "esxcli software vib install -d /tmp/cf.zip -n customfirewall --no-sig-check")
    assert "VIBs Installed: soulTec_bootbank_customfirewall_1.0.2" in out
    assert h.fs.is_file("/etc/vmware/firewall/customfirewall.xml")
    _put(h, "/tmp/broken.zip", b"PK\x03\x04 not really a zip")
    assert "[MetadataDownloadError]" in _fails(h, "esxcli software vib install -d /tmp/broken.zip")
