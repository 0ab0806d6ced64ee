"""vib deploy end to end: simulated hosts over real SSH on loopback (pinned host keys, an endpoint map so no lab
address is ever dialled), plus the pure parsers with real output shapes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from labctl.vib.deploy import (
    DeployOptions,
    deploy,
    deploy_topology_vibs,
    load_vib_info,
    parse_acceptance,
    parse_install_result,
    parse_vib_list,
    platform_problem,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "vib" / "lab-tools"
DATE = "2024-06-25T07:17:37+00:00"

HOSTS = [("esxi7", "esxi", "7.0u3", "192.168.69.21"), ("esxi8", "esxi", "8.0u2", "192.168.69.22"),
         ("esx4", "esx", "4.1", "192.168.69.23")]

TOPOLOGY = """\
lab: vib-deploy
workstation: {{version: "17.5", vm_dir: {vm_dir}}}
networks:
  - {{name: mgmt, type: host-only, vmnet: 3, subnet: 192.168.69.0/24, host_ip: 192.168.69.1, dhcp: false}}
esx_hosts:
{hosts}
vibs:
  - {{file: {vib}, source: {src}, hosts: [esxi7, esxi8], allow_community: true}}
"""
HOST = ("  - {{name: {n}, flavor: {f}, version: \"{v}\", cpus: 2, memory_mb: 8192, disk_gb: 40, nics: [mgmt],"
        " management: {{network: mgmt, ip: {ip}}}}}")


# ---------------------------------------------------------------- pure parsers

RESULT_7 = """Installation Result
   Message: Operation finished successfully.
   Reboot Required: false
   VIBs Installed: labctl_bootbank_lab-tools_1.0.0-1
   VIBs Removed:
   VIBs Skipped:
"""
RESULT_8 = """Installation Result
   Message: The update completed successfully, but the system needs to be rebooted for the changes to be effective.
   VIBs Installed: a_bootbank_x_1.0-1, a_bootbank_y_1.0-1
   VIBs Removed: a_bootbank_x_0.9-1
   VIBs Skipped:
   Reboot Required: true
   DPU Results:
