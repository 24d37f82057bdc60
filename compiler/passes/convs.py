"""What the depthwise-pointwise passes (separable, merge-depthwise-pointwise, --rewrite
separable) call a depthwise, a pointwise and a standard convolution, and the links between
them in a graph.

Only `conv` nodes with learned weights qualify (a literal kernel is a constant of the spec,
not a parameter a rewrite may recompute). On the resolved attributes:

    depthwise   groups == in_channels > 1; any multiplier out_channels / in_channels
    pointwise   kernel 1 in every dimension, groups 1, stride 1, no padding
    standard    groups 1 and a kernel larger than 1 in some dimension
"""

from __future__ import annotations

from modelc.ir import Graph, Ref
from modelc.ops._util import numel, prod
from modelc.passes.base import consumers, is_output
from modelc.symbolic import Dim

__all__ = ["BETWEEN_FAMILIES", "chain_after", "chain_before", "dense_macs", "is_depthwise", "is_pointwise",
           "is_standard", "kernel_text", "learned_conv", "pads"]  # fmt: skip

# Ops that may stand between a depthwise and a pointwise conv in a separable block
# (BatchNorm, ReLU): one input, one output, of the input's type.
BETWEEN_FAMILIES = ("norm", "activation")
_MAX_BETWEEN = 4  # ops walked between two convolutions when looking for a pair


def learned_conv(g: Graph, n: int) -> dict | None:
    """The resolved attributes of node `n` if it is a conv with learned weights, else None."""
    node = g.node(n)
    if node.op != "conv":
        return None
    a = dict(node.attrs)
    if a["weight"] is not None or a["bias_values"] is not None or not a["trainable"]:
        return None
    return a


def is_depthwise(a: dict | None) -> bool:
    return a is not None and a["groups"] == a["in_channels"] > 1


def is_pointwise(a: dict | None) -> bool:
    return (a is not None and a["groups"] == 1 and all(k == 1 for k in a["k"])
            and all(s == 1 for s in a["s"]) and not pads(a))  # fmt: skip


def is_standard(a: dict | None) -> bool:
    return a is not None and a["groups"] == 1 and any(k > 1 for k in a["k"])


def pads(a: dict) -> bool:
    """True if the convolution reads zero padding (`same` pads d * (k - 1) in each dimension)."""
    if a["p"] == "same":
        return any(d * (k - 1) for k, d in zip(a["k"], a["d"]))
    return any(a["p"])


def kernel_text(a: dict) -> str:
    return "x".join(str(k) for k in a["k"])


def dense_macs(g: Graph, out: Ref, in_channels: int, a: dict) -> Dim:
    """MACs of a groups-1 convolution from `in_channels` with `a`'s kernel, producing `out`."""
    return numel(g.type_of(out)) * in_channels * prod(a["k"])


def chain_after(g: Graph, n: int) -> tuple[list[int], int | None]:
    """Follow node `n`'s output through single-use ops of BETWEEN_FAMILIES that keep its type:
    (the ops passed, the node reached). The node reached is None where the output (or one
    passed) has several users or is a model output."""
    passed: list[int] = []
    ref: Ref = (n, 0)
    for _ in range(_MAX_BETWEEN + 1):
        users = consumers(g, ref)
        if len(users) != 1 or is_output(g, ref):
            return passed, None
        user = users[0][0]
        if not _between(g, user, ref):
            return passed, user
        passed.append(user)
        ref = (user, 0)
    return passed, None


def chain_before(g: Graph, n: int) -> tuple[list[int], int]:
    """Walk back from node `n`'s first input through ops of BETWEEN_FAMILIES: (the ops passed,
    nearest first, the node reached)."""
    passed: list[int] = []
    src = g.inputs_of(n)[0][0]
    while len(passed) < _MAX_BETWEEN and _between(g, src, g.inputs_of(src)[0] if g.inputs_of(src) else None):
        passed.append(src)
        src = g.inputs_of(src)[0][0]
    return passed, src


def _between(g: Graph, n: int, src: Ref | None) -> bool:
    node = g.node(n)
    return (src is not None and node.opdef.family in BETWEEN_FAMILIES and len(g.inputs_of(n)) == 1
            and len(node.types) == 1 and node.type == g.type_of(src))  # fmt: skip
