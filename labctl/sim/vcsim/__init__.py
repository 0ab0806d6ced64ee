"""The vCenter simulator: build labctl's small Go program on govmomi's simulator once, start it, stop it by PID.

The Go source (`main.go`, shipped next to this module) builds with Debian's `golang-go` and
`golang-github-vmware-govmomi-dev` (`GO111MODULE=off GOPATH=/usr/share/gocode go build`: ~20 s on an idle 2-core
machine, a minute or more on a busy one; `build(progress=…)` reports as it goes). The binary is cached in
`$XDG_CACHE_HOME/labctl/vcsim-<hash>/` keyed by the source, the Go version and the govmomi sources' location, so only
the first start of a given source pays the build.

    binary = build(environ)
    sim = start(binary, workdir, datastores=["nfs-iso"], password="s3cret")
    ... sim.url (no password in it), sim.user, sim.pid ...
    sim.stop()

`start` runs the simulator in `workdir` (CreateNasDatastore's localPath is a directory relative to it; the
`datastores` names are created there), on 127.0.0.1 with a free port, and reads the URL from the first stdout line.
The control endpoints (`/_labctl/stats`, `/_labctl/fault`) are for tests: see `inject_fault` and `call_counts`.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping, Sequence

from labctl.errors import EnvironmentProblem, LabctlError

SOURCE = Path(__file__).with_name("main.go")
GOVMOMI_PKG = Path("src/github.com/vmware/govmomi/simulator")
DEFAULT_GOPATHS = ("/usr/share/gocode",)
APT_HINT = "sudo apt-get install golang-go golang-github-vmware-govmomi-dev"
START_TIMEOUT = 15.0
PROGRESS_EVERY = 2.0  # seconds between two build progress reports


@dataclass(frozen=True)
class Toolchain:
    go: Path
    gopath: Path
    go_version: str


def find_toolchain(environ: Mapping[str, str]) -> Toolchain:
    """The Go compiler and a GOPATH holding govmomi's simulator sources, or EnvironmentProblem saying how to get them."""
    go = environ.get("LABCTL_GO") or shutil.which("go", path=environ.get("PATH", os.defpath))
    if not go:
        raise EnvironmentProblem(
            "the vCenter simulator needs a Go toolchain, and `go` is not on PATH",
            hint=f"install Go and govmomi's sources: {APT_HINT}",
        )
    if environ.get("LABCTL_GOVMOMI_GOPATH"):  # explicit: only there
        candidates = [environ["LABCTL_GOVMOMI_GOPATH"]]
    else:
        candidates = [environ["GOPATH"]] if environ.get("GOPATH") else []
        candidates += list(DEFAULT_GOPATHS)
    for cand in candidates:
        for entry in cand.split(os.pathsep):
            if entry and (Path(entry) / GOVMOMI_PKG).is_dir():
                version = _go_version(go)
                return Toolchain(Path(go), Path(entry), version)
    raise EnvironmentProblem(
        "the vCenter simulator needs govmomi's Go sources (package github.com/vmware/govmomi/simulator); "
        f"looked in {', '.join(candidates)}",
        hint=f"{APT_HINT}   (or set LABCTL_GOVMOMI_GOPATH to a GOPATH that holds govmomi)",
    )


def _go_version(go: str) -> str:
    try:
        proc = subprocess.run([go, "version"], capture_output=True, text=True, timeout=30, check=False)
    except OSError as e:
        raise EnvironmentProblem(f"cannot run {go}: {e}", hint=APT_HINT) from e
    return proc.stdout.strip()


def cache_root(environ: Mapping[str, str]) -> Path:
    base = environ.get("XDG_CACHE_HOME") or os.path.join(environ.get("HOME") or os.path.expanduser("~"), ".cache")
    return Path(base) / "labctl"


def source_hash(toolchain: Toolchain) -> str:
    h = hashlib.sha256()
    h.update(SOURCE.read_bytes())
    h.update(toolchain.go_version.encode())
    h.update(str(toolchain.gopath).encode())
    return h.hexdigest()[:16]


BUILD_MESSAGE = "building the vCenter simulator (once, 20 s to 2 minutes)"


