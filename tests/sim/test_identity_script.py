"""The clone identity boot script (ESXi 5.1+, guestinfo path) run by the simulated shell of a cloned ESXi 8 host.

The golden host is installed the way its kickstart leaves it (the %firstboot hook writes /etc/rc.local.d/local.sh);
the simulated Workstation clones it and applies `render.lab.clone_settings` (no customize_clone: nobody gives the
clone anything else); at power-on the clone's boot runs local.sh, which must end with the clone's own hostname,
addresses, vmk1 MAC, SSH host key, certificate and /system/uuid, and publish the key for labctl to read."""

from __future__ import annotations

import time

import pytest

from labctl.render import cryptpw, identity, kickstart
from labctl.render.lab import clone_settings, vmx_for_host
from labctl.render.templates import environment
from labctl.sim import state as S
from labctl.sim.host import SimHost
from labctl.sim.workstation import DiskOnlyHosts, SimDriver
from labctl.topology import load_topology


LAB = """
lab: idlab
workstation: {{version: "17.5", vm_dir: {vm_dir}}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24}}
  - {{name: storage, type: lan-segment, subnet: 10.10.10.0/24}}
esx_hosts:
  - name: esx1
    flavor: esxi
    version: "8.0u2"
    nics: [lan, storage]
    management: {{network: lan, ip: 192.168.69.11}}
    vmkernel:
      - {{network: storage, ip: 10.10.10.11}}
  - name: esx2
    linked_clone_of: esx1
    management: {{network: lan, ip: 192.168.69.12}}
    vmkernel:
      - {{network: storage, ip: 10.10.10.12}}
ssh: {{user: root, password_env: LAB_ESX_PASSWORD}}
"""


def _installed_golden(topo, hdir):
    """esx1 as its kickstart leaves it: %firstboot's commands run in its shell (SSH enabling aside), with host keys
    and a certificate as the installer and first boot make them."""
    h = topo.host("esx1")
    st = S.fresh_install("esx1", "esxi", "8.0u2", nic_macs=[n.mac for n in h.nics], ip=h.management.ip,
                         netmask=h.management.netmask,
                         vmkernel=[{"portgroup": v.portgroup, "ip": v.ip, "netmask": v.netmask} for v in h.vmkernel])
    host = SimHost(st, hdir)
    for cmd in ("/usr/lib/vmware/openssh/bin/ssh-keygen -q -t rsa -b 2048 -N '' -f /etc/ssh/ssh_host_rsa_key",
                "/usr/lib/vmware/openssh/bin/ssh-keygen -q -t ecdsa -b 256 -N '' -f /etc/ssh/ssh_host_ecdsa_key",
                "/sbin/generate-certificates"):
        assert host.run(cmd)[0] == 0
    text = kickstart.render_kickstart(topo, h, cryptpw.hash_password("x", "sha512", salt="s"))
    firstboot = text.split("%firstboot --interpreter=busybox", 1)[1]
    for line in firstboot.splitlines():
        if line.strip() and not line.startswith(("#", "vim-cmd hostsvc/")):  # SSH on: not what is tested here
            code, _, err = host.run(line)
            assert code == 0, (line, err)
    assert "guestinfo.labctl.id" in host.fs.read_text(S.LOCAL_SH)
    host.save()
    return host.state


def _power_on(drv, vmx, hdir) -> SimHost:
    """What a simulated Workstation power-on and the host's boot do: boot the disk, then run local.sh."""
    drv.start(vmx)
    host = SimHost(S.load_state(hdir), hdir)
    host.run_boot_scripts()
    deadline = time.monotonic() + 30
    while (host.rebooting or not host.wait_up(0.1)) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)  # a reboot thread may just have started
    assert host.wait_up(30)
    return host


@pytest.fixture
def lab(tmp_path):
    (tmp_path / "lab.yaml").write_text(LAB.format(vm_dir=tmp_path / "vms"))
    topo = load_topology(tmp_path / "lab.yaml")
    sim = tmp_path / "sim"
    drv = SimDriver(sim, DiskOnlyHosts(sim / "hosts"))
    drv.verify()
    src_vmx, dst_vmx = drv.vmx_path("esx1"), drv.vmx_path("esx2")
    src_vmx.parent.mkdir(parents=True)
    src_vmx.write_text(vmx_for_host(topo, topo.host("esx1"), environment()))
    golden = _installed_golden(topo, sim / "hosts" / "esx1")
    drv.snapshot(src_vmx, "base")
    drv.clone(src_vmx, dst_vmx, snapshot="base", clone_name="esx2", linked=True)
    drv.reconfigure(dst_vmx, clone_settings(topo, topo.host("esx2")))
    return topo, drv, golden, dst_vmx, sim / "hosts" / "esx2"


