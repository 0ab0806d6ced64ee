"""The simulated hosts over real SSH on 127.0.0.1, with paramiko as the client."""

from __future__ import annotations

import io
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path

import paramiko
import pytest

from labctl.sim.faults import Control, FaultRule, write_control
from labctl.sim.host import SimHost
from labctl.sim.server import HostServer, hash_password

from .helpers import connect, make_state, run, wait_for

PASSWORD = "lab-Secret-1"


@dataclass
class Served:
    host: SimHost
    server: HostServer
    key: paramiko.PKey
    dir: Path

    @property
    def port(self) -> int:
        return self.server.port

    def client(self, **kw):
        if "password" not in kw and "pkey" not in kw:
            kw["pkey"] = self.key
        return connect(self.port, self.server.keys, **kw)


@pytest.fixture(scope="module")
def client_key():
    return paramiko.RSAKey.generate(2048)  # ESX classic (OpenSSH 4.x) accepts RSA user keys only


@pytest.fixture
def serve(tmp_path, client_key):
    servers: list[HostServer] = []

    def _serve(flavor="esxi", version="6.7", name="esx1", control: Control | None = None, **kw) -> Served:
        st = make_state(flavor, version, name=name, **kw)
        st.root_password_hash = hash_password(PASSWORD)
        st.files[st.authorized_keys_path] = f"{client_key.get_name()} {client_key.get_base64()} test\n"
        hdir = tmp_path / name
        if control is not None:
            write_control(hdir, control)
        host = SimHost(st, hdir)
        srv = HostServer(host).start()
        servers.append(srv)
        return Served(host, srv, client_key, hdir)

    yield _serve
    for s in servers:
        s.stop()


def refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


# ---------------------------------------------------------------- auth and keys


def test_esxi5_plus_offers_keyboard_interactive_not_password(serve):
    s = serve("esxi", "6.7")
    t = paramiko.Transport(("127.0.0.1", s.port))
    try:
        t.start_client(timeout=5)
        with pytest.raises(paramiko.BadAuthenticationType) as e:
            t.auth_password("root", PASSWORD, fallback=False)
        assert sorted(e.value.allowed_types) == ["keyboard-interactive", "publickey"]
    finally:
        t.close()
    c = s.client(password=PASSWORD)  # paramiko falls back to keyboard-interactive
    assert run(c, "hostname") == (0, "esx1\n", "")
    c.close()
    with pytest.raises(paramiko.AuthenticationException):
        s.client(password="wrong")


def test_esx_classic_offers_password(serve):
    s = serve("esx", "3.5u5")
    t = paramiko.Transport(("127.0.0.1", s.port))
    try:
        t.start_client(timeout=5)
        t.auth_password("root", PASSWORD)
        assert t.is_authenticated()
    finally:
        t.close()


def test_publickey_only_for_authorized_keys(serve):
    s = serve("esxi", "8.0")
    c = s.client()
    assert run(c, "vmware -v")[1] == "VMware ESXi 8.0.0 build-20513097\n"
    c.close()
    with pytest.raises(paramiko.AuthenticationException):
        s.client(pkey=paramiko.ECDSAKey.generate())
    with pytest.raises(paramiko.AuthenticationException):
        s.client(user="admin")


def test_host_keys_are_rsa_and_ecdsa_and_persist(serve, tmp_path):
    s = serve("esxi", "8.0")
    first = dict(s.server.fingerprints)
    assert set(first) == {"ssh-rsa", "ecdsa-sha2-nistp256"}
    s.server.stop()
    again = HostServer(SimHost(s.host.state, s.dir)).start()
    try:
        assert again.fingerprints == first
        t = paramiko.Transport(("127.0.0.1", again.port),
                               disabled_algorithms={"keys": ["ecdsa-sha2-nistp256", "ssh-ed25519"]})
        t.start_client(timeout=5)
        assert t.get_remote_server_key().get_name() == "ssh-rsa"
        t.close()
    finally:
        again.stop()


# ---------------------------------------------------------------- sessions that drop, jobs that survive


def test_removing_vmk0_in_the_foreground_drops_the_session_and_stops_the_script(serve):
    s = serve("esxi", "6.7")
    c = s.client()
    chan = c.get_transport().open_session()
    chan.exec_command("esxcli network ip interface remove -i vmk0; echo after > /tmp/after")
    assert chan.recv_exit_status() == -1  # no exit status: the connection went away
    assert wait_for(lambda: not c.get_transport().is_active())
    assert not s.host.fs.is_file("/tmp/after")
    assert refused(s.port)  # the host's address is gone
    assert s.host.state.interface("vmk0") is None


