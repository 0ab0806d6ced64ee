"""Builders for hand-made (often hostile) VIBs used by the tests."""

from __future__ import annotations

import gzip
import hashlib
import io
import struct
import tarfile
import zlib

from labctl.vib.ar import MAGIC


def ar_header(name: bytes, size: bytes | int, mode: bytes = b"0") -> bytes:
    size_b = str(size).encode() if isinstance(size, int) else size
    return b"%-16.16s%-12.12s%-6.6s%-6.6s%-8.8s%-10.10s`\n" % (name, b"0", b"0", b"0", mode, size_b)


def ar_bytes(members: list[tuple[bytes, bytes]]) -> bytes:
    out = bytearray(MAGIC)
    for name, data in members:
        out += ar_header(name, len(data)) + data
        if len(data) % 2:
            out += b"\n"
    return bytes(out)


def tgz(entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for e in entries:
            if isinstance(e, tarfile.TarInfo):
                tf.addfile(e)
            else:
                ti = tarfile.TarInfo(e[0])
                ti.size = len(e[1])
                tf.addfile(ti, io.BytesIO(e[1]))
    return gzip.compress(buf.getvalue(), mtime=0)


def vmtar(files: list[tuple[str, bytes]], *, bad_offset: int | None = None, bad_checksum: bool = False) -> bytes:
    """A minimal vmtar: headers (visor magic, LE offsets at 496), zero block, data aligned to 512."""
    headers = []
    data = bytearray()
    start = 512 * (len(files) + 1)
    for name, content in files:
        off = start + len(data)
        h = bytearray(512)
        h[0 : len(name)] = name.encode()
        h[100:108] = b"0000644\0"
        h[124:136] = b"%011o\0" % len(content)
        h[136:148] = b"%011o\0" % 0
        h[156:157] = b"0"
        h[257:265] = b"visor  \0"
        h[496:512] = struct.pack("<IIII", bad_offset if bad_offset is not None else off, 0, 0, 0)
        h[148:156] = b" " * 8
        h[148:156] = b"%06o\0 " % (sum(h) + bad_checksum)  # as VIB Author and esximage write it
        headers.append(bytes(h))
        data += content + b"\0" * (-len(content) % 512)
    return gzip.compress(b"".join(headers) + b"\0" * 512 + bytes(data), mtime=0)


def gunzip_hashes(payload: bytes) -> tuple[str, str]:
    """sha-256 and sha-1 of the decompressed payload, streamed (hostile payloads inflate to hundreds of MB);
    concatenated gzip members are followed, anything after the last one that is not gzip is ignored."""
    h256, h1 = hashlib.sha256(), hashlib.sha1()
    data = payload
    while data:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        try:
            while data and not d.eof:
                out = d.decompress(data, 1 << 20)
                h256.update(out)
                h1.update(out)
                data = d.unconsumed_tail
        except zlib.error:
            break
        data = d.unused_data
    return h256.hexdigest(), h1.hexdigest()


def descriptor(payload_name: str, payload: bytes, files: list[str], *, ptype: str = "tgz",
               acceptance: str = "community", extra: str = "") -> bytes:
    raw = hashlib.sha256(payload).hexdigest()
    g256, g1 = gunzip_hashes(payload)
    fl = "".join(f"<file>{f}</file>" for f in files)
    return (
        f'<vib version="5.0"><type>bootbank</type><name>t</name><version>1.0.0-1</version><vendor>lab</vendor>'
        f"<summary>s</summary><description>d</description><release-date>2024-01-01T00:00:00+00:00</release-date>"
        f"<urls/><relationships><depends/><conflicts/><replaces/><provides/><compatibleWith/></relationships>"
        f"<software-tags/><system-requires><maintenance-mode>false</maintenance-mode></system-requires>"
        f"<file-list>{fl}</file-list><acceptance-level>{acceptance}</acceptance-level>"
        f"<live-install-allowed>true</live-install-allowed><live-remove-allowed>true</live-remove-allowed>"
        f"<cimom-restart>false</cimom-restart><stateless-ready>true</stateless-ready><overlay>false</overlay>"
        f'<payloads><payload name="{payload_name}" type="{ptype}" size="{len(payload)}">'
        f'<checksum checksum-type="sha-256" verify-process="gunzip">{g256}</checksum>'
        f'<checksum checksum-type="sha-256">{raw}</checksum>'
        f'<checksum checksum-type="sha-1" verify-process="gunzip">{g1}</checksum>'
        f"</payload></payloads>{extra}</vib>"
    ).encode()


def vib(payload: bytes, files: list[str], *, ptype: str = "tgz", name: str = "p1") -> bytes:
    return ar_bytes([(b"descriptor.xml", descriptor(name, payload, files, ptype=ptype)), (b"sig.pkcs7", b""),
                     (name.encode(), payload)])
