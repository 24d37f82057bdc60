"""What every pass shares: the record of what it did, and small queries and edits on the IR.

A pass is a pure function `Graph -> PassResult`: it rewrites a copy and returns it with a
`Change` per rewrite (what matched, where in the spec, what it became, and the change in
parameters, MACs and nodes) and a `Refusal` per candidate it left alone, and why. Passes
never import emit, render or cli; they rewrite the IR, and the emitter writes what it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace

from modelc.diagnostics import CompilerBug, Span
from modelc.ir import Attrs, Graph, Node, Ref
from modelc.symbolic import Dim

__all__ = [
    "PASSES", "Change", "Pass", "PassResult", "Refusal", "register", "bypass", "consumers", "is_output",
    "new_node", "only_user", "retype", "set_attrs", "shared_weight_problem", "unique_local",
]  # fmt: skip


@dataclass(frozen=True)
class Change:
    """One rewrite: `what` in words, `nodes` the qualified names it matched, `span` the spec
    line of the first; `params`, `macs`, `count` the change it made (negative: fewer)."""

    what: str
    nodes: tuple[str, ...]
    span: Span | None
    params: int = 0
    macs: Dim = 0
    count: int = 0  # nodes


@dataclass(frozen=True)
class Refusal:
    """A candidate a pass did not rewrite, and why ("conv `layer1.0.conv1` has two users")."""

    what: str
    why: str
    span: Span | None


@dataclass
class PassResult:
    name: str
    graph: Graph
    changes: list[Change] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # findings that change nothing (MAC savings)


@dataclass(frozen=True)
class Pass:
    name: str  # kebab-case, as --explain and the generated header print it
    run: Callable[[Graph], PassResult]
    doc: str


PASSES: dict[str, Pass] = {}


def register(name: str) -> Callable:
    """`@register("fold-batchnorm")` on a function `(graph) -> PassResult`."""

    def wrap(fn: Callable[[Graph], PassResult]) -> Callable[[Graph], PassResult]:
        if name in PASSES:
            raise CompilerBug(f"pass {name} registered twice")
        PASSES[name] = Pass(name, fn, (fn.__doc__ or "").strip().split("\n")[0])
        return fn

    return wrap


# ---- queries ---------------------------------------------------------------------------------
def consumers(g: Graph, ref: Ref) -> list[tuple[int, int]]:
    """(user, its input port) for every use of output `ref[1]` of node `ref[0]`."""
    return [(v, port) for v, port, out in g.users(ref[0]) if out == ref[1]]


def shared_weight_problem(g: Graph, n: int) -> str | None:
    """Why a rewrite may not change this layer's weight: it is shared (a linear's `tie`, or the
    owner such a tie names), stored in another layout (`transposed`), which the checkpoint
    rules (modelc.runtime) do not convert, part of its bias held at zero (`bias_mask`), which
    a merged or folded bias would not keep, or fixed by the spec (literal numbers,
    trainable=false); None when it may."""
    node = g.node(n)
    a = node.attrs
    if a.get("weight") is not None or a.get("bias_values") is not None or not a.get("trainable", True):
        return f"{node.op} `{node.name}` has fixed weights (constants of the spec)"
    if node.attrs.get("tie") is not None or any(owner == node.name for _, owner in g.ties):
        return f"{node.op} `{node.name}` shares its weight with another layer (tie)"
    if node.attrs.get("transposed"):
        return f"{node.op} `{node.name}` stores its weight [in, out] (transposed)"
    if node.attrs.get("bias_mask") is not None:
        return f"{node.op} `{node.name}` holds part of its bias at zero (bias_mask)"
    return None


def is_output(g: Graph, ref: Ref) -> bool:
    return any(r == ref for _, r in g.outputs)


def only_user(g: Graph, ref: Ref) -> int | None:
    """The one node reading `ref`, if exactly one does and `ref` is not a model output."""
    users = consumers(g, ref)
    if len(users) != 1 or is_output(g, ref):
        return None
    return users[0][0]


# ---- edits -----------------------------------------------------------------------------------
def bypass(g: Graph, n: int, source: Ref | None = None) -> None:
    """Remove node `n` (one output), its users reading `source` (default: its first input)."""
    src = source if source is not None else g.inputs_of(n)[0]
    g.replace_uses((n, 0), src)
    for u, _ in list(g.g.in_edges(n)):
        for key in list(g.g[u][n]):
            g.g.remove_edge(u, n, key)
    g.remove(n)


def set_attrs(g: Graph, n: int, **changes) -> Node:
    """Node `n` with attributes changed, shape rules re-applied (types, params, MACs)."""
    from modelc.infer import infer_node

    node = g.node(n)
    attrs = {**dict(node.attrs), **changes}
    resolved, types, params, macs = infer_node(node.opdef, attrs, g.input_types(n), node.span, node.trace)
    if types != node.types:
        raise CompilerBug(f"pass changed the type of {node.name}: {node.types} -> {types}")
    new = replace(node, attrs=resolved, types=types, params=params, macs=macs)
    g.g.nodes[n]["data"] = new
    return new


def new_node(g: Graph, op: str, attrs: dict, inputs: list[Ref], like: Node, hint: str, **fields) -> Ref:
    """Add an op node reading `inputs` in `like`'s container, at `like`'s spec line, named
    `hint` (made unique there); types from the op's rules (SpecError if they refuse)."""
    from modelc.infer import infer_node
    from modelc.ops import REGISTRY
    from modelc.ops.base import REQUIRED

    opdef = REGISTRY[op]
    # The attributes a pass leaves out take their defaults, as a spec's call does (bind_attrs).
    full = {a.name: a.default for a in opdef.attrs if a.default is not REQUIRED and a.name not in attrs}
    types = [g.type_of(r) for r in inputs]
    resolved, outs, params, macs = infer_node(opdef, {**full, **attrs}, types, like.span, like.trace)
    node = Node(op, resolved, like.scope, unique_local(g, like.scope, hint), like.span, like.trace,
                types=outs, params=params, macs=macs, **fields)  # fmt: skip
    return (g.add(node, inputs), 0)


def unique_local(g: Graph, scope: tuple[str, ...], hint: str) -> str:
    """`hint`, or `hint_1`, `hint_2`, ...: a name no node or child container of `scope` has,
    that a generated module may use as an attribute (names.reserved_attribute)."""
    from modelc.names import reserved_attribute

    taken = {node.local for _, node in g.g.nodes(data="data") if node.scope == scope}
    taken |= {path[-1] for path in g.containers if path and path[:-1] == scope}
    name, k = hint, 0
    while name in taken or reserved_attribute(name):
        k += 1
        name = f"{hint}_{k}"
    return name


def retype(g: Graph, n: int) -> Node:
    """Node `n` with its shape rules re-applied to its current inputs."""
    return set_attrs(g, n)


def attrs_of(node: Node) -> dict:
    return dict(node.attrs)


def with_attrs(node: Node, **changes) -> Attrs:
    return Attrs({**dict(node.attrs), **changes})