"""
LIST_8 = """Name                           Version                               Vendor  Acceptance Level    Install Date  Platforms
-----------------------------  ------------------------------------  ------  ------------------  ------------  ---------
lab-tools                      1.0.0-1                               labctl  CommunitySupported  2024-06-25    host
vmkusb-nic-fling               1.12-1vmw.800.1.20.64098182           VMW     VMwareCertified     2023-04-25    host
"""


def test_parse_install_results():
    r = parse_install_result(RESULT_7)
    assert r.installed == ("labctl_bootbank_lab-tools_1.0.0-1",) and not r.reboot_required and r.removed == ()
    r = parse_install_result(RESULT_8)
    assert r.installed == ("a_bootbank_x_1.0-1", "a_bootbank_y_1.0-1") and r.reboot_required
    assert r.removed == ("a_bootbank_x_0.9-1",) and r.message.startswith("The update completed successfully")
    with pytest.raises(ValueError):
        parse_install_result("[AcceptanceConfigError]\n blah\n")


def test_parse_vib_list_and_acceptance():
    vibs = parse_vib_list(LIST_8)
    assert [(v.name, v.version, v.acceptance) for v in vibs] == [
        ("lab-tools", "1.0.0-1", "CommunitySupported"),
        ("vmkusb-nic-fling", "1.12-1vmw.800.1.20.64098182", "VMwareCertified")]
    assert parse_vib_list("") == []
    assert parse_acceptance("PartnerSupported\n") == "PartnerSupported"
    with pytest.raises(ValueError):
        parse_acceptance("Error: nope\n")


def test_platform_rules(tmp_path):
    from labctl.vib.build import BuildOptions, build_vib

    build_vib(BuildOptions(EXAMPLE, tmp_path / "x.vib", release_date=DATE))
    info = load_vib_info(tmp_path / "x.vib")
    assert info.acceptance == "CommunitySupported" and not info.signed and info.live_install
    assert platform_problem(info, "esxi", (7, 0, 3)) is None
    assert "no VIBs" in platform_problem(info, "esx", (3, 5, 5))
    assert "esx4-rpm" in platform_problem(info, "esx", (4, 1, 0))


# ---------------------------------------------------------------- end to end over SSH


@pytest.fixture
def lab(tmp_path):
    pytest.importorskip("paramiko")
    from labctl.sim.faults import Control
    from labctl.topology import load_topology
    from tests.simfleet import serve_fleet

    with serve_fleet(tmp_path, HOSTS, mac_prefix="00:50:56:00:20", control=Control(reboot_delay=0.2),
                     persist_key=True) as fleet:
        vib = tmp_path / "build" / "lab-tools-1.0.0-1.vib"
        path = tmp_path / "lab.yaml"
        path.write_text(TOPOLOGY.format(vm_dir=tmp_path / "vms", vib=vib, src=EXAMPLE, hosts="\n".join(
            HOST.format(n=n, f=f, v=v, ip=ip) for n, f, v, ip in HOSTS)))
        yield load_topology(path), fleet.settings(), fleet.sims, fleet.servers, tmp_path


def _open(topo, settings, hosts=None):
    from labctl.remote.connection import LabConnections
    from labctl.remote.hosts import targets_from_topology

    targets = targets_from_topology(topo, hosts)
    return LabConnections(targets, settings), targets


def _build(tmp_path: Path, name: str, *, fmt: str = "esxi", edit=None) -> Path:
    from labctl.vib.build import BuildOptions, build_vib

    stage = tmp_path / f"stage-{name}"
    shutil.copytree(EXAMPLE, stage)
    if edit:
        edit(stage)
    out = tmp_path / name
    build_vib(BuildOptions(stage, out, format=fmt, release_date=DATE))
    return out


def test_deploy_acceptance_install_and_idempotence(lab):
    topo, settings, sims, servers, tmp = lab
    info = load_vib_info(_build(tmp, "lt.vib"))
    conns, targets = _open(topo, settings, ["esxi7", "esxi8"])
    with conns:
        refused = deploy(conns, targets, info, DeployOptions())
    assert not refused.ok
    for h in refused.hosts:
        assert h.status == "failed" and "accepts PartnerSupported" in h.message
        assert "--allow-community" in h.hint and "acceptance set --level=CommunitySupported" in h.hint
    assert all(s.state.acceptance_level == "PartnerSupported" for s in sims.values() if s.state.flavor == "esxi")

    conns, targets = _open(topo, settings, ["esxi7", "esxi8"])
    with conns:
        first = deploy(conns, targets, info, DeployOptions(allow_community=True))
    assert first.ok, [h.message for h in first.hosts]
    for h in first.hosts:
        assert h.status == "installed" and h.acceptance_changed == "PartnerSupported -> CommunitySupported"
        assert h.upload in ("sftp", "cat") and not h.reboot_required
        assert any("--no-sig-check" in s for s in h.steps)
    for name in ("esxi7", "esxi8"):
        st = sims[name].state
        assert st.acceptance_level == "CommunitySupported"
        assert any(v.name == "lab-tools" and v.version == "1.0.0-1" for v in st.vibs)
        assert sims[name].fs.is_file("/etc/vmware/firewall/labtools.xml")
        assert not sims[name].fs.is_file(info.remote_path)  # upload cleaned up

    conns, targets = _open(topo, settings, ["esxi7", "esxi8"])
    with conns:
        again = deploy(conns, targets, info, DeployOptions(allow_community=True))
    assert again.ok and [h.status for h in again.hosts] == ["skipped", "skipped"]
    assert all(h.upload is None for h in again.hosts)


def test_deploy_reboot_required_and_wait(lab):
    topo, settings, sims, servers, tmp = lab

    def no_live(stage):
        y = stage / "descriptor.yaml"
        y.write_text(y.read_text().replace("live-install-allowed: true", "live-install-allowed: false")
                     .replace("version: 1.0.0-1", "version: 1.0.0-2"))

    info = load_vib_info(_build(tmp, "lt2.vib", edit=no_live))
    boots = sims["esxi8"].state.boot_count
    conns, targets = _open(topo, settings, ["esxi8"])
    with conns:
        rep = deploy(conns, targets, info, DeployOptions(allow_community=True))
    (h,) = rep.hosts
    assert h.status == "installed" and h.reboot_required and not h.rebooted
    assert sims["esxi8"].state.boot_count == boots
    # re-run with --reboot: already installed, but the pending reboot is carried out
    conns, targets = _open(topo, settings, ["esxi8"])
    with conns:
        rep = deploy(conns, targets, info, DeployOptions(allow_community=True, reboot=True, reboot_timeout=20))
    (h,) = rep.hosts
    assert h.status == "skipped" and h.rebooted and "reboot is pending" in h.message
    assert sims["esxi8"].state.boot_count == boots + 1
    boots += 1
    conns, targets = _open(topo, settings, ["esxi8"])
    with conns:
        rep = deploy(conns, targets, info, DeployOptions(allow_community=True, reboot=True, reboot_timeout=20))
    assert rep.hosts[0].status == "skipped" and not rep.hosts[0].rebooted

    def bump(stage):
        no_live(stage)
        y = stage / "descriptor.yaml"
        y.write_text(y.read_text().replace("version: 1.0.0-2", "version: 1.0.0-3"))

    info3 = load_vib_info(_build(tmp, "lt3.vib", edit=bump))
    conns, targets = _open(topo, settings, ["esxi8"])
    with conns:
        rep = deploy(conns, targets, info3, DeployOptions(allow_community=True, reboot=True, reboot_timeout=20))
    (h,) = rep.hosts
    assert h.status == "installed" and h.rebooted and not h.reboot_required, h
    assert sims["esxi8"].state.boot_count == boots + 1
    assert [v.version for v in sims["esxi8"].state.vibs if v.name == "lab-tools"] == ["1.0.0-3"]


def test_deploy_offline_bundle(lab):
    from labctl.vib.build import BuildOptions, build_vib

    topo, settings, sims, servers, tmp = lab
    stage = tmp / "stage-bundle"
    shutil.copytree(EXAMPLE, stage)
    build_vib(BuildOptions(stage, tmp / "b.vib", bundle=tmp / "b.zip", release_date=DATE, platforms=("7.0",)))
    info = load_vib_info(tmp / "b.zip")
    assert info.kind == "bundle" and [m.vib_id for m in info.vibs] == ["labctl_bootbank_lab-tools_1.0.0-1"]
    conns, targets = _open(topo, settings, ["esxi7", "esx4"])
    with conns:
        rep = deploy(conns, targets, info, DeployOptions(allow_community=True))
    by = {h.host: h for h in rep.hosts}
    assert by["esxi7"].status == "installed", by["esxi7"]
    assert any(" -d /tmp/labctl-b.zip" in s for s in by["esxi7"].steps)
    assert by["esx4"].status == "failed" and "ESX 4 VIB" in by["esx4"].message
    conns, targets = _open(topo, settings, ["esxi7"])
    with conns:
        again = deploy(conns, targets, info, DeployOptions(allow_community=True))
    assert again.hosts[0].status == "skipped"


def test_deploy_esx4_and_wrong_formats(lab):
    topo, settings, sims, servers, tmp = lab
    esxi_vib = load_vib_info(_build(tmp, "lt.vib"))
    rpm_vib = load_vib_info(_build(tmp, "lt-rpm.vib", fmt="esx4-rpm"))
    conns, targets = _open(topo, settings, ["esx4", "esxi7"])
    with conns:
        rep = deploy(conns, targets, rpm_vib, DeployOptions())
    by = {h.host: h for h in rep.hosts}
    assert by["esx4"].status == "installed" and any("esxupdate --nosigcheck" in s for s in by["esx4"].steps)
    assert by["esxi7"].status == "failed" and "ESX 4.x VIB" in by["esxi7"].message
    assert any(v.name == "lab-tools" for v in sims["esx4"].state.vibs)
    conns, targets = _open(topo, settings, ["esx4"])
    with conns:
        again = deploy(conns, targets, rpm_vib, DeployOptions())
        wrong = deploy(conns, targets, esxi_vib, DeployOptions())
    assert again.hosts[0].status == "skipped"
    assert wrong.hosts[0].status == "failed" and "esx4-rpm" in wrong.hosts[0].message


def test_deploy_extensibility_failure_and_unreachable_host(lab):
    topo, settings, sims, servers, tmp = lab

    def etc_file(stage):
        d = stage / "payloads" / "labtools" / "etc" / "lab"
        d.mkdir(parents=True)
        (d / "x.conf").write_text("x=1\n")

    info = load_vib_info(_build(tmp, "bad.vib", edit=etc_file))
    servers[1].stop()  # esxi8 down
    conns, targets = _open(topo, settings, ["esxi7", "esxi8"])
    with conns:
        rep = deploy(conns, targets, info, DeployOptions(allow_community=True))
    by = {h.host: h for h in rep.hosts}
    assert by["esxi7"].status == "failed" and "violates extensibility rule checks" in by["esxi7"].message
    assert "--force" in by["esxi7"].hint
    assert by["esxi8"].status == "unreachable"
    assert int(rep.status) == 3
    conns, targets = _open(topo, settings, ["esxi7"])
    with conns:
        forced = deploy(conns, targets, info, DeployOptions(allow_community=True, force=True))
    assert forced.hosts[0].status == "installed" and any(" -f" in s for s in forced.hosts[0].steps)


def test_pipeline_stage_builds_on_demand(lab):
    topo, settings, sims, servers, tmp = lab
    conns, targets = _open(topo, settings)
    vib_file = Path(topo.vibs[0].file)
    assert not vib_file.exists()
    with conns:
        reports = deploy_topology_vibs(topo, conns, targets)
    assert vib_file.is_file()
    (rep,) = reports
    assert rep.ok and [h.host for h in rep.hosts] == ["esxi7", "esxi8"]
    assert {h.status for h in rep.hosts} == {"installed"}
    first_bytes = vib_file.read_bytes()
    vib_file.unlink()
    conns, targets = _open(topo, settings)
    with conns:
        (rep2,) = deploy_topology_vibs(topo, conns, targets)
    assert vib_file.read_bytes() == first_bytes  # rebuilt identically from unchanged sources
    assert {h.status for h in rep2.hosts} == {"skipped"}


def test_cli_deploy_sim(lab, run_cli, monkeypatch):
    """`labctl vib deploy --sim`: the CLI path, with the sim dir's endpoint map when the sim launcher exists."""
    pytest.importorskip("labctl.sim.endpoints")
    pytest.importorskip("labctl.sim.paths")
    topo, settings, sims, servers, tmp = lab
    sim_dir = tmp / "simdir"
    sim_dir.mkdir()
    endpoints = {"lab": topo.lab, "hosts": {}, "jump": None, "vcenter": None,
                 "known_hosts": str(settings.known_hosts), "identity_file": str(settings.identity_files[0])}
    for (name, flavor, version, ip), srv in zip(HOSTS, servers):
        endpoints["hosts"][name] = {"address": ip, "host": "127.0.0.1", "port": srv.port, "pid": 0,
                                    "flavor": flavor, "version": version, "host_key_fingerprints": {}}
    (sim_dir / "endpoints.json").write_text(json.dumps(endpoints))
    vib = _build(tmp, "cli.vib")
    r = run_cli("vib", "deploy", str(vib), "--lab", str(topo.path), "--sim", "--sim-dir", str(sim_dir),
                "--hosts", "esxi7", "--allow-community", "--json")
    assert r.status == 0, r.out + r.err
    doc = json.loads(r.out)
    assert doc["hosts"][0]["host"] == "esxi7" and doc["hosts"][0]["status"] == "installed"
    r = run_cli("vib", "deploy", str(vib), "--lab", str(topo.path), "--sim", "--sim-dir", str(sim_dir),
                "--hosts", "esxi7")
    assert r.status == 0 and "skipped" in r.out and "1/1 host(s) ok" in r.out


