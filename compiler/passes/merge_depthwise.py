"""merge-depthwise-pointwise: a depthwise conv and the pointwise conv next to it become one
dense conv where the measured cost model (passes/costs.py) says that is faster (-O2, exact).

    depthwise(x) -> pointwise   =>  conv(N, k, s, p, d) under the pointwise's name
    pointwise(x) -> depthwise   =>  conv(C' M, k, s, p, d) under the depthwise's name
                                    (only where exact: no pointwise bias, or no padding)

NOTE: [Merging depthwise and pointwise] Both are linear maps, so their composition is one
convolution with the depthwise kernel's size, stride, padding and dilation and groups 1.
Depthwise then pointwise: channel c*M + m of the depthwise (multiplier M) reads input c, so
W[n, c] = sum_m Wpw[n, c*M + m] Wdw[c*M + m] and b = Wpw bdw + bpw. Zero padding is no
obstacle: it pads x, which the merged conv pads the same way, and bdw is added after. The
other way round, W[j, c] = Wdw[j] Wpw[j // M, c], and the pointwise bias reaches the output
as sum(Wdw[j]) bpw[j // M] only where every tap of the kernel reads a pointwise output: a
zero-padded tap reads 0 instead of bpw, so a pointwise with a bias before a padded depthwise
is refused. Nothing may stand between the two (a ReLU is not linear; a BatchNorm, which
fold-batchnorm has folded by -O2 unless it could not, is refused as not folded), and the
value between them must have no other reader. The merged conv does more MACs (depthwise
then pointwise: 1 / (M (1/N + 1/k^2)) times as many): it wins only where the call it saves
costs more than the MACs it adds, which the cost model decides, and `--explain` gives both
costs either way. The merged weights are computed when an unmerged checkpoint is loaded
(LoadRules `merge_depthwise_pointwise`, `merge_pointwise_depthwise`, modelc.runtime).

Invariants: each merge removes one node, keeps the other's name and output type (so its
readers, container boundaries and the model's outputs are unchanged), and adds one load rule.
"""

from __future__ import annotations

from modelc.ir import Graph, LoadRule
from modelc.passes import costs
from modelc.passes.base import Change, PassResult, Refusal, bypass, consumers, is_output, register, set_attrs
from modelc.passes.cleanup import drop_empty_containers
from modelc.passes.convs import (chain_after, chain_before, dense_macs, is_depthwise, is_pointwise, kernel_text,
                                 learned_conv, pads)  # fmt: skip

__all__ = ["merge_depthwise_pointwise"]

NAME = "merge-depthwise-pointwise"


@register(NAME)
def merge_depthwise_pointwise(graph: Graph) -> PassResult:
    """Merge a depthwise conv and the pointwise conv next to it where the cost model says faster."""
    g = graph.copy()
    result = PassResult(NAME, g)
    table, env = costs.active(), costs.sizes(g)
    for dw in g.topo():
        if dw not in g.g or not is_depthwise(learned_conv(g, dw)):
            continue
        for find in (_following, _preceding):
            pair, why = find(g, dw)
            if pair is not None:
                why = _decide(g, pair, dw, table, env, result)
                if why is None:
                    break
            if why:
                result.refusals.append(Refusal(f"depthwise `{g.node(dw).name}`", why, g.node(dw).span))
    if result.changes:
        drop_empty_containers(g)
    return result


# ---- candidates: (first, second) in the order they run, or why not --------------------------------
def _following(g: Graph, dw: int) -> tuple[tuple[int, int] | None, str]:
    """dw -> pointwise: the pair, or why not ("" where no pointwise conv follows at all)."""
    readers = [v for v, _ in consumers(g, (dw, 0))]
    if len(readers) > 1 or is_output(g, (dw, 0)):
        if any(is_pointwise(learned_conv(g, v)) for v in readers):
            return None, "its output has other readers or is a model output (a pointwise conv among them)"
        return None, ""
    passed, reached = chain_after(g, dw)
    if reached is None or not is_pointwise(learned_conv(g, reached)):
        return None, ""
    if passed:
        return None, _between_text(g, passed, f"it and pointwise `{g.node(reached).name}`")
    return (dw, reached), ""


