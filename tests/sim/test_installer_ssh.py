"""Installed by its kickstart, a simulated host answers real SSH (paramiko on loopback) with what the kickstart gave
it, and nothing the simulator added: the host key the disk holds, the keys in the disk's authorized_keys, the root
crypt hash, the version and build of the ISO.

The golden VM is a real .vmx rendered by labctl, with the two CD-ROMs the install stage attaches (the patched
installer ISO and the KS CD). The kickstart is rendered from the real templates; its `install.firstboot` lines
(%firstboot on ESXi, %post on ESX classic) install a labctl-generated host key and a client key, as the pipeline's
kickstart does.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from labctl.iso import synthetic
from labctl.render import cryptpw
from labctl.render.kickstart import render_kickstart
from labctl.sim import lab
from labctl.sim.endpoints import load_endpoints
from labctl.sim.workstation import LabHosts, SimDriver

from .installkit import PASSWORD, install_media
from .test_installer import topology



def keys():
    import paramiko

    return paramiko.RSAKey.generate(bits=2048), paramiko.RSAKey.generate(bits=2048)


def key_lines(host_key, client_key, *, classic: bool, authorize: bool = True) -> list[str]:
    """Single-line shell commands (install.firstboot entries) writing the host key and root's authorized key."""
    buf = io.StringIO()
    host_key.write_private_key(buf)
    pem = " ".join(f"'{ln}'" for ln in buf.getvalue().splitlines())
    pub = f"{host_key.get_name()} {host_key.get_base64()}"
    lines = [f"printf '%s\\n' {pem} > /etc/ssh/ssh_host_rsa_key", f"echo '{pub}' > /etc/ssh/ssh_host_rsa_key.pub"]
    if authorize:
        path = "/root/.ssh/authorized_keys" if classic else "/etc/ssh/keys-root/authorized_keys"
        lines.append(f"echo '{client_key.get_name()} {client_key.get_base64()} labctl' > {path}")
    return lines


@pytest.fixture
def cleanup():
    made = []
    yield made.append
    for hosts in made:
        hosts.stop_all()
        lab.down(hosts.sim_dir)


def golden_vm(tmp_path: Path, topo, flavor: str, version: str, ks_text: str, cleanup) -> tuple[SimDriver, Path]:
    from labctl.render.lab import vmx_for_host
    from labctl.render.templates import environment

    sim = tmp_path / "sim"
    hosts = LabHosts(sim, lab.spec_from_topology(topo), environ={"PATH": "/usr/bin:/bin"})
    cleanup(hosts)
    driver = SimDriver(sim, hosts)
    driver.verify()
    vmx = driver.vmx_path("esx1")
    vmx.parent.mkdir(parents=True)
    vmx.write_text(vmx_for_host(topo, topo.host("esx1"), environment()))
    install_media(driver, vmx, topo, "esx1", tmp_path / "media", ks_text=ks_text)
    return driver, vmx


def connect(sim: Path, host_key, *, pkey=None, password: str | None = None):
    import paramiko

    emap = load_endpoints(sim)
    host, port = emap.resolve(emap.hosts["esx1"].address)
    kh = sim / "pinned_known_hosts"
    kh.write_text(f"[{host}]:{port} {host_key.get_name()} {host_key.get_base64()}\n")  # only labctl's own key
    client = paramiko.SSHClient()
    client.load_host_keys(str(kh))
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    # only the RSA host key is pinned: ask for it (paramiko would otherwise take the ECDSA key an ESXi 8 also has)
    rsa_only = {"keys": ["ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-ed25519"]}
    if password is None:
        client.connect(host, port=port, username="root", pkey=pkey, allow_agent=False, look_for_keys=False,
                       timeout=10, disabled_algorithms=rsa_only)
    else:
        t = paramiko.Transport((host, port), disabled_algorithms=rsa_only)
        t.connect()
        remote = t.get_remote_server_key()
        assert remote.asbytes() == host_key.asbytes()
        t.auth_interactive("root", lambda title, instr, prompts: [password for _ in prompts])
        return t
    return client


