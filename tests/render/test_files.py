"""Atomic writes and the manifest: every branch of write_atomic, including a crash before the rename."""

from __future__ import annotations

import json
import os
import stat

import pytest

from labctl.errors import ExitStatus, RefusedError
from labctl.render import files
from labctl.render.files import Manifest, WriteError, WriteStatus, check_write, sha256_hex, write_atomic


def _manifest_doc(root):
    return json.loads((root / ".labctl" / "manifest.json").read_text())


def _leftovers(directory):
    return [p.name for p in directory.iterdir() if p.name.endswith(".labctl-tmp")]


def test_create_update_unchanged_and_manifest_records_hash(tmp_path):
    m = Manifest(tmp_path)
    target = tmp_path / "esx1" / "esx1.vmx"
    assert write_atomic(target, 'memsize = "1"\n', manifest=m) is WriteStatus.CREATED
    assert target.read_text() == 'memsize = "1"\n'
    doc = _manifest_doc(tmp_path)
    entry = doc["files"]["esx1/esx1.vmx"]
    assert entry["sha256"] == sha256_hex(b'memsize = "1"\n') and entry["size"] == 14
    assert entry["written"].endswith("Z")
    assert write_atomic(target, b'memsize = "1"\n', manifest=m) is WriteStatus.UNCHANGED
    assert write_atomic(target, 'memsize = "2"\n', manifest=m) is WriteStatus.UPDATED
    assert _manifest_doc(tmp_path)["files"]["esx1/esx1.vmx"]["sha256"] == sha256_hex(b'memsize = "2"\n')
    assert str(WriteStatus.UPDATED) == "updated"
    assert _leftovers(target.parent) == []


def test_unchanged_write_does_not_touch_the_file(tmp_path):
    target = tmp_path / "a.txt"
    write_atomic(target, "x", manifest=Manifest(tmp_path))
    before = target.stat()
    assert write_atomic(target, "x", manifest=Manifest(tmp_path)) is WriteStatus.UNCHANGED
    after = target.stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)


def test_file_not_written_by_labctl_is_refused_without_force(tmp_path):
    target = tmp_path / "hosts.conf"
    target.write_text("mine\n")
    with pytest.raises(RefusedError) as e:
        write_atomic(target, "labctl's\n", manifest=Manifest(tmp_path))
    assert str(target) in e.value.message and "labctl did not write it" in e.value.message
    assert e.value.status == ExitStatus.REFUSED
    assert target.read_text() == "mine\n"
    assert write_atomic(target, "labctl's\n", manifest=Manifest(tmp_path), force=True) is WriteStatus.UPDATED
    assert target.read_text() == "labctl's\n"
    assert target in Manifest(tmp_path)


def test_identical_unknown_file_is_adopted_as_unchanged(tmp_path):
    target = tmp_path / "exports"
    target.write_text("/export/lab 10.10.10.0/24(rw)\n")
    m = Manifest(tmp_path)
    assert write_atomic(target, "/export/lab 10.10.10.0/24(rw)\n", manifest=m) is WriteStatus.UNCHANGED
    assert target in m
    assert write_atomic(target, "/export/lab 10.10.10.0/24(ro)\n", manifest=m) is WriteStatus.UPDATED


def test_file_edited_since_labctl_wrote_it_is_refused(tmp_path):
    m = Manifest(tmp_path)
    target = tmp_path / "esx1.vmx"
    write_atomic(target, 'memsize = "1"\n', manifest=m)
    target.write_text('memsize = "1"\nmy.tweak = "TRUE"\n')
    written = _manifest_doc(tmp_path)["files"]["esx1.vmx"]["written"]
    with pytest.raises(RefusedError) as e:
        write_atomic(target, 'memsize = "2"\n', manifest=Manifest(tmp_path))
    msg = e.value.message
    assert f"edited since labctl wrote it on {written}" in msg
    assert "use --force to overwrite, or move your edits into the topology" in msg
    assert target.read_text().endswith('my.tweak = "TRUE"\n')
    with pytest.raises(RefusedError):
        check_write(target, 'memsize = "2"\n', manifest=Manifest(tmp_path))
    assert (
        write_atomic(target, 'memsize = "2"\n', manifest=Manifest(tmp_path), force=True)
        is WriteStatus.UPDATED
    )


