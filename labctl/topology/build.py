"""Turn a topology file into a validated `Topology`, or into every problem it has.

Order: YAML (with marks) → schema (unknown/missing keys, types) → clone inheritance → semantic rules → model.
Semantic rules run on raw data and are defensive about malformed parts, so one pass reports everything.
"""

from __future__ import annotations

import ipaddress
import stat
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labctl.errors import did_you_mean
from labctl.topology import addressing, limits, versions
from labctl.topology.loader import Marks, Path_, Problem, YamlSyntaxError, format_path, load_yaml_with_marks
from labctl.topology.model import (
    Cluster, Datastore, EsxHost, InstallSettings, Interface, Network, Nic, SshSettings, Topology, VCenter, VibSpec, Vm, VsphereTarget, Workstation,
)
from labctl.topology.schema import SCHEMA, check

DEFAULT_WS = "17.5"
# keys a linked clone never inherits from its source (`install`: a clone is cloned, never installed)
NOT_INHERITED = {"name", "linked_clone_of", "snapshot", "access_ip", "install"}


@dataclass
class LoadResult:
    filename: str
    topology: Topology | None
    problems: list[Problem]
    marks: Marks

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def formatted(self, severity: str | None = None) -> list[str]:
        ps = self.problems if severity is None else [p for p in self.problems if p.severity == severity]
        return [p.format(self.filename, self.marks) for p in ps]


def _net(s: str) -> ipaddress.IPv4Network | None:
    try:
        return ipaddress.ip_network(s, strict=False)  # type: ignore[return-value]
    except (ValueError, TypeError):
        return None


def _ip(s: Any) -> ipaddress.IPv4Address | None:
    try:
        return ipaddress.ip_address(s)  # type: ignore[return-value]
    except (ValueError, TypeError):
        return None


def _list(d: dict, key: str) -> list:
    v = d.get(key)
    return v if isinstance(v, list) else []


def _nic_network(n: Any) -> str | None:
    if isinstance(n, str):
        return n
    if isinstance(n, dict) and isinstance(n.get("network"), str):
        return n["network"]
    return None


def load(path: str | os.PathLike[str], *, text: str | None = None, display_name: str | None = None) -> LoadResult:
    """Load and validate; never raises for problems in the file (they are in `problems`)."""
    p = Path(path)
    filename = display_name or str(path)
    marks = Marks()
    if text is None:
        try:
            with p.open("rb") as f:
                raw = f.read(limits.MAX_BYTES + 1)  # a device or a huge file is never read whole
            limits.check_size(len(raw))
            text = raw.decode("utf-8")
        except FileNotFoundError:
            return LoadResult(filename, None, [Problem((), "no such file")], marks)
        except UnicodeDecodeError as e:
            marks.values[()] = (raw.count(b"\n", 0, e.start) + 1, e.start - raw.rfind(b"\n", 0, e.start))
            return LoadResult(filename, None, [Problem((), f"byte 0x{raw[e.start]:02x} is not UTF-8 text")], marks)
        except OSError as e:
            return LoadResult(filename, None, [Problem((), f"cannot read: {e}")], marks)
        except limits.LimitError as e:
            return LoadResult(filename, None, [Problem((), e.message)], marks)
    try:
        data, marks, problems = load_yaml_with_marks(text)
    except YamlSyntaxError as e:
        marks.values[()] = (e.line, e.col)
        return LoadResult(filename, None, [Problem((), e.message)], marks)
    if not isinstance(data, dict):
        problems.append(Problem((), "the topology must be a mapping with at least 'lab' and 'esx_hosts'"))
        return LoadResult(filename, None, problems, marks)
    problems += _with_quote_hints(check(data, SCHEMA), marks, text)
    v = _Validator(data, marks, p)
    rule_problems = v.run()
    problems = [x for x in problems if x.path not in v.superseded] + rule_problems
    topo = None
    if not any(x.severity == "error" for x in problems):
        topo = v.build([x.format(filename, marks) for x in problems if x.severity == "warning"])
    return LoadResult(filename, topo, problems, marks)


def _with_quote_hints(problems: list[Problem], marks: Marks, text: str) -> list[Problem]:
    """`version: 7.0` is a number to YAML: say how to write it as the string the schema wants."""
    from labctl.topology.yaml_errors import number_needs_quotes

    for p in problems:
        if p.message.startswith("expected a string, got a number") and p.path in marks.values:
            quoted = number_needs_quotes(text, *marks.values[p.path])
            if quoted:
                p.message = f"expected a string, got a number: quote it: {quoted}"
    return problems


