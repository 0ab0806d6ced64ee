"""Seeded mutations of real and hand-made VIBs and bundles: inspect turns every one into findings, never an
exception (the bugs this found: zipfile's ValueError/OSError/zlib.error on lying offsets and broken deflate data)."""

from __future__ import annotations

import gzip
import io
import random
import tarfile
from pathlib import Path

import pytest

from labctl.vib.inspect import inspect_bundle, inspect_vib

from . import hostile_corpus as h
from .vibhelpers import vib

FIXTURES = Path(__file__).resolve().parents[3] / "shared" / "fixtures"  # as tests/conftest.py finds them

TOKENS = [b"0", b"9" * 30, b"\xff", b"\x80", b"-1", b"/", b"..", b"\0", b"\n\x1b["]


def _mutate(r: random.Random, data: bytes) -> bytes:
    b = bytearray(data)
    for _ in range(r.randint(1, 8)):
        i = r.randrange(len(b)) if b else 0
        k = r.random()
        if k < 0.5 and b:
            b[i] = r.randrange(256)
        elif k < 0.7:
            b[i:i] = r.randbytes(r.randint(1, 8))
        elif k < 0.85 and b:
            del b[i : i + r.randint(1, 16)]
        else:
            b[i:i] = r.choice(TOKENS)
    return bytes(b)


def _tar_seeds() -> list[bytes]:
    out = [h.tar_member("opt/x/a", b"hello") + h.tar_member("opt/l", typeflag=b"2", link="x/a") + h.tar_end()]
    for fmt in (tarfile.PAX_FORMAT, tarfile.GNU_FORMAT):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=fmt) as tf:
            ti = tarfile.TarInfo("opt/" + "y" * 120)
            ti.size = 3
            tf.addfile(ti, io.BytesIO(b"abc"))
        out.append(buf.getvalue())
    return out


def _file_seeds(fixtures) -> list[bytes]:
    seeds = [h._good_vib(), h._bundle_with(h._good_vib(), "1"),
             h.esx4_rpm_vib(h.rpm_bytes(h._small_cpio())),
             vib(h.vmtar([("opt/a", b"hello")]), ["opt/a"], ptype="vgz")]
    if fixtures is not None:
        seeds += [p.read_bytes() for p in sorted((fixtures / "vib").iterdir()) if p.stat().st_size < 400_000]
    return seeds


@pytest.mark.parametrize("seed", range(4))
def test_mutated_inputs_become_findings(seed):
    r = random.Random(seed)
    files, tars = _file_seeds(FIXTURES if FIXTURES.is_dir() else None), _tar_seeds()
    for n in range(750):
        if r.random() < 0.5:
            data = _mutate(r, r.choice(files))
        else:
            data = vib(gzip.compress(_mutate(r, r.choice(tars)), mtime=0), ["opt/x/a"])
        f = io.BytesIO(data)
        try:
            rep = inspect_bundle(f, "x") if data.startswith(b"PK\x03\x04") else inspect_vib(f, "x")
        except Exception as e:  # pragma: no cover - the failure message is the point
            raise AssertionError(f"seed {seed} case {n}: {type(e).__name__}: {e}") from e
        rep.to_json()