def test_detached_vmk0_recreation_survives_the_drop(serve):
    s = serve("esxi", "6.7")
    c = s.client()
    # the documented safe pattern: the job waits a moment so the launching command's exit status gets out first
    job = ("sleep 0.5; esxcli network ip interface remove -i vmk0; sleep 0.1; "
           "esxcli network ip interface add -i vmk0 -p 'Management Network' -M 00:50:56:01:02:03; "
           "esxcli network ip interface ipv4 set -i vmk0 -t static -I 192.168.69.11 -N 255.255.255.0")
    t0 = time.monotonic()
    code, out, err = run(c, f"nohup sh -c \"{job}\" </dev/null >/tmp/recreate.log 2>&1 &")
    assert (code, out, err) == (0, "", "") and time.monotonic() - t0 < 1
    assert wait_for(lambda: not c.get_transport().is_active())
    assert wait_for(lambda: s.host.state.interface("vmk0") and s.host.state.interface("vmk0").ip)
    c2 = s.client()
    out = run(c2, "esxcli network ip interface list")[1]
    assert "MAC Address: 00:50:56:01:02:03" in out
    c2.close()


def test_background_job_writing_to_the_session_keeps_the_channel_open(serve):
    s = serve("esxi", "6.7")
    c = s.client()
    t0 = time.monotonic()
    assert run(c, "sleep 0.3 &") == (0, "", "")
    assert time.monotonic() - t0 >= 0.3
    t0 = time.monotonic()
    assert run(c, "sleep 1.5 >/dev/null 2>&1 &") == (0, "", "")
    assert time.monotonic() - t0 < 1.2
    c.close()


def test_bouncing_vswif0_in_the_foreground_leaves_it_down(serve):
    s = serve("esx", "3.5u5")
    c = s.client()
    s.host.run("sed -i 's#^MACADDR=.*#MACADDR=00:50:56:4e:01:02#' /etc/sysconfig/network-scripts/ifcfg-vswif0")
    chan = c.get_transport().open_session()
    chan.exec_command("ifdown vswif0 && ifup vswif0")
    assert chan.recv_exit_status() == -1
    assert not s.host.state.vswifs[0].enabled  # ifup never ran: the session's shell got SIGHUP
    assert refused(s.port)


def test_bouncing_vswif0_detached_comes_back_with_the_new_mac(serve):
    s = serve("esx", "4.1")
    c = s.client()
    run(c, "sed -i 's#^MACADDR=.*#MACADDR=00:50:56:4e:01:02#' /etc/sysconfig/network-scripts/ifcfg-vswif0")
    assert run(c, "nohup sh -c 'sleep 0.5; ifdown vswif0; ifup vswif0' </dev/null >/tmp/bounce.log 2>&1 &")[0] == 0
    assert wait_for(lambda: not c.get_transport().is_active())
    assert wait_for(lambda: not refused(s.port))
    c2 = s.client()
    assert "HWaddr 00:50:56:4E:01:02" in run(c2, "ifconfig vswif0")[1]
    c2.close()


def test_reboot_drops_connections_is_down_for_a_while_then_applies_boot_rules(serve):
    s = serve("esxi", "7.0u2", control=Control(reboot_delay=0.3), macs=("00:50:56:00:00:21",))
    s.host.state.vmknics[0].mac = "00:50:56:00:00:11"  # like a clone
    c = s.client()
    run(c, "esxcli network ip interface remove -i vmk9 2>/dev/null; "
           "esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1")
    run(c, "esxcli network ip interface list")  # unchanged until boot
    s.host.state.files["/etc/vmware/esx.conf"] = s.host.state.files["/etc/vmware/esx.conf"].replace(
        '/net/vmkernelnic/child[0000]/mac = "00:50:56:00:00:21"', '/net/vmkernelnic/child[0000]/mac = "00:50:56:00:00:11"')
    assert run(c, "/sbin/auto-backup.sh")[0] == 0
    boots = s.host.state.boot_count
    assert run(c, "reboot") == (0, "", "")
    assert wait_for(lambda: not c.get_transport().is_active())
    assert wait_for(lambda: refused(s.port))
    assert s.host.wait_up(15)
    c2 = s.client()
    assert "MAC Address: 00:50:56:00:00:21" in run(c2, "esxcli network ip interface list")[1]
    assert s.host.state.boot_count == boots + 1
    c2.close()


