"""sig.pkcs7: detached CMS/PKCS7 SignedData over the exact descriptor.xml bytes, PEM (vib.md section 4).

Signing uses cryptography's PKCS7SignatureBuilder (SHA-256, signer certificate embedded, binary content). The
cryptography release we use cannot verify PKCS7, so verification walks the DER itself (a small, strict TLV reader)
and checks the signature with the embedded certificate's public key: messageDigest attribute == hash(descriptor),
signature over the DER of the signed attributes. Chain-of-trust is checked only against a CA the user gives.
Signed attributes include the signing time, so signed VIBs are not byte-reproducible (unsigned ones are).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from labctl.vib.findings import ERROR, INFO, WARNING, Finding, VibFormatError

OID_SIGNED_DATA = "1.2.840.113549.1.7.2"
OID_MESSAGE_DIGEST = "1.2.840.113549.1.9.4"
DIGESTS = {
    "2.16.840.1.101.3.4.2.1": "sha256",
    "2.16.840.1.101.3.4.2.2": "sha384",
    "2.16.840.1.101.3.4.2.3": "sha512",
    "1.3.14.3.2.26": "sha1",
}
MAX_SIG = 256 * 1024


@dataclass(frozen=True)
class SignatureResult:
    present: bool
    valid: bool  # the signature matches the descriptor with the embedded certificate
    signer: str = ""  # subject of the signer certificate
    trusted: bool | None = None  # chains to the given CA (None: no CA given)
    message: str = ""

    def to_json(self) -> dict:
        return {"present": self.present, "valid": self.valid, "signer": self.signer, "trusted": self.trusted,
                "message": self.message}


# ---------------------------------------------------------------- a strict DER walker


def signature_findings(s: SignatureResult, level: str) -> list[Finding]:
    """What `labctl vib inspect` reports about a VIB's signature, given its acceptance level."""
    if not s.present:
        sev = WARNING if level in ("certified", "accepted", "partner") else INFO
        return [Finding(sev, "unsigned (empty sig.pkcs7): install with --no-sig-check"
                        + (f"; a {level} VIB is normally signed" if sev == WARNING else ""))]
    if not s.valid:
        return [Finding(ERROR, f"signature present but invalid: {s.message}")]
    out = [Finding(INFO, s.message)]
    if s.trusted is False:
        out.append(Finding(ERROR, "the signer certificate does not chain to the given CA"))
    return out


def _tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the element at pos; definite lengths only."""
    if pos + 2 > end:
        raise VibFormatError("sig.pkcs7: truncated DER")
    tag = buf[pos]
    if tag & 0x1F == 0x1F:
        raise VibFormatError("sig.pkcs7: multi-byte DER tags are not expected")
    ln = buf[pos + 1]
    pos += 2
    if ln == 0x80:
        raise VibFormatError("sig.pkcs7: indefinite-length BER is not DER")
    if ln & 0x80:
        n = ln & 0x7F
        if n > 4 or pos + n > end:
            raise VibFormatError("sig.pkcs7: bad DER length")
        ln = int.from_bytes(buf[pos : pos + n], "big")
        pos += n
    if pos + ln > end:
        raise VibFormatError("sig.pkcs7: DER element runs past its parent")
    return tag, pos, pos + ln


def _children(buf: bytes, start: int, end: int) -> list[tuple[int, int, int, int]]:
    """[(tag, header start, content start, content end)] of a constructed element's content."""
    out = []
    pos = start
    while pos < end:
        tag, cs, ce = _tlv(buf, pos, end)
        out.append((tag, pos, cs, ce))
        pos = ce
    return out


