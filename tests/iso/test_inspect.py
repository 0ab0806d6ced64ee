"""`labctl iso inspect` on synthetic ESXi 8 / 7 / 5, ESX 3.5 / 4.1 media and an ISO that is no installer."""

from __future__ import annotations

import json

import pytest

# a core dependency (CI installs it with the package); a venv made before it was added lacks it until
# `pip install -e .[test]` runs again
pytest.importorskip("pycdlib", reason="pycdlib not installed: run pip install -e '.[test]' again")

from labctl.iso.image import parse_bootcfg_build, parse_discinfo, parse_volume_id

EXPECTED = {
    "esxi8": {"kind": "esxi-installer", "version": "8.0u2", "build": "22380479",
              "volume_id": "ESXI-8.0U2-22380479-STANDARD", "boot": ["bios", "uefi"], "kickstart": None},
    "esxi7": {"kind": "esxi-installer", "version": "7.0u3", "build": "18644231",
              "volume_id": "ESXI-7.0U3-18644231-STANDARD", "boot": ["bios", "uefi"], "kickstart": None},
    # 5.x: BOOT.CFG has an empty build=, the volume id names it; BIOS only
    "esxi5": {"kind": "esxi-installer", "version": "5.0", "build": "469512",
              "volume_id": "ESXI-5.0.0-469512-STANDARD", "boot": ["bios"], "kickstart": None},
    # classic: the volume id has no build; .discinfo does
    "esx35": {"kind": "esx-classic-installer", "version": "3.5", "build": "64607",
              "volume_id": "ESX Server 3.5", "boot": ["bios"], "kickstart": None},
    "esx41": {"kind": "esx-classic-installer", "version": "4.1", "build": "260247",
              "volume_id": "ESX Server 4.1", "boot": ["bios"], "kickstart": None},
    "plain": {"kind": "other", "version": None, "build": None, "volume_id": "DATA_DISC", "boot": [],
              "kickstart": None},
}


def test_update_comes_from_the_build_before_7_0(run_cli, tmp_path):
    """Before 7.0 the media say x.y.0 for every update; the build names the update (labctl.releases)."""
    from labctl.iso import synthetic

    classic = synthetic.write_classic_iso(tmp_path / "esx35u2.iso", "3.5", "110268")
    esxi = synthetic.write_esxi_iso(tmp_path / "esxi67u3.iso", "6.7", "14320388")
    for iso, version, build in ((classic, "3.5u2", "110268"), (esxi, "6.7u3", "14320388")):
        doc = json.loads(run_cli("iso", "inspect", str(iso), "--json").out)
        assert (doc["version"], doc["build"]) == (version, build)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_inspect_json(run_cli, media, name):
    r = run_cli("iso", "inspect", str(media[name]), "--json")
    assert r.status == 0, r.err
    assert json.loads(r.out) == EXPECTED[name]


def test_inspect_human(run_cli, media):
    r = run_cli("iso", "inspect", str(media["esxi8"]))
    assert r.status == 0
    assert "  kind       esxi-installer\n" in r.out and "  boot       bios, uefi\n" in r.out
    assert "  kickstart  none\n" in r.out


@pytest.mark.parametrize("what", ["missing", "dir", "garbage", "truncated"])
def test_unreadable_input_is_exit_2_without_traceback(run_cli, media, tmp_path, what):
    if what == "missing":
        p = tmp_path / "nope.iso"
    elif what == "dir":
        p = tmp_path
    elif what == "garbage":
        p = tmp_path / "garbage.iso"
        p.write_bytes(b"not an iso\n" * 4000)
    else:
        p = tmp_path / "truncated.iso"
        p.write_bytes(media["esxi8"].read_bytes()[: 17 * 2048 + 100])
    for argv in (("iso", "inspect", str(p)), ("iso", "inspect", str(p), "--json")):
        r = run_cli(*argv)
        assert r.status == 2, (r.out, r.err)
        assert r.err.startswith(f"labctl: error: {p}") and "Traceback" not in r.err and "internal error" not in r.err


def test_fact_parsers():
    v, b = parse_bootcfg_build("8.0.2-0.0.22380479")
    assert (str(v), v.build, b) == ("8.0u2", 22380479, "22380479")
    assert parse_bootcfg_build("") == (None, None)
    v, b = parse_volume_id("ESXI-8.0U3B-24280767-STANDARD")
    assert (str(v), b) == ("8.0u3", "24280767")
    # patch-level image profiles carry a date-based number, not a build
    v, b = parse_volume_id("ESXI-6.7.0-20190802001-STANDARD")
    assert (str(v), b) == ("6.7", None)
    assert parse_volume_id("UBUNTU 22.04") == (None, None)
    v, b = parse_discinfo("1196205373.727939\nVMware ESX Server 3.5.0-64607\ni386\n1\n")
    assert (str(v), b) == ("3.5", "64607")