def test_reboot_kills_detached_jobs(serve):
    s = serve("esxi", "6.7", control=Control(reboot_delay=0.05))
    c = s.client()
    run(c, "nohup sh -c 'sleep 0.3; echo survived > /etc/marker' </dev/null >/dev/null 2>&1 &")
    run(c, "reboot")
    assert s.host.wait_up(15)
    time.sleep(0.4)
    assert not s.host.fs.is_file("/etc/marker")


# ---------------------------------------------------------------- faults and latency


def test_fault_drop_after_runs_the_command_but_loses_the_result(serve):
    s = serve("esxi", "6.7", control=Control(faults=[FaultRule("drop", r"advanced set", times=1)]))
    c = s.client()
    chan = c.get_transport().open_session()
    chan.exec_command("esxcli system settings advanced set -o /Net/FollowHardwareMac -i 1")
    assert chan.recv_exit_status() == -1
    assert s.host.state.advanced["/Net/FollowHardwareMac"].int_value == 1
    c2 = s.client()  # fired once only
    assert run(c2, "esxcli system settings advanced set -o /Net/FollowHardwareMac -i 0") == (0, "", "")
    c2.close()


def test_fault_drop_before_does_not_run_the_command(serve):
    s = serve("esxi", "6.7")
    write_control(s.dir, Control(faults=[FaultRule("drop", "touch", phase="before")]))  # changed at runtime
    c = s.client()
    chan = c.get_transport().open_session()
    chan.exec_command("touch /tmp/x")
    assert chan.recv_exit_status() == -1
    assert not s.host.fs.is_file("/tmp/x")


def test_fault_refuse_auth_and_down(serve):
    s = serve("esxi", "6.7", control=Control(faults=[FaultRule("refuse_auth", times=1)]))
    with pytest.raises(paramiko.AuthenticationException):
        s.client()
    s.client().close()
    write_control(s.dir, Control(faults=[FaultRule("down")]))
    s.host.reload_control()
    s.host.update_listener()
    assert refused(s.port)
    write_control(s.dir, Control())
    s.host.reload_control()
    s.host.update_listener()
    s.client().close()


def test_latency_per_exec_and_per_command(serve):
    s = serve("esxi", "6.7", control=Control(latency=0.2, command_latency={"esxcli": 0.3}))
    c = s.client()
    t0 = time.monotonic()
    run(c, "echo x")
    assert 0.2 <= time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    run(c, "esxcli system uuid get")
    assert time.monotonic() - t0 >= 0.5
    c.close()


# ---------------------------------------------------------------- uploads, counters, jump host


def test_sftp_on_esxi5_plus_streams_big_files(serve):
    s = serve("esxi", "5.5")
    c = s.client()
    data = bytes(range(256)) * 8192  # 2 MiB: stored as a blob file, not in the JSON state
    sftp = c.open_sftp()
    sftp.putfo(io.BytesIO(data), "/tmp/x.vib")
    assert sftp.stat("/tmp/x.vib").st_size == len(data)
    assert "/tmp/x.vib" in s.host.state.blobs
    buf = io.BytesIO()
    sftp.getfo("/tmp/x.vib", buf)
    assert buf.getvalue() == data
    import hashlib

    assert run(c, "sha256sum /tmp/x.vib")[1].split()[0] == hashlib.sha256(data).hexdigest()
    c.close()


@pytest.mark.parametrize("flavor,version", [("esxi", "4.1"), ("esx", "4.0")])
def test_no_sftp_before_esxi5_but_cat_over_exec_works(serve, flavor, version):
    s = serve(flavor, version)
    c = s.client()
    with pytest.raises(paramiko.SSHException):
        c.open_sftp()
    assert run(c, "cat > /tmp/up.bin", stdin=b"\x00\x01payload") == (0, "", "")
    assert s.host.fs.read("/tmp/up.bin") == b"\x00\x01payload"
    c.close()


def test_one_connection_counted_once(serve):
    s = serve("esxi", "6.7")
    c = s.client()
    for _ in range(3):
        run(c, "true")
    c.close()
    assert s.host.counters["connections"] == 1
    assert s.host.counters["execs"] == 3


