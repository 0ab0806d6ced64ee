"""Kickstarts per ESX era (goldens), crypt hashes held to openssl, 0600 writes that never carry the plaintext.

Regenerate the goldens after an intended change with `LABCTL_UPDATE_GOLDEN=1 pytest tests/render/test_kickstart.py`.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from labctl.render import cryptpw, identity, kickstart
from labctl.topology import load_topology
from labctl.topology.versions import EsxVersion

GOLDEN = Path(__file__).parent / "golden" / "kickstart"
UPDATE = os.environ.get("LABCTL_UPDATE_GOLDEN") == "1"
PASSWORD = "Lab-Passw0rd!"  # what a user exports as LAB_ROOT_PW; must never reach a file

LAB = """\
lab: kslab
workstation: {{version: "17.5", vm_dir: {vm_dir}}}
ssh: {{password_env: LAB_ROOT_PW}}
networks:
  - {{name: lan, type: lan-segment, subnet: 192.168.69.0/24}}
  - {{name: mgmt, type: host-only, vmnet: 3, subnet: 10.20.0.0/24, host_ip: 10.20.0.1, gateway: 10.20.0.254}}
esx_hosts:
  - name: src
    flavor: {flavor}
    version: "{version}"
    memory_mb: 8192
    iso: installer.iso
    nics: [{net}]
    management: {{network: {net}, ip: {ip}}}
    install: {{firstboot: [{firstboot}]}}
{clone}"""

CLONE = """\
  - name: copy
    linked_clone_of: src
    management: {network: NET, ip: IP}
