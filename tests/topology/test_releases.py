"""ESX/ESXi releases, updates and builds (labctl/releases.py) held to the cited table in data/releases.yaml; every
version notation normalises to one model; the published JSON Schema and `validate` agree on Workstation releases."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from labctl import releases
from labctl.topology import load, versions

DATA = yaml.safe_load((Path(__file__).parent / "data" / "releases.yaml").read_text())
ROOT = Path(__file__).resolve().parents[2]


def test_update_lists_and_builds_are_the_cited_ones():
    cited = {(flavor, *map(int, rel.split("."))): ups for flavor in ("esx", "esxi") for rel, ups in DATA[flavor].items()}
    ours = {k: {u.number: u.build for u in v} for k, v in releases.RELEASES.items()}
    assert ours == cited


def test_patch_builds_are_the_cited_ones():
    cited = {b: (f, tuple(map(int, rel.split("."))), up, full) for b, (f, rel, up, full) in DATA["patches"].items()}
    ours = {p.build: (p.flavor, (p.major, p.minor), p.update, p.full) for p in releases.PATCHES}
    assert ours == cited


@pytest.mark.parametrize("text", ["8.0u3", "8.0U3", "8.0 U3", "8.0 Update 3", "8.0.3", "8.0.3-24022510",
                                  "VMware ESXi 8.0.3 build-24022510", "8.0.3 (Release Build 24022510)"])
def test_notations_of_one_update_normalise_to_one_model(text):
    r = versions.resolve_esx("esxi", text)
    assert r.error is None
    assert (r.flavor, r.version) == ("esxi", versions.EsxVersion(8, 0, 3, "", 24022510))
    assert (str(r.version), r.version.display, r.version.triplet) == ("8.0u3", "8.0 U3", "8.0.3")


@pytest.mark.parametrize("text", ["8.0.2-0.40.23825572", "VMware ESXi 8.0.2 build-23825572", "8.0u2c"])
def test_build_qualified_notations_keep_their_patch(text):
    r = versions.resolve_esx("esxi", text)
    assert r.version == versions.EsxVersion(8, 0, 2, "c", 23825572)
    assert r.version.display == "8.0 U2c" and str(r.version) == "8.0u2"


@pytest.mark.parametrize("flavor,text,expected", [
    ("esxi", "9.0.0.0", (9, 0, 0, "", 24755229)),
    ("esxi", "9.0", (9, 0, 0, "", 24755229)),
    ("esx", "9.0", (9, 0, 0, "", 24755229)),  # ESX 9: the renamed ESXi, not ESX classic
    ("esxi", "9.0.0.0.24755229", (9, 0, 0, "", 24755229)),
    ("esxi", "VMware ESX 9.0.0 build-24755229", (9, 0, 0, "", 24755229)),
    ("esxi", "9.0.1.0", (9, 0, 1, "", 24957456)),
    ("esxi", "9.0.0.0100", (9, 0, 0, "0100", 24813472)),
    ("esxi", "9.0.0-0100.24813472", (9, 0, 0, "0100", 24813472)),
    ("esxi", "9.1", (9, 1, 0, "", 25370933)),
    ("esx", "3.5u5", (3, 5, 5, "", 207095)),
    ("esx", "VMware ESX Server 3.5.0 build-207095", (3, 5, 5, "", 207095)),
    ("esxi", "VMware ESXi 6.7.0 build-13473784", (6, 7, 2, "", 13473784)),  # an express patch on the U2 line
])
def test_esx9_and_build_notations(flavor, text, expected):
    r = versions.resolve_esx(flavor, text)
    assert r.error is None, r.error
    v = r.version
    assert (v.major, v.minor, v.update, v.patch, v.build) == expected
    assert r.flavor == ("esx" if expected[:2] < (9, 0) and flavor == "esx" else "esxi")


def test_esx9_is_called_esx():
    v = versions.resolve_esx("esxi", "9.0.1").version
    assert versions.product_name("esxi", v) == "ESX"
    assert versions.product_name("esxi", versions.EsxVersion(8, 0)) == "ESXi"
    assert versions.product_name("esx", versions.EsxVersion(4, 1)) == "ESX"


def test_the_topology_model_is_the_normalised_one(tmp_path):
    hosts = "\n".join(
        f"  - {{name: e{i}, flavor: esxi, version: \"{t}\", memory_mb: 8192, nics: [n], "
        f"management: {{network: n, ip: 10.0.0.{i + 5}}}}}"
        for i, t in enumerate(["8.0 U3", "8.0.3", "VMware ESXi 8.0.3 build-24022510"]))
    text = ("lab: a\nnetworks: [{name: n, type: host-only, vmnet: 2, subnet: 10.0.0.0/24, host_ip: 10.0.0.1}]\n"
            f"esx_hosts:\n{hosts}\n")
    topo = load(tmp_path / "t.yaml", text=text).topology
    assert {(h.version, h.version_info, h.label) for h in topo.esx_hosts} == {
        ("8.0u3", versions.EsxVersion(8, 0, 3, "", 24022510), "ESXi 8.0u3")}


@pytest.mark.parametrize("ws,hw,vhv,newest_guest", [
    ("7.1", 7, False, "vmkernel"), ("16.2", 19, True, "vmkernel8"), ("17.5", 21, True, "vmkernel8"),
    ("17.6", 21, True, "vmkernel8"), ("17.6.4", 21, True, "vmkernel8"), ("25H2", 22, True, "vmkernel9"),
    ("25H2u1", 22, True, "vmkernel9"), ("26H1", 22, True, "vmkernel9"),
])
def test_workstation_releases(ws, hw, vhv, newest_guest):
    t = versions.parse_ws_version(ws)
    assert (versions.hw_version(t), versions.has_vhv(t), versions.guest_os_ids(t)[-1]) == (hw, vhv, newest_guest)


def test_guest_os_falls_back_to_what_the_workstation_offers():
    v9 = versions.EsxVersion(9, 0)
    assert versions.guest_os("esxi", v9, versions.parse_ws_version("25H2")) == "vmkernel9"
    assert versions.guest_os("esxi", v9, versions.parse_ws_version("17.6")) == "vmkernel8"


WS_CORPUS = [
    "6", "6.0", "6.5", "6.5.5", "7", "7.0", "7.1", "7.1.6", "8", "8.0", "8.0.6", "9.0.4", "10", "10.0.7", "11.1.4",
    "12", "12.5", "12.5.9", "14", "14.1", "14.1.8", "15", "15.0", "15.1", "15.5", "15.5.7", "16", "16.1", "16.2",
    "16.2.5", "17", "17.0", "17.0.2", "17.5", "17.5.2", "17.6", "17.6.4", "25H2", "25h2", "25H2u1", "25H2U1",
    "25H2u12", "26H1", "26H1u1", "26H2", "30H1",
    # not releases
    "", "5", "5.5", "6.1", "7.2", "13", "13.0", "14.2", "15.2", "16.3", "17.1", "17.3", "17.7", "18", "19.0", "24",
    "24H2", "25H1", "25H3", "25H2u", "25h2 u1", "2025H2", "v17.5", "17.5.", "17..5", "017.5", "17.5.1.2", " 17.5",
    "17.5 ", "25.0.0", "25", "26", "H2", "25H2u1x",
]


@pytest.fixture(scope="module")
def published_schema():
    return json.loads((ROOT / "docs" / "topology.schema.json").read_text())


@pytest.mark.parametrize("text", WS_CORPUS)
def test_schema_and_validate_agree_on_workstation_releases(text, published_schema, tmp_path):
    """The published JSON Schema, checked by the jsonschema library, accepts exactly what `validate` accepts."""
    doc = {"lab": "a", "workstation": {"version": text},
           "networks": [{"name": "n", "type": "host-only", "vmnet": 2, "subnet": "10.0.0.0/24", "host_ip": "10.0.0.1"}],
           "esx_hosts": [{"name": "e", "flavor": "esxi", "version": "5.5", "nics": ["n"],
                          "management": {"network": "n", "ip": "10.0.0.5"}}]}
    schema_ok = jsonschema.Draft202012Validator(published_schema).is_valid(doc)
    res = load(tmp_path / "t.yaml", text=json.dumps(doc))
    validate_ok = not [p for p in res.errors if p.path == ("workstation", "version")]
    assert schema_ok == validate_ok, (text, schema_ok, res.formatted())
    assert len([p for p in res.errors if p.path == ("workstation", "version")]) <= 1  # one message, not two


@pytest.mark.parametrize("example,api", [("esx35-ha-pair", "2.5"), ("esxi67-70-mixed", "7.0.3.0"),
                                         ("esxi8-ha-trio", "8.0.2.0"), ("esx9-pair-25h2", "9.0.0.0")])
def test_the_labs_vcenter_speaks_the_api_of_its_newest_host(example, api):
    from labctl.topology import load_topology
    from labctl.vsphere import ha

    vc = load_topology(ROOT / "topologies" / f"{example}.yaml").vcenter
    assert (vc.api_version, vc.api_version_given) == (api, False)
    assert ha.uses_legacy_keys(vc.api_version) is (example == "esx35-ha-pair")  # AAM keys only for the 3.5 lab


def test_the_topology_can_name_the_vcenter_version(tmp_path):
    text = (ROOT / "topologies" / "esx35-ha-pair.yaml").read_text().replace(
        "datacenter: Lab}", "datacenter: Lab, version: \"5.0\"}")
    vc = load(tmp_path / "t.yaml", text=text).topology.vcenter
    assert (vc.api_version, vc.api_version_given) == ("5.0", True)