def test_jump_host_forwards_only_to_simulated_hosts(serve, tmp_path, client_key):
    from labctl.sim.endpoints import Endpoint, EndpointMap, write_endpoints
    from labctl.sim.hostd import jump_resolver

    target = serve("esxi", "8.0", name="esx1", ip="172.20.30.11")
    jst = make_state("linux", "1.0", name="jump", ip="10.0.0.5")
    jst.files[jst.authorized_keys_path] = f"{client_key.get_name()} {client_key.get_base64()}\n"
    sim = tmp_path / "sim"
    sim.mkdir()
    jump = HostServer(SimHost(jst, tmp_path / "jump"), resolve=jump_resolver(sim)).start()
    try:
        write_endpoints(sim, EndpointMap("lab", sim, {"esx1": Endpoint("esx1", "172.20.30.11", "127.0.0.1",
                                                                        target.port)}))
        jc = connect(jump.port, jump.keys, pkey=client_key)
        chan = jc.get_transport().open_channel("direct-tcpip", ("172.20.30.11", 22), ("127.0.0.1", 0))
        c = paramiko.SSHClient()
        for key in target.server.keys.values():
            c.get_host_keys().add("172.20.30.11", key.get_name(), key)
        c.connect("172.20.30.11", 22, "root", pkey=client_key, sock=chan, look_for_keys=False, allow_agent=False)
        assert run(c, "hostname") == (0, "esx1\n", "")
        c.close()
        with pytest.raises(paramiko.ChannelException):
            jc.get_transport().open_channel("direct-tcpip", ("192.0.2.1", 22), ("127.0.0.1", 0))
        jc.close()
    finally:
        jump.stop()


def test_esx_classic_refuses_root_when_permit_root_login_is_off(serve):
    s = serve("esx", "4.1")
    s.client().close()
    s.host.run("sed -i 's/^PermitRootLogin yes/PermitRootLogin no/' /etc/ssh/sshd_config")
    with pytest.raises(paramiko.AuthenticationException):
        s.client()
    with pytest.raises(paramiko.AuthenticationException):
        s.client(password=PASSWORD)


def test_interactive_shell_prompt_per_version(serve):
    s = serve("esxi", "6.7")
    c = s.client()
    chan = c.invoke_shell()
    chan.settimeout(5)
    buf = b""
    while b"[root@esx1:~] " not in buf:
        buf += chan.recv(1024)
    chan.sendall(b"cd /etc/vmware; X=kept\r")
    buf = b""
    while buf.count(b"[root@esx1:~] ") < 1:
        buf += chan.recv(1024)
    chan.sendall(b"vmware -v; echo $X; ls esx.conf\r")
    buf = b""
    while buf.count(b"[root@esx1:~] ") < 1:
        buf += chan.recv(1024)
    assert b"VMware ESXi 6.7.0 build-8169922" in buf and b"kept" in buf and b"\nesx.conf" in buf
    chan.sendall(b"exit\r")
    assert chan.recv_exit_status() == 0
    c.close()


def test_service_network_restart_bounces_vswif0_and_drops_the_session(serve):
    s = serve("esx", "4.1")
    c = s.client()
    run(c, "sed -i 's#^MACADDR=.*#MACADDR=00:50:56:4e:0a:0b#' /etc/sysconfig/network-scripts/ifcfg-vswif0")
    chan = c.get_transport().open_session()
    chan.exec_command("service network restart; touch /tmp/after")
    assert chan.recv_exit_status() == -1
    assert not s.host.fs.is_file("/tmp/after")
    assert s.host.state.vswifs[0].mac == "00:50:56:4e:0a:0b" and s.host.state.vswifs[0].enabled
    c2 = s.client()  # the interface came back up within the command: the host is reachable again
    assert "Bringing up interface vswif0" in run(c2, "service network restart")[1] or True
    c2.close()


def test_down_fault_also_drops_open_connections(serve):
    s = serve("esxi", "6.7")
    c = s.client()
    write_control(s.dir, Control(faults=[FaultRule("down")]))
    s.host.reload_control()
    s.host.update_listener()
    assert wait_for(lambda: not c.get_transport().is_active())
    assert refused(s.port)