class _Validator:
    def __init__(self, data: dict, marks: Marks, path: Path):
        self.d = data
        self.marks = marks
        self.path = path
        self.problems: list[Problem] = []
        self.hosts_raw: list[dict] = [h for h in _list(data, "esx_hosts")]
        self.resolved: dict[int, dict] = {}  # host index -> effective (inherited) mapping
        self.unknown_refs: dict[tuple[str, str], tuple[Problem, list[Path_]]] = {}  # (kind, name) -> first error
        self.superseded: set[Path_] = set()  # paths whose schema problem a clearer rule message replaces
        self.warned_cpu = False
        self.warned_name = False
        t = data.get("target")
        self.vsphere = isinstance(t, dict) and t.get("kind") == "vsphere"  # no Workstation host under the lab

    def err(self, path: Path_, msg: str, **kw: Any) -> None:
        self.problems.append(Problem(tuple(path), msg, **kw))

    def warn(self, path: Path_, msg: str) -> None:
        self.problems.append(Problem(tuple(path), msg, severity="warning"))

    # ---------------------------------------------------------------------------------------------------------
    def run(self) -> list[Problem]:
        self.networks = {}
        for i, n in enumerate(_list(self.d, "networks")):
            if isinstance(n, dict) and isinstance(n.get("name"), str):
                if n["name"] in self.networks:
                    self.err(("networks", i, "name"), f"duplicate network name '{n['name']}'")
                else:
                    self.networks[n["name"]] = (i, n)
        self._check_names()
        self._resolve_clones()
        self._check_networks()
        self._check_hosts()
        self._check_install()
        self._check_vms()
        self._check_ips()
        self._check_macs()
        self._check_clusters()
        self._check_datastores()
        self._check_vcenter_version()
        self._check_vibs()
        self._check_target()
        self._check_reachability()
        self._finish_unknown_refs()
        self._check_vm_dir()
        return self.problems

    def unknown_ref(self, kind: str, name: str, path: Path_, known: list[str]) -> None:
        """One error per mistyped name, at its first use; later uses are listed in it (no cascade)."""
        seen = self.unknown_refs.get((kind, name))
        if seen is not None:
            seen[1].append(tuple(path))
            return
        hint = did_you_mean(name, known)
        msg = f"unknown {kind} '{name}'" + (f"; {hint}" if hint else f" (known: {', '.join(known) or 'none'})")
        self.err(path, msg)
        self.unknown_refs[(kind, name)] = (self.problems[-1], [])

    def _finish_unknown_refs(self) -> None:
        for problem, more in self.unknown_refs.values():
            if more:
                lines = ", ".join(str(self.marks.at(p)[0]) for p in more)
                problem.message += f" (also used on line{'s' if len(more) > 1 else ''} {lines})"

    def _check_vm_dir(self) -> None:
        """vm_dir must be (or become) a directory: an existing file or device on its path is refused here, not
        half-way through `render`."""
        wsd = self.d.get("workstation")
        raw = wsd.get("vm_dir") if isinstance(wsd, dict) else None
        if not isinstance(raw, str):
            return
        if not raw.strip():
            self.err(("workstation", "vm_dir"), "is empty; omit it for the default ~/vmware/<lab>")
            return
        p = Path(os.path.expanduser(raw))
        p = p if p.is_absolute() else self.path.parent / p
        for d in (p, *p.parents):
            try:
                st = d.stat()
            except OSError:
                continue
            if not stat.S_ISDIR(st.st_mode):
                what = "a file" if stat.S_ISREG(st.st_mode) else "a device or other special file"
                self.err(("workstation", "vm_dir"), f"{d} is {what}, not a directory; each VM needs "
                                                    f"<vm_dir>/<name>/ under it")
            return

    def _check_names(self) -> None:
        seen: dict[str, str] = {}
        for section in ("esx_hosts", "vms"):
            for i, x in enumerate(_list(self.d, section)):
                if isinstance(x, dict) and isinstance(x.get("name"), str):
                    name = x["name"]
                    if name.lower() in seen:
                        self.err((section, i, "name"), f"duplicate VM name '{name}' (also {seen[name.lower()]})")
                    else:
                        seen[name.lower()] = f"{section}[{i}]"
        self.host_index = {h["name"]: i for i, h in enumerate(self.hosts_raw) if isinstance(h, dict)
                           and isinstance(h.get("name"), str)}
        for section in ("clusters", "datastores"):
            names: set[str] = set()
            for i, x in enumerate(_list(self.d, section)):
                if isinstance(x, dict) and isinstance(x.get("name"), str):
                    if x["name"] in names:
                        self.err((section, i, "name"), f"duplicate {section[:-1]} name '{x['name']}'")
                    names.add(x["name"])

    def _resolve_clones(self) -> None:
        for i, h in enumerate(self.hosts_raw):
            if not isinstance(h, dict):
                continue
            chain = [i]
            cur = h
            ok = True
            while isinstance(cur.get("linked_clone_of"), str):
                src = cur["linked_clone_of"]
                j = self.host_index.get(src)
                if j is None:
                    if cur is h:
                        hint = did_you_mean(src, [n for n in self.host_index if n != h.get("name")])
                        known = hint or "known hosts: " + (", ".join(self.host_index) or "none")
                        self.err(("esx_hosts", i, "linked_clone_of"), f"unknown clone source '{src}'; {known}")
                    ok = False
                    break
                if j in chain:
                    if cur is h or j == i:
                        names = " -> ".join(self.hosts_raw[k]["name"] for k in chain + [j])
                        self.err(("esx_hosts", i, "linked_clone_of"), f"clone cycle: {names}")
                    ok = False
                    break
                chain.append(j)
                cur = self.hosts_raw[j]
            eff: dict[str, Any] = {}
            for k in reversed(chain):
                src = self.hosts_raw[k]
                for key, val in src.items():
                    if k != i and key in NOT_INHERITED:
                        continue
                    if k != i and key in ("management",) and isinstance(val, dict):
                        val = {kk: vv for kk, vv in val.items() if kk not in ("ip", "mac")}
                    if k != i and key == "vmkernel" and isinstance(val, list):
                        val = [{kk: vv for kk, vv in x.items() if kk not in ("ip", "mac")} if isinstance(x, dict) else x
                               for x in val]
                    if k != i and key == "nics" and isinstance(val, list):
                        val = [_nic_network(x) or x for x in val]  # explicit MACs are not inherited
                    eff[key] = val
            eff["name"] = h.get("name")
            eff["_chain_ok"] = ok
            self.resolved[i] = eff

    def _check_networks(self) -> None:
        vmnets: dict[int, int] = {}
        subnets: list[tuple[int, ipaddress.IPv4Network]] = []
        for i, n in self.networks.values():
            base = ("networks", i)
            t = n.get("type")
            subnet = _net(n["subnet"]) if isinstance(n.get("subnet"), str) else None
            if isinstance(n.get("subnet"), str):
                if subnet is None:
                    self.err(base + ("subnet",), f"'{n['subnet']}' is not a valid subnet")
                else:
                    if str(subnet) != n["subnet"].strip() and "/" in n["subnet"]:
                        self.err(base + ("subnet",), f"'{n['subnet']}' has host bits set; did you mean {subnet}?")
                    subnets.append((i, subnet))
            if t == "lan-segment":
                for k in ("vmnet", "host_ip", "dhcp"):
                    if k in n:
                        self.err(base + (k,), f"a LAN segment has no '{k}' (it is not a vmnet; use type: host-only)",
                                 key=True)
            if t in ("host-only", "nat", "lan-segment") and "subnet" not in n:
                self.err(base, f"a {t} network needs a 'subnet'")
            vmnet = n.get("vmnet")
            if self.vsphere:
                continue  # vmnets, host_ip and DHCP are the Workstation host's: _check_target says what vSphere takes
            if t == "host-only" and "vmnet" not in n:
                self.err(base, "a host-only network needs 'vmnet' (a custom vmnet number, e.g. 2)")
            if t == "nat" and vmnet is None:
                vmnet = 8
            if t == "bridged" and vmnet is None:
                vmnet = 0
            if isinstance(vmnet, int) and not isinstance(vmnet, bool):
                if vmnet in vmnets:
                    other = self.d["networks"][vmnets[vmnet]]["name"]
                    self.err(base + ("vmnet",), f"vmnet{vmnet} is already used by network '{other}'")
                else:
                    vmnets[vmnet] = i
                if t == "host-only" and vmnet in (0, 8):
                    what = "bridged" if vmnet == 0 else "NAT"
                    self.err(base + ("vmnet",), f"vmnet{vmnet} is Workstation's {what} network; pick a custom vmnet (2-7, 9-19)")
                elif t == "host-only" and vmnet == 1:
                    self.warn(base + ("vmnet",), "vmnet1 is Workstation's default host-only network; the lab would change "
                                                 "its subnet and DHCP for every VM using it (prefer 2-7 or 9-19)")
                if 20 <= vmnet <= 255:
                    self.warn(base + ("vmnet",), f"vmnet{vmnet}: Workstation on Linux allows vmnet0-255, on Windows only "
                                                 "vmnet0-19; this topology will not work on a Windows host")
            if "host_ip" in n and t == "host-only" and subnet is None:
                self.err(base + ("host_ip",), "host_ip needs a subnet")
            if t in ("nat", "bridged") and "host_ip" in n:
                self.err(base + ("host_ip",), f"host_ip applies to host-only vmnets, not {t}", key=True)
        for a in range(len(subnets)):
            for b in range(a + 1, len(subnets)):
                ia, na = subnets[a]
                ib, nb = subnets[b]
                if na.overlaps(nb):
                    other = self.d["networks"][ia]["name"]
                    self.err(("networks", ib, "subnet"), f"{nb} overlaps {na} of network '{other}'")

    def _net_of(self, name: Any) -> dict | None:
        if isinstance(name, str) and name in self.networks:
            return self.networks[name][1]
        return None

    def _check_nic_refs(self, base: Path_, nics: list) -> list[str]:
        out = []
        for j, n in enumerate(nics):
            net = _nic_network(n)
            if net is None:
                continue
            p = base + ("nics", j) + (() if isinstance(n, str) else ("network",))
            if net not in self.networks:
                self.unknown_ref("network", net, p, list(self.networks))
            out.append(net)
        return out

    def _check_hosts(self) -> None:
        ws = versions.parse_ws_version(str((self.d.get("workstation") or {}).get("version", DEFAULT_WS))) \
            if isinstance(self.d.get("workstation", {}), dict) else None
        if isinstance(self.d.get("workstation"), dict) and "version" in self.d["workstation"]:
            wv = self.d["workstation"]["version"]
            parsed = versions.parse_ws_version(str(wv)) if isinstance(wv, str) else None
            if not isinstance(wv, str):
                ws = None  # not a string: the schema says so (and how to quote it)
            elif parsed is None or versions.hw_version(parsed) is None:
                self.superseded.add(("workstation", "version"))  # this message replaces the schema's pattern one
                self.err(("workstation", "version"), f"unknown Workstation release '{wv}' ({_ws_hint(str(wv))})")
                ws = None
        for i, h in enumerate(self.hosts_raw):
            if not isinstance(h, dict) or i not in self.resolved:
                continue
            e = self.resolved[i]
            base: Path_ = ("esx_hosts", i)
            if not e.get("_chain_ok", True):
                continue
            for req in ("flavor", "version", "management"):
                if req not in e:
                    self.err(base, f"missing required key '{req}'" + (" (not given here nor inherited)" if h.get("linked_clone_of") else ""))
            flavor, vtext = e.get("flavor"), e.get("version")
            v = None
            if flavor in ("esx", "esxi") and vtext is not None:
                vpath = base + ("version",) if "version" in h else base
                res = versions.resolve_esx(flavor, str(vtext))
                if res.error:
                    self.err(vpath, res.error)
                else:
                    v, flavor = res.version, res.flavor
                    if v.release >= (9, 0) and e.get("flavor") == "esxi" and not self.warned_name:
                        self.warned_name = True
                        self.warn(base + (("flavor",) if "flavor" in h else ()),
                                  f"VMware calls this release ESX {v.release[0]}.{v.release[1]} (ESXi was renamed ESX with "
                                  "9.0); flavor: esxi is accepted and means the same as flavor: esx here")
                    if v.release >= (9, 0) and not self.warned_cpu:
                        self.warned_cpu = True
                        self.warn(vpath, f"{versions.product_name(flavor, v)} {v.release[0]}.{v.release[1]} discontinued "
                                         "CPUs that ESXi 8 ran: on an older host CPU its installer stops at "
                                         f"\"CPU_SUPPORT ERROR\" ({versions.CPU_DEPRECATION_KB}); boot it with "
                                         "allowLegacyCPU=true (install.boot_options) to continue with a warning")
            if v is not None:
                m = versions.minimums(flavor, v)
                for key, minimum, unit in (("cpus", m.cpus, ""), ("memory_mb", m.memory_mb, " MB")):
                    val = e.get(key)
                    if isinstance(val, int) and not isinstance(val, bool) and val < minimum:
                        p = base + (key,) if key in h else base
                        self.err(p, f"{val}{unit} is below the installer minimum of {minimum}{unit} for {versions.product_name(flavor, v)} {v}: {m.why}")
                dg = e.get("disk_gb")
                if isinstance(dg, int) and not isinstance(dg, bool) and dg < m.disk_gb:
                    self.err(base + (("disk_gb",) if "disk_gb" in h else ()), f"{dg} GB is below the installer minimum of {m.disk_gb} GB: {m.why}")
                if ws is not None and not self.vsphere:
                    prob = versions.guest_support_problem(flavor, v, ws)
                    if prob:
                        sev, why = prob
                        p = base + (("version",) if "version" in h else ())
                        (self.err if sev == "error" else self.warn)(p, why)
                mem = e.get("memory_mb")
                if isinstance(mem, int) and mem % 4:
                    self.err(base + ("memory_mb",), "memory_mb must be a multiple of 4 (Workstation refuses others)")
            nics = _list(e, "nics")
            if not nics and "nics" not in e:
                self.err(base, "missing required key 'nics' (one network name per vNIC)")
            netnames = self._check_nic_refs(base, nics) if "nics" in h else [
                x for x in (_nic_network(n) for n in nics) if x]
            ifaces: list[tuple[Path_, dict]] = []
            mg = e.get("management")
            if isinstance(mg, dict):
                ifaces.append((base + ("management",) if "management" in h else base, mg))
            for j, vk in enumerate(_list(e, "vmkernel")):
                if isinstance(vk, dict):
                    ifaces.append((base + ("vmkernel", j) if "vmkernel" in h else base, vk))
            for p, iface in ifaces:
                net = iface.get("network")
                if not isinstance(net, str):
                    continue
                if net not in self.networks:
                    self.unknown_ref("network", net, p + ("network",), list(self.networks))
                elif any(n not in self.networks for n in netnames):
                    pass  # a mistyped nic network is already reported; this mismatch is only its echo
                elif net not in netnames:
                    have = ", ".join(netnames) or "none"
                    self.err(p + ("network",), f"network '{net}' is not among {h.get('name')}'s nics ({have}); add it to nics")
                else:
                    nd = self._net_of(net)
                    if nd and nd.get("type") == "bridged" and not nd.get("subnet") and "ip" not in iface:
                        self.err(p, f"network '{net}' has no subnet, so an ip must be given")
            if "access_ip" in h and isinstance(h["access_ip"], str):
                ips = [x[1].get("ip") for x in ifaces]
                if h["access_ip"] not in ips:
                    self.warn(base + ("access_ip",), f"{h['access_ip']} is not one of {h.get('name')}'s interface addresses; "
                                                     "labctl will dial it anyway")
                elif flavor == "esx" and isinstance(mg, dict) and h["access_ip"] != mg.get("ip"):
                    self.warn(base + ("access_ip",), "on ESX classic sshd listens on the service console (vswif) only, "
                                                     "not on VMkernel ports; use a vswif address or ssh.jump")

    def _check_install(self) -> None:
        """`install:` — what the era's installer can do unattended, the user's template, the lines it carries."""
        for i, h in enumerate(self.hosts_raw):
            if not isinstance(h, dict) or i not in self.resolved:
                continue
            base: Path_ = ("esx_hosts", i, "install")
            inst = h.get("install")
            if inst is not None and h.get("linked_clone_of") is not None:
                self.err(base, f"a linked clone is not installed: it is cloned from {h['linked_clone_of']} after that "
                               "host's install; put install: on the source host", key=True)
                continue
            if h.get("linked_clone_of") is not None:
                continue
            inst = inst if isinstance(inst, dict) else {}
            ks = inst.get("kickstart", "auto")
            e = self.resolved[i]
            v = versions.parse_esx_version(str(e.get("version"))) if e.get("version") is not None else None
            if isinstance(ks, str) and ks != "none" and v is not None and e.get("flavor") == "esxi" \
                    and v.release in ((3, 5), (4, 0)) and ("iso" in e or "install" in h):
                path = base + ("kickstart",) if "kickstart" in inst else (base if "install" in h else ("esx_hosts", i, "iso"))
                self.err(path, f"ESXi {v} has no scripted install (ESXi Installable {v.major}.{v.minor} reads no "
                               "kickstart; scripted installs start with ESXi 4.1): set install: {kickstart: none} and "
                               "install it at the installer console, or use ESXi 4.1 or later")
            if isinstance(ks, str) and ks not in ("auto", "none"):
                self._check_template(base + ("kickstart",), ks)
            for j, line in enumerate(_list(inst, "firstboot")):
                if not isinstance(line, str):
                    continue
                if "\n" in line or "\r" in line:
                    self.err(base + ("firstboot", j), "one command per entry: this line contains a line break")
                elif line.lstrip().startswith("%"):
                    self.err(base + ("firstboot", j), f"'{line.strip()}' would start a new kickstart section; "
                                                      "firstboot lines are commands run inside labctl's section")
            for j, word in enumerate(_list(inst, "boot_options")):
                if not isinstance(word, str):
                    continue
                if word.endswith("\n") and not any(c.isspace() for c in word[:-1]):  # what the schema's $ lets by
                    self.err(base + ("boot_options", j), f"{word!r}: one kernelopt word per entry (no line break)")
                elif word.lower().startswith("ks="):
                    self.err(base + ("boot_options", j), "labctl sets ks= itself (the kickstart CD); leave it out, or "
                                                         "set install: {kickstart: none} to boot the installer as is")

    def _check_template(self, path: Path_, text: str) -> None:
        fp = Path(self._file(text) or text)
        if not fp.is_file():
            what = "is a directory, not a template file" if fp.is_dir() else "does not exist"
            self.err(path, f"kickstart template {text} {what} ({fp}); use auto, none or the path of a Jinja2 "
                           "kickstart template")
            return
        try:
            fp.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as ex:
            self.err(path, f"cannot read kickstart template {fp}: {ex}")

    def _check_vms(self) -> None:
        for i, vm in enumerate(_list(self.d, "vms")):
            if not isinstance(vm, dict):
                continue
            base: Path_ = ("vms", i)
            self._check_nic_refs(base, _list(vm, "nics"))
            mem = vm.get("memory_mb")
            if isinstance(mem, int) and not isinstance(mem, bool) and mem % 4:
                self.err(base + ("memory_mb",), "memory_mb must be a multiple of 4 (Workstation refuses others)")
            if "ip" in vm and not _list(vm, "nics"):
                self.err(base + ("ip",), "a VM with an ip needs nics")

    def _iter_ips(self) -> list[tuple[Path_, str, str | None, str]]:
        """(path, ip, network name or None, description) for every address in the topology."""
        out = []
        for name, (i, n) in self.networks.items():
            for k in ("host_ip", "gateway"):
                if isinstance(n.get(k), str):
                    out.append((("networks", i, k), n[k], name, f"network {name} {k}"))
        for i, h in enumerate(self.hosts_raw):
            if not isinstance(h, dict):
                continue
            if isinstance(h.get("management"), dict) and isinstance(h["management"].get("ip"), str):
                out.append((("esx_hosts", i, "management", "ip"), h["management"]["ip"], h["management"].get("network"),
                            f"{h.get('name')} management"))
            for j, vk in enumerate(_list(h, "vmkernel")):
                if isinstance(vk, dict) and isinstance(vk.get("ip"), str):
                    out.append((("esx_hosts", i, "vmkernel", j, "ip"), vk["ip"], vk.get("network"), f"{h.get('name')} vmkernel[{j}]"))
        for i, vm in enumerate(_list(self.d, "vms")):
            if isinstance(vm, dict) and isinstance(vm.get("ip"), str):
                nets = [x for x in (_nic_network(n) for n in _list(vm, "nics")) if x]
                match = None
                ip = _ip(vm["ip"])
                for nn in nets:
                    nd = self._net_of(nn)
                    sn = _net(nd.get("subnet")) if nd and isinstance(nd.get("subnet"), str) else None
                    if ip and sn and ip in sn:
                        match = nn
                        break
                out.append((("vms", i, "ip"), vm["ip"], match if match else (nets[0] if nets else None), f"VM {vm.get('name')}"))
                if ip and match is None and any(self._net_of(nn) and self._net_of(nn).get("subnet") for nn in nets):
                    self.err(("vms", i, "ip"), f"{vm['ip']} is not inside the subnet of any of {vm.get('name')}'s networks ({', '.join(nets)})")
        return out

    def _check_ips(self) -> None:
        seen: dict[str, str] = {}
        for path, ipstr, netname, desc in self._iter_ips():
            ip = _ip(ipstr)
            if ip is None:
                self.err(path, f"'{ipstr}' is not a valid IPv4 address")
                continue
            nd = self._net_of(netname)
            sn = _net(nd.get("subnet")) if nd and isinstance(nd.get("subnet"), str) else None
            if sn is not None and path[0] != "vms":
                if ip not in sn:
                    self.err(path, f"{ip} is not inside {sn} (network '{netname}')")
                elif sn.prefixlen < 31 and ip in (sn.network_address, sn.broadcast_address):
                    kind = "network" if ip == sn.network_address else "broadcast"
                    self.err(path, f"{ip} is the {kind} address of {sn}")
            elif sn is not None and sn.prefixlen < 31 and ip in (sn.network_address, sn.broadcast_address):
                self.err(path, f"{ip} is the {'network' if ip == sn.network_address else 'broadcast'} address of {sn}")
            key = str(ip)
            if key in seen:
                self.err(path, f"duplicate IP {ip} (also {seen[key]})")
            else:
                seen[key] = desc
        self.ips_in_use = set(seen)

    def _check_macs(self) -> None:
        seen: dict[str, str] = {}
        for section in ("esx_hosts", "vms"):
            for i, x in enumerate(_list(self.d, section)):
                if not isinstance(x, dict):
                    continue
                for j, n in enumerate(_list(x, "nics")):
                    if isinstance(n, dict) and isinstance(n.get("mac"), str):
                        p = (section, i, "nics", j, "mac")
                        try:
                            mac = addressing.normalize_mac(n["mac"])
                        except ValueError:
                            continue  # schema already said
                        if not addressing.is_static_mac(mac):
                            self.err(p, f"{n['mac']} is outside the static range 00:50:56:00:00:00-00:50:56:3f:ff:ff "
                                        "(Workstation refuses it: 'is not an allowed static Ethernet address')")
                        if mac in seen:
                            self.err(p, f"duplicate MAC {mac} (also {seen[mac]})")
                        seen[mac] = f"{x.get('name')}/ethernet{j}"

    def _host_nets(self, name: str) -> list[str]:
        i = self.host_index.get(name)
        if i is None or i not in self.resolved:
            return []
        e = self.resolved[i]
        out = []
        if isinstance(e.get("management"), dict):
            out.append(e["management"].get("network"))
        out += [vk.get("network") for vk in _list(e, "vmkernel") if isinstance(vk, dict)]
        return [x for x in out if isinstance(x, str)]

    def _check_host_list(self, base: Path_, hosts: list) -> None:
        for j, hn in enumerate(hosts):
            if isinstance(hn, str) and hn not in self.host_index:
                self.unknown_ref("host", hn, base + (j,), list(self.host_index))

    def _check_clusters(self) -> None:
        member: dict[str, str] = {}
        vc = self.d.get("vcenter") if isinstance(self.d.get("vcenter"), dict) else None
        for i, c in enumerate(_list(self.d, "clusters")):
            if not isinstance(c, dict):
                continue
            base: Path_ = ("clusters", i)
            hosts = [h for h in _list(c, "hosts") if isinstance(h, str)]
            self._check_host_list(base + ("hosts",), _list(c, "hosts"))
            for j, hn in enumerate(hosts):
                if hn in member and member[hn] != c.get("name"):
                    self.err(base + ("hosts", j), f"host '{hn}' is already in cluster '{member[hn]}'")
                member.setdefault(hn, c.get("name"))
            ha = c.get("ha") if isinstance(c.get("ha"), dict) else {}
            mgmt_nets = []
            for hn in hosts:
                i2 = self.host_index.get(hn)
                e = self.resolved.get(i2) if i2 is not None else None
                if e and isinstance(e.get("management"), dict):
                    mgmt_nets.append(e["management"].get("network"))
            gwless = any(isinstance(self._net_of(n), dict) and not self._net_of(n).get("gateway") for n in mgmt_nets)
            seg_nets = {n for hn in hosts for n in self._host_nets(hn)}
            subnets = [(_net(self._net_of(n)["subnet"]), n) for n in seg_nets
                       if self._net_of(n) and isinstance(self._net_of(n).get("subnet"), str)]
            addrs = _list(ha, "isolation_addresses")
            for j, a in enumerate(addrs):
                ip = _ip(a)
                if ip is None:
                    continue
                on = [n for sn, n in subnets if sn is not None and ip in sn]
                if not on and gwless:
                    nets = ", ".join(sorted(seg_nets)) or "none"
                    self.err(base + ("ha", "isolation_addresses", j),
                             f"{ip} is not on any segment of the cluster's hosts ({nets}) and the management segment has "
                             "no gateway, so HA could never ping it")
            if ha.get("enabled", False) and gwless and not addrs:
                hint = ""
                if vc and isinstance(vc.get("host"), str) and _ip(vc["host"]):
                    hint = f" — e.g. ha: {{isolation_addresses: [{vc['host']}]}} (the vCenter)"
                self.warn(base + ("ha",), "HA is on but the management segment has no gateway, so every host would "
                                          "declare itself isolated; add an always-up address on the segment" + hint)

    def _check_vcenter_version(self) -> None:
        vc = self.d.get("vcenter")
        if not isinstance(vc, dict) or not isinstance(vc.get("version"), str):
            return
        want = tuple(int(x) for x in re.findall(r"\d+", vc["version"])[:2])
        for e in self.resolved.values():
            res = versions.resolve_esx(e.get("flavor", ""), str(e.get("version"))) if e.get("flavor") in ("esx", "esxi") \
                and e.get("version") is not None else None
            if res is None or res.version is None:
                continue
            if len(want) == 2 and want < versions.vcenter_release(res.version.release):
                self.warn(("vcenter", "version"), f"a vCenter of API {vc['version']} cannot manage {e.get('name')} "
                                                  f"({versions.product_name(res.flavor, res.version)} {res.version}): "
                                                  "vCenter must be at least as new as its hosts")
                return

    def _check_datastores(self) -> None:
        for i, ds in enumerate(_list(self.d, "datastores")):
            if not isinstance(ds, dict):
                continue
            base: Path_ = ("datastores", i)
            self._check_host_list(base + ("hosts",), _list(ds, "hosts"))
            ip = _ip(ds.get("server"))
            if ip is None:
                continue
            for j, hn in enumerate(_list(ds, "hosts")):
                if not isinstance(hn, str):
                    continue
                nets = self._host_nets(hn)
                ok = False
                for n in nets:
                    nd = self._net_of(n)
                    sn = _net(nd["subnet"]) if nd and isinstance(nd.get("subnet"), str) else None
                    if (sn and ip in sn) or (nd and nd.get("gateway")):
                        ok = True
                if nets and not ok:
                    self.warn(base + ("hosts", j), f"{hn} has no VMkernel port on a network that reaches NFS server {ip}; "
                                                   "add a vmkernel entry on that network")

    def _check_vibs(self) -> None:
        for i, vib in enumerate(_list(self.d, "vibs")):
            if not isinstance(vib, dict):
                continue
            self._check_host_list(("vibs", i, "hosts"), _list(vib, "hosts"))
            for j, hn in enumerate(_list(vib, "hosts")):
                e = self.resolved.get(self.host_index.get(hn, -1)) if isinstance(hn, str) else None
                v = versions.parse_esx_version(str(e.get("version"))) if e and e.get("version") else None
                if v is not None and v.release < (4, 0):
                    self.err(("vibs", i, "hosts", j), f"{hn} runs {e.get('flavor', 'esx').upper()} {v}: VIBs arrived with "
                                                      "vSphere 4.0 (ESX 3.5's esxupdate installs RPM bundles, not VIBs)")
            f = vib.get("file")
            if f is None and vib.get("source") is None:
                self.err(("vibs", i), "give `file` (a .vib or bundle) or `source` (a stage directory labctl builds "
                                      "into the lab's state), or both")
            if f is None and isinstance(vib.get("source"), str):
                self._check_vib_source(i, vib["source"])
            if isinstance(f, str):
                fp = Path(os.path.expanduser(f))
                if not fp.is_absolute():
                    fp = self.path.parent / fp
                if fp.suffix not in (".vib", ".zip"):
                    self.err(("vibs", i, "file"), f"'{f}' is not a .vib or offline bundle .zip")
                src = vib.get("source")
                if isinstance(src, str):
                    self._check_vib_source(i, src)
                elif not fp.exists():
                    self.warn(("vibs", i, "file"), f"{f} does not exist yet; build it with `labctl vib build STAGE_DIR "
                                                   f"-o {f}` or give `source: STAGE_DIR` so labctl builds it")

    def _check_vib_source(self, i: int, src: str) -> None:
        sp = Path(os.path.expanduser(src))
        sp = sp if sp.is_absolute() else self.path.parent / sp
        if not (sp / "descriptor.yaml").is_file() and not (sp / "descriptor.xml").is_file():
            self.err(("vibs", i, "source"), f"{src} is not a VIB stage directory (no descriptor.yaml or "
                                            "descriptor.xml in it)")

    def _check_target(self) -> None:
        """`target:` — what a vSphere target needs, and what has no meaning there (docs: README, "When one
        Workstation is not enough"): no Workstation host, so no vmnets, no host adapters, no Workstation release."""
        t = self.d.get("target")
        if not isinstance(t, dict):
            return
        base: Path_ = ("target",)
        if t.get("kind") == "workstation":
            for k in t:
                if k != "kind":
                    self.err(base + (k,), f"'{k}' is a vSphere target key; kind: workstation takes no other keys "
                                          "(this machine's Workstation, set under `workstation:`)", key=True)
            return
        if not self.vsphere:
            return  # an unknown kind: the schema says so
        for req in ("host", "datastore"):
            if req not in t:
                what = "the vCenter or ESXi host to deploy onto" if req == "host" else "where the VMs' files go"
                self.err(base, f"missing required key '{req}' ({what})")
        wsd = self.d.get("workstation")
        if isinstance(wsd, dict) and "version" in wsd:
            self.superseded.add(("workstation", "version"))
            self.err(("workstation", "version"), "a vSphere target runs no Workstation: the release has no meaning "
                                                 "here (the VMs' hardware version follows the target); remove it",
                     key=True)
        pgs = t.get("portgroups") if isinstance(t.get("portgroups"), dict) else {}
        vlans = t.get("vlans") if isinstance(t.get("vlans"), dict) else {}
        for section, mapping in (("portgroups", pgs), ("vlans", vlans)):
            for name in mapping:
                if name not in self.networks:
                    self.unknown_ref("network", name, base + (section, name), list(self.networks))
        for name, pg in pgs.items():
            if isinstance(pg, str) and not pg.strip():
                self.err(base + ("portgroups", name), "is empty: name an existing portgroup on the target")
        for name, (i, n) in self.networks.items():
            nb: Path_ = ("networks", i)
            ty = n.get("type")
            mapped = name in pgs
            if ty in ("host-only", "nat", "bridged") and not mapped:
                why = {"host-only": "a host-only vmnet is a network of the Workstation host, and a vSphere target "
                                    "has none",
                       "nat": "Workstation's NAT service does not exist on vSphere",
                       "bridged": "bridging is to this machine's LAN, which the target does not share"}[ty]
                self.err(nb + ("type",), f"{why}: map '{name}' to an existing portgroup (target.portgroups: "
                                         f"{{{name}: PORTGROUP}}) or make it a lan-segment (a private portgroup "
                                         "labctl creates)")
            if ty != "lan-segment":
                for k in ("vmnet", "dhcp"):
                    if k in n:
                        self.err(nb + (k,), f"'{k}' configures a Workstation vmnet; on a vSphere target '{name}' is "
                                            "a portgroup: remove it", key=True)
                if "host_ip" in n and not mapped:
                    self.err(nb + ("host_ip",), "host_ip is the Workstation host's adapter on a vmnet; a vSphere "
                                                f"target has no such host: map '{name}' to an existing portgroup this "
                                                "machine reaches (target.portgroups), then host_ip is this machine's "
                                                "address on it", key=True)
            if name in vlans and mapped and isinstance(pgs[name], str) and pgs[name].strip():
                self.err(base + ("vlans", name), f"'{name}' uses the existing portgroup '{pgs[name]}', which labctl "
                                                 "never changes: its VLAN is the portgroup's own", key=True)
        if vlans and "dvswitch" not in t:
            self.err(base + ("vlans",), "VLAN IDs apply to portgroups on a distributed switch (dvswitch); the "
                                        "standard vSwitch labctl creates has no uplinks, so its portgroups are private "
                                        "without one", key=True)
        if t.get("network_mode") == "mac-learning" and "dvswitch" not in t:
            self.err(base + ("network_mode",), "MAC learning is a distributed switch policy (vSphere 6.7+, VDS "
                                               "6.6+); without dvswitch labctl creates a standard vSwitch, which has "
                                               "none: set dvswitch: NAME, or network_mode: auto / promiscuous")
        if "dvswitch" in t and "esx_host" in t and "cluster" not in t:
            pass  # a DVS spans hosts; naming the host only picks placement
        if "appliance_ova" in t and "template" in t:
            self.err(base + ("template",), "give appliance_ova or template, not both (one source for the nested "
                                           "ESXi hosts)", key=True)
        ova = t.get("appliance_ova")
        if isinstance(ova, str):
            fp = Path(self._file(ova) or ova)
            if fp.suffix.lower() not in (".ova", ".ovf"):
                self.err(base + ("appliance_ova",), f"'{ova}' is not an .ova or .ovf file")
            elif not fp.is_file():
                self.warn(base + ("appliance_ova",), f"{ova} does not exist (yet): labctl imports it from {fp}")
        folder = t.get("folder")
        if isinstance(folder, str) and any(part in (".", "..") for part in folder.split("/")):
            self.superseded.add(base + ("folder",))
            self.err(base + ("folder",), f"'{folder}': a folder path has no '.' or '..' parts (labctl stays inside "
                                         "the folder it is given)")
        th = t.get("thumbprint")
        if isinstance(th, str):
            hexchars = "".join(c for c in th if c.isalnum())
            if len(hexchars) != 40 or any(c not in "0123456789abcdefABCDEF" for c in hexchars):
                self.err(base + ("thumbprint",), f"{th!r} is not a SHA-1 thumbprint (20 hex bytes, AA:BB:...:99)")

    def _reachable(self, net: str | None) -> bool:
        nd = self._net_of(net)
        if nd is None:
            return True
        t = nd.get("type")
        if t == "lan-segment":
            return False
        if t == "host-only":
            return "host_ip" in nd
        return True

    def _net_for_ip(self, ip: Any) -> str | None:
        a = _ip(ip)
        if a is None:
            return None
        for name, (_, nd) in self.networks.items():
            sn = _net(nd.get("subnet")) if isinstance(nd.get("subnet"), str) else None
            if sn and a in sn:
                return name
        return None

    def _check_reachability(self) -> None:
        top_jump = isinstance(self.d.get("ssh"), dict) and self.d["ssh"].get("jump")
        affected = []
        for i, h in enumerate(self.hosts_raw):
            if not isinstance(h, dict) or i not in self.resolved:
                continue
            e = self.resolved[i]
            jump = top_jump or (isinstance(e.get("ssh"), dict) and e["ssh"].get("jump"))
            if jump:
                continue
            if isinstance(h.get("access_ip"), str):
                net = self._net_for_ip(h["access_ip"])
            else:
                net = e["management"].get("network") if isinstance(e.get("management"), dict) else None
            if net and not self._reachable(net):
                affected.append((i, h.get("name"), net))
        if affected:
            names = ", ".join(f"{n} (on {net})" for _, n, net in affected)
            nd = self._net_of(affected[0][2]) or {}
            why = ("a LAN segment" if nd.get("type") == "lan-segment" else "a host-only vmnet without host_ip")
            if self.vsphere:
                self.warn(("esx_hosts", affected[0][0], "management"),
                          f"this machine cannot dial {names}: a lan-segment is a private portgroup on the vSphere "
                          "target (no uplinks), and this machine has no leg on it. Ways out: set ssh.jump: "
                          "user@host[:port] (an SSH server with a leg on the segment, e.g. a VM of the lab), or give "
                          "each host an access_ip on a network mapped to a portgroup this machine reaches "
                          "(target.portgroups). --sim is not affected.")
                why = ""
            if why:
                self.warn(("esx_hosts", affected[0][0], "management"),
                          f"this machine cannot dial {names}: {why} has no adapter on the Workstation host. Ways out: "
                          "give each host an access_ip on a reachable network (e.g. an ESXi VMkernel port on a "
                          "host-only vmnet with host_ip; on ESX classic sshd listens on the service console only), or "
                          "set ssh.jump: user@host[:port] (an SSH server with a leg on the segment). --sim is not "
                          "affected.")
        vc = self.d.get("vcenter")
        if isinstance(vc, dict) and isinstance(vc.get("host"), str):
            net = self._net_for_ip(vc["host"])
            if net and not self._reachable(net) and not top_jump:
                self.warn(("vcenter", "host"), f"this machine cannot reach the vCenter {vc['host']} on '{net}' "
                                               "(no host adapter there); use --vcenter URL with a reachable address, "
                                               "or give the network a host_ip")

    # ---------------------------------------------------------------------------------------------------------
    def _file(self, f: str | None) -> str | None:
        """A user path as Workstation needs it: `~` expanded, relative to the topology file, absolute."""
        if not f:
            return None
        p = Path(os.path.expanduser(f))
        return str(p if p.is_absolute() else (self.path.parent / p).resolve())

    def build(self, warnings: list[str]) -> Topology:
        d = self.d
        lab = d["lab"]
        wsd = d.get("workstation") or {}
        wsv = str(wsd.get("version", DEFAULT_WS))
        wsi = versions.parse_ws_version(wsv) or (17, 5)
        vm_dir = Path(os.path.expanduser(str(wsd.get("vm_dir", f"~/vmware/{lab}"))))
        if not vm_dir.is_absolute():
            vm_dir = (self.path.parent / vm_dir).resolve()
        workstation = Workstation(wsv, wsi, versions.hw_version(wsi) or 21, vm_dir)

        networks = []
        for n in _list(d, "networks"):
            t = n["type"]
            vmnet = n.get("vmnet", 8 if t == "nat" else 0 if t == "bridged" else None)
            subnet = str(_net(n["subnet"])) if n.get("subnet") else None
            networks.append(Network(
                name=n["name"], type=t, subnet=subnet, gateway=n.get("gateway"), vmnet=vmnet,
                host_ip=n.get("host_ip"), dhcp=bool(n.get("dhcp", t in ("nat",))),
                pvn_id=addressing.pvn_id(lab, n["name"]) if t == "lan-segment" else None,
            ))
        netmap = {n.name: n for n in networks}

        # MACs: explicit ones first, then derived for every other vNIC
        explicit: dict[str, str] = {}
        keys: list[str] = []
        vm_entries = [(self.resolved[i], True) for i in range(len(self.hosts_raw))] + [(v, False) for v in _list(d, "vms")]
        for e, _ in vm_entries:
            for j, n in enumerate(_list(e, "nics")):
                key = f"{e['name']}/{j}"
                if isinstance(n, dict) and n.get("mac"):
                    explicit[key] = addressing.normalize_mac(n["mac"])
                else:
                    keys.append(key)
        macs = dict(explicit)
        macs.update(addressing.allocate_macs(lab, keys, set(explicit.values())))

        def nics_of(e: dict) -> tuple[Nic, ...]:
            return tuple(Nic(j, _nic_network(n), macs[f"{e['name']}/{j}"], f"{e['name']}/{j}" in explicit)
                         for j, n in enumerate(_list(e, "nics")))

        # IPs: allocate missing management/vmkernel addresses per network
        taken = set(self.ips_in_use)
        want: dict[str, list[str]] = {}
        for i in range(len(self.hosts_raw)):
            e = self.resolved[i]
            ifs = [("mgmt", e["management"])] + [(f"vmk{j}", vk) for j, vk in enumerate(_list(e, "vmkernel"))]
            for tag, iface in ifs:
                if not iface.get("ip"):
                    want.setdefault(iface["network"], []).append(f"{e['name']}/{tag}")
        allocated: dict[str, str] = {}
        for net, ks in want.items():
            got = addressing.allocate_ips(lab, netmap[net].subnet, ks, taken)
            taken |= set(got.values())
            allocated.update(got)

        top_ssh = d.get("ssh") or {}

        def iface(e: dict, tag: str, raw: dict, default_pg: str) -> Interface:
            net = netmap[raw["network"]]
            ip = raw.get("ip") or allocated.get(f"{e['name']}/{tag}")
            return Interface(network=net.name, ip=ip, netmask=net.netmask or "255.255.255.0", gateway=net.gateway,
                             portgroup=raw.get("portgroup", default_pg),
                             mac=addressing.normalize_mac(raw["mac"]) if raw.get("mac") else None,
                             allocated=not raw.get("ip"))

        hosts = []
        for i, raw in enumerate(self.hosts_raw):
            e = self.resolved[i]
            res = versions.resolve_esx(e["flavor"], str(e["version"]))
            flavor, v = res.flavor, res.version
            m = versions.minimums(flavor, v)
            hs = {**top_ssh, **(e.get("ssh") or {})}
            mgmt_pg = "Service Console" if flavor == "esx" else "Management Network"
            hosts.append(EsxHost(
                name=e["name"], flavor=flavor, version=str(v), version_info=v,
                cpus=e.get("cpus", max(2, m.cpus)), memory_mb=e.get("memory_mb", max(m.memory_mb, 2048)),
                disk_gb=e.get("disk_gb", 40 if v.release >= (7, 0) else 16), iso=self._file(e.get("iso")),
                nics=nics_of(e),
                management=iface(e, "mgmt", e["management"], mgmt_pg),
                vmkernel=tuple(iface(e, f"vmk{j}", vk, f"VMkernel-{vk['network']}")
                               for j, vk in enumerate(_list(e, "vmkernel"))),
                linked_clone_of=raw.get("linked_clone_of"), snapshot=raw.get("snapshot", "base"),
                access_ip=raw.get("access_ip"),
                ssh=SshSettings(user=hs.get("user", "root"), port=hs.get("port", 22), password_env=hs.get("password_env"),
                                key_file=hs.get("key_file"), jump=hs.get("jump")),
                vmx_path=vm_dir / e["name"] / f"{e['name']}.vmx",
                install=None if raw.get("linked_clone_of") else _install_settings(raw.get("install") or {}, self._file),
            ))
        vms = tuple(Vm(name=v["name"], guest_os=v.get("guest_os", "other"), cpus=v.get("cpus", 1),
                       memory_mb=v.get("memory_mb", 1024), disk_gb=v.get("disk_gb", 16), iso=self._file(v.get("iso")),
                       nics=nics_of(v), ip=v.get("ip"), vmx_path=vm_dir / v["name"] / f"{v['name']}.vmx")
                    for v in _list(d, "vms"))
        vcd = d.get("vcenter")
        vcenter = None
        if isinstance(vcd, dict):
            newest = max((h.version_info for h in hosts), key=lambda v: (v.major, v.minor, v.update))
            vcenter = VCenter(host=vcd["host"], port=vcd.get("port", 443), user=vcd.get("user", "administrator"),
                              password_env=vcd.get("password_env"), datacenter=vcd.get("datacenter", "Lab"),
                              insecure=bool(vcd.get("insecure", False)), thumbprint=vcd.get("thumbprint"),
                              api_version=str(vcd["version"]) if vcd.get("version") else versions.vcenter_api(newest),
                              api_version_given=bool(vcd.get("version")))
        hostmap = {h.name: h for h in hosts}
        clusters = []
        for c in _list(d, "clusters"):
            ha = c.get("ha") or {}
            gwless = any(netmap[hostmap[h].management.network].gateway is None for h in c["hosts"])
            clusters.append(Cluster(c["name"], tuple(c["hosts"]), bool(ha.get("enabled", False)),
                                    tuple(ha.get("isolation_addresses", ())), gwless))
        datastores = tuple(Datastore(x["name"], x.get("type", "nfs"), x["server"], x["share"], tuple(x["hosts"]),
                                     bool(x.get("readonly", False))) for x in _list(d, "datastores"))
        vibs = []
        for x in _list(d, "vibs"):
            fp = Path(os.path.expanduser(x["file"])) if x.get("file") is not None else None
            if fp is not None and not fp.is_absolute():
                fp = (self.path.parent / fp)
            src = Path(self._file(x["source"])) if x.get("source") else None
            vibs.append(VibSpec(fp, tuple(x["hosts"]), bool(x.get("allow_community", False)), src))
        td = d.get("target") or {}
        target = None
        if td.get("kind") == "vsphere":
            target = VsphereTarget(
                host=td["host"], datastore=td["datastore"], folder=td.get("folder", f"labctl/{lab}"),
                port=td.get("port", 443), user=td.get("user"), password_env=td.get("password_env"),
                insecure=bool(td.get("insecure", False)), thumbprint=td.get("thumbprint"),
                datacenter=td.get("datacenter"), cluster=td.get("cluster"), esx_host=td.get("esx_host"),
                resource_pool=td.get("resource_pool"), network_mode=td.get("network_mode", "auto"),
                dvswitch=td.get("dvswitch"), portgroups=tuple(sorted((td.get("portgroups") or {}).items())),
                vlans=tuple(sorted((td.get("vlans") or {}).items())),
                disk_provisioning=td.get("disk_provisioning", "thin"), appliance_ova=self._file(td.get("appliance_ova")),
                template=td.get("template"))
        return Topology(
            target=target,
            lab=lab, path=self.path.resolve(), workstation=workstation, networks=tuple(networks), esx_hosts=tuple(hosts),
            vms=vms, vcenter=vcenter,
            ssh=SshSettings(user=top_ssh.get("user", "root"), port=top_ssh.get("port", 22),
                            password_env=top_ssh.get("password_env"), key_file=top_ssh.get("key_file"),
                            jump=top_ssh.get("jump")),
            clusters=tuple(clusters), datastores=datastores, vibs=tuple(vibs), warnings=tuple(warnings),
        )


