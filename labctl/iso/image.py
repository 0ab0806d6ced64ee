"""Read an ISO 9660 image: what it is (ESXi installer, ESX classic installer, other), its version and build, its
El Torito boot entries and whether a kickstart is wired in.

pycdlib reads the volume descriptors, directory records and boot catalog (metadata only; no file is loaded
whole). Small configuration files are read straight from their extents, capped at `_MAX_CONFIG` bytes.

Where the facts come from (VMware's install guides; the layout of the installer media):
- ESXi 5.0+: `/BOOT.CFG` (BIOS, read by MBOOT.C32) and `/EFI/BOOT/BOOT.CFG` (UEFI); `build=8.0.2-0.0.22380479`;
  the volume id is the image profile, `ESXI-8.0U2-22380479-STANDARD`.
- ESXi 4.x: `ISOLINUX.CFG` boots `mboot.c32` with the vmkernel modules on its `append` line.
- ESX classic 3.5/4.x: Anaconda behind `isolinux/isolinux.cfg` (`append initrd=initrd.img ...`) and `.discinfo`
  (line 1 a timestamp, line 2 the release name with version and build).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from labctl.errors import ExitStatus, LabctlError
from labctl.iso import bootcfg
from labctl import releases
from labctl.topology.versions import EsxVersion, parse_esx_version

if TYPE_CHECKING:
    import pycdlib

SECTOR = 2048
_MAX_CONFIG = 1 << 20  # boot loader configs are a few KB; anything larger is not one

KIND_ESXI = "esxi-installer"
KIND_CLASSIC = "esx-classic-installer"
KIND_OTHER = "other"

BIOS_BOOTCFG = "/BOOT.CFG"
EFI_BOOTCFG = "/EFI/BOOT/BOOT.CFG"


class IsoError(LabctlError):
    """The file is missing, unreadable or not an ISO 9660 image (exit 2: the user gave a bad path)."""

    status = ExitStatus.USAGE


@dataclass(frozen=True)
class FileRef:
    """A file on the image: the ISO 9660 path pycdlib addresses it by, and where its data is."""

    iso_path: str  # e.g. /EFI/BOOT/BOOT.CFG;1
    extent: int
    size: int


@dataclass(frozen=True)
class BootEntry:
    platform: str  # "bios" | "uefi"
    load_rba: int
    sector_count: int
    media: int  # 0 = no emulation


@dataclass(frozen=True)
class IsoInfo:
    path: Path
    kind: str
    version: EsxVersion | None
    build: str | None
    volume_id: str
    boot: tuple[str, ...]
    kickstart: str | None
    entries: tuple[BootEntry, ...] = ()
    configs: dict[str, str] = field(default_factory=dict)  # logical name (BOOT.CFG, EFI BOOT.CFG, ISOLINUX.CFG) -> text

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "version": str(self.version) if self.version else None,
            "build": self.build,
            "volume_id": self.volume_id,
            "boot": list(self.boot),
            "kickstart": self.kickstart,
        }


# --- opening ---------------------------------------------------------------------------------------------------


def open_iso(path: str | os.PathLike[str], mode: str = "rb") -> "pycdlib.PyCdlib":
    """pycdlib on `path`, or IsoError naming the file and why."""
    import pycdlib
    from pycdlib.pycdlibexception import PyCdlibException

    p = Path(path)
    if not p.exists():
        raise IsoError(f"{p}: no such file", hint="give the path of an ISO image (e.g. the ESXi installer ISO)")
    if p.is_dir():
        raise IsoError(f"{p}: is a directory, not an ISO image")
    iso = pycdlib.PyCdlib()
    try:
        iso.open(os.fspath(p), mode=mode)
    except PermissionError as e:
        raise IsoError(f"{p}: cannot read: {e.strerror}") from None
    except OSError as e:
        raise IsoError(f"{p}: cannot read: {e.strerror or e}") from None
    except PyCdlibException as e:
        raise IsoError(f"{p}: not a readable ISO 9660 image ({e})") from None
    except Exception as e:  # a damaged image trips pycdlib in many ways (struct, index, unicode errors)
        raise IsoError(f"{p}: not a readable ISO 9660 image ({type(e).__name__}: {e})") from None
    return iso


def _norm(ident: bytes | str) -> str:
    s = ident.decode("latin-1") if isinstance(ident, bytes) else ident
    s = s.split(";", 1)[0]
    if s.endswith(".") and len(s) > 1:
        s = s[:-1]
    return s.upper()


def _child_names(rec: Any) -> set[str]:
    names = {_norm(rec.file_identifier())}
    rr = getattr(rec, "rock_ridge", None)
    if rr is not None:
        try:
            nm = rr.name()
        except Exception:  # pycdlib raises on RR records without NM
            nm = b""
        if nm:
            names.add(_norm(nm))
    return names


def find_file(iso: "pycdlib.PyCdlib", path: str) -> FileRef | None:
    """Look `path` up case-insensitively by ISO 9660 or Rock Ridge name (`.discinfo` is `_DISCINF` or similar in
    plain ISO 9660; only its Rock Ridge name is exact)."""
    parts = [p for p in path.split("/") if p]
    cur = "/"
    iso_parts: list[str] = []
    for i, want in enumerate(parts):
        want_n = _norm(want)
        found = None
        try:
            children = list(iso.list_children(iso_path=cur))
        except Exception:
            return None
        for rec in children:
            if rec.is_dot() or rec.is_dotdot():
                continue
            if want_n in _child_names(rec):
                found = rec
                break
        if found is None:
            return None
        ident = found.file_identifier().decode("latin-1")
        iso_parts.append(ident)
        cur = "/" + "/".join(iso_parts)
        last = i == len(parts) - 1
        if last:
            if found.is_dir():
                return None
            return FileRef(cur, found.extent_location(), found.get_data_length())
        if not found.is_dir():
            return None
    return None


def read_small(fp: Any, ref: FileRef, limit: int = _MAX_CONFIG) -> bytes | None:
    if ref.size > limit:
        return None
    fp.seek(ref.extent * SECTOR)
    return fp.read(ref.size)


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", errors="replace")


# --- facts -----------------------------------------------------------------------------------------------------

_VOLID_RE = re.compile(r"^ESXI?[-_ ](\d+\.\d+(?:\.\d+)*(?:U\d+[a-z]?)?)[-_ ](\d+)", re.IGNORECASE)
_VER_BUILD_RE = re.compile(r"(\d+\.\d+\.\d+-\d{4,})")


def version_from_text(v: str) -> EsxVersion | None:
    """Any notation the topology's version model reads (`8.0.2`, `8.0U2`, `8.0U3b`, `8.0.2-0.0.22380479`, `3.5.0`)."""
    return parse_esx_version(v)