@pytest.mark.skipif(not shutil.which("scp"), reason="OpenSSH scp not installed")
@pytest.mark.parametrize("flavor,version,legacy", [("esxi", "7.0u3", False), ("esx", "3.5u5", True)])
def test_openssh_scp_round_trip(serve, tmp_path, flavor, version, legacy):
    """The real OpenSSH client: SFTP-mode scp where the host has SFTP, legacy `scp -O` (remote `scp -t/-f`) else."""
    import os
    import subprocess

    s = serve(flavor, version)
    key = tmp_path / "id"
    with os.fdopen(os.open(key, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        s.key.write_private_key(f)
    known = tmp_path / "known_hosts"
    known.write_text("".join(f"[127.0.0.1]:{s.port} {k.get_name()} {k.get_base64()}\n"
                             for k in s.server.keys.values()))
    src = tmp_path / "src.bin"
    src.write_bytes(bytes(range(256)) * 300)
    # a current OpenSSH talks to an ESX classic host only with its SHA-1 algorithms re-enabled, as users must
    old = ["-o", "KexAlgorithms=+diffie-hellman-group14-sha1", "-o", "HostKeyAlgorithms=+ssh-rsa",
           "-o", "PubkeyAcceptedAlgorithms=+ssh-rsa"] if flavor == "esx" else []
    base = ["scp", *(["-O"] if legacy else []), *old, "-i", str(key), "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-P", str(s.port)]
    up = subprocess.run([*base, str(src), "root@127.0.0.1:/tmp/x.bin"], capture_output=True, timeout=30)
    assert up.returncode == 0, up.stderr
    assert s.host.fs.read("/tmp/x.bin") == src.read_bytes()
    down = subprocess.run([*base, "root@127.0.0.1:/tmp/x.bin", str(tmp_path / "back.bin")], capture_output=True,
                          timeout=30)
    assert down.returncode == 0, down.stderr
    assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()


def test_changing_control_keeps_the_count_of_rules_that_stay(serve):
    rule = FaultRule("drop", "touch", times=1)
    s = serve("esxi", "6.7", control=Control(faults=[rule]))
    c = s.client()
    chan = c.get_transport().open_session()
    chan.exec_command("touch /tmp/a")
    assert chan.recv_exit_status() == -1
    time.sleep(0.01)
    write_control(s.dir, Control(latency=0.0, command_latency={"esxcli": 0.0}, faults=[rule]))
    c2 = s.client()
    assert run(c2, "touch /tmp/b") == (0, "", "")  # fired once already
    c2.close()


def _ed25519_key(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    pem = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption())
    path = tmp_path / "id_ed25519"
    path.write_bytes(pem)
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def test_esxi8_sshd_offers_the_fips_set_only(serve, tmp_path):
    s8, s7 = serve("esxi", "8.0u2", name="e8"), serve("esxi", "7.0u3", name="e7")
    for s, ok in ((s8, False), (s7, True)):  # curve25519 is not FIPS
        t = paramiko.Transport(("127.0.0.1", s.port), disabled_algorithms={"kex": [
            "mlkem768x25519-sha256", "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
            "diffie-hellman-group16-sha512", "diffie-hellman-group-exchange-sha256", "diffie-hellman-group14-sha256"]})
        try:
            if ok:
                t.start_client(timeout=5)
            else:
                with pytest.raises(paramiko.SSHException):
                    t.start_client(timeout=5)
        finally:
            t.close()
    c = s8.client()  # paramiko's defaults negotiate ecdh-sha2-nistp256 + aes-ctr + hmac-sha2
    assert c.get_transport().remote_cipher.endswith("-ctr") and run(c, "true")[0] == 0
    c.close()
    ed = _ed25519_key(tmp_path)
    for s in (s8, s7):
        s.host.state.files[s.host.state.authorized_keys_path] += f"{ed.get_name()} {ed.get_base64()}\n"
    with pytest.raises(paramiko.AuthenticationException):
        s8.client(pkey=ed)
    s7.client(pkey=ed).close()


def test_fault_drop_during_sftp_upload(serve):
    s = serve("esxi", "7.0u3", control=Control(faults=[FaultRule("drop", r"^sftp put /tmp/a\.vib$", times=1),
                                                      FaultRule("drop", r"^sftp put /tmp/b", phase="before")]))
    c = s.client()
    sftp = c.open_sftp()
    with pytest.raises((OSError, EOFError, paramiko.SSHException)):
        sftp.putfo(io.BytesIO(b"x" * 100_000), "/tmp/a.vib")
    assert wait_for(lambda: s.host.fs.is_file("/tmp/a.vib") and s.host.fs.size("/tmp/a.vib") == 100_000)
    c2 = s.client()
    with pytest.raises((OSError, EOFError, paramiko.SSHException)):
        c2.open_sftp().putfo(io.BytesIO(b"y" * 10), "/tmp/b.vib")
    assert not s.host.fs.is_file("/tmp/b.vib")
    c3 = s.client()
    c3.open_sftp().putfo(io.BytesIO(b"z" * 10), "/tmp/a.vib")  # the `after` rule fired once
    assert s.host.fs.read("/tmp/a.vib") == b"z" * 10
    c3.close()
