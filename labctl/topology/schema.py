"""The topology format as JSON Schema (published by `labctl schema`) and a small validator over it.

The validator implements the subset of JSON Schema this schema uses (type, properties, required,
additionalProperties (false or a schema), enum, pattern, items, minimum, maximum, anyOf) and reports *every* problem with its path,
so the loader can attach file:line:col to each.
"""

from __future__ import annotations

import re
from typing import Any

from labctl.errors import did_you_mean
from labctl.topology.loader import Path_, Problem
from labctl.topology.versions import WS_VERSION_PATTERN

NAME = {"type": "string", "pattern": r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
        "description": "lower-case letters, digits and '-' (used in VM names, MAC and pvnID derivation)"}
VMNAME = {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$", "description": "a VM name"}
IPV4 = {"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}$", "description": "an IPv4 address"}
CIDR = {"type": "string", "pattern": r"^\d{1,3}(\.\d{1,3}){3}/\d{1,2}$", "description": "an IPv4 subnet, e.g. 192.168.69.0/24"}
HOSTADDR = {"type": "string", "pattern": r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9._:-]{0,252}[A-Za-z0-9])?)$",
            "description": "a host name or IP address"}
MAC = {"type": "string", "pattern": r"^[0-9A-Fa-f]{2}(:[0-9A-Fa-f]{2}){5}$",
       "description": "a static MAC in 00:50:56:00:00:00-00:50:56:3F:FF:FF"}
NETREF = {"type": "string", "description": "the name of a network in `networks`"}
HOSTLIST = {"type": "array", "items": {"type": "string"}, "description": "names of ESX hosts in `esx_hosts`"}

INTERFACE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["network"],
    "properties": {
        "network": NETREF,
        "ip": {**IPV4, "description": "the address; omit to have labctl allocate a stable one"},
        "portgroup": {"type": "string", "description": "port group name (default: Management Network / VMkernel-<network>)"},
        "mac": MAC,
    },
}

NIC = {
    "anyOf": [
        NETREF,
        {"type": "object", "additionalProperties": False, "required": ["network"],
         "properties": {"network": NETREF, "mac": MAC}},
    ],
    "description": "a network name, or {network, mac} to pin the vNIC MAC",
}

SSH = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "user": {"type": "string", "description": "login user (default root)"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "password_env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$",
                         "description": "environment variable holding the password (never the password itself)"},
        "key_file": {"type": "string", "description": "private key file"},
        "jump": {"type": "string", "pattern": r"^([^@\s]+@)?[^@:\s]+(:\d+)?$",
                 "description": "user@host[:port] of an SSH server with a leg on the lab segment (ProxyJump)"},
    },
}

HOST_PROPS: dict[str, Any] = {
    "name": VMNAME,
    "flavor": {"enum": ["esx", "esxi"],
               "description": "esx = ESX classic 3.5-4.1 (service console, vswif); esxi = vmk only. ESX 9.x (VMware's "
                              "new name for ESXi) takes either"},
    "version": {"type": "string",
                "description": "esx: 3.5, 4.0, 4.1 (+uN); esxi: 3.5 to 8.0 (+uN), 9.0, 9.1 (+.N); as written or as "
                               "hosts print it: 7.0u3, '8.0 U3', 8.0.3, 8.0.2-0.40.23825572, 'VMware ESXi 8.0.2 "
                               "build-23825572', 9.0.0.0, 9.0.1"},
    "cpus": {"type": "integer", "minimum": 1, "maximum": 64},
    "memory_mb": {"type": "integer", "minimum": 256, "maximum": 1048576},
    "disk_gb": {"type": "integer", "minimum": 1, "maximum": 65536},
    "iso": {"type": "string", "description": "installer ISO (optional)"},
    "nics": {"type": "array", "items": NIC, "maxItems": 10, "description": "one vNIC per entry (ethernet0, ethernet1, ...)"},
    "management": {**INTERFACE, "description": "vswif0 (ESX classic) or vmk0 (ESXi)"},
    "vmkernel": {"type": "array", "items": INTERFACE, "description": "extra VMkernel ports (NFS, vMotion)"},
    "linked_clone_of": {"type": "string", "description": "linked clone of this host (inherits every key not given)"},
    "snapshot": {"type": "string", "description": "snapshot of the source the clone is made from (default base)"},
    "access_ip": {**IPV4, "description": "address labctl dials instead of the management IP (on a reachable network)"},
    "ssh": SSH,
    "install": {
        "type": "object",
        "additionalProperties": False,
        "description": "unattended install from `iso` (not for linked clones: they are cloned, never installed)",
        "properties": {
            "kickstart": {"type": "string",
                          "description": "auto (labctl's kickstart for the host's era, default) | none (install by hand "
                                         "at the installer console) | path to your own Jinja2 kickstart template"},
            "firstboot": {"type": "array", "items": {"type": "string"},
                          "description": "extra lines run at first boot as given: %firstboot (ESXi) or %post "
                                         "(ESX classic), one command per line"},
            "boot_options": {"type": "array", "items": {"type": "string", "pattern": r"^[^\s]+$"},
                             "description": "extra kernelopt words for the installer, e.g. allowLegacyCPU=true"},
        },
    },
}

