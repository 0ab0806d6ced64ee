"""Offline bundles and target platforms, compared with the real bundles in ../shared/fixtures/vib/:
ESXi800-VMKUSB-NIC-FLING-64098182-component-21668107.zip (VMware-signed, itiligent/ESXi-Custom-ISO 6e1a79979b) and
customfirewall-offline-bundle.zip (virtualFrog/customFirewallPorts 05800e8e58). Both fill vendor-index.xml
<version> (8.0 and 8.*) and list the same version as the bulletin's <platforms><softwarePlatform>; the fling's VIB
descriptor carries <softwarePlatform version="8.0" locale="" productLineID="embeddedEsx"/>."""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from labctl.vib.ar import read_ar, read_member

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vib" / "lab-tools"
DATE = "2024-06-25T07:17:37+00:00"
REAL = ["ESXi800-VMKUSB-NIC-FLING-64098182-component-21668107.zip", "customfirewall-offline-bundle.zip"]


def _bundle_xml(path: Path) -> dict:
    """vendor-index.xml, the bulletin and vmware.xml of a bundle, as elements."""
    with zipfile.ZipFile(path) as z:
        vi = ET.fromstring(z.read("vendor-index.xml"))
        md_name = vi.findtext("metadata/url").strip()
        md = zipfile.ZipFile(io.BytesIO(z.read(md_name)))
        bulletins = [n for n in md.namelist() if n.startswith("bulletins/") and n.endswith(".xml")]
        assert len(bulletins) == 1
        vib_name = next(n for n in z.namelist() if n.endswith(".vib"))
        with z.open(vib_name) as fh:
            data = io.BytesIO(fh.read())
        a = read_ar(data)
        desc = ET.fromstring(read_member(data, a.members[0], 1 << 20))
        return {"vendor_index": vi, "bulletin": ET.fromstring(md.read(bulletins[0])),
                "md_vendor_index": ET.fromstring(md.read("vendor-index.xml")),
                "vmware": ET.fromstring(md.read("vmware.xml")), "descriptor": desc}


def _build(run_cli, tmp_path, *extra, status=0):
    r = run_cli("vib", "build", str(EXAMPLE), "-o", str(tmp_path / "x.vib"), "--release-date", DATE, *extra)
    assert r.status == status, r.err
    return r


@pytest.mark.parametrize("real", REAL)
def test_bundle_metadata_like_real_bundles(run_cli, tmp_path, fixtures_dir, real):
    _build(run_cli, tmp_path, "--platform", "8.0", "--bundle", str(tmp_path / "x.zip"))
    ours, theirs = _bundle_xml(tmp_path / "x.zip"), _bundle_xml(fixtures_dir / "vib" / real)
    for key in ("vendor_index", "md_vendor_index"):
        assert [c.tag for c in ours[key].find("metadata")] == [c.tag for c in theirs[key].find("metadata")]
        assert theirs[key].findtext("metadata/version") in ("8.0", "8.*")  # what the real ones say
        assert ours[key].findtext("metadata/version") == "8.0"
        assert ours[key].findtext("metadata/productId") == theirs[key].findtext("metadata/productId")
    assert [c.tag for c in ours["bulletin"]] == [c.tag for c in theirs["bulletin"]]
    (theirs_p,) = theirs["bulletin"].findall("platforms/softwarePlatform")
    (ours_p,) = ours["bulletin"].findall("platforms/softwarePlatform")
    assert set(ours_p.attrib) == set(theirs_p.attrib) == {"version", "locale", "productLineID"}
    assert ours_p.attrib == {"version": "8.0", "locale": "", "productLineID": "embeddedEsx"}
    assert theirs_p.get("version") == theirs["vendor_index"].findtext("metadata/version")
    assert [c.tag for c in ours["vmware"].find("bulletin")] == [c.tag for c in theirs["vmware"].find("bulletin")]
    (sw,) = ours["vmware"].findall("bulletin/vibList/vib/systemReqs/swPlatform")
    assert sw.attrib == ours_p.attrib
    (dp,) = ours["descriptor"].findall("system-requires/softwarePlatform")
    assert dp.attrib == ours_p.attrib


def test_fling_descriptor_has_the_same_software_platform(tmp_path, fixtures_dir, run_cli):
    _build(run_cli, tmp_path, "--platform", "8.0")
    with zipfile.ZipFile(fixtures_dir / "vib" / REAL[0]) as z:
        name = next(n for n in z.namelist() if n.endswith(".vib"))
        data = io.BytesIO(z.read(name))
    a = read_ar(data)
    theirs = ET.fromstring(read_member(data, a.members[0], 1 << 20)).find("system-requires/softwarePlatform")
    with open(tmp_path / "x.vib", "rb") as fh:
        a = read_ar(fh)
        ours = ET.fromstring(read_member(fh, a.members[0], 1 << 20)).find("system-requires/softwarePlatform")
    assert ours.attrib == theirs.attrib == {"version": "8.0", "locale": "", "productLineID": "embeddedEsx"}