def _with_build(v: EsxVersion | None, build: str | None, flavor: str) -> EsxVersion | None:
    """`v` carrying `build`; before 7.0 a version string says x.y.0 for every update, so the update comes from
    the build (labctl.releases: the update whose GA build is the newest not after it)."""
    if v is None:
        return None
    b = int(build) if build else v.build
    update = v.update
    if b is not None and v.major < 7 and update == 0:
        update = releases.update_for_build(flavor, v.major, v.minor, b) or 0
    return EsxVersion(v.major, v.minor, update, v.patch, b)


def parse_bootcfg_build(value: str) -> tuple[EsxVersion | None, str | None]:
    """`build=8.0.2-0.0.22380479` -> (8.0u2, "22380479"); an empty or odd value -> (None, None)."""
    v = parse_esx_version(value.strip()) if value.strip() else None
    if v is None or v.build is None:
        return None, None
    return v, str(v.build)


def parse_volume_id(volid: str) -> tuple[EsxVersion | None, str | None]:
    """`ESXI-8.0U2-22380479-STANDARD` -> (8.0u2, "22380479"). Patch-level profiles carry a date-based number
    (`ESXI-6.7.0-20190802001-STANDARD`), which is not a build: that one yields no build."""
    m = _VOLID_RE.match(volid.strip())
    if not m:
        return None, None
    number = m.group(2)
    build = None if (len(number) == 11 and number.startswith("20")) else number
    return parse_esx_version(m.group(1)), build


