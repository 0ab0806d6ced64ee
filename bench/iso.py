"""Benchmark patching an installer ISO against `cp` of the same file.

    python bench/iso.py [--size-mb 600] [--rounds 5] [--keep DIR]

A synthetic ESXi 8.0U2 installer of SIZE MB (labctl.iso.synthetic: the real layout, placeholder bytes) is made
once. Then, alternating A B A B in fresh child processes: A = `cp SRC DST`, B = labctl's patch of a copy
(`labctl.iso.patch.patch_copy`: copy, rewrite both BOOT.CFGs in place, read everything back to verify), and once
at the end `labctl iso build` on a cold cache (adds the sha256 of the source for the cache key and the kickstart
CD) and once more on the warm cache. Prints the median of the per-pair ratios B/A (target <= 1.5) and the peak RSS (VmHWM) of the patching child
(target <= 100 MB); B is timed from outside its child, interpreter start-up included. Every output is deleted right after its run, so each run writes the whole file.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PATCH = (
    "import sys, time; t = time.perf_counter(); from labctl.iso.patch import patch_copy\n"
    "r = patch_copy(sys.argv[1], sys.argv[2], ['allowLegacyCPU=true'])\n"
    "assert r.method == 'in-place', r.method\n"
    "print(time.perf_counter() - t)\n"
    "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0])\n"
)
BUILD = (
    "import sys; from labctl.cli.main import main\n"
    "rc = main(['iso', 'build', sys.argv[1], '--kickstart', sys.argv[2], '-o', sys.argv[3]])\n"
    "print([ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0])\n"
    "sys.exit(rc)\n"
)


def timed(argv: list[str]) -> tuple[float, str]:
    t = time.perf_counter()
    p = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t
    if p.returncode != 0:
        raise SystemExit(f"{argv[:3]} failed ({p.returncode}): {p.stderr}")
    return elapsed, p.stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--keep", metavar="DIR", help="use (and keep) this directory instead of a temporary one")
    args = ap.parse_args()
    work = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="iso-bench-"))
    py = sys.executable
    try:
        work.mkdir(parents=True, exist_ok=True)
        src = work / f"esxi8-{args.size_mb}mb.iso"
        if not src.exists():
            gen = ("import sys; from labctl.iso import synthetic\n"
                   "synthetic.write_esxi_iso(sys.argv[1], '8.0u2', payload_size=int(sys.argv[2]) << 20)\n")
            subprocess.run([py, "-c", gen, str(src), str(args.size_mb)], cwd=ROOT, check=True)
        mb = src.stat().st_size / 2**20
        dst = work / "out.iso"
        cp_times, patch_times, ratios, peaks, inner_ratios = [], [], [], [], []
        timed(["cp", str(src), str(dst)])  # warm the page cache
        dst.unlink()
        for _ in range(args.rounds):
            a, _ = timed(["cp", str(src), str(dst)])
            dst.unlink()
            b, out = timed([py, "-c", PATCH, str(src), str(dst)])
            dst.unlink()
            cp_times.append(a)
            patch_times.append(b)
            ratios.append(b / a)
            inner_ratios.append(float(out.split()[0]) / a)
            peaks.append(int(out.split()[-1]))
        ks = work / "ks.cfg"
        ks.write_text("vmaccepteula\n")
        cache = work / "cache"
        shutil.rmtree(cache, ignore_errors=True)
        build_t, out = timed([py, "-c", BUILD, str(src), str(ks), str(cache)])
        build_peak = int(out.split()[-1])
        again_t, _ = timed([py, "-c", BUILD, str(src), str(ks), str(cache)])
        shutil.rmtree(cache, ignore_errors=True)

        cp_med, patch_med = statistics.median(cp_times), statistics.median(patch_times)
        print(f"source: {mb:.0f} MB synthetic ESXi 8.0U2 installer, {args.rounds} rounds, python {sys.version.split()[0]}")
        print(f"cp                    median {cp_med:.3f} s  ({mb / cp_med:.0f} MB/s)")
        print(f"patch_copy            median {patch_med:.3f} s  ({mb / patch_med:.0f} MB/s), "
              f"peak RSS {max(peaks) / 1024:.1f} MB")
        print(f"ratio patch/cp        median of pairs {statistics.median(ratios):.2f}x "
              f"(pairs: {', '.join(f'{r:.2f}' for r in ratios)}; target <= 1.5x)")
        print(f"  without the interpreter's start-up (import labctl.iso + patch_copy, timed in the child): "
              f"median of pairs {statistics.median(inner_ratios):.2f}x")
        print(f"iso build, cold cache {build_t:.3f} s = {build_t / cp_med:.2f}x cp (adds sha256 of the source, "
              f"in a thread beside the copy), peak RSS {build_peak / 1024:.1f} MB")
        print(f"iso build again       {again_t:.3f} s (source hash remembered, cached image verified)")
        ok = statistics.median(ratios) <= 1.5 and max(peaks) <= 100 * 1024
        return 0 if ok else 1
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
