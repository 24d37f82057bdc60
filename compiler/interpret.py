"""A reference interpreter of the IR: the oracle generated modules are checked against.

`run_graph(graph, weights, inputs)` executes a `Graph` node by node in topological order,
each node by its op's `reference` (NOTE: [Reference semantics] in ops/base.py): torch
written from the op's definition, never the emitted code, the modules the emitter
constructs, or modelc.runtime. So the interpreter shares with a generated module only
torch's kernels and the IR, and a difference between the two is an emitter (or runtime)
fault, or a fault of the op's reference.

Semantics are eval mode's. No op draws random numbers in eval mode: dropout, gaussian_noise
and masking_noise are the identity, reparameterize gives the mean, and the dropout of
attention and recurrent layers is off; so nothing needs a shared generator. The outputs are
those forward returns in eval mode, computed from the nodes they need only, so a
training-only branch (NOTE: [Training-only outputs] in ir.py) need not fit the inputs given;
`training_outputs=True` gives every output, as a module returns them when only its root is in
training mode (its layers still in eval mode).

Weights come from a module's `state_dict()`: a node's are the entries under its qualified
name (`layer1.0.conv1.weight` is `weight` of node `layer1.0.conv1`), and an entry named
exactly so (a bare parameter: `class_token`) is `""`. Constants of the spec (a positional
encoding's table, a fixed conv's literal kernel, a window's index) come from the spec.

Invariant: every value the interpreter computes has the IR's shape (symbols bound from the
inputs' sizes) and dtype; a difference is a CompilerBug (the op's rule and its reference
disagree).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch

from modelc.diagnostics import CompilerBug
from modelc.ir import Graph, Ref
from modelc.symbolic import Sym, subs

__all__ = ["bind_sizes", "evaluate", "node_weights", "run_graph"]


def run_graph(graph: Graph, weights: Mapping[str, Any], inputs: list, training_outputs: bool = False) -> list:
    """The model's outputs for `inputs` (one tensor per graph input, in order), in eval mode;
    with `training_outputs`, the training-only outputs too."""
    values = evaluate(graph, weights, inputs, training_outputs=training_outputs)
    return [values[ref] for _, ref in (graph.outputs if training_outputs else graph.eval_outputs())]


def evaluate(graph: Graph, weights: Mapping[str, Any], inputs: list, keep_all: bool = False,
             observe: Callable[[Ref, Any], None] | None = None, training_outputs: bool = True) -> dict[Ref, Any]:  # fmt: skip
    """Every value the graph computes, by (node, output port); values no later node reads are
    dropped as the run goes unless `keep_all` (the graph's outputs are always kept). `observe`
    sees each value as it is computed. Without `training_outputs`, the training-only branch
    is not computed."""
    if len(inputs) != len(graph.inputs):
        raise CompilerBug(f"{graph.name}: {len(inputs)} inputs given, the graph takes {len(graph.inputs)}")
    env = bind_sizes(graph, inputs)
    fed = dict(zip(graph.inputs, inputs))
    skip = set() if training_outputs else graph.training_only()
    order = [n for n in graph.topo() if n not in skip]
    last = _last_uses(graph, order)
    values: dict[Ref, Any] = {}
    with torch.no_grad():
        for i, n in enumerate(order):
            node = graph.node(n)
            ins = [fed[n]] if n in fed else [values[r] for r in graph.inputs_of(n)]
            outs = node.opdef.reference(_concrete(dict(node.attrs), env), ins, node_weights(weights, node.name))
            _check(graph, n, outs, env)
            values.update(((n, k), v) for k, v in enumerate(outs))
            for k, v in enumerate(outs) if observe else ():
                observe((n, k), v)
            if not keep_all:
                for m in last.get(i, ()):
                    for k in range(len(graph.node(m).types)):
                        values.pop((m, k), None)
    return values


def node_weights(weights: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The entries of a state_dict that belong to node `name`, keyed relative to it."""
    prefix = name + "."
    own = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
    if name in weights:
        own[""] = weights[name]
    return own


def bind_sizes(graph: Graph, inputs: list) -> dict[str, int]:
    """Values of the symbols of the inputs' shapes (`B`, `T`), read from the tensors given;
    CompilerBug when a tensor does not fit its input's declared shape or dtype."""
    env: dict[str, int] = {}
    for n, x in zip(graph.inputs, inputs):
        node = graph.node(n)
        want = node.type
        if x.dim() != want.rank or str(x.dtype).removeprefix("torch.") != want.dtype:
            raise CompilerBug(f"{graph.name}: input '{node.local}' is {want.dtype}{want}, "
                              f"got {x.dtype} {tuple(x.shape)}")  # fmt: skip
        for d, size in zip(want.dims, x.shape):
            if isinstance(d, Sym):
                if env.setdefault(str(d), size) != size:
                    raise CompilerBug(f"{graph.name}: symbol {d} is both {env[str(d)]} and {size}")
            elif d != size:
                raise CompilerBug(f"{graph.name}: input '{node.local}' is {want}, got {tuple(x.shape)}")
    return env


def _concrete(value: Any, env: dict[str, int]) -> Any:
    """Attributes with their symbolic sizes replaced by the run's."""
    if isinstance(value, Sym):
        return subs(value, env)
    if isinstance(value, dict):
        return {k: _concrete(v, env) for k, v in value.items()}
    if isinstance(value, tuple):
        return tuple(_concrete(v, env) for v in value)
    return value


def _check(graph: Graph, n: int, outs: list, env: dict[str, int]) -> None:
    node = graph.node(n)
    if len(outs) != len(node.types):
        raise CompilerBug(f"{graph.name}: the reference of {node.op} ('{node.name}') gave {len(outs)} "
                          f"values, the IR has {len(node.types)}")  # fmt: skip
    for k, (value, t) in enumerate(zip(outs, node.types)):
        shape = tuple(subs(d, env) for d in t.dims)
        dtype = str(value.dtype).removeprefix("torch.")
        if tuple(value.shape) != shape or dtype != t.dtype:
            port = f" output {k}" if len(outs) > 1 else ""
            raise CompilerBug(f"{graph.name}: '{node.name}' ({node.op}){port} is {dtype} "
                              f"{list(value.shape)} by the op's reference semantics, the IR says "
                              f"{t.dtype} {list(shape)}")  # fmt: skip


def _last_uses(graph: Graph, order: list[int]) -> dict[int, list[int]]:
    """For each step of `order`, the nodes whose values are dead after it (never outputs)."""
    index = {n: i for i, n in enumerate(order)}
    outputs = {ref[0] for _, ref in graph.outputs}
    dead: dict[int, list[int]] = {}
    for n in order:
        if n not in outputs:
            at = max((index[u] for u, _, _ in graph.users(n) if u in index), default=index[n])
            dead.setdefault(at, []).append(n)
    return dead
