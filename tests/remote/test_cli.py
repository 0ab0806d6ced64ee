"""CLI surface of `labctl macs` and `labctl prep-template` (help, usage errors, text output, prep-template)."""

from __future__ import annotations

import json

from tests.remote.conftest import SEED, TRIO


def test_help_teaches_exit_statuses_and_examples(run_cli):
    r = run_cli("macs", "fix", "--help")
    assert r.status == 0
    for text in ("--dry-run", "--strategy", "recreate-vmk", "exit statuses", "commit confirmed", "--trust-new-hosts"):
        assert text in r.out
    r = run_cli("prep-template", "--help")
    assert r.status == 0 and "FollowHardwareMac" in r.out and "--lab" in r.out


def test_usage_errors(run_cli, tmp_path):
    assert run_cli("macs", "scan", str(SEED), "--sim-dir", str(tmp_path)).status == 2  # --sim-dir needs --sim
    r = run_cli("macs", "scan", str(SEED), "--host", "esx9", "--sim", "--sim-dir", str(tmp_path))
    assert r.status == 2 and "unknown host(s): esx9" in r.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("lab: x\nesx_hosts: 3\n")
    assert run_cli("macs", "scan", str(bad)).status == 2
    r = run_cli("macs", "scan", str(SEED), "--sim", "--sim-dir", str(tmp_path / "none"))
    assert r.status == 6 and "labctl sim up" in r.err  # no simulated lab there: a missing prerequisite


def test_text_scan_and_host_selection(sim_lab):
    lab = sim_lab(SEED)
    r = lab.macs("scan")
    assert r.status == 1
    assert "esx2  vswif0     vswif" in r.out and "duplicate of esx1/vswif0 (will change)" in r.out
    assert "DUPLICATE /system/uuid" in r.out
    one = lab.macs("scan", "--host", "esx1", "--json")
    assert one.status == 0 and [h["name"] for h in json.loads(one.out)["hosts"]] == ["esx1"]


def test_prep_template_on_the_golden_esxi_host(sim_lab):
    lab = sim_lab(TRIO)
    base = ("prep-template", "esxi-a", "--lab", str(TRIO), "--sim", "--sim-dir", str(lab.sim_dir))
    dry = lab.labctl(*base, "--dry-run")
    assert dry.status == 0
    assert dry.out.splitlines() == [
        "esxi-a$ esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1",
        "esxi-a$ sed -i '/^\\/system\\/uuid/d' /etc/vmware/esx.conf",
        "esxi-a$ /sbin/auto-backup.sh",
    ]
    r = lab.labctl(*base, "--json")
    assert r.status == 0, r.err
    out = json.loads(r.out)
    assert out["prepared"] and out["follow_hardware_mac"] == 1 and out["esx_conf_uuid"] is None
    again = lab.labctl(*base)
    assert again.status == 0 and "ready to clone" in again.out


def test_prep_template_refuses_esx_classic(sim_lab):
    lab = sim_lab(SEED)
    r = lab.labctl("prep-template", "esx1", "--lab", str(SEED), "--sim", "--sim-dir", str(lab.sim_dir))
    assert r.status == 2 and "ESX classic" in r.err and "labctl macs fix" in r.err


def test_unreachable_host_exit_4_others_still_scanned_and_fixed(sim_lab):
    lab = sim_lab(TRIO)
    lab.fault("esxi-c", "--down")
    import socket
    import time

    port = lab.endpoints().hosts["esxi-c"].port
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the simulator applies a fault when it re-reads its control file
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            time.sleep(0.05)
        except OSError:
            break
    r = lab.macs("scan", "--json")
    assert r.status == 4
    out = json.loads(r.out)
    assert [h["name"] for h in out["hosts"]] == ["esxi-a", "esxi-b"]
    (u,) = out["unreachable"]
    assert u["name"] == "esxi-c" and "cannot connect" in u["error"] and u["hint"]
    fix = lab.macs("fix", "--confirm-within", "3")
    assert fix.status == 4 and "esxi-c" in fix.err
    lab.fault("esxi-c", "--clear")
    assert lab.macs("fix", "--confirm-within", "3").status == 0
    assert lab.scan_json()["duplicates"] == []
