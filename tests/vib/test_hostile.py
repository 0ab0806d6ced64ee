"""Hostile input: every case is built here and refused with a clear message; inspect writes nothing."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile

import pytest

from labctl.vib.ar import MAGIC, read_ar
from labctl.vib.descriptor import parse_descriptor
from labctl.vib.findings import VibFormatError
from labctl.vib.payload import GunzipReader, Limits

from .hostile_corpus import _ti
from .vibhelpers import ar_bytes, ar_header, descriptor, tgz, vib, vmtar


def _errors(run_cli, tmp_path, data: bytes, name: str = "x.vib") -> list[str]:
    p = tmp_path / name
    p.write_bytes(data)
    before = set(os.listdir(tmp_path))
    r = run_cli("vib", "inspect", str(p), "--json", cwd=tmp_path)
    assert set(os.listdir(tmp_path)) == before, "inspect wrote something"
    assert r.status == 1, (r.status, r.out, r.err)
    assert "Traceback" not in r.err
    doc = json.loads(r.out)
    msgs = [f["message"] for f in doc["findings"] if f["severity"] == "error"]
    for p_ in doc.get("payloads", []):
        msgs += [f["message"] for f in p_["findings"] if f["severity"] == "error"]
    for v in doc.get("vibs", []):
        msgs += [f["message"] for f in v["findings"] if f["severity"] == "error"]
        for p_ in v.get("payloads", []):
            msgs += [f["message"] for f in p_["findings"] if f["severity"] == "error"]
    assert msgs
    return msgs


def _one(msgs: list[str], needle: str) -> None:
    assert any(needle in m for m in msgs), msgs


GOOD = tgz([("etc/vmware/firewall/a.xml", b"<ConfigRoot/>")])


def test_good_handmade_vib_is_clean(run_cli, tmp_path):
    p = tmp_path / "ok.vib"
    p.write_bytes(vib(GOOD, ["etc/vmware/firewall/a.xml"]))
    r = run_cli("vib", "inspect", str(p), "--json")
    assert r.status == 0, r.out
    assert json.loads(r.out)["payloads"][0]["checksums_ok"]


# ---- ar container


@pytest.mark.parametrize(
    "size,needle",
    [(b"12a", "not a plain decimal"), (b"-5", "not a plain decimal"), (b"0x10", "not a plain decimal"),
     (b"999999", "past the end")],
)
def test_ar_bad_sizes(run_cli, tmp_path, size, needle):
    data = MAGIC + ar_header(b"descriptor.xml", size) + b"<vib/>"
    _one(_errors(run_cli, tmp_path, data), needle)


@pytest.mark.parametrize("name", [b"../etc/passwd", b"a/b", b"..", b"/etc"])
def test_ar_slash_or_dotdot_names(run_cli, tmp_path, name):
    _one(_errors(run_cli, tmp_path, ar_bytes([(name, b"x")])), "unsafe member name")


def test_ar_trailing_garbage(run_cli, tmp_path):
    data = vib(GOOD, ["etc/vmware/firewall/a.xml"]) + b"GARBAGE"
    _one(_errors(run_cli, tmp_path, data), "Trailing garbage")
    data = vib(GOOD, ["etc/vmware/firewall/a.xml"]) + b"G" * 70
    _one(_errors(run_cli, tmp_path, data), "Bad VIB archive header")


def test_ar_bad_magic_and_short(run_cli, tmp_path):
    _one(_errors(run_cli, tmp_path, b"PK-not-ar-at-all"), "Unexpected file magic")
    _one(_errors(run_cli, tmp_path, b"!<ar"), "too short")


def test_ar_member_order_messages(run_cli, tmp_path):
    d = descriptor("p1", GOOD, ["etc/vmware/firewall/a.xml"])
    _one(_errors(run_cli, tmp_path, ar_bytes([(b"p1", GOOD), (b"descriptor.xml", d)])),
         "The first member found was p1, but descriptor.xml was expected.")
    _one(_errors(run_cli, tmp_path, ar_bytes([(b"descriptor.xml", d), (b"p1", GOOD), (b"sig.pkcs7", b"")])),
         "Expected second member of Vib file to be sig.pkcs7, but found p1 instead.")
    _one(_errors(run_cli, tmp_path, ar_bytes([(b"descriptor.xml", d), (b"sig.pkcs7", b"")])),
         "Could not find file object for payload 'p1'.")


def test_ar_reader_accepts_gnu_and_pad(tmp_path):
    data = MAGIC + b"%-16s%-12s%-6s%-6s%-8s%-10s`\n" % (b"a/", b"0", b"0", b"0", b"644", b"3") + b"abc"  # no pad
    a = read_ar(io.BytesIO(data))
    assert a.names() == ["a"] and a.members[0].mode == 0o644 and a.style == "gnu"


# ---- descriptor XML


def test_xml_xxe(run_cli, tmp_path):
    xxe = (b'<?xml version="1.0"?><!DOCTYPE vib [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
           b'<vib version="5.0"><name>&x;</name></vib>')
    msgs = _errors(run_cli, tmp_path, ar_bytes([(b"descriptor.xml", xxe), (b"sig.pkcs7", b"")]))
    _one(msgs, "refused")
    assert not any("root:" in m for m in msgs)


def test_xml_malformed_and_oversized():
    with pytest.raises(VibFormatError, match="not well-formed"):
        parse_descriptor(b"<vib version='5.0'><name>")
    with pytest.raises(VibFormatError, match="refusing more than"):
        parse_descriptor(b"<vib>" + b" " * (2 * 1024 * 1024) + b"</vib>")


# ---- tar payloads


def test_tar_setuid_flagged(run_cli, tmp_path):
    ti = _ti("opt/x", mode=0o4755)
    p = tmp_path / "s.vib"
    p.write_bytes(vib(tgz([ti]), ["opt/x"]))
    doc = json.loads(run_cli("vib", "inspect", str(p), "--json").out)
    assert any("setuid" in f["message"] for f in doc["payloads"][0]["findings"])


def test_checksum_mismatch(run_cli, tmp_path):
    d = descriptor("p1", GOOD, ["etc/vmware/firewall/a.xml"])
    other = tgz([("etc/vmware/firewall/a.xml", b"<ConfigRoot>changed</ConfigRoot>")])
    d = d.replace(f'size="{len(GOOD)}"'.encode(), f'size="{len(other)}"'.encode())
    data = ar_bytes([(b"descriptor.xml", d), (b"sig.pkcs7", b""), (b"p1", other)])
    msgs = _errors(run_cli, tmp_path, data)
    _one(msgs, "sha-256 gunzip checksum mismatch")
    _one(msgs, "sha-256 checksum mismatch")


def test_file_list_mismatch(run_cli, tmp_path):
    _one(_errors(run_cli, tmp_path, vib(GOOD, ["etc/vmware/firewall/b.xml"])), "file-list names files")


def test_not_gzip_and_truncated(run_cli, tmp_path):
    _one(_errors(run_cli, tmp_path, vib_raw(b"plain bytes, not gzip")), "not valid gzip")
    _one(_errors(run_cli, tmp_path, vib_raw(GOOD[:-12])), "truncated")


def vib_raw(payload: bytes) -> bytes:
    d = (b'<vib version="5.0"><type>bootbank</type><name>t</name><version>1.0.0-1</version><vendor>lab</vendor>'
         b'<acceptance-level>community</acceptance-level><payloads><payload name="p1" type="tgz" size="%d">'
         b'<checksum checksum-type="sha-256">00</checksum></payload></payloads></vib>' % len(payload))
    return ar_bytes([(b"descriptor.xml", d), (b"sig.pkcs7", b""), (b"p1", payload)])


# ---- gzip bombs


def test_gzip_bomb_total_cap():
    bomb = gzip.compress(b"\0" * (8 * 1024 * 1024), compresslevel=9)
    r = GunzipReader([bomb], Limits(max_total=1024 * 1024), "payload 'p'")
    with pytest.raises(VibFormatError, match="gzip bomb cap"):
        r.drain()


def test_gzip_bomb_total_cap_from_cli(run_cli, tmp_path):
    payload = tgz([("opt/x", os.urandom(300_000))])
    p = tmp_path / "big.vib"
    p.write_bytes(vib(payload, ["opt/x"]))
    r = run_cli("vib", "inspect", str(p), "--json", "--max-uncompressed", "100000")
    assert r.status == 1 and "gzip bomb cap" in r.out


# ---- vmtar


def test_vmtar_good(run_cli, tmp_path):
    p = tmp_path / "v.vib"
    p.write_bytes(vib(vmtar([("opt/a", b"hello")]), ["opt/a"], ptype="vgz"))
    r = run_cli("vib", "inspect", str(p), "--json")
    assert r.status == 0, r.out
    assert json.loads(r.out)["payloads"][0]["files"] == ["opt/a"]


def test_vmtar_absolute_path(run_cli, tmp_path):
    _one(_errors(run_cli, tmp_path, vib(vmtar([("/etc/passwd", b"x")]), ["opt/a"], ptype="vgz")), "absolute path")


# ---- bundles




# ---- the tar reader against archives real tools write (long names, PAX, links, './')


def _list(payload_gz: bytes):
    from labctl.vib.payload import DEFAULT_LIMITS, list_tar

    findings = []
    entries = list_tar(GunzipReader([payload_gz]), "payload 'p'", DEFAULT_LIMITS, findings)
    return entries, findings


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar not installed")
@pytest.mark.parametrize("fmt", ["gnu", "posix", "ustar", "v7"])
def test_tar_reader_reads_what_gnu_tar_writes(tmp_path, fmt):
    src = tmp_path / "src"
    deep = "opt/" + "/".join(["d" * 40] * 3) if fmt not in ("v7",) else "opt/dd"
    (src / deep).mkdir(parents=True)
    (src / deep / "file.txt").write_text("hello")
    (src / "opt" / "link").symlink_to("dd" if fmt == "v7" else "d" * 40)
    out = tmp_path / "p.tgz"
    subprocess.run(["tar", f"--format={fmt}", "-czf", str(out), "-C", str(src), "."], check=True)
    listed = subprocess.run(["tar", "-tzf", str(out)], capture_output=True, text=True, check=True).stdout.split()
    entries, findings = _list(out.read_bytes())
    names = [p.removeprefix("./").rstrip("/") for p in listed]
    assert sorted(e.path for e in entries) == sorted(n for n in names if n)
    assert {e.kind for e in entries} == {"dir", "file", "symlink"}
    link = next(e for e in entries if e.kind == "symlink")
    assert link.resolved == "opt/link" and link.link.startswith("d")
    if fmt == "posix":
        assert any("PAX headers present" in f.message for f in findings)


def test_tar_reader_python_pax_and_gnu_long_names():
    long = "opt/" + "x" * 150 + "/f"
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            ti = tarfile.TarInfo(long)
            ti.size = 3
            tf.addfile(ti, io.BytesIO(b"abc"))
            ln = tarfile.TarInfo("opt/l")
            ln.type, ln.linkname = tarfile.SYMTYPE, "x" * 150
            tf.addfile(ln)
        entries, _ = _list(gzip.compress(buf.getvalue()))
        assert [(e.path, e.kind, e.size, e.link) for e in entries] == [
            (long, "file", 3, ""), ("opt/l", "symlink", 0, "x" * 150)]


def test_link_tree_resolves_through_earlier_links():
    from labctl.vib.payload import LinkTree

    t = LinkTree()
    t.add("opt/l", "symlink", "../usr/bin", "p")
    assert t.add("opt/l/evil", "file", "", "p") == "usr/bin/evil"
    t.add("opt/a", "symlink", "..", "p")
    with pytest.raises(VibFormatError, match="resolves outside"):
        t.add("opt/b", "symlink", "a/..", "p")
    with pytest.raises(VibFormatError, match="duplicate member 'usr/bin/evil'"):
        t.add("usr/bin/evil", "file", "", "p")
    t.add("opt/d", "dir", "", "p")
    assert t.add("opt/d", "dir", "", "p") == "opt/d"  # a directory twice is harmless


@pytest.mark.skipif(not shutil.which("rpmbuild"), reason="rpmbuild not installed")
def test_inspect_reads_an_rpm_that_rpmbuild_wrote(tmp_path):
    """A real rpm v4 (BASENAMES/DIRNAMES/DIRINDEXES, gzip cpio payload, a symlink) inside an ESX 4 rpm VIB."""
    from labctl.vib.inspect import inspect_path

    from .hostile_corpus import esx4_rpm_vib

    (tmp_path / "src" / "opt" / "lab").mkdir(parents=True)
    (tmp_path / "src" / "opt" / "lab" / "a.txt").write_text("hi\n")
    (tmp_path / "src" / "opt" / "lab" / "l").symlink_to("a.txt")
    spec = tmp_path / "t.spec"
    spec.write_text(
        "Name: labtest\nVersion: 1.0\nRelease: 1\nSummary: t\nLicense: MIT\nBuildArch: noarch\n"
        "%define _binary_payload w9.gzdio\n%define _build_id_links none\n%description\nt\n"
        "%install\nmkdir -p %{buildroot}/opt/lab\ncp -a " + str(tmp_path / "src" / "opt" / "lab") + "/. "
        "%{buildroot}/opt/lab/\n%files\n/opt/lab\n")
    p = subprocess.run(["rpmbuild", "-bb", "--define", f"_topdir {tmp_path / 'top'}", "--define",
                        f"_rpmdir {tmp_path / 'out'}", str(spec)], capture_output=True, text=True,
                       env={**os.environ, "HOME": str(tmp_path)})
    assert p.returncode == 0, p.stderr[-2000:]
    (rpm,) = (tmp_path / "out" / "noarch").glob("*.rpm")
    (tmp_path / "x.vib").write_bytes(esx4_rpm_vib(rpm.read_bytes()))
    rep = inspect_path(tmp_path / "x.vib")
    assert rep.ok, [f.message for f in rep.all_errors()]
    (payload,) = rep.payloads
    assert [(e.path, e.kind, e.link) for e in payload.entries] == [
        ("opt/lab", "dir", ""), ("opt/lab/a.txt", "file", ""), ("opt/lab/l", "symlink", "a.txt")]
    assert all(c["ok"] for c in payload.checksums) and len(payload.checksums) == 2
    assert any("RPM labtest-1.0-1 (3 file(s))" in f.message for f in payload.findings)
