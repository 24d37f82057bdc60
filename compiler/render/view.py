"""What a diagram shows: the IR seen at one zoom level, as boxes, edges and clusters.

Entry point: :func:`build_view`. Nothing here knows about Graphviz; the DOT
writer (`render/dot.py`) draws a :class:`View`, and the differ
(`render/diff.py`) compares two of them.

NOTE: [Zoom levels]
Levels follow the spec's containers, not a numeric depth:
- `model`: the model's own layers; every labelled sequence or block is one box;
- `stage`: sequences (`repeat`, `for`, `( ... )`) are opened; blocks are boxes,
  except a block holding a repetition of blocks (a Transformer's `Encoder`, a
  ViT's encoder, SwinIR's RSTB): its stages are inside, so it is opened too;
- `block`: blocks are opened too, down to single ops;
- `op`:    everything is opened and nothing is folded (the full graph).
`depth=N` opens every container at most N deep instead. At every level but
`op`, a run of identical consecutive block instances in a sequence is *folded*:
the first of the run stands for all of them with an exact `x N` count; a run of
identical groups (Swin's alternating blocks) is drawn as its first group in a
cluster of its own (see :mod:`modelc.render.fold`). A U-Net's nested skips are
levelled by :mod:`modelc.render.ushape`.

Invariants: every IR node maps to exactly one item; the sum of
`item.params * item.count` over the items is the model's parameter count;
items and edges come out in a deterministic (source) order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelc.diagnostics import CompilerBug, Span
from modelc.ir import Attrs, Graph
from modelc.render.fold import Folding, fold_runs
from modelc.render.skip import Dag, mark_skips
from modelc.render.ushape import shape_u
from modelc.summary import batch_env
from modelc.symbolic import Dim, subs
from modelc.types import TensorType

__all__ = ["LEVELS", "Cluster", "Edge", "Item", "Tree", "View", "build_view", "shape_text"]

LEVELS = ("model", "stage", "block", "op")


@dataclass
class Item:
    """One box: an op, a collapsed container, a model input or output."""

    key: str  # unique DOT id: the qualified name of what it shows
    kind: str  # "op", "block", "seq", "input" or "output"
    name: str  # shown name (`layer3.1–5` for a folded run)
    text: str  # op label (`conv 3x3/2, 128`) or block signature (`Bottleneck(128, stride=2)`)
    cluster: tuple[str, ...]  # the opened container it is drawn in (with any periodic group)
    order: int  # first IR node id: source order
    span: Span | None = None
    count: int = 1  # copies it stands for (folded runs, its own and its clusters')
    badge: int = 1  # copies folded into this box itself (its `x N`)
    params: int = 0  # per copy
    macs: Dim = 0  # per copy, batch 1
    family: str = ""  # op family; "" for containers, inputs and outputs
    families: tuple[str, ...] = ()  # families of the ops inside (containers)
    op: str = ""
    attrs: Attrs | None = None
    shape: str = ""  # first output, without the batch dimension
    used: Span | None = None  # where a block is instantiated (`span` is its definition)
    training: bool = False  # only training mode computes it (NOTE: [Training-only outputs] in ir.py)


@dataclass
class Edge:
    src: str
    dst: str
    port: int  # input port at the destination (for ordering)
    out: int  # output port at the source
    shape: str  # tensor shape without the batch dimension
    label: bool = True  # carries the shape text (once per tensor)
    skip: bool = False  # part of a skip connection
    name: str = ""  # the block input it feeds, when not the block's first (`memory`)
    back: bool = False  # drawn against the flow: the rising side of a U-Net
    training: bool = False  # into a box only training mode computes


@dataclass
class Cluster:
    path: tuple[str, ...]
    name: str  # shown name (`layer1`, `layer1.1–2`)
    text: str  # `3 x Bottleneck`, `Bottleneck(64)`
    kind: str  # "block" or "seq" (a periodic run's group is drawn as a "seq")
    count: int = 1  # copies folded into it (its `x N`)
    span: Span | None = None
    params: int = 0  # per copy


@dataclass
class View:
    graph: Graph
    level: str  # a level name, or `depth N`
    items: list[Item] = field(default_factory=list)
    edges: list[Edge] = field(default_factory=list)
    clusters: dict[tuple[str, ...], Cluster] = field(default_factory=dict)
    total_params: int = 0
    total_macs: Dim = 0
    ranks: list[list[str]] = field(default_factory=list)  # items drawn level with each other

    def item(self, key: str) -> Item:
        return self._by_key()[key]

    def _by_key(self) -> dict[str, Item]:
        return {i.key: i for i in self.items}


def level_name(level: str | None, depth: int | None) -> str:
    return f"depth {depth}" if depth is not None else (level or "stage")


def opened(graph: Graph, path: tuple[str, ...], level: str, depth: int | None,
           holders: set | None = None) -> bool:  # fmt: skip
    """Whether the container at `path` is drawn open (its parent being open)."""
    if not path or level == "op":
        return True
    if depth is not None:
        return len(path) <= depth
    if level == "stage":
        holders = _holders(graph) if holders is None else holders
        return graph.containers[path].kind == "seq" or path in holders
    return level == "block"


def _holders(graph: Graph) -> set[tuple[str, ...]]:
    """Blocks holding a repetition (`repeat`, `for`) of blocks: opened at stage level."""
    out = set()
    for path, c in graph.containers.items():
        seq = graph.containers.get(path[:-1]) if len(path) >= 2 else None
        repeated = seq is not None and seq.kind == "seq" and seq.origin in ("repeat", "for")
        if c.kind == "block" and repeated and graph.containers[path[:-2]].kind == "block":
            out.add(path[:-2])
    return out


def build_view(graph: Graph, level: str | None = None, depth: int | None = None,
               fold: bool | None = None) -> View:  # fmt: skip
    """The items, edges and clusters of `graph` at a zoom level (default `stage`)."""
    level = level or "stage"
    if level not in LEVELS:
        raise CompilerBug(f"unknown diagram level {level!r}")
    fold = (level != "op" or depth is not None) if fold is None else fold
    is_open = _open_set(graph, level, depth)
    folding = fold_runs(graph, is_open) if fold else Folding()
    view = View(graph, level_name(level, depth))
    _Builder(graph, view, is_open, folding).run()
    dag = Dag(view)  # the items in topological order, for the searches below
    mark_skips(view, dag)
    for e in view.edges:
        e.name = "" if e.skip else e.name  # a skip is drawn as one already
    shape_u(view, dag)
    _label_once(view)
    return view


def _open_set(graph: Graph, level: str, depth: int | None) -> set[tuple[str, ...]]:
    out = {()}
    holders = _holders(graph)
    for path in sorted(graph.containers, key=len):
        if path and path[:-1] in out and opened(graph, path, level, depth, holders):
            out.add(path)
    return out


class _Builder:
    def __init__(self, graph: Graph, view: View, is_open: set, folding: Folding):
        self.graph, self.view, self.is_open, self.folding = graph, view, is_open, folding
        self.env = batch_env(graph)
        self.batch = frozenset(self.env)
        self.items: dict[str, Item] = {}
        self.item_of: dict[int, str] = {}  # IR node -> item key
        self.tree = Tree(graph)
        self.node = {n: graph.node(n) for n in graph.nodes()}  # looked up often: once here
        self.shapes: dict[TensorType, str] = {}  # shape texts made so far
        self.branch = graph.training_only()

    def run(self) -> None:
        order = self.graph.topo()
        for n in order:
            self._place(n)
        self.view.items = sorted(self.items.values(), key=lambda i: i.order)
        self._outputs()
        self._edges(order)
        self._clusters()
        nodes = list(self.node.values())
        self.view.total_params = sum(nd.params for nd in nodes)
        eval_nodes = [nd for n, nd in self.node.items() if n not in self.branch]  # as summary counts
        self.view.total_macs = sum((subs(nd.macs, self.env) for nd in eval_nodes), start=0)
        if self.branch or self.graph.training_outputs:
            training = {i.key for i in self.view.items if i.training}
            for e in self.view.edges:
                e.training = e.dst in training

    # ---- items
    def _place(self, n: int) -> None:
        node = self.node[n]
        scope = self.folding.shown_path(node.scope)
        for i in range(1, len(scope) + 1):
            if scope[:i] not in self.is_open:
                self._container_item(n, scope[:i])
                return
        key = ".".join((*scope, node.local))
        self.item_of[n] = key
        if key in self.items:
            return
        kind = "input" if node.op == "input" else "op"
        self.items[key] = Item(
            key, kind, key, node.opdef.label(dict(node.attrs)), self.folding.display(scope), n, node.span,
            count=self.folding.count(scope), params=node.params, macs=subs(node.macs, self.env),
            family=node.opdef.family, op=node.op, attrs=node.attrs, shape=self._shape(node.types[0]),
            training=n in self.branch,
        )  # fmt: skip

    def _container_item(self, n: int, path: tuple[str, ...]) -> None:
        key = ".".join(path)
        self.item_of[n] = key
        if key in self.items:
            return
        c = self.graph.containers[path]
        nodes = self.folding.members(self.graph, path)
        out = self.graph.node(c.outputs[0][1][0]) if c.outputs else self.graph.node(nodes[-1])
        self.items[key] = Item(
            key, c.kind, self.folding.shown_name(path), self._text(path),
            self.folding.display(path)[:-1], n, c.span, count=self.folding.count(path),
            badge=self.folding.own(path),
            params=sum(self.graph.node(m).params for m in nodes),
            macs=sum((subs(self.graph.node(m).macs, self.env) for m in nodes), start=0),
            families=tuple(self.graph.node(m).opdef.family for m in nodes), op=c.name,
            shape=self._shape(out.types[0]), used=c.trace[0].span if c.kind == "block" and c.trace else None,
            training=all(m in self.branch for m in nodes),
        )  # fmt: skip

    def _outputs(self) -> None:
        last = max(self.graph.nodes())
        for name, (u, out) in self.graph.outputs:
            key = f"output/{name}"
            shape = self._shape(self.graph.node(u).types[out])
            order = last + 1 + len(self.view.items)
            self.view.items.append(Item(key, "output", name, "output", (), order, self.graph.span,
                                        shape=shape, training=name in self.graph.training_outputs))  # fmt: skip
            self.view.edges.append(Edge(self.item_of[u], key, 0, out, shape))

    def _shape(self, t: TensorType) -> str:
        text = self.shapes.get(t)
        if text is None:
            text = self.shapes[t] = shape_text(t, self.batch)
        return text

    # ---- edges
    def _edges(self, order: list[int]) -> None:
        """The edges between items, each (source item, destination item, output) once,
        sorted by destination, port and source; `order` is the graph's topological order."""
        seen: set[tuple] = set()
        edges = []
        for v in order:
            for port, (u, out) in enumerate(self.graph.inputs_of(v)):
                if self.folding.between_copies(self.node[u].scope, self.node[v].scope):
                    continue
                src, dst = self.item_of[u], self.item_of[v]
                if src == dst or (src, dst, out) in seen:
                    continue
                seen.add((src, dst, out))
                shape = self._shape(self.node[u].types[out])
                name = self._input_name(u, out, v)
                edges.append((self.items[dst].order, port, self.items[src].order,
                              Edge(src, dst, port, out, shape, name=name)))  # fmt: skip
        outputs = self.view.edges
        self.view.edges = [e for *_, e in sorted(edges, key=lambda t: t[:3])] + outputs

    def _text(self, path: tuple[str, ...]) -> str:
        """A container's text; a folded run's arguments that differ between copies (that
        did not change its structure) are listed: `SwinBlock(24, shift=0|3, ...)`."""
        copies = self.folding.runs.get(path) if self.folding.own(path) > 1 else None
        return container_text(self.graph, path, copies, self.tree)

    def _input_name(self, u: int, out: int, v: int) -> str:
        """The name of the block input through which `v` reads `(u, out)`, when that is not
        the first input of the outermost block entered (a decoder's `memory`)."""
        scope, inside = self.node[v].scope, self.node[u].scope
        for i in range(1, len(scope) + 1):
            c = self.graph.containers[scope[:i]]
            if inside[:i] == scope[:i] or c.kind != "block":
                continue
            names = [name for name, ref in c.inputs if ref == (u, out)]
            return names[0] if names and c.inputs[0][1] != (u, out) else ""
        return ""

    # ---- clusters
    def _clusters(self) -> None:
        used = {p[:i] for it in self.view.items for p in [it.cluster] for i in range(1, len(p) + 1)}
        for path in sorted(used):
            group = self.folding.shown_groups.get(path)
            self.view.clusters[path] = self._group(path, group) if group else self._cluster(path)

    def _cluster(self, shown: tuple[str, ...]) -> Cluster:
        path = self.folding.real(shown)
        c = self.graph.containers[path]
        nodes = self.folding.members(self.graph, path)
        return Cluster(shown, self.folding.shown_name(path), self._text(path), c.kind,
                       self.folding.own(path), c.span,
                       sum(self.graph.node(m).params for m in nodes))  # fmt: skip

    def _group(self, shown: tuple[str, ...], group: tuple[str, ...]) -> Cluster:
        """The cluster around the drawn group of a periodic run: `(SwinBlock, SwinBlock) x 3`."""
        first, drawn = self.folding.groups[group]
        names = [self.graph.containers[m].name or "layers" for m in drawn]
        nodes = [n for m in drawn for n in self.folding.members(self.graph, m)]
        return Cluster(shown, ".".join(group), "(" + ", ".join(names) + ")", "seq",
                       self.folding.times[first], self.graph.containers[first].span,
                       sum(self.graph.node(n).params for n in nodes))  # fmt: skip


