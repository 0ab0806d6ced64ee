"""The README's topology reference stays in step with the schema, and its example is a valid lab."""

import re
from pathlib import Path

from labctl.topology import load
from labctl.topology.schema import SCHEMA

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _keys(schema, out):
    for k, v in schema.get("properties", {}).items():
        out.add(k)
        _keys(v, out)
        if "items" in v:
            _keys(v["items"], out)
            for b in v["items"].get("anyOf", []):
                _keys(b, out)
    return out


def test_reference_names_every_key():
    block = README.split("## Topology reference", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    missing = [k for k in sorted(_keys(SCHEMA, set())) if not re.search(rf"\b{re.escape(k)}\b", block)]
    assert not missing, f"README topology reference lacks: {missing}"


def test_reference_example_is_valid(tmp_path):
    block = README.split("## Topology reference", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    res = load(ROOT / "topologies" / "x.yaml", text=block, display_name="README")
    assert res.errors == [], res.formatted()


def test_readme_states_the_ci_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = ci.strip().splitlines()[-1]
    assert cmd == "python3 -m pip install -e '.[test]' && python3 -m pytest -q"
    assert f"```sh\n{cmd}\n```" in README
