"""`labctl macs scan|fix` end to end over real SSH on loopback against simulated labs.

Each lab is cloned by the simulator the way Workstation linked clones are (same disk, new vNIC MACs), scanned
(duplicates found), fixed, re-scanned (none left) and fixed again (no changes).
"""

from __future__ import annotations

import json

import pytest

from tests.remote.conftest import PAIR55, SEED, TRIO, job_script

CONFIRM = "3"  # seconds the detached jobs wait for labctl's confirmation (real default: 60)


def _dups(scan: dict) -> list[tuple[str, str]]:
    return sorted((d["kind"], d["value"]) for d in scan["duplicates"])


@pytest.mark.parametrize("topology,expect_changed", [
    (SEED, {"esx2": {"vswif0", "vmk0"}}),
    (PAIR55, {"esxi55b": {"vmk0"}}),
    (TRIO, {"esxi-b": {"vmk0", "vmk1"}, "esxi-c": {"vmk0", "vmk1"}}),
], ids=["esx35-pair", "esxi55-pair", "esxi8-trio"])
def test_clone_scan_fix_rescan_fix_again(sim_lab, topology, expect_changed):
    lab = sim_lab(topology)
    hosts = [h for h in lab.endpoints().hosts]
    before_conns = {h: lab.counters(h)["connections"] for h in hosts}

    r = lab.macs("scan", "--json")
    assert r.status == 1, r.err
    scan = json.loads(r.out)
    # one SSH connection per host for the whole command
    assert {h: lab.counters(h)["connections"] - before_conns[h] for h in hosts} == {h: 1 for h in hosts}
    assert [h["name"] for h in scan["hosts"]] == hosts
    for h in scan["hosts"]:
        assert h["uuid"] and h["interfaces"] and all(i["name"] and i["mac"] for i in h["interfaces"])
    kinds = {d["kind"] for d in scan["duplicates"]}
    assert kinds == {"mac", "uuid"}
    to_change = {}
    for d in scan["duplicates"]:
        for holder in d["change"]:
            host, _, iface = holder.partition("/")
            if d["kind"] == "mac":
                to_change.setdefault(host, set()).add(iface)
    assert to_change == expect_changed
    old = {h["name"]: {i["name"]: i["mac"] for i in h["interfaces"]} for h in scan["hosts"]}

    dry = lab.macs("fix", "--dry-run")
    assert dry.status == 0, dry.err
    assert "would change" in dry.out and "$ " in dry.out
    assert _dups(lab.scan_json()) == _dups(scan)  # --dry-run changed nothing

    fix = lab.macs("fix", "--confirm-within", CONFIRM, "--json")
    assert fix.status == 0, fix.err + fix.out
    report = json.loads(fix.out)
    assert report["outcomes"] and all(o["status"] == "applied" for o in report["outcomes"])
    assert report["remaining_duplicates"] == []

    again = lab.macs("scan", "--json")
    assert again.status == 0, again.err
    after = json.loads(again.out)
    assert after["duplicates"] == []
    new = {h["name"]: {i["name"]: i["mac"] for i in h["interfaces"]} for h in after["hosts"]}
    first = hosts[0]
    assert new[first] == old[first]  # the first holder keeps its MACs
    for host, ifaces in expect_changed.items():
        for iface in ifaces:
            assert new[host][iface] != old[host][iface]
    assert len({h["uuid"] for h in after["hosts"]}) == len(hosts)

    second = lab.macs("fix", "--confirm-within", CONFIRM)
    assert second.status == 0, second.err
    assert "no changes" in second.out
    text = lab.macs("scan")
    assert text.status == 0 and "no duplicates" in text.out


