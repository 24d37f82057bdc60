"""fuse-attention: attention written from primitives becomes one scaled_dot_product_attention
call (-O2): torch's fused kernels never materialise the [T, S] scores and weights.

    softmax(q @ transpose(k, -2, -1) * c + M) @ v    =>  scaled_dot_product_attention(q, k, v, M, scale=c)
    masked_fill(s, causal_mask(s)) -> softmax         =>  ..., is_causal=True (no mask tensor)
    reshape(concat(unsqueeze(k), ...)) as k and v     =>  ..., enable_gqa=True (k, v unrepeated)

What matches and what is refused: NOTE: [The attention pattern] in attention_match.py.

NOTE: [Fully masked rows] Where a mask hides every key of a query, the written form computes
softmax of a row of -inf, 0/0: NaN. torch's scaled_dot_product_attention gives 0 there (its
CPU kernels, CUDA's math and memory-efficient ones; cuDNN's, for half precision, gives other
values with a bool mask). The fused module keeps torch's 0: a
NaN row is no value (modelc's verify compares nothing there either, NOTE: [Comparing with
the interpreter]), and it would spread to every position through the next layer. So the
outputs agree wherever the unoptimized module's are finite; a fully masked row is 0 at -O2.

Invariants: the fused call has the type of the `weights @ v` it replaces; every node it
replaces had no reader outside the pattern; a candidate that cannot be rewritten leaves the
graph exactly as it was (the rewrite works on a copy, kept only when it succeeds).
"""

from __future__ import annotations

from modelc.diagnostics import CompilerBug, SpecError
from modelc.ir import Graph, Ref
from modelc.passes.attention_match import Attention, Mask, match
from modelc.passes.base import Change, PassResult, Refusal, new_node, register

__all__ = ["fuse_attention"]


@register("fuse-attention")
def fuse_attention(graph: Graph) -> PassResult:
    """Fuse softmax(q k^T * c + M) v written from primitives into scaled_dot_product_attention."""
    g = graph.copy()
    result = PassResult("fuse-attention", g)
    for sm in [n for n in g.topo() if g.node(n).op == "softmax"]:
        if sm not in g.g:
            continue
        found = match(g, sm)
        if isinstance(found, str):
            result.refusals.append(Refusal(f"softmax `{g.node(sm).name}`", found, g.node(sm).span))
        elif found is not None:
            g = _try(g, found, result)
    result.graph = g
    if any(c.what.startswith("attention with dropout") for c in result.changes):
        g.inference_only.append("the attention weights' dropout removed")
    return result


class _Unfit(Exception):
    """The fused call would not compute the value it replaces (its shape differs)."""


def _try(g: Graph, att: Attention, result: PassResult) -> Graph:
    """`g` with `att` fused (and the change recorded), or `g` as it was (and the refusal)."""
    trial = g.copy()
    try:
        change = _fuse(trial, att)
    except (SpecError, _Unfit) as exc:  # an op's rule refused a node the rewrite made
        node = g.node(att.scores)
        text = exc.diagnostics[0].message if isinstance(exc, SpecError) else str(exc)
        why = f"scaled_dot_product_attention cannot take it: {text}"
        result.refusals.append(Refusal(f"attention at matmul `{node.name}`", why, node.span))
        return g
    result.changes.append(change)
    return trial


def _fuse(g: Graph, att: Attention) -> Change:
    out = g.node(att.out)
    removed = {n: g.node(n) for n in att.nodes}
    size = len(g)
    q, k, v = att.q, _key(g, att, out), att.v
    if att.view is not None:  # NOTE: [Regrouped scores] in attention_match.py
        q, k, v = (_regroup(g, r, att.view, out, name) for r, name in ((q, "q"), (k, "k"), (v, "v")))
    mask, causal = _mask(g, att.masks, out)
    attrs = {"causal": causal, "scale": att.scale, "enable_gqa": att.group > 1}
    inputs = [q, k, v] + ([mask] if mask is not None else [])
    ref = new_node(g, "scaled_dot_product_attention", attrs, inputs, out, "attention", var=out.var or out.local)
    fused = ref
    if att.view is not None:
        ref = _regroup(g, ref, out.type.dims[:-2], out, out.var or out.local)
    if g.node(ref[0]).types != out.types:  # v broadcast over more batch dimensions than q and k
        raise _Unfit(f"it would give {g.node(ref[0]).type}, the matmul `{out.name}` gives {out.type}")
    g.replace_uses((att.out, 0), ref)
    _remove(g, list(removed))
    _drop_unused_masks(g, att.masks)
    return _change(g, att, removed, fused, len(g) - size)