def _oid(b: bytes) -> str:
    if not b:
        return ""
    parts = [b[0] // 40, b[0] % 40]
    v = 0
    for x in b[1:]:
        v = (v << 7) | (x & 0x7F)
        if not x & 0x80:
            parts.append(v)
            v = 0
    return ".".join(map(str, parts))


def _pem_to_der(data: bytes) -> bytes:
    import base64

    text = data.decode("ascii", "replace")
    if "-----BEGIN PKCS7-----" in text:
        body = text.split("-----BEGIN PKCS7-----", 1)[1].split("-----END PKCS7-----", 1)[0]
    elif "-----BEGIN CMS-----" in text:
        body = text.split("-----BEGIN CMS-----", 1)[1].split("-----END CMS-----", 1)[0]
    else:
        return data  # assume DER
    try:
        return base64.b64decode("".join(body.split()), validate=True)
    except ValueError:
        raise VibFormatError("sig.pkcs7: PEM body is not valid base64") from None


def verify(sig: bytes, content: bytes | None, ca_pem: bytes | None = None, *,
           digest_fn: Callable[[str], bytes] | None = None) -> SignatureResult:
    """Verify a detached PKCS7 signature over `content` (or over whatever `digest_fn(hash_name)` hashed, for
    content too large to hold). Raises nothing for bad signatures: returns valid=False."""
    if not sig:
        return SignatureResult(False, False, message="unsigned (sig.pkcs7 is empty)")
    if len(sig) > MAX_SIG:
        return SignatureResult(True, False, message=f"sig.pkcs7 larger than {MAX_SIG} bytes")
    try:
        if digest_fn is None:
            assert content is not None
            data = content

            def digest_fn(name: str) -> bytes:
                return hashlib.new(name, data).digest()

        return _verify(sig, digest_fn, ca_pem)
    except VibFormatError as e:
        return SignatureResult(True, False, message=e.message)


def _verify(sig: bytes, digest_fn: Callable[[str], bytes], ca_pem: bytes | None) -> SignatureResult:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, utils
    from cryptography.hazmat.primitives.serialization import pkcs7

    der = _pem_to_der(sig)
    tag, cs, ce = _tlv(der, 0, len(der))
    ci = _children(der, cs, ce)
    if tag != 0x30 or len(ci) < 2 or ci[0][0] != 0x06 or _oid(der[ci[0][2] : ci[0][3]]) != OID_SIGNED_DATA:
        raise VibFormatError("sig.pkcs7 is not a PKCS7 SignedData")
    _, _, explicit_s, explicit_e = ci[1]
    t, sds, sde = _tlv(der, explicit_s, explicit_e)
    sd = _children(der, sds, sde)
    signer_infos = [c for c in sd if c[0] == 0x31][-1:]  # the last SET is signerInfos
    if not signer_infos:
        raise VibFormatError("sig.pkcs7 has no signerInfos")
    try:
        certs = pkcs7.load_der_pkcs7_certificates(der)
    except ValueError:
        certs = []
    if not certs:
        raise VibFormatError("sig.pkcs7 embeds no signer certificate")
    infos = _children(der, signer_infos[0][2], signer_infos[0][3])
    if not infos:
        raise VibFormatError("sig.pkcs7 has an empty signerInfos")
    si = _children(der, infos[0][2], infos[0][3])
    # version, sid, digestAlgorithm, [0] signedAttrs?, signatureAlgorithm, signature
    idx = 1
    sid = si[idx]
    idx += 1
    dig_alg = _children(der, si[idx][2], si[idx][3])
    digest_name = DIGESTS.get(_oid(der[dig_alg[0][2] : dig_alg[0][3]]))
    idx += 1
    if digest_name is None:
        raise VibFormatError("sig.pkcs7 uses an unsupported digest algorithm")
    signed_attrs = None
    if si[idx][0] == 0xA0:
        signed_attrs = si[idx]
        idx += 1
    idx += 1  # signatureAlgorithm
    signature = der[si[idx][2] : si[idx][3]]
    serial = None
    sid_parts = _children(der, sid[2], sid[3]) if sid[0] == 0x30 else []
    if len(sid_parts) == 2 and sid_parts[1][0] == 0x02:
        serial = int.from_bytes(der[sid_parts[1][2] : sid_parts[1][3]], "big", signed=True)
    cert = next((c for c in certs if serial is None or c.serial_number == serial), certs[0])
    digest = digest_fn(digest_name)
    if signed_attrs is not None:
        md = None
        for _, _, a_s, a_e in _children(der, signed_attrs[2], signed_attrs[3]):
            attr = _children(der, a_s, a_e)
            if _oid(der[attr[0][2] : attr[0][3]]) == OID_MESSAGE_DIGEST:
                vals = _children(der, attr[1][2], attr[1][3])
                md = der[vals[0][2] : vals[0][3]]
        if md != digest:
            return SignatureResult(True, False, cert.subject.rfc4514_string(),
                                   message="signature does not match descriptor.xml (messageDigest differs)")
        signed = b"\x31" + der[signed_attrs[1] + 1 : signed_attrs[3]]
    else:
        signed = digest
    hash_alg = {"sha256": hashes.SHA256(), "sha384": hashes.SHA384(), "sha512": hashes.SHA512(),
                "sha1": hashes.SHA1()}[digest_name]
    if signed_attrs is None:  # the signature is over the content itself: verify its digest
        hash_alg = utils.Prehashed(hash_alg)
    key = cert.public_key()
    try:
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(signature, signed, padding.PKCS1v15(), hash_alg)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            key.verify(signature, signed, ec.ECDSA(hash_alg))
        else:
            raise VibFormatError("sig.pkcs7: unsupported signer key type")
    except InvalidSignature:
        return SignatureResult(True, False, cert.subject.rfc4514_string(), message="signature is invalid")
    trusted = None
    msg = f"valid signature by {cert.subject.rfc4514_string()}"
    if ca_pem is not None:
        trusted = False
        for ca in x509.load_pem_x509_certificates(ca_pem):
            if ca == cert:
                trusted = True
                break
            try:
                cert.verify_directly_issued_by(ca)
                trusted = True
                break
            except (ValueError, TypeError, InvalidSignature):
                continue
        msg += "; chains to the given CA" if trusted else "; NOT issued by the given CA"
    return SignatureResult(True, True, cert.subject.rfc4514_string(), trusted, msg)


def sign(content: bytes, key_path: Path, cert_path: Path) -> bytes:
    """PEM detached CMS SignedData over `content` (SHA-256, binary mode, signer certificate embedded)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.serialization import pkcs7

    from labctl.vib.findings import VibBuildError

    try:
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as e:
        raise VibBuildError(f"cannot load signing key {key_path}: {e}",
                            hint="give an unencrypted PEM private key (RSA or EC)") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    except (OSError, ValueError) as e:
        raise VibBuildError(f"cannot load certificate {cert_path}: {e}") from None
    opts = [pkcs7.PKCS7Options.DetachedSignature, pkcs7.PKCS7Options.Binary, pkcs7.PKCS7Options.NoCapabilities]
    try:
        return (
            pkcs7.PKCS7SignatureBuilder()
            .set_data(content)
            .add_signer(cert, key, hashes.SHA256())  # type: ignore[arg-type]
            .sign(serialization.Encoding.PEM, opts)
        )
    except (ValueError, TypeError) as e:
        raise VibBuildError(f"cannot sign with {key_path} / {cert_path}: {e}") from None
