"""Hostile input: every case is built here and refused with a clear message; inspect writes nothing."""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile
import zipfile

import pytest

from labctl.vib.ar import MAGIC, read_ar
from labctl.vib.descriptor import parse_descriptor
from labctl.vib.findings import VibFormatError
from labctl.vib.payload import GunzipReader, Limits

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


def test_ar_duplicate_names(run_cli, tmp_path):
    d = descriptor("p1", GOOD, ["etc/vmware/firewall/a.xml"])
    data = ar_bytes([(b"descriptor.xml", d), (b"sig.pkcs7", b""), (b"p1", GOOD), (b"p1", GOOD)])
    _one(_errors(run_cli, tmp_path, data), "duplicate member name 'p1'")


def test_ar_empty_name(run_cli, tmp_path):
    _one(_errors(run_cli, tmp_path, ar_bytes([(b"", b"x")])), "empty name")


@pytest.mark.parametrize("name", [b"../etc/passwd", b"a/b", b"..", b"/etc"])
def test_ar_slash_or_dotdot_names(run_cli, tmp_path, name):
    _one(_errors(run_cli, tmp_path, ar_bytes([(name, b"x")])), "unsafe member name")


def test_ar_gnu_long_name_with_slash_refused(run_cli, tmp_path):
    table = b"../../evil/x/\n"
    data = MAGIC + ar_header(b"//", len(table)) + table + ar_header(b"/0", 1) + b"x\n"
    _one(_errors(run_cli, tmp_path, data), "unsafe member name")


def test_ar_too_many_members(run_cli, tmp_path):
    data = ar_bytes([(f"m{i}".encode(), b"xx") for i in range(100)])
    _one(_errors(run_cli, tmp_path, data), "more than 64 members")


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


def test_xml_entity_bomb(run_cli, tmp_path):
    bomb = (b'<?xml version="1.0"?><!DOCTYPE vib [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><vib version="5.0"><name>&c;</name></vib>')
    _one(_errors(run_cli, tmp_path, ar_bytes([(b"descriptor.xml", bomb), (b"sig.pkcs7", b"")])),
         "entity-expansion bomb or XXE")


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


def _ti(name, type_=tarfile.REGTYPE, link="", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.linkname = link
    ti.mode = mode
    return ti


@pytest.mark.parametrize(
    "entry,needle",
    [
        (_ti("/etc/passwd"), "absolute path"),
        (_ti("opt/../../etc/passwd"), "contains '..'"),
        (_ti("opt/x", tarfile.SYMTYPE, "/etc/shadow"), "absolute path"),
        (_ti("opt/x", tarfile.SYMTYPE, "../../etc/shadow"), "outside the payload"),
        (_ti("opt/x", tarfile.LNKTYPE, "../etc/shadow"), "outside the payload"),
        (_ti("opt/dev", tarfile.CHRTYPE), "device node"),
        (_ti("opt/blk", tarfile.BLKTYPE), "device node"),
        (_ti("opt/fifo", tarfile.FIFOTYPE), "FIFO"),
        (_ti("opt\\win"), "backslash"),
    ],
)
def test_tar_unsafe_members(run_cli, tmp_path, entry, needle):
    payload = tgz([entry])
    _one(_errors(run_cli, tmp_path, vib(payload, ["opt/x"])), needle)


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


def test_gzip_bomb_ratio_cap(run_cli, tmp_path):
    # 40 MB of zeros compress ~1000:1: above the 200:1 cap once past 16 MB; refused while streaming
    bomb = gzip.compress(b"\0" * (40 * 1024 * 1024), compresslevel=9)
    assert len(bomb) < 100_000
    _one(_errors(run_cli, tmp_path, vib(bomb, ["opt/x"])), "compression ratio above 200:1")


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


@pytest.mark.parametrize("offset,needle", [(10**6, "past the end"), (0, "overlaps the header table")])
def test_vmtar_offsets_out_of_bounds(run_cli, tmp_path, offset, needle):
    data = vib(vmtar([("opt/a", b"hello")], bad_offset=offset), ["opt/a"], ptype="vgz")
    _one(_errors(run_cli, tmp_path, data), needle)


def test_vmtar_absolute_path(run_cli, tmp_path):
    _one(_errors(run_cli, tmp_path, vib(vmtar([("/etc/passwd", b"x")]), ["opt/a"], ptype="vgz")), "absolute path")


# ---- bundles


def test_bundle_zip_slip_and_missing_vib(run_cli, tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("../../evil.vib", b"x")
    _one(_errors(run_cli, tmp_path, buf.getvalue(), "b.zip"), "contains '..'")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("index.xml", b"<vendorList/>")
    msgs = _errors(run_cli, tmp_path, buf.getvalue(), "c.zip")
    _one(msgs, "no vendor-index.xml")
    _one(msgs, "contains no .vib")