"""

# (golden name, flavor, version, gateway network?, has a clone?) — one case per era and then some
ERAS = [
    ("esx-3.5", "esx", "3.5u5", False, True),
    ("esx-4.0", "esx", "4.0", True, False),
    ("esx-4.1", "esx", "4.1u3", False, True),
    ("esxi-4.1", "esxi", "4.1", True, True),
    ("esxi-5.5", "esxi", "5.5", True, False),
    ("esxi-6.7", "esxi", "6.7u3", False, True),
    ("esxi-7.0", "esxi", "7.0u3", True, True),
    ("esxi-8.0", "esxi", "8.0u2", False, True),
]


def _topology(tmp_path, flavor, version, gateway, clone, firstboot='"esxcli system ntp set -s 10.20.0.1"'):
    net, ip = ("mgmt", "10.20.0.11") if gateway else ("lan", "192.168.69.11")
    f = tmp_path / "lab.yaml"
    f.write_text(LAB.format(vm_dir=tmp_path / "vms", flavor=flavor, version=version, net=net, ip=ip,
                            firstboot=firstboot, clone=CLONE.replace("NET", net).replace("IP", ip[:-1] + "2") if clone else ""))
    return load_topology(f)


def _golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.ks.cfg"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    assert path.is_file(), f"missing golden {path}; run with LABCTL_UPDATE_GOLDEN=1"
    assert text == path.read_text(), f"{path.name} differs (LABCTL_UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("name,flavor,version,gateway,clone", ERAS, ids=[e[0] for e in ERAS])
def test_golden_per_era(tmp_path, name, flavor, version, gateway, clone):
    topo = _topology(tmp_path, flavor, version, gateway, clone)
    host = topo.host("src")
    h = cryptpw.hash_password(PASSWORD, cryptpw.scheme_for(host.flavor, host.version_info.release), salt="labctlSALT")
    text = kickstart.render_kickstart(topo, host, h)
    _golden(name, text)
    assert f"rootpw --iscrypted {h}" in text and PASSWORD not in text
    assert ("$6$" if host.version_info.release >= (6, 0) else "$1$") in text
    assert "esxcli system ntp set -s 10.20.0.1" in text  # the user's line, verbatim
    assert "clone identity hook" in text and "PLACEHOLDER" not in text
    guestinfo = clone and identity.method(host) == "guestinfo"  # ESXi 5.1+: the boot script; else the SSH stage
    assert ("> /etc/rc.local.d/local.sh" in text) == guestinfo
    assert ("--novmfsondisk" in text) == (clone and kickstart.era(host) == "esxi")  # no local VMFS to duplicate
    assert ("FollowHardwareMac" in text) == clone and ("uuid/d' /etc/vmware/esx.conf" in text) == clone
    assert (" --gateway=10.20.0.254" in text) == gateway


def test_golden_esx_90(tmp_path):
    """ESX 9.0 (ESXi renamed): the 5.0–8.x kickstart, SHA-512 hash. Built from the 8.0 host with 9.0's version so the
    test does not depend on which release table validation has."""
    topo = _topology(tmp_path, "esxi", "8.0u2", True, False)
    host = dataclasses.replace(topo.host("src"), flavor="esx", version="9.0", version_info=EsxVersion(9, 0))
    assert kickstart.era(host) == "esxi" and cryptpw.scheme_for(host.flavor, host.version_info.release) == "sha512"
    text = kickstart.render_kickstart(topo, host, cryptpw.hash_password(PASSWORD, "sha512", salt="labctlSALT"))
    _golden("esx-9.0", text)


@pytest.mark.parametrize("version,expected", [("3.5", None), ("4.0", None), ("4.1", "esxi-4.1"), ("5.0", "esxi"),
                                              ("8.0", "esxi")])
def test_eras(tmp_path, version, expected):
    topo = _topology(tmp_path, "esxi", "8.0u2", True, False)
    v = EsxVersion(*map(int, version.split(".")))
    assert kickstart.era(dataclasses.replace(topo.host("src"), version_info=v)) == expected
    for classic, era in (("3.5", "esx-classic-3"), ("4.0", "esx-classic-4"), ("4.1", "esx-classic-4")):
        cv = EsxVersion(*map(int, classic.split(".")))
        assert kickstart.era(dataclasses.replace(topo.host("src"), flavor="esx", version_info=cv)) == era


# ---- crypt hashes, held to openssl ------------------------------------------------------------------------------
HASH_CASES = [("VMware1!", "abcdefgh"), ("pässwörd ünïcode", "Zz./"), ("x" * 100, "saltsaltsaltsalt"),
              ("a", "a"), ("with space and $dollar", "0123456789abcdefXYZ")]


@pytest.mark.parametrize("password,salt", HASH_CASES)
def test_hashes_match_openssl(password, salt):
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed (installed by .ci/run)"
    for flag, ours in (("-1", cryptpw.md5_crypt(password, salt[:8])), ("-6", cryptpw.sha512_crypt(password, salt))):
        ref = subprocess.run([openssl, "passwd", flag, "-salt", salt, password], capture_output=True, text=True,
                             check=True).stdout.strip()
        assert ours == ref, (flag, ours, ref)


def test_hash_password_salts_and_rejects():
    a, b = cryptpw.hash_password("pw", "sha512"), cryptpw.hash_password("pw", "sha512")
    assert a != b and a.startswith("$6$") and len(a.split("$")[2]) == 16
    assert cryptpw.hash_password("pw", "md5").startswith("$1$")
    with pytest.raises(ValueError):
        cryptpw.md5_crypt("pw", "bad salt")
    with pytest.raises(ValueError):
        cryptpw.hash_password("pw", "des")


def test_render_refuses_a_plaintext_password(tmp_path):
    topo = _topology(tmp_path, "esxi", "8.0u2", True, False)
    with pytest.raises(ValueError, match="never a plaintext"):
        kickstart.render_kickstart(topo, topo.host("src"), PASSWORD)


# ---- writing: 0600, atomic, never the plaintext ------------------------------------------------------------------
def test_write_is_0600_and_no_file_carries_the_password(tmp_path, run_cli):
    topo = _topology(tmp_path, "esxi", "7.0u3", True, True)
    r = run_cli("kickstart", str(tmp_path / "lab.yaml"), "src", "--write", environ={"LAB_ROOT_PW": PASSWORD})
    assert r.status == 0, r.err
    path = Path(r.out.strip())
    assert path == topo.state_dir / "kickstart" / "src.ks.cfg"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    h = text.split("rootpw --iscrypted ", 1)[1].split()[0]
    assert h.startswith("$6$") and cryptpw.sha512_crypt(PASSWORD, h.split("$")[2]) == h
    again = run_cli("kickstart", str(tmp_path / "lab.yaml"), "src", "--write", environ={"LAB_ROOT_PW": PASSWORD})
    assert again.status == 0 and stat.S_IMODE(path.stat().st_mode) == 0o600
    for f in tmp_path.rglob("*"):
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f
    assert PASSWORD not in r.out + r.err + again.out + again.err


def test_write_without_a_password_is_a_usage_error(tmp_path, run_cli):
    _topology(tmp_path, "esxi", "8.0u2", True, False)
    r = run_cli("kickstart", str(tmp_path / "lab.yaml"), "src", "--write")
    assert r.status == 2 and "no root password for src's kickstart" in r.err and "LAB_ROOT_PW" in r.err
    assert not (tmp_path / "vms" / ".labctl" / "kickstart").exists()


# ---- the command ---------------------------------------------------------------------------------------------------
def test_cli_prints_masked(tmp_path, run_cli):
    _topology(tmp_path, "esx", "3.5u5", False, True)
    r = run_cli("kickstart", str(tmp_path / "lab.yaml"), "src", environ={"LAB_ROOT_PW": PASSWORD})
    assert r.status == 0, r.err
    assert "rootpw --iscrypted ********\n" in r.out and "$1$" not in r.out and PASSWORD not in r.out
    assert "vmaccepteula" in r.out and "PermitRootLogin yes" in r.out


def test_cli_json(tmp_path, run_cli):
    import json

    _topology(tmp_path, "esxi", "6.7u3", True, False)
    doc = json.loads(run_cli("kickstart", str(tmp_path / "lab.yaml"), "src", "--json").out)
    assert doc["host"] == "src" and doc["era"] == "esxi" and doc["scheme"] == "sha512" and doc["path"] is None
    assert "rootpw --iscrypted ********\n" in doc["kickstart"] and doc["template"] is None


def test_cli_refuses_clone_none_and_unknown(tmp_path, run_cli):
    topo_file = tmp_path / "lab.yaml"
    _topology(tmp_path, "esxi", "8.0u2", True, True)
    r = run_cli("kickstart", str(topo_file), "copy")
    assert r.status == 2 and "linked clone of src" in r.err and "Traceback" not in r.err
    r = run_cli("kickstart", str(topo_file), "scr")
    assert r.status == 2 and "unknown host 'scr'" in r.err and "src" in r.err
    topo_file.write_text(topo_file.read_text().replace("install: {", "install: {kickstart: none, "))
    r = run_cli("kickstart", str(topo_file), "src")
    assert r.status == 2 and "kickstart: none" in r.err


def test_user_templates_override(tmp_path, run_cli):
    _topology(tmp_path, "esxi", "8.0u2", True, False)
    mine = tmp_path / "my" / "kickstart"
    mine.mkdir(parents=True)
    (mine / "esxi.ks.j2").write_text("vmaccepteula\nrootpw --iscrypted {{ password_hash }}\n# mine {{ hostname }}\n")
    r = run_cli("kickstart", str(tmp_path / "lab.yaml"), "src", "--templates", str(tmp_path / "my"))
    assert r.status == 0 and r.out == "vmaccepteula\nrootpw --iscrypted ********\n# mine src\n"


def test_install_kickstart_path_is_rendered(tmp_path):
    own = tmp_path / "own.ks.j2"
    own.write_text('{% include "kickstart/_header.ks.j2" %}\nvmaccepteula\nrootpw --iscrypted {{ password_hash }}\n'
                   "{% for l in firstboot %}{{ l }}\n{% endfor %}")
    f = tmp_path / "lab.yaml"
    _topology(tmp_path, "esxi", "8.0u2", True, False)
    f.write_text(f.read_text().replace("install: {", "install: {kickstart: own.ks.j2, "))
    topo = load_topology(f)
    assert topo.host("src").install.template == own
    text = kickstart.render_kickstart(topo, topo.host("src"), cryptpw.MASK)
    assert text.endswith("vmaccepteula\nrootpw --iscrypted ********\nesxcli system ntp set -s 10.20.0.1\n")


def test_a_broken_user_template_is_a_usage_error_with_its_line(tmp_path, run_cli):
    (tmp_path / "own.ks.j2").write_text("vmaccepteula\n{% if x %}\n")
    (tmp_path / "undef.ks.j2").write_text("vmaccepteula {{ no_such_variable }}\n")
    _topology(tmp_path, "esxi", "8.0u2", True, False)
    f = tmp_path / "lab.yaml"
    text = f.read_text()
    for name, expect in (("own.ks.j2", "own.ks.j2 line 2"), ("undef.ks.j2", "'no_such_variable' is undefined")):
        f.write_text(text.replace("install: {", f"install: {{kickstart: {name}, "))
        r = run_cli("kickstart", str(f), "src")
        assert r.status == 2 and expect in r.err and "Traceback" not in r.err, r.err


def test_clones_inherit_no_install(tmp_path):
    topo = _topology(tmp_path, "esxi", "8.0u2", True, True)
    assert topo.host("src").install.firstboot == ("esxcli system ntp set -s 10.20.0.1",)
    assert topo.host("copy").install is None


def test_mask():
    assert kickstart.mask("x\nrootpw --iscrypted $6$ab$cd\ny") == "x\nrootpw --iscrypted ********\ny"


def test_root_password_from_env_or_prompt(tmp_path):
    topo = _topology(tmp_path, "esx", "4.1u3", False, False)
    host = topo.host("src")
    h = kickstart.root_password_hash(topo, host, {"LAB_ROOT_PW": PASSWORD})
    assert h.startswith("$1$") and cryptpw.md5_crypt(PASSWORD, h.split("$")[2]) == h
    asked = []
    h2 = kickstart.root_password_hash(topo, host, {}, lambda text: asked.append(text) or PASSWORD)
    assert asked and "src" in asked[0] and cryptpw.md5_crypt(PASSWORD, h2.split("$")[2]) == h2
    from labctl.errors import UsageError

    with pytest.raises(UsageError, match="no root password"):
        kickstart.root_password_hash(topo, host, {}, lambda text: None)


# ---- labctl iso build FILE --host NAME (the ISO layer calls render_kickstart) ------------------------------------
def test_iso_build_from_the_topology(tmp_path, run_cli):
    import json

    from labctl.iso import synthetic
    from labctl.iso.image import inspect_iso
    from labctl.iso.kickstart import read_kickstart_iso

    synthetic.write_esxi_iso(tmp_path / "installer.iso", "8.0u2", "22380479")
    f = tmp_path / "lab.yaml"
    _topology(tmp_path, "esxi", "8.0u2", True, True)
    f.write_text(f.read_text().replace("install: {", "install: {boot_options: [allowLegacyCPU=true], "))
    argv = ("iso", "build", str(f), "--host", "src", "-o", str(tmp_path / "out"), "--json")
    r = run_cli(*argv, environ={"LAB_ROOT_PW": PASSWORD})
    assert r.status == 0, r.err
    doc = json.loads(r.out)
    ks = read_kickstart_iso(doc["kickstart_iso"]).decode()
    assert Path(doc["kickstart_iso"]).name == "KS-src.iso" and stat.S_IMODE(os.stat(doc["kickstart_iso"]).st_mode) == 0o600
    assert cryptpw.verify(PASSWORD, kickstart.hash_in(ks)) and kickstart.hash_in(ks).startswith("$6$")
    assert "--hostname=src" in ks and "FollowHardwareMac" in ks
    assert "allowLegacyCPU=true" in inspect_iso(doc["installer"]).configs["BOOT.CFG"]
    again = json.loads(run_cli(*argv, environ={"LAB_ROOT_PW": PASSWORD}).out)
    assert again["kickstart_status"] == "unchanged" and again["installer_status"] == "cached"
    changed = json.loads(run_cli(*argv, environ={"LAB_ROOT_PW": "another one"}).out)
    assert changed["kickstart_status"] == "written"
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert PASSWORD.encode() not in p.read_bytes(), p
    r = run_cli("iso", "build", str(f), "--host", "copy", "-o", str(tmp_path / "out"), environ={"LAB_ROOT_PW": "x"})
    assert r.status == 2 and "linked clone" in r.err


def test_iso_build_refuses_an_iso_of_another_version(tmp_path, run_cli):
    from labctl.iso import synthetic

    synthetic.write_esxi_iso(tmp_path / "installer.iso", "7.0u3")
    _topology(tmp_path, "esxi", "8.0u2", True, False)
    r = run_cli("iso", "build", str(tmp_path / "lab.yaml"), "--host", "src", "-o", str(tmp_path / "out"),
                environ={"LAB_ROOT_PW": PASSWORD})
    assert r.status == 2 and "7.0u3" in r.err and "8.0u2" in r.err and "Traceback" not in r.err
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").glob("*.iso"))


def test_write_keeps_the_hash_while_the_password_is_the_same(tmp_path, run_cli):
    _topology(tmp_path, "esxi", "8.0u2", True, False)
    argv = ("kickstart", str(tmp_path / "lab.yaml"), "src", "--write")
    path = Path(run_cli(*argv, environ={"LAB_ROOT_PW": PASSWORD}).out.strip())
    first = path.read_text()
    assert run_cli(*argv, environ={"LAB_ROOT_PW": PASSWORD}).status == 0 and path.read_text() == first
    run_cli(*argv, environ={"LAB_ROOT_PW": "changed"})
    assert cryptpw.verify("changed", kickstart.hash_in(path.read_text()))


def test_verify():
    h = cryptpw.sha512_crypt("pw", "salt")
    assert cryptpw.verify("pw", h) and not cryptpw.verify("pW", h) and not cryptpw.verify("pw", "$6$x")
    assert cryptpw.verify("pw", cryptpw.md5_crypt("pw", "s")) and cryptpw.verify("pw", cryptpw.sha512_crypt("pw", "s", 6000))


def _hook_lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.endswith("/etc/rc.local.d/local.sh") and ln.startswith("printf ")]


def test_identity_hook_writes_exactly_the_boot_script_and_it_parses(tmp_path):
    """The hook's printf lines, run by a real POSIX shell, write the boot script byte for byte; `sh -n` (dash or
    bash, not labctl's) parses it; the golden keeps the script readable for review."""
    topo = _topology(tmp_path, "esxi", "8.0u2", False, True)
    host = topo.host("src")
    text = kickstart.render_kickstart(topo, host, cryptpw.hash_password(PASSWORD, "sha512", salt="labctlSALT"))
    from labctl.render.templates import environment, render

    script = render(environment(), "kickstart/_identity_local.sh.j2", kickstart.context(topo, host, "x"))
    _golden("identity-local.sh", script)
    lines = _hook_lines(text)
    assert len(lines) == len(script.splitlines())
    target = tmp_path / "local.sh"
    prog = "\n".join(ln.replace("/etc/rc.local.d/local.sh", str(target)) for ln in lines) + "\n"
    subprocess.run(["sh", "-c", prog], check=True)
    assert target.read_text() == script
    for sh in ("dash", "bash"):
        if shutil.which(sh):
            r = subprocess.run([sh, "-n", str(target)], capture_output=True, text=True)
            assert r.returncode == 0, r.stderr
    # values only as quoted variables: nothing from the topology is pasted into the script
    assert "172." not in script and "src" not in script.split("\n", 2)[2]


def test_identity_hook_only_on_clone_sources_of_the_guestinfo_era(tmp_path):
    for flavor, version, clone, expect in (("esxi", "8.0u2", False, False), ("esxi", "5.0", True, False),
                                           ("esxi", "5.1", True, True), ("esx", "4.1u3", True, False)):
        topo = _topology(tmp_path, flavor, version, False, clone)
        host = topo.host("src")
        h = cryptpw.hash_password(PASSWORD, cryptpw.scheme_for(host.flavor, host.version_info.release), salt="s")
        text = kickstart.render_kickstart(topo, host, h)
        assert bool(_hook_lines(text)) == expect, (version, clone)
        if clone and not expect:
            assert "get their identity over SSH" in text
