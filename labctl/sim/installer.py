"""The simulated installer: what a Workstation VM with a blank disk and an ESX(i) installer CD does at power-on.

    result = power_on(hdir, config, log=vm_log, vm_name="esx1")   # "disk" | "installed" | "eula" | "no-os" | "failed"

`config` is the VM's .vmx keys (any case). The VM's disk is the simulator's host state in `hdir` (`state.json`):
- an installed disk boots ("disk");
- a blank disk falls through to the CD-ROMs (`bios.bootOrder = "hdd,cdrom"`; a boot order without `cdrom` leaves
  nothing to boot: "no-os"). The firmware (`firmware = "efi"`, else BIOS) boots the first connected CD image that
  has an El Torito entry for it (ESXi 5.x media boot BIOS only: an EFI VM finds nothing: "no-os"); the medium is
  read with `labctl.iso` (pycdlib), as it is: its BOOT.CFG (BIOS) or EFI/BOOT/BOOT.CFG (UEFI), or the isolinux
  `append` line (ESX classic, ESXi 4.x);
- without `ks=` there, the installer waits at its EULA screen ("eula": no SSH, ever; the log says so);
- `ks=cdrom:/PATH` is looked up on every connected CD (as the ESXi installer does: "each CD-ROM is mounted and
  checked until the file that matches the path is found"). The ESXi installer matches the ISO 9660 name, so the
  path must be uppercase (VMware's install guide: "you must use uppercase characters to provide the path of the
  script, for example, ks=cdrom:/KS_CUST.CFG"); Anaconda (ESX classic) mounts with Rock Ridge and matches that
  name exactly. Other `ks=` sources (usb:, file://, http://, nfs:) are not modelled and fail the install visibly;
- the kickstart is interpreted per era (`labctl.sim.kickstart`); an error stops the install ("failed", the
  installer's text in the log);
- the installed host's flavor, version and build come from the medium, never from the topology. Its network,
  hostname and root password hash come from the kickstart (a plaintext `rootpw` is hashed as the installer does);
  SSH is off on a fresh ESXi (the kickstart's `%firstboot` must enable and start it); ESX classic runs sshd but
  refuses root (`PermitRootLogin no`) until its `%post` allows it. Root has no authorized keys. `%post` runs at
  install time: on ESX classic in the installed system (through the simulated shell against the new disk), on ESXi
  in the installer's ramdisk (what it changes is gone at the reboot). `%firstboot` (ESXi) is kept on the disk and
  run once by the running host at its first boot (`SimHost.run_firstboot`), like `/etc/rc.local.d/local.sh`;
- without `reboot` the installer waits for Enter at its last screen ("failed": a console step); with it the VM
  reboots into the new disk ("installed") — unless the boot order puts the CD first, where the installer starts
  again (logged; "failed").

The log is the VM's `vmware.log` as far as the installer screen goes: one line per event, appended.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from pathlib import Path

from labctl.sim import state as S

RESULTS = ("disk", "installed", "eula", "no-os", "failed")
CDROM_TYPES = ("cdrom-image",)


def boot_disk(hdir: Path, nic_macs: list[str | None]) -> None:
    """Power-on of a simulated ESX VM: the .vmx's vNIC MACs become the host's NICs, then the host boots (a clone
    boots with what its disk holds: nobody is at its console)."""
    from labctl.sim import state as S
    from labctl.sim.boot import boot

    st = S.load_state(hdir)
    for i, nic in enumerate(st.nics):
        if i < len(nic_macs) and nic_macs[i]:
            nic.mac = nic_macs[i]
    boot(st)
    S.save_state(hdir, st)


def vnic_macs(doc) -> list[str | None]:
    """ethernet0..N's MAC as Workstation presents it: the static address, else the generated one (`doc`: a
    VmxFile or a mapping of .vmx keys, matched case-insensitively as Workstation does)."""
    if not hasattr(doc, "dump_bytes"):
        doc = _Keys(doc)
    out: list[str | None] = []
    i = 0
    while f"ethernet{i}.present" in doc or f"ethernet{i}.address" in doc:
        present = (doc.get(f"ethernet{i}.present") or "TRUE").upper() == "TRUE"
        if present:
            kind = (doc.get(f"ethernet{i}.addressType") or "generated").lower()
            mac = (
                doc.get(f"ethernet{i}.address")
                if kind == "static"
                else doc.get(f"ethernet{i}.generatedAddress")
            )
            out.append(mac.lower() if mac else None)
        i += 1
    return out


class _Keys:
    """.vmx keys given as a mapping, looked up case-insensitively."""

    def __init__(self, config: Mapping[str, str]):
        self._d = {k.lower(): v for k, v in config.items()}

    def get(self, key: str, default: str | None = None) -> str | None:
        return self._d.get(key.lower(), default)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.lower() in self._d


def _logger(log: Path, vm_name: str) -> Callable[[str], None]:
    def write(msg: str) -> None:
        log.parent.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + f".{int(time.time() * 1000) % 1000:03d}Z"
        with open(log, "a", encoding="utf-8") as f:
            for line in msg.splitlines() or [""]:
                f.write(f"{stamp}| {vm_name}| {line}\n")

    return write


def attached_cds(config: Mapping[str, str]) -> list[tuple[str, str]]:
    """(device, image path) of the CD-ROM images connected at power-on, in device order."""
    cfg = {k.lower(): v for k, v in config.items()}
    out = []
    for key, value in sorted(cfg.items()):
        if not key.endswith(".devicetype") or value.lower() not in CDROM_TYPES:
            continue
        dev = key[: -len(".devicetype")]
        controller = dev.split(":")[0]
        if cfg.get(f"{dev}.present", "TRUE").upper() != "TRUE" or cfg.get(f"{controller}.present",
                                                                            "TRUE").upper() != "TRUE":
            continue
        if cfg.get(f"{dev}.startconnected", "TRUE").upper() != "TRUE":
            continue
        if cfg.get(f"{dev}.filename"):
            out.append((dev, cfg[f"{dev}.filename"]))
    return out


def media_present(config: Mapping[str, str]) -> bool:
    """Is any CD image connected at power-on that exists on this machine?"""
    return any(Path(image).is_file() for _, image in attached_cds(config))


def _boot_order(cfg: Mapping[str, str]) -> list[str]:
    raw = cfg.get("bios.bootorder", "")
    return [w.strip().lower() for w in raw.split(",") if w.strip()] if raw else ["hdd", "cdrom"]


def _era(kind: str, release: tuple[int, int]) -> str | None:
    from labctl.iso.image import KIND_CLASSIC

    if kind == KIND_CLASSIC:
        return "esx-classic-3" if release < (4, 0) else "esx-classic-4"
    if release < (4, 1):
        return None  # ESXi Installable 3.5/4.0: no scripted install, ks= is not read
    return "esxi-4.1" if release < (5, 0) else "esxi"


def _version_text(v) -> str:
    return f"{v.major}.{v.minor}.{v.update}" if v.major >= 9 else f"{v.major}.{v.minor}u{v.update}"


def _cd_file(image: str, path: str, *, rock_ridge: bool) -> bytes | None:
    """The file at `path` on the image, matched exactly (ISO 9660 name without `;1`, or the Rock Ridge name)."""
    from labctl.iso.image import IsoError, SECTOR, open_iso

    try:
        iso = open_iso(image)
    except IsoError:
        return None
    try:
        cur = "/"
        parts = [p for p in path.split("/") if p]
        for i, want in enumerate(parts):
            found = None
            for rec in iso.list_children(iso_path=cur):
                if rec.is_dot() or rec.is_dotdot():
                    continue
                ident = rec.file_identifier().decode("latin-1")
                names = {ident.split(";", 1)[0].rstrip(".") if not rec.is_dir() else ident}
                rr = getattr(rec, "rock_ridge", None)
                if rock_ridge and rr is not None:
                    try:
                        names = {rr.name().decode("utf-8", "replace")} or names
                    except Exception:
                        pass
                if want in names:
                    found = rec
                    break
            if found is None:
                return None
            cur = cur.rstrip("/") + "/" + found.file_identifier().decode("latin-1")
            if i == len(parts) - 1:
                if found.is_dir() or found.get_data_length() > (1 << 20):
                    return None
                with open(image, "rb") as fp:
                    fp.seek(found.extent_location() * SECTOR)
                    return fp.read(found.get_data_length())
            if not found.is_dir():
                return None
        return None
    finally:
        iso.close()


def power_on(hdir: Path, config: Mapping[str, str], *, log: Path, vm_name: str) -> str:
    """Power the VM on (see the module text); returns one of RESULTS."""
    hdir = Path(hdir)
    cfg = {k.lower(): str(v) for k, v in config.items()}
    say = _logger(Path(log), vm_name)
    macs = vnic_macs(cfg)
    order = _boot_order(cfg)
    firmware = "efi" if cfg.get("firmware", "bios").lower() == "efi" else "bios"
    say(f"Power on ({'UEFI' if firmware == 'efi' else 'BIOS'} firmware, boot order {','.join(order)})")
    if (hdir / S.STATE_FILE).is_file() and "hdd" in order:
        boot_disk(hdir, macs)
        say("Booting from the hard disk")
        return "disk"
    if "cdrom" not in order:
        return _no_os(say, firmware, "the hard disk is blank and the boot order has no CD-ROM")
    return _boot_cd(hdir, cfg, say, macs, firmware, order, vm_name)


def _no_os(say: Callable[[str], None], firmware: str, why: str) -> str:
    say(why)
    say("EFI: No compatible bootloader found." if firmware == "efi" else "Operating System not found")
    return "no-os"


def _boot_cd(hdir: Path, cfg: dict[str, str], say, macs, firmware: str, order: list[str], vm_name: str) -> str:
    from labctl.iso import bootcfg
    from labctl.iso.image import KIND_CLASSIC, KIND_OTHER, IsoError, inspect_iso

    platform = "uefi" if firmware == "efi" else "bios"
    cds = attached_cds(cfg)
    infos = []
    for dev, image in cds:
        if not Path(image).is_file():
            say(f"Cannot connect {dev}: the file {image} does not exist (the device stays disconnected)")
            continue
        try:
            info = inspect_iso(image)
        except IsoError as e:
            say(f"{dev}: {image} is not a readable CD image ({e.message})")
            continue
        infos.append((dev, image, info))
    boot = next(((d, i, info) for d, i, info in infos if platform in info.boot), None)
    if boot is None:
        why = "the hard disk is blank and no connected CD-ROM has a " + (
            "UEFI" if platform == "uefi" else "BIOS") + " boot entry"
        return _no_os(say, firmware, why)
    dev, image, info = boot
    say(f"Booting {dev} ({image}, volume {info.volume_id}, {platform.upper()} El Torito entry)")
    if info.kind == KIND_OTHER or info.version is None:
        say("The CD boots, but it is no ESX installer; nothing the simulator models runs from it")
        return "no-os"
    release = (info.version.major, info.version.minor)
    flavor = "esx" if info.kind == KIND_CLASSIC else "esxi"
    if info.kind == KIND_CLASSIC:
        lb = bootcfg.install_label(info.configs.get("isolinux/isolinux.cfg") or info.configs.get("ISOLINUX.CFG", ""))
        ks = bootcfg.kickstart_in_words(list(lb.words)) if lb else None
        where = "isolinux append line"
    elif "BOOT.CFG" in info.configs or "EFI/BOOT/BOOT.CFG" in info.configs:
        name = "EFI/BOOT/BOOT.CFG" if platform == "uefi" else "BOOT.CFG"
        if name not in info.configs:
            say(f"Fatal error: /{name} not found on the installer CD")
            return "failed"
        ks = bootcfg.bootcfg_kickstart(info.configs[name])
        where = f"/{name} kernelopt"
    else:  # ESXi 4.x: mboot.c32 from ISOLINUX.CFG
        ks = None
        for line in info.configs.get("ISOLINUX.CFG", "").splitlines():
            words = line.split()
            if words and words[0].lower() == "append":
                ks = bootcfg.kickstart_in_words(words) or ks
        where = "ISOLINUX.CFG append line"
    era = _era(info.kind, release)
    say(f"Loading the {'ESX' if flavor == 'esx' or release >= (9, 0) else 'ESXi'} {info.version} installer "
        f"(build {info.build})")
    if ks is None or era is None:
        say(f"No kickstart: {'the installer of this release reads none' if era is None else 'no ks= on the ' + where}")
        say("Welcome to the VMware ESX(i) installation: End User License Agreement (EULA) - "
            "waiting for a key press at the console")
        return "eula"
    say(f"Scripted install: ks={ks} (from the {where})")
    script = _find_kickstart(ks, cfg, flavor, say)
    if script is None:
        return "failed"
    from labctl.sim import kickstart as K

    try:
        parsed = K.parse(script.decode("utf-8", "replace"), era, where=ks.split(":", 1)[-1])
    except K.KickstartError as e:
        say(e.message)
        say("The installation stopped: the script has an error (see above)")
        return "failed"
    if not macs or not any(macs):
        say("<NOT_FOUND> No network adapters were detected; the installation cannot continue")
        return "failed"
    try:
        st = _install(parsed, info, flavor, vm_name, macs, say)
    except K.KickstartError as e:
        say(e.message)
        return "failed"
    S.save_state(hdir, st)
    say(f"Installation complete: {st.version} build {S.build_of(st)} on {vm_name}'s first disk")
    if not parsed.has("reboot"):
        say("The installer waits at its last screen: press Enter to reboot (the kickstart has no `reboot`)")
        return "failed"
    if "hdd" not in order or order.index("cdrom") < order.index("hdd"):
        say("Rebooting: the boot order puts the CD-ROM first, so the installer starts again from the CD")
        return "failed"
    say("Rebooting into the installed system")
    boot_disk(hdir, macs)
    return "installed"


def _find_kickstart(ks: str, cfg: dict[str, str], flavor: str, say) -> bytes | None:
    source, sep, path = ks.partition(":")
    if source.lower() != "cdrom" or not sep or not path.startswith("/"):
        say(f"ks={ks}: only ks=cdrom:/PATH is modelled by the simulator (usb:, file://, http://, nfs: are not)")
        return None
    for dev, image in attached_cds(cfg):
        if Path(image).is_file():
            data = _cd_file(image, path, rock_ridge=flavor == "esx")
            if data is not None:
                say(f"Found the kickstart {path} on {dev} ({image})")
                return data
    if flavor == "esx":
        say(f"Error opening kickstart file {path}: No such file or directory")
    else:
        say(f"Error (see log for more info): cannot find kickstart file on cd-rom with path -- {path}")
    return None


def _install(ks, info, flavor: str, vm_name: str, macs: list[str | None], say) -> S.HostState:
    """The disk the installer writes from the parsed kickstart `ks` and the medium `info`."""
    from labctl.render import cryptpw
    from labctl.sim import kickstart as K

    release = (info.version.major, info.version.minor)
    nopts = ks.opts("network")
    proto = nopts.get("bootproto", "dhcp")
    ip = nopts.get("ip", "") if proto == "static" else ""
    netmask = nopts.get("netmask", "") if proto == "static" else ""
    gateway = nopts.get("gateway", "") if proto == "static" else ""
    fqdn = nopts.get("hostname", "") or "localhost"
    short, _, domain = fqdn.partition(".")
    nic_macs = [m or S.random_mac("00:0c:29") for m in macs]
    device = nopts.get("device", "")
    if device and flavor == "esxi":
        names = [f"vmnic{i}" for i in range(len(nic_macs))]
        if device not in names and device.lower() not in [m.lower() for m in nic_macs]:
            raise K.KickstartError(f"error:network: --device={device}: no such network adapter "
                                   f"(found {', '.join(names)})")
    if proto == "dhcp":
        say("network --bootproto=dhcp: no DHCP server answers on the lab networks (not modelled): the management "
            "interface has no address")
    args, opts, _ = ks.commands["rootpw"]
    password = args[0]
    pw_hash = password if "iscrypted" in opts else cryptpw.hash_password(
        password, cryptpw.scheme_for(flavor, release))
    st = S.fresh_install(vm_name, flavor, _version_text(info.version), nic_macs=nic_macs, ip=ip, netmask=netmask,
                         gateway=gateway, hostname=short, ssh_address=ip, root_password_hash=pw_hash,
                         build=int(info.build) if info.build else None)
    st.boot_count = 0  # written, never booted yet
    if flavor == "esxi" and "install" in ks.commands and "novmfsondisk" in ks.opts("install"):
        # `install --novmfsondisk`: no VMFS partition on the boot disk, so no local datastore1 (docs/install.md,
        # "Local datastores")
        st.dirs = [d for d in st.dirs if not d.startswith("/vmfs/volumes/datastore1")]
    if domain:
        st.domain = domain
        st.files["/etc/hosts"] = (f"127.0.0.1 localhost.localdomain localhost\n"
                                  f"{ip} {short}.{domain} {short}\n")
    if nopts.get("vlanid"):
        mgmt = st.interface(st.management_name)
        found = st.portgroup(mgmt.portgroup) if mgmt else None
        if found:
            found[1].vlan = int(nopts["vlanid"]) if nopts["vlanid"].isdigit() else 0
    if nopts.get("nameserver"):
        st.extra["nameservers"] = nopts["nameserver"].split(",")
    st.extra["installed_from"] = {"volume_id": info.volume_id, "build": info.build}
    st.files[st.authorized_keys_path] = ""
    if flavor == "esxi":
        st.extra["ssh_service"] = {"enabled": False, "running": False}  # a fresh ESXi: SSH off
        firstboot = [{"interpreter": s.interpreter, "body": s.body, "line": s.line} for s in ks.scripts("%firstboot")]
        if firstboot:
            st.extra["firstboot"] = firstboot
    else:
        st.files[S.SSHD_CONFIG] = "Protocol 2\nPermitRootLogin no\nPasswordAuthentication yes\n"
        st.files.setdefault("/etc/rc.d/rc.local", "#!/bin/sh\n#\n# This script will be executed *after* all the "
                                                  "other init scripts.\n")
        for d in ("/etc/rc.d", "/etc/init.d"):
            if d not in st.dirs:
                st.dirs.append(d)
    st.persisted_etc = S.etc_snapshot(st) if st.is_esxi else None
    for sec in ks.scripts("%pre"):
        _run_script(S.from_dict(S.to_dict(st)), sec, say, "%pre (installer environment)")
    for sec in ks.scripts("%post"):
        if flavor == "esx" and "nochroot" not in sec.options:
            _run_script(st, sec, say, "%post (in the installed system)")
        else:
            _run_script(S.from_dict(S.to_dict(st)), sec, say, "%post (installer environment; its changes do not "
                                                              "reach the installed system)")
    if st.is_esxi:
        st.persisted_etc = S.etc_snapshot(st)
    return st


def _run_script(st: S.HostState, sec, say, what: str) -> int:
    from labctl.sim.host import SimHost

    if sec.interpreter == "python":
        say(f"{what} at line {sec.line}: --interpreter=python is not modelled by the simulator; not run")
        return 127
    code, out, err = SimHost(st, None).run(sec.body)
    say(f"{what} at line {sec.line} exited {code}" + (f": {err.strip()}" if err.strip() else ""))
    return code
