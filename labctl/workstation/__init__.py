"""VMware Workstation on this machine: the vmrun driver, host networking, /dev/vmnet* permissions, doctor checks.

This is the only labctl package that spawns processes (vmrun, vmware-networks, systemctl). Every path it reads or
writes (`/etc/vmware`, `/dev`, `/proc`, `~/.vmware`) is a parameter, so tests run against temporary directories
and never touch the machine's own files.

Modules:
- `driver`      the `Driver` interface, `VmrunDriver` (real vmrun, argv lists, no shell), `find_vmrun`, `new_driver`
- `vmrun_output` pure parsers for vmrun's output (`list`, `listSnapshots`, `Error:` lines, `vmware-vmx -v`)
- `clonecfg`    settings applied to a clone's .vmx after `vmrun clone` (static MACs, uuid.action, displayName)
- `networking`  `/etc/vmware/networking` parse/dump, vmnet classification, the lab's wanted vmnets and the diff
- `preferences` LAN segments (named pvnIDs) in `~/.vmware/preferences`
- `vmnet`       `/dev/vmnetN` permission check/fix and the systemd unit that keeps them
- `doctor`      the machine checks behind `labctl doctor`
- `proc`        the one helper that starts a process (argv, no shell, timeout); `sysfiles` backup + atomic edit

For the pipeline (`plan`/`up`), stage by stage:

    from labctl.workstation import driver, clonecfg, networking as nw, preferences as prefs, vmnet
    net = nw.plan_network(nw.read_host_networking().file, nw.lab_vnets(topo))   # pure; .changes, .new_text
    nw.apply_network(net)                                                          # root; backup + vmware-networks
    prefs.ensure_segments(prefs.default_preferences_path(), prefs.lab_segments(topo), dry_run=plan_only)
    vmnet.check(Path("/dev")).problems / vmnet.fix(Path("/dev"), "vmware")
    d = driver.workstation_driver(env.environ)    # VmrunDriver; plan.backends.workstation picks SimDriver with --sim
    clonecfg.ensure_linked_clone(d, parent_vmx, clone_vmx, snapshot=h.snapshot,
                                 settings=clonecfg.settings_for_host(topo, h))   # snapshot if missing, clone, .vmx
    clonecfg.needs_update(clone_vmx.read_bytes(), settings)     # for plan: keys that would change
    d.is_running(vmx) / d.start(vmx) / d.stop(vmx) / d.list_snapshots(vmx)
The simulated Workstation (`labctl up --sim`) is `labctl.sim.workstation.SimDriver`, the same `Driver` interface;
with --sim, VM paths come from `SimDriver.vmx_path(name)` (under the sim dir), never from the topology's vm_dir.
"""
