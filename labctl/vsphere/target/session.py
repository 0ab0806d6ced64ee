"""One vSphere session per run, every call counted, and a bounded runner for tasks of many VMs.

`Session.open(target)` logs in once with `labctl.vsphere.connection`'s certificate policy (CA-verified by default,
`--insecure`, or a pinned thumbprint); the session is shared by every VM of the run and by the runner's threads
(pyVmomi's SOAP stub keeps a pool of HTTP connections, one request per connection at a time). Every SOAP call
— a method, a property read, a task poll — goes through the stub's `InvokeMethod`, which the session wraps to
count: `session.calls` (method name → count) and `session.total`; a datastore HTTP transfer counts as one call
named after its HTTP method (`HTTP PUT`). The bench reports calls per host from these numbers.

`TaskRunner(workers)` runs one function per VM in at most `workers` threads, reports progress per VM, and
returns each VM's outcome: an error is always named with its VM.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from labctl.errors import LabctlError
from labctl.vsphere.connection import Target, open_service_instance

TASK_TIMEOUT = 1800.0  # seconds a single vSphere task may take (a full clone of a big disk on a slow datastore)


class VsphereTaskError(LabctlError):
    """A vSphere task or call failed; the message names the VM (or object) and the call."""


def fault_text(fault: Any) -> str:
    from labctl.vsphere.client import fault_message

    return fault_message(fault, getattr(fault, "msg", None))


class Session:
    """A logged-in vSphere session (vCenter or a standalone ESXi host) with counted calls."""

    def __init__(self, si: Any, *, display: str = ""):
        """`si`: a pyVmomi ServiceInstance, or a `labctl.vsphere.client.VSphereClient` (its session is shared:
        the run's network stage and VM driver count on one counter, kept on the SOAP stub)."""
        client = si if hasattr(si, "si") and hasattr(si, "content") else None
        self.si = client.si if client is not None else si
        stub = self.si._stub
        self.display = display or getattr(client, "display", "") or str(getattr(stub, "host", "") or "vSphere")
        counter = getattr(stub, "_labctl_calls", None)
        if counter is None:  # wrap once, however many Session objects share this stub
            counter = stub._labctl_calls = Counter()
            stub._labctl_lock = threading.Lock()
            invoke = stub.InvokeMethod

            def counted(mo, info, args, *rest):
                with stub._labctl_lock:
                    counter[info.wsdlName] += 1
                return invoke(mo, info, args, *rest)

            stub.InvokeMethod = counted
        self.calls: Counter[str] = counter
        self._lock = stub._labctl_lock
        self.content = client.content if client is not None else self.si.RetrieveContent()
        self.about = self.content.about
        self.is_vcenter = str(self.about.apiType) == "VirtualCenter"

    @classmethod
    def open(cls, target: Target) -> Session:
        return cls(open_service_instance(target), display=target.display)

    def count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.calls[name] += n

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.calls.values())

    def snapshot_counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self.calls)

    @property
    def cookie(self) -> str:
        """The session cookie (`vmware_soap_session="…"`) the datastore HTTP interface authenticates with."""
        return str(self.si._stub.cookie)

    @property
    def stub(self) -> Any:
        return self.si._stub

    def close(self) -> None:
        try:
            self.content.sessionManager.Logout()
        except Exception:  # noqa: BLE001 - logging out of a dead session is not worth an error
            pass

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- tasks ------------------------------------------------------------------------------------------------
    def wait(self, task: Any, what: str, *, timeout: float = TASK_TIMEOUT) -> Any:
        """Wait for one task (polling `info`, backing off 50 ms → 2 s); its result, or VsphereTaskError naming `what`."""
        deadline = time.monotonic() + timeout
        delay = 0.02
        while True:
            info = task.info
            state = str(info.state)
            if state == "success":
                return info.result
            if state == "error":
                err = info.error
                raise VsphereTaskError(f"{what} failed: {fault_text(err) if err is not None else 'task failed'}")
            if time.monotonic() > deadline:
                raise VsphereTaskError(f"{what}: task still running after {timeout:.0f} s",
                                       hint="look at the task in the vSphere client; re-run when it finished")
            time.sleep(delay)
            delay = min(delay * 2, 2.0)

    def call(self, what: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run one SOAP method; a vSphere fault becomes VsphereTaskError naming `what`."""
        from pyVmomi import vmodl

        try:
            return fn(*args, **kwargs)
        except vmodl.MethodFault as e:
            raise VsphereTaskError(f"{what} failed: {fault_text(e)}") from None


@dataclass
class Outcome:
    name: str
    ok: bool
    result: Any = None
    error: LabctlError | None = None
    seconds: float = 0.0


@dataclass
class TaskRunner:
    """Run `fn(name)` for many VMs, at most `workers` at a time; progress(name, text) as each starts and ends."""

    workers: int = 4
    progress: Callable[[str, str], None] | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def run(self, names: Sequence[str], fn: Callable[[str], Any], *, what: str = "") -> list[Outcome]:
        """One outcome per name, in the order given; an exception of a VM is its outcome, never the others' end."""
        say = self.progress or (lambda _n, _t: None)

        def one(name: str) -> Outcome:
            t0 = time.monotonic()
            say(name, f"{what}…" if what else "working")
            try:
                res = fn(name)
            except LabctlError as e:
                say(name, f"failed: {e.message}")
                if name not in e.message:
                    e = VsphereTaskError(f"{name}: {e.message}", hint=e.hint)
                return Outcome(name, False, error=e, seconds=time.monotonic() - t0)
            except Exception as e:  # noqa: BLE001 - any failure of one VM is reported with its name
                say(name, f"failed: {e}")
                return Outcome(name, False, error=VsphereTaskError(f"{name}: {type(e).__name__}: {e}"),
                               seconds=time.monotonic() - t0)
            say(name, "done")
            return Outcome(name, True, result=res, seconds=time.monotonic() - t0)

        if self.workers <= 1 or len(names) <= 1:
            out = [one(n) for n in names]
        else:
            with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="labctl-vsphere") as pool:
                out = list(pool.map(one, names))
        self.outcomes.extend(out)
        return out