def is_built(environ: Mapping[str, str] | None = None) -> bool:
    """Whether `build` would return at once (the binary for this source and toolchain is in the cache)."""
    environ = dict(os.environ if environ is None else environ)
    try:
        tc = find_toolchain(environ)
    except LabctlError:
        return False
    binary = cache_root(environ) / f"vcsim-{source_hash(tc)}" / "vcsim"
    return binary.is_file() and os.access(binary, os.X_OK)


def build(environ: Mapping[str, str] | None = None, progress: Callable[[str], None] | None = None, *,
          every: float = PROGRESS_EVERY) -> Path:
    """Return the path of the built simulator, building it into the cache first if needed.

    A build takes from ~20 s (idle 2-core machine) to over a minute (busy one): `progress`, when given, is called with
    a short status as it goes — BUILD_MESSAGE first, then the elapsed seconds and the Go package being compiled (from
    `go build -v`), at most every `every` seconds, and a last "built the vCenter simulator in N s"."""
    environ = dict(os.environ if environ is None else environ)
    tc = find_toolchain(environ)
    out_dir = cache_root(environ) / f"vcsim-{source_hash(tc)}"
    binary = out_dir / "vcsim"
    if binary.is_file() and os.access(binary, os.X_OK):
        return binary
    say = progress or (lambda _text: None)
    t0 = time.monotonic()
    say(BUILD_MESSAGE)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="vcsim-src-", dir=out_dir) as tmp:
        src = Path(tmp) / "vcsim"
        src.mkdir()
        shutil.copyfile(SOURCE, src / "main.go")
        tmp_bin = Path(tmp) / "vcsim.bin"
        env = {
            "PATH": environ.get("PATH", os.defpath),
            "HOME": environ.get("HOME", tmp),
            "GO111MODULE": "off",
            "GOPATH": str(tc.gopath),
            "GOCACHE": environ.get("GOCACHE") or str(out_dir.parent / "go-build"),
            "GOFLAGS": "",
            "CGO_ENABLED": "0",
        }
        # -v: go names each package as it compiles it (on stderr), which is the only progress a build has
        proc = subprocess.Popen(
            [str(tc.go), "build", "-v", "-o", str(tmp_bin), "."],
            cwd=src, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )
        tail: list[str] = []
        compiled, last = 0, t0
        try:
            assert proc.stderr is not None
            for line in proc.stderr:
                line = line.rstrip("\n")
                tail = (tail + [line])[-40:]
                if line and not line.startswith(("#", " ", "\t")):
                    compiled += 1
                now = time.monotonic()
                if progress and now - last >= every:
                    last = now
                    say(f"{BUILD_MESSAGE}: {now - t0:.0f} s, {compiled} Go packages compiled, now {line.strip()}")
            rc = proc.wait(timeout=600)
        except BaseException:
            proc.kill()
            proc.wait()
            raise
        if rc != 0:
            raise EnvironmentProblem(
                "building the vCenter simulator failed:\n" + "\n".join(tail)[-2000:],
                hint=f"check the Go toolchain and govmomi sources ({APT_HINT})",
            )
        os.replace(tmp_bin, binary)  # atomic: a concurrent build wins or loses as a whole
    say(f"built the vCenter simulator in {time.monotonic() - t0:.1f} s (cached in {out_dir})")
    return binary