def _install_settings(d: dict, resolve) -> InstallSettings:
    ks = d.get("kickstart", "auto")
    return InstallSettings(kickstart=ks if ks in ("auto", "none") else resolve(ks),
                           firstboot=tuple(d.get("firstboot", ())), boot_options=tuple(d.get("boot_options", ())))


def supported(flavor: str) -> str:
    return versions.supported_list(flavor)


def _ws_hint(text: str) -> str:
    """Why a Workstation release is unknown, with the closest real one."""
    import difflib

    names = ["6.5", "7.1", "8", "9", "10", "11", "12", "14", "15", "15.5", "16", "16.1", "16.2", "17", "17.5", "17.6",
             "25H2", "25H2u1"]
    if text.strip() in ("13",):
        return "there is no Workstation 13; 12 was followed by 14"
    if versions._WS_CALENDAR.match(text.strip()):
        return "calendar releases began with 25H2 (after 17.6); did you mean 25H2?"
    m = versions._WS_NUMBERED.match(text.strip())
    if m and 18 <= int(m.group(1)) <= 24:
        return "there is no Workstation 18-24: 17.6 was followed by the calendar release 25H2"
    near = difflib.get_close_matches(text.strip(), names, n=1, cutoff=0.5)
    return "releases: 6.5-12, 14, 15.x, 16.x, 17.0, 17.5, 17.6, then 25H2, 25H2u1, 26H1 ..." + (
        f"; did you mean {near[0]}?" if near else "")


__all__ = ["LoadResult", "load", "format_path"]
