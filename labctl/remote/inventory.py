"""The lab's hosts for other tools (`labctl inventory`): an ansible inventory (YAML or INI) or JSON.

The core (`InventoryHost`, `build`, `to_yaml`, `to_ini`, `to_json`) takes plain values; `from_topology` is the
thin adapter. No secret ever appears: a password is referenced by its environment variable's name
(`{{ lookup('env', 'LAB_ESX_PASSWORD') }}` for ansible, `password_env` in JSON).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from labctl.errors import EnvironmentProblem

# ---- the core -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InventoryHost:
    name: str
    kind: str  # esx | esxi | vm
    address: str | None  # what ansible dials
    port: int | None = None
    user: str | None = None
    password_env: str | None = None
    key_file: str | None = None
    jump: str | None = None
    known_hosts: str | None = None  # --sim: the simulator's pinned host keys
    ssh_options: tuple[str, ...] = ()  # OpenSSH `-o` values this host needs (legacy algorithms on ESX 3.5/4.x)
    facts: dict = field(default_factory=dict, compare=False)  # flavour, version, management/vmkernel IPs ...


@dataclass(frozen=True)
class Inventory:
    lab: str
    hosts: tuple[InventoryHost, ...]
    groups: dict  # group name -> tuple of host names (ordered)
    vars: dict  # lab-wide variables (vCenter address, lab name)
    sim: bool = False


def group_name(text: str) -> str:
    """An ansible-safe group name: letters, digits and underscores, not starting with a digit."""
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if name and not name[0].isdigit() else "_" + name


def build(
    lab: str, hosts: list[InventoryHost], clusters: dict[str, list[str]], lab_vars: dict, *, sim: bool = False
):
    groups: dict[str, tuple[str, ...]] = {}
    for kind in ("esx", "esxi"):
        members = tuple(h.name for h in hosts if h.kind == kind)
        if members:
            groups[kind] = members
    for cname, members in clusters.items():
        groups[group_name(f"cluster_{cname}")] = tuple(members)
    vms = tuple(h.name for h in hosts if h.kind == "vm")
    if vms:
        groups["vms"] = vms
    return Inventory(lab, tuple(hosts), groups, dict(lab_vars), sim)


def _ansible_vars(h: InventoryHost) -> dict:
    out: dict = {}
    if h.address:
        out["ansible_host"] = h.address
    if h.port is not None:
        out["ansible_port"] = h.port
    if h.user:
        out["ansible_user"] = h.user
    if h.password_env:
        out["ansible_password"] = "{{ lookup('env', '%s') }}" % h.password_env
    if h.key_file:
        out["ansible_ssh_private_key_file"] = h.key_file
    ssh_args = []
    if h.jump:
        ssh_args.append(f"-o ProxyJump={h.jump}")
    if h.known_hosts:
        ssh_args.append(f"-o UserKnownHostsFile={h.known_hosts} -o StrictHostKeyChecking=yes")
    ssh_args += [f"-o {opt}" for opt in h.ssh_options]
    if ssh_args:
        out["ansible_ssh_common_args"] = " ".join(ssh_args)
    out.update(h.facts)
    return out


def _lab_group(inv: Inventory) -> str:
    return group_name(f"lab_{inv.lab}")


def to_ansible_dict(inv: Inventory) -> dict:
    """The ansible YAML inventory structure (all -> lab group -> kind/cluster groups)."""
    by_name = {h.name: h for h in inv.hosts}
    children: dict = {}
    placed: set[str] = set()
    for gname, members in inv.groups.items():
        hosts: dict = {}
        for m in members:
            if m not in by_name:
                continue
            hosts[m] = _ansible_vars(by_name[m]) if m not in placed else None
            placed.add(m)
        children[gname] = {"hosts": hosts}
    lab = {"vars": dict(inv.vars), "children": children} if inv.vars else {"children": children}
    return {"all": {"children": {_lab_group(inv): lab}}}


def _yaml_scalar_safe(doc):
    """pyyaml writes `None` as `null`; an ansible host entry without vars is written as an empty mapping."""
    if isinstance(doc, dict):
        return {k: ({} if v is None else _yaml_scalar_safe(v)) for k, v in doc.items()}
    return doc


def to_yaml(inv: Inventory) -> str:
    import yaml

    header = f"# ansible inventory for lab {inv.lab}, written by labctl" + (
        " (simulated lab)" if inv.sim else ""
    )
    body = yaml.safe_dump(_yaml_scalar_safe(to_ansible_dict(inv)), sort_keys=False, default_flow_style=False)
    return header + "\n" + body


def _ini_value(value) -> str:
    text = str(value)
    if re.fullmatch(r"[A-Za-z0-9_./:@%+~-]+", text):
        return text
    if "'" not in text:
        return f"'{text}'"
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_ini(inv: Inventory) -> str:
    by_name = {h.name: h for h in inv.hosts}
    out = [
        f"# ansible inventory for lab {inv.lab}, written by labctl" + (" (simulated lab)" if inv.sim else "")
    ]
    placed: set[str] = set()
    for gname, members in inv.groups.items():
        out.append(f"\n[{gname}]")
        for m in members:
            if m not in by_name:
                continue
            if m in placed:
                out.append(m)
                continue
            placed.add(m)
            pairs = [
                f"{k}={_ini_value(json.dumps(v) if isinstance(v, (list, dict)) else v)}"
                for k, v in _ansible_vars(by_name[m]).items()
            ]
            out.append(" ".join([m, *pairs]))
    lab = _lab_group(inv)
    out.append(f"\n[{lab}:children]")
    out += list(inv.groups)
    if inv.vars:
        out.append(f"\n[{lab}:vars]")
        out += [f"{k}={_ini_value(v)}" for k, v in inv.vars.items()]
    return "\n".join(out) + "\n"


def to_json(inv: Inventory) -> str:
    hosts = []
    for h in inv.hosts:
        entry = {
            "name": h.name,
            "kind": h.kind,
            "address": h.address,
            "port": h.port,
            "user": h.user,
            "password_env": h.password_env,
            "key_file": h.key_file,
            "jump": h.jump,
            "groups": [g for g, members in inv.groups.items() if h.name in members],
        }
        if h.known_hosts:
            entry["known_hosts"] = h.known_hosts
        if h.ssh_options:
            entry["ssh_options"] = list(h.ssh_options)
        entry.update(h.facts)
        hosts.append(entry)
    doc = {
        "lab": inv.lab,
        "sim": inv.sim,
        "vars": inv.vars,
        "groups": {k: list(v) for k, v in inv.groups.items()},
    }
    doc["hosts"] = hosts
    return json.dumps(doc, indent=2) + "\n"


# ---- adapter: Topology (+ simulated endpoints) -> Inventory ----------------------------------------------
@dataclass(frozen=True)
class SimEndpoints:
    """What --sim needs from `<sim dir>/endpoints.json` (shared contract 2)."""

    hosts: dict  # host name -> (host, port)
    known_hosts: str | None = None
    identity_file: str | None = None


def from_topology(t, sim: SimEndpoints | None = None) -> Inventory:
    from labctl.remote.hosts import openssh_options

    hosts: list[InventoryHost] = []
    for h in t.esx_hosts:
        facts = {
            "esx_flavor": h.flavor,
            "esx_version": h.version,
            "esx_management_ip": h.management.ip,
            "esx_vmkernel_ips": [v.ip for v in h.vmkernel],
        }
        if h.linked_clone_of:
            facts["esx_linked_clone_of"] = h.linked_clone_of
        address, port = h.address, h.ssh.port
        key_file, jump, known = h.ssh.key_file, h.ssh.jump, None
        if sim is not None:
            if h.name not in sim.hosts:
                raise EnvironmentProblem(
                    f"{h.name} is not in the simulated lab's endpoints",
                    hint=f"restart the simulated lab: labctl sim up {t.path}",
                )
            address, port = sim.hosts[h.name]
            key_file, jump, known = sim.identity_file or key_file, None, sim.known_hosts
            facts["esx_real_address"] = h.address
        v = h.version_info
        options = openssh_options(h.flavor, (v.major, v.minor, v.update))
        if sim is not None:  # dialled at a loopback port, its key pinned under the lab address
            options = (f"HostKeyAlias={h.address}", *options)
        hosts.append(
            InventoryHost(
                h.name, h.flavor, address, port, h.ssh.user, h.ssh.password_env, key_file, jump, known,
                options, facts
            )
        )
    for vm in t.vms:
        hosts.append(
            InventoryHost(vm.name, "vm", vm.ip if sim is None else None, facts={"guest_os": vm.guest_os})
        )
    lab_vars: dict = {"labctl_lab": t.lab}
    if t.vcenter is not None:
        lab_vars["vcenter_host"] = t.vcenter.host
        lab_vars["vcenter_user"] = t.vcenter.user
        lab_vars["vcenter_datacenter"] = t.vcenter.datacenter
        if t.vcenter.password_env:
            lab_vars["vcenter_password_env"] = t.vcenter.password_env
    clusters = {c.name: list(c.hosts) for c in t.clusters}
    return build(t.lab, hosts, clusters, lab_vars, sim=sim is not None)


def load_sim_endpoints(directory: Path, topology_file: str) -> SimEndpoints:
    """Read endpoints.json (the documented shape; labctl.sim.endpoints validates the same file)."""
    path = directory / "endpoints.json"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise EnvironmentProblem(
            f"no simulated lab at {directory} (no endpoints.json)",
            hint=f"start it: labctl sim up {topology_file}",
        ) from None
    except (OSError, ValueError) as e:
        raise EnvironmentProblem(f"cannot read {path}: {e}") from e
    hosts = {}
    for name, entry in (data.get("hosts") or {}).items():
        if isinstance(entry, dict) and entry.get("port"):
            hosts[name] = (str(entry.get("host") or "127.0.0.1"), int(entry["port"]))
    return SimEndpoints(hosts, data.get("known_hosts"), data.get("identity_file"))
