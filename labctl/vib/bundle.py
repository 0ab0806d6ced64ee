"""Offline bundles (depot zips, vib.md section 6): a reproducible writer and a capped, path-safe reader."""

from __future__ import annotations

import hashlib
import io
import struct
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import BinaryIO
from xml.sax.saxutils import escape, quoteattr

from labctl.vib.descriptor import Descriptor, emit_descriptor, parse_xml, plain_number
from labctl.vib.findings import ERROR, WARNING, Finding, VibFormatError
from labctl.vib.payload import check_path

MAX_ZIP_ENTRIES = 1000
MAX_CENTRAL_DIRECTORY = 1024 * 1024  # bytes; 1000 entries with 1000-character names fit
MAX_METADATA = 16 * 1024 * 1024
MAX_VIB_IN_ZIP = 4 * 1024**3
MAX_ZIP_RATIO = 100  # inflated/compressed for one entry, once it inflates past ZIP_RATIO_FLOOR
ZIP_RATIO_FLOOR = 1024 * 1024
COPY = 1024 * 1024
# what zipfile and zlib raise on a corrupt archive (BadZipFile, a negative seek from a lying header offset,
# an unsupported feature, a broken deflate stream)
ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, NotImplementedError, RuntimeError, EOFError, OSError,
              struct.error)
_EOCD = b"PK\x05\x06"
_EOCD64_LOCATOR = b"PK\x06\x07"
_EOCD64 = b"PK\x06\x06"


# ---------------------------------------------------------------- writing


@dataclass(frozen=True)
class BundleVib:
    descriptor: Descriptor
    path: Path  # the .vib file
    size: int
    sha256: str

    @property
    def relative_path(self) -> str:
        return f"vib20/{self.descriptor.name}/{self.descriptor.vib_id}.vib"


def _zip_time(release_date: str) -> tuple[int, int, int, int, int, int]:
    try:
        dt = datetime.fromisoformat(release_date.replace("Z", "+00:00"))
        return (max(dt.year, 1980), dt.month, dt.day, dt.hour, dt.minute, dt.second - dt.second % 2)
    except ValueError:
        return (1980, 1, 1, 0, 0, 0)


def _entry(z: zipfile.ZipFile, name: str, data: bytes, when) -> None:
    zi = zipfile.ZipInfo(name, when)
    zi.compress_type = zipfile.ZIP_DEFLATED
    zi.external_attr = 0o644 << 16
    zi.create_system = 3
    z.writestr(zi, data)


def _vib_metadata_xml(v: BundleVib) -> bytes:
    """vibs/<name>-<n>.xml: the descriptor plus relative-path, packed-size and checksum after software-tags."""
    xml = emit_descriptor(v.descriptor).decode("utf-8")
    extra = (f"<relative-path>{escape(v.relative_path)}</relative-path><packed-size>{v.size}</packed-size>"
             f'<checksum checksum-type="sha-256">{v.sha256}</checksum>')
    for marker in ("</software-tags>", "<software-tags/>"):
        if marker in xml:
            xml = xml.replace(marker, marker + extra, 1)
            break
    return xml.encode("utf-8")


def _platforms(d: Descriptor, tag: str) -> str:
    plats = d.software_platforms or ()
    return "".join(
        f"<{tag} locale={quoteattr(p.locale)} version={quoteattr(p.version)} "
        f"productLineID={quoteattr(p.product_line_id)}/>" for p in plats
    )


def _relations(d: Descriptor) -> str:
    """vmware.xml's <relationships>, like the descriptor's (VMware's fling bundle lists its depends there)."""
    out = []
    for tag, items in (("depends", d.depends), ("conflicts", d.conflicts), ("replaces", d.replaces),
                       ("provides", d.provides), ("compatibleWith", d.compatible_with)):
        el = "provide" if tag == "provides" else "constraint"
        cs = "".join(f"<{el} name={quoteattr(c.name)}"
                     + (f" relation={quoteattr(c.relation)}" if c.relation else "")
                     + (f" version={quoteattr(c.version)}" if c.version else "") + "/>" for c in items)
        out.append(f"<{tag}>{cs}</{tag}>" if cs else f"<{tag}/>")
    return "".join(out)


