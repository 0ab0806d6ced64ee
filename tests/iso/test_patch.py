"""Patching a copy of an installer ISO, held to xorriso (libisoburn), a reader nobody here wrote.

xorriso is installed by .ci/run; here it must be present (a skip would hide a broken patch)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

# a core dependency (CI installs it with the package); a venv made before it was added lacks it until
# `pip install -e .[test]` runs again
pytest.importorskip("pycdlib", reason="pycdlib not installed: run pip install -e '.[test]' again")

from labctl.iso import patch
from labctl.iso.image import SECTOR, find_file, inspect_iso, open_iso
from labctl.iso.kickstart import read_kickstart_iso, write_kickstart_iso

ROOT = Path(__file__).resolve().parents[2]
XORRISO = shutil.which("xorriso")
pytestmark = pytest.mark.skipif(XORRISO is None and not os.environ.get("CI"), reason="xorriso not installed")


def xorriso(*args: str) -> str:
    p = subprocess.run([XORRISO or "xorriso", *args], capture_output=True, text=True, check=True)
    return p.stdout


def el_torito(iso: Path) -> list[str]:
    """xorriso's El Torito report: catalog, entries (platform, emulation, load size, LBA), image paths, options."""
    out = xorriso("-indev", str(iso), "-report_el_torito", "plain")
    return [ln for ln in out.splitlines() if ln.startswith("El Torito")]


def system_area(iso: Path) -> list[str]:
    out = xorriso("-indev", str(iso), "-report_system_area", "plain")
    return [ln for ln in out.splitlines() if not ln.startswith(("xorriso :", "Drive", "Media"))]


def extract(iso: Path, path: str, dest: Path) -> str:
    if dest.exists():
        dest.unlink()
    subprocess.run([XORRISO or "xorriso", "-osirrox", "on", "-indev", str(iso), "-extract", path, str(dest)],
                   capture_output=True, check=True)
    return dest.read_text()


@pytest.mark.parametrize("in_place", [True, False], ids=["in-place", "rewrite"])
def test_esxi8_round_trip(media, tmp_path, in_place):
    src = media["esxi8"]
    before = src.read_bytes()
    out = tmp_path / "patched.iso"
    res = patch.patch_copy(src, out, ["allowLegacyCPU=true"], allow_in_place=in_place)
    assert res.method == ("in-place" if in_place else "rewrite")
    assert src.read_bytes() == before  # the original is never touched
    assert stat.S_IMODE(out.stat().st_mode) == 0o600

    entries = el_torito(out)
    assert entries == el_torito(src)
    assert any("1  BIOS  y   none" in ln for ln in entries) and any("2  UEFI  y   none" in ln for ln in entries)
    assert "El Torito img opts :   1  boot-info-table" in entries
    assert system_area(out) == system_area(src)

    for path in ("/BOOT.CFG", "/EFI/BOOT/BOOT.CFG"):
        text = extract(out, path, tmp_path / "x.cfg")
        kernelopt = [ln for ln in text.splitlines() if ln.startswith("kernelopt=")]
        assert kernelopt == ["kernelopt=runweasel cdromBoot ks=cdrom:/KS.CFG allowLegacyCPU=true"]
        original = extract(src, path, tmp_path / "o.cfg")
        assert text.replace(" ks=cdrom:/KS.CFG allowLegacyCPU=true", "") == original
    # every other file reads back byte for byte
    for path in ("/ISOLINUX.BIN", "/EFIBOOT.IMG", "/S.V00", "/MBOOT.C32"):
        a, b = tmp_path / "a", tmp_path / "b"
        for d in (a, b):
            if d.exists():
                d.unlink()
        subprocess.run([XORRISO or "xorriso", "-osirrox", "on", "-indev", str(src), "-extract", path, str(a)],
                       capture_output=True, check=True)
        subprocess.run([XORRISO or "xorriso", "-osirrox", "on", "-indev", str(out), "-extract", path, str(b)],
                       capture_output=True, check=True)
        assert a.read_bytes() == b.read_bytes(), path
    info = inspect_iso(out).to_json()
    assert info["kickstart"] == "cdrom:/KS.CFG" and info["boot"] == ["bios", "uefi"]
    assert info["version"] == "8.0u2" and info["build"] == "22380479"


def test_bootcfg_that_outgrows_its_sector_is_rewritten(media, tmp_path):
    long_opts = [f"opt{i:04d}=" + "x" * 40 for i in range(60)]  # ~2.8 KB more than a 2 KiB sector holds
    res = patch.patch_copy(media["esxi8"], tmp_path / "big.iso", long_opts)
    assert res.method == "rewrite"
    assert el_torito(tmp_path / "big.iso")[:2] == el_torito(media["esxi8"])[:2]
    text = extract(tmp_path / "big.iso", "/EFI/BOOT/BOOT.CFG", tmp_path / "x.cfg")
    assert all(o in text for o in long_opts)


