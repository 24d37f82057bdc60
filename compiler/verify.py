"""Self-verification: run the emitted module and compare it with the IR.

`modelc compile --verify` (and every spec test) instantiates the generated
class, counts its parameters and runs a random batch; any disagreement with the
shapes and counts the compiler predicted is a :class:`CompilerBug`. This is the
only compiler module that imports torch, and only when called.
"""

from __future__ import annotations

from typing import Any

from modelc.diagnostics import CompilerBug
from modelc.ir import Graph
from modelc.symbolic import Sym, subs

__all__ = ["concrete_env", "verify_module"]


def concrete_env(graph: Graph, batch: int = 2, other: int = 16) -> dict[str, int]:
    """Values for every symbol of the inputs: the batch symbol -> batch, others -> other."""
    env: dict[str, int] = {}
    for n in graph.inputs:
        for i, d in enumerate(graph.node(n).type.dims):
            if isinstance(d, Sym):
                env.setdefault(str(d), batch if i == 0 else other)
    return env


def verify_module(cls: type, graph: Graph, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Instantiate `cls`, run one random batch, and check it against `graph`."""
    import torch

    torch.manual_seed(seed)
    model = cls().to(device).eval()
    expected = sum(graph.node(n).params for n in graph.nodes())
    actual = sum(p.numel() for p in model.parameters())
    if actual != expected:
        raise CompilerBug(f"{graph.name}: the module has {actual:,} parameters, the IR predicted {expected:,}")
    env = concrete_env(graph)
    args = []
    for n in graph.inputs:
        t = graph.node(n).type.subs(env)
        args.append(torch.randn(*t.dims, device=device))
    expected_shapes = _module_shapes(graph, env)
    seen: dict[str, tuple] = {}

    def hook(name):
        def record(module, inputs, output):
            values = output if isinstance(output, tuple) else (output,)
            seen[name] = tuple(tuple(v.shape) for v in values)

        return record

    handles = [m.register_forward_hook(hook(name)) for name, m in model.named_modules()
               if name in expected_shapes]  # fmt: skip
    try:
        with torch.no_grad():
            out = model(*args)
    finally:
        for h in handles:
            h.remove()
    for name, want in expected_shapes.items():
        if seen.get(name) != want:
            raise CompilerBug(f"{graph.name}: module '{name}' produced shape {seen.get(name)}, "
                              f"the IR predicted {want}")  # fmt: skip
    outs = out if isinstance(out, tuple) else (out,)
    if len(outs) != len(graph.outputs):
        raise CompilerBug(f"{graph.name}: forward returned {len(outs)} values, expected {len(graph.outputs)}")
    shapes = {}
    for (name, ref), value in zip(graph.outputs, outs):
        want = tuple(subs(d, env) for d in graph.type_of(ref).dims)
        if tuple(value.shape) != want:
            raise CompilerBug(f"{graph.name}: output '{name}' has shape {tuple(value.shape)}, "
                              f"the IR predicted {want} (inputs with {env})")  # fmt: skip
        if not torch.isfinite(value).all():
            raise CompilerBug(f"{graph.name}: output '{name}' is not finite on a random batch")
        shapes[name] = want
    return {"params": actual, "outputs": shapes, "env": env, "modules_checked": len(seen)}


def _module_shapes(graph: Graph, env: dict[str, int]) -> dict[str, tuple]:
    """Predicted output shapes of every submodule, by its qualified name."""
    out = {}
    for n in graph.nodes():
        node = graph.node(n)
        if node.module and node.opdef.module(dict(node.attrs)) is not None:
            out[node.name] = tuple(tuple(subs(d, env) for d in t.dims) for t in node.types)
    for path, c in graph.containers.items():
        if path and c.outputs:
            out[".".join(path)] = tuple(tuple(subs(d, env) for d in graph.type_of(r).dims) for _, r in c.outputs)
    return out
