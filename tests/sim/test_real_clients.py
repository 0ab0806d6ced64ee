"""The real OpenSSH client and real Ansible against simulated ESX 3.5 hosts on loopback.

ESX 3.5/4.x speak only SHA-1 key exchange, ssh-rsa host keys and ssh-rsa signatures, which OpenSSH 8.8+ turns off.
The `ssh` line that `labctl sim up` prints and the inventory `labctl inventory --sim` writes must carry the options
that turn them back on; without them the same client fails exactly as it fails against a real ESX 3.5 host.
"""

from __future__ import annotations

import os
import shlex
import subprocess

import pytest
import yaml

from labctl.sim import lab
from labctl.sim.endpoints import load_endpoints
from tests.tools import need_tool

SSH = "/usr/bin/ssh"
LEGACY = ("KexAlgorithms=+diffie-hellman-group14-sha1", "HostKeyAlgorithms=+ssh-rsa",
          "PubkeyAcceptedAlgorithms=+ssh-rsa")


_need = need_tool


@pytest.fixture
def lab35(tmp_path, run_cli):
    """`labctl sim up` of an ESX 3.5 pair plus one ESXi 6.7 host; stopped by PID at the end, also on failure."""
    topo = tmp_path / "lab.yaml"
    topo.write_text(f"""\
lab: real-clients
workstation: {{version: "15.5", vm_dir: {tmp_path / "vms"}}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24}}
esx_hosts:
  - {{name: esx1, flavor: esx, version: "3.5u5", cpus: 2, memory_mb: 2048, disk_gb: 16, nics: [lan],
     management: {{network: lan, ip: 192.168.69.11}}}}
  - {{name: esx2, linked_clone_of: esx1, management: {{network: lan, ip: 192.168.69.12}}}}
  - {{name: esxi67, flavor: esxi, version: "6.7u3", cpus: 2, memory_mb: 4096, disk_gb: 16, nics: [lan],
     management: {{network: lan, ip: 192.168.69.21}}}}
ssh: {{user: root, password_env: LAB_ESX_PASSWORD}}
""")
    d = tmp_path / "sim"
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path), "LAB_ESX_PASSWORD": "esx-Pass-1"}
    r = run_cli("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", environ=environ)
    try:
        assert r.status == 0, r.err
        yield topo, d, r.out
    finally:
        lab.down(d)


