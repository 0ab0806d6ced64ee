"""vCenter work through pyVmomi (the only package that imports it, always lazily).

- model.py: plain inputs (ClusterSpec, NfsSpec, HostLogin) and the Result (changes + failures) callers print.
- connection.py: which vCenter and credentials (topology, --vcenter URL, GOVC_* variables, --sim), TLS policy.
- client.py: the SOAP calls (one RetrievePropertiesEx inventory snapshot, tasks waited for together).
- ha.py: FDM/AAM isolation-address keys and the minimal dasConfig difference (pure).
- operations.py: configure_vcenter (datacenter, clusters, hosts, HA) and mount_nfs, plus their pure planners.
- adapter.py: Topology -> the plain inputs.
"""
