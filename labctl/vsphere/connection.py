"""Which vCenter to talk to and with which credentials (pure), and opening the pyVmomi session.

Precedence for the address: `--vcenter URL` > `--sim` (the sim dir's endpoints.json) > `GOVC_URL` > the topology's
`vcenter:`. Credentials: the URL's user:pass > `GOVC_USERNAME`/`GOVC_PASSWORD` > the topology's `user` and the
variable named by `password_env` > a prompt (only on a terminal). Certificates are checked unless `--insecure`,
`GOVC_INSECURE=1` or the topology's `insecure: true`; `--thumbprint` (or the topology's) pins the vCenter's
SHA-1 thumbprint instead. The password is never printed: `Target.display` has no credentials.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from labctl.errors import EnvironmentProblem, UnreachableError, UsageError
from labctl.topology.model import VCenter

# The topology's `vcenter:` block is already plain, frozen values: the vSphere layer takes it as is.
VCenterSettings = VCenter

TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str
    user: str
    password: str = field(repr=False)
    insecure: bool = False
    thumbprint: str | None = None
    source: str = "topology"

    @property
    def display(self) -> str:
        """The address without credentials, for output."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}{self.path}"


def _split_url(url: str) -> urllib.parse.SplitResult:
    if "://" not in url:
        url = "https://" + url
    u = urllib.parse.urlsplit(url)
    if u.scheme not in ("http", "https") or not u.hostname:
        raise UsageError(f"not a vCenter URL: {redact(url)!r}", hint="e.g. https://vc.lab.local/sdk or "
                         "http://user:pass@127.0.0.1:8989/sdk")
    return u


def redact(url: str) -> str:
    """The URL with any password replaced by ***."""
    try:
        u = urllib.parse.urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if u.password is None:
        return url
    netloc = f"{u.username}:***@{u.hostname}" + (f":{u.port}" if u.port else "")
    return urllib.parse.urlunsplit((u.scheme, netloc, u.path, u.query, u.fragment))


def resolve_target(
    *,
    settings: VCenterSettings | None,
    environ: Mapping[str, str],
    override_url: str | None = None,
    sim_vcenter: Mapping[str, Any] | None = None,
    sim_password: str | None = None,
    insecure: bool = False,
    thumbprint: str | None = None,
    prompt: Callable[[str], str | None] | None = None,
) -> Target:
    """Decide address, credentials and certificate policy (see the module docstring for the order)."""
    url_user = url_pass = None
    if override_url:
        u, source = _split_url(override_url), "--vcenter"
    elif sim_vcenter is not None:
        if not sim_vcenter.get("url"):
            raise EnvironmentProblem("the simulated lab has no vCenter", hint="run `labctl sim up FILE` with Go and govmomi "
                              "installed (see `labctl doctor`)")
        u, source = _split_url(str(sim_vcenter["url"])), "--sim"
        url_user = sim_vcenter.get("user")
        url_pass = sim_password
    elif environ.get("GOVC_URL"):
        u, source = _split_url(environ["GOVC_URL"]), "GOVC_URL"
    elif settings is not None:
        u, source = _split_url(f"https://{_bracket(settings.host)}:{settings.port}/sdk"), "topology"
    else:
        raise UsageError("no vCenter: the topology has no `vcenter:` block",
                         hint="add `vcenter: {host: ..., password_env: ...}`, or pass --vcenter URL / set GOVC_URL")
    user = u.username and urllib.parse.unquote(u.username) or url_user
    password = u.password is not None and urllib.parse.unquote(u.password) or url_pass
    user = user or environ.get("GOVC_USERNAME") or (settings.user if settings else None)
    if not password and environ.get("GOVC_PASSWORD"):
        password = environ["GOVC_PASSWORD"]
    if not password and settings is not None and settings.password_env:
        password = environ.get(settings.password_env) or None
    if not user:
        raise UsageError(f"no vCenter user for {source}", hint="put it in the URL (user:pass@host) or set GOVC_USERNAME")
    if not password:
        if prompt is None:
            where = f"${settings.password_env}" if settings and settings.password_env else "GOVC_PASSWORD"
            raise UsageError(f"no password for vCenter user {user}", hint=f"set {where} (or run on a terminal to be "
                             "asked)")
        password = prompt(f"password for {user} at {u.hostname}: ")
        if not password:
            raise UsageError(f"no password given for vCenter user {user}")
    path = u.path or "/sdk"
    scheme = u.scheme
    port = u.port or (443 if scheme == "https" else 80)
    insecure = (insecure or environ.get("GOVC_INSECURE", "").lower() in TRUE
                or bool(settings and settings.insecure and source == "topology"))
    pinned = thumbprint or (settings.thumbprint if settings and source == "topology" else None)
    return Target(scheme=scheme, host=u.hostname or "", port=port, path=path, user=user, password=password,
                  insecure=insecure and not pinned, thumbprint=normalize_thumbprint(pinned) if pinned else None,
                  source=source)