def test_pipeline_dry_run_changes_nothing(lab):
    topo, settings, sims, servers, tmp = lab
    conns, targets = _open(topo, settings)
    with conns:
        (rep,) = deploy_topology_vibs(topo, conns, targets, dry_run=True)
    assert not Path(topo.vibs[0].file).exists()  # a plan builds nothing in place
    assert rep.ok and {h.status for h in rep.hosts} == {"planned"}
    msg = rep.hosts[0].message
    assert "esxcli software acceptance set --level=CommunitySupported" in msg
    assert "esxcli software vib install -v /tmp/labctl-labctl_bootbank_lab-tools_1.0.0-1.vib --no-sig-check" in msg
    for name in ("esxi7", "esxi8"):
        assert sims[name].state.acceptance_level == "PartnerSupported"
        assert not any(v.name == "lab-tools" for v in sims[name].state.vibs)


def test_on_demand_build_follows_the_stage_directory(tmp_path):
    """A `vibs:` entry with `source:` is built when its file is missing or older than a stage file."""
    import os

    from labctl.vib.deploy import ensure_built, needs_build

    stage = tmp_path / "stage"
    shutil.copytree(EXAMPLE, stage)
    out = tmp_path / "out" / "lab-tools.vib"
    assert needs_build(out, stage) and not needs_build(out, None)
    ensure_built(out, stage)
    first = out.read_bytes()
    assert not needs_build(out, stage)
    later = out.stat().st_mtime + 10
    for p in stage.rglob("*"):
        if p.is_file():
            os.utime(p, (later, later))
            break
    assert needs_build(out, stage)
    ensure_built(out, stage)
    assert not needs_build(out, stage) and out.read_bytes() != first  # new release date from the newer source


