"""Patch a copy of an installer ISO so it boots into a kickstart; never unpack and rebuild it.

ESXi 5.0+: `/BOOT.CFG` (BIOS) and `/EFI/BOOT/BOOT.CFG` (UEFI) get `ks=cdrom:/KS.CFG` plus the boot options in
`kernelopt`. ESX classic: the install label's isolinux `append` line gets them. The El Torito catalog, its boot
images and the ISOLINUX boot-info table are left as they are.

How: copy the file (the kernel's fast copy path), then rewrite only the changed files' extents and their directory
records in the copy (pycdlib's InPlaceEditor), which works when the new text fits the sectors the old one had
(BOOT.CFG grows by a few dozen bytes within a 2 KiB sector: the usual case). Otherwise pycdlib writes a new image
from the original, streaming. Either way the result is verified by reading it back before it is renamed into
place: boot catalog entries, their images, the boot-info table, and every patched file.

Patched images are cached by the sha256 of the source image and of the patch (`build_patched`), written to a
temporary file and renamed, mode 0600; a cached image is verified again each time it is reused. The source's hash
is remembered per file identity in the cache directory, so a second build does not read 600 MB again.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import io
import os
import struct
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.iso import bootcfg
from labctl.iso.image import (
    EFI_BOOTCFG, KIND_CLASSIC, KIND_ESXI, SECTOR, BIOS_BOOTCFG, FileRef, IsoError, IsoInfo, find_file, open_iso,
    read_info, read_small,
)

PATCH_FORMAT = "labctl-iso-patch-1"  # part of the cache key: bump when the patch logic changes its output
_CHUNK = 1 << 20


class PatchError(IsoError):
    """The image cannot be patched (not an installer, an unsupported layout) or the result failed verification."""


@dataclass(frozen=True)
class Target:
    name: str  # the logical name, as in IsoInfo.configs
    ref: FileRef
    old: str
    new: str


@dataclass(frozen=True)
class PatchResult:
    path: Path
    method: str  # "in-place" | "rewrite" | "cached"
    patched: tuple[str, ...]  # logical names of the files changed
    info: IsoInfo


def _targets(iso: Any, info: IsoInfo, options: list[str], ks: str) -> list[Target]:
    try:
        bootcfg.check_boot_options(options)
    except ValueError as e:
        raise PatchError(str(e)) from None
    out: list[Target] = []
    if info.kind == KIND_ESXI:
        if "BOOT.CFG" not in info.configs:
            raise PatchError(f"{info.path}: an ESXi 4.x installer (no BOOT.CFG); labctl patches ESXi 5.0+ media and "
                             "ESX classic media")
        for name, path in (("BOOT.CFG", BIOS_BOOTCFG), ("EFI/BOOT/BOOT.CFG", EFI_BOOTCFG)):
            ref = find_file(iso, path)
            if ref is None:
                continue
            old = info.configs[name]
            try:
                new = bootcfg.patch_bootcfg(old, options, ks)
            except ValueError as e:
                raise PatchError(f"{info.path}: {path}: {e}") from None
            out.append(Target(name, ref, old, new))
    elif info.kind == KIND_CLASSIC:
        for name, path in (("ISOLINUX.CFG", "/ISOLINUX.CFG"), ("isolinux/isolinux.cfg", "/isolinux/isolinux.cfg")):
            if name in info.configs and (ref := find_file(iso, path)) is not None:
                out.append(Target(name, ref, info.configs[name],
                                  bootcfg.patch_isolinux(info.configs[name], options, ks)))
                break
    else:
        raise PatchError(f"{info.path}: not an ESX installer ISO (volume id {info.volume_id!r})",
                         hint="labctl iso inspect ISO shows what the image is")
    # two names for one extent (a hard link) are patched once
    seen: set[int] = set()
    unique = []
    for t in out:
        if t.ref.extent not in seen:
            seen.add(t.ref.extent)
            unique.append(t)
    return unique


def _fits(t: Target) -> bool:
    old_sectors = max(1, -(-t.ref.size // SECTOR))
    return len(t.new.encode()) <= old_sectors * SECTOR


def _copy(src: Path, fd: int) -> None:
    with open(src, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        try:
            left = size
            while left > 0:
                n = os.copy_file_range(f.fileno(), fd, min(left, 1 << 30))
                if n == 0:
                    break
                left -= n
            if left == 0:
                return
        except (AttributeError, OSError):
            pass
        f.seek(0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.ftruncate(fd, 0)
        while chunk := f.read(_CHUNK):
            os.write(fd, chunk)


def _read_source(src: Path, options: list[str], ks: str) -> tuple[IsoInfo, list[Target], Any]:
    """Read the source image once: what it is, the files to patch with their new text, and its boot entries."""
    iso = open_iso(src)
    try:
        with open(src, "rb") as fp:
            info = read_info(iso, src, fp)
            return info, _targets(iso, info, options, ks), boot_summary(iso, fp)
    finally:
        iso.close()


def _patch_in_place(tmp: Path, targets: list[Target]) -> None:
    import warnings

    from pycdlib import InPlaceEditor

    with warnings.catch_warnings(), InPlaceEditor(os.fspath(tmp)) as ed:
        warnings.simplefilter("ignore", DeprecationWarning)
        for t in targets:
            data = t.new.encode()
            ed.modify_file(io.BytesIO(data), len(data), iso_path=t.ref.iso_path)


def _patch_rewrite(src: Path, fd: int, targets: list[Target]) -> None:
    iso = open_iso(src)
    try:
        for t in targets:
            rec = iso.get_record(iso_path=t.ref.iso_path)
            rr_name = None
            joliet = None
            if iso.has_rock_ridge():
                rr_name = rec.rock_ridge.name().decode()
            if iso.has_joliet():
                rr_full = iso.full_path_from_dirrecord(rec, rockridge=bool(rr_name)) if rr_name else None
                joliet = rr_full or t.ref.iso_path.split(";")[0]
                try:
                    iso.get_record(joliet_path=joliet)
                except Exception:
                    joliet = None
            iso.rm_file(iso_path=t.ref.iso_path)
            data = t.new.encode()
            iso.add_fp(io.BytesIO(data), len(data), iso_path=t.ref.iso_path, rr_name=rr_name, joliet_path=joliet)
        with os.fdopen(os.dup(fd), "wb") as out:
            out.seek(0)
            out.truncate()
            iso.write_fp(out, blocksize=_CHUNK)
    finally:
        iso.close()


# --- verification ----------------------------------------------------------------------------------------------


def _entry_images(iso: Any) -> list[tuple[str, int, int, int, Any, tuple]]:
    """(platform, media, sector_count, load_rba, inode, the entry's other fields) per El Torito entry."""
    cat = iso.eltorito_boot_catalog
    if cat is None:
        return []
    out = []

    def plat(pid: int) -> str:
        return "uefi" if pid == 0xEF else "bios"

    def rest(x: Any) -> tuple:
        return (x.boot_indicator, x.load_segment, x.system_type, x.selection_criteria_type)

    e = cat.initial_entry
    out.append((plat(cat.validation_entry.platform_id), e.boot_media_type, e.sector_count, e.load_rba, e.inode,
                rest(e)))
    for sec in cat.sections:
        out.extend((plat(sec.platform_id), x.boot_media_type, x.sector_count, x.load_rba, x.inode, rest(x))
                   for x in sec.section_entries)
    return out


def _image_length(sector_count: int, inode: Any) -> int:
    if inode is not None:
        with contextlib.suppress(Exception):
            return int(inode.get_data_length())
    return sector_count * 512


def _read_at(fp: Any, offset: int, length: int) -> bytes:
    fp.seek(offset)
    return fp.read(length)


def _hash_range(fp: Any, offset: int, length: int, mask_boot_info: bool) -> str:
    h = hashlib.sha256()
    fp.seek(offset)
    left = length
    first = True
    while left > 0:
        chunk = fp.read(min(left, _CHUNK))
        if not chunk:
            break
        if first and mask_boot_info:
            chunk = chunk[:8] + bytes(max(0, min(len(chunk), 64) - 8)) + chunk[64:]
        first = False
        h.update(chunk)
        left -= len(chunk)
    return h.hexdigest()


def boot_info_table_ok(fp: Any, load_rba: int, length: int) -> bool:
    """The isolinux boot-info table (bytes 8..23 of the boot file): PVD LBA 16, the file's LBA and length, and the
    32-bit little-endian sum of the file from byte 64 (mkisofs -boot-info-table)."""
    head = _read_at(fp, load_rba * SECTOR, 64)
    if len(head) < 24:
        return False
    pvd, lba, ln, csum = struct.unpack_from("<IIII", head, 8)
    if pvd != 16 or lba != load_rba or ln != length:
        return False
    fp.seek(load_rba * SECTOR + 64)
    total, left, carry = 0, length - 64, b""
    while left > 0:
        chunk = carry + fp.read(min(left, _CHUNK))
        left -= len(chunk) - len(carry)
        usable = len(chunk) // 4 * 4
        total = (total + sum(struct.unpack_from(f"<{usable // 4}I", chunk))) & 0xFFFFFFFF
        carry = chunk[usable:]
        if not chunk:
            break
    if carry:
        total = (total + int.from_bytes(carry.ljust(4, b"\0"), "little")) & 0xFFFFFFFF
    return total == csum


def boot_summary(iso: Any, fp: Any) -> tuple[list[tuple], list[bool]]:
    """Per El Torito entry (platform, media, sector count, boot indicator, load segment, system type, selection
    criteria, image length, sha256 of the image with the boot-info table masked), and whether its boot-info table
    is valid."""
    summary, tables = [], []
    for plat, media, count, rba, ino, rest in _entry_images(iso):
        length = _image_length(count, ino)
        is_bios_noemul = plat == "bios" and media == 0
        summary.append((plat, media, count, rest, length, _hash_range(fp, rba * SECTOR, length, is_bios_noemul)))
        tables.append(is_bios_noemul and boot_info_table_ok(fp, rba, length))
    return summary, tables


def verify_patched(src: Path | tuple[list[tuple], list[bool]], out: Path, targets: list[Target]) -> IsoInfo:
    """Read `out` back: the same El Torito entries with the same images as the source (`src`: its path or its
    `boot_summary`), a boot-info table valid where the source had one, and every patched file as intended.
    Raises PatchError on any difference."""
    if isinstance(src, tuple):
        want_summary, want_tables = src
    else:
        s_iso = open_iso(src)
        try:
            with open(src, "rb") as s_fp:
                want_summary, want_tables = boot_summary(s_iso, s_fp)
        finally:
            s_iso.close()
    iso = open_iso(out)
    try:
        with open(out, "rb") as fp:
            got_summary, got_tables = boot_summary(iso, fp)
            if want_summary != got_summary:
                raise PatchError(f"{out}: verification failed: the El Torito entries or their boot images differ "
                                 "from the source's",
                                 hint="report this: labctl wrote an image that would not boot as the original")
            for had, has in zip(want_tables, got_tables):
                if had and not has:
                    raise PatchError(f"{out}: verification failed: the ISOLINUX boot-info table is no longer valid")
            info = read_info(iso, out, fp)
            for t in targets:
                ref = find_file(iso, t.ref.iso_path.split(";")[0])
                data = read_small(fp, ref) if ref else None
                if data is None or data.decode("utf-8", errors="replace") != t.new:
                    raise PatchError(f"{out}: verification failed: {t.name} does not read back as written")
    finally:
        iso.close()
    return info


# --- the operation ---------------------------------------------------------------------------------------------


def patch_copy(src: str | os.PathLike[str], dst: str | os.PathLike[str], boot_options: list[str] | tuple = (),
               *, ks: str = bootcfg.KS_PATH, allow_in_place: bool = True) -> PatchResult:
    """Write a copy of the installer image `src` to `dst` (atomically, mode 0600) with the kickstart wired in."""
    src, dst = Path(src), Path(dst)
    _, targets, src_boot = _read_source(src, list(boot_options), ks)
    if not targets:
        raise PatchError(f"{src}: found no boot loader configuration to patch")
    in_place = allow_in_place and all(_fits(t) for t in targets)
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=dst.parent, prefix=f".{dst.name}.", suffix=".labctl-tmp")  # mode 0600
    tmp = Path(tmp_name)
    try:
        if in_place:
            _copy(src, fd)
            _patch_in_place(tmp, targets)
        else:
            _patch_rewrite(src, fd, targets)
        # no fsync: the image is a cache entry that can be made again from the source, and an fsync of 600 MB
        # doubles the time (bench/iso.py); a cached image is verified against its source each time it is reused
        os.close(fd)
        fd = -1
        out_info = verify_patched(src_boot, tmp, targets)
        os.chmod(tmp, 0o600)
        os.replace(tmp, dst)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return PatchResult(dst, "in-place" if in_place else "rewrite", tuple(t.name for t in targets), out_info)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


