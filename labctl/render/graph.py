"""A picture of the lab: Mermaid text, Graphviz DOT, and a built-in SVG layout (no Graphviz needed).

The core works on a small plain model (`LabGraph`: networks, nodes with their attachments, clusters,
datastores) that `from_topology` builds from a Topology; renderers are pure functions of that model and are
deterministic (same topology, same bytes). `dot_to_svg` runs Graphviz when it is installed.

Built-in SVG layout: the networks are horizontal bus lines, half above and half below one row of boxes (ESX
hosts grouped by cluster, cluster members inside a grouping rectangle, then the other VMs, then this machine
when it has a leg on a lab network). Each attachment is a vertical drop line from its box to its bus, in the
network's colour, with a dot where it joins; lines crossing another bus without a dot are not connected.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from xml.sax.saxutils import escape as _xml_escape

__all__ = [
    "Attachment",
    "ClusterBox",
    "DatastoreNode",
    "LabGraph",
    "NetNode",
    "Node",
    "dot_to_svg",
    "from_topology",
    "to_dot",
    "to_mermaid",
    "to_svg",
]

WORKSTATION_NODE = "workstation-host"


# ---- the model ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetNode:
    name: str
    kind: str  # lan-segment | host-only | nat | bridged
    subnet: str | None = None
    vmnet: int | None = None
    host_ip: str | None = None
    gateway: str | None = None
    dhcp: bool = False

    @property
    def summary(self) -> str:
        """`vmnet2 host-only · 10.10.10.0/24 · host 10.10.10.1 · no gateway`"""
        kind = {
            "lan-segment": "LAN segment",
            "host-only": "host-only",
            "nat": "NAT",
            "bridged": "bridged",
        }.get(self.kind, self.kind)
        parts = [f"vmnet{self.vmnet} {kind}" if self.vmnet is not None else kind]
        if self.subnet:
            parts.append(self.subnet)
        if self.kind == "host-only":
            parts.append(f"host {self.host_ip}" if self.host_ip else "private (no host adapter)")
        if self.dhcp:
            parts.append("DHCP")
        parts.append(f"gateway {self.gateway}" if self.gateway else "no gateway")
        return " · ".join(parts)


@dataclass(frozen=True)
class Attachment:
    network: str
    label: str = ""  # e.g. "vswif0 192.168.69.11"


@dataclass(frozen=True)
class Node:
    name: str
    kind: str  # esx | vm | host
    lines: tuple[str, ...] = ()  # text under the name
    attachments: tuple[Attachment, ...] = ()
    clone_of: str | None = None
    snapshot: str | None = None


@dataclass(frozen=True)
class ClusterBox:
    name: str
    members: tuple[str, ...]
    notes: tuple[str, ...] = ()

    @property
    def title(self) -> str:
        return " · ".join((f"cluster {self.name}", *self.notes))


@dataclass(frozen=True)
class DatastoreNode:
    name: str
    label: str  # "NFS 10.10.10.1:/export/lab"
    hosts: tuple[str, ...]
    served_by: str | None = None  # a node name (this machine or a VM) when the server is one of ours


@dataclass(frozen=True)
class LabGraph:
    lab: str
    title: str
    networks: tuple[NetNode, ...]
    nodes: tuple[Node, ...]
    clusters: tuple[ClusterBox, ...] = ()
    datastores: tuple[DatastoreNode, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def network(self, name: str) -> NetNode:
        return next(n for n in self.networks if n.name == name)


# ---- adapter: Topology -> LabGraph ------------------------------------------------------------------------
def _in_subnet(ip: str | None, subnet: str | None) -> bool:
    if not ip or not subnet:
        return False
    try:
        return ipaddress.ip_address(ip) in ipaddress.ip_network(subnet, strict=False)
    except ValueError:
        return False


def _mem(mb: int) -> str:
    return f"{mb // 1024} GB" if mb % 1024 == 0 else f"{mb} MB"


def from_topology(t) -> LabGraph:
    """Build the picture's model from a `labctl.topology.Topology`."""
    networks = tuple(
        NetNode(n.name, n.type, n.subnet, n.vmnet, n.host_ip, n.gateway, bool(n.dhcp)) for n in t.networks
    )
    vc = t.vcenter
    datastore_of: dict[str, list[str]] = {}
    for ds in t.datastores:
        for h in ds.hosts:
            datastore_of.setdefault(h, []).append(ds.name)
    in_cluster = {h for c in t.clusters for h in c.hosts}

    nodes: list[Node] = []
    for h in t.esx_hosts:
        lines = [f"{h.label} · {h.cpus} vCPU · {_mem(h.memory_mb)}"]
        if h.linked_clone_of:
            lines.append(f"linked clone of {h.linked_clone_of} @ {h.snapshot}")
        attachments: list[Attachment] = []
        mgmt = h.management_name
        vmk_start = 0 if h.flavor == "esx" else 1
        interfaces = [(mgmt, h.management)] + [(f"vmk{i + vmk_start}", v) for i, v in enumerate(h.vmkernel)]
        for name, iface in interfaces:
            lines.append(f"{name} {iface.ip} ({iface.network})")
        if h.access_ip:
            lines.append(f"access {h.access_ip}")
        for ds in datastore_of.get(h.name, []):
            lines.append(f"datastore {ds}")
        seen: set[str] = set()
        for nic in h.nics:
            if nic.network in seen:
                continue
            seen.add(nic.network)
            labels = [f"{name} {iface.ip}" for name, iface in interfaces if iface.network == nic.network]
            attachments.append(Attachment(nic.network, ", ".join(labels) or f"ethernet{nic.index}"))
        nodes.append(Node(h.name, "esx", tuple(lines), tuple(attachments), h.linked_clone_of, h.snapshot))
    # cluster members first, in cluster order, then the other hosts (keeps a cluster's boxes together)
    order = [m for c in t.clusters for m in c.hosts]
    order += [n.name for n in nodes if n.name not in in_cluster]
    by_name = {n.name: n for n in nodes}
    nodes = [by_name[name] for name in dict.fromkeys(order) if name in by_name]

    for vm in t.vms:
        lines = [f"{vm.guest_os} · {vm.cpus} vCPU · {_mem(vm.memory_mb)}"]
        is_vc = vc is not None and vm.ip is not None and vm.ip == vc.host
        if vm.ip:
            lines.append(f"ip {vm.ip}")
        if is_vc:
            lines.append(f"vCenter · datacenter {vc.datacenter}")
        attachments = []
        seen = set()
        for nic in vm.nics:
            if nic.network in seen:
                continue
            seen.add(nic.network)
            net = t.network(nic.network)
            label = vm.ip if _in_subnet(vm.ip, net.subnet) else f"ethernet{nic.index}"
            attachments.append(Attachment(nic.network, label or ""))
        nodes.append(Node(vm.name, "vm", tuple(lines), tuple(attachments)))

    # this machine: on host-only vmnets with an adapter, and on NAT/bridged networks
    host_legs = [
        Attachment(n.name, n.host_ip or n.type)
        for n in t.networks
        if (n.type == "host-only" and n.host_ip) or n.type in ("nat", "bridged")
    ]
    datastores = []
    host_serves: list[str] = []
    for ds in t.datastores:
        served_by = None
        if any(n.host_ip == ds.server for n in t.networks):
            served_by = WORKSTATION_NODE
            host_serves.append(f"NFS export {ds.share} → {ds.name}")
        else:
            served_by = next((v.name for v in t.vms if v.ip == ds.server), None)
        ro = " (read-only)" if ds.readonly else ""
        datastores.append(
            DatastoreNode(
                ds.name, f"{ds.type.upper()} {ds.server}:{ds.share}{ro}", tuple(ds.hosts), served_by
            )
        )
    if host_legs:
        lines = [f"VMware Workstation {t.workstation.version}"]
        lines += [f"{a.label} ({a.network})" for a in host_legs if a.label not in ("nat", "bridged")]
        lines += host_serves
        nodes.append(Node(WORKSTATION_NODE, "host", tuple(lines), tuple(host_legs)))

    clusters = []
    for c in t.clusters:
        notes = ["HA on" if c.ha_enabled else "HA off"]
        if c.isolation_addresses:
            notes.append("isolation " + ", ".join(c.isolation_addresses))
        if c.gateway_less:
            notes.append("no gateway")
        clusters.append(ClusterBox(c.name, tuple(c.hosts), tuple(notes)))

    notes = []
    if vc is not None and not any(vm.ip == vc.host for vm in t.vms):
        notes.append(f"vCenter {vc.host} (datacenter {vc.datacenter}) is outside the lab")
    title = f"{t.lab} · Workstation {t.workstation.version} (virtualHW {t.workstation.hw_version})"
    return LabGraph(t.lab, title, networks, tuple(nodes), tuple(clusters), tuple(datastores), tuple(notes))


