"""Everything labctl does on ESX/ESXi hosts over SSH.

- `command`: building remote command lines from argv lists (quoting only, never pasted strings).
- `hosts`: the plain, typed description of one host to reach (`HostTarget`) and the adapter from a Topology.
- `result`: `Result` values and the errors naming host and command (no paramiko).
- `known_hosts`: the lab-local known_hosts, parsed once per command as text; `forget_key_command`.
- `connection`: the only paramiko importer — one connection per host, strict known_hosts, jump hosts,
  SFTP / `cat >` uploads, a bounded parallel pool (`LabConnections`).
- `lab`: `open_lab(topology, env, sim=..., ...)` — the adapter from a Topology (and a simulated lab's endpoint map).
- `facts/`: a fact is a command (per flavour/version) plus a pure parser.
- `operations/`: read facts, return typed changes (or why none are needed), apply them safely.

Importing this package does no work; paramiko is imported inside `connection` functions only.
"""