@pytest.mark.parametrize("name", ["esx35", "esx41"])
def test_classic_round_trip(media, tmp_path, name):
    out = tmp_path / f"{name}.iso"
    res = patch.patch_copy(media[name], out, [])
    assert res.method == "in-place" and res.patched == ("isolinux/isolinux.cfg",)
    assert el_torito(out) == el_torito(media[name])
    text = extract(out, "/isolinux/isolinux.cfg", tmp_path / "i.cfg")
    assert "  append initrd=initrd.img mem=512M quiet ks=cdrom:/KS.CFG\n" in text
    assert inspect_iso(out).to_json()["kickstart"] == "cdrom:/KS.CFG"


def test_esxi5_bios_only(media, tmp_path):
    out = tmp_path / "e5.iso"
    assert patch.patch_copy(media["esxi5"], out, []).patched == ("BOOT.CFG",)
    assert el_torito(out) == el_torito(media["esxi5"])


def test_patched_twice_is_idempotent(media, tmp_path):
    once = patch.patch_copy(media["esxi8"], tmp_path / "1.iso", ["allowLegacyCPU=true"])
    twice = patch.patch_copy(once.path, tmp_path / "2.iso", ["allowLegacyCPU=true"])
    assert twice.info.configs == once.info.configs
    assert el_torito(twice.path) == el_torito(once.path)


def test_not_an_installer_is_refused(run_cli, media, tmp_path):
    ks = tmp_path / "ks.cfg"
    ks.write_text("vmaccepteula\n")
    r = run_cli("iso", "build", str(media["plain"]), "--kickstart", str(ks), "-o", str(tmp_path / "out"))
    assert r.status == 2 and "not an ESX installer ISO" in r.err and "Traceback" not in r.err
    assert not list((tmp_path / "out").glob("*.iso"))
    r = run_cli("iso", "build", str(tmp_path / "missing.iso"), "--kickstart", str(ks), "-o", str(tmp_path / "o"))
    assert r.status == 2 and "no such file" in r.err
    r = run_cli("iso", "build", str(media["esxi8"]), "--kickstart", str(tmp_path / "none.cfg"), "-o", str(tmp_path))
    assert r.status == 2 and "cannot read the kickstart" in r.err
    r = run_cli("iso", "build", str(media["esxi8"]), "--kickstart", str(ks), "-o", str(ks))
    assert r.status == 2 and "not a directory" in r.err
    r = run_cli("iso", "build", str(media["esxi8"]), "--kickstart", str(ks), "--boot-option", "ks=x", "-o",
                str(tmp_path / "o"))
    assert r.status == 2 and "labctl sets ks= itself" in r.err and "Traceback" not in r.err


def test_verification_catches_a_damaged_boot_image(media, tmp_path):
    src = media["esxi8"]
    out = tmp_path / "p.iso"
    patch.patch_copy(src, out, [])
    iso = open_iso(out)
    try:
        targets = patch._targets(iso, inspect_iso(src), [], "cdrom:/KS.CFG")
        efi = find_file(iso, "/EFIBOOT.IMG")
        isolinux = find_file(iso, "/ISOLINUX.BIN")
        catalog = find_file(iso, "/BOOT.CAT")
    finally:
        iso.close()
    assert patch.verify_patched(src, out, targets).kickstart == "cdrom:/KS.CFG"
    damaged = tmp_path / "damaged.iso"
    # an EFI image byte; the boot-info table's file LBA; the UEFI entry's load segment in the boot catalog
    # (validation entry, initial entry, section header: 32 bytes each)
    for ref, offset in ((efi, 4096), (isolinux, 12), (catalog, 96 + 2)):
        shutil.copyfile(out, damaged)
        with open(damaged, "r+b") as f:
            f.seek(ref.extent * SECTOR + offset)
            b = f.read(1)
            f.seek(ref.extent * SECTOR + offset)
            f.write(bytes([b[0] ^ 0xFF]))
        with pytest.raises(patch.PatchError, match="verification failed"):
            patch.verify_patched(src, damaged, targets)


def test_build_caches_by_content_and_writes_the_kickstart_cd(run_cli, media, tmp_path):
    ks = tmp_path / "esx1.cfg"
    ks.write_text("vmaccepteula\ninstall --firstdisk --overwritevmfs\n")
    out = tmp_path / "out"
    argv = ("iso", "build", str(media["esxi8"]), "--kickstart", str(ks), "--boot-option", "allowLegacyCPU=true",
            "-o", str(out), "--json")
    r1 = run_cli(*argv)
    assert r1.status == 0, r1.err
    d1 = json.loads(r1.out)
    assert d1["installer_status"] == "in-place" and d1["kickstart_status"] == "written"
    inst, kiso = Path(d1["installer"]), Path(d1["kickstart_iso"])
    assert inst.parent == out and stat.S_IMODE(inst.stat().st_mode) == 0o600
    assert stat.S_IMODE(kiso.stat().st_mode) == 0o600
    assert d1["iso"]["kickstart"] == "cdrom:/KS.CFG"
    mtimes = (inst.stat().st_mtime_ns, kiso.stat().st_mtime_ns)

    r2 = run_cli(*argv)
    d2 = json.loads(r2.out)
    assert (d2["installer"], d2["installer_status"], d2["kickstart_status"]) == (str(inst), "cached", "unchanged")
    assert (inst.stat().st_mtime_ns, kiso.stat().st_mtime_ns) == mtimes

    # another patch or another source is another file; the same bytes under another name are the same key
    r3 = run_cli("iso", "build", str(media["esxi8"]), "--kickstart", str(ks), "-o", str(out), "--json")
    assert json.loads(r3.out)["installer"] != str(inst)
    copy = tmp_path / "esxi8.iso"
    shutil.copyfile(media["esxi8"], copy)
    assert patch.build_patched(copy, out, ["allowLegacyCPU=true"]).path.name.split(".ks-")[1] == \
        inst.name.split(".ks-")[1]

    # the kickstart CD, read by xorriso
    assert "Volume Id    : LABCTL-KS\n" in xorriso("-indev", str(kiso), "-pvd_info")
    assert extract(kiso, "/KS.CFG", tmp_path / "ks.out") == ks.read_text()
    ks.write_text("vmaccepteula\n# changed\n")
    assert run_cli(*argv).status == 0
    assert read_kickstart_iso(kiso) == ks.read_bytes()
    assert not write_kickstart_iso(kiso, ks.read_bytes())


