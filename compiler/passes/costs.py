"""The cost model of merge-depthwise-pointwise: how long one convolution takes, by kind and target.

    time = per_call + MACs * per_mac        kinds: depthwise, pointwise, dense (anything else)

NOTE: [Cost model] The constants are measured, not guessed: bench/cost_model.py times
depthwise, pointwise and dense 2-d convolutions (float32, eval mode, batch 1) over a grid
of sizes on the machine it runs on, fits the two constants of each kind (least squares on
relative error), and prints the tables below; each records the command and the machine.
The compile path imports no torch, so the numbers live here as code. Two constants per kind
is a coarse model: it is meant to tell apart the cases where one call of a dense convolution
beats two small calls (tiny channel counts, where the per-call cost dominates) from those
where the dense convolution's extra MACs lose (MobileNet's sizes, 5 to 9 times more MACs),
and it is checked against measured pairs by the same script. Decisions are made for batch 1
(latency) with the inputs' other symbolic sizes at 32 (`sizes`).

The pass asks `active()`: the CPU table, unless a caller chooses another with `using(...)`
(a target name, or a table of its own: tests force both outcomes that way).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from modelc.diagnostics import CompilerBug
from modelc.ir import Graph
from modelc.symbolic import Dim, Sym, subs

__all__ = ["CPU", "CUDA", "TABLES", "CostTable", "OpCost", "active", "concrete", "sizes", "using"]

BATCH = 1  # the batch size a decision is made for
OTHER = 32  # any other symbolic size of the inputs (a sequence length, an image side)


@dataclass(frozen=True)
class OpCost:
    per_call_us: float  # microseconds per call (dispatch, launch, setup)
    per_mac_ps: float  # picoseconds per multiply-accumulate

    def time_us(self, macs: int) -> float:
        return self.per_call_us + macs * self.per_mac_ps * 1e-6


@dataclass(frozen=True)
class CostTable:
    target: str
    kinds: tuple[tuple[str, OpCost], ...]

    def time_us(self, kind: str, macs: int) -> float:
        for name, cost in self.kinds:
            if name == kind:
                return cost.time_us(macs)
        raise CompilerBug(f"cost table {self.target} has no entry for {kind!r}")


# ---- measured tables (bench/cost_model.py prints them) --------------------------------------
# `.venv/bin/python bench/cost_model.py` (2 threads; per size the median over 7 interleaved
# rounds of the 10th percentile of single calls; 38 of 152 sizes, measured at over 2x the fit, left out),
# on the 2-core development machine (AMD EPYC, torch 2.14.1+cu130), shared with other jobs
# (load average 4 to 7): a noisy machine, so read these to a factor of about 1.5.
CPU = CostTable("cpu", (
    ("depthwise", OpCost(per_call_us=76.5, per_mac_ps=30.1)),
    ("pointwise", OpCost(per_call_us=11, per_mac_ps=19.1)),
    ("dense", OpCost(per_call_us=38.9, per_mac_ps=12.6)),
))  # fmt: skip
# `python3 bench/cost_model.py --device cuda` (per size the median over 7 interleaved rounds
# of the mean of a loop of calls), on one NVIDIA H200 (torch 2.11.0+cu130, driver 580.159,
# cudnn.allow_tf32=True, the default). At batch 1 nearly every call is launch-bound.
CUDA = CostTable("cuda", (
    ("depthwise", OpCost(per_call_us=9.98, per_mac_ps=0.406)),
    ("pointwise", OpCost(per_call_us=21.2, per_mac_ps=0.00601)),
    ("dense", OpCost(per_call_us=23.4, per_mac_ps=0.0443)),
))  # fmt: skip
TABLES = {"cpu": CPU, "cuda": CUDA}

_ACTIVE: list[CostTable] = [CPU]


def active() -> CostTable:
    """The table the merge pass decides with."""
    return _ACTIVE[-1]


@contextmanager
def using(table: CostTable | str) -> Iterator[CostTable]:
    """Decide with `table` (or the measured table of a target, "cpu" or "cuda") inside the block."""
    if isinstance(table, str):
        if table not in TABLES:
            raise CompilerBug(f"no cost table for target {table!r} (known: {', '.join(TABLES)})")
        table = TABLES[table]
    _ACTIVE.append(table)
    try:
        yield table
    finally:
        _ACTIVE.pop()


def sizes(graph: Graph) -> dict[str, int]:
    """Values of the inputs' symbols for a decision: the batch (a leading symbol) is BATCH,
    any other OTHER."""
    env: dict[str, int] = {}
    for n in graph.inputs:
        for i, d in enumerate(graph.node(n).type.dims):
            if isinstance(d, Sym):
                for name in sorted(d.symbols):
                    env.setdefault(name, BATCH if i == 0 else OTHER)
    return env


def concrete(value: Dim, env: dict[str, int]) -> int:
    """A MAC count at the sizes of `env` (CompilerBug if a symbol is left)."""
    out = subs(value, env)
    if not isinstance(out, int):
        raise CompilerBug(f"cost model: {value} is still symbolic at {env}")
    return out
