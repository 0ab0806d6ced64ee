"""Simulated ESX/ESXi hosts on loopback (a user feature and the test bed for everything remote).

- `state`: the persistent host model (dataclasses, JSON), fresh installs per flavour/version, linked clones.
- `boot`: boot-time rules (FollowHardwareMac, /system/uuid, lost esx.conf edits without auto-backup.sh).
- `shell`: a small BusyBox-ash interpreter; `commands/`: the command registry (contract 4).
- `host`: a running host (lock, jobs, sessions, faults, latency, reboot); `server`/`sftp`: paramiko server side.
- `hostd`: the process entry point serving one or more hosts; `lab`: `labctl sim up/status/down`;
  `endpoints`, `paths`: the endpoint map and sim dir (contracts 1-2).
Nothing here is imported by `labctl` at start-up; paramiko is imported inside functions.
"""
