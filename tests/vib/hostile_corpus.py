"""The hostile VIB corpus: every file is generated here (nothing binary is committed).

Each case is a function writing one file into a directory and returning its path, plus what `labctl vib inspect`
must say about it: the exit status, a substring of a finding, and (when it matters) its severity. The cases are
the security review of issue 13 (hidden tar members, unbounded headers, link games, malformed numbers, report
injection) and the older hostile cases (ar, XML, tar, gzip, vmtar, zip).

`python -m tests.vib.hostile_corpus OUTDIR` writes the whole corpus to OUTDIR (for trying other tools on it).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import struct
import sys
import tarfile
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .vibhelpers import ar_bytes, ar_header, descriptor, tgz, vib, vmtar

MAGIC = b"!<arch>\n"
MB = 1024 * 1024


@dataclass(frozen=True)
class Case:
    name: str
    make: Callable[[Path], Path]
    status: int  # exit status of `vib inspect --json`
    needle: str  # a substring of one finding's message
    severity: str = "error"
    max_rss_mb: int = 100
    max_seconds: float = 20.0
    human_check: Callable[[str], None] | None = None  # run the human report too and check it


# ---------------------------------------------------------------- tar built by hand (tarfile cannot write these)


def tar_block(name: bytes, size: int = 0, typeflag: bytes = b"0", *, link: bytes = b"", mode: int = 0o644,
              checksum: bytes | None = None, magic: bytes = b"ustar  \0", size_field: bytes | None = None) -> bytes:
    h = bytearray(512)
    h[0 : len(name[:100])] = name[:100]
    h[100:108] = b"%07o\0" % mode
    h[108:116] = b"0000000\0"
    h[116:124] = b"0000000\0"
    h[124:136] = size_field if size_field is not None else b"%011o\0" % size
    h[136:148] = b"%011o\0" % 0
    h[156:157] = typeflag
    h[157 : 157 + len(link)] = link
    h[257:265] = magic
    h[265:269] = b"root"
    h[297:301] = b"root"
    h[148:156] = b" " * 8
    h[148:156] = checksum if checksum is not None else b"%06o\0 " % sum(h)
    return bytes(h)


def tar_member(name: str, data: bytes = b"", *, mode: int = 0o644, typeflag: bytes = b"0", link: str = "") -> bytes:
    out = tar_block(name.encode(), len(data), typeflag, link=link.encode(), mode=mode) + data
    return out + b"\0" * (-len(out) % 512)


def tar_end() -> bytes:
    return b"\0" * 1024


def gz(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def gz_repeat(chunk: bytes, times: int) -> bytes:
    """`chunk * times` as concatenated gzip members (a valid gzip stream), cheap to make for hundreds of MB."""
    return gz(chunk) * times


def low_ratio_chunk() -> bytes:
    """1 MiB that gzip compresses about 140:1: under the 200:1 bomb cap, so a reader has to deal with the size
    itself (zeros would be stopped by the ratio cap and prove nothing about the header caps)."""
    r = random.Random(13)
    return b"".join(r.randbytes(3) + b"a" * 1021 for _ in range(1024))


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _vib_tar(payload_tar: bytes, files: list[str], **kw) -> bytes:
    return vib(gz(payload_tar), files, **kw)


# ---------------------------------------------------------------- 1. members hidden from the inspector


HIDDEN = "../../../../tmp/labctl-hidden"


def hidden_payload() -> bytes:
    """One good member, then a header whose checksum field is zeroed (Python's tarfile stops there and says the
    archive ended; GNU tar says 'Skipping to next header' and goes on), then a path-traversal and a setuid
    file behind it."""
    bad = tar_block(b"opt/x/junk", 0, checksum=b"\0" * 8)
    return (tar_member("opt/x/a", b"first") + bad + tar_member(HIDDEN, b"owned")
            + tar_member("usr/bin/evil", b"#!/bin/sh\n", mode=0o4755) + tar_end())


def make_hidden_bad_checksum(d: Path) -> Path:
    return _write(d / "hidden-bad-checksum.vib", _vib_tar(hidden_payload(), ["opt/x/a"]))


def trailing_payload() -> bytes:
    """A complete archive (two zero blocks), then more members: GNU tar --ignore-zeros (and extractors that
    skip zero blocks) read them."""
    return (tar_member("opt/x/a", b"first") + tar_end() + tar_member("usr/bin/evil", b"x", mode=0o4755)
            + tar_end())


def make_hidden_after_end(d: Path) -> Path:
    return _write(d / "hidden-after-end.vib", _vib_tar(trailing_payload(), ["opt/x/a"]))


def make_bad_checksum_first(d: Path) -> Path:
    data = tar_block(b"opt/x/a", 5, checksum=b"0000001\0") + b"hello" + b"\0" * 507 + tar_end()
    return _write(d / "bad-checksum-first.vib", _vib_tar(data, ["opt/x/a"]))


def make_gzip_trailing_garbage(d: Path) -> Path:
    payload = gz(tar_member("opt/x/a", b"first") + tar_end()) + b"GARBAGE-AFTER-GZIP" * 10
    return _write(d / "gzip-trailing-garbage.vib", vib(payload, ["opt/x/a"]))


def make_dir_with_data(d: Path) -> Path:
    """A directory header that declares data: tarfile reads the data as the next header, GNU tar skips it."""
    inner = tar_member("usr/bin/evil", b"x", mode=0o4755)
    data = tar_block(b"opt/x/", len(inner), b"5", mode=0o755) + inner + tar_end()
    return _write(d / "dir-with-data.vib", _vib_tar(data, ["opt/x/a"]))


def make_duplicate_member(d: Path) -> Path:
    data = tar_member("opt/x/a", b"benign") + tar_member("opt/x/a", b"replaced on extraction") + tar_end()
    return _write(d / "duplicate-member.vib", _vib_tar(data, ["opt/x/a"]))


def ambiguous_prefix_payload() -> bytes:
    """A GNU-magic header with bytes in the ustar prefix field: tarfile prepends them, GNU tar does not."""
    h = bytearray(tar_block(b"a", 1))
    h[345:352] = b"usr/bin"
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)
    return bytes(h) + b"x" + b"\0" * 511 + tar_end()


def make_ambiguous_prefix(d: Path) -> Path:
    return _write(d / "ambiguous-prefix.vib", _vib_tar(ambiguous_prefix_payload(), ["a"]))


# ---------------------------------------------------------------- 2./3. unbounded CPU and memory


def pax_record(key: str, value: str) -> bytes:
    """'<len> key=value\\n', where len counts its own digits."""
    rest = f" {key}={value}\n".encode()
    n = len(rest) + 1
    while len(str(n)) + len(rest) != n:
        n += 1
    return str(n).encode() + rest


def pax_block(size: int) -> bytes:
    return tar_block(b"././@PaxHeader", size, b"x")


def make_pax_million_digits(d: Path) -> Path:
    """CVE-2024-6232: one PAX record whose length field is 1,000,000 digits (quadratic in tarfile's regex)."""
    body = b"1" * 1_000_000 + b" path=x\n"
    data = pax_block(len(body)) + body + b"\0" * (-len(body) % 512) + tar_member("opt/x/a", b"x") + tar_end()
    return _write(d / "pax-million-digits.vib", _vib_tar(data, ["opt/x/a"]))


def make_pax_60k_digits(d: Path) -> Path:
    """A PAX header under the size cap whose record length is 60,000 digits."""
    body = b"9" * 60_000 + b" path=x\n"
    data = pax_block(len(body)) + body + b"\0" * (-len(body) % 512) + tar_member("opt/x/a", b"x") + tar_end()
    return _write(d / "pax-60k-digits.vib", _vib_tar(data, ["opt/x/a"]))


def _huge_ext(d: Path, name: str, typeflag: bytes) -> Path:
    """A 300 MB extended header (PAX or GNU long name): tarfile reads it whole into memory."""
    size = 300 * MB
    head = (pax_block(size) if typeflag == b"x" else tar_block(b"././@LongLink", size, b"L"))
    body = gz(head) + gz_repeat(low_ratio_chunk(), size // MB) + gz(tar_member("opt/x/a", b"x") + tar_end())
    return _write(d / name, vib(body, ["opt/x/a"]))


def make_pax_300mb(d: Path) -> Path:
    return _huge_ext(d, "pax-300mb.vib", b"x")


def make_longname_300mb(d: Path) -> Path:
    return _huge_ext(d, "gnu-longname-300mb.vib", b"L")


def make_long_names_budget(d: Path) -> Path:
    """3000 members with 4000-character names (GNU long names): 12 M characters to keep in memory."""
    parts = []
    for i in range(3000):
        name = f"opt/{i:05d}/" + "n" * 3990
        parts.append(tar_member("././@LongLink", name.encode(), typeflag=b"L") + tar_member(name[:99], b""))
    # tar_member names the member by its first 99 characters; the long-name header before it gives the rest
    return _write(d / "long-names-budget.vib", _vib_tar(b"".join(parts) + tar_end(), ["opt/x"]))


def make_payload_listed_2000_times(d: Path) -> Path:
    """A 20 MB payload listed 2000 times: read once per listing, that is 40 GB to inflate."""
    payload = gz(tar_block(b"opt/x/a", 20 * MB)) + gz_repeat(low_ratio_chunk(), 20) + gz(tar_end())
    one = descriptor("p1", payload, ["opt/x/a"]).decode()
    start, end = one.index("<payload "), one.index("</payloads>")
    many = one[:start] + one[start:end] * 2000 + one[end:]
    return _write(d / "payload-listed-2000-times.vib",
                  ar_bytes([(b"descriptor.xml", many.encode()), (b"sig.pkcs7", b""), (b"p1", payload)]))


def make_pax_size_override(d: Path) -> Path:
    """A PAX size record of 5000 digits."""
    body = pax_record("size", "9" * 5000)
    data = pax_block(len(body)) + body + b"\0" * (-len(body) % 512) + tar_member("opt/x/a", b"x") + tar_end()
    return _write(d / "pax-size-5000-digits.vib", _vib_tar(data, ["opt/x/a"]))


# ---------------------------------------------------------------- ESX 4 rpm VIBs built by hand


def rpm_header(entries: list[tuple[int, int, int | None, bytes]]) -> bytes:
    """entries: (tag, type, count or None for the natural count, data)."""
    index, store = [], bytearray()
    for tag, typ, count, data in entries:
        if typ == 4:
            store += b"\0" * (-len(store) % 4)
        index.append(struct.pack(">iiii", tag, typ, len(store), count if count is not None else len(data) // 4))
        store += data
    return b"\x8e\xad\xe8\x01\0\0\0\0" + struct.pack(">ii", len(index), len(store)) + b"".join(index) + bytes(store)


def cpio_newc(name: str, mode: int, size: int) -> bytes:
    nm = name.encode() + b"\0"
    h = b"070701" + b"".join(b"%08X" % v for v in (1, mode, 0, 0, 1, 0, size, 0, 0, 0, 0, len(nm), 0))
    out = h + nm
    return out + b"\0" * (-len(out) % 4)


def esx4_rpm_vib(rpm: bytes) -> bytes:
    desc = (b"<vib><vibVersion>1.4.5</vibVersion><vibType>rpm</vibType><name>t</name><version>1.0-1</version>"
            b"<vendor>lab</vendor><summary>s</summary><systemReqs><swPlatform productLineID=\"esx\"/></systemReqs>"
            b"</vib>")
    return ar_bytes([(b"descriptor.xml", desc), (b"complete.rpm", rpm)])


def rpm_bytes(payload: bytes, *, sig_entries=None, hdr_entries=None) -> bytes:
    lead = b"\xed\xab\xee\xdb" + struct.pack(">BBhh", 3, 0, 0, 1) + b"t-1.0-1".ljust(66, b"\0") + \
        struct.pack(">hh", 1, 5) + b"\0" * 16
    hdr = rpm_header(hdr_entries if hdr_entries is not None else [(1000, 6, 1, b"t\0"), (1001, 6, 1, b"1.0\0"),
                                                                  (1002, 6, 1, b"1\0")])
    sig = rpm_header(sig_entries if sig_entries is not None else
                     [(1000, 4, None, struct.pack(">i", len(hdr) + len(payload)))])
    sig += b"\0" * (-len(sig) % 8)
    return lead + sig + hdr + payload


def make_rpm_symlink_400mb(d: Path) -> Path:
    size = 400 * MB
    body = gz(cpio_newc("./opt/l", 0o120777, size)) + gz_repeat(low_ratio_chunk(), size // MB) + \
        gz(cpio_newc("TRAILER!!!", 0, 0))
    return _write(d / "rpm-symlink-400mb.vib", esx4_rpm_vib(rpm_bytes(body)))


def _small_cpio() -> bytes:
    return gz(cpio_newc("./opt/a", 0o100644, 2) + b"hi\0\0" + cpio_newc("TRAILER!!!", 0, 0))


def make_rpm_data_after_trailer(d: Path) -> Path:
    hidden = cpio_newc("./usr/bin/evil", 0o104755, 1) + b"x\0\0\0" + cpio_newc("TRAILER!!!", 0, 0)
    body = gz(cpio_newc("./opt/a", 0o100644, 2) + b"hi\0\0" + cpio_newc("TRAILER!!!", 0, 0) + hidden)
    return _write(d / "rpm-data-after-trailer.vib", esx4_rpm_vib(rpm_bytes(body)))


def make_rpm_size_count_zero(d: Path) -> Path:
    return _write(d / "rpm-sig-size-count-0.vib",
                  esx4_rpm_vib(rpm_bytes(_small_cpio(), sig_entries=[(1000, 4, 0, b"\0\0\0\0")])))


def make_rpm_dirindexes_past_dirnames(d: Path) -> Path:
    hdr = [(1000, 6, 1, b"t\0"), (1116, 4, None, struct.pack(">i", 7)), (1117, 8, 1, b"a\0"),
           (1118, 8, 1, b"/opt/\0")]
    return _write(d / "rpm-dirindexes-past-dirnames.vib", esx4_rpm_vib(rpm_bytes(_small_cpio(), hdr_entries=hdr)))


def make_rpm_string_count_bomb(d: Path) -> Path:
    """65536 index entries each claiming 16M strings in a store of NULs: decoding every claim is quadratic."""
    n, store = 4096, 1 << 20
    index = b"".join(struct.pack(">iiii", 5000 + i, 8, 0, store) for i in range(n))
    hdr = b"\x8e\xad\xe8\x01\0\0\0\0" + struct.pack(">ii", n, store) + index + b"\0" * store
    lead = b"\xed\xab\xee\xdb" + struct.pack(">BBhh", 3, 0, 0, 1) + b"t".ljust(66, b"\0") + \
        struct.pack(">hh", 1, 5) + b"\0" * 16
    sig = rpm_header([])
    sig += b"\0" * (-len(sig) % 8)
    return _write(d / "rpm-string-count-bomb.vib", esx4_rpm_vib(lead + sig + hdr + _small_cpio()))


# ---------------------------------------------------------------- zip / offline bundles


def _zip_bundle(entries: list[tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in entries:
            z.writestr(name, data)
    return buf.getvalue()


def _tiny_zip_parts(n: int) -> tuple[bytes, bytes]:
    """One empty local entry 'a' and a central directory of `n` entries all pointing at it."""
    local = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 20, 0, 0, 0, 0, 0, 0, 0, 1, 0) + b"a"
    central = b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 20, 20, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0,
                                          0) + b"a"
    return local, central * n


def make_zip_million_entries(d: Path) -> Path:
    """1,000,000 central-directory entries (47 MB): zipfile builds a ZipInfo for each before any cap."""
    n = 1_000_000
    local, cd = _tiny_zip_parts(n)
    eocd64 = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, n, n, len(cd), len(local))
    loc = b"PK\x06\x07" + struct.pack("<IQI", 0, len(local) + len(cd), 1)
    eocd = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 0xFFFF, 0xFFFF, len(cd), len(local), 0)
    return _write(d / "zip-million-entries.zip", local + cd + eocd64 + loc + eocd)


def make_zip_count_lies(d: Path) -> Path:
    """The end record says 3 entries; the central directory it points to is 6 MB (130,000 entries)."""
    local, cd = _tiny_zip_parts(130_000)
    eocd = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, 3, 3, len(cd), len(local), 0)
    return _write(d / "zip-count-lies.zip", local + cd + eocd)


def _deflated_zeros(total: int) -> tuple[bytes, int]:
    """Raw deflate of `total` zero bytes, built from one compressed 1 MiB block repeated (byte-aligned by a full
    flush, so the repeats are identical); and the CRC-32 of the whole."""
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = c.compress(b"\0" * MB) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(b"\0" * MB) + c.flush(zlib.Z_FULL_FLUSH)
    assert block == again
    n = total // MB
    crc = 0
    zero = b"\0" * MB
    for _ in range(n):
        crc = zlib.crc32(zero, crc)
    return block * n + c.flush(zlib.Z_FINISH), crc


def make_bundle_inflates_4gb(d: Path) -> Path:
    """A 4 MB offline bundle whose .vib entry inflates to 3.9 GB (inflated to $TMPDIR before the fix)."""
    total = 3900 * MB
    data, crc = _deflated_zeros(total)
    name = b"vib20/t/lab_bootbank_t_1.0.0-1.vib"
    small = _zip_bundle([("index.xml", b"<vendorList/>"), ("vendor-index.xml", b"<metaList/>")])
    # append the bomb entry by hand (zip64 sizes), after the small entries' local records
    zs = zipfile.ZipFile(io.BytesIO(small))
    cd_small = small[zs.start_dir : small.rindex(b"PK\x05\x06")]
    body = small[: zs.start_dir]
    off = len(body)
    extra = struct.pack("<HHQQ", 1, 16, total, len(data))
    local = b"PK\x03\x04" + struct.pack("<HHHHHIIIHH", 45, 0, 8, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(name),
                                        len(extra)) + name + extra
    extra_c = struct.pack("<HHQQQ", 1, 24, total, len(data), off)
    central = b"PK\x01\x02" + struct.pack("<HHHHHHIIIHHHHHII", 45, 45, 0, 8, 0, 0, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                                          len(name), len(extra_c), 0, 0, 0, 0o644 << 16, 0xFFFFFFFF) + name + extra_c
    body += local + data
    cd = cd_small + central
    n = len(zs.infolist()) + 1
    eocd64 = b"PK\x06\x06" + struct.pack("<QHHIIQQQQ", 44, 45, 45, 0, 0, n, n, len(cd), len(body))
    loc = b"PK\x06\x07" + struct.pack("<IQI", 0, len(body) + len(cd), 1)
    eocd = b"PK\x05\x06" + struct.pack("<HHHHIIH", 0, 0, n, n, len(cd), 0xFFFFFFFF, 0)
    return _write(d / "bundle-inflates-4gb.zip", body + cd + eocd64 + loc + eocd)


def _bundle_with(vib_bytes: bytes, packed: str, rel: str = "vib20/t/lab_bootbank_t_1.0.0-1.vib") -> bytes:
    vmware = (f"<metadataResponse><bulletin><id>b</id><vibList><vib><vibID>lab_bootbank_t_1.0.0-1</vibID>"
              f"<vibFile><relativePath>{rel}</relativePath><packedSize>{packed}</packedSize>"
              f"<checksum><checksumType>sha-256</checksumType><checksum>{hashlib.sha256(vib_bytes).hexdigest()}"
              f"</checksum></checksum></vibFile></vib></vibList></bulletin></metadataResponse>").encode()
    md = _zip_bundle([("vmware.xml", vmware)])
    return _zip_bundle([("index.xml", b"<vendorList><vendor><name>lab</name></vendor></vendorList>"),
                        ("vendor-index.xml", b"<metaList><metadata><url>metadata.zip</url></metadata></metaList>"),
                        ("metadata.zip", md), (rel, vib_bytes)])


def _good_vib() -> bytes:
    return vib(tgz([("etc/vmware/firewall/a.xml", b"<ConfigRoot/>")]), ["etc/vmware/firewall/a.xml"])


def make_bundle_packed_size_superscript(d: Path) -> Path:
    return _write(d / "bundle-packedsize-superscript.zip", _bundle_with(_good_vib(), "²"))


def make_bundle_packed_size_5000_digits(d: Path) -> Path:
    return _write(d / "bundle-packedsize-5000-digits.zip", _bundle_with(_good_vib(), "7" * 5000))


def make_bundle_negative_offset(d: Path) -> Path:
    """The end record puts the central directory 100 bytes later than it is: zipfile then computes a negative
    offset for the first entry and the seek fails (EINVAL; an internal error before, found by fuzzing)."""
    b = bytearray(_bundle_with(_good_vib(), "1"))
    at = b.rindex(b"PK\x05\x06")
    (off,) = struct.unpack("<I", b[at + 16 : at + 20])
    b[at + 16 : at + 20] = struct.pack("<I", off + 100)
    return _write(d / "bundle-negative-offset.zip", bytes(b))


def make_bundle_corrupt_deflate(d: Path) -> Path:
    b = bytearray(_bundle_with(_good_vib(), "1"))
    i = b.index(b"vib20/t/lab_bootbank_t_1.0.0-1.vib") + len("vib20/t/lab_bootbank_t_1.0.0-1.vib") + 20
    b[i : i + 8] = b"\xff" * 8
    return _write(d / "bundle-corrupt-deflate.zip", bytes(b))


def make_bundle_zip_slip(d: Path) -> Path:
    return _write(d / "bundle-zip-slip.zip", _zip_bundle([("../../evil.vib", b"x")]))


def make_bundle_missing_parts(d: Path) -> Path:
    return _write(d / "bundle-missing-parts.zip", _zip_bundle([("index.xml", b"<vendorList/>")]))


# ---------------------------------------------------------------- 4. links resolved, not only read


def make_link_via_link_escape(d: Path) -> Path:
    data = (tar_member("opt/a", typeflag=b"2", link="..") + tar_member("opt/b", typeflag=b"2", link="a/..")
            + tar_member("opt/b/evil", b"x") + tar_end())
    return _write(d / "link-through-link-escape.vib", _vib_tar(data, ["opt/a", "opt/b", "opt/b/evil"]))


def make_link_escape_by_later_link(d: Path) -> Path:
    """opt/b -> c/.. is harmless while opt/c is a directory name; the later opt/c -> .. sends opt/b outside."""
    data = (tar_member("opt/b", typeflag=b"2", link="c/..") + tar_member("opt/c", typeflag=b"2", link="..")
            + tar_end())
    return _write(d / "link-escape-by-later-link.vib", _vib_tar(data, ["opt/b", "opt/c"]))


def make_link_loop(d: Path) -> Path:
    data = (tar_member("opt/a", typeflag=b"2", link="b") + tar_member("opt/b", typeflag=b"2", link="a")
            + tar_member("opt/a/x", b"x") + tar_end())
    return _write(d / "link-loop.vib", _vib_tar(data, ["opt/a", "opt/b", "opt/a/x"]))


def make_link_redirects_into_usr_bin(d: Path) -> Path:
    data = (tar_member("opt/l", typeflag=b"2", link="../usr/bin") + tar_member("opt/l/evil", b"#!/bin/sh\n",
                                                                                mode=0o755) + tar_end())
    return _write(d / "link-redirects-into-usr-bin.vib", _vib_tar(data, ["opt/l", "opt/l/evil"]))


def make_link_redirect_across_payloads(d: Path) -> Path:
    """The link in one payload, the file in the next: ESXi extracts both into one root."""
    p1 = gz(tar_member("opt/l", typeflag=b"2", link="../usr/bin") + tar_end())
    p2 = gz(tar_member("opt/l/evil", b"x", mode=0o755) + tar_end())
    d1 = descriptor("p1", p1, ["opt/l", "opt/l/evil"]).decode()
    d2 = descriptor("p2", p2, []).decode()
    one = d2[d2.index("<payload "): d2.index("</payloads>")]
    desc = d1.replace("</payloads>", one + "</payloads>")
    return _write(d / "link-redirect-across-payloads.vib",
                  ar_bytes([(b"descriptor.xml", desc.encode()), (b"sig.pkcs7", b""), (b"p1", p1), (b"p2", p2)]))


def make_link_resolution_budget(d: Path) -> Path:
    """A link whose target is 2000 './' components, then 2100 files through it: 4.2 million steps to resolve."""
    target = "./" * 2000 + "x"
    parts = [tar_member("././@LongLink", target.encode(), typeflag=b"K"),
             tar_member("opt/l", typeflag=b"2", link="x"), tar_member("opt/x", typeflag=b"5")]
    parts += [tar_member(f"opt/l/f{i}", b"") for i in range(2100)]
    return _write(d / "link-resolution-budget.vib", _vib_tar(b"".join(parts) + tar_end(), ["opt/l"]))


def make_file_as_directory(d: Path) -> Path:
    data = tar_member("opt/f", b"x") + tar_member("opt/f/g", b"y") + tar_end()
    return _write(d / "file-as-directory.vib", _vib_tar(data, ["opt/f", "opt/f/g"]))


# ---------------------------------------------------------------- 5. malformed numbers


def _desc_with_size(text: str, attr: str = "size") -> bytes:
    payload = tgz([("opt/x/a", b"x")])
    d = descriptor("p1", payload, ["opt/x/a"]).decode()
    if attr == "size":
        d = d.replace(f'size="{len(payload)}"', f'size="{text}"')
    else:
        d = d.replace(f'size="{len(payload)}"', f'size="{len(payload)}" {attr}="{text}"')
    return ar_bytes([(b"descriptor.xml", d.encode()), (b"sig.pkcs7", b""), (b"p1", payload)])


def make_size_superscript(d: Path) -> Path:
    return _write(d / "size-superscript.vib", _desc_with_size("²"))


def make_size_5000_digits(d: Path) -> Path:
    return _write(d / "size-5000-digits.vib", _desc_with_size("1" * 5000))


def make_uncompressed_size_arabic(d: Path) -> Path:
    return _write(d / "uncompressed-size-arabic-digits.vib", _desc_with_size("١٢٣", "uncompressed-size"))


# ---------------------------------------------------------------- 6. report injection


FORGED = "ok\n  signature: valid signature by CN=VMware, Inc.\nresult: ok"


def make_summary_forges_report(d: Path) -> Path:
    payload = tgz([("etc/vmware/firewall/a.xml", b"<ConfigRoot/>")])
    desc = descriptor("p1", payload, ["etc/vmware/firewall/a.xml"]).replace(
        b"<summary>s</summary>", b"<summary>" + FORGED.encode() + b"</summary>")
    # and a broken checksum, so the real verdict is an error the forged lines try to hide
    payload2 = tgz([("etc/vmware/firewall/a.xml", b"<ConfigRoot>x</ConfigRoot>")])
    desc = desc.replace(f'size="{len(payload)}"'.encode(), f'size="{len(payload2)}"'.encode())
    return _write(d / "summary-forges-report.vib",
                  ar_bytes([(b"descriptor.xml", desc), (b"sig.pkcs7", b""), (b"p1", payload2)]))


def check_no_forged_lines(text: str) -> None:
    lines = text.splitlines()
    assert not any(ln.startswith("  signature: valid") for ln in lines), text
    assert lines[-1].startswith("result: ") and lines[-1] != "result: ok", text
    assert [ln for ln in lines if ln.startswith("result:")] == [lines[-1]], text
    assert "\\n  signature: valid signature by CN=VMware" in text, text


def make_esc_in_member_name(d: Path) -> Path:
    data = tar_member("opt/\x1b[2J\x1b]0;owned\x07x", b"x") + tar_end()
    return _write(d / "esc-in-member-name.vib", _vib_tar(data, ["opt/x"]))


def check_no_escape_bytes(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text, repr(text)
    assert "\\x1b[2J" in text, text


# ---------------------------------------------------------------- the older hostile cases


def _bytes_case(filename: str, data: Callable[[], bytes]) -> Callable[[Path], Path]:
    return lambda d: _write(d / filename, data())


def _ti(name, type_=tarfile.REGTYPE, link="", mode=0o644):
    ti = tarfile.TarInfo(name)
    ti.type = type_
    ti.linkname = link
    ti.mode = mode
    return ti


_GOOD = lambda: tgz([("etc/vmware/firewall/a.xml", b"<ConfigRoot/>")])  # noqa: E731
_GOOD_DESC = lambda: descriptor("p1", _GOOD(), ["etc/vmware/firewall/a.xml"])  # noqa: E731
_BOMB_XML = (b'<?xml version="1.0"?><!DOCTYPE vib [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
             b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;">]><vib version="5.0"><name>&c;</name></vib>')
_XXE = (b'<?xml version="1.0"?><!DOCTYPE vib [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
        b'<vib version="5.0"><name>&x;</name></vib>')

OLD_CASES = [
    Case("ar-size-not-decimal", _bytes_case("a.vib", lambda: MAGIC + ar_header(b"descriptor.xml", b"12a") + b"x"),
         1, "not a plain decimal"),
    Case("ar-size-past-end", _bytes_case("a.vib", lambda: MAGIC + ar_header(b"descriptor.xml", b"999999") + b"x"),
         1, "past the end"),
    Case("ar-duplicate-names", _bytes_case("a.vib", lambda: ar_bytes(
        [(b"descriptor.xml", _GOOD_DESC()), (b"sig.pkcs7", b""), (b"p1", _GOOD()), (b"p1", _GOOD())])),
         1, "duplicate member name 'p1'"),
    Case("ar-empty-name", _bytes_case("a.vib", lambda: ar_bytes([(b"", b"x")])), 1, "empty name"),
    Case("ar-dotdot-name", _bytes_case("a.vib", lambda: ar_bytes([(b"../etc/passwd", b"x")])), 1,
         "unsafe member name"),
    Case("ar-gnu-long-name-slash", _bytes_case("a.vib", lambda: MAGIC + ar_header(b"//", 14) + b"../../evil/x/\n"
                                               + ar_header(b"/0", 1) + b"x\n"), 1, "unsafe member name"),
    Case("ar-too-many-members", _bytes_case("a.vib", lambda: ar_bytes([(f"m{i}".encode(), b"xx")
                                                                       for i in range(100)])),
         1, "more than 64 members"),
    Case("ar-trailing-garbage", _bytes_case("a.vib", lambda: _good_vib() + b"GARBAGE"), 1, "Trailing garbage"),
    Case("ar-bad-magic", _bytes_case("a.vib", lambda: b"PK-not-ar-at-all"), 1, "Unexpected file magic"),
    Case("xml-entity-bomb", _bytes_case("a.vib", lambda: ar_bytes([(b"descriptor.xml", _BOMB_XML),
                                                                   (b"sig.pkcs7", b"")])),
         1, "entity-expansion bomb or XXE"),
    Case("xml-xxe", _bytes_case("a.vib", lambda: ar_bytes([(b"descriptor.xml", _XXE), (b"sig.pkcs7", b"")])),
         1, "refused"),
    Case("tar-absolute", _bytes_case("a.vib", lambda: vib(tgz([_ti("/etc/passwd")]), ["opt/x"])), 1,
         "absolute path"),
    Case("tar-dotdot", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt/../../etc/passwd")]), ["opt/x"])), 1,
         "contains '..'"),
    Case("tar-symlink-absolute", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt/x", tarfile.SYMTYPE,
                                                                           "/etc/shadow")]), ["opt/x"])),
         1, "absolute path"),
    Case("tar-symlink-outside", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt/x", tarfile.SYMTYPE,
                                                                          "../../etc/shadow")]), ["opt/x"])),
         1, "outside the payload"),
    Case("tar-hardlink-outside", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt/x", tarfile.LNKTYPE,
                                                                           "../etc/shadow")]), ["opt/x"])),
         1, "outside the payload"),
    Case("tar-device", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt/dev", tarfile.CHRTYPE)]), ["opt/x"])), 1,
         "device node"),
    Case("tar-fifo", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt/fifo", tarfile.FIFOTYPE)]), ["opt/x"])), 1,
         "FIFO"),
    Case("tar-backslash", _bytes_case("a.vib", lambda: vib(tgz([_ti("opt\\win")]), ["opt/x"])), 1, "backslash"),
    Case("gzip-bomb-ratio", _bytes_case("a.vib", lambda: vib(gz_repeat(b"\0" * MB, 40), ["opt/x"])), 1,
         "compression ratio above 200:1"),
    Case("vmtar-offset-past-end", _bytes_case("a.vib", lambda: vib(vmtar([("opt/a", b"hello")], bad_offset=10**6),
                                                                   ["opt/a"], ptype="vgz")), 1, "past the end"),
    Case("vmtar-bad-checksum", _bytes_case("a.vib", lambda: vib(vmtar([("opt/a", b"hello")], bad_checksum=True),
                                                                ["opt/a"], ptype="vgz")), 1, "has a bad checksum"),
    Case("vmtar-offset-in-headers", _bytes_case("a.vib", lambda: vib(vmtar([("opt/a", b"hello")], bad_offset=0),
                                                                     ["opt/a"], ptype="vgz")),
         1, "overlaps the header table"),
    Case("bundle-zip-slip", make_bundle_zip_slip, 1, "contains '..'"),
    Case("bundle-missing-parts", make_bundle_missing_parts, 1, "contains no .vib"),
]