def _preceding(g: Graph, dw: int) -> tuple[tuple[int, int] | None, str]:
    """pointwise -> dw: the pair, or why not ("" where no pointwise conv precedes at all)."""
    passed, reached = chain_before(g, dw)
    pa = learned_conv(g, reached)
    if not is_pointwise(pa):
        return None, ""
    pw_name = g.node(reached).name
    if passed:
        return None, _between_text(g, list(reversed(passed)), f"pointwise `{pw_name}` and it")
    if len(consumers(g, (reached, 0))) != 1 or is_output(g, (reached, 0)):
        return None, f"pointwise `{pw_name}` before it has other readers or is a model output"
    if pa["bias"] and pads(dict(g.node(dw).attrs)):
        return None, (f"pointwise `{pw_name}` before it has a bias, which the depthwise conv's zero "
                      f"padding would see as 0")  # fmt: skip
    return (reached, dw), ""


def _between_text(g: Graph, passed: list[int], where: str) -> str:
    ops = ", ".join(f"{g.node(n).op} `{g.node(n).name}`" for n in passed)
    kind = "a batchnorm not folded" if all(g.node(n).op == "batchnorm" for n in passed) else "not linear"
    return f"{ops} between {where} ({kind})"


# ---- the decision and the rewrite -----------------------------------------------------------------
def _decide(g: Graph, pair: tuple[int, int], dw: int, table: costs.CostTable, env: dict[str, int],
            result: PassResult) -> str | None:  # fmt: skip
    """Merge `pair` (one of them `dw`) if the cost model says it is faster (None), else why not."""
    first, second = pair
    a, cin = dict(g.node(dw).attrs), dict(g.node(first).attrs)["in_channels"]
    before = [("depthwise" if n == dw else "pointwise", costs.concrete(g.node(n).macs, env)) for n in pair]
    merged = costs.concrete(dense_macs(g, (second, 0), cin, a), env)
    separate_us = sum(table.time_us(kind, macs) for kind, macs in before)
    merged_us = table.time_us("dense", merged)
    timing = (f"{separate_us:,.1f} us as depthwise + pointwise, {merged_us:,.1f} us merged "
              f"({table.target}, batch {costs.BATCH})")  # fmt: skip
    if merged_us >= separate_us:
        other = g.node(second if dw == first else first).name
        return f"the cost model says merging with pointwise `{other}` is slower: {timing}"
    result.changes.append(_merge(g, first, second, dw, timing))
    return None


def _merge(g: Graph, first: int, second: int, dw: int, timing: str) -> Change:
    # depthwise -> pointwise  =>  dense conv (the pointwise's node), or
    # pointwise -> depthwise  =>  dense conv (the depthwise's node)
    f, s = g.node(first), g.node(second)
    fa, sa, a = dict(f.attrs), dict(s.attrs), dict(g.node(dw).attrs)
    params, macs = f.params + s.params, f.macs + s.macs
    if first == dw:
        rule = LoadRule("merge_depthwise_pointwise", (f.name, s.name, fa["in_channels"], fa["bias"], sa["bias"]))
    else:
        rule = LoadRule("merge_pointwise_depthwise", (f.name, s.name, fa["bias"], sa["bias"]))
    g.load_rules.append(rule)
    bypass(g, first)  # the second conv now reads the first's input
    new = set_attrs(g, second, k=a["k"], s=a["s"], p=a["p"], d=a["d"], groups=1, bias=fa["bias"] or sa["bias"])
    kinds = ("depthwise", "pointwise") if first == dw else ("pointwise", "depthwise")
    return Change(f"merged {kinds[0]} `{f.name}` and {kinds[1]} `{s.name}` into one {kernel_text(a)} conv `{s.name}`, "
                  f"{new.attrs['in_channels']} -> {new.attrs['out_channels']} channels: {timing}",
                  (f.name, s.name), f.span, params=new.params - params, macs=new.macs - macs, count=-1)  # fmt: skip
