"""Pure parts of the vSphere layer: HA keys and diffs, vCenter target resolution, known_hosts, the launcher's
missing-toolchain error. No simulator needed."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from labctl.errors import EnvironmentProblem, UsageError
from labctl.vsphere import ha
from labctl.vsphere.adapter import known_hosts_has
from labctl.vsphere.connection import VCenterSettings, normalize_thumbprint, redact, resolve_target


@pytest.mark.parametrize("version,legacy", [("2.5", True), ("4.0", True), ("4.1", True), ("4.1.1", True),
                                            ("5.0", False), ("6.5", False), ("8.0.2.0", False), ("", False),
                                            ("junk", False)])
def test_legacy_key_choice(version, legacy):
    assert ha.uses_legacy_keys(version) is legacy


def test_desired_options_fdm_and_aam():
    assert ha.desired_options(["a", "b"], False, legacy=False) == {"das.isolationaddress0": "a",
                                                                   "das.isolationaddress1": "b"}
    assert ha.desired_options(["a", "b", "c"], True, legacy=True) == {
        "das.isolationaddress": "a", "das.isolationaddress2": "b", "das.isolationaddress3": "c",
        "das.usedefaultisolationaddress": "false"}
    with pytest.raises(UsageError, match="at most 10"):
        ha.desired_options([f"10.0.0.{i}" for i in range(11)], False, legacy=False)
    with pytest.raises(UsageError, match="at most 9"):
        ha.desired_options([f"10.0.0.{i}" for i in range(10)], False, legacy=True)


def test_diff_keeps_foreign_options_and_removes_stale_managed_ones():
    current = {"das.isolationaddress0": "a", "das.isolationaddress5": "z", "das.failuredetectiontime": "20000",
               "das.usedefaultisolationaddress": "false"}
    d = ha.diff(True, current, True, {"das.isolationaddress0": "a", "das.isolationaddress1": "b"})
    assert d.enable is None
    assert d.set == {"das.isolationaddress1": "b"}
    assert d.remove == {"das.isolationaddress5": "z", "das.usedefaultisolationaddress": "false"}
    assert d.option_updates() == [("das.isolationaddress1", "b"), ("das.isolationaddress5", ""),
                                  ("das.usedefaultisolationaddress", "")]
    assert ha.diff(True, {"das.isolationaddress0": "a"}, True, {"das.isolationaddress0": "a"}).empty
    assert ha.diff(None, {}, False, {}).empty
    assert ha.diff(True, {}, False, {}).describe() == ["disable HA"]


SETTINGS = VCenterSettings(host="172.20.30.10", user="administrator@vsphere.local", password_env="LAB_VC_PW",
                           insecure=True)


def test_target_from_topology_password_env_and_insecure():
    t = resolve_target(settings=SETTINGS, environ={"LAB_VC_PW": "pw"})
    assert (t.scheme, t.host, t.port, t.path, t.user, t.password, t.insecure, t.source) == (
        "https", "172.20.30.10", 443, "/sdk", "administrator@vsphere.local", "pw", True, "topology")
    assert "pw" not in repr(t) and t.display == "https://172.20.30.10:443/sdk"


def test_override_url_wins_and_carries_credentials():
    env = {"GOVC_URL": "https://other/sdk", "LAB_VC_PW": "pw"}
    t = resolve_target(settings=SETTINGS, environ=env, override_url="http://u%40x:p%3Aw@127.0.0.1:8989/sdk")
    assert (t.scheme, t.host, t.port, t.user, t.password, t.source) == ("http", "127.0.0.1", 8989, "u@x", "p:w",
                                                                         "--vcenter")
    assert t.insecure is False  # the topology's insecure flag is for the topology's vCenter only


def test_govc_variables():
    env = {"GOVC_URL": "vc.example/sdk", "GOVC_USERNAME": "me", "GOVC_PASSWORD": "pw", "GOVC_INSECURE": "1"}
    t = resolve_target(settings=None, environ=env)
    assert (t.host, t.user, t.password, t.insecure, t.source) == ("vc.example", "me", "pw", True, "GOVC_URL")


def test_no_password_prompt_or_error():
    with pytest.raises(UsageError, match="no password") as e:
        resolve_target(settings=SETTINGS, environ={})
    assert "$LAB_VC_PW" in e.value.hint
    t = resolve_target(settings=SETTINGS, environ={}, prompt=lambda text: "typed")
    assert t.password == "typed"


def test_thumbprint_pins_instead_of_insecure():
    t = resolve_target(settings=SETTINGS, environ={"LAB_VC_PW": "pw"}, thumbprint="ab" * 20)
    assert t.thumbprint == ":".join(["AB"] * 20) and t.insecure is False
    with pytest.raises(UsageError):
        normalize_thumbprint("abc")


def test_redact():
    assert redact("http://u:secret@h:1/sdk") == "http://u:***@h:1/sdk"
    assert redact("https://h/sdk") == "https://h/sdk"


def test_known_hosts_plain_bracketed_and_hashed(tmp_path):
    salt = b"0123456789abcdef0123"
    digest = base64.b64encode(hmac.new(salt, b"10.0.0.3", hashlib.sha1).digest()).decode()
    kh = tmp_path / "known_hosts"
    kh.write_text(f"10.0.0.1,esx1 ssh-rsa AAAA\n[10.0.0.2]:2222 ssh-ed25519 AAAA\n"
                  f"|1|{base64.b64encode(salt).decode()}|{digest} ssh-rsa AAAA\n# comment\n")
    assert known_hosts_has(kh, ["esx1"]) and known_hosts_has(kh, ["10.0.0.2"]) and known_hosts_has(kh, ["10.0.0.3"])
    assert not known_hosts_has(kh, ["10.0.0.4"]) and not known_hosts_has(tmp_path / "missing", ["10.0.0.1"])


def test_missing_go_is_an_environment_problem_with_the_apt_command(tmp_path):
    from labctl.sim import vcsim

    with pytest.raises(EnvironmentProblem) as e:
        vcsim.find_toolchain({"PATH": str(tmp_path)})
    assert "golang-go golang-github-vmware-govmomi-dev" in e.value.hint
    fake_go = tmp_path / "go"
    fake_go.write_text("#!/bin/sh\necho go version go0.0 fake\n")
    fake_go.chmod(0o755)
    with pytest.raises(EnvironmentProblem, match="govmomi") as e:
        vcsim.find_toolchain({"PATH": str(tmp_path), "LABCTL_GO": str(fake_go),
                              "LABCTL_GOVMOMI_GOPATH": str(tmp_path / "nowhere")})


def test_no_pyvmomi_or_paramiko_at_import_time():
    import subprocess
    import sys

    code = ("import sys, labctl.cli.vcenter, labctl.cli.nfs, labctl.vsphere.operations, labctl.vsphere.adapter, "
            "labctl.vsphere.nfs_ssh, labctl.sim.vcsim; "
            "print([m for m in sys.modules if m.split('.')[0] in ('pyVmomi', 'pyVim', 'paramiko')])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_help_teaches(run_cli):
    r = run_cli("vcenter", "--help")
    assert r.status == 0 and "--thumbprint" in r.out and "GOVC_URL" in r.out and "--trust-new-hosts" in r.out
    r = run_cli("nfs", "--help")
    assert r.status == 0 and "--via" in r.out and "esxcfg-nas" in r.out
