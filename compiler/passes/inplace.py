"""inplace: activations and residual adds overwrite their input where nothing else needs it
(-O1, exact, also in training: torchvision's `ReLU(inplace=True)` and `out += identity`).

NOTE: [In place] An op may overwrite its input x when: it has an in-place form
(`OpDef.inplace_call`); x has no other reader and is not a model input or output; x is a
new tensor, not a view of another; and the op that made x does not keep x for its own
backward pass and returns a new tensor, not a view (`OpDef.saves_output` False, declared
op by op: a conv keeps its input, not its output, but a ReLU, a softmax, or anything
already done in place keeps its result, and a reshape may return a view). The last rule is
what makes `relu_` after a convolution or a batchnorm safe in training, and `relu_` after
`sigmoid` or after another in-place op not. A residual `a + b` overwrites whichever operand
qualifies (addition is commutative) and only one of the same shape and element type as the
sum (no broadcasting into it).
"""

from __future__ import annotations

from modelc.ir import Graph
from modelc.passes.base import Change, PassResult, Refusal, only_user, register

__all__ = ["inplace"]


@register("inplace")
def inplace(graph: Graph) -> PassResult:
    """Run activations and residual adds in place where their input has no other use."""
    g = graph.copy()
    result = PassResult("inplace", g)
    for n in g.topo():
        node = g.node(n)
        ins = g.inputs_of(n)
        if node.opdef.inplace_call(dict(node.attrs), [f"x{k}" for k in range(len(ins))]) is None:
            continue  # no in-place form for these arguments (`a + b + c` has none)
        reasons = []
        for port, ref in enumerate(ins[: 2 if node.op == "add" else 1]):
            why = _unsafe(g, n, ref)
            if why is None:
                if port:  # the operand to overwrite goes first
                    _swap_ports(g, n, 0, port)
                g.g.nodes[n]["data"].inplace = True
                result.changes.append(Change(f"{node.op} `{node.name}` runs in place", (node.name,), node.span))
                break
            reasons.append(why)
        else:
            result.refusals.append(Refusal(f"{node.op} `{node.name}`", "; ".join(reasons), node.span))
    return result


def _unsafe(g: Graph, n: int, ref) -> str | None:
    producer = g.node(ref[0])
    node = g.node(n)
    if producer.op == "input":
        return f"its input `{producer.name}` is a model input"
    if only_user(g, ref) != n:
        return f"`{producer.name}` has other users or is a model output"
    keeper = _keeper(g, ref)
    if keeper is not None:
        return f"{keeper.op} `{keeper.name}` may keep its output for its backward pass, or return a view"
    if g.type_of(ref) != node.type:
        return f"`{producer.name}` is {g.type_of(ref)}, the result {node.type}"
    return None


def _keeper(g: Graph, ref):
    """The op that may keep (or alias) the tensor `ref` holds: its producer, or any op that
    already updated that tensor in place before; None if none does."""
    while True:
        producer = g.node(ref[0])
        if producer.opdef.saves_output:
            return producer
        if not producer.inplace:
            return None
        ref = g.inputs_of(ref[0])[0]  # an in-place op's tensor is its first input's


def _swap_ports(g: Graph, n: int, a: int, b: int) -> None:
    for _, _, key, d in list(g.g.in_edges(n, keys=True, data=True)):
        if d["port"] in (a, b):
            d["port"] = b if d["port"] == a else a
