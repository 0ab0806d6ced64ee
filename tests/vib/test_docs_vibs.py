"""docs/vibs.md's worked example (section 5), run exactly as printed: each `$ ` line through bash from the checkout,
with `labctl` on PATH, and its stdout compared with the lines under it. Only /tmp/vibdoc is moved into the test's
temp dir, and `<port>` / `<pid>` stand for numbers. This also holds item 6 of issue 12: a VIB built outside the
topology's `vibs:` entry, under the same name, does not get that entry's allow_community."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "vibs.md"


def _transcript() -> list[tuple[str, list[str]]]:
    section = DOC.read_text().split("## 5. Worked example", 1)[1]
    block = section.split("\n```\n", 1)[1].split("\n```", 1)[0]
    steps: list[tuple[str, list[str]]] = []
    for line in block.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        else:
            assert steps, f"output before the first command: {line!r}"
            steps[-1][1].append(line)
    return steps


def _pattern(lines: list[str]) -> re.Pattern[str]:
    text = re.escape("\n".join(lines) + "\n")
    return re.compile(text.replace(re.escape("<port>"), r"\d+").replace(re.escape("<pid>"), r"\d+(?:, \d+)*"))


@pytest.mark.slow
def test_the_worked_example_reproduces_as_printed(tmp_path):
    steps = _transcript()
    assert len(steps) >= 7 and steps[-1][0].startswith("labctl sim down")
    work = tmp_path / "vibdoc"
    bindir = Path(sys.executable).parent
    assert (bindir / "labctl").is_file(), "labctl must be installed next to the interpreter running the tests"
    env = {"PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "LANG": "C.UTF-8",
           **({"PYTHONPATH": os.environ["PYTHONPATH"]} if os.environ.get("PYTHONPATH") else {})}
    down = next(cmd for cmd, _ in steps if cmd.startswith("labctl sim down")).replace("/tmp/vibdoc", str(work))
    try:
        for cmd, expected in steps:
            cmd = cmd.replace("/tmp/vibdoc", str(work))
            want = [ln.replace("/tmp/vibdoc", str(work)) for ln in expected]
            r = subprocess.run(["bash", "-c", cmd], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
            assert _pattern(want).fullmatch(r.stdout), (
                f"$ {cmd}\n--- documented ---\n" + "\n".join(want) + f"\n--- printed ---\n{r.stdout}{r.stderr}")
            if "echo \"exit status $?\"" not in cmd:
                assert r.returncode == 0, (cmd, r.stderr)
    finally:
        subprocess.run(["bash", "-c", down], cwd=ROOT, env=env, capture_output=True, timeout=120)
