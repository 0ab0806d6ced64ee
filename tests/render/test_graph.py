"""`labctl graph`: golden Mermaid/DOT/SVG for the example labs, the model, the CLI and the Graphviz path.

Regenerate the goldens after an intended change with `LABCTL_UPDATE_GOLDENS=1 pytest tests/render/test_graph.py`
and look at the SVGs (e.g. `rsvg-convert -o /tmp/lab.png tests/render/data/graph/esx35-ha-pair.svg`).
"""

from __future__ import annotations

import html
import os
import stat
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from labctl.render import graph
from labctl.render.graph import Attachment, ClusterBox, DatastoreNode, LabGraph, NetNode, Node
from labctl.topology import load_topology
from tests.tools import need_tool

ROOT = Path(__file__).resolve().parents[2]
TOPOLOGIES = ROOT / "topologies"
GOLDEN = Path(__file__).parent / "data" / "graph"
LABS = ["esx35-ha-pair", "esxi8-ha-trio", "esxi67-70-mixed"]
RENDERERS = {"mmd": graph.to_mermaid, "dot": graph.to_dot, "svg": graph.to_svg}


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LABCTL_UPDATE_GOLDENS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden {path}; run with LABCTL_UPDATE_GOLDENS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden"


@pytest.fixture(scope="module")
def labs():
    return {lab: load_topology(TOPOLOGIES / f"{lab}.yaml") for lab in LABS}


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("ext", sorted(RENDERERS))
def test_goldens(labs, lab, ext):
    text = RENDERERS[ext](graph.from_topology(labs[lab]))
    assert text == RENDERERS[ext](graph.from_topology(labs[lab]))  # deterministic
    _golden(f"{lab}.{ext}", text)


