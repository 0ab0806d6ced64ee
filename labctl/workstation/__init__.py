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
- `simdriver`   a simulated Workstation (`labctl up --sim`) with the same `Driver` interface
"""