def parse_discinfo(text: str) -> tuple[EsxVersion | None, str | None]:
    """`.discinfo` line 2, e.g. `VMware ESX Server 3.5.0-64607` -> (3.5, "64607")."""
    lines = text.splitlines()
    for line in lines[1:3] + lines:
        m = _VER_BUILD_RE.search(line)
        if m and (v := parse_esx_version(m.group(1))) is not None and v.build is not None:
            return v, str(v.build)
    return None, None


def _boot_entries(iso: "pycdlib.PyCdlib") -> tuple[BootEntry, ...]:
    cat = iso.eltorito_boot_catalog
    if cat is None:
        return ()

    def plat(pid: int) -> str:
        return "uefi" if pid == 0xEF else "bios"

    out = [BootEntry(plat(cat.validation_entry.platform_id), cat.initial_entry.load_rba,
                     cat.initial_entry.sector_count, cat.initial_entry.boot_media_type)]
    for sec in cat.sections:
        out.extend(BootEntry(plat(sec.platform_id), e.load_rba, e.sector_count, e.boot_media_type)
                   for e in sec.section_entries)
    return tuple(out)


def read_info(iso: "pycdlib.PyCdlib", path: Path, fp: Any) -> IsoInfo:
    volid = iso.pvd.volume_identifier.decode("latin-1", errors="replace").strip()
    entries = _boot_entries(iso)
    boot: list[str] = []
    for e in entries:
        if e.platform not in boot:
            boot.append(e.platform)
    boot.sort(key=lambda p: ("bios", "uefi").index(p))
    configs: dict[str, str] = {}
    for name, p in (("BOOT.CFG", BIOS_BOOTCFG), ("EFI/BOOT/BOOT.CFG", EFI_BOOTCFG),
                    ("ISOLINUX.CFG", "/ISOLINUX.CFG"), ("isolinux/isolinux.cfg", "/isolinux/isolinux.cfg"),
                    (".discinfo", "/.discinfo")):
        ref = find_file(iso, p)
        if ref is not None and (t := _text(read_small(fp, ref))) is not None:
            configs[name] = t

    kind, version, build, ks = KIND_OTHER, None, None, None
    vol_version, vol_build = parse_volume_id(volid)
    bios_cfg = configs.get("BOOT.CFG")
    iso_cfg = configs.get("ISOLINUX.CFG") or configs.get("isolinux/isolinux.cfg")
    if bios_cfg is not None and "kernel" in bootcfg.bootcfg_values(bios_cfg):
        kind = KIND_ESXI
        vals = bootcfg.bootcfg_values(bios_cfg)
        version, build = parse_bootcfg_build(vals.get("build", ""))
        ks = bootcfg.bootcfg_kickstart(bios_cfg)
        if ks is None and "EFI/BOOT/BOOT.CFG" in configs:
            ks = bootcfg.bootcfg_kickstart(configs["EFI/BOOT/BOOT.CFG"])
    elif "ISOLINUX.CFG" in configs and "mboot.c32" in configs["ISOLINUX.CFG"].lower():
        kind = KIND_ESXI  # ESXi 4.x: mboot.c32 with the modules on the append line
        for line in configs["ISOLINUX.CFG"].splitlines():
            words = line.split()
            if words and words[0].lower() == "append" and (k := bootcfg.kickstart_in_words(words)):
                ks = k
                break
    elif ".discinfo" in configs and iso_cfg is not None and bootcfg.install_label(iso_cfg) is not None:
        kind = KIND_CLASSIC
        version, build = parse_discinfo(configs[".discinfo"])
        ks = bootcfg.isolinux_kickstart(iso_cfg)
    if kind != KIND_OTHER:
        version = version or vol_version
        build = build or vol_build
        version = _with_build(version, build, "esx" if kind == KIND_CLASSIC else "esxi")
    return IsoInfo(path=path, kind=kind, version=version, build=build, volume_id=volid, boot=tuple(boot),
                   kickstart=ks, entries=entries, configs=configs)


def inspect_iso(path: str | os.PathLike[str]) -> IsoInfo:
    """Everything `labctl iso inspect` reports about the image at `path`."""
    p = Path(path)
    iso = open_iso(p)
    try:
        with open(p, "rb") as fp:
            return read_info(iso, p, fp)
    finally:
        iso.close()
