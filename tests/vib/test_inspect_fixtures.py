"""Every real VIB and bundle in shared/fixtures inspects with all checksums verified and the expected findings."""

from __future__ import annotations

import json

import pytest

FILES = [
    "ESXi800-VMKUSB-NIC-FLING-64098182-component-21668107.zip",
    "customfirewall-offline-bundle.zip",
    "customfirewall.vib",
    "esxcli-nsx-ext.vib",
    "fwrule-ntpServer-1.0.0-1.vib",
    "net-r8125-9.011.00-10.vib",
    "vghetto-ghettoVCB.vib",
    "vmksdhci-1.0.0-1-community.vib",
]


def _inspect(run_cli, path):
    r = run_cli("vib", "inspect", str(path), "--json")
    assert r.status == 0, r.out + r.err
    return json.loads(r.out)


def _vibs(doc):
    return doc["vibs"] if doc["kind"] == "bundle" else [doc]


def _messages(doc, severity=None):
    return [f["message"] for f in doc["findings"] if severity in (None, f["severity"])]


@pytest.mark.parametrize("name", FILES)
def test_every_fixture_verifies(run_cli, fixtures_dir, name):
    doc = _inspect(run_cli, fixtures_dir / "vib" / name)
    vibs = _vibs(doc)
    assert vibs
    for v in vibs:
        assert v["payloads"], v
        for p in v["payloads"]:
            assert p["checksums_ok"] is True
            assert all(c["ok"] for c in p["checksums"]) and len(p["checksums"]) >= 2
        assert not [f for f in v["findings"] if f["severity"] == "error"]


def test_nsx_ext_findings(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "esxcli-nsx-ext.vib")
    assert doc["kind"] == "esxi" and doc["vib_id"] == "esxcliext_bootbank_esxcli-nsx-ext_1.0.0-0.0.0"
    msgs = " | ".join(_messages(doc))
    assert "GNU ar" in msgs
    assert "raw sha-256 before the sha-256 gunzip" in msgs
    assert "14 characters" in msgs
    assert "space instead of 'T'" in msgs
    assert "compatbileWith" in msgs
    assert doc["payloads"][0]["name"] == "esxcli-nsx-ext"


def test_fwrule_vib_author_vgz(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "fwrule-ntpServer-1.0.0-1.vib")
    assert doc["payloads"][0]["type"] == "vgz"
    assert doc["payloads"][0]["files"] == ["etc/vmware/firewall/ntpserver.xml"]
    assert doc["descriptor"]["conflicts"] == [{"name": "fwenable-ntpd"}]
    kinds = {(c["type"], c["verify_process"]) for c in doc["payloads"][0]["checksums"]}
    assert ("sha-1", "gunzip") in kinds
    assert any("no sha-256 gunzip" in m for m in _messages(doc, "warning"))


def test_customfirewall_real_mtimes_and_no_release(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "customfirewall.vib")
    msgs = " | ".join(_messages(doc))
    assert "100644" in msgs and "real mtimes" in msgs
    assert "no '-release' part" in msgs
    assert doc["vib_id"] == "soulTec_bootbank_customfirewall_1.0.2"


def test_vmksdhci_esximage_mode_and_uncompressed_size(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "vmksdhci-1.0.0-1-community.vib")
    assert any("0o0" in m for m in _messages(doc, "info"))
    assert doc["payloads"][0]["uncompressed_size"] == 307712
    assert not any("extensibility" in m for m in _messages(doc))


def test_r8125_relationships(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "net-r8125-9.011.00-10.vib")
    d = doc["descriptor"]
    assert [c["name"] for c in d["depends"]] == ["vmkapi_2_3_0_0", "com.vmware.driverAPI-9.2.2.0"]
    assert d["conflicts"] == [{"name": "net51-drivers"}] and d["replaces"] == [{"name": "net55-r8125"}]
    assert any("reboot" in m for m in _messages(doc, "info"))


def test_ghettovcb_breaks_extensibility_rules(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "vghetto-ghettoVCB.vib")
    warn = [m for m in _messages(doc, "warning") if "extensibility" in m]
    assert warn and "etc/ghettovcb/ghettoVCB.conf" in warn[0] and "-f" in warn[0]
    for other in ("customfirewall.vib", "esxcli-nsx-ext.vib", "fwrule-ntpServer-1.0.0-1.vib",
                  "net-r8125-9.011.00-10.vib"):
        assert not any("extensibility" in m for m in _messages(_inspect(run_cli, fixtures_dir / "vib" / other)))


def test_signed_fling_bundle(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "ESXi800-VMKUSB-NIC-FLING-64098182-component-21668107.zip")
    assert doc["kind"] == "bundle"
    (v,) = doc["vibs"]
    assert v["vib_id"] == "VMW_bootbank_vmkusb-nic-fling_1.12-1vmw.800.1.20.64098182"
    assert v["signature"]["present"] and v["signature"]["valid"]
    assert "VMware Certified VIB Signing" in v["signature"]["signer"]
    assert doc["bundle"]["platform_version"] == "8.0"


def test_component_bundle(run_cli, fixtures_dir):
    doc = _inspect(run_cli, fixtures_dir / "vib" / "customfirewall-offline-bundle.zip")
    assert doc["kind"] == "bundle" and doc["payloads"] == []
    assert [v["vib_id"] for v in doc["vibs"]] == ["soulTec_bootbank_customfirewall_1.0.2"]
    assert doc["vibs"][0]["signature"]["present"] is False


def test_text_output(run_cli, fixtures_dir):
    r = run_cli("vib", "inspect", str(fixtures_dir / "vib" / "fwrule-ntpServer-1.0.0-1.vib"))
    assert r.status == 0
    assert "VIB ID:   github.com_tcely_bootbank_fwrule-ntpServer_1.0.0-1" in r.out
    assert "sha-1/gunzip ok" in r.out and r.out.rstrip().endswith("result: ok")


def test_usage_errors(run_cli, tmp_path):
    assert run_cli("vib", "inspect", str(tmp_path / "missing.vib")).status == 2
    assert run_cli("vib", "inspect").status == 2


def test_signature_tamper_detected(run_cli, fixtures_dir, tmp_path):
    """Flip one byte of the signed descriptor inside the Fling VIB: the signature no longer verifies."""
    import zipfile

    with zipfile.ZipFile(fixtures_dir / "vib" / FILES[0]) as z:
        name = next(n for n in z.namelist() if n.endswith(".vib"))
        data = bytearray(z.read(name))
    i = data.index(b"<summary>VMware Esx VIB")
    data[i + 9] = ord("X")
    p = tmp_path / "tampered.vib"
    p.write_bytes(bytes(data))
    r = run_cli("vib", "inspect", str(p), "--json")
    assert r.status == 1
    doc = json.loads(r.out)
    assert doc["signature"]["valid"] is False
    assert any("signature" in f["message"] for f in doc["findings"] if f["severity"] == "error")