def test_esxi_recreate_vmk_strategy_without_reboot(sim_lab):
    lab = sim_lab(PAIR55)
    boots = lab.counters("esxi55b")["boot_count"]
    fix = lab.macs("fix", "--strategy", "recreate-vmk", "--confirm-within", CONFIRM, "--json")
    assert fix.status == 0, fix.err + fix.out
    report = json.loads(fix.out)
    kinds = [c["kind"] for c in report["changes"]]
    assert kinds == ["mac", "reboot"]  # vmk0 re-created with -M; the duplicate uuid still needs a boot
    mac_change = report["changes"][0]
    script = job_script(mac_change["commands"][0])
    assert "esxcli network ip interface add -i vmk0 -p 'Management Network' -M 00:50:56:" in script
    assert lab.counters("esxi55b")["boot_count"] == boots + 1
    scan = lab.scan_json()
    assert scan["duplicates"] == []
    vmk0 = next(i for h in scan["hosts"] if h["name"] == "esxi55b" for i in h["interfaces"] if i["name"] == "vmk0")
    assert int(vmk0["mac"].split(":")[3], 16) <= 0x3F  # VMware's static range
    assert lab.macs("fix", "--strategy", "recreate-vmk").out.startswith("no changes")


def test_unconfirmed_change_is_rolled_back_by_the_host_itself(sim_lab):
    """labctl's confirmation never reaches the host: the detached job restores vswif0 at its deadline."""
    lab = sim_lab(SEED)
    old = lab.scan_json()
    lab.fault("esx2", "--drop", "^mkdir /tmp/labctl-mac-", "--phase", "before")
    fix = lab.macs("fix", "--confirm-within", "2", "--json")
    assert fix.status == 3, fix.err + fix.out
    outcomes = json.loads(fix.out)["outcomes"]
    assert [o["status"] for o in outcomes] == ["rolled-back"]
    assert "restored vswif0" in outcomes[0]["detail"]
    lab.fault("esx2", "--clear")
    now = lab.scan_json()
    assert now["hosts"] == old["hosts"]  # untouched: the reboot change was not attempted after the rollback
    assert lab.macs("fix", "--confirm-within", CONFIRM).status == 0
    assert lab.scan_json()["duplicates"] == []


def test_connections_dropped_during_the_fix_leave_hosts_fixed_or_untouched_and_a_rerun_converges(sim_lab):
    lab = sim_lab(TRIO)
    # esxi-b: the reply to the job that re-creates vmk1 is lost (the job ran): still verified and applied
    lab.fault("esxi-b", "--drop", "esxcli network ip interface add", "--phase", "after", "--times", "1")
    # esxi-c: the connection drops before auto-backup.sh runs: nothing of the reboot change takes effect
    lab.fault("esxi-c", "--drop", "^/sbin/auto-backup.sh$", "--phase", "before", "--times", "1")
    before = {h["name"]: h for h in lab.scan_json()["hosts"]}
    fix = lab.macs("fix", "--confirm-within", CONFIRM, "--json")
    report = json.loads(fix.out)
    assert fix.status in (3, 4), fix.err
    by = {(o["host"], o["description"].split(":")[1].split()[0]): o for o in report["outcomes"]}
    assert by[("esxi-b", "vmk1")]["status"] == "applied"
    assert by[("esxi-b", "vmk0")]["status"] == "applied"
    assert by[("esxi-c", "vmk1")]["status"] == "applied"
    failed = by[("esxi-c", "vmk0")]
    assert failed["status"] == "failed" and "dropped" in failed["detail"]
    after = {h["name"]: h for h in lab.scan_json()["hosts"]}
    c_vmk0 = lambda h: next(i["mac"] for i in h["interfaces"] if i["name"] == "vmk0")  # noqa: E731
    assert c_vmk0(after["esxi-c"]) == c_vmk0(before["esxi-c"])  # untouched
    assert after["esxi-c"]["uuid"] == before["esxi-c"]["uuid"]
    boots_c = lab.counters("esxi-c")["boot_count"]
    rerun = lab.macs("fix", "--confirm-within", CONFIRM)
    assert rerun.status == 0, rerun.err + rerun.out
    assert lab.scan_json()["duplicates"] == []
    assert lab.counters("esxi-c")["boot_count"] == boots_c + 1  # the re-run rebooted it once
    assert lab.macs("fix").out.startswith("no changes")


