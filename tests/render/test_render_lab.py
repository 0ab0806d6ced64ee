"""Golden renders of the example topologies, byte-stable re-renders, user template overrides, wheel layout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from labctl.render.lab import render_lab
from labctl.topology import load_topology

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).parent / "golden"
EXAMPLES = sorted((ROOT / "topologies").glob("*.yaml"))
UPDATE = os.environ.get("LABCTL_UPDATE_GOLDEN") == "1"


@pytest.fixture
def fixed_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/lab")  # vm_dir and ISO paths expand ~ into the goldens


@pytest.mark.parametrize("topo_file", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_golden_render(topo_file, fixed_home):
    topo = load_topology(topo_file)
    files = render_lab(topo)
    gdir = GOLDEN / topo_file.stem
    if UPDATE:
        for f in files:
            (gdir / f.relpath).parent.mkdir(parents=True, exist_ok=True)
            (gdir / f.relpath).write_text(f.content)
    expected = sorted(str(p.relative_to(gdir)) for p in gdir.rglob("*") if p.is_file())
    assert sorted(f.relpath for f in files) == expected
    for f in files:
        assert f.content == (gdir / f.relpath).read_text(), (
            f"{f.relpath} differs (LABCTL_UPDATE_GOLDEN=1 to accept)"
        )


def test_render_keys_per_era(fixed_home):
    from labctl.render.vmx import VmxFile

    old = {
        f.relpath: f.content for f in render_lab(load_topology(ROOT / "topologies" / "esx35-ha-pair.yaml"))
    }
    v = VmxFile.from_text(old["esx1/esx1.vmx"])
    assert v["virtualHW.version"] == "7" and v["monitor_control.restrict_backdoor"] == "TRUE"
    assert (
        "vhv.enable" not in v
        and v["ethernet0.connectionType"] == "pvn"
        and v["ethernet0.virtualDev"] == "e1000"
    )
    assert v["ethernet1.vnet"] == "vmnet2" and v["uuid.action"] == "create" and v["msg.autoAnswer"] == "TRUE"
    assert v["ide1:0.fileName"] == "/home/lab/isos/esx-3.5.0-update5.iso"
    new = {
        f.relpath: f.content for f in render_lab(load_topology(ROOT / "topologies" / "esxi8-ha-trio.yaml"))
    }
    v = VmxFile.from_text(new["esxi-a/esxi-a.vmx"])
    assert (v["virtualHW.version"], v["guestOS"], v["firmware"], v["vhv.enable"]) == (
        "21",
        "vmkernel8",
        "efi",
        "TRUE",
    )
    assert v["ethernet0.virtualDev"] == "vmxnet3" and v["scsi0.virtualDev"] == "pvscsi"
    assert "monitor_control.restrict_backdoor" not in v
    mixed = {
        f.relpath: f.content for f in render_lab(load_topology(ROOT / "topologies" / "esxi67-70-mixed.yaml"))
    }
    v67 = VmxFile.from_text(mixed["esxi67/esxi67.vmx"])
    assert (v67["guestOS"], v67["ethernet0.virtualDev"], v67["virtualHW.version"]) == (
        "vmkernel65",
        "e1000",
        "19",
    )
    assert "firmware" not in v67


def test_user_templates_override(tmp_path, fixed_home):
    (tmp_path / "vmx").mkdir()
    (tmp_path / "vmx" / "_common_tail.vmx.j2").write_text('uuid.action = "keep"\nmy.key = "1"\n')
    files = {
        f.relpath: f.content
        for f in render_lab(load_topology(ROOT / "topologies" / "esxi8-ha-trio.yaml"), template_dir=tmp_path)
    }
    assert 'my.key = "1"' in files["esxi-a/esxi-a.vmx"]


def test_values_are_escaped(tmp_path, fixed_home):
    from labctl.render.vmx import VmxFile

    f = tmp_path / "lab.yaml"
    f.write_text(
        (ROOT / "topologies" / "esxi8-ha-trio.yaml")
        .read_text()
        .replace(
            "iso: ~/isos/VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso", 'iso: "/isos/a|b \\"x\\".iso"'
        )
        .replace("source: ../examples", f"source: {ROOT}/examples")
    )
    files = {x.relpath: x.content for x in render_lab(load_topology(f))}
    assert 'sata0:1.fileName = "/isos/a|7Cb |22x|22.iso"' in files["esxi-a/esxi-a.vmx"]
    assert VmxFile.from_text(files["esxi-a/esxi-a.vmx"])["sata0:1.fileName"] == '/isos/a|b "x".iso'


def test_cli_render_twice_identical_and_refuses_edits(run_cli, tmp_path, fixed_home):
    out = tmp_path / "out"
    topo = str(ROOT / "topologies" / "esx35-ha-pair.yaml")
    r1 = run_cli("render", topo, "-o", str(out))
    assert r1.status == 0, r1.err
    snap = {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".labctl" not in p.parts}
    assert (out / "esx2" / "clone-plan.json").exists() and not (out / "esx2" / "esx2.vmx").exists()
    r2 = run_cli("render", topo, "-o", str(out))
    assert r2.status == 0 and "0 created, 0 updated, 7 unchanged" in r2.err
    assert snap == {p: p.read_bytes() for p in out.rglob("*") if p.is_file() and ".labctl" not in p.parts}
    vmx = out / "esx1" / "esx1.vmx"
    vmx.write_text(vmx.read_text() + 'my.edit = "1"\n')
    r3 = run_cli("render", topo, "-o", str(out))
    assert r3.status == 5 and "esx1.vmx: edited since labctl wrote it" in r3.err and "Traceback" not in r3.err
    assert 'my.edit = "1"' in vmx.read_text()
    (out / "vcenter" / "vcenter.vmx.lck").mkdir()
    r4 = run_cli("render", topo, "-o", str(out), "--force")
    assert r4.status == 0 and "my.edit" not in vmx.read_text()


@pytest.mark.slow
def test_non_editable_wheel_renders(tmp_path):
    """A plain `pip install .` (no source tree) must still find the templates."""
    wheel_dir, target, src = tmp_path / "whl", tmp_path / "site", tmp_path / "src"
    # a copy of the sources: setuptools builds in the tree it is given (build/, *.egg-info), and the suite leaves
    # nothing in the checkout
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info",
                                                             "__pycache__", ".pytest_cache", ".hypothesis"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(wheel_dir),
            str(src),
        ],
        check=True,
        capture_output=True,
    )
    whl = next(wheel_dir.glob("labctl-*.whl"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(whl)],
        check=True,
        capture_output=True,
    )
    # drop the editable install's import hook, or it would quietly serve modules missing from the wheel
    code = (
        "import sys; sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in repr(f).lower()]; "
        "import labctl, labctl.render; from labctl.render.templates import builtin_template_dir as d; "
        "from labctl.cli.main import main; print(labctl.__file__); print(d()); "
        "import pkgutil; mods = [m.name for m in pkgutil.walk_packages(labctl.__path__, 'labctl.')]; "
        "[__import__(m) for m in mods if not m.endswith(('hostd', '__main__'))]; "
        "assert all(sys.modules[m].__file__.startswith(sys.argv[1]) for m in mods if m in sys.modules), mods; "
        f"sys.exit(main(['render', {str(ROOT / 'topologies' / 'esxi8-ha-trio.yaml')!r}, '-o', {str(tmp_path / 'o')!r}]))"
    )
    r = subprocess.run(
        [sys.executable, "-c", code, str(target)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(target)},
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert str(target) in r.stdout.splitlines()[0] and str(target) in r.stdout.splitlines()[1]
    assert (tmp_path / "o" / "esxi-a" / "esxi-a.vmx").exists()


def test_every_package_directory_has_an_init():
    """find_packages skips a directory without __init__.py: the wheel would lack it."""
    pkg = ROOT / "labctl"
    missing = [str(d.relative_to(ROOT)) for d in [pkg, *pkg.rglob("*")]
               if d.is_dir() and d.name != "__pycache__" and list(d.glob("*.py")) and not (d / "__init__.py").exists()]
    assert not missing