def _bracket(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def normalize_thumbprint(text: str) -> str:
    """'aa bb..' / 'AA:BB..' / 'aabb..' -> 'AA:BB:..' (SHA-1, 20 bytes)."""
    hexchars = "".join(c for c in text if c.isalnum()).upper()
    if len(hexchars) != 40 or any(c not in "0123456789ABCDEF" for c in hexchars):
        raise UsageError(f"not a SHA-1 thumbprint: {text!r}", hint="expected 20 hex bytes, e.g. AA:BB:...:99")
    return ":".join(hexchars[i:i + 2] for i in range(0, 40, 2))


def server_thumbprint(host: str, port: int, timeout: float = 10.0) -> str:
    """SHA-1 thumbprint (AA:BB:..) of the certificate a TLS server presents (not verified: for pinning)."""
    import hashlib
    import socket
    import ssl

    ctx = ssl._create_unverified_context()  # noqa: S323 - we only read the certificate to compare it
    with socket.create_connection((host, port), timeout=timeout) as raw:
        with ctx.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    return normalize_thumbprint(hashlib.sha1(der).hexdigest())


def check_thumbprint(target: Target) -> None:
    try:
        seen = server_thumbprint(target.host, target.port)
    except OSError as e:
        raise UnreachableError(f"cannot reach vCenter {target.display}: {e}") from e
    if seen != target.thumbprint:
        raise UnreachableError(f"vCenter {target.display}: certificate thumbprint {seen} does not match the "
                               f"pinned {target.thumbprint}", hint="check you reach the right vCenter; update the "
                               "pin only if its certificate was replaced on purpose")


def open_service_instance(target: Target) -> Any:
    """SmartConnect with the target's policy; connection and login problems become UnreachableError."""
    import ssl

    from pyVim import connect
    from pyVmomi import vim

    kwargs: dict[str, Any] = dict(host=target.host, port=target.port, user=target.user, pwd=target.password,
                                  protocol=target.scheme, path=target.path)
    if target.scheme == "https":
        # Always pass a context: pyVmomi silently skips verification for loopback hosts when given none, and
        # checks a pinned thumbprint only after the CA check failed. So: CA-verified by default; unverified with
        # --insecure; with a pin, labctl compares the certificate itself on its own connection first (a server
        # swapping certificates between two connections is the gap we accept for a lab vCenter).
        if target.insecure:
            kwargs["sslContext"] = ssl._create_unverified_context()  # noqa: S323 - the user asked for it
        else:
            kwargs["sslContext"] = ssl.create_default_context()
        if target.thumbprint:
            check_thumbprint(target)
            kwargs["sslContext"] = ssl._create_unverified_context()  # noqa: S323 - the pin is the check
            kwargs["thumbprint"] = target.thumbprint.replace(":", "").lower()
    try:
        return connect.SmartConnect(**kwargs)
    except vim.fault.InvalidLogin as e:
        raise UnreachableError(f"vCenter {target.display} refused the login of {target.user} (from {target.source})",
                               hint="check the user and the password variable") from e
    except ssl.SSLCertVerificationError as e:
        raise UnreachableError(f"vCenter {target.display}: certificate not trusted ({e.verify_message})",
                               hint="pin it with --thumbprint AA:BB:..., or pass --insecure for a lab vCenter "
                               "with a self-signed certificate") from e
    except (OSError, ConnectionError) as e:
        raise UnreachableError(f"cannot reach vCenter {target.display}: {e}") from e
    except Exception as e:  # pyVmomi raises its own types for thumbprint mismatch and bad responses
        if type(e).__name__ == "ThumbprintMismatchException":
            raise UnreachableError(f"vCenter {target.display}: certificate thumbprint does not match the pinned "
                                   f"{target.thumbprint}") from e
        raise