@dataclass
class Vcsim:
    """A running simulator. `url` has no credentials; `password` is only in memory."""

    url: str
    user: str
    password: str = field(repr=False)
    pid: int
    workdir: Path
    _proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def base(self) -> str:
        u = urllib.parse.urlsplit(self.url)
        return f"{u.scheme}://{u.netloc}"

    @property
    def url_with_credentials(self) -> str:
        u = urllib.parse.urlsplit(self.url)
        cred = f"{urllib.parse.quote(self.user, safe='')}:{urllib.parse.quote(self.password, safe='')}"
        return urllib.parse.urlunsplit((u.scheme, f"{cred}@{u.netloc}", u.path, "", ""))

    def endpoint_entry(self, password_file: Path | None = None) -> dict[str, object]:
        """The `vcenter` entry of endpoints.json (shared contract 2). With `password_file`, the simulator's
        password is written there (0600) and named in the entry, for `labctl vcenter --sim` when the topology's
        password_env is not set; the URL itself never carries it."""
        entry: dict[str, object] = {"url": self.url, "user": self.user, "pid": self.pid, "workdir": str(self.workdir)}
        if password_file is not None:
            fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(self.password + "\n")
            entry["password_file"] = str(password_file)
        return entry

    def add_datastore_dirs(self, names: Sequence[str]) -> None:
        ensure_datastore_dirs(self.workdir, names)

    def inject_fault(self, method: str, obj: str, fault: str = "HostConfigFault", message: str = "",
                     fields: Mapping[str, object] | None = None, count: int = 1) -> None:
        """Make the next `count` calls of `method` on the object named `obj` fail with `fault`."""
        body = {"method": method, "object": obj, "fault": fault, "message": message, "count": count}
        if fields:
            body["fields"] = dict(fields)
        self._control("/_labctl/fault", body)

    def call_counts(self) -> dict[str, int]:
        """SOAP calls received since start (or the last reset), by method name."""
        with urllib.request.urlopen(self.base + "/_labctl/stats", timeout=10) as r:
            return dict(json.load(r)["calls"])

    def vms(self, after: int | None = None, wait: float = 10.0) -> dict:
        """The VMs as the simulated hypervisor sees them (`{"generation": N, "vms": [...]}`, see main.go); with
        `after`, waits up to `wait` seconds for a generation past it."""
        q = "" if after is None else f"?after={int(after)}&wait={float(wait)}"
        with urllib.request.urlopen(self.base + "/_labctl/vms" + q, timeout=wait + 10) as r:
            return json.load(r)

    def clones(self) -> list[dict]:
        """Every CloneVM_Task the simulator carried out, as requested: clone, name, source, snapshot (morefs),
        diskMoveType and whether it made a linked clone."""
        with urllib.request.urlopen(self.base + "/_labctl/clones", timeout=10) as r:
            return list(json.load(r)["clones"])

    def set_guestinfo(self, vm: str, values: Mapping[str, str]) -> None:
        """What a guest's `vmtoolsd --cmd "info-set guestinfo.K V"` does to its VM's configuration."""
        self._control("/_labctl/guestinfo", {"vm": vm, "values": dict(values)})

    def reset_counts(self) -> None:
        self._control("/_labctl/stats/reset", None)

    def _control(self, path: str, body: object) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="POST",
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10):
            pass

    def stop(self, timeout: float = 5.0) -> None:
        stop_pid(self.pid, timeout=timeout, proc=self._proc)
        remove_scratch(self.workdir)


def remove_scratch(workdir: Path) -> None:
    """The simulator's local-datastore directories (govcsim-*), left behind when it had to be killed."""
    import shutil

    for p in Path(workdir).glob("govcsim-*"):
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p, ignore_errors=True)


def ensure_datastore_dirs(workdir: Path, names: Sequence[str]) -> None:
    """Create the per-datastore directories a running simulator needs (its working directory, on this machine)."""
    if not Path(workdir).is_dir():
        return
    for name in names:
        _check_name(name)
        (Path(workdir) / name).mkdir(exist_ok=True)


def _check_name(name: str) -> None:
    if not name or name in (".", "..") or "/" in name or "\\" in name or "," in name:
        raise LabctlError(f"datastore name {name!r} cannot be a simulator directory (plain names only)")


