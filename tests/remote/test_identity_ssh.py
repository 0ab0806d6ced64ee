"""Clone identity over SSH (ESX classic, ESXi 4.1/5.0): the plan is pure and idempotent, and the re-address job
is commit confirmed in the simulated shell of an ESX 3.5 clone: confirmed, the new address stays; unconfirmed, the
job puts the old one back by itself."""

from __future__ import annotations

import time

from labctl.remote.facts.base import Platform
from labctl.remote.operations import identity as op
from labctl.sim import state as S
from labctl.sim.boot import clone
from labctl.sim.host import SimHost

ESX35 = Platform("esx", (3, 5, 5))
WANT = op.Wanted(name="esx2", hostname="esx2", management="vswif0", ip="192.168.69.12", netmask="255.255.255.0",
                 gateway=None, portgroup="Service Console", vmkernel=(("vmk0", "10.10.10.12", "255.255.255.0",
                                                                       "VMkernel"),))
SRC_KEY = ("ssh-rsa", "AAAAB3NzaC1yc2EAAAADAQABAAABAQSOURCE")


def _facts(**kw) -> op.Facts:
    base = dict(hostname="esx1", ip="192.168.69.11", netmask="255.255.255.0", host_key=SRC_KEY,
                vmkernel=(("vmk0", "10.10.10.11"),))
    return op.Facts(**{**base, **kw})


def test_plan_everything_for_a_fresh_clone_and_nothing_once_it_is_done():
    c = op.plan("esx2", ESX35, WANT, _facts(), source_key=SRC_KEY)
    assert c is not None and c.rename and c.rekey and c.readdress and c.vmkernel == WANT.vmkernel
    assert "hostname esx2" in c.describe() and "vswif0 192.168.69.12/255.255.255.0 (commit confirmed)" in c.describe()
    done = _facts(hostname="esx2", ip="192.168.69.12", host_key=("ssh-rsa", "AAAAOWN"),
                  vmkernel=(("vmk0", "10.10.10.12"),))
    assert op.plan("esx2", ESX35, WANT, done, source_key=None) is None
    # a clone someone addressed by hand still holds its source's key: it gets new keys, nothing else
    by_hand = op.plan("esx2", ESX35, WANT, _facts(hostname="esx2", ip="192.168.69.12",
                                                  vmkernel=(("vmk0", "10.10.10.12"),)), source_key=SRC_KEY)
    assert by_hand and by_hand.rekey and not (by_hand.rename or by_hand.readdress or by_hand.vmkernel)
    # a VMkernel port the clone does not have is not its identity's to make
    assert not op.plan("esx2", ESX35, WANT, _facts(vmkernel=()), source_key=SRC_KEY).vmkernel
    assert not op.plan("esx2", ESX35, WANT, None, source_key=None).vmkernel  # unknown before the clone runs


def test_commands_are_quoted_argv_and_the_job_restores_from_its_own_backups():
    c = op.plan("esx2", ESX35, WANT, _facts(), source_key=SRC_KEY)
    prep = c.prepare_commands()
    assert "sed -i 's/^HOSTNAME=[^.]*/HOSTNAME=esx2/' /etc/sysconfig/network" in prep
    assert "hostname esx2" in prep and "service sshd restart" in prep
    assert "ssh-keygen -q -t rsa -b 2048 -N '' -C '' -f /etc/ssh/ssh_host_rsa_key" in prep
    assert "esxcfg-vmknic -i 10.10.10.12 -n 255.255.255.0 VMkernel" in prep
    job = c.readdress_commands()[0]
    assert job.startswith("rm -rf /tmp/labctl-identity-") and job.rstrip().endswith("&")
    assert "nohup sh -c" in job and ".ifcfg.bak" in job and "IPADDR=192.168.69.12" in job


def _classic_clone():
    src = S.fresh_install("esx1", "esx", "3.5u5", nic_macs=["00:50:56:01:00:01"], ip="192.168.69.11",
                          netmask="255.255.255.0")
    return SimHost(clone(src, "esx2", nic_macs=["00:50:56:01:00:02"]), None)


def _run_job(host: SimHost, c: op.IdentityChange) -> None:
    for cmd in c.prepare_commands():
        code, _, err = host.run(cmd)
        assert code == 0, (cmd, err)
    code, _, err = host.run(c.readdress_commands()[0])
    assert code == 0, err


def _wait(pred, seconds: float) -> bool:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def test_confirmed_re_address_stays_and_unconfirmed_rolls_back_in_the_simulated_shell():
    host = _classic_clone()
    old_pub = host.state.files.get("/etc/ssh/ssh_host_rsa_key.pub")
    want = op.Wanted(**{**WANT.__dict__, "vmkernel": ()})
    c = op.plan("esx2", ESX35, want, _facts(vmkernel=()), source_key=SRC_KEY)
    c = op.IdentityChange(**{**c.__dict__, "confirm_within": 3.0})
    _run_job(host, c)
    vswif = host.state.interface("vswif0")
    assert _wait(lambda: vswif.ip == "192.168.69.12" or host.state.interface("vswif0").ip == "192.168.69.12", 5)
    assert host.state.hostname == "esx2"
    assert host.state.files["/etc/ssh/ssh_host_rsa_key.pub"] != old_pub
    assert host.run(c.confirm_command())[0] == 0
    assert _wait(lambda: host.fs.is_file(c.job.done), 10)
    assert host.state.interface("vswif0").ip == "192.168.69.12"
    assert "IPADDR=192.168.69.12" in host.state.files[S.IFCFG_VSWIF0]
    assert not host.fs.exists(c.job.rolled_back)

    host = _classic_clone()
    _run_job(host, c)  # nobody confirms (labctl never reached the new address)
    assert _wait(lambda: host.fs.is_file(c.job.done), 15)
    assert host.fs.is_file(c.job.rolled_back)
    assert host.state.interface("vswif0").ip == "192.168.69.11"
    assert "IPADDR=192.168.69.11" in host.state.files[S.IFCFG_VSWIF0]
