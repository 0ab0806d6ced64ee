"""Inspect a .vib (ESXi 5+, ESX 4 rpm/deb/cross) or an offline bundle: every checksum verified, findings with
severity. Never extracts to disk; hostile input becomes an `error` finding, never an exception or a write."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from labctl.vib import ar as arlib
from labctl.vib import bundle
from labctl.vib.descriptor import (
    MAX_DESCRIPTOR,
    Descriptor,
    extensibility_violations,
    parse_descriptor,
    parse_xml,
    validate_descriptor,
)
from labctl.vib.findings import ERROR, INFO, WARNING, Finding, VibFormatError, has_errors
from labctl.vib.payload import DEFAULT_LIMITS, Limits, LinkTree, PayloadReport, verify_payload
from labctl.vib.signing import SignatureResult, signature_findings, verify

KIND_LABELS = {
    "esxi": "ESXi 5+ VIB",
    "esx4-rpm": "ESX 4 rpm VIB",
    "esx4-deb": "ESX 4 deb VIB",
    "esx4-cross": "ESX 4 cross VIB",
    "bundle": "offline bundle",
    "unknown": "unreadable",
}
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class InspectReport:
    path: str
    kind: str = "unknown"
    vib_id: str | None = None
    descriptor: Descriptor | None = None
    esx4: object | None = None  # esx4.Esx4Descriptor for ESX 4 VIBs
    payloads: list[PayloadReport] = field(default_factory=list)
    signature: SignatureResult | None = None
    findings: list[Finding] = field(default_factory=list)
    vibs: list[InspectReport] = field(default_factory=list)
    members: list[dict] = field(default_factory=list)
    bundle: dict | None = None

    @property
    def ok(self) -> bool:
        return not self.all_errors()

    def all_errors(self) -> list[Finding]:
        errs = [f for f in self.findings if f.severity == ERROR]
        for p in self.payloads:
            errs += [f for f in p.findings if f.severity == ERROR]
        for v in self.vibs:
            errs += v.all_errors()
        return errs

    def to_json(self) -> dict:
        d: dict = {
            "path": self.path,
            "kind": self.kind,
            "kind_label": KIND_LABELS.get(self.kind, self.kind),
            "vib_id": self.vib_id,
            "ok": self.ok,
            "findings": [f.to_json() for f in self.findings],
        }
        if self.kind == "bundle":
            d["bundle"] = self.bundle
            d["vibs"] = [v.to_json() for v in self.vibs]
            d["payloads"] = []
            return d
        d["members"] = self.members
        if self.descriptor is not None:
            d["descriptor"] = self.descriptor.to_json()
        if self.esx4 is not None:
            d["descriptor"] = self.esx4.to_json()  # type: ignore[attr-defined]
        d["signature"] = self.signature.to_json() if self.signature else None
        d["payloads"] = [p.to_json() for p in self.payloads]
        return d


def inspect_path(path: Path, *, ca_pem: bytes | None = None, limits: Limits = DEFAULT_LIMITS) -> InspectReport:
    try:
        f = open(path, "rb")
    except OSError as e:
        from labctl.errors import UsageError

        raise UsageError(f"cannot read {path}: {e.strerror}") from None
    with f:
        head = f.read(8)
        f.seek(0)
        if head.startswith(ZIP_MAGIC):
            return inspect_bundle(f, str(path), ca_pem=ca_pem, limits=limits)
        return inspect_vib(f, str(path), ca_pem=ca_pem, limits=limits)


def inspect_vib(f: BinaryIO, label: str, *, ca_pem: bytes | None = None, limits: Limits = DEFAULT_LIMITS,
                total_size: int | None = None) -> InspectReport:
    rep = InspectReport(label)
    try:
        archive = arlib.read_ar(f, total_size)
    except VibFormatError as e:
        rep.findings.append(Finding(ERROR, e.message))
        return rep
    rep.members = [{"name": m.name, "size": m.size} for m in archive.members]
    names = archive.names()
    if not names:
        rep.findings.append(Finding(ERROR, "VIB archive is too short: it has no members"))
        return rep
    if archive.style != "vmware":
        rep.findings.append(Finding(INFO, "GNU ar member names (trailing '/'): accepted by ESXi; VMware writes "
                                          "plain names"))
    if any(m.mtime or m.uid or m.gid or m.mode for m in archive.members):
        modes = sorted({f"{m.mode:o}" for m in archive.members})
        rep.findings.append(Finding(INFO, f"ar headers carry real mtimes/owners/modes ({', '.join(modes)}); VMware "
                                          "writes 0"))
    if any(m.mode_text.lower().startswith("0o") for m in archive.members):
        rep.findings.append(Finding(INFO, "ar mode fields written as '0o0' (ESXi 8/9 esximage output)"))
    if names[0] == "debian-binary" or (names[0] == "descriptor.xml" and _is_esx4(f, archive)):
        from labctl.vib.esx4 import inspect_esx4

        inspect_esx4(f, archive, rep, ca_pem=ca_pem, limits=limits)
        return rep
    rep.kind = "esxi"
    if names[0] != "descriptor.xml":
        rep.findings.append(Finding(ERROR, f"This VIB has an unsupported format.  The first member found was "
                                           f"{names[0]}, but descriptor.xml was expected."))
        return rep
    try:
        desc_bytes = arlib.read_member(f, archive.members[0], MAX_DESCRIPTOR)
        desc = parse_descriptor(desc_bytes)
    except VibFormatError as e:
        rep.findings.append(Finding(ERROR, e.message))
        return rep
    rep.descriptor = desc
    rep.vib_id = desc.vib_id
    rep.findings += validate_descriptor(desc)
    if len(names) < 2 or names[1] != "sig.pkcs7":
        found = names[1] if len(names) > 1 else "nothing"
        rep.findings.append(Finding(ERROR, f"Expected second member of Vib file to be sig.pkcs7, but found {found} "
                                           "instead."))
    else:
        try:
            sig = arlib.read_member(f, archive.members[1], 256 * 1024)
        except VibFormatError as e:
            rep.findings.append(Finding(ERROR, e.message))
            sig = b""
        rep.signature = verify(sig, desc_bytes, ca_pem)
        rep.findings.extend(signature_findings(rep.signature, desc.acceptance_level))
    payload_members = names[2:]
    expected = [p.name for p in desc.payloads]
    seen: set[str] = set()
    todo = []
    for i, spec in enumerate(desc.payloads):
        if spec.name in seen:
            continue  # reported once below; a payload is read once however often it is listed
        seen.add(spec.name)
        m = archive.get(spec.name)
        if m is None:
            rep.findings.append(Finding(ERROR, f"Could not find file object for payload '{spec.name}'."))
            continue
        if i < len(payload_members) and payload_members[i] != spec.name:
            rep.findings.append(Finding(WARNING, f"payload {spec.name!r} is not in <payloads> order in the archive"))
        todo.append((spec, m))
    # a payload listed twice is reported by validate_descriptor
    # read in archive order (a stream from a bundle is never rewound), through one tree: ESXi extracts every
    # payload of a VIB into the same root, so a link in one payload redirects a file in the next
    tree = LinkTree()
    results = {}
    for spec, m in sorted(todo, key=lambda t: t[1].offset):
        results[spec.name] = verify_payload(spec, arlib.iter_member(f, m), m.size, limits, tree)
    rep.payloads += [results[spec.name] for spec, _ in todo]
    for extra in (n for n in payload_members if n not in expected):
        rep.findings.append(Finding(WARNING, f"ar member {extra!r} is not a payload named in descriptor.xml"))
    if desc.acceptance_level == "community":
        _redirect_findings(rep)
    _file_list_findings(rep, list(desc.file_list))
    if not desc.live_install_allowed:
        rep.findings.append(Finding(INFO, "live install not allowed: the host needs a reboot after install"))
    return rep


def inspect_bundle(f: BinaryIO, label: str, *, ca_pem: bytes | None = None, limits: Limits = DEFAULT_LIMITS
                   ) -> InspectReport:
    """An offline bundle: its index, vendor index and metadata.zip (`labctl.vib.bundle`), and every VIB in it."""
    rep = InspectReport(label, kind="bundle")
    try:
        z = bundle.open_zip(f, "bundle")
        infos = bundle.safe_infos(z, "bundle")
    except (VibFormatError, *bundle.ZIP_ERRORS) as e:
        rep.findings.append(Finding(ERROR, f"not a readable offline bundle: {getattr(e, 'message', e)}"))
        return rep
    with z:
        names = {zi.filename: zi for zi in infos}
        meta: dict[str, dict] = {}
        info: dict = {"vendor": None, "platform_version": None, "bulletins": []}
        try:
            for required in ("index.xml", "vendor-index.xml"):
                if required not in names:
                    rep.findings.append(Finding(ERROR, f"bundle has no {required}"))
            if "index.xml" in names:
                idx = parse_xml(bundle.read_small(z, names["index.xml"], 1 << 20, "bundle"), "index.xml")
                info["vendor"] = (idx.findtext("vendor/name") or "").strip() or None
            md_name = "metadata.zip"
            if "vendor-index.xml" in names:
                vi = parse_xml(bundle.read_small(z, names["vendor-index.xml"], 1 << 20, "bundle"),
                               "vendor-index.xml")
                md_name = (vi.findtext("metadata/url") or "metadata.zip").strip()
                versions = [(m.findtext("version") or "").strip() for m in vi.findall("metadata")]
                info["platform_version"] = versions[0] if versions and versions[0] else None
                info["platform_versions"] = [x for x in versions if x]
                if not info["platform_versions"]:
                    rep.findings.append(Finding(WARNING, "vendor-index.xml names no platform <version> (real "
                                                         "bundles do: 8.0, 8.*)"))
            if md_name not in names:
                rep.findings.append(Finding(ERROR, f"bundle has no {md_name} (named by vendor-index.xml)"))
            else:
                data = bundle.read_small(z, names[md_name], bundle.MAX_METADATA, "bundle")
                meta = bundle.read_metadata(data, info, rep.findings)
        except (VibFormatError, *bundle.ZIP_ERRORS) as e:
            rep.findings.append(Finding(ERROR, getattr(e, "message", None) or f"bundle: {e}"))
        rep.bundle = info
        vib_entries = [zi for zi in infos if zi.filename.endswith(".vib") and not zi.is_dir()]
        if not vib_entries:
            rep.findings.append(Finding(ERROR, "bundle contains no .vib"))
        for zi in vib_entries:
            if zi.file_size > bundle.MAX_VIB_IN_ZIP:
                rep.findings.append(Finding(ERROR, f"{zi.filename}: {zi.file_size} bytes is too large"))
                continue
            # Nothing is inflated to disk: the VIB is read straight from the zip, once to hash it, then by
            # inspect_vib (in archive order, so the entry stream only rewinds for the small descriptor reads)
            try:
                n, digest = bundle.hash_entry(z, zi)
                with bundle.ZipEntryReader(z, zi) as src:
                    vr = inspect_vib(src, f"{label}!{zi.filename}", ca_pem=ca_pem, limits=limits, total_size=n)
            except bundle.ZIP_ERRORS as e:
                rep.findings.append(Finding(ERROR, f"{zi.filename}: corrupt zip entry ({type(e).__name__}: {e})"))
                continue
            m = meta.pop(zi.filename, None)
            if m is None:
                vr.findings.append(Finding(WARNING, f"{zi.filename} is not listed in metadata.zip"))
            else:
                if m.get("size") is not None and m["size"] != n:
                    vr.findings.append(Finding(ERROR, f"metadata packedSize {m['size']} != {n} bytes"))
                if m.get("sha256") and m["sha256"] != digest:
                    vr.findings.append(Finding(ERROR, f"metadata sha-256 {m['sha256']} != {digest}"))
                if m.get("vib_id") and vr.vib_id and m["vib_id"] != vr.vib_id:
                    vr.findings.append(Finding(ERROR, f"metadata names {m['vib_id']}, the VIB is {vr.vib_id}"))
            rep.vibs.append(vr)
        for rel, m in sorted(meta.items()):
            rep.findings.append(Finding(ERROR, f"metadata lists {m.get('vib_id') or rel} at {rel}, which the bundle "
                                               "does not contain"))
    rep.vib_id = ", ".join(v.vib_id for v in rep.vibs if v.vib_id) or None
    return rep


def _is_esx4(f: BinaryIO, archive: arlib.ArArchive) -> bool:
    try:
        data = arlib.read_member(f, archive.members[0], MAX_DESCRIPTOR)
    except VibFormatError:
        return False
    head = data[:4096]
    return b"<vibVersion>" in head and b'<vib version="5.0"' not in head


def _file_list_findings(rep: InspectReport, file_list: list[str]) -> None:
    if any(has_errors(p.findings) for p in rep.payloads) or len(rep.payloads) == 0:
        return
    listed = set(file_list)
    actual: set[str] = set()
    for p in rep.payloads:
        if p.entries or p.type in ("tgz", "vgz", "tar"):
            actual |= set(p.files)
    missing = sorted(listed - actual)
    extra = sorted(actual - listed)
    if missing:
        rep.findings.append(Finding(ERROR, f"file-list names files no payload contains: {', '.join(missing[:5])}"))
    if extra:
        rep.findings.append(Finding(ERROR, f"payloads contain files missing from file-list: {', '.join(extra[:5])}"))


def _redirect_findings(rep: InspectReport) -> None:
    """Members that symlinks before them send somewhere else: the extensibility rules apply to where they land."""
    moved = [(e.path, e.resolved) for p in rep.payloads for e in p.entries
             if e.kind != "dir" and e.resolved and e.resolved != e.path]
    bad = [(a, b) for a, b in moved if extensibility_violations([b])]
    if bad:
        shown = ", ".join(f"{a} (lands in {b})" for a, b in bad[:5]) + (
            f" (+{len(bad) - 5} more)" if len(bad) > 5 else "")
        rep.findings.append(Finding(WARNING, "community VIB breaks the extensibility rules through symlinks (install "
                                             "needs -f; [VibValidationError] ... violates extensibility rule "
                                             f"checks): {shown}"))


def file_size(f: BinaryIO) -> int:
    pos = f.tell()
    f.seek(0, os.SEEK_END)
    n = f.tell()
    f.seek(pos)
    return n


# re-exported for callers that parse index/vendor-index XML
__all__ = ["InspectReport", "inspect_path", "inspect_vib", "parse_xml", "WARNING"]
