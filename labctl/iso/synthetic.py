"""Synthetic installer ISOs with the layout of VMware's media, for tests, benchmarks and (later) the simulator.

Nothing from VMware is in them: the boot loaders and modules are placeholder bytes of plausible size; the layout,
names, boot loader configuration and El Torito entries follow the real media:
- ESXi 5.0+ (VMware's install guide, "Create an Installer ISO Image with a Custom Installation or Upgrade Script":
  `mkisofs -relaxed-filenames -J -R -b ISOLINUX.BIN -c BOOT.CAT -no-emul-boot -boot-load-size 4 -boot-info-table
  -eltorito-alt-boot -eltorito-platform efi -b EFIBOOT.IMG -no-emul-boot`): ISOLINUX.BIN, ISOLINUX.CFG (`KERNEL
  mboot.c32`, `APPEND -c boot.cfg`), MBOOT.C32, BOOT.CFG, EFI/BOOT/BOOT.CFG, EFI/BOOT/BOOTX64.EFI, EFIBOOT.IMG, the
  `*.B00`/`*.V00` modules; volume id = the image profile (`ESXI-8.0U2-22380479-STANDARD`). 5.x media boot BIOS only.
- ESX classic 3.5/4.x: Anaconda media, `isolinux/` (isolinux.bin, isolinux.cfg, vmlinuz, initrd.img), `.discinfo`,
  `VMware/RPMS/`; BIOS only.
"""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

from labctl import releases
from labctl.topology.versions import EsxVersion, parse_esx_version



class _Pattern(io.RawIOBase):
    """`size` deterministic incompressible bytes, produced as they are read (bounded memory for a 600 MB file)."""

    def __init__(self, size: int, seed: bytes = b"labctl"):
        self._size = size
        self._block = b"".join(hashlib.sha512(seed + i.to_bytes(4, "big")).digest() for i in range(16384))  # 1 MiB
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, b) -> int:  # type: ignore[override]
        n = min(len(b), self._size - self._pos)
        if n <= 0:
            return 0
        out = memoryview(b)
        done = 0
        while done < n:
            off = self._pos % len(self._block)
            take = min(n - done, len(self._block) - off)
            out[done:done + take] = self._block[off:off + take]
            done += take
            self._pos += take
        return n


def _blob(name: str, size: int) -> bytes:
    """Placeholder bytes for a boot loader or module: deterministic, not VMware's."""
    seed = hashlib.sha256(b"labctl synthetic " + name.encode()).digest()
    reps = size // len(seed) + 1
    return (b"LABCTL-SYNTHETIC " + name.encode() + b"\0" + seed * reps)[:size]


def _isolinux_bin() -> bytes:
    # 4 sectors of 512 loaded by the BIOS; bytes 8..63 are the boot-info table mkisofs fills in
    data = bytearray(_blob("ISOLINUX.BIN", 24 * 1024))
    data[8:64] = bytes(56)
    return bytes(data)


def _efiboot_img() -> bytes:
    # the UEFI El Torito image is a FAT file system holding EFI/BOOT/BOOTX64.EFI; here a placeholder with a
    # boot-sector signature, 720 KiB
    data = bytearray(_blob("EFIBOOT.IMG", 720 * 1024))
    data[510:512] = b"\x55\xaa"
    return bytes(data)


def _version(version: str | EsxVersion) -> EsxVersion:
    v = version if isinstance(version, EsxVersion) else parse_esx_version(version)
    if v is None:
        raise ValueError(f"not an ESX version: {version!r}")
    return v


def default_build(version: str | EsxVersion, flavor: str = "esxi") -> str:
    """The GA build of that update (labctl.releases), else a made-up one."""
    v = _version(version)
    for u in releases.updates(flavor, v.major, v.minor):
        if u.number == v.update:
            return str(u.build)
    return str(1000000 + v.major * 10000 + v.minor * 100 + v.update)


def esxi_volume_id(v: EsxVersion, build: str) -> str:
    label = f"{v.major}.{v.minor}U{v.update}" if v.update else f"{v.major}.{v.minor}.0"
    return f"ESXI-{label}-{build}-STANDARD"


