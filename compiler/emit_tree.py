"""The units of emitted classes and the variables of their forwards (for emit.py).

NOTE: [Forward bodies] in emit.py says how units are ordered and variables named.
"""

from __future__ import annotations

import heapq
from collections import defaultdict

from modelc.diagnostics import CompilerBug
from modelc.ir import Container, Graph, Ref
from modelc.names import Namespace

__all__ = ["RESERVED", "Fingerprint", "Tree", "Vars", "extra_inputs", "last_uses", "live_units", "unit_input", "unit_local", "unit_output",
           "unit_reads"]

RESERVED = frozenset({"self", "torch", "nn", "rt"})

class Tree:
    """Containers' direct members (units) of one graph, ordered for emission."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.inputs = graph.all_inputs()  # node -> its inputs in port order (`inputs_of`)
        self.members: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for n in graph.nodes():
            self.members[graph.node(n).scope].append(n)
        self.children: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for path in graph.containers:
            if path:
                self.children[path[:-1]].append(path)
        self.shared: dict = {}  # block instance path -> its class and call (emit_share.py)
        self.variant = False  # a graph built with a parameter changed (NOTE: [Model arguments])
        self._units: dict[tuple[str, ...], list] = {}  # memo of ordered_units
        self._subtrees: dict[tuple[str, ...], list[int]] = {}  # memo of _subtree_nodes
        self.forwards: dict[tuple, list[str]] = {}  # (path, elided units) -> forward text (emit_share.py)
        self._prints: dict[tuple[str, ...], Fingerprint | None] = {}  # memo of fingerprint

    def unit_of(self, path: tuple[str, ...], n: int):
        scope = self.graph.node(n).scope
        if scope == path:
            return ("node", n)
        if scope[: len(path)] == path:
            return ("container", scope[: len(path) + 1])
        return None

    def ordered_units(self, path: tuple[str, ...]) -> list:
        if path not in self._units:
            self._units[path] = self._order(path)
        return self._units[path]

    def _order(self, path: tuple[str, ...]) -> list:
        units = {("node", n): n for n in self.members[path] if self.graph.node(n).op != "input"}
        for child in self.children[path]:
            units[("container", child)] = min(self._subtree_nodes(child), default=0)
        after: dict = {unit: {} for unit in units}  # unit -> the units that read it (an ordered set)
        for unit in units:
            # A container's own inputs count too: a block may pass one through untouched or
            # ignore it, so no node inside it reads that input.
            extra = [u for _, (u, _) in self.graph.containers[unit[1]].inputs] if unit[0] == "container" else []
            for n in self._nodes_of(unit):
                extra += [u for u, _ in self.inputs[n]]
            for u in extra:
                src = self.unit_of(path, u)
                if src is not None and src != unit and src in units:
                    after[src][unit] = None
        return _lexicographic_order(units, after)

    def _nodes_of(self, unit) -> list[int]:
        kind, ref = unit
        return [ref] if kind == "node" else self._subtree_nodes(ref)

    def fingerprint(self, path: tuple[str, ...]) -> Fingerprint | None:
        """What the instance at `path` is made of, relative to it: equal for two instances
        (of one graph or two) whose subgraphs are the same but for their paths and node ids,
        so everything emitted from one is emitted from the other. None where the instance
        reads a value it is not given (no key can say where that value comes from)."""
        if path not in self._prints:
            self._prints[path] = self._fingerprint(path)
        return self._prints[path]

    def _fingerprint(self, path: tuple[str, ...]) -> Fingerprint | None:
        graph, k, inputs = self.graph, len(path), self.graph.containers[path].inputs
        nodes = sorted(self._subtree_nodes(path))  # ids in order: emission orders units by them
        rank = {n: i for i, n in enumerate(nodes)}
        given = {ref: ("in", i) for i, (_, ref) in enumerate(inputs)}

        def where(ref: Ref):
            if ref[0] in rank:
                return rank[ref[0]], ref[1]
            if ref in given:
                return given[ref]
            raise LookupError(ref)

        items: list = [tuple(graph.type_of(ref) for _, ref in inputs)]
        try:
            for n in nodes:
                d = graph.node(n)
                items.append((d.scope[k:], d.local, d.op, d.attrs, d.module, d.labelled, d.var, d.out_vars, d.types,
                              d.params, d.macs, d.inplace, d.span.file, d.span, tuple(where(r) for r in self.inputs[n])))
            stack = [path]
            while stack:
                c = graph.containers[stack.pop()]
                stack += self.children[c.path]
                items.append((c.path[k:], c.kind, c.name, c.span.file, c.span, c.args, c.defaults, c.origin, c.unrolled,
                              c.var, c.trace[0].span if c.trace else None,
                              tuple((name, where(r)) for name, r in c.inputs),
                              tuple((name, where(r)) for name, r in c.outputs)))  # fmt: skip
            return Fingerprint(tuple(items))
        except (LookupError, TypeError):  # an outside value, or an attribute that cannot be hashed
            return None

    def _subtree_nodes(self, path: tuple[str, ...]) -> list[int]:
        if path not in self._subtrees:
            out = list(self.members[path])
            for child in self.children[path]:
                out += self._subtree_nodes(child)
            self._subtrees[path] = out
        return self._subtrees[path]


class Fingerprint:
    """A tuple that hashes once (Tree.fingerprint: instances are looked up by it often)."""

    __slots__ = ("_hash", "items")

    def __init__(self, items: tuple):
        self.items = items
        self._hash = hash(items)

    def __hash__(self) -> int:
        return self._hash

    def __eq__(self, other) -> bool:
        return isinstance(other, Fingerprint) and self._hash == other._hash and self.items == other.items


def _lexicographic_order(keys: dict, after: dict) -> list:
    """A topological order of `keys`' units (edges: `after`), taking among the units that are
    ready the one with the smallest key, then the first inserted: networkx's
    lexicographical_topological_sort, without building a networkx graph per class."""
    rank = {unit: i for i, unit in enumerate(keys)}
    waiting = dict.fromkeys(keys, 0)
    for successors in after.values():
        for unit in successors:
            waiting[unit] += 1
    ready = [(keys[u], rank[u], u) for u, n in waiting.items() if n == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        _, _, unit = heapq.heappop(ready)
        order.append(unit)
        for succ in after[unit]:
            waiting[succ] -= 1
            if waiting[succ] == 0:
                heapq.heappush(ready, (keys[succ], rank[succ], succ))
    if len(order) != len(keys):
        raise CompilerBug("the units of a class depend on each other in a cycle")
    return order


class Vars:
    """Variable names of one forward: spec binding names, reused once dead."""

    def __init__(self, last_use: dict[Ref, float]):
        self.last_use = last_use
        self.env: dict[Ref, str] = {}
        self.holder: dict[str, Ref] = {}
        self.ns = Namespace(RESERVED)

    def bind(self, ref: Ref, hint: str, at: int) -> str:
        if ref in self.env:
            return self.env[ref]
        base = self._base(hint)
        name, k = base, 0
        while name in RESERVED or (name in self.holder and self.last_use.get(self.holder[name], -1) > at):
            k += 1
            name = f"{base}_{k}"
        self.holder[name] = ref
        self.env[ref] = name
        return name

    def param(self, ref: Ref, hint: str) -> str:
        """A parameter of `forward`: a name no earlier parameter has, even an unused one (Python
        refuses `def forward(self, a, a)`); a tensor passed twice is read through the first."""
        base = self._base(hint)
        name, k = base, 0
        while name in RESERVED or name in self.holder:
            k += 1
            name = f"{base}_{k}"
        self.holder[name] = (-1, -1) if ref in self.env else ref
        self.env.setdefault(ref, name)
        return name

    def _base(self, hint: str) -> str:
        # `_` takes the outputs a forward throws away (`y, _ = self.lstm(x)`): never a value's name.
        base = self.ns._sanitize(hint)
        return "_v" if base == "_" else base


def last_uses(tree: Tree, c: Container, units, alias: dict[Ref, Ref] | None = None) -> dict[Ref, float]:
    """When each value is read last (by the index of the unit). `alias`: values read as
    another (an elided unit's output as its input)."""
    alias = alias or {}
    last: dict[Ref, float] = {}
    for i, (kind, ref) in enumerate(units):
        for r in unit_reads(tree, (kind, ref)):
            last[r] = i
            if r in alias:
                last[alias[r]] = i
        if kind == "container" and tree.graph.containers[ref].unrolled:
            for r in extra_inputs(tree, ref):
                last[r] = i + 0.5  # read by a later item: not to be overwritten by an item's output
    for _, r in c.outputs:
        last[r] = float("inf")
        if r in alias:
            last[alias[r]] = float("inf")
    return last


def extra_inputs(tree: Tree, path: tuple[str, ...]) -> set[Ref]:
    """What the items of an unrolled sequence read besides the previous item's output: the
    sequence's own input among them when an item takes it again (`for ... { Dec(x) }`)."""
    graph, out = tree.graph, set()
    first = 0 if graph.containers[path].origin == "branches" else 1  # parallel branches: every input
    for kind, ref in tree.ordered_units(path):
        out.update(unit_reads(tree, (kind, ref))[first:])
        if kind == "container" and graph.containers[ref].unrolled:
            out |= extra_inputs(tree, ref)
    return out


def unit_input(tree: Tree, unit) -> Ref | None:
    """The one input of a unit with one input (else None)."""
    ins = unit_reads(tree, unit)
    return ins[0] if len(ins) == 1 else None


def unit_output(tree: Tree, unit) -> Ref | None:
    """The one output of a unit with one output (else None)."""
    kind, ref = unit
    if kind == "node":
        return (ref, 0) if len(tree.graph.node(ref).types) == 1 else None
    outs = tree.graph.containers[ref].outputs
    return outs[0][1] if len(outs) == 1 else None


def live_units(tree: Tree, c: Container, units) -> list:
    """`units` less the parameter-free ops whose values nothing reads (a `chunk` whose parts
    only the other instances of a block use): dead code in a forward. Submodules stay: their
    parameters are in the state_dict, and every parameter is used in every forward."""
    live: set[Ref] = {r for _, r in c.outputs}
    keep = []
    for unit in reversed(units):
        kind, ref = unit
        if kind == "node":
            node = tree.graph.node(ref)
            if not node.module and not any((ref, k) in live for k in range(len(node.types))):
                continue
            live.update(tree.inputs[ref])
        else:
            live.update(r for _, r in tree.graph.containers[ref].inputs)
            if tree.graph.containers[ref].unrolled:
                live.update(extra_inputs(tree, ref))
        keep.append(unit)
    return keep[::-1]


def unit_reads(tree: Tree, unit) -> list[Ref]:
    """The values a unit reads: a node's inputs in port order, a container's inputs."""
    kind, ref = unit
    return tree.inputs[ref] if kind == "node" else [r for _, r in tree.graph.containers[ref].inputs]


def unit_local(tree: Tree, unit) -> str:
    """A unit's name in its container: the node's or the child container's."""
    kind, ref = unit
    return tree.graph.node(ref).local if kind == "node" else ref[-1]
