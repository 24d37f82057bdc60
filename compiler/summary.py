"""Per-layer summaries of a checked graph: a text table and a JSON object.

MACs (multiply-accumulates) count conv, linear and matmul work; FLOPs are
2 x MACs, as papers quote them. Counts are per forward pass at batch size 1:
the leading symbolic dimension of each input (the batch) is set to 1. Other
symbols (a sequence length T) stay symbolic; their counts are then reported
as expressions, and `--input` can pin them. A model with training-only outputs
(NOTE: [Training-only outputs] in ir.py) counts the parameters of its training
branch (they are in the state_dict), marks its layers, and gives the MACs of an
eval-mode forward (`macs`) and of a training-mode one (`training_macs`).
"""

from __future__ import annotations

from typing import Any

from modelc.diagnostics import printable
from modelc.ir import Graph
from modelc.symbolic import Dim, Sym, subs
from modelc.types import TensorType

__all__ = ["batch_env", "summarize", "format_table"]


def batch_env(graph: Graph) -> dict[str, int]:
    """{symbol: 1} for the leading dimension of every input that is symbolic."""
    env = {}
    for n in graph.inputs:
        first = graph.node(n).type.dims[0]
        if isinstance(first, Sym):
            env[str(first)] = 1
    return env


def summarize(graph: Graph, source: str = "") -> dict[str, Any]:
    env = batch_env(graph)
    layers = []
    total_params = trainable = 0
    total_macs: Dim = 0
    training_macs: Dim = 0
    branch = graph.training_only()
    for n in graph.topo():
        node = graph.node(n)
        macs = subs(node.macs, env)
        training_macs = training_macs + macs
        total_macs = total_macs if n in branch else total_macs + macs
        total_params += node.params
        trainable += node.opdef.trainable_params(dict(node.attrs), node.params)
        layers.append({
            "name": node.name,
            "op": node.op,
            "label": node.opdef.label(dict(node.attrs)),
            "output_shape": [_shape(t) for t in node.types] if len(node.types) > 1 else _shape(node.type),
            "params": node.params,
            **_count("macs", macs),
            **_count("flops", 2 * macs),
            "source": f"{node.span.file}:{node.span.line}",
            **({"training": True} if n in branch else {}),
        })  # fmt: skip
    training = {"training_outputs": [name for name, _ in graph.outputs if name in graph.training_outputs],
                **_count("training_macs", training_macs)} if graph.training_outputs else {}  # fmt: skip
    return {
        "model": graph.name,
        "source": source,
        "arguments": {k: v for k, v in graph.params},
        "inputs": {graph.node(n).local: _shape(graph.node(n).type) for n in graph.inputs},
        "outputs": {name: _shape(graph.type_of(ref)) for name, ref in graph.outputs},
        "total_params": total_params,
        "trainable_params": trainable,
        **_count("macs", total_macs),
        **_count("flops", 2 * total_macs),
        **training,
        "batch_symbols": sorted(env),
        "layers": layers,
    }


def _shape(t: TensorType) -> list[int | str]:
    return [d if isinstance(d, int) else str(d) for d in t.dims]


def _count(key: str, value: Dim) -> dict[str, Any]:
    if isinstance(value, int):
        return {key: value}
    return {key: None, f"{key}_expr": str(value)}


def _num(row: dict, key: str) -> str:
    return f"{row[key]:,}" if row.get(key) is not None else row.get(f"{key}_expr", "")


def format_table(s: dict[str, Any]) -> str:
    header = ("layer", "op", "output shape", "params", "MACs")
    rows = [(r["name"], r["label"] + (" (training)" if r.get("training") else ""), _shape_text(r["output_shape"]),
             f"{r['params']:,}", _num(r, "macs")) for r in s["layers"]]  # fmt: skip
    widths = [max(len(x[i]) for x in [header, *rows]) for i in range(5)]
    widths = [min(w, 48) for w in widths]

    def line(cells) -> str:
        left = [c.ljust(w) for c, w in zip(cells[:3], widths[:3])]
        right = [c.rjust(w) for c, w in zip(cells[3:], widths[3:])]
        return "  ".join(left + right).rstrip()

    args = ", ".join(f"{k}={v!r}" for k, v in s["arguments"].items())
    rule = "-" * len(line(header))
    out = [f"{s['model']}({args})" + (f"  [{s['source']}]" if s["source"] else ""), rule, line(header), rule]
    out += [line(r) for r in rows]
    out.append(rule)
    batch = " (batch 1)" if s["batch_symbols"] else ""
    out.append(f"parameters: {s['total_params']:,} (trainable {s['trainable_params']:,})")
    out.append(f"MACs{batch}: {_num(s, 'macs')}   FLOPs{batch}: {_num(s, 'flops')}")
    if "training_outputs" in s:
        names = ", ".join(s["training_outputs"])
        out.append(f"MACs{batch} in training mode, with {names}: {_num(s, 'training_macs')}")
    return "\n".join(printable(line) for line in out)  # a file name or --param may hold ESC


def _shape_text(shape) -> str:
    if shape and isinstance(shape[0], list):
        return ", ".join(_shape_text(s) for s in shape)
    return "[" + ", ".join(str(d) for d in shape) + "]"
