"""The graph IR: a networkx MultiDiGraph behind a small API that passes need.

Nodes are integer ids in creation order (= source order), so
`lexicographical_topological_sort` gives a deterministic, source-like order.
Node data is one :class:`Node`; an edge `u -> v` carries `port` (which input of
`v`) and `out` (which output of `u`), so `concat(a, b)` keeps its order.

The module hierarchy lives beside the graph as :class:`Container` records keyed
by scope path: the model (path `()`), block instances (`("layer2", "0")`) and
numbered sequences (`("features",)`). Every node's `scope` names its container.

Invariants (checked by :meth:`Graph.verify`): ops are registered; the graph is
acyclic; each node has exactly the input ports 0..n-1 its op accepts; every
referenced output port exists; qualified names are unique; outputs and
container boundaries refer to live nodes; training-only outputs are outputs, and
not all of them.

NOTE: [Training-only outputs]
`output training aux = ...` makes an output that only training mode computes (GoogLeNet's
auxiliary classifiers). The IR keeps it among `outputs`, in spec order, and names it in
`training_outputs`; nodes carry no flag: the training-only branch is derived, as the nodes
that only training outputs depend on (`training_only()`), so a pass that rewrites nodes
cannot leave a stale mark. The branch is built, shape-checked, counted and in the
state_dict like any layer; the generated forward returns `eval_outputs()` in eval mode
before it runs the branch, and every output in training mode.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import networkx as nx

from modelc import ops
from modelc.diagnostics import CompilerBug, Note, Span
from modelc.symbolic import Dim
from modelc.types import TensorType

__all__ = ["Attrs", "Container", "Graph", "LoadRule", "Node", "Ref"]

Ref = tuple[int, int]  # (node id, output port)


class Attrs(Mapping):
    """An immutable, hashable attribute mapping."""

    __slots__ = ("_items", "_map")

    def __init__(self, items: Mapping[str, Any] | None = None):
        self._items = tuple(sorted((items or {}).items()))
        self._map = dict(self._items)  # for lookups; `_items` is what equality and hash see

    def __getitem__(self, key: str) -> Any:
        return self._map[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._map)

    def __len__(self) -> int:
        return len(self._items)

    def __hash__(self) -> int:
        return hash(self._items)

    def __eq__(self, other) -> bool:
        return isinstance(other, Attrs) and self._items == other._items

    def __repr__(self) -> str:
        return "Attrs(" + ", ".join(f"{k}={v!r}" for k, v in self._items) + ")"


@dataclass
class Node:
    op: str
    attrs: Attrs
    scope: tuple[str, ...]  # path of the container this node belongs to
    local: str  # name inside the container (module attribute name when `module`)
    span: Span
    trace: tuple[Note, ...] = ()  # block instantiations that led here, innermost first
    module: bool = False  # emitted as a submodule (labelled, parametric, or in a sequence)
    labelled: bool = False  # the spec named it
    var: str | None = None  # preferred variable name in generated code
    out_vars: tuple[str, ...] = ()  # per output, when unpacked: `y, h, c = x -> lstm(...)`
    types: tuple[TensorType, ...] = ()
    params: int = 0
    macs: Dim = 0
    inplace: bool = False  # set by the in-place pass: the op overwrites its first input

    @property
    def name(self) -> str:
        return ".".join((*self.scope, self.local))

    @property
    def type(self) -> TensorType:
        return self.types[0]

    @property
    def opdef(self) -> ops.OpDef:
        return ops.REGISTRY[self.op]


@dataclass(frozen=True)
class LoadRule:
    """How keys of an unoptimized checkpoint become this graph's keys (module paths, relative
    to the model): `kind` names a function of modelc.runtime's loader (`fold_batchnorm`,
    `concat`, `drop`, ...), `args` its literal arguments. Applied only when the source keys
    are present, so the optimized model's own checkpoints load too."""

    kind: str
    args: tuple[Any, ...]


@dataclass
class Container:
    """A module in the emitted hierarchy: the model, a block instance, or a sequence."""

    path: tuple[str, ...]
    kind: str  # "model", "block" or "seq"
    name: str  # model or block name; "" for a sequence
    span: Span
    args: tuple[tuple[str, Any], ...] = ()  # block parameter values
    defaults: tuple[tuple[str, Any], ...] = ()  # block parameters' defaults that are literals
    inputs: list[tuple[str, Ref]] = field(default_factory=list)  # outside values fed in
    outputs: list[tuple[str, Ref]] = field(default_factory=list)  # values it returns
    dims: tuple[tuple[str, int], ...] = ()  # sizes its inputs' shape patterns name: [B, H, W, C]
    trace: tuple[Note, ...] = ()
    origin: str = ""  # for sequences: "group", "repeat", "for" or "branches" (`experts: [for ...]`)
    unrolled: bool = False  # a sequence whose items take extra inputs: an nn.ModuleList
    var: str | None = None

    @property
    def local(self) -> str:
        return self.path[-1] if self.path else ""


