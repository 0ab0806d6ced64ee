"""Everything labctl does on ESX/ESXi hosts over SSH.

- `command`: building remote command lines from argv lists (quoting only, never pasted strings).
- `hosts`: the plain, typed description of one host to reach (`HostTarget`) and the adapter from a Topology.
- `connection`: the only paramiko importer — one connection per host, strict known_hosts, jump hosts,
  SFTP / `cat >` uploads, a bounded parallel pool (`LabConnections`).
- `facts/`: a fact is a command (per flavour/version) plus a pure parser.
- `operations/`: read facts, return typed changes (or why none are needed), apply them safely.

Importing this package does no work; paramiko is imported inside `connection` functions only.
"""
