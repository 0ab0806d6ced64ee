"""ESX 4 VIBs held to outside tools: the real `rpm` (verify, query, install into a scratch root, `rpm -V`),
`dpkg-deb` for the deb parts, GNU `ar` for the container; the descriptor held to ESX 4's own reader.

Source for the layout and descriptor rules: VMware VIB Author 5.0.0-847598 (tcely/docker-vibauthor,
mirror/vmware-esx-vib-author-5.0.0-0.0.847598.i386.rpm, commit 8eb593d096c76dff082325295c758c099ae982e3), whose
/opt/vmware/vibtools-6.0.0-847598/lib/vmware/esx45update/ is ESX 4's esxupdate library:
- Vib.pyc `VibFile._parseVib`: "Duplicate file entries in Vib", "Vib missing descriptor.xml", "More than one .rpm
  found", "Vibs of type '%s' must have one rpm", debian-binary/control.tar.gz/data.tar.gz as members 0-2 ("Vib is
  not Debian-compatible"), "Signature file not the last member" (sig.pkcs7 at index -1).
- Descriptor.pyc `DescriptorBase._toXml` / `DescriptorFile._toXml`: the element order below, root
  <descriptor version="3.0"> (DESCVER = '3.0').
- Vib.pyc `VIB.idfromtnv`: the VIB ID is type_name_version; `RPMVersion.versionstring` appends "@arch".
- Vib.pyc `VIB.createfullrpm`: a cross VIB's short.rpm is a header whose RPMTAG_FILENAMES order the payload that
  esxupdate builds from data.tar.gz and appends.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.vib.ar import read_ar, read_member

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vib" / "lab-tools"
DATE = "2024-06-25T07:17:37+00:00"
FILE = "etc/vmware/firewall/labtools.xml"

# esx45update Descriptor.DescriptorBase._toXml, in order (visorDestination and pkgfile only when set,
# softwareTags only with tags)
DESCRIPTOR_ORDER = ["vibVersion", "vibID", "name", "vendor", "version", "buildDate", "vibType", "systemReqs",
                    "postInstall", "visorDestination", "pkgfile", "softwareTags"]
LAYOUTS = {
    "esx4-rpm": ["descriptor.xml", "complete.rpm", "sig.pkcs7"],
    "esx4-deb": ["debian-binary", "control.tar.gz", "data.tar.gz", "descriptor.xml", "sig.pkcs7"],
    "esx4-cross": ["debian-binary", "control.tar.gz", "data.tar.gz", "descriptor.xml", "short.rpm", "sig.pkcs7"],
}


def _need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it)")
    return path


def _run(*argv: str, ok: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(list(argv), capture_output=True, text=True, timeout=120)
    if ok:
        assert p.returncode == 0, f"{argv}: {p.stdout}{p.stderr}"
    return p


@pytest.fixture
def scratch(tmp_path):
    """(argv prefix, directory) to run rpm unprivileged in a scratch root: as the invoking user, or as nobody
    (setpriv) when the tests run as root, in a directory that user owns (pytest's tmp_path is root-only)."""
    if os.geteuid() != 0:
        yield ["env", f"HOME={tmp_path}"], tmp_path
        return
    setpriv = _need("setpriv")
    import tempfile

    d = Path(tempfile.mkdtemp(prefix="labctl-rpm-"))
    try:
        os.chown(d, 65534, 65534)
        yield [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "env", f"HOME={d}"], d
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _give(path: Path, scratch_dir: Path) -> Path:
    """A copy of `path` in the scratch directory, owned by its user."""
    dest = scratch_dir / path.name
    shutil.copyfile(path, dest)
    st = scratch_dir.stat()
    if os.geteuid() == 0:
        os.chown(dest, st.st_uid, st.st_gid)
    return dest


def _root(scratch_dir: Path) -> tuple[Path, list[str]]:
    root = scratch_dir / "root"
    root.mkdir()
    st = scratch_dir.stat()
    if os.geteuid() == 0:
        os.chown(root, st.st_uid, st.st_gid)
    return root, ["--root", str(root), "--dbpath", "/var/lib/rpm"]


def _build(run_cli, tmp_path: Path, fmt: str, stage: Path = EXAMPLE, *extra: str) -> Path:
    out = tmp_path / f"{fmt}.vib"
    r = run_cli("vib", "build", str(stage), "-o", str(out), "--format", fmt, "--release-date", DATE, *extra)
    assert r.status == 0, r.err
    return out


def _member(vib: Path, name: str, dest: Path) -> Path:
    with open(vib, "rb") as fh:
        a = read_ar(fh)
        m = a.get(name)
        assert m is not None, a.names()
        dest.write_bytes(read_member(fh, m, 64 << 20))
    return dest


def _stage_with_relations(tmp_path: Path) -> Path:
    stage = tmp_path / "stage"
    shutil.copytree(EXAMPLE, stage)
    y = stage / "descriptor.yaml"
    y.write_text(y.read_text() + "depends: [{name: vmware-esx-firewall, relation: '>=', version: 4.0.0-1}]\n"
                 "conflicts: [old-lab-tools]\nreplaces: [lab-tools-legacy]\n")
    return stage


@pytest.mark.parametrize("fmt", sorted(LAYOUTS))
def test_layout_and_descriptor(run_cli, tmp_path, fmt):
    out = _build(run_cli, tmp_path, fmt)
    again = tmp_path / "again"
    again.mkdir()
    assert _build(run_cli, again, fmt).read_bytes() == out.read_bytes()  # reproducible, RPMs included
    assert _run(_need("ar"), "t", str(out)).stdout.split() == LAYOUTS[fmt]  # GNU ar reads the container
    with open(out, "rb") as fh:
        a = read_ar(fh)
        assert a.names() == LAYOUTS[fmt]
        assert read_member(fh, a.get("sig.pkcs7"), 10) == b""  # present in every VIB, empty when unsigned
        root = ET.fromstring(read_member(fh, a.get("descriptor.xml"), 1 << 20))
    assert root.tag == "descriptor" and root.attrib == {"version": "3.0"}
    tags = [c.tag for c in root]
    assert tags == [t for t in DESCRIPTOR_ORDER if t in tags]
    assert {"vibVersion", "vibID", "name", "vendor", "version", "buildDate", "vibType", "pkgfile"} <= set(tags)
    vib_type = fmt.split("-")[1]
    version = "1.0.0-1@noarch" if vib_type == "rpm" else "1.0.0-1"
    assert root.findtext("vibID") == f"{vib_type}_lab-tools_{version}"
    assert root.findtext("version") == version and root.findtext("vibType") == vib_type
    assert root.findtext("buildDate") == DATE
    assert root.findtext("pkgfile") == ("lab-tools_1.0.0-1_i386.deb" if vib_type == "deb"
                                        else "lab-tools-1.0.0-1.noarch.rpm")
    lines = {"rpm": ["esx"], "deb": ["embeddedEsx"], "cross": ["esx", "embeddedEsx"]}[vib_type]
    plats = root.findall("systemReqs/swPlatform")
    assert [(p.get("productLineID"), p.get("version"), p.get("locale")) for p in plats] == [(x, "4.*", "")
                                                                                          for x in lines]
    assert root.findtext("systemReqs/maintenanceMode") == "false"
    assert root.findtext("postInstall/rebootRequired") == "false"

    r = run_cli("vib", "inspect", str(out), "--json")
    doc = json.loads(r.out)
    assert r.status == 0, doc
    assert doc["kind"] == fmt and doc["vib_id"] == f"{vib_type}_lab-tools_{version}"
    findings = doc["findings"] + [f for p in doc["payloads"] for f in p["findings"]]
    assert not [f for f in findings if f["severity"] != "info"], findings
    assert "unsigned (empty sig.pkcs7): install with esxupdate --nosigcheck" in [f["message"] for f in findings]


def test_sig_pkcs7_not_last_is_an_error(run_cli, tmp_path):
    from tests.vib.vibhelpers import ar_bytes

    out = _build(run_cli, tmp_path, "esx4-rpm")
    with open(out, "rb") as fh:
        a = read_ar(fh)
        members = {n: read_member(fh, a.get(n), 1 << 20) for n in a.names()}
    bad = tmp_path / "bad.vib"
    bad.write_bytes(ar_bytes([(b"descriptor.xml", members["descriptor.xml"]), (b"sig.pkcs7", b""),
                              (b"complete.rpm", members["complete.rpm"])]))
    r = run_cli("vib", "inspect", str(bad))
    assert r.status == 1 and "Signature file not the last member" in r.out


def test_complete_rpm_with_real_rpm(run_cli, tmp_path, scratch):
    rpm = _need("rpm")
    out = _build(run_cli, tmp_path, "esx4-rpm", _stage_with_relations(tmp_path))
    pkg = _member(out, "complete.rpm", tmp_path / "lab-tools-1.0.0-1.noarch.rpm")

    k = _run(rpm, "-Kv", str(pkg))
    assert "v3" not in k.stderr, k.stderr  # "RPM v3 packages are deprecated" without an immutable region
    for line in ("Header SHA256 digest: OK", "Header SHA1 digest: OK", "MD5 digest: OK"):
        assert line in k.stdout, k.stdout
    q = _run(rpm, "-qp", "--qf", "%{NAME}|%{VERSION}|%{RELEASE}|%{ARCH}|%{SUMMARY}|%{VENDOR}|%{BUILDTIME}|"
                                 "%{SOURCERPM}\\n", str(pkg))
    assert "v3" not in q.stderr, q.stderr
    assert q.stdout.strip() == ("lab-tools|1.0.0|1|noarch|Lab tools firewall rule (outbound TCP 8000)|labctl|"
                                "1719299857|lab-tools-1.0.0-1.src.rpm")
    assert _run(rpm, "-qpl", str(pkg)).stdout.split() == [f"/{FILE}"]
    deps = _run(rpm, "-qp", "--requires", str(pkg)).stdout.splitlines()
    assert "rpmlib(CompressedFileNames) <= 3.0.4-1" in deps and "vmware-esx-firewall >= 4.0.0-1" in deps
    assert _run(rpm, "-qp", "--conflicts", str(pkg)).stdout.split() == ["old-lab-tools"]
    assert _run(rpm, "-qp", "--obsoletes", str(pkg)).stdout.split() == ["lab-tools-legacy"]

    as_user, sdir = scratch  # installed unprivileged: rpm leaves ownership alone for a non-root user
    pkg = _give(pkg, sdir)
    root, db = _root(sdir)
    rpm = [*as_user, rpm]
    i = _run(*rpm, *db, "-i", "--nodeps", "--noscripts", str(pkg))
    assert "v3" not in i.stderr and "BAD" not in i.stderr, i.stderr
    assert (root / FILE).read_bytes() == (EXAMPLE / "payloads" / "labtools" / FILE).read_bytes()
    assert (root / FILE).stat().st_mtime == 1719299857
    assert (root / FILE).stat().st_uid == sdir.stat().st_uid  # installed by the unprivileged user
    q = _run(*rpm, *db, "-q", "lab-tools")
    assert q.stdout.strip() == "lab-tools-1.0.0-1.noarch" and "BAD" not in q.stderr, q.stderr
    v = _run(*rpm, *db, "-V", "--nodeps", "lab-tools")
    assert v.stdout == "" and "BAD" not in v.stderr, v.stdout + v.stderr
    (root / FILE).write_text("<ConfigRoot/>\n")  # rpm -V notices a changed file: the check can fail
    v = _run(*rpm, *db, "-V", "--nodeps", "lab-tools", ok=False)
    assert v.returncode == 1 and f"/{FILE}" in v.stdout and "5" in v.stdout.split()[0], v.stdout
    _run(*rpm, *db, "-e", "--noscripts", "lab-tools")
    assert _run(*rpm, *db, "-q", "lab-tools", ok=False).returncode == 1


def _full_rpm_like_esxupdate(short: Path, data_tgz: Path, rpm: str, out: Path) -> Path:
    """What esx45update VIB.createfullrpm does: a cpio.gz of data.tar.gz's files, in the order of the short.rpm
    header's file names, appended to short.rpm."""
    from labctl.vib.rpm import _cpio

    names = _run(rpm, "-qpl", str(short)).stdout.split()
    buf = io.BytesIO()
    with tarfile.open(data_tgz) as tf, gzip.GzipFile(fileobj=buf, mode="wb", mtime=0) as gz:
        for ino, name in enumerate(names, 1):
            ti = tf.getmember(name.lstrip("/"))
            data = tf.extractfile(ti).read()  # type: ignore[union-attr]
            gz.write(_cpio("." + name, 0o100000 | ti.mode, len(data), ti.mtime, ino))
            gz.write(data + b"\0" * (-len(data) % 4))
        gz.write(_cpio("TRAILER!!!", 0, 0, 0, 0))
    out.write_bytes(short.read_bytes() + buf.getvalue())
    return out


def test_cross_short_rpm_with_real_rpm(run_cli, tmp_path, scratch):
    rpm = _need("rpm")
    out = _build(run_cli, tmp_path, "esx4-cross")
    short = _member(out, "short.rpm", tmp_path / "short.rpm")
    k = _run(rpm, "-Kv", str(short), ok=False)
    assert "Header SHA256 digest: OK" in k.stdout and "Header SHA1 digest: OK" in k.stdout, k.stdout
    assert "v3" not in k.stderr, k.stderr
    assert _run(rpm, "-qpl", str(short)).stdout.split() == [f"/{FILE}"]
    full = _full_rpm_like_esxupdate(short, _member(out, "data.tar.gz", tmp_path / "data.tar.gz"), rpm,
                                    tmp_path / "full.rpm")
    k = _run(rpm, "-Kv", str(full), ok=False)  # the appended payload is covered by no digest: rpm 4.4 does not care
    assert "Header SHA256 digest: OK" in k.stdout and "Header SHA1 digest: OK" in k.stdout, k.stdout
    as_user, sdir = scratch
    full = _give(full, sdir)
    root, db = _root(sdir)
    rpm = [*as_user, rpm]
    # rpm >= 4.14 refuses a package without a payload digest unless told not to check: ESX 4's rpm 4.4 has no
    # such rule
    i = _run(*rpm, *db, "-i", "--nodeps", "--noscripts", "--nodigest", str(full))
    assert "v3" not in i.stderr, i.stderr
    assert _run(*rpm, *db, "-q", "lab-tools").stdout.strip() == "lab-tools-1.0.0-1.noarch"
    v = _run(*rpm, *db, "-V", "--nodeps", "lab-tools")
    assert v.stdout == "", v.stdout


@pytest.mark.parametrize("fmt", ["esx4-deb", "esx4-cross"])
def test_deb_parts_with_dpkg_deb(run_cli, tmp_path, fmt):
    dpkg_deb = _need("dpkg-deb")
    out = _build(run_cli, tmp_path, fmt, _stage_with_relations(tmp_path))
    f = _run(dpkg_deb, "-f", str(out), "Package", "Version", "Architecture", "Depends", "Conflicts", "Replaces")
    assert f.stdout.splitlines() == ["Package: lab-tools", "Version: 1.0.0-1", "Architecture: i386",
                                     "Depends: vmware-esx-firewall (>= 4.0.0-1)", "Conflicts: old-lab-tools",
                                     "Replaces: lab-tools-legacy"]
    info = _run(dpkg_deb, "-I", str(out))
    assert "new Debian package, version 2.0." in info.stdout
    assert " Description: Lab tools firewall rule (outbound TCP 8000)\n  Opens outbound TCP 8000" in info.stdout
    listing = _run(dpkg_deb, "-c", str(out)).stdout
    assert f"./{FILE}" in listing or f" {FILE}" in listing, listing
    x = tmp_path / "x"
    _run(dpkg_deb, "-x", str(out), str(x))
    assert (x / FILE).read_bytes() == (EXAMPLE / "payloads" / "labtools" / FILE).read_bytes()


def test_inspect_says_nothing_was_declared(run_cli, tmp_path):
    """An ESX 4 descriptor declares no member checksums: inspect must not call them "ok"."""
    out = _build(run_cli, tmp_path, "esx4-deb")
    r = run_cli("vib", "inspect", str(out))
    assert r.status == 0
    lines = [ln for ln in r.out.splitlines() if ln.strip().startswith("payload data.tar.gz")]
    assert lines and lines[0].endswith(": no checksum declared"), r.out
    assert "sha-256 ok" not in r.out and "sha-256/" not in r.out, r.out
    doc = json.loads(run_cli("vib", "inspect", str(out), "--json").out)
    data = next(p for p in doc["payloads"] if p["name"] == "data.tar.gz")
    assert data["checksums"] == [] and data["checksums_ok"] is None
    assert any("no checksum declared" in f["message"] for f in data["findings"])


def test_signed_esx4_rpm_vib(run_cli, tmp_path):
    from tests.vib.test_build import _ca_and_leaf

    key, crt, ca = _ca_and_leaf(tmp_path)
    out = _build(run_cli, tmp_path, "esx4-rpm", EXAMPLE, "--sign", str(key), "--cert", str(crt))
    with open(out, "rb") as fh:
        a = read_ar(fh)
        assert a.names() == LAYOUTS["esx4-rpm"]
        assert read_member(fh, a.get("sig.pkcs7"), 1 << 20).startswith(b"-----BEGIN PKCS7-----")
    doc = json.loads(run_cli("vib", "inspect", str(out), "--json", "--ca", str(ca)).out)
    assert doc["ok"] and doc["signature"]["valid"] and doc["signature"]["trusted"], doc


def test_earlier_vib_root_still_read(run_cli, tmp_path):
    """A descriptor in labctl's earlier <vib> layout (no vibID, releaseDate) is read, with a note."""
    from labctl.vib.esx4 import parse_esx4

    d, findings = parse_esx4(b"<vib><vibVersion>1.4.5</vibVersion><vibType>rpm</vibType><name>x</name>"
                             b"<version>1.0-1</version><vendor>v</vendor><summary>s</summary>"
                             b"<releaseDate>2010-01-01T00:00:00</releaseDate></vib>")
    assert (d.vib_id, d.summary, d.release_date) == ("rpm_x_1.0-1", "s", "2010-01-01T00:00:00")
    assert [f.severity for f in findings] == ["info"]
    _, findings = parse_esx4(b'<descriptor version="3.0"><vibVersion>1.4.5</vibVersion><vibType>deb</vibType>'
                             b"<name>x</name><version>1.0-1</version><vendor>v</vendor></descriptor>")
    assert [f.message for f in findings if f.severity == "error"] == [
        "descriptor.xml has no <vibID> (esxupdate: Could not parse valid VIB ID from XML data.)"]


def test_v3_header_is_what_rpm_deprecates(run_cli, tmp_path):
    """The same package without the immutable region (the v3 form labctl used to write): the real rpm warns, and
    so does inspect; labctl's own build does neither (test_complete_rpm_with_real_rpm)."""
    import hashlib

    from labctl.vib import rpm as r
    from tests.vib.vibhelpers import ar_bytes

    rpm = _need("rpm")
    spec = r.RpmSpec("old", "1.0", "1", "s", "d", "v", 1719299857)
    hdr = r.header([(1000, r.STRING, "old"), (1001, r.STRING, "1.0"), (1002, r.STRING, "1"),
                    (1004, r.I18NSTRING, "s"), (1022, r.STRING, "noarch"), (1021, r.STRING, "linux")], None)
    payload = gzip.compress(r._cpio("TRAILER!!!", 0, 0, 0, 0), mtime=0)
    sig = r.header([(r.SIG_SHA1, r.STRING, hashlib.sha1(hdr).hexdigest()),
                    (r.SIG_MD5, r.BIN, hashlib.md5(hdr + payload).digest())], None)
    pkg = r._lead(spec) + sig + b"\0" * (-len(sig) % 8) + hdr + payload
    (tmp_path / "old.rpm").write_bytes(pkg)
    q = _run(rpm, "-qp", str(tmp_path / "old.rpm"))
    assert "RPM v3 packages are deprecated" in q.stderr, q.stderr
    desc = (b'<descriptor version="3.0"><vibVersion>1.4.5</vibVersion><vibID>rpm_old_1.0-1@noarch</vibID>'
            b"<name>old</name><vendor>v</vendor><version>1.0-1@noarch</version><vibType>rpm</vibType></descriptor>")
    (tmp_path / "old.vib").write_bytes(ar_bytes([(b"descriptor.xml", desc), (b"complete.rpm", pkg),
                                                 (b"sig.pkcs7", b"")]))
    doc = json.loads(run_cli("vib", "inspect", str(tmp_path / "old.vib"), "--json").out)
    msgs = [f["message"] for p in doc["payloads"] for f in p["findings"] if f["severity"] == "warning"]
    assert any("RPM v3 header (no immutable region)" in m for m in msgs), doc