def start(binary: Path, workdir: Path, *, datacenters: int = 1, clusters: int = 1, hosts_per_cluster: int = 3,
          standalone_hosts: int = 0, datastores: Sequence[str] = (), api_version: str | None = None, tls: bool = False,
          user: str = "administrator@vsphere.local", password: str | None = None,
          timeout: float = START_TIMEOUT, on_spawn: Callable[[int, list[str]], None] | None = None,
          esx: bool = False, disks: Path | None = None, datacenter_name: str | None = None,
          cluster_name: str | None = None, datastore_name: str | None = None,
          portgroups: Sequence[str] = ()) -> Vcsim:
    """Start the simulator in `workdir` on 127.0.0.1 (free port) and wait for its URL.

    `on_spawn(pid, argv)` is called as soon as the process exists, before waiting for it, so the caller records
    it (processes.json) before anything — a Ctrl-C, a second labctl — could orphan it. If the wait fails or is
    interrupted, the process is stopped here.

    `esx` simulates a standalone ESX host (`ha-datacenter`, no cluster) instead of a vCenter; `disks` is the
    directory of the VMs' simulated disk contents (see `labctl.sim.target`); the `*_name` options rename
    the model's first datacenter, cluster and local datastore, and `portgroups` are created on every host's
    vSwitch0 (a physical side set up as a topology's target names it)."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    for name in datastores:
        _check_name(name)
    password = password or secrets.token_urlsafe(12)
    argv = [str(binary), "-listen", "127.0.0.1:0", "-dc", str(datacenters), "-cluster", str(clusters),
            "-host", str(hosts_per_cluster), "-standalone", str(standalone_hosts), "-user", user]
    if datastores:
        argv += ["-datastores", ",".join(datastores)]
    if api_version:
        argv += ["-api-version", api_version]
    if tls:
        argv += ["-tls"]
    if esx:
        argv += ["-esx"]
    if disks is not None:
        argv += ["-disks", str(disks)]
    for flag, value in (("-dc-name", datacenter_name), ("-cluster-name", cluster_name),
                        ("-datastore-name", datastore_name)):
        if value:
            argv += [flag, value]
    if portgroups:
        if any("," in p or not p.strip() for p in portgroups):
            raise LabctlError(f"portgroup names {list(portgroups)!r}: plain names without commas")
        argv += ["-portgroups", ",".join(portgroups)]
    out_path, log_path = workdir / "vcsim.url", workdir / "vcsim.log"
    env = {"PATH": os.environ.get("PATH", os.defpath), "TMPDIR": str(workdir), "LABCTL_VCSIM_PASSWORD": password}
    with open(out_path, "wb") as out, open(log_path, "ab") as log:
        proc = subprocess.Popen(argv, cwd=workdir, stdout=out, stderr=log, stdin=subprocess.DEVNULL, env=env,
                                start_new_session=True)
    try:
        if on_spawn is not None:
            on_spawn(proc.pid, argv)
        return _wait_started(proc, argv, out_path, log_path, user, password, workdir, timeout)
    except BaseException:
        if proc.poll() is None:
            stop_pid(proc.pid, proc=proc)
        raise


def _wait_started(proc: subprocess.Popen, argv: list[str], out_path: Path, log_path: Path, user: str,
                  password: str, workdir: Path, timeout: float) -> Vcsim:
    deadline = time.monotonic() + timeout
    while True:
        text = out_path.read_text(errors="replace")
        if "\n" in text:
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            if proc.poll() is None:
                stop_pid(proc.pid, proc=proc)
            tail = log_path.read_text(errors="replace")[-1500:]
            raise EnvironmentProblem(f"the vCenter simulator did not start (exit {proc.returncode}):\n{tail}")
        time.sleep(0.02)
    u = urllib.parse.urlsplit(text.splitlines()[0].strip())
    if u.hostname != "127.0.0.1" or not u.port:
        stop_pid(proc.pid, proc=proc)
        raise EnvironmentProblem(f"the vCenter simulator printed an unexpected URL host {u.hostname!r}")
    out_path.write_text("")  # the printed URL carries the password: do not leave it on disk
    url = urllib.parse.urlunsplit((u.scheme, f"{u.hostname}:{u.port}", u.path, "", ""))
    return Vcsim(url=url, user=user, password=password, pid=proc.pid, workdir=workdir, _proc=proc)


def stop_pid(pid: int, *, timeout: float = 5.0, proc: subprocess.Popen | None = None) -> None:
    """SIGTERM the simulator with this PID, then SIGKILL after `timeout`; a process already gone is fine."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None:
            if proc.poll() is not None:
                return
        else:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.02)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return
    if proc is not None:
        proc.wait(timeout=5)
