"""`labctl render` is all or nothing and never writes outside its directory (issue 13)."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from labctl.render import files

ROOT = Path(__file__).resolve().parents[2]
TOPO = str(ROOT / "topologies" / "esx35-ha-pair.yaml")


def _tree(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


def test_symlinked_vm_dir_pointing_outside_is_refused_and_nothing_is_written(run_cli, tmp_path):
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    out.mkdir()
    elsewhere.mkdir()
    (out / "esx1").symlink_to(elsewhere)
    r = run_cli("render", TOPO, "-o", str(out))
    assert r.status == 5, r.err
    assert "resolves to" in r.err and str(elsewhere / "esx1.vmx") in r.err and "nothing was written" in r.err
    assert _tree(elsewhere) == {}
    assert _tree(out) == {}
    r = run_cli("render", TOPO, "-o", str(out), "--force")  # said explicitly: written through the link
    assert r.status == 0, r.err
    assert (elsewhere / "esx1.vmx").is_file()


def test_one_refused_file_writes_none_of_the_others(run_cli, tmp_path):
    out = tmp_path / "out"
    assert run_cli("render", TOPO, "-o", str(out)).status == 0
    vmx = out / "esx1" / "esx1.vmx"
    vmx.write_text(vmx.read_text() + 'answer.msg.id = "edited by me"\n')
    (out / "host" / "networking").unlink()
    other = out / "esx2" / "clone-plan.json"
    other.unlink()
    before = _tree(out)
    r = run_cli("render", TOPO, "-o", str(out))
    assert r.status == 5, r.err
    assert "edited since labctl wrote it" in r.err and "nothing was written" in r.err
    assert _tree(out) == before  # the two missing files were not recreated either


def test_a_full_disk_half_way_leaves_every_file_as_it_was(run_cli, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real = files._stage
    calls = []

    def stage(path, data, mode):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(path, data, mode)

    monkeypatch.setattr(files, "_stage", stage)
    r = run_cli("render", TOPO, "-o", str(out))
    assert r.status == 3, r.err
    assert "No space left on device" in r.err and "nothing was written" in r.err
    assert not out.exists() or _tree(out) == {}  # no files, no temporaries, no new VM directories
    assert not out.exists() or [p for p in out.rglob("*") if p.name != ".labctl"] == []


def test_a_rename_that_fails_puts_back_the_files_already_replaced(tmp_path, monkeypatch):
    root = tmp_path / "lab"
    a, b, c = root / "a.txt", root / "b.txt", root / "c.txt"
    m = files.Manifest.open(root)
    for p in (a, b):
        files.write_atomic(p, f"old {p.name}\n", manifest=m)
    m.save()
    planned = files.plan_writes([(a, "new a\n", m, root), (b, "new b\n", m, root), (c, "new c\n", m, root)])
    real = os.replace
    seen = []

    def replace(src, dst):
        if str(src).endswith(".labctl-tmp"):
            seen.append(dst)
            if len(seen) == 2:
                raise OSError(errno.EIO, "I/O error")
        return real(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    try:
        files.commit_writes(planned)
        raise AssertionError("commit_writes did not fail")
    except files.WriteError as e:
        assert "nothing was changed" in e.message
    assert a.read_text() == "old a.txt\n" and b.read_text() == "old b.txt\n" and not c.exists()
    assert sorted(p.name for p in root.iterdir()) == [".labctl", "a.txt", "b.txt"]


def test_output_that_is_not_a_directory_is_a_usage_error(run_cli, tmp_path):
    r = run_cli("render", TOPO, "-o", "/dev/null")
    assert r.status == 2, r.err
    assert "/dev/null is not a directory" in r.err and "internal error" not in r.err