def esxi_bootcfg(v: EsxVersion, build: str, kernelopt: str = "runweasel cdromBoot") -> str:
    if v.release >= (7, 0):
        kernel, modules = "/b.b00", ["/jumpstrt.gz", "/useropts.gz", "/features.gz", "/k.b00", "/uc_intel.b00",
                                     "/procfs.b00", "/vmx.v00", "/vim.v00", "/tpm.v00", "/sb.v00", "/s.v00",
                                     "/imgdb.tgz", "/basemisc.tgz", "/resvibs.tgz", "/imgpayld.tgz"]
        build_line = f"build={v.major}.{v.minor}.{v.update}-0.0.{build}"
    else:
        kernel, modules = "/tboot.b00", ["/b.b00", "/useropts.gz", "/k.b00", "/chardevs.b00", "/a.b00",
                                         "/user.b00", "/s.v00", "/imgdb.tgz", "/imgpayld.tgz"]
        build_line = "build="  # 5.x/6.x media leave it empty; the volume id names the build
        kernelopt = kernelopt.replace(" cdromBoot", "")
    return ("bootstate=0\ntitle=Loading ESXi installer\ntimeout=5\nprefix=\n"
            f"kernel={kernel}\nkernelopt={kernelopt}\nmodules={' --- '.join(modules)}\n{build_line}\nupdated=0\n")


def _esxi_isolinux_cfg(v: EsxVersion, build: str) -> str:
    profile = esxi_volume_id(v, build).replace("ESXI", "ESXi").replace("STANDARD", "standard")
    return (f"DEFAULT menu.c32\nMENU TITLE {profile} Boot Menu\nNOHALT 1\nPROMPT 0\nTIMEOUT 80\n"
            f"LABEL install\n  KERNEL mboot.c32\n  APPEND -c boot.cfg\n  MENU LABEL {profile} ^Installer\n"
            "LABEL hddboot\n  LOCALBOOT 0x80\n  MENU LABEL ^Boot from local disk\n")


def _classic_isolinux_cfg() -> str:
    return ("default esx\nprompt 1\ntimeout 600\ndisplay boot.msg\nF1 boot.msg\n"
            "label esx\n  kernel vmlinuz\n  append initrd=initrd.img mem=512M quiet\n"
            "label text\n  kernel vmlinuz\n  append initrd=initrd.img mem=512M text\n"
            "label debug\n  kernel vmlinuz\n  append initrd=initrd.img mem=512M debug\n")


def _new_iso(volume_id: str):
    import pycdlib

    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, vol_ident=volume_id[:16], joliet=3, rock_ridge="1.09",
            app_ident_str="LABCTL SYNTHETIC INSTALLER (NOT VMWARE MEDIA)")
    # the Joliet volume id holds 16 UCS-2 characters (mkisofs truncates it too); the primary one takes 32
    iso.pvd.volume_identifier = volume_id.encode("ascii").ljust(32)[:32]
    return iso


def _add(iso, data: bytes | tuple[io.RawIOBase, int], path: str, rr_path: str | None = None) -> None:
    """`path` the ISO 9660 path (/EFI/BOOT/BOOT.CFG, `;1` added); `rr_path` the Rock Ridge and Joliet path when it
    differs (lowercase names on classic media)."""
    if isinstance(data, tuple):
        fp, length = data
    else:
        fp, length = io.BytesIO(data), len(data)
    iso9660 = path + ";1" if "." in path.rsplit("/", 1)[-1] else path + ".;1"
    long_path = rr_path or path
    iso.add_fp(fp, length, iso_path=iso9660, rr_name=long_path.rsplit("/", 1)[-1], joliet_path=long_path)


def _add_dir(iso, path: str, rr_path: str | None = None) -> None:
    long_path = rr_path or path
    iso.add_directory(path, rr_name=long_path.rsplit("/", 1)[-1], joliet_path=long_path)


def _write(iso, path: Path, keep: list) -> Path:
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        iso.write(os.fspath(tmp), blocksize=1 << 20)
        os.replace(tmp, path)
    finally:
        iso.close()
        for f in keep:
            f.close()
        if tmp.exists():
            tmp.unlink()
    return path


