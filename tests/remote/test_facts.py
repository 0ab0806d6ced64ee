"""One generic runner for every fact data file: tests/remote/facts/<fact>/<case>.json (+ <case>.txt).

A case is {command?, platform?, output? | <case>.txt, fact | error}: the fact's command for `platform` must equal
`command`, and parsing the output must give `fact` (dataclasses compared as dicts) or raise FactParseError containing
`error`. Adding a captured output from a real host is adding two files.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from labctl.remote.facts import FACTS, FactParseError, Platform

HERE = Path(__file__).parent / "facts"
CASES = sorted(HERE.glob("*/*.json"))


def jsonable(value):
    if dataclasses.is_dataclass(value):
        return {f.name: jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def test_every_fact_has_cases():
    assert {p.parent.name for p in CASES} == set(FACTS)


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_fact_case(case: Path):
    data = json.loads(case.read_text())
    fact = FACTS[case.parent.name]
    txt = case.with_suffix(".txt")
    output = data["output"] if "output" in data else txt.read_text()
    if "platform" in data:
        platform = Platform.parse(data["platform"]["flavor"], data["platform"]["version"])
        assert fact.command(platform) == data["command"]
    if "error" in data:
        with pytest.raises(FactParseError, match=data["error"]):
            fact.parse(output)
    else:
        assert jsonable(fact.parse(output)) == data["fact"]
