"""The vSphere target: the lab's VMs on a vCenter or a standalone ESXi host (issue 14). pyVmomi only inside.

    drv = open_driver(topology, environ=env.environ, portgroups={"mgmt": "Lab-Mgmt", "storage": "labctl-lab-storage"})
    ... the pipeline's stages call drv like any other `Driver` ...
    drv.close()   # logs the one session out (the run's Context does it for what `ctx.once` made)

`open_driver` resolves the target's address and credentials by `vsphere.connection`'s rules (URL > GOVC_* >
password_env > a prompt on a terminal; certificates checked unless insecure or pinned), logs in once, and gives a
`VsphereDriver` whose state directory is the lab's vm_dir (the rendered .vmx files). With `sim_vcenter` (the
simulated lab's endpoints entry, `--sim`) the simulator is dialled instead of the topology's target address.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping

if TYPE_CHECKING:
    from labctl.vsphere.target.driver import VsphereDriver


def open_driver(topology: Any, *, environ: Mapping[str, str], portgroups: Mapping[str, str],
                sim_vcenter: Mapping[str, Any] | None = None, sim_password: str | None = None,
                override_url: str | None = None, insecure: bool = False, thumbprint: str | None = None,
                prompt: Callable[[str], str | None] | None = None,
                progress: Callable[[str, str], None] | None = None) -> VsphereDriver:
    """One logged-in session and the driver for `topology.target` (`portgroups`: lab network → portgroup name)."""
    from labctl.errors import UsageError
    from labctl.vsphere.connection import resolve_target
    from labctl.vsphere.target.driver import VsphereDriver
    from labctl.vsphere.target.session import Session
    from labctl.vsphere.target.vmxfacts import network_refs

    settings = getattr(topology, "target", None)
    if settings is None:
        raise UsageError(f"lab {topology.lab} has no vSphere target", hint="add target: {kind: vsphere, …}")
    target = resolve_target(settings=settings, environ=environ, override_url=override_url, sim_vcenter=sim_vcenter,
                            sim_password=sim_password, insecure=insecure, thumbprint=thumbprint, prompt=prompt)
    session = Session.open(target)
    try:
        return VsphereDriver(session, settings, topology.workstation.vm_dir, portgroups=portgroups,
                             network_refs=network_refs(topology.networks), progress=progress, owns_session=True)
    except BaseException:
        session.close()
        raise
