"""crypt(3) password hashes for `rootpw --iscrypted`: MD5-crypt (`$1$`) and SHA-512-crypt (`$6$`).

Python's `crypt` module is deprecated since 3.11 and gone in 3.13, and libcrypt differs between systems, so both
schemes are implemented here from their published algorithms (short and fixed for decades):
- MD5-crypt: Poul-Henning Kamp's FreeBSD `crypt-md5.c` (1994), as in glibc `md5-crypt.c`;
- SHA-512-crypt: Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512" (2007, akkadia.org/drepper/SHA-crypt.txt),
  default 5000 rounds (then no `rounds=` in the output, as `openssl passwd -6` writes it).
Tests hold both to `openssl passwd -1/-6 -salt S PW`.

Which scheme an era's installer accepts (docs/install.md has the evidence): ESX classic 3.5/4.x and ESXi 4.1–5.x
store MD5-crypt; ESXi 6.0 and later (ESX 9 included) SHA-512-crypt.
"""

from __future__ import annotations

import hashlib
import re
import secrets

ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
MASK = "********"


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    out = []
    for _ in range(n):
        out.append(ITOA64[w & 0x3F])
        w >>= 6
    return "".join(out)


def _check_salt(salt: str, maximum: int) -> bytes:
    if not salt or any(c not in ITOA64 for c in salt):
        raise ValueError(f"a crypt salt is 1-{maximum} characters of [./0-9A-Za-z]")
    return salt[:maximum].encode("ascii")


def _rounds(new, digest: bytes, p: bytes, s: bytes, n: int) -> bytes:
    """The stretching loop both schemes share: each round hashes the previous digest and the password (P) — P
    first in odd rounds — with the salt (S) added unless the round is a multiple of 3, and P again unless it is a
    multiple of 7."""
    for r in range(n):
        h = new()
        h.update(p if r & 1 else digest)
        if r % 3:
            h.update(s)
        if r % 7:
            h.update(p)
        h.update(digest if r & 1 else p)
        digest = h.digest()
    return digest


def md5_crypt(password: str, salt: str) -> str:
    """`$1$<salt>$<hash>` (salt: up to 8 characters of ./0-9A-Za-z)."""
    pw = password.encode("utf-8")
    s = _check_salt(salt, 8)
    magic = b"$1$"
    alt = hashlib.md5(pw + s + pw).digest()
    ctx = hashlib.md5(pw + magic + s)
    n = len(pw)
    while n > 0:
        ctx.update(alt[: min(16, n)])
        n -= 16
    i = len(pw)
    while i:
        ctx.update(b"\0" if i & 1 else pw[:1])
        i >>= 1
    f = _rounds(hashlib.md5, ctx.digest(), pw, s, 1000)
    enc = "".join(_b64_from_24bit(f[a], f[b], f[c], 4) for a, b, c in ((0, 6, 12), (1, 7, 13), (2, 8, 14),
                                                                      (3, 9, 15), (4, 10, 5)))
    enc += _b64_from_24bit(0, 0, f[11], 2)
    return f"$1${s.decode()}${enc}"


def sha512_crypt(password: str, salt: str, rounds: int = 5000) -> str:
    """`$6$<salt>$<hash>` (salt: up to 16 characters); `rounds` other than 5000 is written as `rounds=N$`."""
    pw = password.encode("utf-8")
    s = _check_salt(salt, 16)
    if not 1000 <= rounds <= 999_999_999:
        raise ValueError("rounds must be 1000-999999999")
    b = hashlib.sha512(pw + s + pw).digest()
    a = hashlib.sha512(pw + s)
    n = len(pw)
    while n > 64:
        a.update(b)
        n -= 64
    a.update(b[:n])
    i = len(pw)
    while i > 0:
        a.update(b if i & 1 else pw)
        i >>= 1
    a_digest = a.digest()
    dp = hashlib.sha512(pw * len(pw)).digest()
    p = (dp * (len(pw) // 64 + 1))[: len(pw)]
    ds = hashlib.sha512(s * (16 + a_digest[0])).digest()
    sb = (ds * (len(s) // 64 + 1))[: len(s)]
    c = _rounds(hashlib.sha512, a_digest, p, sb, rounds)
    parts = []
    for k in range(21):
        trio = (k, k + 21, k + 42)  # Drepper's order: (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), ...
        rot = k % 3
        x, y, z = trio[rot], trio[(1 + rot) % 3], trio[(2 + rot) % 3]
        parts.append(_b64_from_24bit(c[x], c[y], c[z], 4))
    parts.append(_b64_from_24bit(0, 0, c[63], 2))
    prefix = "$6$" + ("" if rounds == 5000 else f"rounds={rounds}$")
    return f"{prefix}{s.decode()}${''.join(parts)}"


def verify(password: str, hashed: str) -> bool:
    """Does `hashed` ($1$ or $6$, as these functions write them) come from `password`?"""
    import hmac

    m = re.fullmatch(r"\$(1|6)\$(?:rounds=(\d+)\$)?([./0-9A-Za-z]{1,16})\$[./0-9A-Za-z]+", hashed or "")
    if not m:
        return False
    kind, rounds, salt = m.groups()
    try:
        again = md5_crypt(password, salt) if kind == "1" else sha512_crypt(password, salt, int(rounds or 5000))
    except ValueError:
        return False
    return hmac.compare_digest(again, hashed)


def random_salt(length: int) -> str:
    return "".join(secrets.choice(ITOA64) for _ in range(length))


SCHEMES = {"md5": ("$1$", 8), "sha512": ("$6$", 16)}


def hash_password(password: str, scheme: str, *, salt: str | None = None) -> str:
    """A crypt hash of `password` in `scheme` ("md5" or "sha512"), with a fresh random salt unless given."""
    if scheme not in SCHEMES:
        raise ValueError(f"unknown crypt scheme {scheme!r}")
    salt = salt or random_salt(SCHEMES[scheme][1])
    return md5_crypt(password, salt) if scheme == "md5" else sha512_crypt(password, salt)


def scheme_for(flavor: str, release: tuple[int, int]) -> str:
    """The crypt scheme the era's installer writes to /etc/shadow (docs/install.md, "Root password")."""
    return "sha512" if release >= (6, 0) else "md5"