class Graph:
    def __init__(self, name: str, span: Span, params: tuple[tuple[str, Any], ...] = ()):
        self.name = name
        self.span = span
        self.params = params  # the model's parameter values
        self.g = nx.MultiDiGraph()
        self.inputs: list[int] = []
        self.outputs: list[tuple[str, Ref]] = []
        self.containers: dict[tuple[str, ...], Container] = {
            (): Container((), "model", name, span, args=params)
        }
        self._next = 0
        # Set by optimization passes (see modelc.passes): how a checkpoint of the unoptimized
        # model maps onto this one (`LoadRule`s, applied by a load_state_dict pre-hook), and
        # what the passes did, for the generated file's header and docstring.
        self.load_rules: list[LoadRule] = []
        self.optimized: tuple[int, tuple[str, ...]] = (0, ())  # level, passes that changed it
        self.inference_only: list[str] = []  # why the module is for inference (BN folded, ...)
        self.warnings: list = []  # Diagnostics of modelc.lint, set by driver.build
        self.ties: list[tuple[str, str]] = []  # (linear, owner): the linear uses the owner's weight
        self.training_outputs: set[str] = set()  # outputs computed only in training mode

    def copy(self) -> Graph:
        """An independent copy: nodes, containers and lists are new objects (attrs and types
        are immutable and shared), so a pass can rewrite it and leave its input as it was."""
        g = Graph(self.name, self.span, self.params)
        for n, data in self.g.nodes(data="data"):
            g.g.add_node(n, data=replace(data))
        for u, v, d in self.g.edges(data=True):
            g.g.add_edge(u, v, **d)
        g.inputs, g.outputs = list(self.inputs), list(self.outputs)
        g.containers = {p: replace(c, inputs=list(c.inputs), outputs=list(c.outputs))
                        for p, c in self.containers.items()}  # fmt: skip
        g._next = self._next
        g.load_rules = list(self.load_rules)
        g.optimized = self.optimized
        g.inference_only = list(self.inference_only)
        g.warnings = list(self.warnings)
        g.ties = list(self.ties)
        g.training_outputs = set(self.training_outputs)
        return g

    # ---- building
    def add(self, node: Node, inputs: list[Ref]) -> int:
        n = self._next
        self._next += 1
        self.g.add_node(n, data=node)
        for port, (src, out) in enumerate(inputs):
            self.g.add_edge(src, n, port=port, out=out)
        return n

    def node(self, n: int) -> Node:
        return self.g.nodes[n]["data"]

    def nodes(self) -> list[int]:
        return list(self.g.nodes)

    def __len__(self) -> int:
        return self.g.number_of_nodes()

    # ---- queries
    def num_params(self) -> int:
        """Parameters of the whole model (the sum over its nodes)."""
        return sum(data.params for _, data in self.g.nodes(data="data"))

    def inputs_of(self, n: int) -> list[Ref]:
        edges = sorted((d["port"], u, d["out"]) for u, _, d in self.g.in_edges(n, data=True))
        return [(u, out) for _, u, out in edges]

    def all_inputs(self) -> dict[int, list[Ref]]:
        """`inputs_of(n)` of every node, from one pass over the edges."""
        edges: dict[int, list[tuple[int, int, int]]] = {n: [] for n in self.g.nodes}
        for u, v, d in self.g.edges(data=True):
            edges[v].append((d["port"], u, d["out"]))
        return {n: [(u, out) for _, u, out in sorted(e)] for n, e in edges.items()}

    def input_types(self, n: int) -> list[TensorType]:
        return [self.node(u).types[out] for u, out in self.inputs_of(n)]

    def eval_outputs(self) -> list[tuple[str, Ref]]:
        """The outputs forward returns in eval mode: all but the training-only ones."""
        return [(name, ref) for name, ref in self.outputs if name not in self.training_outputs]

    def training_only(self) -> set[int]:
        """The nodes that only training-only outputs depend on: the branch eval mode skips."""
        return self.live() - self.live(training=False) if self.training_outputs else set()

    def live(self, training: bool = True) -> set[int]:
        """The nodes some model output depends on (the dead-code pass removes the others,
        modelc.lint warns about them); with `training` False, some eval-mode output."""
        live: set[int] = set()
        stack = [ref[0] for _, ref in (self.outputs if training else self.eval_outputs())]
        while stack:
            n = stack.pop()
            if n not in live:
                live.add(n)
                stack.extend(u for u, _ in self.inputs_of(n))
        return live

    def users(self, n: int) -> list[tuple[int, int, int]]:
        """(user, its input port, our output port) for every use of n."""
        return sorted((v, d["port"], d["out"]) for _, v, d in self.g.out_edges(n, data=True))

    def topo(self) -> list[int]:
        return list(nx.lexicographical_topological_sort(self.g))

    def type_of(self, ref: Ref) -> TensorType:
        return self.node(ref[0]).types[ref[1]]

    def by_name(self) -> dict[str, int]:
        return {self.node(n).name: n for n in self.g.nodes}

    # ---- rewriting (for passes)
    def replace_uses(self, old: Ref, new: Ref) -> None:
        """Point every use of `old` (edges, outputs, container boundaries) at `new`.

        The new node's own use of `old` is kept, so inserting a node after a value
        (`new = f(old)`, then replace) cannot create a self-loop.
        """
        src, out = old
        for _, v, key, d in list(self.g.out_edges(src, keys=True, data=True)):
            if d["out"] == out and v != new[0]:
                self.g.remove_edge(src, v, key)
                self.g.add_edge(new[0], v, port=d["port"], out=new[1])
        self.outputs = [(name, new if ref == old else ref) for name, ref in self.outputs]
        for c in self.containers.values():
            c.inputs = [(k, new if r == old else r) for k, r in c.inputs]
            c.outputs = [(k, new if r == old else r) for k, r in c.outputs]

    def remove(self, n: int) -> None:
        if self.g.out_degree(n):
            raise CompilerBug(f"removing node {self.node(n).name} that still has users")
        self.g.remove_node(n)

    # ---- checking
    def verify(self) -> None:
        """Raise CompilerBug if an invariant of the IR is broken. One pass over the nodes and
        one over the edges (it runs after every build)."""
        incoming: dict[int, list[tuple[int, int, int]]] = {n: [] for n in self.g.nodes}
        for u, v, d in self.g.edges(data=True):
            incoming[v].append((d["port"], u, d["out"]))
        self._verify_acyclic(incoming)
        names: dict[str, int] = {}
        for n, node in self.g.nodes(data="data"):
            if node.op not in ops.REGISTRY:
                raise CompilerBug(f"node {node.name}: unknown op {node.op!r}")
            if node.name in names:
                raise CompilerBug(f"node name {node.name!r} used twice")
            names[node.name] = n
            self._verify_ports(node, incoming[n])
            if node.scope not in self.containers:
                raise CompilerBug(f"node {node.name}: no container {'.'.join(node.scope)!r}")
        refs = [r for _, r in self.outputs]
        for c in self.containers.values():
            refs += [r for _, r in c.inputs] + [r for _, r in c.outputs]
        for u, out in refs:
            if u not in self.g or out >= len(self.node(u).types):
                raise CompilerBug(f"dangling reference to node {u} output {out}")
        if not self.outputs:
            raise CompilerBug(f"graph {self.name} has no outputs")
        names = {name for name, _ in self.outputs}
        if not self.training_outputs <= names or not self.eval_outputs():
            raise CompilerBug(f"graph {self.name}: training-only outputs {sorted(self.training_outputs)} "
                              f"are not a proper subset of its outputs {sorted(names)}")  # fmt: skip

    def _verify_acyclic(self, incoming: dict[int, list[tuple[int, int, int]]]) -> None:
        """Kahn's algorithm over `incoming`: every node is reached once its inputs are."""
        waiting = {n: len(e) for n, e in incoming.items()}
        users: dict[int, list[int]] = {n: [] for n in incoming}
        for v, edges in incoming.items():
            for _, u, _ in edges:
                users[u].append(v)
        ready = [n for n, k in waiting.items() if not k]
        seen = 0
        while ready:
            n = ready.pop()
            seen += 1
            for v in users[n]:
                waiting[v] -= 1
                if not waiting[v]:
                    ready.append(v)
        if seen != len(incoming):
            raise CompilerBug(f"graph {self.name} has a cycle")

    def _verify_ports(self, node: Node, incoming: list[tuple[int, int, int]]) -> None:
        ports = sorted(port for port, _, _ in incoming)
        if ports != list(range(len(ports))):
            raise CompilerBug(f"node {node.name}: input ports {ports} are not 0..n-1")
        opdef = node.opdef
        want = opdef.inputs
        extra = opdef.size_inputs and want is not None and len(ports) > want  # read for sizes only
        if len(ports) != want and not extra if want is not None else len(ports) < opdef.min_inputs:
            raise CompilerBug(f"node {node.name}: {len(ports)} inputs for op {node.op}")
        if not node.types:
            raise CompilerBug(f"node {node.name}: no inferred type")
        for _, u, out in incoming:
            if out >= len(self.node(u).types):
                raise CompilerBug(f"node {node.name}: input from missing output {out}")