def test_help_does_not_import_pycdlib():
    code = ("import sys, io, contextlib; from labctl.cli.main import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    for a in (['iso', '--help'], ['iso', 'build', '--help'], ['iso', 'inspect', '--help']):\n"
            "        assert main(a) == 0\n"
            "assert 'pycdlib' not in sys.modules, 'pycdlib imported by --help'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


@pytest.mark.slow
def test_bounded_memory_in_a_child(tmp_path):
    """A 160 MB installer: patching (in place and the rewrite fallback) stays far below the image size."""
    src = tmp_path / "big.iso"
    # VmHWM, not ru_maxrss: Linux keeps ru_maxrss across exec, so a child of a big pytest would report its size
    code = (
        "import sys; from labctl.iso import patch\n"
        "src, out, in_place = sys.argv[1], sys.argv[2], sys.argv[3] == '1'\n"
        "r = patch.patch_copy(src, out, ['allowLegacyCPU=true'], allow_in_place=in_place)\n"
        "print(r.method)\n"
        "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0])\n"
    )
    gen = ("import sys; from labctl.iso import synthetic\n"
           "synthetic.write_esxi_iso(sys.argv[1], '8.0u2', payload_size=160 << 20)\n"
           "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0])\n")
    g = subprocess.run([sys.executable, "-c", gen, str(src)], capture_output=True, text=True, cwd=ROOT)
    assert g.returncode == 0, g.stderr
    assert int(g.stdout.split()[-1]) < 100 * 1024, f"generator peak RSS {g.stdout.split()[-1]} kB"
    assert src.stat().st_size > 160 << 20
    for flag, method in (("1", "in-place"), ("0", "rewrite")):
        out = tmp_path / f"out{flag}.iso"
        p = subprocess.run([sys.executable, "-c", code, str(src), str(out), flag], capture_output=True, text=True,
                           cwd=ROOT)
        assert p.returncode == 0, p.stderr
        got_method, peak_kb = p.stdout.split()
        assert got_method == method
        assert int(peak_kb) < 100 * 1024, f"{method}: peak RSS {peak_kb} kB"
        assert el_torito(out) == el_torito(src)
        out.unlink()


def test_in_place_patch_changes_only_the_boot_configs_and_their_records(media, tmp_path):
    """Not a rebuild: the sectors that differ from the source are the two BOOT.CFG extents and a few sectors of
    volume descriptors and directory records, nothing else."""
    src, out = media["esxi8"], tmp_path / "p.iso"
    patch.patch_copy(src, out, ["allowLegacyCPU=true"])
    a, b = src.read_bytes(), out.read_bytes()
    assert len(a) == len(b)
    changed = {i // SECTOR for i in range(0, len(a), SECTOR) if a[i:i + SECTOR] != b[i:i + SECTOR]}
    iso = open_iso(src)
    try:
        cfgs = {find_file(iso, p).extent for p in ("/BOOT.CFG", "/EFI/BOOT/BOOT.CFG")}
    finally:
        iso.close()
    assert cfgs <= changed
    assert len(changed - cfgs) <= 8, sorted(changed - cfgs)


def test_source_hash_is_remembered_until_the_file_changes(media, tmp_path, monkeypatch):
    src = tmp_path / "e8.iso"
    shutil.copyfile(media["esxi8"], src)
    cache = tmp_path / "cache"
    first = patch.build_patched(src, cache, [])
    calls = []
    real = patch.sha256_file
    monkeypatch.setattr(patch, "sha256_file", lambda p: calls.append(p) or real(p))
    assert patch.build_patched(src, cache, []).method == "cached" and calls == []
    # the same size and mtime, other content: ctime tells
    st = src.stat()
    with open(src, "r+b") as f:
        f.seek(st.st_size - 100)
        f.write(b"changed")
    os.utime(src, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = patch.build_patched(src, cache, [])
    assert calls == [src] and again.method == "in-place" and again.path != first.path
