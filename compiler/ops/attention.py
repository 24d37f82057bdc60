"""Attention, as layers and as the primitives textbooks write it with.

Layers (torch's nn.MultiheadAttention, batch-first, so state_dict keys are
torch's `in_proj_weight`, `out_proj.weight`):
    multihead_attention(q, k, v, heads=8)   self_attention(heads=8, causal=true)
    cross_attention(x, memory, heads=8)     scaled_dot_product_attention(q, k, v)
Primitives, for `softmax(Q K^T / sqrt(d)) V` line by line:
    matmul (`@`), scale (`x * k`, `x / k`), masked_fill, causal_mask.

MACs: every matmul counts, the projections and the two attention products
(Q K^T and A V), as the references count them (see REFERENCE.md).
"""

from __future__ import annotations

from modelc.ops._util import FLOATS, broadcast, known_channels, need_float, need_float32, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.ops.layout import exact_div
from modelc.pyformat import CallExpr
from modelc.pyrepr import literal
from modelc.symbolic import Dim
from modelc.types import TensorType


def _check_mask(op: str, mask: TensorType, q: TensorType, shape: tuple) -> None:
    """A mask is bool (true hides) or of the queries' float type (added to the scores), and
    broadcasts to the scores' shape without enlarging it."""
    if mask.dtype not in ("bool", q.dtype):
        raise OpError("E0506", f"{op}: a mask is bool (true hides a score) or {q.dtype} (added to the "
                      f"scores), got a {mask.dtype} tensor {mask}")  # fmt: skip
    if broadcast(f"{op} mask", mask.dims, shape) != tuple(shape):
        raise OpError("E0301", f"{op}: the mask {mask} is larger than the scores "
                      f"[{', '.join(map(str, shape))}]")  # fmt: skip


def _gqa_batch(op: str, q: TensorType, k: TensorType, v: TensorType) -> tuple:
    """The batch dimensions of grouped-query attention: q's heads (dim -3), whose count is a
    multiple of k's and v's (equal), and the dimensions before them broadcast."""
    if min(q.rank, k.rank, v.rank) < 3 or k.dims[-3] != v.dims[-3]:
        raise OpError("E0301", f"{op}: grouped-query attention needs [..., heads, L, E] inputs, k and v with "
                      f"the same heads, got query {q}, key {k} and value {v}")  # fmt: skip
    if exact_div(q.dims[-3], k.dims[-3]) is None:
        raise OpError("E0301", f"{op}: {q.dims[-3]} query heads do not form groups of {k.dims[-3]} "
                      "key/value heads")  # fmt: skip
    batch = broadcast(op, q.dims[:-3], k.dims[:-3])
    broadcast(op, batch, v.dims[:-3])
    return (*batch, q.dims[-3])


def _same_float(op: str, *ts: TensorType) -> None:
    """Floating-point inputs of one type: torch multiplies no others (NOTE: [Element types])."""
    need_float(op, *ts)
    if len({t.dtype for t in ts}) > 1:
        raise OpError("E0506", f"{op} needs inputs of one element type, got "
                      f"{', '.join(f'{t.dtype} {t}' for t in ts)}")  # fmt: skip