@pytest.mark.parametrize("lock", ["esx1.vmx.lck", "esx1.vmdk.lck", "other.lck"])
@pytest.mark.parametrize("as_dir", [True, False])
def test_vmx_of_running_vm_is_refused(tmp_path, lock, as_dir):
    m = Manifest(tmp_path)
    target = tmp_path / "esx1.vmx"
    write_atomic(target, 'memsize = "1"\n', manifest=m)
    if as_dir:
        (tmp_path / lock).mkdir()
    else:
        (tmp_path / lock).write_text("")
    with pytest.raises(RefusedError, match="VM is running: stop it first or use --force"):
        write_atomic(target, 'memsize = "2"\n', manifest=m)
    assert target.read_text() == 'memsize = "1"\n'
    # identical content is harmless even while running
    assert write_atomic(target, 'memsize = "1"\n', manifest=m) is WriteStatus.UNCHANGED
    assert write_atomic(target, 'memsize = "2"\n', manifest=m, force=True) is WriteStatus.UPDATED


def test_lock_files_do_not_block_non_vmx_files(tmp_path):
    m = Manifest(tmp_path)
    (tmp_path / "esx1.vmx.lck").mkdir()
    target = tmp_path / "clone-plan.json"
    write_atomic(target, "{}", manifest=m)
    assert write_atomic(target, '{"a": 1}', manifest=m) is WriteStatus.UPDATED


def test_existing_mode_is_kept_and_new_mode_honoured(tmp_path):
    m = Manifest(tmp_path)
    target = tmp_path / "script.sh"
    write_atomic(target, "#!/bin/sh\n", manifest=m)
    os.chmod(target, 0o750)
    write_atomic(target, "#!/bin/sh\necho hi\n", manifest=m)
    assert stat.S_IMODE(target.stat().st_mode) == 0o750
    key = tmp_path / "id_ed25519"
    write_atomic(key, "secret", manifest=m, mode=0o600)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600


def test_new_file_mode_follows_umask(tmp_path):
    old = os.umask(0o027)
    try:
        target = tmp_path / "f"
        write_atomic(target, "x", manifest=Manifest(tmp_path))
        assert stat.S_IMODE(target.stat().st_mode) == 0o640
    finally:
        os.umask(old)


def test_crash_between_temp_write_and_rename_leaves_old_file_intact(tmp_path, monkeypatch):
    m = Manifest(tmp_path)
    target = tmp_path / "esx1.vmx"
    write_atomic(target, 'memsize = "1"\n', manifest=m)

    def boom(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files.os, "replace", boom)
    with pytest.raises(WriteError, match="cannot write .*esx1.vmx: No space left on device"):
        write_atomic(target, 'memsize = "2"\n', manifest=m)
    monkeypatch.undo()
    assert target.read_text() == 'memsize = "1"\n'
    assert _leftovers(tmp_path) == []
    # the manifest still describes the old file, so the next write is not refused
    assert _manifest_doc(tmp_path)["files"]["esx1.vmx"]["sha256"] == sha256_hex(b'memsize = "1"\n')
    assert write_atomic(target, 'memsize = "2"\n', manifest=m) is WriteStatus.UPDATED


def test_keyboard_interrupt_during_write_cleans_temp_file(tmp_path, monkeypatch):
    target = tmp_path / "a"
    monkeypatch.setattr(files.os, "fsync", lambda fd: (_ for _ in ()).throw(KeyboardInterrupt()))
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, "x", manifest=Manifest(tmp_path))
    assert not target.exists() and _leftovers(tmp_path) == []


