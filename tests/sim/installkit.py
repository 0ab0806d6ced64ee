"""Install media for a simulated golden VM, made the way the pipeline makes them: a synthetic installer ISO of the
host's version patched with `labctl.iso.patch.patch_copy` (ks=cdrom:/KS.CFG), and a KS CD carrying the kickstart
rendered from the real templates — attached as the two CD-ROMs of the VM's .vmx (boot order hdd,cdrom)."""

from __future__ import annotations

from pathlib import Path

from labctl.iso import synthetic
from labctl.iso.kickstart import write_kickstart_iso
from labctl.iso.patch import patch_copy
from labctl.render import cryptpw
from labctl.render.kickstart import render_kickstart

PASSWORD = "VMware1!"  # a test password; only its hash goes into the kickstart


def installer_iso(work: Path, flavor: str, version: str, *, patched: bool = True, **kw) -> Path:
    """A synthetic installer of that flavor and version (ESX 9 is an ESXi-style medium), patched unless asked."""
    src = work / f"installer-{flavor}-{version}.iso"
    if not src.exists():
        if flavor == "esx" and not version.startswith("9"):
            synthetic.write_classic_iso(src, version, **kw)
        else:
            synthetic.write_esxi_iso(src, version, **kw)
    if not patched:
        return src
    out = work / f"patched-{flavor}-{version}.iso"
    if not out.exists():
        patch_copy(src, out)
    return out


def authorized_keys_path(flavor: str, release: tuple[int, int]) -> str:
    if flavor == "esx" and release < (9, 0):
        return "/root/.ssh/authorized_keys"
    return "/.ssh/authorized_keys" if release < (5, 0) else "/etc/ssh/keys-root/authorized_keys"


def kickstart(topo, name: str, *, authorize: str | None = None) -> str:
    """The host's kickstart from the templates; `authorize` (a public key line) is written to root's
    authorized_keys first thing in %firstboot (ESXi) or %post (ESX classic)."""
    h = topo.host(name)
    release = h.version_info.release
    text = render_kickstart(topo, h, cryptpw.hash_password(PASSWORD, cryptpw.scheme_for(h.flavor, release)))
    if authorize is None:
        return text
    path = authorized_keys_path(h.flavor, release)
    block = f"mkdir -p {path.rsplit('/', 1)[0] or '/'}\necho '{authorize}' > {path}\n"
    out, done = [], False
    for line in text.splitlines(keepends=True):
        out.append(line)
        if not done and line.startswith(("%firstboot", "%post")):
            out.append(block)
            done = True
    assert done, "the kickstart has no %firstboot/%post section"
    return "".join(out)


def attach(driver, vmx: Path, isos: list[Path]) -> None:
    """The VM's CD-ROMs, as the templates lay them out (SATA on EFI VMs, else IDE), connected at power-on."""
    doc = driver.read_config(vmx)
    ctrl, first = ("sata0", 1) if (doc.get("firmware") or "") == "efi" else ("ide1", 0)
    changes = {f"{ctrl}.present": "TRUE", "bios.bootOrder": "hdd,cdrom"}
    for unit, iso in enumerate(isos, start=first):
        dev = f"{ctrl}:{unit}"
        changes.update({f"{dev}.present": "TRUE", f"{dev}.deviceType": "cdrom-image", f"{dev}.fileName": str(iso),
                        f"{dev}.startConnected": "TRUE"})
    driver.reconfigure(vmx, changes)


def install_media(driver, vmx: Path, topo, name: str, work: Path, *, authorize: str | None = None,
                  ks_text: str | None = None) -> tuple[Path, Path]:
    """Attach a patched installer of the host's version and its KS CD; returns (installer ISO, KS ISO)."""
    h = topo.host(name)
    work.mkdir(parents=True, exist_ok=True)
    inst = installer_iso(work, h.flavor, h.version)
    ks = work / f"{name}-ks.iso"
    write_kickstart_iso(ks, ks_text if ks_text is not None else kickstart(topo, name, authorize=authorize))
    attach(driver, vmx, [inst, ks])
    return inst, ks
