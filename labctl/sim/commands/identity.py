"""Commands that give a cloned host its own identity: ssh-keygen, generate-certificates, a datastore rename.

- `ssh-keygen -q -t rsa|ecdsa|dsa [-b BITS] -N "" [-C COMMENT] -f FILE` (OpenSSH's own options, `man ssh-keygen`):
  writes FILE (the private key, PEM as OpenSSH 5.x-7.x wrote it) and FILE.pub (`TYPE BASE64 COMMENT`). An existing
  FILE makes the real tool ask "Overwrite (y/n)?" on the terminal; with no `y` on stdin it stops, as here.
  ESXi 5.0+ ships it as /usr/lib/vmware/openssh/bin/ssh-keygen (OpenSSH; ESXi 4.x ran dropbear and has none);
  ESX classic's service console as /usr/bin/ssh-keygen. The keys are real keys (cryptography via paramiko).
- `/sbin/generate-certificates` (ESXi 5.0+): creates /etc/vmware/ssl/rui.crt and rui.key when they are missing —
  the procedure in vSphere Security 5.5, "Generate New Self-Signed Certificates for ESXi" is: rename both, run it,
  restart the host. A real self-signed X.509 certificate whose CN is the host's FQDN [M: VMware's generated
  certificates name the host; other subject fields are not modelled]. With both files present it changes nothing
  [L].
- `vim-cmd hostsvc/datastore/rename OLD NEW`: the local VMFS volume's name (its /vmfs/volumes entry) [L: the
  vim-cmd front end of the vSphere API's Datastore.RenameDatastore; no capture of its output].
"""

from __future__ import annotations

from labctl.sim import state as S
from labctl.sim.commands import Invocation, Result, command, esx_at_least
from labctl.sim.fs import FsError

SSL_DIR = "/etc/vmware/ssl"
KEY_TYPES = {"rsa": ("ssh-rsa", 2048), "ecdsa": ("ecdsa-sha2-nistp256", 256), "dsa": ("ssh-dss", 1024)}


def _has_openssh(st: S.HostState) -> bool:
    return st.is_classic or (st.is_esxi and st.release >= (5, 0)) or st.flavor == "linux"


def _keygen(kind: str, bits: int):
    import paramiko

    if kind == "rsa":
        return paramiko.RSAKey.generate(bits=bits)
    if kind == "ecdsa":
        return paramiko.ECDSAKey.generate(bits=bits)
    return paramiko.DSSKey.generate(bits=bits)


@command("ssh-keygen", when=_has_openssh)
def ssh_keygen(inv: Invocation) -> Result:
    import io

    opts: dict[str, str] = {}
    flags: set[str] = set()
    args = list(inv.args)
    i = 0
    while i < len(args):
        a = args[i]
        if a in ("-t", "-b", "-N", "-C", "-f"):
            if i + 1 >= len(args):
                return Result(1, "", f"option requires an argument -- {a[1]}\n")
            opts[a[1]] = args[i + 1]
            i += 2
        elif a == "-q":
            flags.add("q")
            i += 1
        else:
            return Result(1, "", f"sim: ssh-keygen {a} is not modelled (only -q -t -b -N -C -f, to make a key)\n")
    kind = opts.get("t", "rsa")
    if kind not in KEY_TYPES or (kind == "dsa" and inv.state.is_esxi and inv.state.release >= (8, 0)):
        return Result(1, "", f"unknown key type {kind}\n")
    if "f" not in opts:
        return Result(1, "", "sim: ssh-keygen without -f would prompt for a file name\n")
    if "N" not in opts:
        return Result(1, "", "sim: ssh-keygen without -N would prompt for a passphrase\n")
    if opts["N"]:
        return Result(1, "", "sim: ssh-keygen with a passphrase is not modelled\n")
    ktype, default_bits = KEY_TYPES[kind]
    try:
        bits = int(opts.get("b", default_bits))
    except ValueError:
        return Result(255, "", f"Bits has bad value {opts.get('b')} (invalid)\n")
    path = opts["f"] if opts["f"].startswith("/") else f"{inv.cwd.rstrip('/')}/{opts['f']}"
    if inv.fs.exists(path):
        # the real tool asks on the terminal; nothing answers `y` here
        return Result(1, f"{path} already exists.\nOverwrite (y/n)? ", "")
    try:
        key = _keygen(kind, bits)
    except ValueError as e:
        return Result(255, "", f"key bits exceeds maximum or invalid: {e}\n")
    buf = io.StringIO()
    key.write_private_key(buf)
    comment = opts.get("C", f"root@{inv.state.hostname}")
    pub = f"{key.get_name()} {key.get_base64()}" + (f" {comment}" if comment else "")
    try:
        inv.fs.write(path, buf.getvalue())
        inv.fs.write(path + ".pub", pub + "\n")
    except FsError as e:
        return Result(1, "", f"Saving key \"{path}\" failed: {e}\n")
    if "q" in flags:
        return Result(0)
    return Result(0, f"Generating public/private {kind} key pair.\nYour identification has been saved in {path}\n"
                     f"Your public key has been saved in {path}.pub\n")


