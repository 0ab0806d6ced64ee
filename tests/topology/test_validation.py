"""Validation rules as data: tests/topology/cases.yaml, one case per rule, one generic runner."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from labctl.topology import load

CASES = yaml.safe_load((Path(__file__).parent / "cases.yaml").read_text())
_EXPECT = re.compile(r"^(?:(\d+):(\d+) )?(.+?) ~ (.*)$")


def _matches(expect: str, formatted: list[str]) -> bool:
    m = _EXPECT.match(expect)
    assert m, f"bad expectation {expect!r}"
    line, col, path, frag = m.groups()
    for f in formatted:
        # "case.yaml:L:C: path: message"
        _, fl, fc, rest = f.split(":", 3)
        fpath, _, msg = rest.strip().partition(": ")
        msg = msg.removeprefix("warning: ")
        if fpath == path and frag in msg and (line is None or (fl, fc) == (line, col)):
            return True
    return False


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_case(case, tmp_path):
    res = load(tmp_path / "case.yaml", text=case["yaml"], display_name="case.yaml")
    errors = res.formatted("error")
    warnings = res.formatted("warning")
    for e in case.get("errors", []):
        assert _matches(e, errors), f"expected error {e!r}; got:\n" + "\n".join(errors)
    assert len(errors) == len(case.get("errors", [])), "unexpected errors:\n" + "\n".join(errors)
    for w in case.get("warnings", []):
        assert _matches(w, warnings), f"expected warning {w!r}; got:\n" + "\n".join(warnings)
    if case.get("no_warnings"):
        assert warnings == []
    if not errors:
        assert res.topology is not None
    else:
        assert res.topology is None


def test_examples_are_valid():
    root = Path(__file__).resolve().parents[2] / "topologies"
    files = sorted(root.glob("*.yaml"))
    assert len(files) >= 3
    for f in files:
        res = load(f)
        assert res.errors == [], res.formatted()
