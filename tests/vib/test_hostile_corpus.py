"""The generated hostile corpus (hostile_corpus.py), each file inspected in a child process: the verdict, the exit
status, the child's peak RSS (VmHWM), its wall time, and what it wrote (wchar from /proc/self/io, minus its own
stdout: at most the input's size, in practice nothing) — and nothing new anywhere in its scratch dir, which is also
its cwd, HOME and TMPDIR."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .hostile_corpus import CASES, HIDDEN, Case, ambiguous_prefix_payload, hidden_payload, trailing_payload

ROOT = Path(__file__).resolve().parents[2]

CHILD = r"""
import json, os, sys
from labctl.cli.main import main
rc = main(sys.argv[1:])
sys.stdout.flush()
status = dict(ln.split(":", 1) for ln in open("/proc/self/status"))
io_ = dict(ln.split(":", 1) for ln in open("/proc/self/io"))
os.write(2, ("\nHOSTILE-STATS " + json.dumps({"rc": rc, "hwm_kb": int(status["VmHWM"].split()[0]),
                                              "wchar": int(io_["wchar"])}) + "\n").encode())
sys.exit(rc)
"""


def _tree(d: Path) -> dict[str, int]:
    return {str(p.relative_to(d)): p.stat().st_size for p in sorted(d.rglob("*"))}


def run_inspect(scratch: Path, path: Path, *args: str, timeout: float = 60) -> tuple[int, str, dict, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LABCTL", "PYTHON"))}
    env.update(HOME=str(scratch / "home"), TMPDIR=str(scratch / "tmp"), PYTHONDONTWRITEBYTECODE="1")
    for sub in ("home", "tmp"):
        (scratch / sub).mkdir(exist_ok=True)
    before = _tree(scratch)
    t0 = time.monotonic()
    p = subprocess.run([sys.executable, "-c", CHILD, "vib", "inspect", str(path), *args], cwd=scratch, env=env,
                       capture_output=True, timeout=timeout)
    elapsed = time.monotonic() - t0
    err = p.stderr.decode("utf-8", "replace")
    assert "Traceback" not in err, err
    stats = json.loads(err.rsplit("HOSTILE-STATS ", 1)[1])
    assert _tree(scratch) == before, "inspect wrote into its scratch dir"
    stats["written"] = stats["wchar"] - len(p.stdout) - len(err.rsplit("\nHOSTILE-STATS ", 1)[0].encode())
    return p.returncode, p.stdout.decode("utf-8"), stats, elapsed


def _findings(doc: dict) -> list[dict]:
    out = list(doc.get("findings", []))
    for p in doc.get("payloads", []):
        out += p["findings"]
    for v in doc.get("vibs", []):
        out += _findings(v)
    return out


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_hostile_case(tmp_path, case: Case):
    gen = tmp_path / "gen"
    gen.mkdir()
    made = case.make(gen)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    path = scratch / made.name
    shutil.move(made, path)
    size = path.stat().st_size
    rc, out, stats, elapsed = run_inspect(scratch, path, "--json")
    doc = json.loads(out)  # --json always prints JSON
    found = [f for f in _findings(doc) if f["severity"] == case.severity and case.needle in f["message"]]
    assert found, (case.needle, [f"{f['severity']}: {f['message']}" for f in _findings(doc)])
    assert rc == case.status, (rc, _findings(doc))
    assert doc["ok"] is (case.status == 0)
    assert stats["hwm_kb"] < case.max_rss_mb * 1024, f"peak RSS {stats['hwm_kb']} kB"
    assert stats["written"] <= max(size, 0) and stats["written"] <= 64 * 1024, f"wrote {stats['written']} bytes"
    assert elapsed < case.max_seconds, f"{elapsed:.1f} s"
    if case.human_check:
        rc2, human, stats2, _ = run_inspect(scratch, path)
        assert rc2 == case.status
        case.human_check(human)


# ---- the real consumer differs: GNU tar reads what Python's tarfile would have missed


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar not installed")
def test_gnu_tar_extracts_what_hides_behind_a_bad_checksum(tmp_path):
    import tarfile

    (tmp_path / "p.tar").write_bytes(hidden_payload())
    with tarfile.open(tmp_path / "p.tar") as tf:  # what the old inspector saw: one member, then "the end"
        assert tf.getnames() == ["opt/x/a"]
    p = subprocess.run(["tar", "-tvf", str(tmp_path / "p.tar")], capture_output=True, text=True)
    assert "Skipping to next header" in p.stderr, p.stderr
    assert HIDDEN in p.stdout and "usr/bin/evil" in p.stdout, p.stdout
    assert "-rwsr-xr-x" in p.stdout  # the setuid file
    (tmp_path / "x").mkdir()
    subprocess.run(["tar", "-xf", str(tmp_path / "p.tar"), "-C", str(tmp_path / "x")], capture_output=True)
    assert (tmp_path / "x" / "usr" / "bin" / "evil").is_file()


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar not installed")
def test_gnu_tar_ignore_zeros_reads_past_the_end(tmp_path):
    import tarfile

    (tmp_path / "p.tar").write_bytes(trailing_payload())
    with tarfile.open(tmp_path / "p.tar") as tf:
        assert tf.getnames() == ["opt/x/a"]
    p = subprocess.run(["tar", "-tvif", str(tmp_path / "p.tar")], capture_output=True, text=True)
    assert "usr/bin/evil" in p.stdout, p.stdout


@pytest.mark.skipif(not shutil.which("tar"), reason="GNU tar not installed")
def test_gnu_tar_and_tarfile_name_the_ambiguous_member_differently(tmp_path):
    import tarfile

    (tmp_path / "p.tar").write_bytes(ambiguous_prefix_payload())
    with tarfile.open(tmp_path / "p.tar") as tf:
        assert tf.getnames() == ["usr/bin/a"]
    p = subprocess.run(["tar", "-tf", str(tmp_path / "p.tar")], capture_output=True, text=True)
    assert p.stdout.split() == ["a"], (p.stdout, p.stderr)


@pytest.mark.slow
def test_a_large_real_vib_and_its_bundle_stay_bounded(tmp_path, run_cli):
    """The bounds hold for honest input too: a 64 MB payload (half incompressible), as a VIB and in a bundle
    (read straight from the zip: nothing inflated to disk)."""
    stage = tmp_path / "stage"
    (stage / "payloads" / "p1" / "opt" / "big").mkdir(parents=True)
    (stage / "descriptor.yaml").write_text("name: big\nversion: 1.0-1\nvendor: v\n")
    with open(stage / "payloads" / "p1" / "opt" / "big" / "blob.bin", "wb") as fh:
        for i in range(64):
            fh.write(os.urandom(1 << 19) + bytes([i]) * (1 << 19))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    r = run_cli("vib", "build", str(stage), "-o", str(scratch / "big.vib"), "--bundle", str(scratch / "big.zip"),
                "--platform", "8.0", "--release-date", "2024-01-01T00:00:00Z")
    assert r.status == 0, r.err
    for name in ("big.vib", "big.zip"):
        rc, out, stats, _ = run_inspect(scratch, scratch / name, "--json")
        assert rc == 0, out
        assert json.loads(out)["ok"] is True
        assert stats["hwm_kb"] < 60 * 1024, (name, stats)  # measured 32 MB (VIB) and 34 MB (bundle)
        assert stats["written"] <= 64 * 1024, (name, stats)
