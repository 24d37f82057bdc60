"""separable: a report (-O1, -O2, exact: it changes nothing). For each depthwise convolution
followed by a pointwise one, what the pair costs against the dense convolution it stands for.

A depthwise k x k conv over C channels (multiplier M) and a pointwise conv to N channels do
M * (C k^2 + C N) MACs per output position where a dense k x k conv from C to N channels
does C N k^2: a fraction M * (1/N + 1/k^2) (Howard et al., 2017), where k^2 is the kernel's
size (kh * kw). The pair may have ops of BETWEEN_FAMILIES between them (MobileNet's
BatchNorm and ReLU; the pass runs after fold-batchnorm, so a folded BatchNorm is gone).

Each pair is one note in `PassResult.notes` (so `--explain` shows it), named by the block
that holds both convolutions (`features.3.conv`), with its MACs at batch 1 (costs.sizes),
then one note of totals. Invariant: the graph it returns is its input, untouched.
"""

from __future__ import annotations

from modelc.ir import Graph
from modelc.passes import costs
from modelc.passes.base import PassResult, register
from modelc.passes.convs import chain_after, dense_macs, is_depthwise, is_pointwise, kernel_text, learned_conv
from modelc.ops._util import prod

__all__ = ["separable"]


@register("separable")
def separable(graph: Graph) -> PassResult:
    """Report each depthwise+pointwise pair's MACs against the dense conv it stands for."""
    result = PassResult("separable", graph)
    env = costs.sizes(graph)
    kinds = {n: learned_conv(graph, n) for n in graph.topo()}
    depthwise = [n for n, a in kinds.items() if is_depthwise(a)]
    pointwise = [n for n, a in kinds.items() if is_pointwise(a)]
    totals = [0, 0]
    for dw in depthwise:
        pw = chain_after(graph, dw)[1]
        if pw is not None and is_pointwise(kinds.get(pw)):
            note, separate, dense = _pair_note(graph, dw, pw, env)
            result.notes.append(note)
            totals[0] += separate
            totals[1] += dense
    if depthwise or pointwise:
        result.notes.append(_summary(len(depthwise), len(pointwise), len(result.notes), *totals))
    return result


def _pair_note(g: Graph, dw: int, pw: int, env: dict[str, int]) -> tuple[str, int, int]:
    """The note of one pair, and its MACs and the dense conv's at the sizes of `env`."""
    d, p = g.node(dw), g.node(pw)
    da, pa = dict(d.attrs), dict(p.attrs)
    c, n, k = da["in_channels"], pa["out_channels"], kernel_text(da)
    separate = costs.concrete(d.macs + p.macs, env)
    dense = costs.concrete(dense_macs(g, (pw, 0), c, da), env)
    m = da["out_channels"] // c
    formula = f"1/{n} + 1/{prod(da['k'])}" if m == 1 else f"{m} x (1/{n} + 1/{prod(da['k'])})"
    block = _common_block(d.scope, p.scope)
    note = (f"{block}: depthwise {k} `{d.name}` + pointwise `{p.name}`, {c} -> {n} channels: "
            f"{separate:,} MACs at batch {costs.BATCH}, {separate / dense:.3f} of a dense {k} conv's "
            f"{dense:,} ({formula}): {dense / separate:.1f}x fewer")  # fmt: skip
    return note, separate, dense


def _common_block(a: tuple[str, ...], b: tuple[str, ...]) -> str:
    common = []
    for x, y in zip(a, b):
        if x != y:
            break
        common.append(x)
    return ".".join(common) or "(model)"


def _summary(n_dw: int, n_pw: int, pairs: int, separate: int, dense: int) -> str:
    head = f"{n_dw} depthwise and {n_pw} pointwise convolutions, {pairs} depthwise+pointwise pairs"
    if not pairs:
        return head
    return (f"{head}: {separate:,} MACs at batch {costs.BATCH} where dense convolutions would do "
            f"{dense:,} ({dense / separate:.1f}x fewer)")  # fmt: skip
