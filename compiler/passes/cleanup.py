"""Passes that remove work an inference module does not need (-O1, exact in eval mode).

    drop-training  the training-only outputs (`output training aux = ...`), which eval mode
                 never returns; dead-code then removes their branch
    drop-eval    dropout (and the other layers that are the identity in eval mode: noise,
                 identity) becomes nothing
    dead-code    layers whose values reach no output are removed
    cse          two parameter-free ops of the same kind, attributes and inputs compute one value
"""

from __future__ import annotations

from modelc.ir import Graph, LoadRule
from modelc.passes.base import Change, PassResult, bypass, is_output, register

__all__ = ["common_subexpressions", "dead_code", "drop_empty_containers", "drop_eval", "drop_training"]

# Ops that are the identity in eval mode (their `reference` hook is the identity too;
# tests/test_passes.py checks that).
EVAL_IDENTITY = ("dropout", "identity", "gaussian_noise", "masking_noise", "stochastic_depth")


@register("drop-training")
def drop_training(graph: Graph) -> PassResult:
    """Drop the training-only outputs: an inference module returns what eval mode returns."""
    g = graph.copy()
    result = PassResult("drop-training", g)
    for name, (n, _) in g.outputs:
        if name in g.training_outputs:
            node = g.node(n)  # said where the model makes it: the outermost block instantiation
            span = node.trace[-1].span if node.trace and node.trace[-1].span else node.span
            result.changes.append(Change(f"dropped the training-only output `{name}` (its branch is dead "
                                         "code now)", (node.name,), span))  # fmt: skip
    if result.changes:  # NOTE: [Training-only outputs] in ir.py
        g.outputs = g.eval_outputs()
        g.containers[()].outputs = list(g.outputs)
        g.training_outputs = set()
        g.inference_only.append("training-only outputs removed")
    return result


@register("drop-eval")
def drop_eval(graph: Graph) -> PassResult:
    """Drop layers that are the identity in eval mode (dropout, noise, identity)."""
    g = graph.copy()
    result = PassResult("drop-eval", g)
    for n in g.topo():
        node = g.node(n)
        if node.op not in EVAL_IDENTITY or len(g.inputs_of(n)) != 1:
            continue
        src = g.inputs_of(n)[0]
        if g.type_of(src) != node.type:
            continue
        bypass(g, n, src)
        result.changes.append(Change(f"dropped {node.op} `{node.name}` (the identity in eval mode)",
                                     (node.name,), node.span, count=-1))  # fmt: skip
    if result.changes:
        drop_empty_containers(g)
    if any("dropout" in c.what for c in result.changes):
        g.inference_only.append("dropout removed")
    return result


@register("dead-code")
def dead_code(graph: Graph) -> PassResult:
    """Remove layers whose values reach no model output."""
    g = graph.copy()
    result = PassResult("dead-code", g)
    live = g.live()
    for n in reversed(g.topo()):
        node = g.node(n)
        if n in live or node.op == "input":
            continue
        _drop_boundaries(g, n)
        g.remove(n)
        if node.params:
            g.load_rules.append(LoadRule("drop", (node.name,)))
        result.changes.append(Change(f"removed {node.op} `{node.name}`: its value reaches no output",
                                     (node.name,), node.span, params=-node.params, macs=-node.macs, count=-1))  # fmt: skip
    if result.changes:
        drop_empty_containers(g)
    return result


def drop_empty_containers(g: Graph) -> None:
    """Forget containers (blocks, sequences) left without nodes by a rewrite."""
    occupied = {node.scope[:i] for _, node in g.g.nodes(data="data") for i in range(len(node.scope) + 1)}
    for path in [p for p in g.containers if p and p not in occupied]:
        del g.containers[path]


def _drop_boundaries(g: Graph, n: int) -> None:
    """Forget a dead node's values at container boundaries (a block output nobody reads)."""
    for c in g.containers.values():
        c.inputs = [(k, r) for k, r in c.inputs if r[0] != n]
        c.outputs = [(k, r) for k, r in c.outputs if r[0] != n]


@register("cse")
def common_subexpressions(graph: Graph) -> PassResult:
    """Compute once what two parameter-free ops of the same kind, attributes and inputs compute."""
    g = graph.copy()
    result = PassResult("cse", g)
    seen: dict[tuple, int] = {}
    for n in g.topo():
        node = g.node(n)
        if node.params or node.module or node.op == "input" or len(node.types) != 1:
            continue  # a module (or a layer with weights) is its own computation
        key = (node.scope, node.op, node.attrs, tuple(g.inputs_of(n)))  # values cross containers only at their boundaries
        first = seen.setdefault(key, n)
        if first == n or is_output(g, (n, 0)):
            continue
        bypass(g, n, (first, 0))
        result.changes.append(Change(f"{node.op} `{node.name}` computes what `{g.node(first).name}` computes",
                                     (node.name, g.node(first).name), node.span, macs=-node.macs, count=-1))  # fmt: skip
    return result
