"""The vSphere target: the lab's VMs on a vCenter or a standalone ESXi host (issue 14). pyVmomi only inside."""