def _vmware_xml(v: BundleVib, release_date: str, bulletin_id: str) -> tuple[bytes, bytes]:
    d = v.descriptor
    vib = (
        "<vib><vibVersion>1.4.5</vibVersion>"
        f"<vibID>{escape(d.vib_id)}</vibID><name>{escape(d.name)}</name><version>{escape(d.version)}</version>"
        f"<vendor>{escape(d.vendor)}</vendor><vibType>{escape(d.type)}</vibType>"
        f"<summary>{escape(d.summary)}</summary>"
        f"<systemReqs><maintenanceMode>{escape(d.maintenance_mode)}</maintenanceMode>"
        f"{_platforms(d, 'swPlatform')}</systemReqs>"
        f"<relationships>{_relations(d)}</relationships>"
        f"<postInstall><rebootRequired>{'false' if d.live_install_allowed else 'true'}</rebootRequired>"
        "<hostdRestart>false</hostdRestart></postInstall>"
        + ("<softwareTags>" + "".join(f"<tag>{escape(t)}</tag>" for t in d.software_tags) + "</softwareTags>"
           if d.software_tags else "") +
        f"<vibFile><sourceUrl></sourceUrl><relativePath>{escape(v.relative_path)}</relativePath>"
        f"<packedSize>{v.size}</packedSize><checksum><checksumType>sha-256</checksumType>"
        f"<checksum>{v.sha256}</checksum></checksum></vibFile></vib>"
    )
    head = (
        f"<id>{escape(bulletin_id)}</id><vendor>{escape(d.vendor)}</vendor><summary>{escape(d.summary)}</summary>"
        "<severity>general</severity><category>general</category><urgency>important</urgency>"
        f"<releaseType>extension</releaseType><description>{escape(d.description)}</description>"
        f"<kbUrl>{escape(d.urls[0][1]) if d.urls else ''}</kbUrl><contact></contact>"
        f"<componentNameSpec name={quoteattr(d.name)} uiString={quoteattr(d.summary or d.name)}/>"
        f"<componentVersionSpec version={quoteattr(d.version)} uiString={quoteattr(d.version)}/>"
        f"<releaseDate>{escape(release_date)}</releaseDate>"
        f"<platforms>{_platforms(d, 'softwarePlatform')}</platforms>"
    )
    vmware = (f"<metadataResponse><version>3.0</version><timestamp>{escape(release_date)}</timestamp>"
              f"<bulletin>{head}<vibList>{vib}</vibList></bulletin></metadataResponse>")
    bulletin = f"<bulletin>{head}<vibList><vibID>{escape(d.vib_id)}</vibID></vibList></bulletin>"
    return vmware.encode("utf-8"), bulletin.encode("utf-8")


def write_bundle(out: Path, v: BundleVib, release_date: str, *, vendor_code: str | None = None,
                 platform_version: str | None = None) -> None:
    """Write a component-style offline bundle holding one VIB; same inputs -> identical bytes."""
    d = v.descriptor
    when = _zip_time(release_date)
    code = (vendor_code or "".join(c for c in d.vendor.upper() if c.isalnum())[:3] or "LAB")
    # One <metadata> per release the VIB targets, all naming the same metadata.zip (as VMware's bundles and
    # V-Front's vib2zip do); <version> is the platform's version: 8.0 in VMware's fling bundle, 8.* in
    # customfirewall-offline-bundle.zip.
    versions = [platform_version] if platform_version else list(dict.fromkeys(p.version
                                                                              for p in d.software_platforms))
    if not versions:
        raise ValueError("an offline bundle needs the VIB's target platforms (softwarePlatform)")
    index = (
        "<vendorList><vendor>"
        f"<name>{escape(d.vendor)}</name><code>{escape(code)}</code><indexfile>vendor-index.xml</indexfile>"
        "<patchUrl></patchUrl><relativePath></relativePath>"
        "<content><name>VMware ESX</name><type>http://www.vmware.com/depotmanagement/esx</type></content>"
        "</vendor></vendorList>\n"
    ).encode()
    vendor_index = (
        "<metaList>" + "".join(
            "<metadata><productId>embeddedEsx</productId>"
            f"<version>{escape(v)}</version><locale></locale><url>metadata.zip</url>"
            "<channelName>default</channelName></metadata>" for v in versions)
        + "</metaList>\n"
    ).encode()
    bulletin_id = f"{d.vendor}-{d.name}_{d.version}"
    vmware_xml, bulletin_xml = _vmware_xml(v, release_date, bulletin_id)
    n = int.from_bytes(hashlib.sha256(d.vib_id.encode()).digest()[:8], "big") >> 1
    md = io.BytesIO()
    with zipfile.ZipFile(md, "w") as mz:
        _entry(mz, "vmware.xml", vmware_xml, when)
        _entry(mz, "vendor-index.xml", vendor_index, when)
        _entry(mz, f"bulletins/{bulletin_id}.xml", bulletin_xml, when)
        _entry(mz, f"vibs/{d.name}-{n}.xml", _vib_metadata_xml(v), when)
    tmp = out.with_name(f".{out.name}.tmp")
    try:
        with zipfile.ZipFile(tmp, "w") as z:
            _entry(z, "index.xml", index, when)
            _entry(z, "vendor-index.xml", vendor_index, when)
            _entry(z, "metadata.zip", md.getvalue(), when)
            zi = zipfile.ZipInfo(v.relative_path, when)
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zi.create_system = 3
            with z.open(zi, "w", force_zip64=v.size > 2**31) as dst, open(v.path, "rb") as src:
                while b := src.read(COPY):
                    dst.write(b)
        tmp.replace(out)
    finally:
        tmp.unlink(missing_ok=True)