CASES = [
    # 1. hidden members
    Case("hidden-bad-checksum", make_hidden_bad_checksum, 1, "bad checksum"),
    Case("hidden-after-end", make_hidden_after_end, 1, "after the tar end-of-archive marker"),
    Case("bad-checksum-first", make_bad_checksum_first, 1, "bad checksum"),
    Case("gzip-trailing-garbage", make_gzip_trailing_garbage, 1, "not valid gzip"),
    Case("dir-with-data", make_dir_with_data, 1, "bytes of data"),
    Case("duplicate-member", make_duplicate_member, 1, "duplicate member 'opt/x/a'"),
    Case("ambiguous-prefix", make_ambiguous_prefix, 1, "disagree on its name"),
    Case("rpm-data-after-trailer", make_rpm_data_after_trailer, 1, "data after the cpio trailer"),
    # 2. CPU
    Case("pax-million-digits", make_pax_million_digits, 1, "refusing more than 65536", max_seconds=10),
    Case("pax-60k-digits", make_pax_60k_digits, 1, "malformed PAX header record", max_seconds=10),
    Case("pax-size-5000-digits", make_pax_size_override, 1, "is not a plain number", max_seconds=10),
    Case("long-names-budget", make_long_names_budget, 1, "add up to more than 8388608 characters"),
    Case("payload-listed-2000-times", make_payload_listed_2000_times, 1, "'p1' (2000 times)", max_seconds=10),
    Case("rpm-string-count-bomb", make_rpm_string_count_bomb, 1, "RPM header has no NAME", max_seconds=10),
    # 3. memory and temporary storage
    Case("pax-300mb", make_pax_300mb, 1, "PAX header at offset 0 declares 314572800 bytes"),
    Case("gnu-longname-300mb", make_longname_300mb, 1, "GNU long-name header at offset 0 declares 314572800"),
    Case("rpm-symlink-400mb", make_rpm_symlink_400mb, 1, "419430400-byte target"),
    Case("zip-million-entries", make_zip_million_entries, 1, "lists 1000000 entries", max_seconds=10),
    Case("zip-count-lies", make_zip_count_lies, 1, "central directory is 6110000 bytes", max_seconds=10),
    Case("bundle-inflates-4gb", make_bundle_inflates_4gb, 1, "zip bomb cap", max_seconds=10),
    Case("bundle-negative-offset", make_bundle_negative_offset, 1, "bundle: [Errno 22] Invalid argument"),
    Case("bundle-corrupt-deflate", make_bundle_corrupt_deflate, 1, "corrupt zip entry (error: Error -3"),
    # 4. links
    Case("link-through-link-escape", make_link_via_link_escape, 1, "'opt/b -> a/..' resolves outside"),
    Case("link-escape-by-later-link", make_link_escape_by_later_link, 1, "'opt/b -> c/..' resolves outside"),
    Case("link-loop", make_link_loop, 1, "more than 40 symlinks"),
    Case("link-redirects-into-usr-bin", make_link_redirects_into_usr_bin, 0,
         "opt/l/evil (lands in usr/bin/evil)", severity="warning"),
    Case("link-redirect-across-payloads", make_link_redirect_across_payloads, 0,
         "opt/l/evil (lands in usr/bin/evil)", severity="warning"),
    Case("link-resolution-budget", make_link_resolution_budget, 1, "more than 4000000 steps"),
    Case("file-as-directory", make_file_as_directory, 1, "has the file 'opt/f' as a directory"),
    # 5. malformed numbers
    Case("size-superscript", make_size_superscript, 1, "size '²' is not a plain decimal number"),
    Case("size-5000-digits", make_size_5000_digits, 1, "size '1111111111"),
    Case("uncompressed-size-arabic-digits", make_uncompressed_size_arabic, 1, "uncompressed-size '١٢٣' is not"),
    Case("bundle-packedsize-superscript", make_bundle_packed_size_superscript, 1, "packedSize '²'"),
    Case("bundle-packedsize-5000-digits", make_bundle_packed_size_5000_digits, 1, "packedSize '777"),
    Case("rpm-sig-size-count-0", make_rpm_size_count_zero, 1, "signature SIZE tag"),
    Case("rpm-dirindexes-past-dirnames", make_rpm_dirindexes_past_dirnames, 1, "DIRINDEXES entry 7 is past"),
    # 6. report injection
    Case("summary-forges-report", make_summary_forges_report, 1, "checksum mismatch",
         human_check=check_no_forged_lines),
    Case("esc-in-member-name", make_esc_in_member_name, 1, "file-list", human_check=check_no_escape_bytes),
] + OLD_CASES


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else None
    if out is None:
        print("usage: python -m tests.vib.hostile_corpus OUTDIR", file=sys.stderr)
        return 2
    for c in CASES:
        d = out / c.name
        d.mkdir(parents=True, exist_ok=True)
        p = c.make(d)
        print(f"{p}  (expect exit {c.status}: {c.severity}: …{c.needle}…)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
