"""--rewrite separable: every standard k x k convolution becomes a depthwise k x k conv and a
pointwise 1 x 1 conv (MobileNet's depthwise separable convolution). NOT exact: a new
architecture, with fewer parameters and MACs, that must be trained.

    conv(N, k, s, p, d) on C channels, groups 1, k > 1
      =>  conv: [depthwise: conv(C, k, s, p, d, groups=C, bias=false),
                 pointwise: conv(N, 1, bias=<the conv's>)]

The pair sits in a named sequence that takes the conv's place (`conv1.depthwise`,
`conv1.pointwise` in the state_dict), so everything that read the conv reads the
pointwise's output, of the same type. Parameters go from N C k^2 to C k^2 + N C, MACs by
the factor 1/N + 1/k^2 (the separable report, -O1, shows the pairs again). Each rewrite is a
Change with the conv's parameters and MACs before and after; a note sums them up.

Invariants: only convolutions with learned weights are rewritten (a literal kernel is a
constant of the spec); the graph's outputs keep their types. It adds no load rules: the
function changed, so no checkpoint of the spec's model loads into the rewritten one (its
conv weights have other shapes; train it, and its own checkpoints load, at -O1 and -O2 too).
It runs only when named (`--rewrite separable`), before the passes of the level.
"""

from __future__ import annotations

from modelc.infer import infer_node
from modelc.ir import Container, Graph, Node
from modelc.passes.base import Change, PassResult, Refusal, register
from modelc.passes.convs import is_standard, kernel_text, learned_conv
from modelc.symbolic import Dim

__all__ = ["rewrite_separable"]

NAME = "rewrite-separable"


@register(NAME)
def rewrite_separable(graph: Graph) -> PassResult:
    """Replace each standard k x k conv by a depthwise k x k and a pointwise 1 x 1 conv (retrains)."""
    g = graph.copy()
    result = PassResult(NAME, g)
    before = (g.num_params(), _total_macs(g))
    for n in g.topo():
        node = g.node(n)
        if node.op != "conv" or dict(node.attrs)["groups"] != 1 or not any(k > 1 for k in node.attrs["k"]):
            continue
        if not is_standard(learned_conv(g, n)):
            result.refusals.append(Refusal(f"conv `{node.name}`", "its weights are fixed (a literal kernel)", node.span))
            continue
        result.changes.append(_split(g, n))
    if result.changes:
        result.notes.append(_summary(result.changes, before, (g.num_params(), _total_macs(g))))
        result.notes.append("the function changed (a new architecture to train): no load rules, so checkpoints "
                            "of the spec's model do not load into this one")  # fmt: skip
    return result


def _split(g: Graph, n: int) -> Change:
    # conv(N, k) on C channels  ->  [depthwise: conv(C, k, groups=C, bias=false), pointwise: conv(N, 1)]
    node = g.node(n)
    a = dict(node.attrs)
    src = g.inputs_of(n)[0]
    path = (*node.scope, node.local)
    c = a["in_channels"]
    # The depthwise conv keeps the node's id, so the new sequence sits where the conv did in
    # the generated code (units are ordered by their first node).
    dw = _conv(g, node, path, "depthwise", src, {**a, "out_channels": c, "groups": c, "bias": False})
    g.g.nodes[n]["data"] = dw
    pw = g.add(_conv(g, node, path, "pointwise", (n, 0), {**a, "k": 1, "s": 1, "p": 0, "d": 1, "groups": 1}),
               [(n, 0)])  # fmt: skip
    g.replace_uses((n, 0), (pw, 0))  # everything that read the conv reads the pointwise
    g.containers[path] = Container(path, "seq", "", node.span, inputs=[("x", src)], outputs=[("out", (pw, 0))],
                                   trace=node.trace, origin="group", var=node.var)  # fmt: skip
    params = dw.params + g.node(pw).params
    macs = dw.macs + g.node(pw).macs
    what = (f"conv `{node.name}` {kernel_text(a)}, {c} -> {a['out_channels']} became depthwise "
            f"`{node.name}.depthwise` + pointwise `{node.name}.pointwise`: params {node.params:,} -> "
            f"{params:,}, MACs {_dim(node.macs)} -> {_dim(macs)}")  # fmt: skip
    return Change(what, (node.name,), node.span, params=params - node.params, macs=macs - node.macs, count=1)


def _conv(g: Graph, like: Node, path: tuple[str, ...], local: str, src, attrs: dict) -> Node:
    """A conv node named `local` in container `path` reading `src`, at `like`'s spec line."""
    resolved, types, params, macs = infer_node(like.opdef, attrs, [g.type_of(src)], like.span, like.trace)
    return Node("conv", resolved, path, local, like.span, like.trace, module=True, labelled=True,
                types=types, params=params, macs=macs)  # fmt: skip


def _total_macs(g: Graph) -> Dim:
    total: Dim = 0
    for n in g.nodes():
        total = total + g.node(n).macs
    return total


def _dim(d: Dim) -> str:
    return f"{d:,}" if isinstance(d, int) else str(d)


def _summary(changes: list[Change], before: tuple[int, Dim], after: tuple[int, Dim]) -> str:
    return (f"{len(changes)} standard convolutions split: parameters {before[0]:,} -> {after[0]:,} "
            f"({sum(c.params for c in changes):+,}), MACs {_dim(before[1])} -> {_dim(after[1])}")  # fmt: skip