TARGET: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["kind"],
    "description": "where the lab's VMs run: workstation (default: this machine's VMware Workstation) or vsphere "
                   "(a physical ESXi host or a vCenter, driven through the vSphere API)",
    "properties": {
        "kind": {"enum": ["workstation", "vsphere"]},
        "host": {**HOSTADDR, "description": "the vCenter or standalone ESXi host labctl deploys onto"},
        "port": {"type": "integer", "minimum": 1, "maximum": 65535, "description": "API port (default 443)"},
        "user": {"type": "string", "description": "API user, e.g. administrator@vsphere.local or root (default: "
                                                  "GOVC_USERNAME)"},
        "password_env": {**SSH["properties"]["password_env"],
                         "description": "environment variable holding the target's password (else GOVC_PASSWORD, "
                                        "else a prompt on a terminal)"},
        "insecure": {"type": "boolean", "description": "skip certificate checks (a self-signed lab vCenter/ESXi)"},
        "thumbprint": {"type": "string", "description": "pinned SHA-1 certificate thumbprint (AA:BB:...)"},
        "datacenter": {"type": "string", "description": "vCenter only: the datacenter (default: the only one)"},
        "cluster": {"type": "string", "description": "vCenter only: the cluster the nested VMs run in"},
        "esx_host": {"type": "string",
                     "description": "the physical host the nested VMs run on (vCenter: a host name in the inventory; "
                                    "with `cluster`, one of its hosts)"},
        "resource_pool": {"type": "string",
                          "description": "a resource pool path under the cluster's or host's root pool, e.g. labs/ha"},
        "datastore": {"type": "string", "description": "datastore for the VMs, the installer media and the OVA"},
        "folder": {"type": "string", "pattern": r"^[^/\\]+(/[^/\\]+)*$",
                   "description": "VM folder path under the datacenter's VM folder (default labctl/<lab>); labctl "
                                  "creates, changes and deletes nothing outside it"},
        "network_mode": {"enum": ["auto", "mac-learning", "promiscuous"],
                         "description": "how nested ESX gets frames for MACs the outer switch never assigned: "
                                        "mac-learning (a distributed switch 6.6+ on vSphere 6.7+), promiscuous "
                                        "(+ forged transmits + MAC changes), auto (mac-learning where supported)"},
        "dvswitch": {"type": "string",
                     "description": "vCenter only: create the lab's portgroups on this existing distributed switch "
                                    "(default: a standard vSwitch without uplinks on the target host)"},
        "portgroups": {"type": "object", "additionalProperties": {"type": "string"},
                       "description": "network name -> an existing portgroup to use as it is (required for nat, "
                                      "bridged and host-only networks; optional for a lan-segment)"},
        "vlans": {"type": "object", "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 4094},
                  "description": "network name -> VLAN ID of its portgroup on the distributed switch"},
        "disk_provisioning": {"enum": ["thin", "thick", "eager-zeroed-thick"],
                              "description": "virtual disks of the nested hosts and VMs (default thin)"},
        "appliance_ova": {"type": "string",
                          "description": "a Nested ESXi appliance OVA (file path) to import instead of installing "
                                         "from `iso`"},
        "template": {"type": "string",
                     "description": "an existing Nested ESXi VM template (inventory path) to clone instead of "
                                    "installing from `iso`"},
    },
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": "https://labctl.invalid/schema/topology.json",
    "title": "labctl topology",
    "description": "A nested ESX/ESXi lab inside VMware Workstation, or on a physical vSphere (`target`).",
    "type": "object",
    "additionalProperties": False,
    "required": ["lab", "esx_hosts"],
    "properties": {
        "lab": NAME,
        "workstation": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "version": {"type": "string", "pattern": WS_VERSION_PATTERN,
                            "description": "a Workstation release: 6.5-12, 14, 15.x, 16.x, 17.0/17.5/17.6(.N), or a "
                                           "calendar release 25H2, 25H2u1, 26H1 ... (default 17.5)"},
                "vm_dir": {"type": "string", "description": "each VM gets <vm_dir>/<name>/<name>.vmx (default ~/vmware/<lab>)"},
            },
        },
        "networks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "type"],
                "properties": {
                    "name": NAME,
                    "type": {"enum": ["lan-segment", "host-only", "nat", "bridged"]},
                    "subnet": CIDR,
                    "gateway": {**IPV4, "description": "omit: the segment has no gateway"},
                    "vmnet": {"type": "integer", "minimum": 0, "maximum": 255,
                              "description": "vmnet number (required for host-only; 0-19 portable, 20-255 Linux only)"},
                    "host_ip": {**IPV4, "description": "the host's virtual adapter on this vmnet (omit: private vmnet)"},
                    "dhcp": {"type": "boolean"},
                },
            },
        },
        "esx_hosts": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "object", "additionalProperties": False, "required": ["name"], "properties": HOST_PROPS},
        },
        "vms": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name"],
                "properties": {
                    "name": VMNAME,
                    "guest_os": {"type": "string", "description": "Workstation guestOS key, e.g. winxppro, otherlinux-64"},
                    "cpus": {"type": "integer", "minimum": 1, "maximum": 64},
                    "memory_mb": {"type": "integer", "minimum": 4, "maximum": 1048576},
                    "disk_gb": {"type": "integer", "minimum": 1, "maximum": 65536},
                    "iso": {"type": "string"},
                    "nics": {"type": "array", "items": NIC, "maxItems": 10},
                    "ip": IPV4,
                },
            },
        },
        "vcenter": {
            "type": "object",
            "additionalProperties": False,
            "required": ["host"],
            "properties": {
                "host": {**HOSTADDR, "description": "address of vCenter (often a VM of the lab): a host name or IP"},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "user": {"type": "string"},
                "password_env": SSH["properties"]["password_env"],
                "datacenter": {"type": "string"},
                "insecure": {"type": "boolean", "description": "skip certificate checks (lab vCenters)"},
                "thumbprint": {"type": "string", "description": "pinned SHA-1/SHA-256 certificate thumbprint"},
                "version": {"type": "string", "pattern": r"^\d+\.\d+(\.\d+){0,2}$",
                            "description": "the vCenter's API version, e.g. 4.1 or 8.0.2.0 (default: the vCenter of the "
                                           "newest host's release; 4.1 and older take the AAM HA keys)"},
            },
        },
        "ssh": SSH,
        "target": TARGET,
        "clusters": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "hosts"],
                "properties": {
                    "name": {"type": "string"},
                    "hosts": HOSTLIST,
                    "ha": {
                        "type": "object",
                        "additionalProperties": False,
                        "properties": {
                            "enabled": {"type": "boolean"},
                            "isolation_addresses": {"type": "array", "items": IPV4, "maxItems": 10},
                        },
                    },
                },
            },
        },
        "datastores": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["name", "server", "share", "hosts"],
                "properties": {
                    "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,41}$"},
                    "type": {"enum": ["nfs"]},
                    "server": HOSTADDR,
                    "share": {"type": "string", "pattern": r"^/"},
                    "hosts": HOSTLIST,
                    "readonly": {"type": "boolean"},
                },
            },
        },
        "vibs": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["hosts"],
                "properties": {
                    "file": {"type": "string", "description": "path to the .vib, relative to this file (file or "
                                                              "source is required)"},
                    "source": {"type": "string",
                               "description": "a VIB stage directory (descriptor.yaml + payloads/); labctl builds "
                                              "the VIB from it when it is missing or older than its sources: into "
                                              "`file`, or without `file` into the lab's state "
                                              "(<vm_dir>/.labctl/vibs/<stage dir name>.vib)"},
                    "hosts": HOSTLIST,
                    "allow_community": {"type": "boolean",
                                        "description": "lower the host acceptance level to CommunitySupported if needed"},
                },
            },
        },
    },
}