# ---------------------------------------------------------------- reading


def check_zip_directory(f: BinaryIO, what: str) -> None:
    """Refuse a zip whose central directory is too large before zipfile reads it into memory: the entry counts
    and the directory's size from the end record (and the zip64 one), found exactly the way zipfile finds them
    (the last 22 bytes, else the last EOCD signature in the final 64 KiB; zip64 records right before it)."""
    f.seek(0, 2)
    size = f.tell()
    tail_len = min(size, 22 + 65536)
    f.seek(size - tail_len)
    tail = f.read(tail_len)
    if tail[-22:-18] == _EOCD and tail[-2:] == b"\0\0":
        at = len(tail) - 22
    else:
        at = tail.rfind(_EOCD)
    if at < 0 or len(tail) - at < 22:
        raise VibFormatError(f"{what}: not a zip file (no end-of-central-directory record)")
    _, _, _, n_disk, n_total, cd_size, _, _ = struct.unpack("<4sHHHHIIH", tail[at : at + 22])
    n = max(n_disk, n_total)
    eocd_pos = size - tail_len + at
    if eocd_pos >= 76:
        f.seek(eocd_pos - 76)
        rec = f.read(76)
        if rec[56:60] == _EOCD64_LOCATOR and rec[:4] == _EOCD64:  # zipfile then takes the counts from here
            n64_disk, n64_total, cd64_size = struct.unpack("<QQQ", rec[24:48])
            n, cd_size = max(n64_disk, n64_total), cd64_size
    if n > MAX_ZIP_ENTRIES:
        raise VibFormatError(f"{what}: the zip's central directory lists {n} entries; refusing more than "
                             f"{MAX_ZIP_ENTRIES}")
    if cd_size > MAX_CENTRAL_DIRECTORY:
        raise VibFormatError(f"{what}: the zip's central directory is {cd_size} bytes; refusing more than "
                             f"{MAX_CENTRAL_DIRECTORY}")


def open_zip(f: BinaryIO, what: str) -> zipfile.ZipFile:
    check_zip_directory(f, what)
    f.seek(0)
    return zipfile.ZipFile(f)


def safe_infos(z: zipfile.ZipFile, what: str) -> list[zipfile.ZipInfo]:
    infos = z.infolist()
    if len(infos) > MAX_ZIP_ENTRIES:
        raise VibFormatError(f"{what}: more than {MAX_ZIP_ENTRIES} entries")
    seen = set()
    for zi in infos:
        check_path(zi.filename, what)
        if zi.filename in seen:
            raise VibFormatError(f"{what}: duplicate entry {zi.filename!r}")
        seen.add(zi.filename)
        if zi.flag_bits & 0x1:
            raise VibFormatError(f"{what}: {zi.filename!r} is encrypted")
        if zi.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise VibFormatError(f"{what}: {zi.filename!r} uses compression method {zi.compress_type}; offline "
                                 "bundles use stored or deflated entries")
        if zi.file_size > ZIP_RATIO_FLOOR and zi.file_size > MAX_ZIP_RATIO * max(zi.compress_size, 1):
            raise VibFormatError(f"{what}: {zi.filename!r} would inflate {zi.compress_size} bytes to "
                                 f"{zi.file_size} (above {MAX_ZIP_RATIO}:1, zip bomb cap)")
    return infos