# ---- layers ---------------------------------------------------------------------------------
class _Multihead(OpDef):
    """nn.MultiheadAttention(D, heads, batch_first=True); subclasses say which inputs are q, k, v."""

    family = "attention"
    attrs = (
        Attr("heads", "int", 8, positional=True, min=1, aliases=("num_heads",)),
        Attr("causal", "bool", False, doc="each position attends only to itself and earlier ones"),
        Attr("dropout", "float", 0.0, min=0, doc="on the attention weights, in training"),
        Attr("bias", "bool", True),
    )
    inputs = None
    sequential = False
    qkv: tuple[int, int, int] = (0, 1, 2)  # input index of q, k, v; one more input is a mask
    outputs_layout = "strided"

    def resolve(self, a, ins):
        need = max(self.qkv) + 1
        if len(ins) not in (need, need + 1):
            raise OpError("E0406", f"{self.name} takes {need} input tensor(s) and an optional mask, "
                          f"got {len(ins)}")  # fmt: skip
        q, k, v = (ins[i] for i in self.qkv)
        for t in (q, k, v):
            if t.rank != 3:
                raise OpError("E0305", f"{self.name} expects [B, T, D] inputs (batch first), got {t}")
        need_float32(self.name, q, k, v)
        d = known_channels(self.name, q, 2, "model width D (last dimension)")
        if d % a["heads"]:
            raise OpError("E0404", f"{self.name}: width {d} is not divisible by {a['heads']} heads")
        if k.dims[2] != d or v.dims[2] != d or k.dims[:2] != v.dims[:2] or k.dims[0] != q.dims[0]:
            raise OpError("E0301", f"{self.name}: query {q}, key {k} and value {v} do not fit "
                          "[B, T, D], [B, S, D], [B, S, D]")  # fmt: skip
        masked = len(ins) == need + 1
        if masked and a["causal"]:
            raise OpError("E0404", f"{self.name}: give either causal=true or a mask, not both")
        if masked:
            _check_mask(self.name, ins[-1], q, (q.dims[1], k.dims[1]))
            if ins[-1].dims != (q.dims[1], k.dims[1]):  # torch takes [T, S] (or [B*heads, T, S]) only
                raise OpError("E0301", f"{self.name}: the mask must be [T, S] = [{q.dims[1]}, {k.dims[1]}], "
                              f"got {ins[-1]}")  # fmt: skip
        return {**a, "embed_dim": d, "masked": masked}

    def reference(self, a, ins, w):
        q, k, v = (ins[i] for i in self.qkv)
        b, t, d = q.shape
        wq, wk, wv = w["in_proj_weight"].chunk(3)
        bq, bk, bv = w["in_proj_bias"].chunk(3) if a["bias"] else (None, None, None)

        def heads(x, weight, bias):  # [B, L, D] -> [B, heads, L, D / heads]
            y = x @ weight.T + (0 if bias is None else bias)
            return y.reshape(x.shape[0], x.shape[1], a["heads"], d // a["heads"]).transpose(1, 2)

        mask = ins[-1] if a["masked"] else None
        out = attend(heads(q, wq, bq), heads(k, wk, bk), heads(v, wv, bv), mask, a["causal"], None)
        out = out.transpose(1, 2).reshape(b, t, d) @ w["out_proj.weight"].T
        return [out + w["out_proj.bias"] if a["bias"] else out]

    def infer(self, a, ins):
        return [ins[self.qkv[0]]]

    def params(self, a):
        d = a["embed_dim"]
        return 4 * d * d + (4 * d if a["bias"] else 0)

    def macs(self, a, ins, outs):
        q, k = ins[self.qkv[0]], ins[self.qkv[1]]
        b, t, d = q.dims
        s = k.dims[1]
        return b * (2 * t * d * d + 2 * s * d * d) + self.attention_macs(a, ins, outs)

    def workspace(self, a, ins):
        q, k = ins[self.qkv[0]], ins[self.qkv[1]]
        return 2 * q.dims[0] * a["heads"] * q.dims[1] * k.dims[1]  # scores and weights, per head

    def attention_macs(self, a, ins, outs) -> Dim:
        """The Q K^T and A V products alone."""
        q, k = ins[self.qkv[0]], ins[self.qkv[1]]
        return 2 * q.dims[0] * q.dims[1] * k.dims[1] * a["embed_dim"]

    # NOTE: [Attention layers through SDPA] The sdpa-layers pass (-O2) sets the attribute `sdpa`
    # (no spec can): the module is then modelc.runtime's SDPAMultiheadAttention, a subclass of
    # nn.MultiheadAttention with its parameters and state_dict keys, whose forward calls
    # torch's scaled_dot_product_attention with is_causal=True rather than a [T, S] mask, and
    # returns the output alone.
    def module(self, a):
        kw = [("dropout", a["dropout"], 0.0), ("bias", a["bias"], True)]
        kwargs = tuple((k, v) for k, v, default in kw if v != default) + (("batch_first", True),)
        callee = "rt.SDPAMultiheadAttention" if a.get("sdpa") else "nn.MultiheadAttention"
        return Ctor(callee, (a["embed_dim"], a["heads"]), kwargs)

    def invoke(self, a, callee, args):
        q, k, v = (args[i] for i in self.qkv)
        extra = []
        if a["causal"] and a.get("sdpa"):
            extra.append("is_causal=True")
        elif a["causal"]:
            extra.append(f"attn_mask=rt.causal_mask({q}.shape[1], {k}.shape[1], {q}.device)")
        elif a["masked"]:
            extra.append(f"attn_mask={args[-1]}")
        return CallExpr(callee, [q, k, v, *extra] + ([] if a.get("sdpa") else ["need_weights=False"]))

    def targets(self, a, names):
        return names[0] if a.get("sdpa") else f"{names[0]}, _"  # (output, weights): weights not computed

    def label(self, a):
        causal = ", causal" if a["causal"] else ""
        return f"{self.name.replace('_', ' ')} {a['heads']} heads{causal}"


@register
class MultiheadAttention(_Multihead):
    name = "multihead_attention"
    doc = "softmax(Q K^T / sqrt(d)) V over `heads` heads, with projections: (q, k, v[, mask]) -> [B, T, D]."


@register
class SelfAttention(_Multihead):
    name = "self_attention"
    doc = "multihead_attention(x, x, x): x -> self_attention(heads=8, causal=true)."
    qkv = (0, 0, 0)


@register
class CrossAttention(_Multihead):
    name = "cross_attention"
    doc = "multihead_attention(x, memory, memory): queries from x, keys and values from memory."
    qkv = (0, 1, 1)


@register
class ScaledDotProductAttention(OpDef):
    name = "scaled_dot_product_attention"
    family = "attention"
    doc = ("softmax(Q K^T * scale + M) V on [..., T, E] tensors, as one fused call (no parameters). "
           "An optional mask [..., T, S]: bool hides the scores where true (as causal_mask, masked_fill "
           "and multihead_attention read it); float is added to them (0 visible, -inf hidden). "
           "causal=true hides the future too (with a mask, both hide).")  # fmt: skip
    attrs = (Attr("causal", "bool", False), Attr("scale", "float", None, doc="default 1/sqrt(E)"),
             Attr("enable_gqa", "bool", False, doc="k and v have fewer heads (dim -3) than q, each "
                  "shared by a group of consecutive query heads (grouped-query attention)"))  # fmt: skip
    inputs = None
    min_inputs = 3
    outputs_layout = "strided"

    def resolve(self, a, ins):
        if len(ins) > 4:
            raise OpError("E0406", f"{self.name} takes q, k, v and an optional mask, got {len(ins)} inputs")
        q, k, v = ins[:3]
        _same_float(self.name, q, k, v)
        if q.rank < 2 or k.dims[-1] != q.dims[-1] or k.dims[-2] != v.dims[-2]:
            raise OpError("E0301", f"{self.name}: query {q}, key {k} and value {v} do not fit "
                          "[..., T, E], [..., S, E], [..., S, Ev]")  # fmt: skip
        if a["enable_gqa"]:
            batch = _gqa_batch(self.name, q, k, v)
        else:
            batch = broadcast(self.name, q.dims[:-2], k.dims[:-2])
            broadcast(self.name, batch, v.dims[:-2])
        if len(ins) == 4:  # with causal=true, the mask and the future both hide
            _check_mask(self.name, ins[3], q, (*batch, q.dims[-2], k.dims[-2]))
            if ins[3].rank < 2:
                raise OpError("E0305", f"{self.name}: the mask needs [..., T, S], got {ins[3]}")
        return {**a, "batch": batch, "hide": len(ins) == 4 and ins[3].dtype == "bool"}

    def infer(self, a, ins):
        q, _, v = ins[:3]
        return [q.with_dims((*a["batch"], q.dims[-2], v.dims[-1]))]

    def macs(self, a, ins, outs):
        q, k, v = ins[:3]
        return prod(a["batch"]) * q.dims[-2] * k.dims[-2] * (q.dims[-1] + v.dims[-1])

    def workspace(self, a, ins):
        q, k = ins[:2]
        return 2 * prod(a["batch"]) * q.dims[-2] * k.dims[-2]  # the reference's scores and weights

    def reference(self, a, ins, w):
        q, k, v = ins[:3]
        if a["enable_gqa"]:  # key/value head j serves query heads j * g .. j * g + g - 1
            group = q.shape[-3] // k.shape[-3]
            k, v = k.repeat_interleave(group, dim=-3), v.repeat_interleave(group, dim=-3)
        return [attend(q, k, v, ins[3] if len(ins) == 4 else None, a["causal"], a["scale"])]

    def call(self, a, args):
        # torch's bool attn_mask is true where a query MAY attend; modelc's, where it may not.
        # torch takes is_causal or a mask, not both: a mask and causal=true make one mask.
        if len(args) == 4 and a["causal"]:
            extra = [f"attn_mask=rt.causal_attn_mask({args[3]}, {args[0]}.shape[-2], {args[1]}.shape[-2])"]
        elif len(args) == 4:
            extra = [f"attn_mask=~{args[3]}" if a["hide"] else f"attn_mask={args[3]}"]
        else:
            extra = ["is_causal=True"] if a["causal"] else []
        extra += [f"scale={literal(a['scale'])}"] if a["scale"] is not None else []
        extra += ["enable_gqa=True"] if a["enable_gqa"] else []
        return CallExpr("nn.functional.scaled_dot_product_attention", [*args[:3], *extra])

    def label(self, a):
        return "attention" + (" causal" if a["causal"] else "")


# ---- primitives -------------------------------------------------------------------------------
@register
class MatMul(OpDef):
    name = "matmul"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "attention"
    doc = "Batched matrix product a @ b: [..., n, k] x [..., k, m] -> [..., n, m] (batch dims broadcast)."
    inputs = 2
    outputs_layout = "new"

    def resolve(self, a, ins):
        x, y = ins
        if x.rank < 2 or y.rank < 2:
            raise OpError("E0305", f"matmul needs inputs of rank 2 or more, got {x} and {y}")
        _same_float("matmul", x, y)
        if x.dims[-1] != y.dims[-2]:
            raise OpError("E0301", f"matmul of {x} and {y}: inner sizes differ ({x.dims[-1]} vs "
                          f"{y.dims[-2]})", "transpose one of them, e.g. transpose(k, -2, -1)")  # fmt: skip
        return {**a, "batch": broadcast("matmul", x.dims[:-2], y.dims[:-2])}

    def infer(self, a, ins):
        x, y = ins
        return [x.with_dims((*a["batch"], x.dims[-2], y.dims[-1]))]

    def macs(self, a, ins, outs):
        return prod(outs[0].dims) * ins[0].dims[-1]

    def reference(self, a, ins, w):
        return [ins[0] @ ins[1]]

    def call(self, a, args):
        return f"{args[0]} @ {args[1]}"


@register
class Scale(OpDef):
    name = "scale"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "tensor"
    doc = ("Multiplies by a constant: x * factor (also written `x * 0.125`, `x / 8`). The type "
           "follows torch: an integer tensor times an integer stays integer; times a float (or "
           "divided) it becomes float32.")  # fmt: skip
    attrs = (Attr("factor", "number", positional=True),)

    def resolve(self, a, ins):
        # On a float tensor, `x * 2` and `x * 2.0` are the same: one form in the IR.
        return {**a, "factor": float(a["factor"])} if ins[0].dtype in FLOATS else a

    def infer(self, a, ins):
        x = ins[0]
        if x.dtype in FLOATS:
            return [x]
        if isinstance(a["factor"], float):  # torch's default float type
            return [TensorType(x.dims, "float32")]
        return [TensorType(x.dims, "int64" if x.dtype == "bool" else x.dtype)]

    def reference(self, a, ins, w):
        return [ins[0] * a["factor"]]

    def call(self, a, args):
        return f"{args[0]} * {literal(a['factor'])}"

    def label(self, a):
        return f"x {a['factor']:g}"


@register
class MaskedFill(OpDef):
    name = "masked_fill"
    family = "attention"
    doc = "Where mask is true, value (default -inf, which softmax turns into a zero weight)."
    attrs = (Attr("value", "float", float("-inf"), positional=True),)
    inputs = 2

    def resolve(self, a, ins):
        x, mask = ins
        if mask.dtype != "bool":
            raise OpError("E0506", f"masked_fill needs a bool mask, got a {mask.dtype} tensor {mask}",
                          "make one with causal_mask(scores)")  # fmt: skip
        if broadcast("masked_fill", x.dims, mask.dims) != x.dims:
            raise OpError("E0301", f"masked_fill: mask {mask} is larger than the tensor {x}")
        value = a["value"]
        if x.dtype not in FLOATS and not (value.is_integer() and (x.dtype != "bool" or value in (0, 1))):
            raise OpError("E0506", f"masked_fill of a {x.dtype} tensor needs a value of that type, got {value:g}",
                          "fill with 0 and 1 (bool) or an integer, or fill a float tensor")  # fmt: skip
        return a

    def reference(self, a, ins, w):
        return [ins[0].masked_fill(ins[1], a["value"])]

    def call(self, a, args):
        return f"{args[0]}.masked_fill({args[1]}, {literal(a['value'])})"

    def label(self, a):
        return f"masked fill {a['value']:g}"


@register
class CausalMask(OpDef):
    name = "causal_mask"
    family = "attention"
    doc = "The bool [T, S] mask of scores [..., T, S] that is true above the diagonal (future positions)."

    def infer(self, a, ins):
        x = ins[0]
        if x.rank < 2:
            raise OpError("E0305", f"causal_mask needs scores [..., T, S], got {x}")
        return [TensorType(x.dims[-2:], "bool")]

    def reference(self, a, ins, w):
        return [future(*ins[0].shape[-2:], ins[0].device)]

    def call(self, a, args):
        x = args[0]
        return f"rt.causal_mask({x}.shape[-2], {x}.shape[-1], {x}.device)"

    def label(self, a):
        return "causal mask"


# ---- reference semantics ----------------------------------------------------------------------
def future(t: int, s: int, device):
    """Bool [t, s], true where key j comes after query i (j > i): what a causal query may not see."""
    import torch

    return torch.arange(s, device=device)[None, :] > torch.arange(t, device=device)[:, None]


def attend(q, k, v, mask, causal: bool, scale: float | None):
    """softmax(q k^T * scale + M) v from the definition. M: -inf where a bool mask is true and,
    when causal, where j > i; a float mask itself (added)."""
    import torch

    scores = (q @ k.transpose(-2, -1)) * (q.shape[-1] ** -0.5 if scale is None else scale)
    if causal:
        scores = scores.masked_fill(future(q.shape[-2], k.shape[-2], q.device), float("-inf"))
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    e = (scores - scores.amax(-1, keepdim=True)).exp()
    return (e / e.sum(-1, keepdim=True)) @ v