def test_job_that_never_started_is_reported_and_the_host_left_untouched(sim_lab):
    lab = sim_lab(SEED)
    old = lab.scan_json()
    lab.fault("esx2", "--drop", "nohup sh -c .*ifdown vswif0", "--phase", "before", "--times", "1")
    fix = lab.macs("fix", "--confirm-within", "1", "--json")
    assert fix.status == 3, fix.err + fix.out
    (outcome,) = json.loads(fix.out)["outcomes"]
    assert outcome["status"] == "failed" and "never started" in outcome["detail"]
    assert lab.scan_json()["hosts"] == old["hosts"]
    rerun = lab.macs("fix", "--confirm-within", CONFIRM)
    assert rerun.status == 0, rerun.err + rerun.out
    assert lab.scan_json()["duplicates"] == []


def _tmp_files(lab, host: str) -> list[str]:
    r = lab.labctl("sim", "exec", "--sim-dir", str(lab.sim_dir), str(lab.topology), host, "ls /tmp")
    assert r.status == 0, r.err
    return sorted(r.out.split())


def test_esx_classic_job_files_are_removed_before_the_reboot_that_follows(sim_lab):
    """ESX classic keeps /tmp across reboots: the confirmed vswif0 job's log, .decided marker and backups must not
    be left there by the reboot change that follows it (issue 13)."""
    lab = sim_lab(SEED)
    boots = lab.counters("esx2")["boot_count"]
    fix = lab.macs("fix", "--confirm-within", "30", "--json")
    assert fix.status == 0, fix.err + fix.out
    assert [c["kind"] for c in json.loads(fix.out)["changes"]] == ["mac", "reboot"]
    assert lab.counters("esx2")["boot_count"] == boots + 1
    assert [f for f in _tmp_files(lab, "esx2") if f.startswith("labctl-mac-")] == []


def test_rolled_back_job_leaves_no_files_either(sim_lab):
    lab = sim_lab(SEED)
    lab.fault("esx2", "--drop", "^mkdir /tmp/labctl-mac-", "--phase", "before")
    fix = lab.macs("fix", "--confirm-within", "2", "--json")
    assert [o["status"] for o in json.loads(fix.out)["outcomes"]] == ["rolled-back"]
    lab.fault("esx2", "--clear")
    assert [f for f in _tmp_files(lab, "esx2") if f.startswith("labctl-mac-")] == []


def test_a_reboot_whose_reply_was_lost_is_reported_by_what_the_read_back_shows(sim_lab):
    """The reboot is scheduled, then the connection drops before its reply: the host reboots and is fixed, and
    the outcome says so (it used to say "dropped before the reboot was scheduled")."""
    lab = sim_lab(SEED)
    boots = lab.counters("esx2")["boot_count"]
    lab.fault("esx2", "--drop", "labctl-reboot", "--phase", "after", "--times", "1")
    fix = lab.macs("fix", "--confirm-within", CONFIRM, "--json")
    assert fix.status == 0, fix.err + fix.out
    outcomes = json.loads(fix.out)["outcomes"]
    assert [o["status"] for o in outcomes] == ["applied", "applied"]
    assert "reply to the reboot command was lost" in outcomes[1]["detail"]
    assert lab.counters("esx2")["boot_count"] == boots + 1
    assert lab.scan_json()["duplicates"] == []


def test_a_reboot_command_that_never_arrived_is_reported_as_not_applied_after_reading_back(sim_lab):
    lab = sim_lab(SEED)
    boots = lab.counters("esx2")["boot_count"]
    lab.fault("esx2", "--drop", "labctl-reboot", "--phase", "before", "--times", "1")
    fix = lab.macs("fix", "--confirm-within", CONFIRM, "--back-within", "4", "--json")
    assert fix.status == 3, fix.err + fix.out
    outcomes = json.loads(fix.out)["outcomes"]
    assert [o["status"] for o in outcomes] == ["applied", "failed"]
    assert "still shows" in outcomes[1]["detail"] and "may not have rebooted" in outcomes[1]["detail"]
    assert lab.counters("esx2")["boot_count"] == boots
