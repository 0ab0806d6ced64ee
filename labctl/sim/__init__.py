"""Simulated ESX/ESXi hosts on loopback (a user feature and the test bed for everything remote).

- `state`: the persistent host model (dataclasses, JSON), fresh installs per flavour/version, linked clones.
- `boot`: boot-time rules (FollowHardwareMac, /system/uuid, lost ESXi /etc edits without auto-backup.sh).
- `fs`: the host's small filesystem (text in the state JSON, big files as blobs under the host dir).
- `shell`: a small BusyBox-ash interpreter (jobs, nohup, hang-up model); `commands/`: the command registry
  (shared contract 4) and the handlers per area.
- `host`: a running host (lock, jobs, sessions, reachability, latency, faults, reboot); `faults`: latency and
  fault rules as data (`control.json`); `server`/`sftp`: the paramiko server side (auth per era, host keys, exec,
  shell, SFTP, jump-host forwarding).
- `hostd`: the process entry point serving one or more hosts; `lab`: `labctl sim up/status/down` from a
  Topology or plain specs; `endpoints`, `paths`: the endpoint map and the sim dir (shared contracts 1-2);
  `vcsim`: the vCenter simulator (vSphere engineer).
Nothing here runs at import time; paramiko is imported inside functions.
"""
