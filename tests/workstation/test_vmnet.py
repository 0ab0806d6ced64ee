"""/dev/vmnet* permissions in a temporary device directory (real char devices via mknod when root)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from labctl.errors import EnvironmentProblem, ExitStatus
from labctl.workstation import vmnet
from labctl.workstation.vmnet import Identity

ROOT = os.geteuid() == 0
TEMPLATE = Path(__file__).resolve().parents[2] / "templates" / "host" / "vmnet-permissions.service.j2"
ALICE = Identity("alice", 1000, frozenset({1000}))


def make_dev(tmp_path: Path, numbers=(0, 1, 8), mode=0o600) -> Path:
    dev = tmp_path / "dev"
    dev.mkdir()
    for n in numbers:
        p = dev / f"vmnet{n}"
        if ROOT:
            os.mknod(p, stat.S_IFCHR | mode, os.makedev(vmnet.VMNET_MAJOR, n))
        else:  # pragma: no cover - non-root developers
            p.write_text("")
        os.chmod(p, mode)
    (dev / "null-ish").write_text("")  # not a vmnet node: ignored
    return dev


def test_check_root_owned_0600_is_a_problem_for_a_user(tmp_path):
    dev = make_dev(tmp_path)
    report = vmnet.check(dev, ALICE)
    assert [n.number for n in report.nodes] == [0, 1, 8]
    assert not report.ok
    n0 = report.nodes[0]
    assert (n0.readable, n0.writable) == (False, False) and n0.mode == 0o600
    if ROOT:
        assert n0.is_char and (n0.major, n0.minor) == (119, 0)
        assert n0.mode_str == "crw-------"
    assert any("alice cannot open it read/write" in p for p in report.problems)


def test_group_rw_makes_it_ok(tmp_path):
    dev = make_dev(tmp_path, mode=0o660)
    gid = os.stat(dev / "vmnet0").st_gid
    report = vmnet.check(dev, Identity("alice", 1000, frozenset({gid})))
    if ROOT:
        assert report.ok, report.problems


@pytest.mark.skipif(not ROOT, reason="needs mknod")
def test_wrong_device_numbers_and_regular_file(tmp_path):
    dev = tmp_path / "dev"
    dev.mkdir()
    os.mknod(dev / "vmnet3", stat.S_IFCHR | 0o666, os.makedev(119, 4))
    (dev / "vmnet5").write_text("")
    os.chmod(dev / "vmnet5", 0o666)
    report = vmnet.check(dev, ALICE)
    probs = report.problems
    assert any("device numbers 119:4, expected 119:3" in p for p in probs)
    assert any("vmnet5: not a character device" in p for p in probs)


def test_no_nodes_is_a_problem(tmp_path):
    (tmp_path / "dev").mkdir()
    report = vmnet.check(tmp_path / "dev", ALICE)
    assert not report.ok and "no vmnet device nodes" in report.problems[0]


@pytest.mark.skipif(not ROOT, reason="chgrp needs root")
def test_fix_is_idempotent(tmp_path):
    dev = make_dev(tmp_path)
    changes = vmnet.fix(dev, "users")
    assert len(changes) == 6  # group and mode for three nodes
    assert all(os.stat(dev / f"vmnet{n}").st_gid == 100 for n in (0, 1, 8))
    assert stat.S_IMODE(os.stat(dev / "vmnet8").st_mode) == 0o660
    assert vmnet.fix(dev, "users") == []
    assert vmnet.check(dev, Identity("alice", 1000, frozenset({100}))).ok


def test_fix_refuses_without_root_and_unknown_group(tmp_path):
    dev = make_dev(tmp_path)
    with pytest.raises(EnvironmentProblem) as ei:
        vmnet.fix(dev, "users", euid=1000)
    assert ei.value.status == ExitStatus.ENVIRONMENT and "sudo" in ei.value.hint
    with pytest.raises(EnvironmentProblem, match="group 'no-such-group-x' does not exist"):
        vmnet.fix(dev, "no-such-group-x", euid=0)


def test_unit_text_matches_render_template():
    text = vmnet.unit_text("vmware")
    assert "udev rules do not fire" in text and "After=vmware.service vmware-networks.service" in text
    assert "-exec /bin/chgrp vmware {} + -exec /bin/chmod g+rw {} +" in text
    if not TEMPLATE.is_file():
        pytest.skip("render template not present")
    jinja2 = pytest.importorskip("jinja2")
    rendered = jinja2.Template(TEMPLATE.read_text(), keep_trailing_newline=True).render(group="vmware")
    assert rendered == text == vmnet.builtin_unit_text("vmware")


def test_unit_text_rejects_hostile_group():
    with pytest.raises(Exception, match="not a valid group"):
        vmnet.unit_text("vm; rm -rf /")


def test_persist_writes_unit_and_enables(tmp_path, fake_tools):
    environ, calls = fake_tools
    units = tmp_path / "systemd"
    p = vmnet.persist("vmware", unit_dir=units, environ=environ, euid=0)
    assert p.changed and (units / vmnet.UNIT_NAME).read_text() == vmnet.unit_text("vmware")
    assert [c[1:] for c in calls()] == [["daemon-reload"], ["enable", vmnet.UNIT_NAME]]
    assert vmnet.persist("vmware", unit_dir=units, environ=environ, euid=0).changed is False


# ---- CLI ----------------------------------------------------------------------------------------------------
def test_cli_check_text_and_json(run_cli, tmp_path):
    dev = make_dev(tmp_path)
    r = run_cli("vmnet", "check", "--dev-dir", str(dev), "--user", "nobody")
    assert r.status == ExitStatus.FINDINGS, r.err
    assert "nobody cannot open it read/write" in r.out
    assert "attempted to enable promiscuous mode on adapter 'Ethernet0'" in r.out
    assert "sudo labctl vmnet fix --group vmware --persist" in r.out
    assert "nobody's groups come from the group database" in r.out
    r = run_cli("vmnet", "check", "--dev-dir", str(dev), "--user", "nobody", "--json")
    doc = json.loads(r.out)
    assert r.status == 1 and doc["ok"] is False and doc["nodes"][0]["mode"] == "0600"


@pytest.mark.skipif(not ROOT, reason="chgrp needs root")
def test_cli_fix_then_check(run_cli, tmp_path, fake_tools):
    environ, calls = fake_tools
    dev = make_dev(tmp_path)
    r = run_cli(
        "vmnet",
        "fix",
        "--group",
        "nogroup",
        "--dev-dir",
        str(dev),
        "--persist",
        "--unit-dir",
        str(tmp_path / "units"),
        environ=environ,
    )
    assert r.status == 0, r.err
    assert "changed" in r.out and "installed" in r.out
    r = run_cli("vmnet", "fix", "--group", "nogroup", "--dev-dir", str(dev), "--json")
    assert r.status == 0 and json.loads(r.out)["changes"] == []
    r = run_cli("vmnet", "check", "--dev-dir", str(dev), "--user", "nobody")  # nobody's group is nogroup
    assert r.status == 0, r.out


def test_cli_help_says_udev_does_not_work(run_cli):
    r = run_cli("vmnet", "--help")
    assert r.status == 0 and "udev rules do NOT work" in r.out
    assert 'KERNEL=="vmnet*" never fire' in r.out


def test_membership_note():
    assert vmnet.membership_note("nogroup", Identity("alice", 1000, frozenset({1000}))).startswith(
        "alice is not in group nogroup: sudo usermod -aG nogroup alice"
    )
    assert vmnet.membership_note("nogroup", Identity("bob", 1001, frozenset({65534}))) is None
    assert vmnet.membership_note("nogroup", Identity("root", 0, frozenset({0}))) is None


@pytest.mark.skipif(not ROOT, reason="chgrp needs root")
def test_cli_fix_under_sudo_names_the_missing_membership(run_cli, tmp_path):
    dev = make_dev(tmp_path)
    r = run_cli("vmnet", "fix", "--group", "users", "--dev-dir", str(dev), environ={"SUDO_USER": "nobody"})
    assert r.status == 0 and "nobody is not in group users: sudo usermod -aG users nobody" in r.out