def _ssh(argv: list[str], command: str) -> subprocess.CompletedProcess:
    # -F /dev/null: the user's ~/.ssh/config must not decide the outcome; BatchMode: never prompt
    return subprocess.run([SSH, "-F", "/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10", *argv[1:],
                           command], capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for a in argv:
        if a in options and out and out[-1] == "-o":
            out.pop()
            continue
        out.append(a)
    return out


def test_the_printed_ssh_line_works_with_openssh_and_fails_without_the_legacy_options(lab35):
    _need(SSH)
    _, d, printed = lab35
    line = next(ln for ln in printed.splitlines() if ln.startswith("by hand: "))
    argv = shlex.split(line.removeprefix("by hand: "))
    assert argv[0] == "ssh" and all(f"-o {o}" in line for o in LEGACY)
    assert "-o HostKeyAlias=192.168.69.11" in line  # dialled at a loopback port, pinned under its lab address
    assert load_endpoints(d).hosts["esx1"].port == int(argv[argv.index("-p") + 1])

    ok = _ssh(argv, "vmware -v")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("VMware ESX Server 3.5.0 build-")

    # what a real ESX 3.5 host answers a current client, one refusal after the other
    bare = _ssh(_without(argv, LEGACY), "vmware -v")
    assert bare.returncode == 255 and "no matching key exchange method found" in bare.stderr
    assert "kex-strict" not in bare.stderr  # OpenSSH 3.x/4.x never offered the strict-kex extension
    kex_only = _ssh(_without(argv, LEGACY[1:]), "vmware -v")
    assert kex_only.returncode == 255 and "no matching host key type found" in kex_only.stderr
    no_pubkey = _ssh(_without(argv, LEGACY[2:]), "vmware -v")
    assert no_pubkey.returncode == 255 and "Permission denied (publickey,password)" in no_pubkey.stderr


def _identification(port: int) -> str:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.makefile("rb").readline().decode().rstrip("\r\n")


def test_each_host_sends_its_real_sshd_identification_and_openssh_accepts_it(lab35):
    _need(SSH)
    _, d, _ = lab35
    emap = load_endpoints(d)
    assert _identification(emap.hosts["esx1"].port) == "SSH-2.0-OpenSSH_3.6.1p2"  # ESX 3.5: RHEL 3's OpenSSH
    assert _identification(emap.hosts["esxi67"].port) == "SSH-2.0-OpenSSH_8.3"  # captured on an ESXi 6.7 U3 host
    # the real client reads it and applies its compatibility rules for that server version
    done = subprocess.run([SSH, "-F", "/dev/null", "-v", "-o", "BatchMode=yes", "-o",
                           f"UserKnownHostsFile={emap.known_hosts}", "-o", "HostKeyAlias=192.168.69.11",
                           "-i", str(emap.identity_file),
                           *[a for o in LEGACY for a in ("-o", o)], "-p", str(emap.hosts["esx1"].port),
                           "root@127.0.0.1", "true"], capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    assert "Remote protocol version 2.0, remote software version OpenSSH_3.6.1p2" in done.stderr


def test_inventory_options_only_where_needed_and_plain_openssh_for_esxi67(lab35, run_cli):
    _need(SSH)
    topo, d, _ = lab35
    r = run_cli("inventory", str(topo), "--sim", "--sim-dir", str(d))
    groups = yaml.safe_load(r.out)["all"]["children"]["lab_real_clients"]["children"]
    esx1, esxi67 = groups["esx"]["hosts"]["esx1"], groups["esxi"]["hosts"]["esxi67"]
    assert all(f"-o {o}" in esx1["ansible_ssh_common_args"] for o in LEGACY)
    assert "Algorithms" not in esxi67["ansible_ssh_common_args"]
    # an ESXi 6.7 host needs nothing extra from a current client
    argv = ["ssh", *shlex.split(esxi67["ansible_ssh_common_args"]), "-i", esxi67["ansible_ssh_private_key_file"],
            "-p", str(esxi67["ansible_port"]), f"root@{esxi67['ansible_host']}"]
    done = _ssh(argv, "vmware -v")
    assert done.returncode == 0 and done.stdout.startswith("VMware ESXi 6.7.0"), done.stderr


def _ansible(inventory, tmp_path, *extra: str) -> subprocess.CompletedProcess:
    exe = _need("ansible")
    cfg = tmp_path / "ansible.cfg"  # an empty config: no user or system ansible.cfg decides the outcome
    cfg.write_text("[defaults]\n")
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(tmp_path),
        "ANSIBLE_CONFIG": str(cfg),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        # no ControlPersist master left running after the test; the inventory's own arguments still apply
        "ANSIBLE_SSH_ARGS": "-o ControlMaster=no -o ControlPersist=no",
        "ANSIBLE_SSH_EXECUTABLE": SSH,
        "ANSIBLE_TIMEOUT": "20",
        "ANSIBLE_NOCOLOR": "1",
    }
    return subprocess.run([exe, "-i", str(inventory), "esx", "-m", "raw", "-a", "vmware -v", "-f", "2", *extra],
                          capture_output=True, text=True, timeout=240, env=env, stdin=subprocess.DEVNULL)


def test_ansible_raw_reaches_esx35_through_the_inventory_and_not_without_its_options(lab35, run_cli, tmp_path):
    _need(SSH)
    topo, d, _ = lab35
    inventory = tmp_path / "hosts.yml"
    r = run_cli("inventory", str(topo), "--sim", "--sim-dir", str(d), "-o", str(inventory))
    assert r.status == 0, r.err

    done = _ansible(inventory, tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("VMware ESX Server 3.5.0 build-") == 2  # esx1 and its linked clone esx2
    assert "esx1 | CHANGED | rc=0" in done.stdout and "esx2 | CHANGED | rc=0" in done.stdout

    # the same inventory with the legacy options taken out: both hosts unreachable, as real ESX 3.5 hosts would be
    hosts = yaml.safe_load(inventory.read_text())["all"]["children"]["lab_real_clients"]["children"]["esx"]["hosts"]
    common = hosts["esx1"]["ansible_ssh_common_args"]
    for o in LEGACY:
        common = common.replace(f" -o {o}", "")
    refused = _ansible(inventory, tmp_path, "-e", f"ansible_ssh_common_args='{common}'")
    assert refused.returncode == 4, refused.stdout + refused.stderr  # 4: hosts unreachable
    assert refused.stdout.count("UNREACHABLE!") == 2
    assert "no matching key exchange method found" in refused.stdout


def test_openssh_through_the_jump_host_with_the_legacy_options_on_the_last_hop_only(tmp_path, run_cli):
    """A lab behind `ssh.jump`: ProxyJump starts a second ssh for the jump host, which does not get the `-o`
    options, so the jump host (a current OpenSSH on Linux) must need none, while the ESX 3.5 hop needs them all."""
    _need(SSH)
    topo = tmp_path / "lab.yaml"
    topo.write_text(f"""\
lab: real-clients-jump
workstation: {{version: "7.1", vm_dir: {tmp_path / "vms"}}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24}}
esx_hosts:
  - {{name: esx1, flavor: esx, version: "3.5u5", cpus: 2, memory_mb: 2048, disk_gb: 16, nics: [lan],
     management: {{network: lan, ip: 192.168.69.11}}}}
ssh: {{user: root, jump: "labuser@192.168.69.5"}}
""")
    d = tmp_path / "sim"
    environ = {"PATH": os.environ.get("PATH", ""), "HOME": str(tmp_path)}
    r = run_cli("sim", "up", str(topo), "--sim-dir", str(d), "--no-vcenter", environ=environ)
    try:
        assert r.status == 0, r.err
        emap = load_endpoints(d)
        jport, port = emap.jump.port, emap.hosts["esx1"].port
        cfg = tmp_path / "ssh_config"  # the jump is reached on loopback; the ESX host by its lab address, through it
        cfg.write_text(f"Host jump\n  HostName 127.0.0.1\n  Port {jport}\n  User labuser\n"
                       "  HostKeyAlias 192.168.69.5\n"
                       f"Host *\n  IdentityFile {emap.identity_file}\n  UserKnownHostsFile {emap.known_hosts}\n"
                       "  StrictHostKeyChecking yes\n  BatchMode yes\n  IdentitiesOnly yes\n")
        # keys are pinned under the lab addresses: the ESX host, dialled by its address through the jump host,
        # needs no alias at all (as in a real lab); the jump host, dialled at its loopback port, gets one above
        assert port > 0
        base = [SSH, "-F", str(cfg), "-J", "jump", "root@192.168.69.11"]
        run = lambda argv: subprocess.run(argv, capture_output=True, text=True, timeout=60,  # noqa: E731
                                          stdin=subprocess.DEVNULL)
        direct = run([SSH, "-F", str(cfg), "jump", "true"])
        assert direct.returncode == 0, direct.stderr  # no legacy options needed for the jump host
        legacy = [a for o in LEGACY for a in ("-o", o)]
        done = run(base[:1] + legacy + base[1:] + ["vmware -v"])
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith("VMware ESX Server 3.5.0 build-")
        refused = run(base + ["vmware -v"])
        assert refused.returncode == 255 and "no matching key exchange method found" in refused.stderr
    finally:
        lab.down(d)
