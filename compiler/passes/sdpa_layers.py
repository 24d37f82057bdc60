"""sdpa-layers: the attention layers (multihead_attention, self_attention, cross_attention) run
through torch's scaled_dot_product_attention (-O2, exact up to rounding).

    self_attention(causal=true)   nn.MultiheadAttention(x, x, x, attn_mask=rt.causal_mask(T, T))
                              =>  rt.SDPAMultiheadAttention(x, x, x, is_causal=True)

The layer keeps nn.MultiheadAttention's parameters and state_dict keys (`in_proj_weight`,
`in_proj_bias`, `out_proj.weight`, `out_proj.bias`): the module is a subclass of it whose
forward calls scaled_dot_product_attention, with `is_causal=True` instead of a materialised
[T, S] mask and one projection GEMM for self-attention (NOTE: [Attention layers through
SDPA] in ops/attention.py). A row that a given mask hides completely is 0, not NaN (NOTE:
[Fully masked rows] in passes/attention.py).
"""

from __future__ import annotations

from modelc.ir import Graph
from modelc.passes.base import Change, PassResult, register, set_attrs

__all__ = ["sdpa_layers"]

_LAYERS = ("multihead_attention", "self_attention", "cross_attention")


@register("sdpa-layers")
def sdpa_layers(graph: Graph) -> PassResult:
    """Run attention layers through scaled_dot_product_attention (is_causal, no mask tensor)."""
    g = graph.copy()
    result = PassResult("sdpa-layers", g)
    for n in g.topo():
        node = g.node(n)
        if node.op in _LAYERS and not node.attrs.get("sdpa"):
            set_attrs(g, n, sdpa=True)  # attention layer -> SDPAMultiheadAttention
            result.changes.append(Change(f"{node.op} `{node.name}` calls scaled_dot_product_attention"
                                         f"{_how(dict(node.attrs))}", (node.name,), node.span))  # fmt: skip
    return result


def _how(a: dict) -> str:
    if a["causal"]:
        return " with is_causal=True (no [T, S] mask tensor)"
    return " with its mask" if a["masked"] else ""