def _node_title(node: Node) -> str:
    return "this machine" if node.kind == "host" else node.name


# ---- Mermaid ---------------------------------------------------------------------------------------------
def _mid(prefix: str, name: str) -> str:
    return prefix + re.sub(r"[^A-Za-z0-9_]", "_", name)


def _mtext(text: str) -> str:
    """Mermaid entity codes (`#34;`), so quotes and markup characters cannot end a label early."""
    return "".join(f"#{ord(c)};" if c in '"&<>#|' else c for c in text)


def to_mermaid(g: LabGraph) -> str:
    """Mermaid `graph LR` text (renders on GitHub, GitLab and in most Markdown previewers)."""
    out = ["graph LR", f"  %% {g.title}"]
    out += [f"  %% {n}" for n in g.notes]
    for net in g.networks:
        out.append(f'  {_mid("net_", net.name)}[["{_mtext(net.name)}<br/>{_mtext(net.summary)}"]]')
    clustered = {m for c in g.clusters for m in c.members}

    def node_line(node: Node, indent: str) -> str:
        text = "<br/>".join(_mtext(x) for x in (_node_title(node), *node.lines))
        nid = _mid("n_", node.name)
        shape = ("([", "])") if node.kind == "host" else ("[", "]")
        return f'{indent}{nid}{shape[0]}"{text}"{shape[1]}'

    for c in g.clusters:
        out.append(f'  subgraph {_mid("cl_", c.name)}["{_mtext(c.title)}"]')
        for member in c.members:
            node = next((n for n in g.nodes if n.name == member), None)
            if node is not None:
                out.append(node_line(node, "    "))
        out.append("  end")
    for node in g.nodes:
        if node.name not in clustered:
            out.append(node_line(node, "  "))
    for ds in g.datastores:
        out.append(f'  {_mid("ds_", ds.name)}[("{_mtext(ds.name)}<br/>{_mtext(ds.label)}")]')
    for node in g.nodes:
        for a in node.attachments:
            label = f"|{_mtext(a.label)}|" if a.label else ""
            out.append(f"  {_mid('n_', node.name)} ---{label} {_mid('net_', a.network)}")
    for node in g.nodes:
        if node.clone_of:
            out.append(
                f"  {_mid('n_', node.clone_of)} -.->|linked clone @ {_mtext(node.snapshot or '')}| "
                f"{_mid('n_', node.name)}"
            )
    for ds in g.datastores:
        if ds.served_by:
            out.append(f"  {_mid('n_', ds.served_by)} -.->|serves| {_mid('ds_', ds.name)}")
        for h in ds.hosts:
            out.append(f"  {_mid('ds_', ds.name)} -.-|mounted| {_mid('n_', h)}")
    out.append("  classDef esx fill:#eef4fb,stroke:#2b5d8a")
    out.append("  classDef clone fill:#eef4fb,stroke:#2b5d8a,stroke-dasharray: 5 3")
    out.append("  classDef vm fill:#f6f6f6,stroke:#666")
    out.append("  classDef net fill:#fffbe6,stroke:#b08900")
    for cls, members in (
        ("esx", [n for n in g.nodes if n.kind == "esx" and not n.clone_of]),
        ("clone", [n for n in g.nodes if n.clone_of]),
        ("vm", [n for n in g.nodes if n.kind in ("vm", "host")]),
    ):
        if members:
            out.append(f"  class {','.join(_mid('n_', n.name) for n in members)} {cls}")
    if g.networks:
        out.append(f"  class {','.join(_mid('net_', n.name) for n in g.networks)} net")
    return "\n".join(out) + "\n"