def self_signed(fqdn: str) -> tuple[str, str]:
    """(certificate PEM, private key PEM): RSA 2048, SHA-256, CN = the host's FQDN, ten years."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, fqdn),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, "VMware, Inc")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=3650))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(fqdn)]), critical=False)
            .sign(key, hashes.SHA256()))
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                serialization.NoEncryption()).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), key_pem


def ensure_certificate(st: S.HostState) -> bool:
    """What the management agent does when it starts (ESXi's hostd at boot, ESX classic's mgmt-vmware): a host
    without /etc/vmware/ssl/rui.crt and rui.key gets a new self-signed pair; one that has them keeps them (a linked
    clone keeps its source's) [M: vSphere Security 5.5 "Generate New Self-Signed Certificates" — remove both
    files, then restart the agent or the host; KB 1002826 on ESX 3.x/4.x: `service mgmt-vmware restart`].
    Returns whether it made them."""
    crt, key = f"{SSL_DIR}/rui.crt", f"{SSL_DIR}/rui.key"
    if crt in st.files and key in st.files:
        return False
    cert_pem, key_pem = self_signed(f"{st.hostname}.{st.domain}")
    parent = ""
    for part in SSL_DIR.strip("/").split("/"):
        parent += "/" + part
        if parent not in st.dirs:
            st.dirs.append(parent)
    st.files[key], st.files[crt] = key_pem, cert_pem
    if st.is_esxi and st.persisted_etc is not None:  # saved by the next auto-backup (hourly, and at shutdown)
        st.persisted_etc[key], st.persisted_etc[crt] = key_pem, cert_pem
    return True


@command("generate-certificates", when=esx_at_least("esxi", 5, 0))
def generate_certificates(inv: Invocation) -> Result:
    crt, key = f"{SSL_DIR}/rui.crt", f"{SSL_DIR}/rui.key"
    if inv.fs.is_file(crt) and inv.fs.is_file(key):
        return Result(0)
    st = inv.state
    cert_pem, key_pem = self_signed(f"{st.hostname}.{st.domain}")
    try:
        if not inv.fs.is_dir(SSL_DIR):
            inv.fs.mkdir(SSL_DIR, parents=True)
        inv.fs.write(key, key_pem)
        inv.fs.write(crt, cert_pem)
    except FsError as e:
        return Result(1, "", f"generate-certificates: {e}\n")
    return Result(0)


def rename_datastore(inv: Invocation, old: str, new: str) -> Result:
    base = "/vmfs/volumes"
    src, dst = f"{base}/{old}", f"{base}/{new}"
    if not old or "/" in old or not inv.fs.is_dir(src):
        return Result(1, "", '(vim.fault.NotFound) {\n   msg = "The object or item referred to could not be '
                             'found."\n}\n')
    if not new or "/" in new or inv.fs.exists(dst):
        return Result(1, "", "(vim.fault.DuplicateName) {\n   msg = \"The name '" + new + "' already exists.\"\n}\n")
    st = inv.state
    st.dirs = [dst + d[len(src):] if d == src or d.startswith(src + "/") else d for d in st.dirs]
    st.files = {(dst + p[len(src):] if p.startswith(src + "/") else p): c for p, c in st.files.items()}
    st.blobs = {(dst + p[len(src):] if p.startswith(src + "/") else p): b for p, b in st.blobs.items()}
    return Result(0)
