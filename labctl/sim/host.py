"""A running simulated host: state + lock + filesystem + jobs + connections, independent of paramiko.

`SimHost.run(command)` executes a command line locally (tests, `sim` debugging); the SSH server
(`labctl.sim.server`) calls `SimHost.exec_session(...)` for each exec request. Handlers reach the host through
`inv.host`: `network_changed()` after changing interfaces (drops the SSH sessions that used a removed/disabled
interface and closes the listener while the host's address is gone), `reboot()`, `auto_backup()`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any, Callable

from labctl.sim import state as S
from labctl.sim.faults import Control, FaultBook, read_control
from labctl.sim.fs import SimFS
from labctl.sim.shell import IO, BufferWriter, BytesReader, Interp, Job, JobKilled, Writer


class Conn:
    """One SSH connection: the interface it came in on, its exec sessions, a way to close it."""

    def __init__(self, iface: str, ip: str, close: Callable[[], None]):
        self.iface = iface
        self.ip = ip
        self.close = close
        self.sessions: set[Session] = set()
        self.dropped = False
        self.replies: dict[int, threading.Event] = {}
        self.replies_lock = threading.Lock()


class Session:
    """One exec channel: writes to it fail once the connection dropped; background jobs may hold it open."""

    def __init__(self, conn: Conn | None, send: Callable[[bytes], None], send_err: Callable[[bytes], None]):
        self.conn = conn
        self._send = send
        self._send_err = send_err
        self.dropped = False
        self.fg_job: Job | None = None
        self._holders = 0
        self._cv = threading.Condition()

    def write(self, data: bytes, *, err: bool = False) -> None:
        if self.dropped:
            raise BrokenPipeError
        try:
            (self._send_err if err else self._send)(data)
        except BrokenPipeError:
            raise
        except Exception as e:  # socket.error, EOFError, paramiko.SSHException: the channel is gone
            self.dropped = True
            raise BrokenPipeError from e

    def drop(self) -> None:
        self.dropped = True
        if self.fg_job is not None:
            self.fg_job.hangup()
        with self._cv:
            self._cv.notify_all()

    def hold(self) -> None:
        with self._cv:
            self._holders += 1

    def release(self) -> None:
        with self._cv:
            self._holders -= 1
            self._cv.notify_all()

    def wait_released(self) -> None:
        with self._cv:
            while self._holders > 0 and not self.dropped:
                self._cv.wait(0.5)


class SessionWriter(Writer):
    def __init__(self, session: Session, err: bool):
        self.session = session
        self.err = err

    def write(self, data: bytes) -> None:
        if data:
            self.session.write(data, err=self.err)


class SimHost:
    def __init__(self, st: S.HostState, host_dir: Path | None = None, *, control: Control | None = None,
                 log: Callable[[str], None] | None = None):
        self.state = st
        self.host_dir = Path(host_dir) if host_dir is not None else None
        self.lock = threading.RLock()
        self.fs = SimFS(st, self.host_dir / "blobs" if self.host_dir else None)
        self.jobs: set[Job] = set()
        self.conns: set[Conn] = set()
        self._jobs_lock = threading.Lock()
        self.pid = os.getpid()
        self.up = True
        self.rebooting = False
        self._up_event = threading.Event()
        self._up_event.set()
        self.listener: Any = None  # set by the server: has update() / close()
        self._log = log
        self.counters = {"tcp_accepts": 0, "connections": 0, "auth_ok": 0, "auth_failed": 0, "execs": 0, "commands": 0, "drops": 0}
        self._control_mtime: float | None = None
        self.faults = FaultBook(control or Control())
        if control is None:
            self.reload_control(force=True)

    # ---------------------------------------------------------------- housekeeping
    def log(self, msg: str) -> None:
        if self._log:
            self._log(f"[{self.state.name}] {msg}")

    def save(self) -> None:
        if self.host_dir is not None:
            with self.lock:
                S.save_state(self.host_dir, self.state)

    def write_runtime(self) -> None:
        if self.host_dir is None:
            return
        S.write_json_atomic(self.host_dir / "runtime.json", {
            "pid": self.pid, "up": self.up, "boot_count": self.state.boot_count, **self.counters,
            "faults": self.faults.summary(), "time": time.time(),
        })

    def reload_control(self, *, force: bool = False) -> bool:
        """Re-read control.json if it changed; True when it did."""
        if self.host_dir is None:
            return False
        p = self.host_dir / "control.json"
        try:
            mtime = p.stat().st_mtime_ns
        except FileNotFoundError:
            mtime = None
        if not force and mtime == self._control_mtime:
            return False
        self._control_mtime = mtime
        old, book = self.faults, FaultBook(read_control(self.host_dir))
        for i, rule in enumerate(book.control.faults):  # a rule that stays keeps its count of firings
            if i < len(old.control.faults) and old.control.faults[i] == rule:
                book.fired[i] = old.fired[i]
        self.faults = book
        return True

    @property
    def control(self) -> Control:
        return self.faults.control

    def register_job(self, job: Job) -> None:
        with self._jobs_lock:
            self.jobs.add(job)

    def unregister_job(self, job: Job) -> None:
        with self._jobs_lock:
            self.jobs.discard(job)

    # ---------------------------------------------------------------- network reachability
    def ssh_interface(self) -> tuple[str, str] | None:
        """(interface, ip) an SSH client reaches, or None when the host's address is not up."""
        st = self.state
        # ESX classic: sshd runs in the service console, so only vswif addresses answer (VMkernel ports do not)
        ifaces = list(st.vswifs) if st.is_classic or st.flavor == "linux" else list(st.vmknics)
        for i in ifaces:
            if i.ip and i.ip == st.ssh_address:
                return (i.name, i.ip) if i.enabled else None
        if any(i.ip == st.ssh_address for i in (*st.vswifs, *st.vmknics)):
            return None
        mgmt = st.interface(st.management_name) or (ifaces[0] if ifaces else None)
        if mgmt is None or not mgmt.enabled:
            return None
        return mgmt.name, mgmt.ip  # access_ip (NAT/port forward) reaches the management interface

    def ssh_running(self) -> bool:
        """Is the host's SSH service running? (A freshly installed ESXi has it off until it is started; hosts made
        by `labctl sim up`, which models a lab set up by hand, have it on.)"""
        svc = self.state.extra.get("ssh_service")
        return True if svc is None else bool(svc.get("running"))

    def ssh_addresses(self) -> dict[str, str]:
        """{address: interface} for every address this host's sshd answers on now (on a lab segment): ESXi's
        enabled VMkernel ports, the service console's enabled vswifs on ESX classic (sshd runs there only)."""
        st = self.state
        ifaces = list(st.vswifs) if st.is_classic or st.flavor == "linux" else list(st.vmknics)
        return {i.ip: i.name for i in ifaces if i.ip and i.enabled}

    def reachable(self) -> bool:
        return self.up and not self.faults.is_down() and self.ssh_running() and self.ssh_interface() is not None

    def network_changed(self, bounced: set[str] | frozenset[str] = frozenset()) -> None:
        """Interfaces changed: drop connections whose interface is gone, disabled, re-addressed or was bounced
        (taken down and up again inside one command); open or close the listener to match."""
        st = self.state
        doomed = []
        for c in list(self.conns):
            i = st.interface(c.iface)
            if i is None or not i.enabled or (c.ip and i.ip != c.ip) or c.iface in bounced:
                doomed.append(c)
        for c in doomed:
            self.drop_conn(c, why=f"{c.iface} went away")
        self.update_listener()

    def update_listener(self) -> None:
        if self.faults.is_down() and self.conns:
            self.drop_all("host down (fault)")
        if self.listener is not None:
            self.listener.update()

    def drop_conn(self, c: Conn, why: str = "") -> None:
        if c.dropped:
            return
        c.dropped = True
        self.counters["drops"] += 1
        self.log(f"dropping connection on {c.iface}: {why}")
        for s in list(c.sessions):
            s.drop()
        self.conns.discard(c)
        threading.Thread(target=c.close, name="sim-drop", daemon=True).start()

    def drop_all(self, why: str) -> None:
        for c in list(self.conns):
            self.drop_conn(c, why)

    # ---------------------------------------------------------------- reboot and backup
    def auto_backup(self) -> None:
        """/sbin/auto-backup.sh: persist /etc into the bootbank (ESXi)."""
        self.state.persisted_etc = S.etc_snapshot(self.state)

    def reboot(self, delay: float | None = None) -> None:
        """Drop every connection, kill every job, stay down `reboot_delay`, boot (rules in labctl.sim.boot)."""
        with self.lock:
            if self.rebooting:
                return
            self.rebooting = True
            self._up_event.clear()
        delay = self.control.reboot_delay if delay is None else delay
        threading.Thread(target=self._reboot, args=(delay,), name="sim-reboot", daemon=True).start()

    def _reboot(self, delay: float) -> None:
        from labctl.sim.boot import boot

        time.sleep(0.05)  # the reboot command returns before the connection goes
        self.up = False
        if self.listener is not None:
            self.listener.close()
        self.drop_all("reboot")
        with self._jobs_lock:
            jobs = list(self.jobs)
        for j in jobs:
            j.kill("KILL")
        self.write_runtime()
        time.sleep(delay)
        with self.lock:
            boot(self.state)
            self.save()
            self.rebooting = False
            self.up = True
        self.run_boot_scripts()
        if self.listener is not None and hasattr(self.listener, "reload_keys"):
            self.listener.reload_keys()
        self.log(f"booted (boot #{self.state.boot_count})")
        self.update_listener()
        self.write_runtime()
        self._up_event.set()

    def run_boot_scripts(self) -> None:
        """The end of a boot: the kickstart's %firstboot scripts on the first boot after an install (ESXi), then
        /etc/rc.local.d/local.sh (ESXi 5.1+) or /etc/rc.d/rc.local (ESX classic), if the last boot left them
        pending."""
        self.run_firstboot()
        with self.lock:
            pending = self.state.extra.pop("boot_scripts_pending", False)
            script = S.RC_LOCAL if self.state.is_classic else S.LOCAL_SH
            present = self.fs.is_file(script)
        if pending and present:
            code, out, err = self.run(f"/bin/sh {script}")
            self.log(f"{script.rsplit('/', 1)[-1]} exited {code}" + (f": {err.strip()}" if err.strip() else ""))
        if pending:
            self.save()

    def run_firstboot(self) -> None:
        """At the first boot after an install: the kickstart's %firstboot scripts, once, in order (ESXi), run
        through the host's shell (busybox ash) as the real host runs /var/lib/vmware/firstboot/*. A failing
        command fails there; nothing else does its work."""
        with self.lock:
            scripts = self.state.extra.pop("firstboot", None)
        for sec in scripts or []:
            if sec.get("interpreter") == "python":
                self.log(f"%firstboot (line {sec.get('line')}): --interpreter=python is not modelled; not run")
                continue
            code, _, err = self.run(sec.get("body", ""))
            self.log(f"%firstboot (line {sec.get('line')}) exited {code}" + (f": {err.strip()}" if err.strip() else ""))
        if scripts is not None:
            self.save()

    def wait_up(self, timeout: float = 10.0) -> bool:
        return self._up_event.wait(timeout)

    # ---------------------------------------------------------------- running commands
    def dispatch(self, sh: Interp, argv: list[str], io: IO) -> int:
        from labctl.sim import commands as C

        found = C.lookup(argv, self.state)
        if found is None:
            _write(io.err, f"bash: {argv[0]}: command not found\n" if self.state.is_classic  # bash, not ash
                   else f"sh: {argv[0]}: not found\n")
            return 127
        cmd, n = found
        lat = self.command_latency(argv[0])
        if lat > 0 and not sh.job.sleep(lat):
            raise JobKilled(sh.job.signal or "KILL")
        self.counters["commands"] += 1
        inv = C.Invocation(argv=list(argv), args=list(argv[n:]), path=cmd.path, state=self.state, stdin=io.stdin,
                           fs=self.fs, host=self, job=sh.job, env=dict(sh.vars), cwd=sh.cwd, io=io)
        if cmd.lock:
            with self.lock:
                res = _call(cmd, inv, self)
                self.save()
        else:
            res = _call(cmd, inv, self)
            self.save()
        code, out, err = res
        _write(io.out, out)
        _write(io.err, err)
        return int(code)

    def command_latency(self, name: str) -> float:
        from labctl.sim.commands import command_name

        cl = self.control.command_latency
        if not cl:
            return 0.0
        base = command_name(name) or name
        return float(cl.get(base, cl.get("*", 0.0)))

    def new_interp(self, io: IO, job: Job) -> Interp:
        return Interp(self, job, io, variables={"PATH": "/bin:/sbin:/usr/bin:/usr/sbin", "HOME": "/"},
                      dispatch=self.dispatch)

    def run(self, command: str, stdin: bytes = b"") -> tuple[int, str, str]:
        """Run a command line on this host outside SSH (tests, debugging)."""
        out, err = BufferWriter(), BufferWriter()
        job = Job(self, "local")
        io = IO({0: BytesReader(stdin), 1: out, 2: err})
        try:
            code = self.new_interp(io, job).run(command)
        except JobKilled as e:
            from labctl.sim.shell import SIGNAL_STATUS

            code = SIGNAL_STATUS.get(e.signal, 137)
        finally:
            job.finish()
        return code, out.buf.decode("utf-8", "surrogateescape"), err.buf.decode("utf-8", "surrogateescape")

    def exec_session(self, command: str, session: Session, stdin: Any,
                     keep: dict[str, Any] | None = None) -> int | None:
        """Run one exec request; None when the session dropped (no exit status can be sent).

        `keep` carries variables and the working directory from one line to the next (interactive shells)."""
        self.counters["execs"] += 1
        job = Job(self, "exec")
        session.fg_job = job
        if session.dropped:
            job.kill("HUP")
        io = IO({0: stdin, 1: SessionWriter(session, False), 2: SessionWriter(session, True)})
        try:
            if self.control.latency > 0 and not job.sleep(self.control.latency):
                return None
            sh = self.new_interp(io, job)
            if keep:
                sh.vars.update(keep.get("vars", {}))
                sh.cwd = keep.get("cwd", sh.cwd)
                sh.status = keep.get("status", 0)
            code: int | None = sh.run(command)
            if keep is not None:
                keep.update(vars=dict(sh.vars), cwd=sh.cwd, status=code)
        except (JobKilled, BrokenPipeError):
            code = None
        except Exception as e:  # a simulator bug: say so on stderr, never a hung channel or a fake success
            self.log(f"internal error running {command!r}: {type(e).__name__}: {e}")
            try:
                session.write(f"sim: internal error: {type(e).__name__}: {e}\n".encode(), err=True)
            except BrokenPipeError:
                return None
            code = 70
        finally:
            job.finish()
        if session.dropped:
            return None
        return code


def _write(w: Writer, data: str | bytes) -> None:
    if not data:
        return
    raw = data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data
    try:
        w.write(raw)
    except BrokenPipeError:
        raise JobKilled("PIPE") from None


def _call(cmd: Any, inv: Any, host: SimHost) -> tuple[int, Any, Any]:
    from labctl.sim.commands import UsageFailure

    try:
        res = cmd.handler(inv)
    except UsageFailure as e:
        return e.code, "", e.err
    except JobKilled:
        raise
    except Exception as e:  # a handler bug must not look like success
        host.log(f"handler {' '.join(cmd.path)} crashed: {type(e).__name__}: {e}")
        return 1, "", f"sim: internal error in {' '.join(cmd.path)}: {type(e).__name__}: {e}\n"
    if res is None:
        return 1, "", f"sim: handler {' '.join(cmd.path)} returned nothing\n"
    code, out, err = (tuple(res) + ("", ""))[:3]
    return int(code), out, err
