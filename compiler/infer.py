"""Shape inference: apply each op's rules to one node, or to a whole graph.

The elaborator calls :func:`infer_node` as it creates nodes (so `channels(x)`
and in-channel inference see shapes immediately); :func:`infer_graph` re-runs
the same rules over a finished graph, e.g. after a pass rewrote it.
"""

from __future__ import annotations

from typing import Any

from modelc import ops
from modelc.diagnostics import CompilerBug, Note, Span, SpecError, error
from modelc.ir import Attrs, Graph
from modelc.symbolic import TooComplex
from modelc.types import TensorType

__all__ = ["infer_graph", "infer_node"]


def infer_node(
    opdef: ops.OpDef,
    attrs: dict[str, Any],
    ins: list[TensorType],
    span: Span | None,
    trace: tuple[Note, ...] = (),
) -> tuple[Attrs, tuple[TensorType, ...], int, Any]:
    """Resolve attributes against input types and compute outputs, params and MACs."""
    try:
        resolved = opdef.resolve(dict(attrs), ins)
        for requirement in opdef.requires(resolved, ins):
            requirement.check()
        outs = tuple(opdef.infer(resolved, ins))
        params = opdef.params(resolved)
        macs = opdef.macs(resolved, ins, list(outs))
    except ops.OpError as exc:
        raise error(exc.code, exc.message, span, exc.hint, trace) from None
    except TooComplex as exc:  # NOTE: [Bounded expressions] in symbolic.py
        raise error("E0508", f"output shape too complex: {exc}", span,
                    "give the input concrete sizes (--input NAME=D1,D2,...)", trace) from None
    return Attrs(resolved), outs, params, macs


def infer_graph(graph: Graph) -> None:
    """Recompute types, params and MACs of every node; raise SpecError on a mismatch."""
    problems = []
    for n in graph.topo():
        node = graph.node(n)
        try:
            attrs, types, params, macs = infer_node(
                node.opdef, dict(node.attrs), graph.input_types(n), node.span, node.trace
            )
        except SpecError as exc:
            problems.extend(exc.diagnostics)
            continue
        node.attrs, node.types, node.params, node.macs = attrs, types, params, macs
    if problems:
        raise SpecError(problems)
    if any(not graph.node(n).types for n in graph.nodes()):
        raise CompilerBug("a node was left without a type")