def read_small(z: zipfile.ZipFile, zi: zipfile.ZipInfo, cap: int, what: str) -> bytes:
    if zi.file_size > cap:
        raise VibFormatError(f"{what}: {zi.filename} is {zi.file_size} bytes; refusing more than {cap}")
    with z.open(zi) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise VibFormatError(f"{what}: {zi.filename} decompresses past {cap} bytes")
    return data


class ZipEntryReader(io.RawIOBase):
    """A seekable view of one zip entry for inspect_vib, without inflating it anywhere: a forward seek reads and
    drops 1 MiB at a time (zipfile's own seek reads 16 MiB at once), a backward seek reopens the entry."""

    def __init__(self, z: zipfile.ZipFile, zi: zipfile.ZipInfo):
        super().__init__()
        self._z, self._zi = z, zi
        self._f = z.open(zi)
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        target = {0: offset, 1: self._pos + offset, 2: self._zi.file_size + offset}[whence]
        if target < self._pos:
            self._f.close()
            self._f = self._z.open(self._zi)
            self._pos = 0
        while self._pos < target:
            b = self._f.read(min(COPY, target - self._pos))
            if not b:
                break
            self._pos += len(b)
        return self._pos

    def read(self, n: int = -1) -> bytes:
        b = self._f.read(n)
        self._pos += len(b)
        return b

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._f.close()
        super().close()


def hash_entry(z: zipfile.ZipFile, zi: zipfile.ZipInfo) -> tuple[int, str]:
    """One streaming pass over an entry: its size and sha-256 (zipfile checks the CRC at the end)."""
    h = hashlib.sha256()
    n = 0
    with z.open(zi) as src:
        while b := src.read(COPY):
            n += len(b)
            h.update(b)
    return n, h.hexdigest()


def read_metadata(data: bytes, info: dict, findings: list[Finding]) -> dict[str, dict]:
    """relativePath -> {vib_id, size, sha256} from metadata.zip's vmware.xml (and vibs/*.xml)."""
    out: dict[str, dict] = {}
    try:
        mz = open_zip(io.BytesIO(data), "metadata.zip")
    except zipfile.BadZipFile as e:
        raise VibFormatError(f"metadata.zip is not a zip: {e}") from None
    with mz:
        infos = {zi.filename: zi for zi in safe_infos(mz, "metadata.zip")}
        if "vmware.xml" in infos:
            root = parse_xml(read_small(mz, infos["vmware.xml"], 8 << 20, "metadata.zip"), "vmware.xml")
            for b in root.iter("bulletin"):
                info["bulletins"].append((b.findtext("id") or "").strip())
                if not b.findall("platforms/softwarePlatform"):
                    findings.append(Finding(WARNING, f"bulletin {(b.findtext('id') or '').strip()!r} lists no "
                                                     "<platforms>/<softwarePlatform> (real bundles do)"))
                for v in b.iter("vib"):
                    rel = (v.findtext("vibFile/relativePath") or "").strip()
                    if not rel:
                        continue
                    out[rel] = {
                        "vib_id": (v.findtext("vibID") or "").strip() or None,
                        "size": _packed_size(v.findtext("vibFile/packedSize"), rel, findings),
                        "sha256": (v.findtext("vibFile/checksum/checksum") or "").strip().lower() or None,
                    }
        for name, zi in infos.items():
            if name.startswith("vibs/") and name.endswith(".xml"):
                v = parse_xml(read_small(mz, zi, 1 << 20, "metadata.zip"), name)
                rel = (v.findtext("relative-path") or "").strip()
                if rel and rel not in out:
                    chk = v.find("checksum")
                    out[rel] = {"vib_id": None, "size": _packed_size(v.findtext("packed-size"), rel, findings),
                                "sha256": (chk.text or "").strip().lower() if chk is not None else None}
        if not out:
            findings.append(Finding(ERROR, "metadata.zip lists no VIBs"))
    return out


def _packed_size(text: str | None, rel: str, findings: list[Finding]) -> int | None:
    if text is None or not text.strip():
        return None
    n = plain_number(text)
    if n is None:
        shown = repr(text[:24] + "…") if len(text) > 24 else repr(text)
        findings.append(Finding(ERROR, f"metadata.zip: packedSize {shown} of {rel} is not a plain decimal number"))
    return n
