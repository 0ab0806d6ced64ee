"""Benchmark `labctl vib build` on a 256 MB stage tree against `tar c | gzip -6` of the same tree.

    python bench/vib_build.py [--size-mb 256] [--keep DIR]

Prints wall time and throughput of both, their ratio (target: labctl >= 0.8x the tar|gzip throughput) and the
peak RSS of the build process (target <= 100 MB). The tree is half incompressible (random) and half text-like,
in 4 MB files, generated deterministically in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILE_MB = 4


def make_stage(root: Path, size_mb: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "descriptor.yaml").write_text(
        "name: bench\nversion: 1.0.0-1\nvendor: labctl\nsummary: build benchmark\nacceptance-level: community\n"
    )
    tree = root / "payloads" / "bench" / "opt" / "bench"
    tree.mkdir(parents=True)
    r = random.Random(1)
    words = [bytes(r.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(r.randint(2, 9))) for _ in range(5000)]
    for i in range(size_mb // FILE_MB):
        with open(tree / f"f{i:03d}.dat", "wb") as fh:
            if i % 2:
                fh.write(r.randbytes(FILE_MB << 20))
            else:
                buf = bytearray()
                while len(buf) < FILE_MB << 20:
                    buf += b" ".join(r.choices(words, k=64)) + b"\n"
                fh.write(bytes(buf[: FILE_MB << 20]))


def child_peak_rss_kb(argv: list[str], quiet: bool = False) -> tuple[float, int]:
    """Run argv in a fresh child; (seconds, its peak RSS in kB) via wait4's rusage."""
    t = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.DEVNULL if quiet else None)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - t
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[0]} failed with {proc.returncode}")
    return elapsed, usage.ru_maxrss


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=256)
    ap.add_argument("--keep", metavar="DIR", help="use (and keep) this directory instead of a temporary one")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="vib-bench-"))
    try:
        stage = work / "stage"
        if not stage.exists():
            make_stage(stage, args.size_mb)
        tree = stage / "payloads" / "bench"
        total = sum(p.stat().st_size for p in tree.rglob("*") if p.is_file())
        mb = total / 2**20
        # warm the page cache once so both runs read from memory
        subprocess.run(["tar", "-C", str(tree), "-cf", os.devnull, "."], check=True)

        t0 = time.perf_counter()
        with open(work / "ref.tgz", "wb") as out:
            tar = subprocess.Popen(["tar", "-C", str(tree), "--sort=name", "-cf", "-", "."], stdout=subprocess.PIPE)
            gz = subprocess.Popen(["gzip", "-6", "-n"], stdin=tar.stdout, stdout=out)
            assert tar.stdout is not None
            tar.stdout.close()
            if gz.wait() or tar.wait():
                raise SystemExit("tar | gzip failed")
        t_ref = time.perf_counter() - t0
        ref_size = (work / "ref.tgz").stat().st_size

        argv = [sys.executable, "-m", "labctl", "vib", "build", str(stage), "-o", str(work / "bench.vib"),
                "--release-date", "2024-01-01T00:00:00+00:00"]
        t_vib, rss_kb = child_peak_rss_kb(argv)
        vib_size = (work / "bench.vib").stat().st_size
        ratio = (mb / t_vib) / (mb / t_ref)
        t_insp, rss_insp = child_peak_rss_kb([sys.executable, "-m", "labctl", "vib", "inspect",
                                              str(work / "bench.vib")], quiet=True)
        print(f"stage tree:          {mb:.0f} MB in {len(list(tree.rglob('*.dat')))} files "
              f"(half random, half text)")
        print(f"tar c | gzip -6:     {t_ref:6.2f} s  {mb / t_ref:6.1f} MB/s  -> {ref_size / 2**20:.1f} MB")
        print(f"labctl vib build:    {t_vib:6.2f} s  {mb / t_vib:6.1f} MB/s  -> {vib_size / 2**20:.1f} MB "
              f"(tgz + 3 checksums + ar)")
        print(f"throughput ratio:    {ratio:.2f}x  (target >= 0.80x)  {'OK' if ratio >= 0.8 else 'MISSED'}")
        print(f"peak RSS of build:   {rss_kb / 1024:.1f} MB  (target <= 100 MB)  "
              f"{'OK' if rss_kb <= 100 * 1024 else 'MISSED'}")
        print(f"vib inspect (verify all checksums): {t_insp:.2f} s, peak RSS {rss_insp / 1024:.1f} MB")
        return 0 if ratio >= 0.8 and rss_kb <= 100 * 1024 else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