def run(client, command: str) -> str:
    _, out, _ = client.exec_command(command, timeout=10)
    return out.read().decode()


@pytest.mark.parametrize("flavor, version", [("esxi", "8.0u2"), ("esx", "3.5u5"), ("esxi", "6.7u3")])
def test_installed_host_answers_with_the_kickstarts_keys_and_the_isos_build(tmp_path, cleanup, flavor, version):
    import paramiko

    host_key, client_key = keys()
    topo = topology(tmp_path, flavor, version, key_lines(host_key, client_key, classic=flavor == "esx"))
    release = topo.host("esx1").version_info.release
    ks = render_kickstart(topo, topo.host("esx1"),
                          cryptpw.hash_password(PASSWORD, cryptpw.scheme_for(flavor, release)))
    driver, vmx = golden_vm(tmp_path, topo, flavor, version, ks, cleanup)
    driver.start(vmx)
    sim = driver.sim_dir
    log = (sim / "logs" / "esx1.vmware.log").read_text()
    assert "Rebooting into the installed system" in log
    client = connect(sim, host_key, pkey=client_key)  # RejectPolicy: the server must present labctl's key
    try:
        from labctl.iso.image import inspect_iso

        media = inspect_iso(tmp_path / "media" / f"patched-{flavor}-{version}.iso")
        assert f"build-{media.build}" in run(client, "vmware -v")
    finally:
        client.close()
    other = paramiko.RSAKey.generate(bits=2048)  # e.g. the sim's own client key: not authorized by anyone
    with pytest.raises(paramiko.AuthenticationException):
        connect(sim, host_key, pkey=other).close()
    sim_key = lab.client_key(sim)
    with pytest.raises(paramiko.AuthenticationException):
        connect(sim, host_key, pkey=sim_key).close()
    if flavor == "esxi":
        connect(sim, host_key, password=PASSWORD).close()  # keyboard-interactive against the disk's $6$ hash
        with pytest.raises(paramiko.AuthenticationException):
            connect(sim, host_key, password="wrong").close()


def test_without_an_ssh_enabling_firstboot_nothing_answers(tmp_path, cleanup):
    host_key, client_key = keys()
    topo = topology(tmp_path, "esxi", "8.0u2", key_lines(host_key, client_key, classic=False))
    ks = render_kickstart(topo, topo.host("esx1"), cryptpw.hash_password(PASSWORD, "sha512"))
    ks = ks.replace("vim-cmd hostsvc/start_ssh\n", "vim-cmd hostsvc/start_sshd\n")
    driver, vmx = golden_vm(tmp_path, topo, "esxi", "8.0u2", ks, cleanup)
    driver.start(vmx)  # the VM runs ...
    assert driver.is_running(vmx)
    emap = load_endpoints(driver.sim_dir)
    import socket

    host, port = emap.resolve(emap.hosts["esx1"].address)  # its process runs, but its sshd was never started
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((host, port), timeout=5).close()


def test_vm_at_the_eula_screen_has_no_ssh_process(tmp_path, cleanup):
    host_key, client_key = keys()
    topo = topology(tmp_path, "esxi", "8.0u2", [])
    driver, vmx = golden_vm(tmp_path, topo, "esxi", "8.0u2", "vmaccepteula\n", cleanup)
    doc = driver.read_config(vmx)
    stock = tmp_path / "stock.iso"
    synthetic.write_esxi_iso(stock, "8.0u2")
    driver.reconfigure(vmx, {"sata0:1.fileName": str(stock)})  # the stock ISO: no ks= on its BOOT.CFGs
    assert doc.get("firmware") == "efi"
    driver.start(vmx)
    assert driver.is_running(vmx)
    assert "EULA" in (driver.sim_dir / "logs" / "esx1.vmware.log").read_text()
    assert "esx1" not in load_endpoints(driver.sim_dir).hosts
    assert not (driver.sim_dir / "hosts" / "esx1" / "state.json").exists()
