"""The install pipeline: blank disks -> install media -> the simulated installer reads the kickstart -> SSH with
the host key labctl made -> the clone source prepared -> linked clones; refusals before anything runs (ISO
missing, no installer, another version; neither password nor key); `kickstart: none`; no plaintext password
anywhere; the host key held to OpenSSH's ssh-keygen."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.plan.test_pipeline import TOPOLOGIES, _json, _real_trio, sim  # noqa: F401 - the sim fixture

PASSWORD = "Lab-Secret-0f9a7c"  # what must never appear in any file


def _files_containing(root: Path, needle: bytes) -> list[str]:
    hits = []
    for p in root.rglob("*"):
        if p.is_file() and not p.is_symlink() and _contains(p, needle):
            hits.append(str(p))
    return hits


def _contains(path: Path, needle: bytes) -> bool:
    """Whether `needle` is in the file, read in blocks over its data only (a VM's disk is a large sparse file:
    its holes read as zeros and hold nothing)."""
    with open(path, "rb") as f:
        fd, size, pos = f.fileno(), os.fstat(f.fileno()).st_size, 0
        while pos < size:
            try:
                pos = os.lseek(fd, pos, os.SEEK_DATA)
                end = os.lseek(fd, pos, os.SEEK_HOLE)
            except OSError as e:
                if e.errno == errno.ENXIO:  # only a hole after pos
                    return False
                end = size  # no SEEK_DATA on this file system: read it all
            f.seek(pos)
            tail = b""
            while f.tell() < end and (block := f.read(min(1 << 20, end - f.tell()))):
                if needle in tail + block:
                    return True
                tail = block[-len(needle):]
            pos = end
    return False


def test_up_sim_installs_through_the_kickstart_pins_the_key_and_writes_no_password(sim, run_cli):  # noqa: F811
    d, environ = sim
    environ = {**environ, "LAB_ESX_PASSWORD": PASSWORD}
    topo = str(TOPOLOGIES / "esx35-ha-pair.yaml")
    r = run_cli("up", topo, "--sim", "--skip", "vcenter", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    stages = {s["name"]: s for s in rep["stages"]}
    notes = " ".join(stages["vms"]["notes"])
    assert "synthetic ESX 3.5u5 installer" in notes and str(d / "isos" / "esx-3.5.0-update5.iso") in notes
    assert "random" not in notes  # the password came from LAB_ESX_PASSWORD
    state = d / "vms" / ".labctl"
    # the media: patched installer in the cache, the KS CD and the host key, all 0600
    (patched,) = (state / "isos").glob("esx-3.5.0-update5.ks-*.iso")
    for p in (patched, state / "install" / "esx1" / "ks.iso", state / "install" / "esx1" / "ssh_host_rsa_key",
              state / "install" / "esx1" / "ssh_host_rsa_key.pub"):
        assert p.stat().st_mode & 0o777 == 0o600, p
    # the installer read the kickstart from CD 2 (the simulated Workstation's vmware.log of the VM)
    log = (d / "logs" / "esx1.vmware.log").read_text()
    assert "Installation complete" in log
    # the host answers with the key labctl made, pinned under its lab address before the first connection
    pub = (state / "install" / "esx1" / "ssh_host_rsa_key.pub").read_text().split()
    known = (d / "known_hosts").read_text().splitlines()
    assert f"192.168.69.11 {pub[0]} {pub[1]}" in known
    # prepared: the clone source's CDs are disconnected; the clone came after
    vmx = (d / "vms" / "esx1" / "esx1.vmx").read_text()
    assert 'ide1:0.startConnected = "FALSE"' in vmx and 'ide1:1.startConnected = "FALSE"' in vmx
    assert 'bios.bootOrder = "hdd,cdrom"' in vmx
    assert [c["target"] for c in stages["clones"]["changes"]] == ["esx2"]
    # the plaintext password is in no file under the sim dir (which holds vm_dir), ISOs included
    assert _files_containing(d, PASSWORD.encode()) == []
    # a second run changes nothing and builds nothing again
    again = _json(run_cli("up", topo, "--sim", "--skip", "vcenter", "--json", environ=environ))
    assert again["changes"] == [] and again["failures"] == []
    assert list((state / "isos").glob("*.ks-*.iso")) == [patched]


def test_without_a_password_the_root_password_is_random_and_said_so(sim, run_cli):  # noqa: F811
    d, environ = sim  # the fixture has no LAB_ESX_PASSWORD
    topo = str(TOPOLOGIES / "esxi67-70-mixed.yaml")
    r = run_cli("up", topo, "--sim", "--only", "render", "vms", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    notes = [n for s in rep["stages"] for n in s["notes"] if "random" in n]
    assert len(notes) == 2 and all("kept nowhere and shown to nobody" in n for n in notes)
    from labctl.iso.kickstart import read_kickstart_iso

    ks = read_kickstart_iso(d / "vms" / ".labctl" / "install" / "esxi67" / "ks.iso").decode()
    key = (d / "id_rsa.pub").read_text().split()[1]
    assert key in ks and "/etc/ssh/keys-root/authorized_keys" in ks
    assert "-----BEGIN RSA PRIVATE KEY-----" in ks and "rootpw --iscrypted $6$" in ks
    # the same hash on the next run (nothing rewritten)
    before = (d / "vms" / ".labctl" / "install" / "esxi67" / "ks.iso").read_bytes()
    again = _json(run_cli("up", topo, "--sim", "--only", "render", "vms", "--json", environ=environ))
    assert again["changes"] == []
    assert (d / "vms" / ".labctl" / "install" / "esxi67" / "ks.iso").read_bytes() == before


def test_kickstart_none_waits_the_deadline_and_says_what_to_do(sim, run_cli, tmp_path):  # noqa: F811
    d, environ = sim
    text = (TOPOLOGIES / "esxi8-ha-trio.yaml").read_text().replace("source: ../examples",
                                                                  f"source: {TOPOLOGIES.parent}/examples")
    text = text.replace("    iso: ~/isos/VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso\n",
                        "    iso: ~/isos/VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso\n"
                        "    install: {kickstart: none}\n")
    topo = tmp_path / "trio.yaml"
    topo.write_text(text)
    r = run_cli("up", str(topo), "--sim", "--skip", "vcenter", "--install-timeout", "1", "--json", environ=environ)
    rep = _json(r)
    assert r.status == 3
    (f, *rest) = rep["failures"]
    assert (f["stage"], f["target"]) == ("install", "esxi-a")
    assert "at the installer console (kickstart: none): no SSH login at 172.20.30.11 within" in f["message"]
    assert "install ESXi 8.0u2 at the VM's console" in f["hint"] and "enable SSH" in f["hint"]
    assert {(x["stage"], x["target"]) for x in rest} == {("clones", "esxi-b"), ("clones", "esxi-c")}
    vmx = (d / "vms" / "esxi-a" / "esxi-a.vmx").read_text()  # the stock installer, no kickstart CD
    assert "sata0:2.fileName" not in vmx and "Installer-8.0U2" in vmx
    assert not (d / "vms" / ".labctl" / "install" / "esxi-a" / "installed.json").exists()


def _trio_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path / "home"), **extra}


@pytest.mark.parametrize("case", ["missing", "not-an-installer", "other-version", "classic-for-esxi"])
def test_plan_and_validate_refuse_an_iso_that_cannot_install_the_host(run_cli, tmp_path, case):
    from labctl.iso import synthetic

    iso = tmp_path / "isos" / "VMware-VMvisor-Installer-8.0U2-22380479.x86_64.iso"
    topo = _real_trio(tmp_path)
    if case == "missing":
        iso.unlink()
    elif case == "not-an-installer":
        synthetic.write_plain_iso(iso, "DATA_DISC")
    elif case == "other-version":
        synthetic.write_esxi_iso(iso, "7.0u3")
    else:
        synthetic.write_classic_iso(iso, "4.1")
    r = run_cli("plan", str(topo), environ=_trio_env(tmp_path, LAB_ESX_PASSWORD="pw"))
    assert r.status == 2 and "Traceback" not in r.err, r.err
    assert f"esxi-a: iso {iso}" in r.err
    want = {"missing": "does not exist", "not-an-installer": "is no ESX installer",
            "other-version": "is an ESXi installer of 7.0 U3 (build 18644231), but esxi-a is ESXi 8.0u2",
            "classic-for-esxi": "is an ESX classic installer of 4.1"}[case]
    assert want in r.err
    v = run_cli("validate", str(topo))
    assert v.status == 2 and "Traceback" not in v.err and want in v.err
    assert f"{topo}:30:" in v.err  # the line of esxi-a's iso:
    vs = run_cli("validate", str(topo), "--sim")  # for a simulated run a missing ISO is the synthetic installer
    if case == "missing":
        assert vs.status == 0, vs.err
    else:
        assert vs.status == 2 and want in vs.err
    # --sim: a missing ISO means the synthetic installer; a wrong one is refused the same way
    s = run_cli("plan", str(topo), "--sim", "--sim-dir", str(tmp_path / "sim"),
                environ=_trio_env(tmp_path))
    assert (s.status == 0) == (case == "missing"), s.err


def test_neither_password_nor_key_is_a_usage_error_before_anything_runs(run_cli, tmp_path):
    topo = _real_trio(tmp_path)
    r = run_cli("plan", str(topo), environ=_trio_env(tmp_path))
    assert r.status == 2 and "no root password and no SSH key" in r.err and "LAB_ESX_PASSWORD" in r.err
    assert "ssh.key_file" in r.err and not (tmp_path / "vms").exists()
    # a key to install is enough (its .pub goes into authorized_keys)
    key = tmp_path / "id_lab"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    topo = _real_trio(tmp_path, **{"ssh: {user: root, password_env: LAB_ESX_PASSWORD}":
                                   f"ssh: {{user: root, password_env: LAB_ESX_PASSWORD, key_file: {key}}}"})
    assert run_cli("plan", str(topo), "--only", "validate", environ=_trio_env(tmp_path)).status == 0
    key.with_suffix(".pub").unlink()
    r = run_cli("plan", str(topo), environ=_trio_env(tmp_path))
    assert r.status == 2 and "has no public half" in r.err and "ssh-keygen -y -f" in r.err


@pytest.mark.skipif(shutil.which("ssh-keygen") is None, reason="needs OpenSSH's ssh-keygen")
def test_host_key_is_traditional_pem_that_openssh_reads_and_stays_the_same(tmp_path):
    from labctl.render.hostkey import ensure_host_key

    key, made = ensure_host_key(tmp_path / "k", "root@esx1")
    assert made
    priv = tmp_path / "k" / "ssh_host_rsa_key"
    assert priv.read_text().startswith("-----BEGIN RSA PRIVATE KEY-----\n")  # PKCS#1, not openssh-key-v1
    out = subprocess.run(["ssh-keygen", "-y", "-f", str(priv)], capture_output=True, text=True, check=True).stdout
    assert out.split()[:2] == ["ssh-rsa", key.public_b64]
    assert (tmp_path / "k" / "ssh_host_rsa_key.pub").read_text().split()[:2] == ["ssh-rsa", key.public_b64]
    assert {p.stat().st_mode & 0o777 for p in (tmp_path / "k").iterdir()} == {0o600}
    again, made = ensure_host_key(tmp_path / "k", "root@esx1")
    assert not made and again == key
    bits = subprocess.run(["ssh-keygen", "-l", "-f", str(priv)], capture_output=True, text=True, check=True)
    assert bits.stdout.startswith("2048 ")


def test_kickstart_carries_the_host_key_and_authorized_key_and_masks_the_private_key(tmp_path):
    from labctl.render import kickstart as ks
    from labctl.render.hostkey import ensure_host_key
    from labctl.topology import load_topology

    topo = load_topology(TOPOLOGIES / "esx35-ha-pair.yaml")
    key, _ = ensure_host_key(tmp_path, "root@esx1")
    text = ks.render_kickstart(topo, topo.host("esx1"), "$1$abcdefgh$0123456789abcdefghijkl", host_key=key,
                               authorized_keys=["ssh-rsa AAAAB3Nza labctl"])
    post = text[text.index("%post"):]
    assert "cat > /etc/ssh/ssh_host_rsa_key <<'LABCTL_HOST_KEY'\n-----BEGIN RSA PRIVATE KEY-----" in post
    assert f"{key.public_line('root@esx1')}\nLABCTL_HOST_KEY_PUB" in post
    assert "cat > /root/.ssh/authorized_keys <<'LABCTL_AUTHORIZED_KEYS'\nssh-rsa AAAAB3Nza labctl\n" in post
    masked = ks.mask(text)
    assert "-----BEGIN RSA PRIVATE KEY-----\n********\n-----END RSA PRIVATE KEY-----" in masked
    assert key.private_pem.splitlines()[1] not in masked and "$1$abcdefgh" not in masked
    with pytest.raises(Exception, match="not a public key line"):
        ks.render_kickstart(topo, topo.host("esx1"), "$1$abcdefgh$0123456789abcdefghijkl",
                            authorized_keys=["ssh-rsa\nAAAA"])


def test_plan_shows_media_install_wait_prepare_and_clones_in_order(sim, run_cli):  # noqa: F811
    d, environ = sim
    r = run_cli("plan", str(TOPOLOGIES / "esxi8-ha-trio.yaml"), "--sim", "--install-timeout", "900", "--json",
                environ=environ)
    rep = _json(r)
    assert r.status == 0, rep["failures"]
    seq = [(c["stage"], c["target"], c["summary"].split(":")[0]) for c in rep["changes"]
           if c["target"].startswith("esxi") and c["stage"] in ("vms", "install", "clones")]
    assert seq == [("vms", "esxi-a", "create VM <sim>/vms/esxi-a/esxi-a.vmx".replace("<sim>", str(d))),
                   ("vms", "esxi-a", f"create 40 GB disk {d}/vms/esxi-a/esxi-a.vmdk"),
                   ("vms", "esxi-a", "install media"),
                   ("install", "esxi-a", "install ESXi 8.0u2 unattended from its kickstart CD"),
                   ("install", "esxi-a", "prepare as the source of linked clones"),
                   ("clones", "esxi-b", "linked clone of esxi-a@base (snapshot 'base' of the installed, powered-off "
                                        "esxi-a taken first)"),
                   ("clones", "esxi-c", "linked clone of esxi-a@base (snapshot 'base' of the installed, powered-off "
                                        "esxi-a taken first)")]
    assert any("wait up to 15m00s for SSH at 172.20.30.11" in c["summary"] for c in rep["changes"])
    vms_notes = next(s["notes"] for s in rep["stages"] if s["name"] == "vms")
    assert any("`up` writes a synthetic ESXi 8.0u2 installer" in n for n in vms_notes)
    assert not d.exists()  # plan wrote nothing: no synthetic ISO, no key, no KS CD