# ---- Graphviz DOT ----------------------------------------------------------------------------------------
def _dq(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def to_dot(g: LabGraph) -> str:
    """Graphviz DOT source (undirected; `dot -Tsvg` lays it out)."""
    out = [
        f"graph {_dq(g.lab)} {{",
        "  graph [rankdir=LR, fontname=Helvetica, fontsize=12, labelloc=t, "
        f"label={_dq(g.title + ''.join(chr(10) + n for n in g.notes))}];",
        "  node [fontname=Helvetica, fontsize=10];",
        "  edge [fontname=Helvetica, fontsize=9];",
    ]
    for i, net in enumerate(g.networks):
        out.append(
            f'  {_dq("net:" + net.name)} [shape=box, style="rounded,filled", fillcolor="#fffbe6", '
            f"color={_dq(_PALETTE[i % len(_PALETTE)])}, penwidth=2, label={_dq(net.name + chr(10) + net.summary)}];"
        )

    def node_stmt(node: Node) -> str:
        style = "dashed" if node.clone_of else "solid"
        fill = "#f6f6f6" if node.kind in ("vm", "host") else "#eef4fb"
        label = "\n".join((_node_title(node), *node.lines))
        return f'{_dq(node.name)} [shape=box, style="{style},filled", fillcolor={_dq(fill)}, label={_dq(label)}];'

    clustered = {m for c in g.clusters for m in c.members}
    for c in g.clusters:
        out.append(f"  subgraph {_dq('cluster_' + c.name)} {{")
        out.append(f'    label={_dq(c.title)}; style=rounded; color="#888888";')
        for member in c.members:
            node = next((n for n in g.nodes if n.name == member), None)
            if node is not None:
                out.append("    " + node_stmt(node))
        out.append("  }")
    for node in g.nodes:
        if node.name not in clustered:
            out.append("  " + node_stmt(node))
    for ds in g.datastores:
        out.append(
            f'  {_dq("ds:" + ds.name)} [shape=cylinder, style=filled, fillcolor="#f3ecf9", '
            f"label={_dq(ds.name + chr(10) + ds.label)}];"
        )
    colour = {net.name: _PALETTE[i % len(_PALETTE)] for i, net in enumerate(g.networks)}
    for node in g.nodes:
        for a in node.attachments:
            out.append(
                f"  {_dq(node.name)} -- {_dq('net:' + a.network)} [label={_dq(a.label)}, color={_dq(colour[a.network])}];"
            )
    for node in g.nodes:
        if node.clone_of:
            out.append(
                f"  {_dq(node.clone_of)} -- {_dq(node.name)} [style=dashed, dir=forward, "
                f"label={_dq('linked clone @ ' + (node.snapshot or ''))}];"
            )
    for ds in g.datastores:
        if ds.served_by:
            out.append(f'  {_dq(ds.served_by)} -- {_dq("ds:" + ds.name)} [style=dotted, label="serves"];')
        for h in ds.hosts:
            out.append(f"  {_dq('ds:' + ds.name)} -- {_dq(h)} [style=dotted];")
    out.append("}")
    return "\n".join(out) + "\n"


def dot_to_svg(dot_source: str, dot_exe: str, *, timeout: float = 60) -> str:
    """Lay out DOT with Graphviz.

    Renderer exception to "only labctl/workstation spawns processes": Graphviz is an optional renderer, run
    with an argv list (no shell), the DOT text on stdin, nothing from the topology on the command line.
    """
    import subprocess

    from labctl.errors import EnvironmentProblem

    try:
        proc = subprocess.run(
            [dot_exe, "-Tsvg"],
            input=dot_source.encode("utf-8"),
            capture_output=True,
            timeout=timeout,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise EnvironmentProblem(f"graphviz ({dot_exe}) failed: {e}", hint="use --engine builtin") from e
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        raise EnvironmentProblem(
            f"graphviz ({dot_exe}) exited {proc.returncode}: {err}", hint="use --engine builtin"
        )
    return proc.stdout.decode("utf-8")


# ---- built-in SVG ----------------------------------------------------------------------------------------
_PALETTE = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf")
_FONT = "DejaVu Sans, Helvetica, Arial, sans-serif"
_CHAR_W = {10: 6.1, 11: 6.7, 12: 7.3, 14: 8.5}  # generous average advance widths, in px


def _tw(text: str, size: int) -> float:
    return len(text) * _CHAR_W[size]


def _x(text: str) -> str:
    return _xml_escape(text, {'"': "&quot;"})


def _f(v: float) -> str:
    return f"{v:.1f}".rstrip("0").rstrip(".")


@dataclass
class _Box:
    node: Node
    x: float
    y: float
    w: float
    h: float


def to_svg(g: LabGraph) -> str:
    """A self-contained SVG drawn without Graphviz (see the module docstring for the layout)."""
    margin, label_col, gap, bus_gap, line_h = 24.0, 0.0, 28.0, 46.0, 15.0
    colour = {net.name: _PALETTE[i % len(_PALETTE)] for i, net in enumerate(g.networks)}

    # networks above (even positions) and below (odd), innermost first
    above = [n for i, n in enumerate(g.networks) if i % 2 == 0]
    below = [n for i, n in enumerate(g.networks) if i % 2 == 1]

    label_col = (
        max([_tw(n.name, 12) for n in g.networks] + [_tw(n.summary, 10) for n in g.networks] + [120]) + 24
    )
    body_lines = max([len(n.lines) for n in g.nodes] + [0])
    box_w = max(
        [_tw(_node_title(n), 12) for n in g.nodes] + [_tw(x, 10) for n in g.nodes for x in n.lines] + [150]
    )
    box_w = float(int(box_w + 22))
    box_h = 30 + body_lines * line_h + 8

    # horizontal positions: a cluster's members sit together inside its rectangle
    cluster_of = {m: c for c in g.clusters for m in c.members}
    pad = 12.0
    x = margin + label_col
    boxes: list[_Box] = []
    cluster_spans: dict[str, list[float]] = {}
    prev_cluster: str | None = None
    for node in g.nodes:
        c = cluster_of.get(node.name)
        cname = c.name if c else None
        if cname != prev_cluster:
            if prev_cluster is not None:
                x += pad  # close the previous rectangle
            if cname is not None:
                x += pad
        boxes.append(_Box(node, x, 0.0, box_w, box_h))
        if cname is not None:
            span = cluster_spans.setdefault(cname, [x - pad, x + box_w + pad])
            span[1] = x + box_w + pad
        x += box_w + gap
        prev_cluster = cname
    if prev_cluster is not None:
        x += pad
    width = max(x - gap + margin, margin * 2 + label_col + 300)

    title_h = 30.0 + 16.0 * len(g.notes)
    top = margin + title_h + 22  # room for the outermost bus's name above it
    y_above = [top + (len(above) - 1 - i) * bus_gap for i in range(len(above))]  # innermost is lowest
    cluster_title_h = 26.0 if g.clusters else 0.0
    row_y = (y_above[0] if above else top) + 40 + cluster_title_h
    for b in boxes:
        b.y = row_y
    row_bottom = row_y + box_h + (pad if g.clusters else 0)
    y_below = [row_bottom + 40 + i * bus_gap for i in range(len(below))]
    bus_y = {n.name: y for n, y in zip(above, y_above)} | {n.name: y for n, y in zip(below, y_below)}
    height = (y_below[-1] if below else row_bottom) + 40
    ds_free = [d for d in g.datastores if d.served_by is None]
    legend_y = height
    height += (18 * len(ds_free) + 10) if ds_free else 0

    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_f(width)}" height="{_f(height)}" '
        f'viewBox="0 0 {_f(width)} {_f(height)}" font-family="{_FONT}">',
        f"<title>{_x(g.title)}</title>",
        f'<rect x="0" y="0" width="{_f(width)}" height="{_f(height)}" fill="#ffffff"/>',
        f'<text x="{_f(margin)}" y="{_f(margin + 14)}" font-size="14" font-weight="bold">{_x(g.title)}</text>',
    ]
    for i, note in enumerate(g.notes):
        out.append(
            f'<text x="{_f(margin)}" y="{_f(margin + 32 + 16 * i)}" font-size="11" fill="#555">{_x(note)}</text>'
        )

    # cluster rectangles (behind everything else in the row)
    for c in g.clusters:
        if c.name not in cluster_spans:
            continue
        x0, x1 = cluster_spans[c.name]
        y0 = row_y - cluster_title_h - 4
        out.append(
            f'<rect x="{_f(x0)}" y="{_f(y0)}" width="{_f(x1 - x0)}" height="{_f(row_bottom - y0)}" rx="10" '
            f'fill="#f4f7f0" stroke="#7a9a5a" stroke-width="1.2"/>'
        )

    # drop lines: top attachments spread over the box's top edge, bottom ones over its bottom edge
    dots: list[str] = []
    for b in boxes:
        ups = [a for a in b.node.attachments if a.network in {n.name for n in above}]
        downs = [a for a in b.node.attachments if a.network in {n.name for n in below}]
        for group, edge_y in ((ups, b.y), (downs, b.y + b.h)):
            for j, a in enumerate(sorted(group, key=lambda a: bus_y[a.network])):
                lx = b.x + b.w * (j + 1) / (len(group) + 1)
                by = bus_y[a.network]
                out.append(
                    f'<line x1="{_f(lx)}" y1="{_f(edge_y)}" x2="{_f(lx)}" y2="{_f(by)}" '
                    f'stroke="{colour[a.network]}" stroke-width="2"/>'
                )
                dots.append(f'<circle cx="{_f(lx)}" cy="{_f(by)}" r="4" fill="{colour[a.network]}"/>')

    # buses with their labels in the left column (drawn over the drop lines, with a white halo)
    for net in g.networks:
        y = bus_y[net.name]
        c = colour[net.name]
        out.append(
            f'<line x1="{_f(margin)}" y1="{_f(y)}" x2="{_f(width - margin)}" y2="{_f(y)}" stroke="#ffffff" '
            f'stroke-width="7"/>'
        )
        out.append(
            f'<line x1="{_f(margin)}" y1="{_f(y)}" x2="{_f(width - margin)}" y2="{_f(y)}" stroke="{c}" '
            f'stroke-width="4" stroke-linecap="round"/>'
        )
        out.append(
            f'<text x="{_f(margin)}" y="{_f(y - 8)}" font-size="12" font-weight="bold" fill="{c}">{_x(net.name)}</text>'
        )
        out.append(
            f'<text x="{_f(margin)}" y="{_f(y + 16)}" font-size="10" fill="#333">{_x(net.summary)}</text>'
        )
    out += dots

    # cluster titles on a white label so lines pass under them
    for c in g.clusters:
        if c.name not in cluster_spans:
            continue
        x0, _x1 = cluster_spans[c.name]
        ty = row_y - cluster_title_h + 12
        tw = _tw(c.title, 11) + 12
        out.append(
            f'<rect x="{_f(x0 + 8)}" y="{_f(ty - 12)}" width="{_f(tw)}" height="17" rx="3" fill="#f4f7f0"/>'
        )
        out.append(
            f'<text x="{_f(x0 + 14)}" y="{_f(ty)}" font-size="11" font-weight="bold" fill="#3d5a22">{_x(c.title)}</text>'
        )

    # the boxes
    for b in boxes:
        n = b.node
        fill = {"esx": "#eef4fb", "vm": "#f6f6f6", "host": "#fdf6e3"}.get(n.kind, "#ffffff")
        stroke = {"esx": "#2b5d8a", "vm": "#666666", "host": "#b08900"}.get(n.kind, "#333")
        dash = ' stroke-dasharray="6 3"' if n.clone_of else ""
        out.append(
            f'<rect x="{_f(b.x)}" y="{_f(b.y)}" width="{_f(b.w)}" height="{_f(b.h)}" rx="6" fill="{fill}" '
            f'stroke="{stroke}" stroke-width="1.5"{dash}/>'
        )
        out.append(
            f'<text x="{_f(b.x + 10)}" y="{_f(b.y + 19)}" font-size="12" font-weight="bold">{_x(_node_title(n))}</text>'
        )
        for i, line in enumerate(n.lines):
            ly = b.y + 19 + (i + 1) * line_h
            net_colour = next(
                (colour[a.network] for a in n.attachments if line.endswith(f"({a.network})")), None
            )
            if net_colour:
                out.append(f'<circle cx="{_f(b.x + 13)}" cy="{_f(ly - 3.5)}" r="3" fill="{net_colour}"/>')
                out.append(
                    f'<text x="{_f(b.x + 21)}" y="{_f(ly)}" font-size="10" fill="#222">{_x(line)}</text>'
                )
            else:
                italic = ' font-style="italic"' if line.startswith("linked clone") else ""
                out.append(
                    f'<text x="{_f(b.x + 10)}" y="{_f(ly)}" font-size="10" fill="#222"{italic}>{_x(line)}</text>'
                )

    # datastores whose server is not one of our boxes: listed at the bottom
    for i, ds in enumerate(ds_free):
        y = legend_y + 14 + 18 * i
        out.append(
            f'<text x="{_f(margin)}" y="{_f(y)}" font-size="11" fill="#5b3c7a">datastore {_x(ds.name)}: '
            f"{_x(ds.label)} · mounted by {_x(', '.join(ds.hosts))}</text>"
        )
    out.append("</svg>")
    return "\n".join(out) + "\n"
