"""LAN segments in a temp copy of ~/.vmware/preferences (never the real one)."""

from __future__ import annotations

from labctl.workstation import preferences as prefs
from labctl.workstation.preferences import LanSegment

EXISTING = """\
.encoding = "UTF-8"
pref.keyboardAndMouse.vmHotKey.enabled = "FALSE"
pref.namedPVNs.count = "1"
pref.namedPVNs0.name = "old-lab"
pref.namedPVNs0.pvnID = "52 11 22 33 44 55 66 77-88 99 aa bb cc dd ee ff"
# keep me
"""

VMOTION = LanSegment("vmotion", "52 8c 98 ed 46 f0 ae 00-28 76 d2 99 3a 4d 1c 60")
HB = LanSegment("heartbeat", "52 8c 98 ed 46 f0 ae 01-28 76 d2 99 3a 4d 1c 61")


def test_add_is_idempotent_and_keeps_other_keys(tmp_path):
    path = tmp_path / ".vmware" / "preferences"
    path.parent.mkdir()
    path.write_text(EXISTING)
    changes = prefs.ensure_segments(path, [VMOTION, HB])
    assert changes == [
        f"added LAN segment 'vmotion' ({VMOTION.pvn_id})",
        f"added LAN segment 'heartbeat' ({HB.pvn_id})",
    ]
    text = path.read_text()
    assert 'pref.namedPVNs.count = "3"' in text and "# keep me" in text
    assert prefs.listed_segments(text) == [
        LanSegment("old-lab", "52 11 22 33 44 55 66 77-88 99 aa bb cc dd ee ff"),
        VMOTION,
        HB,
    ]
    assert prefs.ensure_segments(path, [VMOTION, HB]) == []
    assert path.read_text() == text
    assert list(path.parent.glob("preferences.labctl-backup-*"))  # the user's file was backed up


def test_same_pvnid_other_case_is_not_added_twice_but_renamed():
    text, changes = prefs.add_segments(
        EXISTING, [LanSegment("renamed", "52 11 22 33 44 55 66 77-88 99 AA BB CC DD EE FF")]
    )
    assert changes == ["renamed LAN segment 52 11 22 33 44 55 66 77-88 99 AA BB CC DD EE FF to 'renamed'"]
    assert b'pref.namedPVNs.count = "1"' in text


def test_missing_file_is_created(tmp_path):
    path = tmp_path / ".vmware" / "preferences"
    path.parent.mkdir()
    assert prefs.ensure_segments(path, [VMOTION]) == [f"added LAN segment 'vmotion' ({VMOTION.pvn_id})"]
    assert prefs.listed_segments(path.read_bytes()) == [VMOTION]
    assert path.stat().st_mode & 0o777 == 0o600


def test_dry_run_writes_nothing(tmp_path):
    path = tmp_path / "preferences"
    assert prefs.ensure_segments(path, [VMOTION], dry_run=True)
    assert not path.exists()


def test_default_path_under_sudo_is_the_users(tmp_path):
    assert prefs.default_preferences_path({"HOME": str(tmp_path)}) == tmp_path / ".vmware" / "preferences"
    assert prefs.default_preferences_path({"HOME": "/root", "SUDO_USER": "root"}) == prefs.Path(
        "/root/.vmware/preferences"
    )
