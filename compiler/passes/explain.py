"""`--explain`: what each pass did, where in the spec, and what it refused, and why.

    fold-batchnorm: 53 rewrites
      resnet50.model:17  folded batchnorm `bn1` into conv `conv1`  (params -64, nodes -1)
      ...
    inplace: 49 rewrites, 3 refused
      resnet50.model:12  relu `relu` runs in place
      refused resnet50.model:30  add `layer1.0.add`: `layer1.0.bn3` has other users ...
    total: 176 -> 123 nodes, 25,557,032 -> 25,530,472 parameters, MACs 4,089,184,256 -> ...
"""

from __future__ import annotations

from modelc.diagnostics import printable
from modelc.ir import Graph
from modelc.passes import Optimized
from modelc.symbolic import Dim

__all__ = ["explain"]


def explain(before: Graph, optimized: Optimized, limit: int = 0) -> str:
    """The explanation of one model's optimization; `limit` > 0 shows at most that many lines
    per pass (the rest counted)."""
    out = [f"{before.name} at -O{optimized.level}"]
    for r in optimized.results:
        head = f"{r.name}: {len(r.changes)} rewrite{'s' * (len(r.changes) != 1)}"
        if r.refusals:
            head += f", {len(r.refusals)} refused"
        out.append(head)
        lines = [f"  {_where(c.span)}  {c.what}{_delta(c.params, c.macs, c.count)}" for c in r.changes]
        lines += [f"  refused {_where(x.span)}  {x.what}: {x.why}" for x in r.refusals]
        lines += [f"  note: {n}" for n in r.notes]
        if limit and len(lines) > limit:
            lines = lines[:limit] + [f"  ... and {len(lines) - limit} more"]
        out += lines
    after = optimized.graph
    out.append(f"total: {len(before):,} -> {len(after):,} nodes, {before.num_params():,} -> "
               f"{after.num_params():,} parameters, MACs {_macs(before)} -> {_macs(after)}")  # fmt: skip
    return "\n".join(printable(line) for line in out)


def _where(span) -> str:
    return span.short if span is not None else "-"


def _delta(params: int, macs: Dim, count: int) -> str:
    parts = [f"params {params:+,}" if params else "", f"MACs {_signed(macs)}" if macs else "",
             f"nodes {count:+}" if count else ""]  # fmt: skip
    parts = [p for p in parts if p]
    return f"  ({', '.join(parts)})" if parts else ""


def _signed(v: Dim) -> str:
    return f"{v:+,}" if isinstance(v, int) else f"{v}"


def _macs(g: Graph) -> str:
    total: Dim = 0
    for n in g.nodes():
        total = total + g.node(n).macs
    return f"{total:,}" if isinstance(total, int) else str(total)