def test_several_platforms(run_cli, tmp_path):
    _build(run_cli, tmp_path, "--platform", "7.0", "--platform", "8.*", "--bundle", str(tmp_path / "x.zip"))
    x = _bundle_xml(tmp_path / "x.zip")
    assert [m.findtext("version") for m in x["vendor_index"].findall("metadata")] == ["7.0", "8.*"]
    assert [m.findtext("url") for m in x["vendor_index"].findall("metadata")] == ["metadata.zip"] * 2
    assert [p.get("version") for p in x["bulletin"].findall("platforms/softwarePlatform")] == ["7.0", "8.*"]
    r = run_cli("vib", "inspect", str(tmp_path / "x.zip"), "--json")
    doc = json.loads(r.out)
    assert r.status == 0 and doc["bundle"]["platform_versions"] == ["7.0", "8.*"]
    assert not [f for f in doc["findings"] if f["severity"] != "info"], doc["findings"]


def test_platforms_from_descriptor_yaml(run_cli, tmp_path):
    import shutil

    stage = tmp_path / "stage"
    shutil.copytree(EXAMPLE, stage)
    (stage / "descriptor.yaml").write_text((stage / "descriptor.yaml").read_text() + "platforms: [{version: '6.7'}]\n")
    r = run_cli("vib", "build", str(stage), "-o", str(tmp_path / "x.vib"), "--bundle", str(tmp_path / "x.zip"),
                "--release-date", DATE)
    assert r.status == 0, r.err
    assert _bundle_xml(tmp_path / "x.zip")["vendor_index"].findtext("metadata/version") == "6.7"


def test_bundle_needs_a_platform(run_cli, tmp_path):
    r = _build(run_cli, tmp_path, "--bundle", str(tmp_path / "x.zip"), status=2)
    assert "an offline bundle names the releases it is for" in r.err and "--platform 8.0" in r.err
    assert not (tmp_path / "x.zip").exists()


@pytest.mark.parametrize("version,needle", [
    ("8", "X.Y, X.Y.Z or X.*"), ("8.0u3", "X.Y, X.Y.Z or X.*"), ("*", "X.Y, X.Y.Z or X.*"),
    ("8.4", "is not one of the ESXi 5+ releases"), ("3.5", "is not one of the ESXi 5+ releases"),
    ("4.1", "is not one of the ESXi 5+ releases"), ("12.*", "is not one of the ESXi 5+ releases"),
])
def test_unknown_platforms_refused(run_cli, tmp_path, version, needle):
    r = _build(run_cli, tmp_path, "--platform", version, status=2)
    assert needle in r.err, r.err


@pytest.mark.parametrize("version", ["8.0", "8.*", "7.0.3", "5.0.0", "6.*"])
def test_known_platforms_accepted(run_cli, tmp_path, version):
    _build(run_cli, tmp_path, "--platform", version)


def test_esx4_platform(run_cli, tmp_path):
    _build(run_cli, tmp_path, "--format", "esx4-cross", "--platform", "4.1")
    with open(tmp_path / "x.vib", "rb") as fh:
        a = read_ar(fh)
        root = ET.fromstring(read_member(fh, a.get("descriptor.xml"), 1 << 20))
    assert [(p.get("productLineID"), p.get("version")) for p in root.findall("systemReqs/swPlatform")] == [
        ("esx", "4.1"), ("embeddedEsx", "4.1")]
    r = _build(run_cli, tmp_path, "--format", "esx4-rpm", "--platform", "8.0", status=2)
    assert "is not one of the ESX/ESXi 4 releases" in r.err


def test_inspect_warns_on_a_bundle_without_platforms(run_cli, tmp_path):
    _build(run_cli, tmp_path, "--platform", "8.0", "--bundle", str(tmp_path / "x.zip"))
    bad = tmp_path / "bad.zip"
    with zipfile.ZipFile(tmp_path / "x.zip") as src, zipfile.ZipFile(bad, "w") as dst:
        for zi in src.infolist():
            data = src.read(zi)
            if zi.filename == "vendor-index.xml":
                data = data.replace(b"<version>8.0</version>", b"<version></version>")
            if zi.filename == "metadata.zip":
                out = io.BytesIO()
                with zipfile.ZipFile(io.BytesIO(data)) as m, zipfile.ZipFile(out, "w") as m2:
                    for mi in m.infolist():
                        d = m.read(mi)
                        if mi.filename.startswith(("bulletins/", "vmware.xml")):
                            d = d.replace(b'<softwarePlatform locale="" version="8.0" productLineID="embeddedEsx"/>',
                                          b"")
                        m2.writestr(mi, d)
                data = out.getvalue()
            dst.writestr(zi, data)
    doc = json.loads(run_cli("vib", "inspect", str(bad), "--json").out)
    msgs = [f["message"] for f in doc["findings"] if f["severity"] == "warning"]
    assert any("vendor-index.xml names no platform <version>" in m for m in msgs), msgs
    assert any("lists no <platforms>/<softwarePlatform>" in m for m in msgs), msgs
