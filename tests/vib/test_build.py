"""vib build: round trip through our own inspect, reproducible bytes, bundles, signatures, ESX 4 formats."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.vib.ar import read_ar, read_member
from labctl.vib.descriptor import parse_descriptor

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vib" / "lab-tools"
DATE = "2024-06-25T07:17:37+00:00"


def _inspect(run_cli, path, *extra):
    r = run_cli("vib", "inspect", str(path), "--json", *extra)
    doc = json.loads(r.out)
    return r.status, doc


def _all_findings(doc):
    out = list(doc["findings"])
    for p in doc.get("payloads", []):
        out += p.get("findings", [])
    for v in doc.get("vibs", []):
        out += _all_findings(v)
    return out


def test_example_builds_and_round_trips(run_cli, tmp_path):
    out = tmp_path / "build" / "lab-tools-1.0.0-1.vib"
    r = run_cli("vib", "build", str(EXAMPLE), "-o", str(out), "--release-date", DATE)
    assert r.status == 0, r.err
    assert "labctl_bootbank_lab-tools_1.0.0-1" in r.out
    status, doc = _inspect(run_cli, out)
    assert status == 0
    assert not [f for f in _all_findings(doc) if f["severity"] in ("error", "warning")], doc
    assert doc["kind"] == "esxi" and doc["vib_id"] == "labctl_bootbank_lab-tools_1.0.0-1"
    assert doc["descriptor"]["file_list"] == ["etc/vmware/firewall/labtools.xml"]
    assert doc["descriptor"]["release_date"] == DATE
    with open(out, "rb") as fh:
        a = read_ar(fh)
        assert a.names() == ["descriptor.xml", "sig.pkcs7", "labtools"]
        assert all(m.mode == 0 and m.mtime == 0 and m.raw_name == m.name for m in a.members)
        d = parse_descriptor(read_member(fh, a.members[0], 1 << 20))
        assert read_member(fh, a.members[1], 10) == b""
    keys = [(c.type, c.verify_process) for c in d.payloads[0].checksums]
    assert keys == [("sha-256", "gunzip"), ("sha-256", None), ("sha-1", "gunzip")]
    assert d.payloads[0].size == a.members[2].size
    assert out.stat().st_size % 2 == 0


def test_reproducible_bytes(run_cli, tmp_path):
    stage = tmp_path / "stage"
    shutil.copytree(EXAMPLE, stage)
    a, b, c = tmp_path / "a.vib", tmp_path / "b.vib", tmp_path / "c.vib"
    assert run_cli("vib", "build", str(stage), "-o", str(a), "--release-date", DATE, "--platform", "8.0", "--bundle",
                   str(tmp_path / "a.zip")).status == 0
    # touch every file: mtimes on disk must not leak into the output
    for p in stage.rglob("*"):
        os.utime(p, (1_000_000_000, 1_000_000_000))
    assert run_cli("vib", "build", str(stage), "-o", str(b), "--release-date", DATE, "--platform", "8.0", "--bundle",
                   str(tmp_path / "b.zip")).status == 0
    assert a.read_bytes() == b.read_bytes()
    assert (tmp_path / "a.zip").read_bytes() == (tmp_path / "b.zip").read_bytes()
    assert run_cli("vib", "build", str(stage), "-o", str(c), "--release-date", "2025-01-01T00:00:00Z").status == 0
    assert a.read_bytes() != c.read_bytes()


def test_source_date_epoch(run_cli, tmp_path):
    r = run_cli("vib", "build", str(EXAMPLE), "-o", str(tmp_path / "x.vib"), "--json",
                environ={"SOURCE_DATE_EPOCH": "1700000000"})
    assert r.status == 0
    assert json.loads(r.out)["release_date"] == "2023-11-14T22:13:20+00:00"


def test_bundle_round_trip(run_cli, tmp_path):
    out, zip_ = tmp_path / "x.vib", tmp_path / "x.zip"
    assert run_cli("vib", "build", str(EXAMPLE), "-o", str(out), "--bundle", str(zip_), "--platform", "8.0",
                   "--release-date", DATE).status == 0
    status, doc = _inspect(run_cli, zip_)
    assert status == 0, doc
    assert doc["kind"] == "bundle"
    assert [v["vib_id"] for v in doc["vibs"]] == ["labctl_bootbank_lab-tools_1.0.0-1"]
    assert not [f for f in _all_findings(doc) if f["severity"] in ("error", "warning")], doc
    import zipfile

    with zipfile.ZipFile(zip_) as z:
        names = z.namelist()
    assert names[:3] == ["index.xml", "vendor-index.xml", "metadata.zip"]
    assert names[3] == "vib20/lab-tools/labctl_bootbank_lab-tools_1.0.0-1.vib"


def _ca_and_leaf(tmp_path: Path, cn: str = "lab VIB signing"):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    def name(s):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, s)])

    now = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    ca = (x509.CertificateBuilder().subject_name(name(cn + " CA")).issuer_name(name(cn + " CA"))
          .public_key(ca_key.public_key()).serial_number(1).not_valid_before(now)
          .not_valid_after(now + dt.timedelta(days=3650))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(2).not_valid_before(now)
            .not_valid_after(now + dt.timedelta(days=3650)).sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    (tmp_path / "lab.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    (tmp_path / "lab.crt").write_bytes(leaf.public_bytes(pem))
    (tmp_path / "ca.pem").write_bytes(ca.public_bytes(pem))
    return tmp_path / "lab.key", tmp_path / "lab.crt", tmp_path / "ca.pem"


def test_signed_vib(run_cli, tmp_path):
    key, crt, ca = _ca_and_leaf(tmp_path)
    out = tmp_path / "signed.vib"
    r = run_cli("vib", "build", str(EXAMPLE), "-o", str(out), "--sign", str(key), "--cert", str(crt),
                "--release-date", DATE)
    assert r.status == 0, r.err
    status, doc = _inspect(run_cli, out, "--ca", str(ca))
    assert status == 0
    assert doc["signature"] == {"present": True, "valid": True, "signer": "CN=lab VIB signing", "trusted": True,
                                "message": doc["signature"]["message"]}
    other = tmp_path / "other"
    other.mkdir()
    _, _, other_ca = _ca_and_leaf(other, "someone else")
    status, doc = _inspect(run_cli, out, "--ca", str(other_ca))
    assert status == 1 and doc["signature"]["trusted"] is False
    if shutil.which("openssl"):  # the signature is what `openssl cms -verify` accepts, as for VMware's
        with open(out, "rb") as fh:
            a = read_ar(fh)
            (tmp_path / "d.xml").write_bytes(read_member(fh, a.members[0], 1 << 20))
            (tmp_path / "s.pem").write_bytes(read_member(fh, a.members[1], 1 << 20))
        p = subprocess.run(["openssl", "cms", "-verify", "-binary", "-inform", "PEM", "-in", str(tmp_path / "s.pem"),
                            "-content", str(tmp_path / "d.xml"), "-noverify", "-out", os.devnull],
                           capture_output=True, text=True)
        assert p.returncode == 0, p.stderr


def test_sign_needs_both(run_cli, tmp_path):
    r = run_cli("vib", "build", str(EXAMPLE), "-o", str(tmp_path / "x.vib"), "--sign", "k.pem")
    assert r.status == 2 and "--sign and --cert go together" in r.err


def test_esx4_signed_covers_all_bytes_before(run_cli, tmp_path):
    key, crt, ca = _ca_and_leaf(tmp_path)
    out = tmp_path / "x.vib"
    assert run_cli("vib", "build", str(EXAMPLE), "-o", str(out), "--format", "esx4-deb", "--sign", str(key),
                   "--cert", str(crt), "--release-date", DATE).status == 0
    status, doc = _inspect(run_cli, out, "--ca", str(ca))
    assert status == 0 and doc["signature"]["valid"] and doc["signature"]["trusted"]
    data = bytearray(out.read_bytes())
    j = data.index(b"2.0\n")  # debian-binary's content: signed, before sig.pkcs7
    data[j] = ord("3")
    out.write_bytes(bytes(data))
    status, doc = _inspect(run_cli, out)
    assert status == 1 and doc["signature"]["valid"] is False


def _stage(tmp_path: Path, yaml_text: str, files: dict[str, bytes] | None = None) -> Path:
    stage = tmp_path / "stage"
    (stage / "payloads" / "p1").mkdir(parents=True)
    (stage / "descriptor.yaml").write_text(yaml_text)
    for rel, data in (files or {"opt/lab/x.sh": b"#!/bin/sh\n"}).items():
        p = stage / "payloads" / "p1" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    return stage


def test_build_reports_every_problem(run_cli, tmp_path):
    stage = _stage(tmp_path, "name: bad name!\nversion: 1-2-3\nvendor: v\ncolour: red\nlive-install-allowed: maybe\n")
    r = run_cli("vib", "build", str(stage), "-o", str(tmp_path / "x.vib"))
    assert r.status == 2
    assert "colour: unknown key" in r.err and "live-install-allowed: must be true or false" in r.err
    stage2 = tmp_path / "s2"
    stage2.mkdir()
    shutil.copytree(stage / "payloads", stage2 / "payloads")
    (stage2 / "descriptor.yaml").write_text("name: bad name!\nversion: 1-2-3\nvendor: v\n")
    r = run_cli("vib", "build", str(stage2), "-o", str(tmp_path / "x.vib"))
    assert r.status == 2
    assert "Could not parse '1-2-3' to a Vib version." in r.err and "<name> 'bad name!'" in r.err
    assert not (tmp_path / "x.vib").exists()


def test_build_refuses_missing_pieces(run_cli, tmp_path):
    r = run_cli("vib", "build", str(tmp_path), "-o", str(tmp_path / "x.vib"))
    assert r.status == 2 and "neither descriptor.yaml nor descriptor.xml" in r.err
    stage = _stage(tmp_path, "name: t\nversion: 1.0-1\nvendor: v\npayloads: [nope]\n")
    r = run_cli("vib", "build", str(stage), "-o", str(tmp_path / "x.vib"))
    assert r.status == 2 and "no directory payloads/nope/" in r.err


def test_build_refuses_link_outside(run_cli, tmp_path):
    stage = _stage(tmp_path, "name: t\nversion: 1.0-1\nvendor: v\n")
    os.symlink("/etc/shadow", stage / "payloads" / "p1" / "opt" / "lab" / "evil")
    r = run_cli("vib", "build", str(stage), "-o", str(tmp_path / "x.vib"))
    assert r.status != 0 and "points to the absolute path" in r.err
    assert not (tmp_path / "x.vib").exists()


def test_build_warns_on_extensibility(run_cli, tmp_path):
    stage = _stage(tmp_path, "name: t\nversion: 1.0-1\nvendor: v\n", {"etc/lab/x.conf": b"x=1\n"})
    r = run_cli("vib", "build", str(stage), "-o", str(tmp_path / "x.vib"), "--release-date", DATE)
    assert r.status == 0 and "extensibility rules" in r.out


def test_build_from_descriptor_xml(run_cli, tmp_path, fixtures_dir):
    """Start from a real VIB's descriptor.xml: payload facts are recomputed, sloppiness is not carried over."""
    with open(fixtures_dir / "vib" / "fwrule-ntpServer-1.0.0-1.vib", "rb") as fh:
        a = read_ar(fh)
        desc = read_member(fh, a.members[0], 1 << 20)
    stage = tmp_path / "stage"
    (stage / "payloads" / "fwrule" / "etc" / "vmware" / "firewall").mkdir(parents=True)
    (stage / "payloads" / "fwrule" / "etc" / "vmware" / "firewall" / "ntpserver.xml").write_text("<ConfigRoot/>")
    (stage / "descriptor.xml").write_bytes(desc)
    out = tmp_path / "fw.vib"
    r = run_cli("vib", "build", str(stage), "-o", str(out), "--release-date", DATE)
    assert r.status == 0, r.err
    status, doc = _inspect(run_cli, out)
    assert status == 0 and doc["vib_id"] == "github.com_tcely_bootbank_fwrule-ntpServer_1.0.0-1"
    assert doc["descriptor"]["conflicts"] == [{"name": "fwenable-ntpd"}]
    assert not [f for f in doc["findings"] if "sha-256 gunzip" in f["message"]]


@pytest.mark.slow
def test_streaming_memory(tmp_path):
    """A 64 MB payload: the build process's peak RSS stays far below the payload size."""
    stage = _stage(tmp_path, "name: big\nversion: 1.0-1\nvendor: v\n")
    big = stage / "payloads" / "p1" / "opt" / "big.bin"
    with open(big, "wb") as fh:
        for i in range(64):
            fh.write(os.urandom(1 << 19) + bytes([i]) * (1 << 19))
    code = (
        "import resource, sys; from labctl.cli.main import main; "
        f"rc = main(['vib', 'build', {str(stage)!r}, '-o', {str(tmp_path / 'big.vib')!r}, "
        "'--release-date', '2024-01-01T00:00:00Z']); "
        # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child forked from a big pytest process
        # would report the parent's size
        "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0]); sys.exit(rc)"
    )
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    peak_kb = int(p.stdout.strip().splitlines()[-1])
    assert peak_kb < 60 * 1024, f"peak RSS {peak_kb} kB"
    with open(tmp_path / "big.vib", "rb") as fh:
        a = read_ar(fh)
        assert a.members[2].size > 32 << 20
