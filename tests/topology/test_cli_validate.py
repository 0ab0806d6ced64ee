import json
from pathlib import Path

import jsonschema
import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_validate_ok_examples(run_cli):
    r = run_cli("validate", "--sim", *[str(p) for p in sorted((ROOT / "topologies").glob("*.yaml"))])
    assert r.status == 0
    assert "esx35-ha-pair.yaml: ok" in r.out
    assert "warning: this machine cannot dial esx1" in r.err  # the 2010 lab lives on a LAN segment


def test_validate_reports_all_problems_without_traceback(run_cli, tmp_path):
    f = tmp_path / "lab.yaml"
    f.write_text(
        "lab: x\n"
        "networks: [{name: lan, type: lan-segment, subnet: 192.168.69.0/24}]\n"
        "esx_hosts:\n"
        "  - {name: a, flavor: esx, version: '6.0', nics: [lan], management: {network: lan2, ip: 192.168.70.1}}\n"
    )
    r = run_cli("validate", str(f))
    assert r.status == 2
    assert "Traceback" not in r.err
    lines = [ln for ln in r.err.splitlines() if ": esx_hosts" in ln]
    assert any("version: ESX classic 6.0 does not exist" in ln for ln in lines)
    assert any(ln.startswith(f"{f}:4:") and "management.network: unknown network 'lan2'; did you mean 'lan'?" in ln for ln in lines)
    assert "2 error(s)" in r.err


def test_validate_json(run_cli, tmp_path):
    f = tmp_path / "lab.yaml"
    f.write_text("lab: x\nesx_hosts: []\n")
    r = run_cli("validate", str(f), "--json")
    assert r.status == 2
    doc = json.loads(r.out)
    assert doc["valid"] is False
    p = doc["files"][0]["problems"][0]
    assert p == {"severity": "error", "line": 2, "column": 12, "path": "esx_hosts", "message": "needs at least 1 entry"}


def test_validate_examples_without_their_isos(run_cli):
    """The examples name installer ISOs this machine does not have: a real run cannot install them."""
    f = ROOT / "topologies" / "esx35-ha-pair.yaml"
    r = run_cli("validate", str(f))
    assert r.status == 2 and "Traceback" not in r.err
    assert f"{f}:27:10: esx_hosts[0].iso: " in r.err and "esx-3.5.0-update5.iso does not exist: download" in r.err
    assert "use --sim" in r.err and "1 error(s)" in r.err


def test_validate_strict_turns_warnings_into_errors(run_cli):
    r = run_cli("validate", str(ROOT / "topologies" / "esx35-ha-pair.yaml"), "--strict", "--sim")
    assert r.status == 2


def test_validate_strict_says_why_it_fails(run_cli):
    """Issue 12 item 12: not "ok" and then exit 2, but the reason."""
    f = str(ROOT / "topologies" / "esx35-ha-pair.yaml")
    r = run_cli("validate", f, "--strict", "--sim")
    assert ": ok" not in r.out and r.out == ""
    assert f"{f}: fails --strict: 2 warning(s) above, and --strict counts warnings as errors" in r.err
    assert r.err.count(": warning: ") == 2
    q = run_cli("validate", f, "--strict", "-q", "--sim")  # quiet hides warnings, but not the ones that fail the run
    assert q.status == 2 and q.err.count(": warning: ") == 2
    j = run_cli("validate", f, "--strict", "--json", "--sim")
    assert j.status == 2 and json.loads(j.out)["files"][0]["valid"] is False


def test_validate_missing_file(run_cli, tmp_path):
    r = run_cli("validate", str(tmp_path / "nope.yaml"))
    assert r.status == 2 and "no such file" in r.err


def test_schema_matches_examples_and_published_copy(run_cli):
    r = run_cli("schema")
    assert r.status == 0
    schema = json.loads(r.out)
    jsonschema.Draft202012Validator.check_schema(schema)
    for f in (ROOT / "topologies").glob("*.yaml"):
        jsonschema.validate(yaml.safe_load(f.read_text()), schema)
    assert (ROOT / "docs" / "topology.schema.json").read_text() == r.out, "run: labctl schema -o docs/topology.schema.json --force"
