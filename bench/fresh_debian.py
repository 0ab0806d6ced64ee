#!/usr/bin/env python3
"""The README's quick start and test command, run as written, as a new user on a fresh Debian 12 machine would.

Not a timed test: a script (like the others in bench/) because the test command runs the whole suite.

What "fresh" means here:
  - a copy of the checkout's files (tracked and new, not ignored: no .venv, no build/, no egg-info) in a temp dir;
  - `python3` is the system interpreter /usr/bin/python3 (Debian 12: 3.11.2, externally managed — PEP 668): a temp
    bin directory holding only that `python3` comes first on PATH, so no pyenv shim or venv can stand in for it;
  - a new, empty HOME (so no labctl state, no simulated lab from an earlier try, no vcsim build cache, no Go build
    cache): the first `up --sim` builds the vCenter simulator as a newcomer's would.

Steps:
  1. `python3 -m pip install .` is refused (externally-managed-environment, or no pip at all): the environment really
     is the one the README has to work in.
  2. The README's first ```sh block (the quick start) runs with `bash -euo pipefail -c` in the copy, exactly as
     written; it must exit 0, print the build message for the vCenter simulator, and end with "no failures".
     Timed as a whole; the vcsim build time is read from labctl's own "built the vCenter simulator in N s" line.
  3. The same `labctl up` again: "no changes", and it says the existing simulated lab is reused.
  4. With --tests: the README's test command, exactly as written, in the same copy (a few minutes).
The simulated lab is removed at the end (`labctl destroy --sim --yes`, processes stopped by their recorded PIDs),
in a `finally`, also on failure.

    python bench/fresh_debian.py [--tests] [--keep]

Last figures (2 cores shared with other builds, load average ~25; Debian 12, /usr/bin/python3 3.11.2):
  step 1: refused (error: externally-managed-environment)
  step 2: quick start 149.9 s in all, of which the vcsim build 117.4 s (an idle machine builds it in 20-23 s)
  step 3: 3.4 s, "using the existing simulated lab …", no changes
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SYSTEM_PYTHON = Path("/usr/bin/python3")


def readme_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)


def copy_checkout(dst: Path) -> None:
    files = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           check=True, capture_output=True).stdout.split(b"\0")
    for rel in filter(None, files):
        src = ROOT / os.fsdecode(rel)
        if not src.is_file():  # deleted in the work tree
            continue
        out = dst / os.fsdecode(rel)
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, out)


def run(cmd: str, cwd: Path, env: dict[str, str], *, timeout: float, echo: bool = True) -> tuple[int, str, float]:
    t0 = time.monotonic()
    if echo:
        print(f"$ {cmd}", flush=True)
    p = subprocess.run(["bash", "-euo", "pipefail", "-c", cmd], cwd=cwd, env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
    return p.returncode, p.stdout, time.monotonic() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tests", action="store_true", help="also run the README's test command (the whole suite)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir")
    args = ap.parse_args()
    if not SYSTEM_PYTHON.is_file():
        print(f"{SYSTEM_PYTHON} missing: this script models a Debian machine", file=sys.stderr)
        return 2
    blocks = readme_blocks()
    quick = blocks[0].strip()
    test_cmd = next(b.strip() for b in blocks if "pytest" in b)
    if "\n" in quick:
        print(f"the quick start is more than one command:\n{quick}", file=sys.stderr)
        return 1
    up_cmd = quick.split("&&")[-1].strip()
    destroy = re.sub(r"\bup\b", "destroy", up_cmd, count=1) + " --yes"

    tmp = Path(tempfile.mkdtemp(prefix="labctl-fresh-"))
    work, home, bindir = tmp / "labctl", tmp / "home", tmp / "bin"
    for d in (work, home, bindir):
        d.mkdir()
    (bindir / "python3").symlink_to(SYSTEM_PYTHON)
    copy_checkout(work)
    keep = {k: v for k, v in os.environ.items() if k in ("LANG", "LC_ALL", "TERM", "TZ")}
    env = {**keep, "HOME": str(home), "PATH": f"{bindir}:/usr/local/bin:/usr/bin:/bin", "USER": "labctl-newcomer"}
    failed = False
    try:
        # 1. the system python is externally managed
        rc, out, _ = run("python3 -m pip install .", work, env, timeout=300)
        refused = rc != 0 and ("externally-managed-environment" in out or "No module named pip" in out)
        print(f"  system python refuses a bare pip install: {'yes' if refused else 'NO'} "
              f"({(out.strip().splitlines() or ['?'])[0][:100]})")
        failed |= not refused
        # 2. the quick start, as written
        rc, out, secs = run(quick, work, env, timeout=1800)
        built = re.search(r"built the vCenter simulator in ([\d.]+) s", out)
        ok = rc == 0 and "building the vCenter simulator" in out and "no failures" in out.strip().splitlines()[-1]
        print(out if not ok else "\n".join(out.strip().splitlines()[-3:]))
        print(f"  quick start: exit {rc}, {secs:.1f} s; vcsim build {built.group(1) if built else '?'} s "
              f"-> {'ok' if ok else 'FAILED'}")
        failed |= not ok
        # 3. again: nothing to change, and it says the existing lab is used
        rc, out, secs = run(up_cmd, work, env, timeout=600)
        ok = rc == 0 and "no changes" in out and "existing simulated lab" in out
        print(out if not ok else "\n".join(ln for ln in out.splitlines() if "simulated lab" in ln or "no changes —" in ln))
        print(f"  again: exit {rc}, {secs:.1f} s -> {'ok' if ok else 'FAILED'}")
        failed |= not ok
        # 4. the test command, as written
        if args.tests:
            rc, out, secs = run(test_cmd, work, env, timeout=3600)
            print("\n".join(out.strip().splitlines()[-15:]))
            print(f"  test command: exit {rc}, {secs:.1f} s -> {'ok' if rc == 0 else 'FAILED'}")
            failed |= rc != 0
    finally:
        rc, out, _ = run(destroy, work, env, timeout=300)
        if rc != 0:
            print(out)
            failed = True
        if args.keep:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    print("FAILED" if failed else "ok: the README's commands work as written on a fresh Debian 12 python")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