def test_topology_allow_community_follows_only_the_listed_file_by_its_resolved_path(tmp_path):
    from types import SimpleNamespace

    from labctl.vib.deploy import _topology_allows

    listed = tmp_path / "build" / "lab-tools-1.0.0-1.vib"
    listed.parent.mkdir()
    (tmp_path / "link").symlink_to(listed.parent)
    topo = SimpleNamespace(vibs=[SimpleNamespace(file=listed, allow_community=True),
                                 SimpleNamespace(file=tmp_path / "other.vib", allow_community=False)],
                           vib_file=lambda spec: spec.file)

    def info(path):
        return SimpleNamespace(path=path)

    assert _topology_allows(topo, info(listed))
    assert _topology_allows(topo, info(tmp_path / "build" / ".." / "build" / "lab-tools-1.0.0-1.vib"))
    assert _topology_allows(topo, info(tmp_path / "link" / "lab-tools-1.0.0-1.vib"))  # the same file
    # the same name elsewhere is another file: the topology does not speak for it
    assert not _topology_allows(topo, info(tmp_path / "elsewhere" / "lab-tools-1.0.0-1.vib"))
    assert not _topology_allows(topo, info(tmp_path / "elsewhere" / "other.vib"))
    assert not _topology_allows(topo, info(tmp_path / "unlisted.vib"))
