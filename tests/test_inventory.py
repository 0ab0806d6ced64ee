"""`labctl inventory`: ansible YAML/INI and JSON for the example labs, --sim endpoints, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import yaml

from labctl.remote import inventory as inv_mod
from labctl.topology import load_topology
from tests.tools import need_tool

ROOT = Path(__file__).resolve().parent.parent
TOPOLOGIES = ROOT / "topologies"
GOLDEN = Path(__file__).parent / "render" / "data" / "inventory"
LABS = ["esx35-ha-pair", "esxi8-ha-trio", "esxi67-70-mixed"]
FORMATS = {"ansible": "yml", "ini": "ini", "json": "json"}


def _golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("LABCTL_UPDATE_GOLDENS"):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    assert path.is_file(), f"missing golden {path}; run with LABCTL_UPDATE_GOLDENS=1"
    assert text == path.read_text(encoding="utf-8"), f"{name} differs from its golden"


@pytest.mark.parametrize("lab", LABS)
@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_goldens_via_cli(run_cli, lab, fmt):
    r = run_cli("inventory", str(TOPOLOGIES / f"{lab}.yaml"), "--format", fmt)
    assert r.status == 0, r.err
    _golden(f"{lab}.{FORMATS[fmt]}", r.out)


def test_yaml_inventory_groups_and_host_vars(run_cli):
    r = run_cli("inventory", str(TOPOLOGIES / "esx35-ha-pair.yaml"))
    doc = yaml.safe_load(r.out)
    lab = doc["all"]["children"]["lab_esx35_ha_pair"]
    assert lab["vars"]["vcenter_host"] == "192.168.69.10"
    assert lab["vars"]["vcenter_password_env"] == "LAB_VC_PASSWORD"
    groups = lab["children"]
    assert list(groups) == ["esx", "cluster_HA", "vms"]
    esx2 = groups["esx"]["hosts"]["esx2"]
    assert (
        esx2["ansible_host"] == "192.168.69.12"
        and esx2["ansible_port"] == 22
        and esx2["ansible_user"] == "root"
    )
    assert esx2["ansible_password"] == "{{ lookup('env', 'LAB_ESX_PASSWORD') }}"
    assert esx2["esx_linked_clone_of"] == "esx1" and esx2["esx_vmkernel_ips"] == ["10.10.10.12"]
    assert set(groups["cluster_HA"]["hosts"]) == {"esx1", "esx2"}
    assert groups["vms"]["hosts"]["vcenter"]["ansible_host"] == "192.168.69.10"


def test_esxi_group_and_allocated_vmkernel_ip(run_cli):
    r = run_cli("inventory", str(TOPOLOGIES / "esxi8-ha-trio.yaml"), "--json")
    doc = json.loads(r.out)
    assert doc["groups"] == {
        "esxi": ["esxi-a", "esxi-b", "esxi-c"],
        "cluster_Trio": ["esxi-a", "esxi-b", "esxi-c"],
        "vms": ["vcsa"],
    }
    t = load_topology(TOPOLOGIES / "esxi8-ha-trio.yaml")
    c = next(h for h in doc["hosts"] if h["name"] == "esxi-c")
    assert c["esx_vmkernel_ips"] == [t.host("esxi-c").vmkernel[0].ip]
    assert c["groups"] == ["esxi", "cluster_Trio"] and c["password_env"] == "LAB_ESX_PASSWORD"
    assert doc["sim"] is False


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_no_secret_in_any_output(run_cli, fmt):
    secrets = {"LAB_ESX_PASSWORD": "s3cr3t-esx-pw", "LAB_VC_PASSWORD": "s3cr3t-vc-pw"}
    for lab in LABS:
        r = run_cli("inventory", str(TOPOLOGIES / f"{lab}.yaml"), "--format", fmt, environ=secrets)
        assert r.status == 0
        assert "s3cr3t" not in r.out and "s3cr3t" not in r.err


def _sim_dir(tmp_path: Path, hosts: dict) -> Path:
    d = tmp_path / "sim"
    d.mkdir()
    doc = {
        "lab": "esx35-ha-pair",
        "hosts": {
            name: {
                "address": addr,
                "host": "127.0.0.1",
                "port": port,
                "pid": 1,
                "flavor": "esx",
                "version": "3.5u5",
            }
            for name, (addr, port) in hosts.items()
        },
        "jump": None,
        "vcenter": None,
        "known_hosts": str(d / "known_hosts"),
        "identity_file": str(d / "id_ed25519"),
    }
    (d / "endpoints.json").write_text(json.dumps(doc))
    return d


def test_sim_maps_hosts_to_loopback_endpoints(run_cli, tmp_path):
    d = _sim_dir(tmp_path, {"esx1": ("192.168.69.11", 40123), "esx2": ("192.168.69.12", 40124)})
    r = run_cli("inventory", str(TOPOLOGIES / "esx35-ha-pair.yaml"), "--sim", "--sim-dir", str(d), "--json")
    assert r.status == 0, r.err
    doc = json.loads(r.out)
    assert doc["sim"] is True
    esx = {h["name"]: h for h in doc["hosts"]}
    assert (esx["esx1"]["address"], esx["esx1"]["port"]) == ("127.0.0.1", 40123)
    assert (esx["esx2"]["address"], esx["esx2"]["port"]) == ("127.0.0.1", 40124)
    assert esx["esx1"]["known_hosts"] == str(d / "known_hosts")
    assert esx["esx1"]["key_file"] == str(d / "id_ed25519")
    assert esx["esx1"]["esx_real_address"] == "192.168.69.11"
    assert esx["vcenter"]["address"] is None  # never a real lab address under --sim
    r = run_cli("inventory", str(TOPOLOGIES / "esx35-ha-pair.yaml"), "--sim", "--sim-dir", str(d))
    host = yaml.safe_load(r.out)["all"]["children"]["lab_esx35_ha_pair"]["children"]["esx"]["hosts"]["esx1"]
    assert host["ansible_host"] == "127.0.0.1" and host["ansible_port"] == 40123
    assert host["ansible_ssh_common_args"] == (
        f"-o UserKnownHostsFile={d / 'known_hosts'} -o StrictHostKeyChecking=yes"
        " -o HostKeyAlias=192.168.69.11"  # dialled at 127.0.0.1:40123, pinned under its lab address
        " -o KexAlgorithms=+diffie-hellman-group14-sha1 -o HostKeyAlgorithms=+ssh-rsa"
        " -o PubkeyAcceptedAlgorithms=+ssh-rsa"
    )


def test_sim_dir_from_environment(run_cli, tmp_path):
    d = _sim_dir(tmp_path, {"esx1": ("192.168.69.11", 40001), "esx2": ("192.168.69.12", 40002)})
    r = run_cli(
        "inventory",
        str(TOPOLOGIES / "esx35-ha-pair.yaml"),
        "--sim",
        "--json",
        environ={"LABCTL_SIM_DIR": str(d)},
    )
    assert r.status == 0, r.err
    assert {h["port"] for h in json.loads(r.out)["hosts"] if h["kind"] == "esx"} == {40001, 40002}


def test_sim_without_a_running_lab_is_a_clean_error(run_cli, tmp_path):
    r = run_cli(
        "inventory", str(TOPOLOGIES / "esx35-ha-pair.yaml"), "--sim", "--sim-dir", str(tmp_path / "none")
    )
    assert r.status == 6 and "no simulated lab" in r.err and "labctl sim up" in r.err


def test_sim_missing_host_is_a_clean_error(run_cli, tmp_path):
    d = _sim_dir(tmp_path, {"esx1": ("192.168.69.11", 40123)})
    r = run_cli("inventory", str(TOPOLOGIES / "esx35-ha-pair.yaml"), "--sim", "--sim-dir", str(d))
    assert r.status == 6 and "esx2 is not in the simulated lab's endpoints" in r.err


def test_output_file_is_written_atomically(run_cli, tmp_path):
    r = run_cli("inventory", str(TOPOLOGIES / "esx35-ha-pair.yaml"), "--format", "ini", "-o", "hosts.ini")
    assert r.status == 0 and "created" in r.err
    assert (tmp_path / "hosts.ini").read_text() == (GOLDEN / "esx35-ha-pair.ini").read_text()


def test_jump_and_key_file_reach_ansible():
    h = inv_mod.InventoryHost(
        "esx1", "esx", "192.168.69.11", 22, "root", None, "~/.ssh/lab", "ops@10.0.0.5:2222", None, {}
    )
    inv = inv_mod.build("x", [h], {"HA 1": ["esx1"]}, {})
    assert "cluster_HA_1" in inv.groups
    ini = inv_mod.to_ini(inv)
    assert "ansible_ssh_private_key_file=~/.ssh/lab" in ini
    assert "ansible_ssh_common_args='-o ProxyJump=ops@10.0.0.5:2222'" in ini
    assert inv_mod.group_name("9lives") == "_9lives"


@pytest.mark.parametrize("lab", LABS)
def test_ansible_reads_yaml_and_ini_identically(run_cli, tmp_path, lab):
    exe = need_tool("ansible-inventory")
    listed = []
    for fmt, ext in (("ansible", "yml"), ("ini", "ini")):
        path = tmp_path / f"hosts.{ext}"
        path.write_text(run_cli("inventory", str(TOPOLOGIES / f"{lab}.yaml"), "--format", fmt).out)
        proc = subprocess.run(
            [exe, "-i", str(path), "--list"],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "ANSIBLE_LOCAL_TEMP": str(tmp_path), "ANSIBLE_HOME": str(tmp_path)},
        )
        assert proc.returncode == 0, proc.stderr
        listed.append(json.loads(proc.stdout))
    assert listed[0] == listed[1]
    t = load_topology(TOPOLOGIES / f"{lab}.yaml")
    hostvars = listed[0]["_meta"]["hostvars"]
    for h in t.esx_hosts:
        assert hostvars[h.name]["ansible_host"] == h.address


@pytest.mark.parametrize(
    "flavor, version, legacy",
    [("esx", "3.5u5", True), ("esx", "4.1", True), ("esxi", "4.1u3", True), ("esxi", "5.0", False),
     ("esxi", "8.0u3", False), ("esx", "9.0", False)],
)
def test_legacy_openssh_options_per_release(flavor, version, legacy):
    from labctl.remote.hosts import LEGACY_OPENSSH_OPTIONS, openssh_options

    assert openssh_options(flavor, version) == (LEGACY_OPENSSH_OPTIONS if legacy else ())
