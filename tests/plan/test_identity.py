"""Clone identity in the pipeline (`up --sim`): every linked clone ends with its own hostname, addresses, SSH host
key (pinned under its lab address, checked by OpenSSH's own client), certificate and /system/uuid; `macs scan` is
clean; a second `up` changes nothing; `plan` says what the identity stage would do.

guestinfo path: the ESXi 8 trio (the boot script its kickstart installed). SSH path: the ESX 3.5 pair."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from labctl.sim import state as S
from labctl.sim.endpoints import load_endpoints
from tests.plan.test_pipeline import TOPOLOGIES, _json, sim  # noqa: F401 - the sim fixture

PASSWORD = "Lab-Secret-5c1d"


def _state(d, name):
    return S.load_state(d / "hosts" / name)


def _pinned(d, address):
    return sorted(tuple(ln.split()[1:3]) for ln in (d / "known_hosts").read_text().splitlines()
                  if ln.split() and ln.split()[0] == address)


def _openssh(d, name, address):
    """OpenSSH, strict: only the sim dir's known_hosts (the key pinned under the lab address: HostKeyAlias)."""
    e = load_endpoints(d).hosts[name]
    return subprocess.run(
        ["ssh", "-F", "/dev/null", "-i", str(d / "id_rsa"), "-o", f"UserKnownHostsFile={d / 'known_hosts'}",
         "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
         "-o", f"HostKeyAlias={address}", "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
         "-o", "ConnectTimeout=10", "-o", "HostKeyAlgorithms=+ssh-rsa", "-o", "PubkeyAcceptedAlgorithms=+ssh-rsa",
         "-o", "KexAlgorithms=+diffie-hellman-group1-sha1,diffie-hellman-group14-sha1",
         "-p", str(e.port), "root@127.0.0.1", "hostname"],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)


def _check_lab(d, topo_name, hosts):
    d_ = d
    """Every host: its own hostname and address, its disk's RSA key and only that pinned, distinct keys/UUIDs."""
    from cryptography import x509

    keys, uuids, certs = set(), set(), set()
    for name, address in hosts:
        st = _state(d, name)
        assert st.hostname == name
        cert = x509.load_pem_x509_certificate(st.files["/etc/vmware/ssl/rui.crt"].encode())
        assert f"CN={name}." in cert.subject.rfc4514_string(), (name, cert.subject)  # its own, not its source's
        certs.add(cert.fingerprint(cert.signature_hash_algorithm))
        mgmt = st.interface(st.management_name)
        assert mgmt.ip == address
        pub = st.files["/etc/ssh/ssh_host_rsa_key.pub"].split()[:2]
        pinned = _pinned(d, address)
        assert tuple(pub) in pinned, (name, pinned)
        keys.add(pub[1])
        uuids.add(st.system_uuid)
        if shutil.which("ssh"):
            r = _openssh(d, name, address)
            assert r.returncode == 0 and r.stdout.strip().split(".")[0] == name, r.stderr
    assert len(keys) == len(hosts) and len(uuids) == len(hosts) and len(certs) == len(hosts)
    if topo_name == "esxi8-ha-trio":  # the clone source was installed --novmfsondisk: no datastore1 to duplicate
        assert not any(d.startswith("/vmfs/volumes/datastore1") for n, _ in hosts for d in _state(d_, n).dirs)


@pytest.mark.parametrize("topo_name,hosts", [
    ("esxi8-ha-trio", [("esxi-a", "172.20.30.11"), ("esxi-b", "172.20.30.12"), ("esxi-c", "172.20.30.13")]),
    ("esx35-ha-pair", [("esx1", "192.168.69.11"), ("esx2", "192.168.69.12")]),
])
def test_clones_take_their_own_identity_and_a_second_up_changes_nothing(sim, run_cli, topo_name, hosts):  # noqa: F811
    d, environ = sim
    environ = {**environ, "LAB_ESX_PASSWORD": PASSWORD}
    topo = str(TOPOLOGIES / f"{topo_name}.yaml")
    plan = _json(run_cli("plan", topo, "--sim", "--json", environ=environ))
    planned = [c for s in plan["stages"] if s["name"] == "identity" for c in s["changes"]]
    assert {c["target"] for c in planned} == {n for n, _ in hosts[1:]}
    r = run_cli("up", topo, "--sim", "--skip", "vcenter", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    stage = next(s for s in rep["stages"] if s["name"] == "identity")
    assert {c["target"] for c in stage["changes"]} == {n for n, _ in hosts[1:]}, stage
    _check_lab(d, topo_name, hosts)
    scan = run_cli("macs", "scan", topo, "--sim", "--json", environ=environ)
    assert scan.status == 0 and json.loads(scan.out)["duplicates"] == [], scan.out
    again = _json(run_cli("up", topo, "--sim", "--skip", "vcenter", "--json", environ=environ))
    assert again["changes"] == [] and again["failures"] == [], again
    _check_lab(d, topo_name, hosts)