def _key(g: Graph, att: Attention, like) -> Ref:
    """k: the source itself, or transposed / permuted as k^T's transpose says."""
    if att.perm is None:
        return att.key
    rank = len(att.perm)
    if att.perm == (*range(rank - 2), rank - 1, rank - 2):  # x^T -> x.transpose(-2, -1)
        return new_node(g, "transpose", {"dim0": -2, "dim1": -1}, [att.key], like, "transpose", var="k")
    return new_node(g, "permute", {"dims": att.perm}, [att.key], like, "permute", var="k")


def _regroup(g: Graph, ref: Ref, batch: tuple, like, var: str) -> Ref:
    """[*batch, L, E] as a reshape of `ref` (regrouping its batch dimensions)."""
    dims = g.type_of(ref).dims
    return new_node(g, "reshape", {"shape": (*batch, *dims[-2:])}, [ref], like, "reshape", var=var)


# ---- masks ------------------------------------------------------------------------------------------
def _mask(g: Graph, masks: list[Mask], like) -> tuple[Ref | None, bool]:
    """(mask, causal) for the masks of the scores, in the order of the chain."""
    causal = any(m.kind == "causal" for m in masks)  # masked_fill(s, causal_mask(s)) -> causal
    rest = [m for m in masks if m.kind != "causal"]
    if not rest:
        return None, causal
    if len(rest) == 1 and rest[0].kind == "bool":  # masked_fill(s, m) -> mask m (bool)
        return rest[0].ref, causal
    total = None
    for m in rest:  # else one float mask: their sum
        term = _as_float(g, m, like)
        total = term if total is None else new_node(g, "add", {}, [total, term], like, "mask", var="mask")
    return total, causal


def _as_float(g: Graph, m: Mask, like) -> Ref:
    """A mask as a float term: a bool one -inf where true, 0 elsewhere; a bias times the
    scales after it."""
    if m.kind == "float":  # (s + b) * c -> s * c + b * c
        return m.ref if m.factor == 1 else new_node(g, "scale", {"factor": m.factor}, [m.ref], like, "mask", var="mask")
    zeros = new_node(g, "scale", {"factor": 0.0}, [m.ref], like, "mask", var="mask")  # bool m -> 0.0 (float32)
    return new_node(g, "masked_fill", {"value": float("-inf")}, [zeros, m.ref], like, "mask", var="mask")


def _drop_unused_masks(g: Graph, masks: list[Mask]) -> None:
    """A causal_mask that only the fused pattern read (is_causal replaces it) goes too."""
    for m in masks:
        n = m.ref[0]
        if n in g.g and g.node(n).op == "causal_mask" and not g.g.out_degree(n) and not _named(g, m.ref):
            g.remove(n)


def _named(g: Graph, ref: Ref) -> bool:
    return any(r == ref for _, r in g.outputs) or any(
        r == ref for c in g.containers.values() for _, r in (*c.inputs, *c.outputs))


# ---- edits and the record ------------------------------------------------------------------------
def _remove(g: Graph, nodes: list[int]) -> None:
    """Remove `nodes`, each once nothing reads it (readers first)."""
    left = [n for n in nodes if n in g.g]
    while left:
        free = [n for n in left if not g.g.out_degree(n)]
        if not free:
            names = ", ".join(g.node(n).name for n in left)
            raise CompilerBug(f"fuse-attention: {names} still have readers")
        for n in free:
            g.remove(n)
        left = [n for n in left if n in g.g]


def _change(g: Graph, att: Attention, removed: dict, ref: Ref, count: int) -> Change:
    new = g.node(ref[0])
    first = removed[att.scores]
    formula = "".join(["softmax(q @ k^T", *att.steps]) + ") @ v"
    how = ", ".join(_options(new.attrs, g.inputs_of(ref[0]), g))
    what = (f"attention{' with dropout' * att.dropout} {formula} ({len(removed)} nodes) -> "
            f"scaled_dot_product_attention `{new.name}` ({how})")  # fmt: skip
    macs = new.macs - sum((n.macs for n in removed.values()), start=0)
    names = tuple(removed[n].name for n in sorted(removed))
    return Change(what, names, first.span, macs=macs, count=count)


def _options(attrs, inputs: list[Ref], g: Graph) -> list[str]:
    out = [f"scale={attrs['scale']:g}"]
    if attrs["causal"]:
        out.append("is_causal=True")
    if len(inputs) == 4:
        out.append(f"attn_mask=`{g.node(inputs[3][0]).name}`")
    if attrs["enable_gqa"]:
        out.append("enable_gqa=True")
    return out