class Tree:
    """The container tree of a graph, indexed once: `kids[path]` are a container's
    child containers (in `graph.containers` order), `direct[path]` the number of IR
    nodes whose scope is exactly `path`."""

    def __init__(self, graph: Graph):
        self.kids: dict[tuple[str, ...], list[tuple[str, ...]]] = {p: [] for p in graph.containers}
        for p in graph.containers:
            if p and p[:-1] in self.kids:
                self.kids[p[:-1]].append(p)
        self.direct: dict[tuple[str, ...], int] = {}
        for n in graph.nodes():
            scope = graph.node(n).scope
            self.direct[scope] = self.direct.get(scope, 0) + 1


def container_text(graph: Graph, path: tuple[str, ...], copies: list | None = None,
                   tree: Tree | None = None) -> str:  # fmt: skip
    """`Bottleneck(128, stride=2)` for a block; `4 x Bottleneck` or `31 layers` for a sequence.
    With the `copies` a block stands for, arguments that differ read `shift=0|3`.
    `tree` is the graph's :class:`Tree` (made here when not given)."""
    c = graph.containers[path]
    if c.kind == "block":
        copies = [graph.containers[p].args for p in copies or [path]]
        args = []
        for i, (key, _) in enumerate(c.args):
            values = "|".join(dict.fromkeys(_value(a[i][1]) for a in copies))
            args.append(values if i == 0 else f"{key}={values}")
        return f"{c.name}({', '.join(args)})"
    tree = Tree(graph) if tree is None else tree
    kids = tree.kids[path]
    names = {graph.containers[p].name for p in kids}
    direct = tree.direct.get(path, 0)
    if kids and not direct and len(names) == 1 and "" not in names:  # sequences have no name
        return f"{len(kids)} \u00d7 {names.pop()}"
    count = direct + len(kids)
    return f"{count} layer{'s' if count != 1 else ''}"


def _value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value) if isinstance(value, str) else str(value).replace(" ", "")


def shape_text(t: TensorType, batch: frozenset[str]) -> str:
    """`256x56x56`: a shape without its batch dimension, wherever that sits (an RNN's
    state is [layers, B, hidden]); by convention the first dimension when the model's
    batch size is a number. Tensors without a batch dimension (a mask) keep every dim."""
    dims = [str(d) for d in t.dims]
    if not batch:
        dims = dims[1:]
    else:
        at = next((i for i, d in enumerate(dims) if d in batch), None)
        dims = dims if at is None else dims[:at] + dims[at + 1 :]
    return "x".join(dims) or "scalar"


def _label_once(view: View) -> None:
    """Each tensor's shape is written on one edge: its first non-skip use."""
    first: dict[tuple[str, int], Edge] = {}
    for e in view.edges:
        key = (e.src, e.out)
        best = first.get(key)
        if best is None or (best.skip and not e.skip):
            first[key] = e
    chosen = {id(e) for e in first.values()}
    for e in view.edges:
        e.label = id(e) in chosen