def write_esxi_iso(path: str | os.PathLike[str], version: str | EsxVersion = "8.0u2", build: str | None = None,
                   *, payload_size: int = 64 * 1024, kernelopt: str = "runweasel cdromBoot",
                   uefi: bool | None = None) -> Path:
    """An ESXi 5.0+ installer ISO (BIOS + UEFI El Torito entries from 6.0 on; `uefi` overrides).
    `payload_size`: bytes of the largest module (S.V00), produced streaming."""
    v = _version(version)
    build = build or default_build(v)
    uefi = v.release >= (6, 0) if uefi is None else uefi
    iso = _new_iso(esxi_volume_id(v, build))
    bootcfg = esxi_bootcfg(v, build, kernelopt).encode()
    _add(iso, _isolinux_bin(), "/ISOLINUX.BIN")
    _add(iso, _esxi_isolinux_cfg(v, build).encode(), "/ISOLINUX.CFG")
    _add(iso, _blob("MBOOT.C32", 60 * 1024), "/MBOOT.C32")
    _add(iso, _blob("MENU.C32", 50 * 1024), "/MENU.C32")
    _add(iso, bootcfg, "/BOOT.CFG")
    for name, size in (("B.B00", 120 * 1024), ("K.B00", 90 * 1024), ("USEROPTS.GZ", 32), ("IMGDB.TGZ", 8 * 1024)):
        _add(iso, _blob(name, size), f"/{name}")
    payload = _Pattern(payload_size)
    _add(iso, (payload, payload_size), "/S.V00")
    _add(iso, _blob("UPGRADE", 2 * 1024), "/UPGRADE.TXT")
    if uefi:
        _add(iso, _efiboot_img(), "/EFIBOOT.IMG")
        _add_dir(iso, "/EFI")
        _add_dir(iso, "/EFI/BOOT")
        _add(iso, bootcfg, "/EFI/BOOT/BOOT.CFG")
        _add(iso, _blob("BOOTX64.EFI", 40 * 1024), "/EFI/BOOT/BOOTX64.EFI")
    iso.add_eltorito("/ISOLINUX.BIN;1", bootcatfile="/BOOT.CAT;1", boot_load_size=4, boot_info_table=True,
                     media_name="noemul")
    if uefi:
        iso.add_eltorito("/EFIBOOT.IMG;1", bootcatfile="/BOOT.CAT;1", efi=True, media_name="noemul")
    return _write(iso, Path(path), [payload])


def write_classic_iso(path: str | os.PathLike[str], version: str | EsxVersion = "3.5", build: str | None = None,
                      *, payload_size: int = 64 * 1024) -> Path:
    """An ESX classic (3.5/4.x) installer ISO: isolinux/ + .discinfo, BIOS El Torito entry only."""
    v = _version(version)
    build = build or default_build(v, "esx")
    iso = _new_iso(f"ESX Server {v.major}.{v.minor}")
    _add_dir(iso, "/ISOLINUX", "/isolinux")
    _add(iso, _isolinux_bin(), "/ISOLINUX/ISOLINUX.BIN", "/isolinux/isolinux.bin")
    _add(iso, _classic_isolinux_cfg().encode(), "/ISOLINUX/ISOLINUX.CFG", "/isolinux/isolinux.cfg")
    _add(iso, _blob("vmlinuz", 40 * 1024), "/ISOLINUX/VMLINUZ", "/isolinux/vmlinuz")
    _add(iso, _blob("initrd.img", 200 * 1024), "/ISOLINUX/INITRD.IMG", "/isolinux/initrd.img")
    _add(iso, b"Press ENTER to install ESX Server in graphical mode.\n", "/ISOLINUX/BOOT.MSG",
         "/isolinux/boot.msg")
    discinfo = (f"1196205373.727939\nVMware ESX Server {v.major}.{v.minor}.{v.update}-{build}\ni386\n1\n"
                "VMware/base\nVMware/RPMS\nVMware/pixmaps\n")
    iso.add_fp(io.BytesIO(discinfo.encode()), len(discinfo), iso_path="/_DISCINF.;1", rr_name=".discinfo",
               joliet_path="/.discinfo")
    _add_dir(iso, "/VMWARE", "/VMware")
    _add_dir(iso, "/VMWARE/RPMS", "/VMware/RPMS")
    payload = _Pattern(payload_size)
    _add(iso, (payload, payload_size), "/VMWARE/RPMS/VMWARE_E.RPM",
         f"/VMware/RPMS/VMware-esx-{v.major}.{v.minor}.{v.update}-{build}.i386.rpm")
    iso.add_eltorito("/ISOLINUX/ISOLINUX.BIN;1", bootcatfile="/ISOLINUX/BOOT.CAT;1", boot_load_size=4,
                     boot_info_table=True, media_name="noemul")
    return _write(iso, Path(path), [payload])


def write_plain_iso(path: str | os.PathLike[str], volume_id: str = "DATA") -> Path:
    """An ISO that is no installer: a README and no El Torito entry."""
    iso = _new_iso(volume_id)
    _add(iso, b"just some files\n", "/README.TXT")
    return _write(iso, Path(path), [])
