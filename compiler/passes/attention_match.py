"""Finding attention written from primitives, for fuse-attention (passes/attention.py).

`match(g, softmax)` reads the graph around one softmax and returns an :class:`Attention`
(what to fuse), a reason (a string: it looks like attention but must not be fused), or None
(not attention). It never changes the graph.

NOTE: [The attention pattern] Around `softmax` (over the last dim), from the inputs up:

    q  <- scale*                                  (q * c) @ ...
    kT <- scale* <- transpose/permute? <- scale*  ... @ (k * c)^T, k^T as any transpose
    scores = q @ kT, then a chain of:  scale (s * c)   add (s + bias)   masked_fill(s, m, -inf)
    weights = softmax(chain) -> dropout*          (eval: the identity)
    out = weights @ v
    k, v <- reshape <- concat(u, u, ...) <- unsqueeze   (repeat_kv: grouped-query attention)

The scores, every link of the chain and the weights must have no other reader (and be no
model output, no block boundary); a scale folds into `scale` only where it has no other
reader either (else it stays, computed before the fused call). Each rule below reads one
node and returns where the chain continues, or None: the rule tables are the pattern.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelc.ir import Graph, Ref
from modelc.passes.base import consumers

__all__ = ["Attention", "Mask", "match"]

_CHAIN = ("scale", "add", "masked_fill", "reshape", "view")  # what may sit between q @ k^T and the softmax
_TRANSPOSES = ("transpose", "permute")


@dataclass
class Mask:
    """A term of the scores: `bool` (hidden where true), `causal` (a causal_mask of the
    scores' [T, S]: is_causal) or `float` (added); `factor`: the scales applied after it."""

    ref: Ref
    kind: str
    factor: float = 1.0
    view: tuple = ()  # the scores' batch dimensions where it was added (a reshape regroups them)


@dataclass
class Attention:
    """softmax(q @ k^T * scale + masks) @ v, and the nodes that computed it. `k` is `key`
    permuted by `perm` (None: `key` itself); `group` > 1 when k and v repeat each of their
    heads `group` times (then `key` and `v` are the unrepeated tensors: enable_gqa)."""

    q: Ref
    key: Ref
    perm: tuple[int, ...] | None
    v: Ref
    out: int  # the matmul whose value the fused call gives
    scores: int  # the matmul q @ k^T
    scale: float = 1.0
    masks: list[Mask] = field(default_factory=list)
    nodes: list[int] = field(default_factory=list)  # every node the fused call replaces
    group: int = 1
    dropout: bool = False
    steps: list[str] = field(default_factory=list)  # the chain in words, for --explain
    current: tuple = ()  # the scores' batch dimensions at this point of the chain
    view: tuple | None = None  # where to compute, when a mask was added to regrouped scores


def match(g: Graph, sm: int) -> Attention | str | None:
    """The attention around softmax `sm`, a reason not to fuse it, or None."""
    ref, chain = _walk_scores(g, sm)
    weights = _walk_weights(g, sm)
    end = g.node(ref[0])
    if end.op != "matmul" and isinstance(weights, str):
        return None  # neither q @ k^T before it nor @ v after it: not attention
    if end.op != "matmul":
        return f"the softmax reads {end.op} `{end.name}`, not q @ k^T (through scales, masks and biases)"
    if isinstance(weights, str):
        return weights
    return _attention(g, sm, ref[0], chain, *weights)


def _attention(g: Graph, sm: int, mm: int, chain: list[int], dropouts: list[int], out: int) -> Attention | str:
    dim = g.node(sm).attrs["dim"]
    if dim != -1:
        return f"the softmax is over dim {dim}, not the last one (the keys)"
    why = _shared(g, [mm, *reversed(chain), sm], "the scores") or _shared(g, [sm, *dropouts, out], "the weights")
    if why:
        return why
    q, k = (g.inputs_of(mm)[i] for i in (0, 1))
    q, q_scale, q_nodes = _strip_scales(g, q, mm)
    key, perm, k_scale, k_nodes = _key(g, k, mm)
    att = Attention(q, key, perm, g.inputs_of(out)[1], out, mm, q_scale * k_scale)
    att.steps = [f" * {att.scale:g}"] if att.scale != 1 else []  # (q * c) @ k^T: the scale on q or k
    att.nodes = [out, *dropouts, sm, *chain, mm, *q_nodes, *k_nodes]
    att.dropout = bool(dropouts)
    why = _fold_chain(g, att, chain) or _causal_readers(g, att) or _same_scope(g, att.nodes)
    if why:
        return why
    _grouped(g, att)
    return att


# ---- the scores: softmax <- chain <- q @ k^T ---------------------------------------------------
def _walk_scores(g: Graph, sm: int) -> tuple[Ref, list[int]]:
    """From the softmax's input up through the chain: (where it stops, the chain's nodes)."""
    ref, chain = g.inputs_of(sm)[0], []
    while g.node(ref[0]).op in _CHAIN:
        nxt = _CHAIN_INPUT[g.node(ref[0]).op](g, ref[0])
        if nxt is None:
            break
        chain.append(ref[0])
        ref = nxt
    return ref, chain


def _scaled_input(g: Graph, n: int) -> Ref | None:
    return g.inputs_of(n)[0]  # s * c -> s


def _filled_input(g: Graph, n: int) -> Ref | None:
    return g.inputs_of(n)[0]  # masked_fill(s, m) -> s


def _added_input(g: Graph, n: int) -> Ref | None:
    """s + bias -> s: the operand of the sum's shape that q @ k^T reaches (the first)."""
    shape = g.node(n).type.dims
    for ref in g.inputs_of(n):
        if g.type_of(ref).dims == shape and _reaches_scores(g, ref):
            return ref
    return None


def _reaches_scores(g: Graph, ref: Ref) -> bool:
    node = g.node(ref[0])
    if node.op == "matmul":
        return True
    nxt = _CHAIN_INPUT[node.op](g, ref[0]) if node.op in _CHAIN else None
    return nxt is not None and _reaches_scores(g, nxt)


def _reshaped_input(g: Graph, n: int) -> Ref | None:
    """reshape(s) -> s when it keeps the last two dimensions [T, S]: it regroups the batch."""
    ref = g.inputs_of(n)[0]
    keeps = g.type_of(ref).rank >= 2 and g.type_of(ref).dims[-2:] == g.node(n).type.dims[-2:]
    return ref if keeps else None


_CHAIN_INPUT = {"scale": _scaled_input, "masked_fill": _filled_input, "add": _added_input,
                "reshape": _reshaped_input, "view": _reshaped_input}  # fmt: skip


def _shared(g: Graph, path: list[int], what: str) -> str | None:
    """Why a value along `path` (each node feeding the next) may not be dropped, or None.
    A causal_mask reads only the scores' size: it is no reader here (see _causal_readers)."""
    for a, b in zip(path, path[1:]):
        if not _private(g, (a, 0), b):
            node = g.node(a)
            users = ", ".join(f"`{g.node(v).name}`" for v, _ in _readers(g, (a, 0)) if v != b)
            where = f"also read by {users}" if users else "also a model output or a block's value"
            return f"{what} ({node.op} `{node.name}`) are {where}"
    return None


def _readers(g: Graph, ref: Ref) -> list[tuple[int, int]]:
    return [(v, port) for v, port in consumers(g, ref) if g.node(v).op != "causal_mask"]


def _private(g: Graph, ref: Ref, user: int) -> bool:
    return [v for v, _ in _readers(g, ref)] == [user] and not _is_boundary(g, ref)


def _causal_readers(g: Graph, att: Attention) -> str | None:
    """causal_mask(scores) is dropped with the scores (causal=true replaces its mask) when
    only the pattern reads it: why not, or None (the causal_masks then join `att.nodes`)."""
    inside = set(att.nodes)
    for n in list(att.nodes):
        for v, _ in consumers(g, (n, 0)):
            if g.node(v).op != "causal_mask" or v in inside:
                continue
            users = {u for u, _ in consumers(g, (v, 0))}
            if not users <= inside or _is_boundary(g, (v, 0)):
                return f"causal_mask `{g.node(v).name}` of the scores is also used otherwise"
            att.nodes.append(v)
            inside.add(v)
    return None


# ---- the weights: softmax -> dropout* -> @ v ----------------------------------------------------
def _walk_weights(g: Graph, sm: int) -> tuple[list[int], int] | str:
    """(the dropouts after the softmax, the matmul weights @ v), or why there is none."""
    ref, dropouts = (sm, 0), []
    while True:
        users = consumers(g, ref)
        if len(users) != 1:
            how = f"have {len(users)} readers" if users else "are read by nothing but the model's outputs"
            return f"the weights (softmax `{g.node(sm).name}`) {how}"
        user, port = users[0]
        node = g.node(user)
        if node.op == "dropout":  # weights -> dropout -> ...: the identity in eval mode
            dropouts.append(user)
            ref = (user, 0)
        elif node.op == "matmul" and port == 0:
            return dropouts, user
        else:
            return f"the weights go to {node.op} `{node.name}`, not to weights @ v"


# ---- q and k: scales, and k^T's transpose ----------------------------------------------------------
def _strip_scales(g: Graph, ref: Ref, user: int) -> tuple[Ref, float, list[int]]:
    """(x * c1) * c2 -> x, c1 * c2: the scales read by nothing else."""
    factor, nodes = 1.0, []
    while g.node(ref[0]).op == "scale" and _private(g, ref, user):
        factor *= g.node(ref[0]).attrs["factor"]
        nodes.append(ref[0])
        user, ref = ref[0], g.inputs_of(ref[0])[0]
    return ref, factor, nodes


def _key(g: Graph, kt: Ref, mm: int) -> tuple[Ref, tuple[int, ...] | None, float, list[int]]:
    """k from k^T: (source, permutation of it or None, scale, nodes). transpose(k, -2, -1) -> k;
    permute(x, p) -> permute(x, p with its last two swapped); anything else x -> x^T."""
    ref, factor, nodes = _strip_scales(g, kt, mm)
    user = nodes[-1] if nodes else mm
    node = g.node(ref[0])
    if node.op not in _TRANSPOSES or not _private(g, ref, user):
        rank = g.type_of(ref).rank
        return ref, (*range(rank - 2), rank - 1, rank - 2), factor, nodes
    perm = _perm_of(node)
    perm = (*perm[:-2], perm[-1], perm[-2])
    src, more, above = _strip_scales(g, g.inputs_of(ref[0])[0], ref[0])
    identity = perm == tuple(range(len(perm)))
    return src, None if identity else perm, factor * more, [*nodes, ref[0], *above]


def _perm_of(node) -> tuple[int, ...]:
    if node.op == "permute":
        return tuple(node.attrs["dims"])
    dims = list(range(node.type.rank))
    i, j = node.attrs["axes"]
    dims[i], dims[j] = dims[j], dims[i]
    return tuple(dims)


# ---- the chain in order: scales and masks ---------------------------------------------------------
def _fold_chain(g: Graph, att: Attention, chain: list[int]) -> str | None:
    """Apply the chain from q @ k^T to the softmax: a scale multiplies `scale` and the masks
    before it; a bias or masked_fill adds a mask; a reshape regroups the batch. Why not, or None."""
    att.current = g.node(att.scores).type.dims[:-2]
    for n in reversed(chain):
        why = _FOLD[g.node(n).op](g, att, n)
        if why:
            return why
    for m in att.masks:
        if m.kind != "float" and m.factor <= 0:
            return f"a scale of {m.factor:g} after masked_fill turns its -inf into {m.factor * -1:g} * inf"
    if att.current != g.node(att.scores).type.dims[:-2]:
        return f"the scores are regrouped to [{', '.join(map(str, att.current))}, T, S] and not back"
    why = _regrouped(g, att)
    if why:
        return why
    combined = [m for m in att.masks if m.kind != "causal"]
    if len(combined) > 1 and g.node(att.scores).type.dtype != "float32":
        return f"several masks on {g.node(att.scores).type.dtype} scores (they are combined in float32)"
    return None


def _fold_scale(g: Graph, att: Attention, n: int) -> str | None:
    factor = g.node(n).attrs["factor"]  # (s + m) * c -> s * c + m * c
    att.scale *= factor
    for m in att.masks:
        m.factor *= factor
    att.steps.append(f" * {factor:g}")
    return None


def _fold_bias(g: Graph, att: Attention, n: int) -> str | None:
    node, chain = g.node(n), _added_input(g, n)  # s + b -> s, mask b
    others = [r for r in g.inputs_of(n) if r != chain]
    if len(others) != len(g.inputs_of(n)) - 1:
        return f"add `{node.name}` reads the scores twice"
    for ref in others:
        if g.type_of(ref).dtype != node.type.dtype:
            return f"the bias {g.type_of(ref)} of add `{node.name}` is {g.type_of(ref).dtype}, the scores {node.type.dtype}"
        att.masks.append(Mask(ref, "float", view=att.current))
    att.steps.append("".join(f" + `{g.node(r[0]).name}`" for r in others))
    return None


def _fold_fill(g: Graph, att: Attention, n: int) -> str | None:
    node = g.node(n)
    value = node.attrs["value"]  # masked_fill(s, m, -inf) -> s, mask m
    if value != float("-inf"):
        return (f"masked_fill `{node.name}` fills with {value:g}, not -inf: a row it hides completely "
                "would average the values, which scaled_dot_product_attention does not")  # fmt: skip
    mask = g.inputs_of(n)[1]
    causal = g.node(mask[0]).op == "causal_mask" and g.type_of(mask).dims == node.type.dims[-2:]
    att.masks.append(Mask(mask, "causal" if causal else "bool", view=att.current))
    att.steps.append(", masked causally" if causal else f", masked by `{g.node(mask[0]).name}`")
    return None


def _fold_reshape(g: Graph, att: Attention, n: int) -> str | None:
    att.current = g.node(n).type.dims[:-2]  # [X, H, T, S] -> [X / w, w, H, T, S]: masks added here
    att.steps.append(f" -> [{', '.join(map(str, att.current))}, T, S]")
    return None


_FOLD = {"scale": _fold_scale, "add": _fold_bias, "masked_fill": _fold_fill, "reshape": _fold_reshape,
         "view": _fold_reshape}  # fmt: skip


# NOTE: [Regrouped scores] Swin's shifted windows add their mask to the scores regrouped per
# image, [B * w, H, n, n] -> [B, w, H, n, n], and regroup them back. The fused call then runs
# in that view: q, k and v are reshaped to [B, w, H, L, E] (they must have the scores' batch
# dimensions, not broadcast), the output back to [B * w, H, T, E], and a mask added before
# the regrouping must broadcast alike in both views (its batch dimensions are trailing ones
# the two views share: Swin's bias [H, n, n]).
def _regrouped(g: Graph, att: Attention) -> str | None:
    """Set `att.view` where masks were added to regrouped scores; why that cannot be, or None."""
    base = g.node(att.scores).type.dims[:-2]
    views = {m.view for m in att.masks if m.kind != "causal"} - {base}
    if not views:
        return None
    if len(views) > 1:
        return "masks are added to the scores regrouped in two ways"
    view = views.pop()
    k = g.type_of(att.key).dims
    k = k if att.perm is None else tuple(k[i] for i in att.perm)
    if any(dims[:-2] != base for dims in (g.type_of(att.q).dims, k, g.type_of(att.v).dims)):
        return "q, k or v broadcast over the regrouped scores' batch dimensions"
    for m in att.masks:
        if m.view == base and not _same_in_both(g.type_of(m.ref).dims[:-2], base, view):
            return f"the mask `{g.node(m.ref[0]).name}` broadcasts differently over the regrouped scores"
    att.view = view
    return None


def _same_in_both(dims: tuple, base: tuple, view: tuple) -> bool:
    """A mask's batch dimensions mean the same in both views: past its leading 1s, they are
    trailing dimensions both views share."""
    dims = dims[next((i for i, d in enumerate(dims) if d != 1), len(dims)):]
    return not dims or (len(dims) <= min(len(base), len(view)) and base[-len(dims):] == view[-len(dims):])


def _same_scope(g: Graph, nodes: list[int]) -> str | None:
    scopes = {g.node(n).scope for n in nodes}
    if len(scopes) > 1:
        names = sorted(".".join(s) or "the model" for s in scopes)
        return f"its nodes are in different blocks ({', '.join(names)})"
    return None


# ---- grouped-query attention: k and v heads repeated (repeat_kv) ---------------------------------
def _grouped(g: Graph, att: Attention) -> None:
    """reshape(concat(unsqueeze(k, -3), ... n times, dim=-3)) -> k with enable_gqa, when k and v
    repeat their heads alike and q has that many heads."""
    user_k = next((n for n in att.nodes if att.key in g.inputs_of(n)), None)
    if att.perm is not None or user_k is None or att.view is not None:
        return
    k = _repeated(g, att.key, user_k)
    v = _repeated(g, att.v, att.out)
    q = g.type_of(att.q)
    if k is None or v is None or k[1] != v[1] or q.rank != g.type_of(att.key).rank:
        return
    if q.dims[-3] != g.type_of(k[0]).dims[-3] * k[1]:
        return
    att.key, att.v, att.group = k[0], v[0], k[1]
    att.nodes += k[2] + v[2]


def _repeated(g: Graph, ref: Ref, user: int) -> tuple[Ref, int, list[int]] | None:
    """(the unrepeated tensor, the repeat count, the nodes) of [..., H, S, E] made of
    [..., H/n, S, E] with each head repeated n times in a row, or None."""
    reshape = g.node(ref[0])
    if reshape.op not in ("reshape", "view") or not _private(g, ref, user):
        return None
    cat_ref = g.inputs_of(ref[0])[0]
    cat = g.node(cat_ref[0])
    parts = g.inputs_of(cat_ref[0]) if cat.op == "concat" else []
    if len(set(parts)) != 1 or len(parts) < 2 or not _private(g, cat_ref, ref[0]):
        return None
    unsq = g.node(parts[0][0])
    rank = reshape.type.rank
    if unsq.op != "unsqueeze" or unsq.attrs["dim"] != rank - 2 or cat.attrs["dim"] != rank - 2:
        return None
    if {v for v, _ in consumers(g, parts[0])} != {cat_ref[0]} or _is_boundary(g, parts[0]):
        return None
    kv = g.inputs_of(parts[0][0])[0]
    d = g.type_of(kv).dims
    if reshape.type.dims != (*d[:-3], d[-3] * len(parts), *d[-2:]):
        return None  # [..., H/n, n, S, E] -> [..., H, S, E]: head h * n + i is head h repeated
    return kv, len(parts), [ref[0], cat_ref[0], parts[0][0]]


def _is_boundary(g: Graph, ref: Ref) -> bool:
    return any(r == ref for _, r in g.outputs) or any(
        r == ref for c in g.containers.values() for _, r in (*c.inputs, *c.outputs))