_TYPES = {
    "object": dict, "array": list, "string": str, "boolean": bool,
    "integer": int, "number": (int, float), "null": type(None),
}
_TYPE_WORDS = {dict: "a mapping", list: "a list", str: "a string", bool: "true/false", int: "an integer",
               float: "a number", type(None): "empty"}

SECRET_KEYS = {"password", "passwd", "secret", "private_key", "token"}


def _type_ok(value: Any, t: str) -> bool:
    if t in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, _TYPES[t])


def _describe(value: Any) -> str:
    return _TYPE_WORDS.get(type(value), type(value).__name__)


def check(value: Any, schema: dict[str, Any], path: Path_ = ()) -> list[Problem]:
    """Every schema problem of value, with paths."""
    out: list[Problem] = []
    if "anyOf" in schema:
        branches = schema["anyOf"]
        results = [check(value, b, path) for b in branches]
        if any(not r for r in results):
            return []
        # report the branch whose type matches, else a type summary
        for b, r in zip(branches, results):
            if "type" in b and _type_ok(value, b["type"]):
                return r
        kinds = " or ".join(_TYPE_WORDS[_TYPES[b["type"]]] for b in branches if "type" in b)
        return [Problem(path, f"expected {kinds}, got {_describe(value)}")]
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(str(x) for x in schema["enum"])
        hint = did_you_mean(value, [str(x) for x in schema["enum"]])
        return [Problem(path, f"must be one of: {allowed} (got {value!r})" + (f"; {hint}" if hint else ""))]
    t = schema.get("type")
    if t and not _type_ok(value, t):
        return [Problem(path, f"expected {_TYPE_WORDS[_TYPES[t]] if t != 'number' else 'a number'}, got {_describe(value)}")]
    if t == "object":
        props = schema.get("properties", {})
        for req in schema.get("required", []):
            if req not in value:
                out.append(Problem(path, f"missing required key '{req}'"))
        for k, v in value.items():
            if k in props:
                out.extend(check(v, props[k], path + (k,)))
            elif isinstance(schema.get("additionalProperties"), dict):
                out.extend(check(v, schema["additionalProperties"], path + (k,)))
            elif schema.get("additionalProperties") is False:
                if k.lower() in SECRET_KEYS or k.lower().endswith("password"):
                    out.append(Problem(path + (k,), "secrets are never stored in topology files: use password_env "
                                                    "(an environment variable), an SSH key_file or ssh-agent", key=True))
                else:
                    hint = did_you_mean(k, props)
                    known = hint or "known: " + ", ".join(sorted(props))
                    out.append(Problem(path + (k,), f"unknown key '{k}'; {known}", key=True))
    elif t == "array":
        if "minItems" in schema and len(value) < schema["minItems"]:
            out.append(Problem(path, f"needs at least {schema['minItems']} entr{'y' if schema['minItems'] == 1 else 'ies'}"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(Problem(path, f"at most {schema['maxItems']} entries allowed (got {len(value)})"))
        if "items" in schema:
            for i, item in enumerate(value):
                out.extend(check(item, schema["items"], path + (i,)))
    elif t == "string":
        pat = schema.get("pattern")
        if pat and not re.search(pat, value):
            out.append(Problem(path, f"{value!r} is not valid: {schema.get('description', 'pattern ' + pat)}"))
    elif t in ("integer", "number"):
        if "minimum" in schema and value < schema["minimum"]:
            out.append(Problem(path, f"must be at least {schema['minimum']} (got {value})"))
        if "maximum" in schema and value > schema["maximum"]:
            out.append(Problem(path, f"must be at most {schema['maximum']} (got {value})"))
    return out