@pytest.mark.parametrize("lab", LABS)
def test_svg_is_well_formed_and_shows_every_host_ip_and_network(labs, lab):
    t = labs[lab]
    svg = graph.to_svg(graph.from_topology(t))
    root = ET.fromstring(svg)
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = " ".join(el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text"))
    for h in t.esx_hosts:
        assert h.name in texts and h.management.ip in texts
        for v in h.vmkernel:
            assert v.ip in texts
    for n in t.networks:
        assert n.name in texts and n.subnet in texts
    for c in t.clusters:
        assert f"cluster {c.name}" in texts
        for a in c.isolation_addresses:
            assert a in texts


def test_model_of_the_2010_lab(labs):
    g = graph.from_topology(labs["esx35-ha-pair"])
    esx2 = next(n for n in g.nodes if n.name == "esx2")
    assert esx2.clone_of == "esx1" and esx2.snapshot == "base"
    assert "linked clone of esx1 @ base" in esx2.lines
    assert esx2.attachments == (
        Attachment("lan", "vswif0 192.168.69.12"),
        Attachment("storage", "vmk0 10.10.10.12"),
    )
    assert g.network("lan").summary == "LAN segment · 192.168.69.0/24 · no gateway"
    assert g.network("storage").summary == "vmnet2 host-only · 10.10.10.0/24 · host 10.10.10.1 · no gateway"
    vc = next(n for n in g.nodes if n.name == "vcenter")
    assert "vCenter · datacenter Lab" in vc.lines
    host = next(n for n in g.nodes if n.kind == "host")
    assert host.attachments == (Attachment("storage", "10.10.10.1"),)  # no leg on the LAN segment
    (ds,) = g.datastores
    assert ds.served_by == graph.WORKSTATION_NODE and ds.hosts == ("esx1", "esx2")
    (c,) = g.clusters
    assert c.title == "cluster HA · HA on · isolation 192.168.69.10 · no gateway"


def test_esxi_interfaces_are_vmk_numbered_after_management(labs):
    g = graph.from_topology(labs["esxi67-70-mixed"])
    n = next(n for n in g.nodes if n.name == "esxi70")
    assert [a.label for a in n.attachments] == ["vmk0 192.168.70.12", "vmk1 10.70.1.12", "vmk2 10.70.2.12"]
    assert g.notes == ("vCenter 192.168.70.10 (datacenter Mixed) is outside the lab",)


def _odd_graph() -> LabGraph:
    return LabGraph(
        lab="odd<&>",
        title='odd <lab> & "quotes"',
        networks=(
            NetNode("wan", "nat", "192.168.8.0/24", vmnet=8, gateway="192.168.8.2", dhcp=True),
            NetNode("priv", "host-only", "10.0.0.0/24", vmnet=9),
            NetNode("br", "bridged"),
        ),
        nodes=(
            Node(
                "a&b",
                "esx",
                ("ESXi 8.0 · 2 vCPU · 8 GB", "vmk0 10.0.0.2 (priv)"),
                (Attachment("priv", "vmk0"),),
            ),
            Node("lonely", "vm", ("no NICs",), ()),
            Node("router", "vm", (), (Attachment("wan", ""), Attachment("priv"), Attachment("br"))),
        ),
        clusters=(ClusterBox("C<1>", ("a&b",), ("HA off",)), ClusterBox("ghost", ("missing",))),
        datastores=(DatastoreNode("far", "NFS 172.16.0.9:/x", ("a&b",)),),
    )


@pytest.mark.parametrize("ext", sorted(RENDERERS))
def test_renderers_escape_and_survive_odd_input(ext):
    text = RENDERERS[ext](_odd_graph())
    assert "a&b" not in text.replace("a&amp;b", "") or ext != "svg"
    if ext == "svg":
        root = ET.fromstring(text)  # well-formed despite <, & and quotes
        texts = " ".join(el.text or "" for el in root.iter("{http://www.w3.org/2000/svg}text"))
        assert "datastore far: NFS 172.16.0.9:/x · mounted by a&b" in texts
        assert "private (no host adapter)" in texts and "DHCP · gateway 192.168.8.2" in texts
    if ext == "mmd":
        assert 'n_a_b["a#38;b' in text and "subgraph cl_C_1_" in text
    if ext == "dot":
        assert 'label="odd <lab> & \\"quotes\\""' in text


def test_empty_lab_renders():
    g = LabGraph("empty", "empty", (), ())
    ET.fromstring(graph.to_svg(g))
    assert graph.to_mermaid(g).startswith("graph LR\n")
    assert graph.to_dot(g).rstrip().endswith("}")


# ---- CLI --------------------------------------------------------------------------------------------------


def test_cli_writes_builtin_svg_matching_golden(run_cli, tmp_path):
    topo = TOPOLOGIES / "esx35-ha-pair.yaml"
    r = run_cli("graph", str(topo), "-o", "lab.svg", "--engine", "builtin")
    assert r.status == 0, r.err
    assert (tmp_path / "lab.svg").read_text() == (GOLDEN / "esx35-ha-pair.svg").read_text()
    assert "lab.svg: created (svg, builtin layout)" in r.err
    r = run_cli("graph", str(topo), "-o", "lab.svg", "--engine", "builtin")
    assert r.status == 0 and "unchanged" in r.err


def test_cli_format_from_extension_and_stdout(run_cli, tmp_path):
    topo = str(TOPOLOGIES / "esxi8-ha-trio.yaml")
    assert run_cli("graph", topo, "-o", "lab.mmd").status == 0
    assert (tmp_path / "lab.mmd").read_text() == (GOLDEN / "esxi8-ha-trio.mmd").read_text()
    r = run_cli("graph", topo)
    assert r.status == 0 and r.out == (GOLDEN / "esxi8-ha-trio.mmd").read_text()
    r = run_cli("graph", topo, "--format", "dot")
    assert r.out == (GOLDEN / "esxi8-ha-trio.dot").read_text()


def test_cli_unknown_extension_is_a_usage_error(run_cli):
    r = run_cli("graph", str(TOPOLOGIES / "esx35-ha-pair.yaml"), "-o", "lab.png")
    assert r.status == 2 and "cannot tell the format" in r.err and "--format" in r.err


def test_cli_refuses_to_overwrite_an_edited_picture(run_cli, tmp_path):
    topo = str(TOPOLOGIES / "esx35-ha-pair.yaml")
    assert run_cli("graph", topo, "-o", "lab.mmd").status == 0
    (tmp_path / "lab.mmd").write_text("graph LR\n  my --- edit\n")
    r = run_cli("graph", topo, "-o", "lab.mmd")
    assert r.status == 5 and "edited since labctl wrote it" in r.err
    assert run_cli("graph", topo, "-o", "lab.mmd", "--force").status == 0


def test_cli_bad_topology_is_a_clean_error(run_cli, tmp_path):
    (tmp_path / "bad.yaml").write_text("lab: x\nnetworks: 3\n")
    r = run_cli("graph", "bad.yaml")
    assert r.status == 2 and "Traceback" not in r.err


def _fake_dot(directory: Path) -> Path:
    """A `dot` that records its argv and stdin and answers with a fixed SVG."""
    exe = directory / "dot"
    exe.write_text(
        "#!/bin/sh\n"
        f'printf "%s\\n" "$@" > "{directory}/argv"\n'
        f'cat > "{directory}/stdin"\n'
        "echo '<svg xmlns=\"http://www.w3.org/2000/svg\"><text>fake graphviz</text></svg>'\n"
    )
    exe.chmod(exe.stat().st_mode | stat.S_IXUSR)
    return exe


def test_cli_uses_graphviz_from_path_when_present(run_cli, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    _fake_dot(bindir)
    topo = TOPOLOGIES / "esx35-ha-pair.yaml"
    r = run_cli("graph", str(topo), "-o", "lab.svg", environ={"PATH": str(bindir)})
    assert r.status == 0, r.err
    assert "graphviz layout" in r.err
    assert "fake graphviz" in (tmp_path / "lab.svg").read_text()
    assert (bindir / "argv").read_text() == "-Tsvg\n"
    assert (bindir / "stdin").read_text() == (GOLDEN / "esx35-ha-pair.dot").read_text()


def test_cli_graphviz_failure_and_absence_are_environment_errors(run_cli, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "dot").write_text("#!/bin/sh\necho 'Error: syntax error in line 1' >&2\nexit 1\n")
    (bindir / "dot").chmod(0o755)
    topo = str(TOPOLOGIES / "esx35-ha-pair.yaml")
    r = run_cli("graph", topo, "--format", "svg", environ={"PATH": str(bindir)})
    assert r.status == 6 and "syntax error" in r.err and "--engine builtin" in r.err
    r = run_cli(
        "graph", topo, "--format", "svg", "--engine", "graphviz", environ={"PATH": str(tmp_path / "none")}
    )
    assert r.status == 6 and "not on PATH" in r.err
    r = run_cli("graph", topo, "--format", "svg", environ={"PATH": str(tmp_path / "none")})
    assert r.status == 0 and r.out.startswith("<svg")  # auto: built-in when there is no Graphviz


@pytest.mark.parametrize("lab", LABS)
def test_real_graphviz_accepts_our_dot(labs, lab):
    svg = graph.dot_to_svg(graph.to_dot(graph.from_topology(labs[lab])), need_tool("dot"))
    root = ET.fromstring(svg.encode("utf-8"))
    assert root.tag.endswith("svg")
    assert all(h.name in html.unescape(svg) for h in labs[lab].esx_hosts)
