"""Settings applied to a linked clone's .vmx right after `vmrun clone`, and the clone step itself.

A linked clone starts as a copy of its parent's .vmx: same MACs (generated ones would be re-derived from the
copied `uuid.location`), same displayName. Before its first boot labctl gives it the topology's static MACs,
its own name, and `uuid.action = "create"` + `msg.autoAnswer = "TRUE"` so Workstation never stops on the
"moved or copied?" question (workstation.md §5).

Settings are either a key map (`settings_for_host`: `labctl.render.lab.clone_settings`, the same keys
`labctl render` writes into the clone plan; None = delete the key) or plain typed values (`CloneSettings`, which
also set each vNIC's network connection — `typed_settings_for_host`). Edits go through `labctl.render.vmx`,
which keeps the rest of the file (order, case, comments) byte for byte.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from labctl.errors import LabctlError

if TYPE_CHECKING:
    from labctl.topology.model import EsxHost, Network, Topology
    from labctl.workstation.driver import Driver


@dataclass(frozen=True)
class NicSetting:
    index: int
    mac: str  # static, 00:50:56:00:00:00-00:50:56:3f:ff:ff
    connection_type: str  # custom | nat | bridged | hostonly | pvn
    vnet: str | None = None  # "vmnet2" for custom
    pvn_id: str | None = None  # LAN segments


@dataclass(frozen=True)
class CloneSettings:
    display_name: str
    nics: tuple[NicSetting, ...]


_GENERATED_KEYS = ("generatedAddress", "generatedAddressOffset")


def vmx_changes(settings: CloneSettings | Mapping[str, str | None]) -> tuple[dict[str, str], list[str]]:
    """(keys to set, keys to delete) that turn a copied .vmx into this clone's.

    `settings` is a `CloneSettings` or the key map `labctl.render.lab.clone_settings` gives (None = delete).
    """
    if isinstance(settings, Mapping):
        return (
            {k: v for k, v in settings.items() if v is not None},
            [k for k, v in settings.items() if v is None],
        )
    sets: dict[str, str] = {
        "displayName": settings.display_name,
        "uuid.action": "create",
        "msg.autoAnswer": "TRUE",
    }
    deletes: list[str] = []
    for nic in settings.nics:
        p = f"ethernet{nic.index}"
        sets[f"{p}.present"] = "TRUE"
        sets[f"{p}.connectionType"] = nic.connection_type
        if nic.connection_type == "custom":
            if not nic.vnet:
                raise LabctlError(f"{settings.display_name}/{p}: connectionType custom needs a vmnet")
            sets[f"{p}.vnet"] = nic.vnet
        else:
            deletes.append(f"{p}.vnet")
        if nic.connection_type == "pvn":
            if not nic.pvn_id:
                raise LabctlError(f"{settings.display_name}/{p}: a LAN segment needs a pvnID")
            sets[f"{p}.pvnID"] = nic.pvn_id
        else:
            deletes.append(f"{p}.pvnID")
        sets[f"{p}.addressType"] = "static"
        sets[f"{p}.address"] = nic.mac
        deletes += [f"{p}.{k}" for k in _GENERATED_KEYS]
    return sets, deletes


def apply_to_vmx_text(text: str | bytes, settings: CloneSettings | Mapping[str, str | None]) -> bytes:
    """Pure: the clone's .vmx content with the settings applied (everything else kept byte for byte)."""
    from labctl.render import vmx as vmxlib

    doc = vmxlib.parse(text)
    sets, deletes = vmx_changes(settings)
    for key in deletes:
        doc.delete(key)
    for key, value in sets.items():
        if doc.get(key) != value:
            doc.set(key, value)
    return doc.dump_bytes()


def needs_update(text: str | bytes, settings: CloneSettings | Mapping[str, str | None]) -> list[str]:
    """The keys whose value differs from what the settings want (empty: nothing to do). For `plan`."""
    from labctl.render import vmx as vmxlib

    doc = vmxlib.parse(text)
    sets, deletes = vmx_changes(settings)
    diff = [k for k, v in sets.items() if doc.get(k) != v]
    diff += [k for k in deletes if k in doc]
    return diff


def apply_to_vmx(path: Path, settings: CloneSettings | Mapping[str, str | None]) -> bool:
    """Apply the settings to the .vmx at `path` (atomic write; refused while the VM runs). True if changed."""
    from labctl.workstation.driver import VmxFiles

    sets, deletes = vmx_changes(settings)
    return bool(VmxFiles().reconfigure(Path(path), {**sets, **dict.fromkeys(deletes)}))


def ensure_linked_clone(
    driver: Driver,
    parent: Path,
    clone: Path,
    *,
    snapshot: str,
    settings: CloneSettings | Mapping[str, str | None],
    clone_name: str | None = None,
) -> list[str]:
    """Create `clone` as a linked clone of `parent` at `snapshot` (taken first when missing) and configure it.

    Idempotent: an existing clone only gets its .vmx settings checked. Returns what was done, as sentences.
    """
    done: list[str] = []
    if not Path(clone).exists():
        if snapshot not in driver.list_snapshots(parent):
            driver.snapshot(parent, snapshot)
            done.append(f"snapshot {snapshot!r} of {parent}")
        name = clone_name or (
            settings.get("displayName") if isinstance(settings, Mapping) else settings.display_name
        )
        driver.clone(parent, clone, snapshot=snapshot, clone_name=name or Path(clone).stem, linked=True)
        done.append(f"linked clone {clone} of {parent}@{snapshot}")
    sets, deletes = vmx_changes(settings)
    if driver.reconfigure(clone, {**sets, **dict.fromkeys(deletes)}):
        done.append(f"configured {clone} (static MACs, uuid.action=create, displayName)")
    return done


# ---- topology adapter ----------------------------------------------------------------------------------------
def nic_connection(network: Network) -> tuple[str, str | None, str | None]:
    """(connectionType, vnet, pvnID) for a topology network."""
    if network.type == "lan-segment":
        return "pvn", None, network.pvn_id
    if network.vmnet is not None:
        return "custom", f"vmnet{network.vmnet}", None
    if network.type == "nat":
        return "nat", None, None
    if network.type == "bridged":
        return "bridged", None, None
    return "hostonly", None, None


def settings_for_host(topology: Topology, host: EsxHost) -> Mapping[str, str | None]:
    """The clone's .vmx keys as `labctl render` plans them (one source of truth: `render.lab.clone_settings`)."""
    from labctl.render.lab import clone_settings

    return clone_settings(topology, host)


def typed_settings_for_host(topology: Topology, host: EsxHost) -> CloneSettings:
    """The same as plain values, with each vNIC's network connection too (for a clone whose source differs)."""
    nics = []
    for nic in host.nics:
        ctype, vnet, pvn = nic_connection(topology.network(nic.network))
        nics.append(NicSetting(nic.index, nic.mac, ctype, vnet, pvn))
    return CloneSettings(display_name=host.name, nics=tuple(nics))