def test_default_manifest_is_found_in_an_ancestor(tmp_path):
    with Manifest(tmp_path) as m:
        write_atomic(tmp_path / "esx1" / "esx1.vmx", "a", manifest=m)
    # a later writer (e.g. the workstation driver) passes no manifest: the tree's manifest is used
    assert write_atomic(tmp_path / "esx1" / "esx1.vmx", "b") is WriteStatus.UPDATED
    assert _manifest_doc(tmp_path)["files"]["esx1/esx1.vmx"]["sha256"] == sha256_hex(b"b")
    assert not (tmp_path / "esx1" / ".labctl").exists()
    # no manifest anywhere above: one is created next to the file
    lone = tmp_path / "elsewhere"
    lone.mkdir()
    (tmp_path / ".labctl" / "manifest.json").rename(tmp_path / "moved.json")
    assert write_atomic(lone / "x.txt", "x") is WriteStatus.CREATED
    assert (lone / ".labctl" / "manifest.json").is_file()


def test_manifest_context_saves_once_and_merges_with_other_writers(tmp_path):
    a, b = Manifest(tmp_path), Manifest(tmp_path)
    with a:
        write_atomic(tmp_path / "one", "1", manifest=a)
        assert not (tmp_path / ".labctl" / "manifest.json").exists()  # saved on exit
        write_atomic(tmp_path / "two", "2", manifest=b)  # another writer saves meanwhile
    assert sorted(_manifest_doc(tmp_path)["files"]) == ["one", "two"]
    assert sorted(Manifest(tmp_path).files()) == ["one", "two"]


def test_batch_manifest_saves_only_when_asked(tmp_path):
    m = Manifest.open(tmp_path)
    write_atomic(tmp_path / "one", "1", manifest=m)
    write_atomic(tmp_path / "two", "2", manifest=m)
    assert m.dirty and not (tmp_path / ".labctl" / "manifest.json").exists()
    m.save()
    assert not m.dirty and sorted(_manifest_doc(tmp_path)["files"]) == ["one", "two"]
    m.save()  # nothing changed: no rewrite needed
    assert write_atomic(tmp_path / "one", "1", manifest=Manifest(tmp_path)) is WriteStatus.UNCHANGED


def test_manifest_saved_when_block_fails(tmp_path):
    with pytest.raises(RuntimeError), Manifest(tmp_path) as m:
        write_atomic(tmp_path / "one", "1", manifest=m)
        raise RuntimeError("later step failed")
    assert "one" in _manifest_doc(tmp_path)["files"]


def test_forget_removes_entry(tmp_path):
    m = Manifest(tmp_path)
    write_atomic(tmp_path / "one", "1", manifest=m)
    m.forget(tmp_path / "one")
    assert _manifest_doc(tmp_path)["files"] == {}


def test_corrupt_manifest_is_a_clean_error(tmp_path):
    (tmp_path / ".labctl").mkdir()
    (tmp_path / ".labctl" / "manifest.json").write_text("{not json")
    with pytest.raises(WriteError, match="manifest is unreadable"):
        Manifest(tmp_path)


def test_directory_in_the_way_is_refused(tmp_path):
    (tmp_path / "esx1.vmx").mkdir()
    with pytest.raises(RefusedError, match="is a directory"):
        write_atomic(tmp_path / "esx1.vmx", "x", manifest=Manifest(tmp_path))


def test_unwritable_location_is_a_write_error(tmp_path):
    (tmp_path / "blocker").write_text("a file where a directory should be")
    with pytest.raises(WriteError, match="cannot (read|write) .*blocker/f"):
        write_atomic(tmp_path / "blocker" / "f", "x", manifest=Manifest(tmp_path))


def test_check_write_reports_without_writing(tmp_path):
    m = Manifest(tmp_path)
    target = tmp_path / "f"
    assert check_write(target, "x", manifest=m) is WriteStatus.CREATED
    assert not target.exists()
    write_atomic(target, "x", manifest=m)
    assert check_write(target, "x", manifest=m) is WriteStatus.UNCHANGED
    assert check_write(target, "y", manifest=m) is WriteStatus.UPDATED
    assert check_write(target, "y") is WriteStatus.UPDATED  # default: the ancestor manifest


def test_manifest_keys_outside_root_are_absolute(tmp_path):
    m = Manifest(tmp_path / "tree")
    outside = tmp_path / "other" / "f"
    write_atomic(outside, "x", manifest=m)
    assert outside.as_posix() in _manifest_doc(tmp_path / "tree")["files"]
