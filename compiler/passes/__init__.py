"""The optimizer: pure passes `Graph -> PassResult`, run in one ordered list per level.

    -O0  the model as written (no pass runs; the same bytes as compiling without -O)
    -O1  exact rewrites that are always safe, and an inference module:
         drop-training, drop-eval, fold-batchnorm, dead-code, cse, separable (a report), inplace
    -O2  -O1, and the rewrites chosen for speed: attention fused into one
         scaled_dot_product_attention call, merged projections, depthwise+pointwise
         convolutions merged where a measured cost model says so, ...

Rewrites that change the function (`--rewrite separable`: standard convolutions become
depthwise + pointwise pairs, a new architecture that needs training) run only when asked
for by name. Every pass is checked in tests: outputs of the optimized module equal the
unoptimized module's, with the same (randomised) weights, and `graph.verify()` holds after
each pass (`optimize(..., check=True)` names the pass that broke it).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelc.diagnostics import CompilerBug, error
from modelc.ir import Graph
from modelc.passes import batchnorm, cleanup, inplace  # noqa: F401 - they register themselves
from modelc.passes import attention, merge_linear, sdpa_layers  # noqa: F401 - -O2's attention passes
from modelc.passes import merge_depthwise, rewrite_separable, separable  # noqa: F401 - depthwise-pointwise
from modelc.passes.base import PASSES, Change, Pass, PassResult, Refusal

__all__ = ["LEVELS", "PASSES", "REWRITES", "Change", "Optimized", "Pass", "PassResult", "Refusal", "optimize"]

# The pipeline of each level, in order, with why each pass sits where it does.
LEVELS: dict[int, tuple[str, ...]] = {
    0: (),
    1: (
        "drop-training",  # training-only outputs: eval mode never returns them (dead-code drops their branch)
        "drop-eval",  # first: dropout between a conv and its batchnorm would block the fold
        "fold-batchnorm",  # conv/linear <-> batchnorm, exact in eval mode
        "dead-code",  # what no output needs (an unused head) after the rewrites above
        "cse",  # identical parameter-free ops on the same inputs compute once
        "separable",  # a report (changes nothing): after fold-batchnorm, which leaves dw -> relu -> pw
        "inplace",  # last: it needs the final users of every value
    ),
}
LEVELS[2] = LEVELS[1][:-1] + (
    # after drop-eval (no dropout left between a softmax and its @ v) and cse (one node per
    # value, so "has another reader" means what it says); before inplace, which must see the
    # fused call's readers: attention from primitives becomes one scaled_dot_product_attention
    "fuse-attention",
    "sdpa-layers",  # attention layers call SDPA with is_causal, not a materialised mask
    "merge-qkv",  # after fuse-attention (which leaves the projections alone): q/k/v linears of one input
    "merge-depthwise-pointwise",  # after fold-batchnorm (a BN between blocks it); by passes/costs.py
    "inplace",  # last: it needs the final users of every value
)
# By name only (--rewrite NAME -> the pass), run before the level's passes: they change the function.
REWRITES: dict[str, str] = {"separable": "rewrite-separable"}


@dataclass
class Optimized:
    """The optimized graph and what each pass did, in order."""

    graph: Graph
    level: int
    results: list[PassResult] = field(default_factory=list)

    @property
    def applied(self) -> tuple[str, ...]:
        """The passes that changed something, in order."""
        return tuple(r.name for r in self.results if r.changes)


def optimize(graph: Graph, level: int, rewrites: tuple[str, ...] = (), check: bool = False) -> Optimized:
    """Run the pipeline of `level` (and the named rewrites, first: names of REWRITES, such as
    "separable") on a copy of `graph`.

    `check` runs `graph.verify()` and shape inference after every pass (tests do), naming the
    pass, and those before it, when one breaks an invariant."""
    if level not in LEVELS:
        raise error("E0601", f"-O{level}: optimization levels are 0, 1 and 2", None)
    unknown = [name for name in rewrites if name not in REWRITES]
    if unknown:
        known = ", ".join(REWRITES) or "none"
        raise error("E0601", f"--rewrite {unknown[0]}: no such rewrite", None, f"rewrites: {known}")
    out = Optimized(graph, level)
    for name in (*(REWRITES[r] for r in rewrites), *LEVELS[level]):
        result = PASSES[name].run(out.graph)
        if check:
            _check(result, [r.name for r in out.results])
        out.results.append(result)
        out.graph = result.graph
    out.graph.optimized = (level, out.applied)
    return out


def _check(result: PassResult, before: list[str]) -> None:
    from modelc.infer import infer_graph

    try:
        result.graph.verify()
        infer_graph(result.graph)
    except (CompilerBug, Exception) as exc:  # noqa: BLE001 - re-raised with the pass named
        after = f" (after {', '.join(before)})" if before else ""
        raise CompilerBug(f"pass {result.name}{after} broke the graph: {exc}") from exc
