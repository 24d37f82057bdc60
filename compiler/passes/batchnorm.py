"""fold-batchnorm: BatchNorm in eval mode is an affine map per channel; fold it into the
convolution or linear layer next to it (-O1, exact).

    conv / conv_transpose / linear -> batchnorm   =>  the layer, scaled, with a bias
    batchnorm -> conv / linear                    =>  the layer, scaled, with a bias (only
                                                       where exact: no zero padding)

NOTE: [Folding BatchNorm] With s = gamma / sqrt(var + eps) and t = beta - mean * s per
channel, BN(x) = s * x + t. After a layer L(x) = W x + b whose output channel o is BN's
channel: W'[o] = s[o] W[o], b' = s b + t. The output channel is dim 0 of a conv's and a
linear's weight, but of a transposed conv's weight [in, out/groups, k...] it is dim 1 within
each group (torch.nn.utils.fusion scales dim 0 there). Before a layer: L(s x + t) = (W s) x
+ (W t + b), where W t sums over the kernel: exact only if every input the kernel sees is
s x + t, so zero padding (which feeds 0, not t) refuses. BatchNorm1d normalizes dimension 1:
after a linear on [B, T, F] that is T, not the linear's features (fx's fuse() miscompiles
it), so only a 2-d linear folds. The weights the folded model needs are computed when a
checkpoint of the unfolded model is loaded (LoadRule `fold_batchnorm`, modelc.runtime), in
float32 and cast back; the parameter keeps its memory format (load copies into it).
"""

from __future__ import annotations

from modelc.ir import Graph, LoadRule
from modelc.passes.base import (Change, PassResult, Refusal, bypass, only_user, register, set_attrs,
                                shared_weight_problem)

__all__ = ["fold_batchnorm"]

_AFTER = ("conv", "conv_transpose", "linear")  # layers a following BN folds into
_BEFORE = ("conv", "linear")  # layers a preceding BN folds into


@register("fold-batchnorm")
def fold_batchnorm(graph: Graph) -> PassResult:
    """Fold BatchNorm (eval mode) into the convolution or linear layer before or after it."""
    g = graph.copy()
    result = PassResult("fold-batchnorm", g)
    for n in g.topo():
        if n not in g.g or g.node(n).op != "batchnorm":
            continue
        why = _unfoldable(g, n)
        if why:
            result.refusals.append(Refusal(f"batchnorm `{g.node(n).name}`", why, g.node(n).span))
            continue
        reasons = []
        for fold in (_fold_after, _fold_before):
            change, why = fold(g, n)
            if change is not None:
                result.changes.append(change)
                break
            reasons.append(why)
        else:
            result.refusals.append(Refusal(f"batchnorm `{g.node(n).name}`", "; ".join(reasons), g.node(n).span))
    if result.changes:
        g.inference_only.append("BatchNorm folded into the layers next to it")
    return result


def _unfoldable(g: Graph, n: int) -> str | None:
    a = dict(g.node(n).attrs)
    if not a["track_running_stats"]:
        return "it has no running statistics (track_running_stats=false): eval mode uses the batch's"
    return None


def _layer_problem(g: Graph, layer: int, allowed: tuple[str, ...]) -> str | None:
    node = g.node(layer)
    if node.op not in allowed:
        return f"{node.op} `{node.name}` is not a convolution or linear layer"
    return shared_weight_problem(g, layer)  # shared, transposed or fixed weights


def _fold_after(g: Graph, bn: int) -> tuple[Change | None, str]:
    """layer -> BN: the layer's output channels take BN's scale and shift."""
    src = g.inputs_of(bn)[0]
    layer = g.node(src[0])
    problem = _layer_problem(g, src[0], _AFTER)
    if problem:
        return None, f"before it: {problem}"
    if only_user(g, src) != bn:
        return None, f"{layer.op} `{layer.name}` has other users or is a model output"
    if layer.op == "linear" and g.node(bn).type.rank != 2:
        return None, (f"on a rank-{g.node(bn).type.rank} input BatchNorm1d normalizes dimension 1, "
                      f"not the features of linear `{layer.name}`")  # fmt: skip
    return _apply(g, bn, src[0], after=True), ""


def _fold_before(g: Graph, bn: int) -> tuple[Change | None, str]:
    """BN -> layer: the layer's input channels take BN's scale; its bias takes W t."""
    users = [v for v, _, _ in g.users(bn)]
    if len(users) != 1 or any(r == (bn, 0) for _, r in g.outputs):
        return None, "after it: its output has other users or is a model output"
    layer = g.node(users[0])
    problem = _layer_problem(g, users[0], _BEFORE)
    if problem:
        return None, f"after it: {problem}"
    a = dict(layer.attrs)
    if layer.op == "conv" and (a["p"] == "same" or any(p for p in a["p"])):
        return None, f"after it: conv `{layer.name}` pads with zeros, which would see BN's shift as 0"
    if layer.op == "linear" and g.node(bn).type.rank != 2:
        return None, f"after it: on a rank-{g.node(bn).type.rank} input BN's channels are not the features of `{layer.name}`"
    return _apply(g, bn, users[0], after=False), ""


def _apply(g: Graph, bn: int, layer: int, after: bool) -> Change:
    bn_node, node = g.node(bn), g.node(layer)
    a, b = dict(bn_node.attrs), dict(node.attrs)
    before_params = node.params + bn_node.params
    macs = bn_node.macs
    rule = LoadRule("fold_batchnorm", (node.name, bn_node.name, node.op if after else f"{node.op}_input",
                                       b.get("groups", 1), a["eps"], a["affine"], b["bias"]))  # fmt: skip
    g.load_rules.append(rule)
    bypass(g, bn, g.inputs_of(bn)[0])
    new = set_attrs(g, layer, bias=True)
    order = (node.name, bn_node.name) if after else (bn_node.name, node.name)
    return Change(f"folded batchnorm `{bn_node.name}` into {node.op} `{node.name}`", order, bn_node.span,
                  params=new.params - before_params, macs=-macs, count=-1)  # fmt: skip