def test_a_clone_takes_its_own_identity_at_boot_and_a_second_boot_changes_nothing(lab):
    topo, drv, golden, vmx, hdir = lab
    host = _power_on(drv, vmx, hdir)
    st = host.state
    assert st.boot_count == 2, "one reboot for the new /system/uuid"
    assert st.hostname == "esx2"
    assert [(v.name, v.ip) for v in st.vmknics] == [("vmk0", "192.168.69.12"), ("vmk1", "10.10.10.12")]
    assert st.vmknics[0].mac == topo.host("esx2").nics[0].mac  # FollowHardwareMac (the kickstart)
    assert st.vmknics[1].mac != golden.vmknics[1].mac  # vmk1 re-created
    assert st.system_uuid and st.system_uuid != golden.system_uuid
    assert S.conf_get(st.persisted_etc[S.ESX_CONF], "/system/uuid") == st.system_uuid  # kept across boots
    new_pub = st.files["/etc/ssh/ssh_host_rsa_key.pub"]
    assert new_pub != golden.files["/etc/ssh/ssh_host_rsa_key.pub"]
    assert st.files["/etc/vmware/ssl/rui.crt"] != golden.files["/etc/vmware/ssl/rui.crt"]
    from cryptography import x509

    cert = x509.load_pem_x509_certificate(st.files["/etc/vmware/ssl/rui.crt"].encode())
    assert "esx2." in cert.subject.rfc4514_string()
    published = drv.read_guest_var(vmx, identity.HOSTKEY_VAR)
    assert published and published.split()[:2] == new_pub.split()[:2]

    before = S.to_dict(st)
    drv.stop(vmx)
    again = _power_on(drv, vmx, hdir).state
    assert again.boot_count == st.boot_count + 1, "no second reboot"
    after = S.to_dict(again)
    for key in ("hostname", "vmknics", "system_uuid"):
        assert after[key] == before[key], key
    for path in ("/etc/ssh/ssh_host_rsa_key.pub", "/etc/vmware/ssl/rui.crt", S.ESX_CONF):
        assert again.files[path] == st.files[path], path
    assert drv.read_guest_var(vmx, identity.HOSTKEY_VAR).split()[:2] == new_pub.split()[:2]


def test_the_golden_host_and_a_clone_made_by_hand_are_left_alone(lab):
    topo, drv, golden, vmx, hdir = lab
    from labctl.render import vmx as vmxlib

    doc = vmxlib.read(vmx)
    for key in [k for k in doc.to_dict() if k.lower().startswith("guestinfo.")]:
        doc.delete(key)
    vmx.write_bytes(doc.dump_bytes())  # a clone without labctl's keys: what a user's own clone looks like
    st = _power_on(drv, vmx, hdir).state
    assert st.boot_count == 1 and st.hostname == "esx1" and st.vmknics[0].ip == "192.168.69.11"
    assert st.files["/etc/ssh/ssh_host_rsa_key.pub"] == golden.files["/etc/ssh/ssh_host_rsa_key.pub"]
    assert drv.read_guest_var(vmx, identity.HOSTKEY_VAR) is None


def test_values_that_are_no_address_are_refused_and_nothing_runs(lab):
    topo, drv, golden, vmx, hdir = lab
    drv.reconfigure(vmx, {"guestinfo.labctl.ip": "192.168.69.12; reboot", "guestinfo.labctl.hostname": "$(reboot)"})
    host = _power_on(drv, vmx, hdir)
    st = host.state
    assert st.boot_count == 1 and st.hostname == "esx1" and st.vmknics[0].ip == "192.168.69.11"
    code, out, err = host.run(f"/bin/sh {S.LOCAL_SH}")
    assert code == 0 and "refusing guestinfo.labctl values: hostname ip" in err


def test_a_clone_renamed_by_hand_but_with_its_source_key_still_takes_a_new_identity(lab):
    """Someone set the hostname at the console (or the address): the clone still serves its source's SSH key,
    which guestinfo.labctl.sourcekey names (labctl made that key for the source's install)."""
    topo, drv, golden, vmx, hdir = lab
    st = S.load_state(hdir)
    SimHost(st, hdir).run("esxcli system hostname set --host=esx2 && /sbin/auto-backup.sh")
    S.save_state(hdir, st)
    src_key = golden.files["/etc/ssh/ssh_host_rsa_key.pub"].split()[1]
    drv.reconfigure(vmx, {"guestinfo.labctl.sourcekey": src_key})
    again = _power_on(drv, vmx, hdir).state
    assert again.hostname == "esx2" and again.boot_count == 2
    assert src_key not in again.files["/etc/ssh/ssh_host_rsa_key.pub"]
    assert again.system_uuid != golden.system_uuid
