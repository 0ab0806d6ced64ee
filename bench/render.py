#!/usr/bin/env python3
"""Benchmark: start-up of every `labctl --help` / `--version` against a bare `python -c pass`, and validate +
render as whole processes for generated topologies of 50, 200 and 800 ESXi hosts (200 hosts <= 1 s, linear).

    python bench/render.py [--pairs 20] [--python PY] [--startup-only]

Start-up is measured on a non-editable install: the script builds a wheel of this tree (pip, offline, no build
isolation) and installs it into a throw-away venv made from the same interpreter, so the baseline and labctl
run on one binary. (An editable install's import hook alone costs more than labctl's own modules.) `--python
PY` measures an existing non-editable install instead. Each figure is the median of the ratios of `--pairs`
A/B pairs run alternately (A = `python -c pass`, B = the labctl command), so a noisy machine moves both halves
of a pair and does not decide the result; the medians of the absolute times are printed for reference.
Target: every ratio < 3x.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import sysconfig
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 3.0
CWD = tempfile.gettempdir()  # run from outside the source tree: `python -m labctl` must not find ./labctl


def topology(n: int) -> str:
    lines = [
        f"lab: bench-{n}",
        'workstation: {version: "17.5", vm_dir: /tmp/labctl-bench-vms}',
        "networks:",
        "  - {name: mgmt, type: host-only, vmnet: 3, subnet: 10.0.0.0/16, host_ip: 10.0.0.1, dhcp: false}",
        "  - {name: storage, type: host-only, vmnet: 4, subnet: 10.1.0.0/16, host_ip: 10.1.0.1, dhcp: false}",
        "esx_hosts:",
        "  - name: esx0",
        "    flavor: esxi",
        '    version: "8.0u2"',
        "    memory_mb: 8192",
        "    nics: [mgmt, storage]",
        "    management: {network: mgmt, ip: 10.0.0.10}",
        "    vmkernel: [{network: storage, ip: 10.1.0.10}]",
    ]
    for i in range(1, n):
        lines += [f"  - name: esx{i}", "    linked_clone_of: esx0",
                  f"    management: {{network: mgmt, ip: 10.0.{(i + 10) // 250}.{(i + 10) % 250 + 2}}}",
                  "    vmkernel: [{network: storage}]"]
    hosts = ", ".join(f"esx{i}" for i in range(n))
    lines += ["clusters:", f"  - {{name: big, hosts: [{hosts}], ha: {{enabled: true, isolation_addresses: [10.0.0.1]}}}}",
              "datastores:", f"  - {{name: nfs, server: 10.1.0.1, share: /export/bench, hosts: [{hosts}]}}"]
    return "\n".join(lines) + "\n"


def run_once(argv: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    r = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=CWD)
    elapsed = time.perf_counter() - t
    if r.returncode != 0:
        sys.exit(f"{' '.join(argv)} failed ({r.returncode}):\n{r.stderr[-2000:]}")
    return elapsed


def pairs(a: list[str], b: list[str], n: int, env: dict[str, str]) -> tuple[float, float, float]:
    """(median of B/A pair ratios, median A, median B) over n alternating A B pairs, after one warm-up each."""
    run_once(a, env), run_once(b, env)
    ta, tb, ratios = [], [], []
    for _ in range(n):
        x = run_once(a, env)
        y = run_once(b, env)
        ta.append(x)
        tb.append(y)
        ratios.append(y / x)
    return statistics.median(ratios), statistics.median(ta), statistics.median(tb)


def install_copy(work: Path) -> Path:
    """A venv (same interpreter) with a non-editable install of this tree; returns its python."""
    import shutil

    # built from a copy: setuptools builds in the tree, and a stale build/ would ship modules deleted since
    src = work / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", "build", "*.egg-info", "__pycache__"))
    wheels = work / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--no-index", "--wheel-dir", str(wheels), str(src)], check=True)
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    (wheel,) = wheels.glob("labctl-*.whl")
    # this pip installs into the venv (`--python`): the `labctl` console script a user runs, with its shebang
    subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--quiet", "--no-deps",
                    "--no-index", str(wheel)], check=True)
    # labctl's dependencies for the validate/render part: this environment's, after the venv's own packages
    # (a line in a .pth file appends a directory to sys.path; the start-up commands import none of them)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, check=True).stdout.strip()
    Path(site, "zz-bench-deps.pth").write_text(sysconfig.get_path("purelib") + "\n")
    return py


def labctl_exe(py: Path) -> list[str]:
    """The console script next to the interpreter (what users run), else `python -m labctl`."""
    exe = py.with_name("labctl.exe" if os.name == "nt" else "labctl")
    return [str(exe)] if exe.is_file() else [str(py), "-m", "labctl"]


def startup(py: Path, n: int) -> bool:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["COLUMNS"] = "100"
    commands = [["--help"], ["--version"]]
    listing = subprocess.run([str(py), "-c", "from labctl.cli.main import COMMANDS; print(' '.join(COMMANDS))"],
                             capture_output=True, text=True, env=env, check=True).stdout.split()
    commands += [[c, "--help"] for c in listing]
    base = [str(py), "-c", "pass"]
    ok = True
    print(f"start-up of {' '.join(labctl_exe(py))} ({sys.version.split()[0]}): median of {n} A/B pair ratios, "
          f"A = {py} -c pass, target < {TARGET:g}x")
    worst = 0.0
    for args in commands:
        ratio, ta, tb = pairs(base, [*labctl_exe(py), *args], n, env)
        worst = max(worst, ratio)
        mark = "" if ratio < TARGET else "   OVER TARGET"
        ok &= ratio < TARGET
        print(f"  labctl {' '.join(args):<24} {ratio:5.2f}x   ({tb * 1000:6.1f} ms vs {ta * 1000:5.1f} ms){mark}")
    print(f"  worst: {worst:.2f}x python -c pass")
    return ok


def render_scaling(py: Path, repeat: int) -> None:
    env = dict(os.environ)
    print()
    print(f"{'hosts':>6} {'validate':>10} {'render':>10} {'render/host':>12}   (median of {repeat} runs)")
    with tempfile.TemporaryDirectory() as d:
        for n in (50, 200, 800):
            f = Path(d) / f"bench-{n}.yaml"
            f.write_text(topology(n))
            v = statistics.median(run_once([*labctl_exe(py), "validate", "-q", str(f)], env)
                                  for _ in range(repeat))
            r = statistics.median(run_once([*labctl_exe(py), "render", str(f), "-o",
                                            str(Path(d) / f"out-{n}"), "--force"], env) for _ in range(repeat))
            print(f"{n:>6} {v * 1000:8.0f} ms {r * 1000:8.0f} ms {r / n * 1000:9.2f} ms")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--pairs", type=int, default=20, help="A/B pairs per command (at least 20)")
    ap.add_argument("--repeat", type=int, default=5, help="runs per validate/render figure")
    ap.add_argument("--python", metavar="PY", help="an interpreter with labctl installed (non-editable)")
    ap.add_argument("--startup-only", action="store_true", help="only the start-up figures")
    args = ap.parse_args()
    if args.pairs < 20:
        ap.error("--pairs: at least 20")
    with tempfile.TemporaryDirectory(prefix="labctl-bench-") as work:
        py = Path(args.python) if args.python else install_copy(Path(work))
        ok = startup(py, args.pairs)
        if not args.startup_only:
            render_scaling(py, args.repeat)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
