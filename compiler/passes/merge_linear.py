"""merge-qkv: linear layers reading one tensor become one linear and a split (-O2, exact up to
rounding): BERT's `query`, `key` and `value` projections are one GEMM of 3x the width.

    q = x -> query: linear(D)                    qkv = x -> query_key_value: linear(3 * D)
    k = x -> key: linear(D)               =>     q, k, v = qkv -> chunk(3)
    v = x -> value: linear(D)

The merged layer is a new module named after the merged ones, in their container; its
weight (and bias) is theirs concatenated along dim 0, which a load rule (`concat`, modelc
.runtime) computes when a checkpoint of the unoptimized model is loaded.

Refused: linears in different containers, or in a numbered sequence (its items are numbered
and chained); linears with and without a bias (each such set merges on its own); a linear
whose value reaches a `view` (the split's parts are not contiguous).
"""

from __future__ import annotations

from modelc.ir import Graph, LoadRule, Ref
from modelc.passes.base import Change, PassResult, Refusal, consumers, new_node, register, shared_weight_problem

__all__ = ["merge_qkv"]


@register("merge-qkv")
def merge_qkv(graph: Graph) -> PassResult:
    """Merge linear layers that read one tensor into one linear and a split."""
    g = graph.copy()
    result = PassResult("merge-qkv", g)
    for n in g.topo():
        if n not in g.g:  # a linear merged already
            continue
        for port in range(len(g.node(n).types)):
            for group in _groups(g, (n, port), result):
                result.changes.append(_merge(g, (n, port), group))
    return result


def _groups(g: Graph, ref: Ref, result: PassResult) -> list[list[int]]:
    """The sets of linears reading `ref` that may merge (two or more each); refusals recorded."""
    linears = sorted({v for v, _ in consumers(g, ref) if g.node(v).op == "linear"})
    if len(linears) < 2:
        return []
    ok = [n for n in linears if not _refuse(g, n, _problem(g, n), result)]
    scopes = {g.node(n).scope for n in ok}
    if len(scopes) > 1:
        names = ", ".join(f"`{g.node(n).name}`" for n in ok)
        node = g.node(ok[0])
        result.refusals.append(Refusal(f"linears {names}", "they read one tensor in different blocks", node.span))
        return []
    by_bias: dict[bool, list[int]] = {}
    for n in ok:
        by_bias.setdefault(g.node(n).attrs["bias"], []).append(n)
    return [group for group in by_bias.values() if len(group) > 1]


def _problem(g: Graph, n: int) -> str | None:
    node = g.node(n)
    shared = shared_weight_problem(g, n)
    if shared:
        return shared
    if g.containers[node.scope].kind == "seq":
        return f"it is a step of the numbered sequence `{'.'.join(node.scope)}`"
    view = _view_after(g, (n, 0))
    if view is not None:
        return f"its value reaches view `{g.node(view).name}`, which needs a contiguous tensor"
    return None


def _refuse(g: Graph, n: int, why: str | None, result: PassResult) -> bool:
    if why:
        result.refusals.append(Refusal(f"linear `{g.node(n).name}`", why, g.node(n).span))
    return why is not None


def _view_after(g: Graph, ref: Ref) -> int | None:
    """A reader needing contiguous input (view) that `ref`'s layout reaches, or None."""
    for v, _ in consumers(g, ref):
        node = g.node(v)
        if node.opdef.needs_contiguous:
            return v
        if node.opdef.layout(dict(node.attrs)) == "same":
            found = next((f for k in range(len(node.types)) if (f := _view_after(g, (v, k))) is not None), None)
            if found is not None:
                return found
    return None


def _merge(g: Graph, ref: Ref, group: list[int]) -> Change:
    """linear(x, a), linear(x, b), ... -> split(linear(x, a + b + ...), [a, b, ...])."""
    nodes = [g.node(n) for n in group]
    first, sizes = nodes[0], [node.attrs["out_features"] for node in nodes]
    bias = first.attrs["bias"]
    merged = new_node(g, "linear", {"out_features": sum(sizes), "bias": bias}, [ref], first,
                      "_".join(node.local for node in nodes), module=True)  # fmt: skip
    out_vars = tuple(node.var or node.local for node in nodes)
    if len(set(sizes)) == 1:
        parts = new_node(g, "chunk", {"n": len(sizes), "dim": -1}, [merged], first, "chunk", out_vars=out_vars)
    else:
        parts = new_node(g, "split", {"sizes": tuple(sizes), "dim": -1}, [merged], first, "split", out_vars=out_vars)
    for k, n in enumerate(group):
        g.replace_uses((n, 0), (parts[0], k))
        g.remove(n)
    name = g.node(merged[0]).name
    g.load_rules.append(LoadRule("concat", (name, tuple(node.name for node in nodes), bias)))
    listed = ", ".join(f"`{node.name}`" for node in nodes)
    return Change(f"linears {listed} read one tensor: one linear `{name}` ({sum(sizes)} features) and a "
                  f"{g.node(parts[0]).op}", tuple(node.name for node in nodes), first.span,
                  count=2 - len(group))  # fmt: skip