_MEMO = ".labctl-sources.json"


def _stat_key(path: Path) -> dict[str, int]:
    st = path.stat()
    # ctime changes with any write to the file, also one that puts the old mtime back (touch -r, rsync -t)
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size, "mtime_ns": st.st_mtime_ns,
            "ctime_ns": st.st_ctime_ns}


def _memo_load(cache: Path) -> dict:
    import json

    try:
        memo = json.loads((cache / _MEMO).read_text())
    except (OSError, ValueError):
        return {}
    return memo if isinstance(memo, dict) else {}


def remembered_sha256(src: Path, cache: Path) -> str | None:
    """The sha256 of `src` remembered in the cache directory for this file identity (device, inode, size, mtime,
    ctime), or None: hashing a 600 MB ISO takes seconds, and a second build must not pay it again."""
    entry = _memo_load(cache).get(os.fspath(src.resolve()))
    ident = _stat_key(src)
    if isinstance(entry, dict) and all(entry.get(k) == v for k, v in ident.items()) \
            and isinstance(entry.get("sha256"), str) and len(entry["sha256"]) == 64:
        return entry["sha256"]
    return None


def remember_sha256(src: Path, cache: Path, ident: dict[str, int], digest: str) -> None:
    import json

    if _stat_key(src) != ident:  # the file changed while it was read: remember nothing
        return
    memo = _memo_load(cache)
    memo[os.fspath(src.resolve())] = {**ident, "sha256": digest}
    fd, tmp = tempfile.mkstemp(dir=cache, prefix=f"{_MEMO}.", suffix=".labctl-tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(memo, f, indent=1, sort_keys=True)
        os.replace(tmp, cache / _MEMO)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def patch_key(source_sha256: str, boot_options: list[str] | tuple, ks: str = bootcfg.KS_PATH) -> str:
    spec = "\0".join([PATCH_FORMAT, source_sha256, ks, *boot_options])
    return hashlib.sha256(spec.encode()).hexdigest()


def build_patched(src: str | os.PathLike[str], cache_dir: str | os.PathLike[str],
                  boot_options: list[str] | tuple = (), *, ks: str = bootcfg.KS_PATH) -> PatchResult:
    """The patched image for `src` + `boot_options` in `cache_dir`, made once per content hash of both. A cached
    image that no longer verifies against its source (damaged, edited) is made again.

    A source seen before (same identity) costs no read of its data. A new one is hashed in a thread while the
    copy is made and patched under a provisional name, which is renamed to its content-addressed name after."""
    import threading

    src, cache = Path(src), Path(cache_dir)
    options = list(boot_options)
    # a missing or unreadable source fails here, before anything is hashed or written
    info, targets, src_boot = _read_source(src, options, ks)
    cache.mkdir(parents=True, exist_ok=True)
    stem = src.name[:-4] if src.name.lower().endswith(".iso") else src.name

    def final(digest: str) -> Path:
        return cache / f"{stem}.ks-{patch_key(digest, options, ks)[:16]}.iso"

    def reuse(dst: Path) -> PatchResult | None:
        if dst.is_file():
            with contextlib.suppress(IsoError):
                return PatchResult(dst, "cached", (), verify_patched(src_boot, dst, targets))
        return None

    digest = remembered_sha256(src, cache)
    if digest is not None:
        return reuse(final(digest)) or patch_copy(src, final(digest), options, ks=ks)

    ident = _stat_key(src)
    got: dict[str, object] = {}

    def hash_it() -> None:
        try:
            got["sha256"] = sha256_file(src)
        except BaseException as e:  # re-raised in the caller
            got["error"] = e

    hasher = threading.Thread(target=hash_it, name="labctl-iso-sha256", daemon=True)
    hasher.start()
    fd, pending_name = tempfile.mkstemp(dir=cache, prefix=f".{stem}.pending-", suffix=".iso")
    os.close(fd)
    pending = Path(pending_name)
    try:
        res = patch_copy(src, pending, options, ks=ks)
        hasher.join()
        if "error" in got:
            raise got["error"]  # type: ignore[misc]
        digest = str(got["sha256"])
        if _stat_key(src) != ident:
            raise PatchError(f"{src}: the file changed while it was read; run the build again")
        remember_sha256(src, cache, ident, digest)
        dst = final(digest)
        if (cached := reuse(dst)) is not None:
            return cached
        os.replace(pending, dst)
        return PatchResult(dst, res.method, res.patched, dataclasses.replace(res.info, path=dst))
    finally:
        hasher.join()
        with contextlib.suppress(OSError):
            pending.unlink()
