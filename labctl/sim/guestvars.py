"""A simulated VM's guest variables (`guestinfo.*`), as Workstation keeps them for a running VM.

- At power-on the VM's configuration gives the initial values: every `guestinfo.*` key of its .vmx.
- While it runs, the guest sets values with `vmtoolsd --cmd "info-set guestinfo.NAME VALUE"` (runtime only:
  Workstation never writes them back to the .vmx) and reads them with `info-get`; the host side reads them with
  `vmrun readVariable VMX guestVar NAME` (`SimDriver.read_guest_var`).
- At power-off they are gone; the next power-on starts again from the .vmx.

All of it lives in `<host dir>/guestvars.json` ({"config": {...}, "runtime": {...}}, names lower-case with their
`guestinfo.` prefix, as .vmx keys are case-insensitive), written atomically by whichever side changes it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

GUESTVARS_FILE = "guestvars.json"
PREFIX = "guestinfo."


def _path(hdir: Path) -> Path:
    return Path(hdir) / GUESTVARS_FILE


def _load(hdir: Path) -> dict | None:
    try:
        data = json.loads(_path(hdir).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _norm(name: str) -> str:
    n = name.strip().lower()
    return n if n.startswith(PREFIX) else PREFIX + n


def powered_on(hdir: Path, config: Mapping[str, str]) -> None:
    """The VM powered on with this configuration: its guestinfo.* keys are the variables' values now."""
    from labctl.sim.state import write_json_atomic

    values = {k.lower(): str(v) for k, v in config.items() if k.lower().startswith(PREFIX)}
    write_json_atomic(_path(hdir), {"config": values, "runtime": {}}, mode=0o600)


def powered_off(hdir: Path) -> None:
    _path(hdir).unlink(missing_ok=True)


def running(hdir: Path) -> bool:
    return _load(hdir) is not None


def get(hdir: Path, name: str) -> str | None:
    """The value the guest and vmrun see: what the guest set since power-on, else the .vmx's; None when unset."""
    data = _load(hdir)
    if data is None:
        return None
    key = _norm(name)
    for layer in ("runtime", "config"):
        values = data.get(layer) or {}
        if key in values:
            return str(values[key])
    return None


def set_value(hdir: Path, name: str, value: str) -> bool:
    """`info-set`: False when the VM has no guest variables (not powered on by a simulated Workstation)."""
    from labctl.sim.state import write_json_atomic

    data = _load(hdir)
    if data is None:
        return False
    data.setdefault("runtime", {})[_norm(name)] = value
    write_json_atomic(_path(hdir), data, mode=0o600)
    return True
