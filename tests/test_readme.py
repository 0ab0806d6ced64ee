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


def _sh_blocks() -> list[str]:
    return re.findall(r"```sh\n(.*?)```", README, flags=re.S)


def test_readme_states_the_ci_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    cmd = ci.strip().splitlines()[-1]
    assert cmd == "python3 -m venv .venv && .venv/bin/pip install -e '.[test]' && .venv/bin/python -m pytest -q"
    assert f"```sh\n{cmd}\n```" in README
    assert "python3-venv" in ci.split("pkgs=", 1)[1].splitlines()[0], ".ci/run must install python3-venv"


def test_readme_commands_never_pip_install_into_the_system_python():
    """PEP 668: Debian 12's python3 refuses `pip install` outside a virtual environment, so every command the README
    gives to copy installs into .venv and runs labctl and pytest from there (bench/fresh_debian.py runs them)."""
    lines = [ln for b in _sh_blocks() for ln in b.splitlines()]
    quick, tests = lines[0], [ln for ln in lines if "pytest" in ln][0]
    for cmd in (quick, tests):
        steps = [s.strip() for s in cmd.split("&&")]
        assert steps[0] == "python3 -m venv .venv", cmd
        assert all(not re.match(r"(python3? -m )?pip3? ", s) for s in steps), cmd
        assert all(s.startswith((".venv/bin/", "python3 -m venv")) for s in steps), cmd
    assert quick.endswith(".venv/bin/labctl up topologies/esx35-ha-pair.yaml --sim")
    assert "sudo apt-get install python3-venv" in README
