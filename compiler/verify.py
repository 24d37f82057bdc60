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
        args.append(_random_input(graph, n, t, device))
    expected_shapes = _module_shapes(graph, env)
    seen: dict[str, tuple] = {}

    def hook(name):
        def record(module, inputs, output):
            values = _flatten(output)  # torch's LSTM returns (out, (h, c))
            seen[name] = tuple(tuple(v.shape) for v in values)

        return record

    modules = dict(model.named_modules())
    # A learned token is a bare nn.Parameter, not a module: nothing to hook.
    expected_shapes = {k: v for k, v in expected_shapes.items() if k in modules}
    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()
               if name in expected_shapes]  # fmt: skip
    try:
        with torch.no_grad():
            out = model(*args)
    finally:
        for h in handles:
            h.remove()
    for name, want in expected_shapes.items():
        # Modules may return more than the node's outputs (an LSTM's state when unused).
        if seen.get(name, ())[: len(want)] != want:
            raise CompilerBug(f"{graph.name}: module '{name}' produced shape {seen.get(name)}, "
                              f"the IR predicted {want}")  # fmt: skip
    outs = out if isinstance(out, tuple) else (out,)
    if len(outs) != len(graph.outputs):
        raise CompilerBug(f"{graph.name}: forward returned {len(outs)} values, expected {len(graph.outputs)}")
    shapes = {}
    nonfinite: list[str] = []
    for (name, ref), value in zip(graph.outputs, outs):
        want = tuple(subs(d, env) for d in graph.type_of(ref).dims)
        if tuple(value.shape) != want:
            raise CompilerBug(f"{graph.name}: output '{name}' has shape {tuple(value.shape)}, "
                              f"the IR predicted {want} (inputs with {env})")  # fmt: skip
        if not torch.isfinite(value).all():  # attributes can cause it (a negative LRN alpha): not a bug
            nonfinite.append(name)
        shapes[name] = want
    return {"params": actual, "outputs": shapes, "env": env, "modules_checked": len(seen), "nonfinite": nonfinite}


def _module_shapes(graph: Graph, env: dict[str, int]) -> dict[str, tuple]:
    """Predicted output shapes of every submodule, by its qualified name."""
    out = {}
    for n in graph.nodes():
        node = graph.node(n)
        if node.module and node.opdef.module(dict(node.attrs)) is not None:
            out[node.name] = tuple(tuple(subs(d, env) for d in t.dims) for t in node.types)
    for path, c in graph.containers.items():
        if path and c.outputs and not c.unrolled:  # an nn.ModuleList is never called itself
            out[".".join(path)] = tuple(tuple(subs(d, env) for d in graph.type_of(r).dims) for _, r in c.outputs)
    return out


def _flatten(value) -> tuple:
    if isinstance(value, (tuple, list)):
        return tuple(v for item in value for v in _flatten(item))
    return () if value is None else (value,)  # nn.MultiheadAttention's weights: None


def _random_input(graph: Graph, n: int, t, device: str):
    """Normal floats; integer ids below the bound of every op that takes them (an
    embedding's vocabulary), or 0/1 where no consumer states one; random booleans."""
    import torch

    dtype = getattr(torch, t.dtype)
    if dtype.is_floating_point:
        return torch.randn(*t.dims, device=device, dtype=dtype)
    if dtype == torch.bool:
        return torch.rand(*t.dims, device=device) < 0.5
    bounds = [graph.node(user).opdef.index_bound(dict(graph.node(user).attrs)) for user, _, _ in graph.users(n)]
    high = min((b for b in bounds if b is not None), default=2)
    return torch.randint(0, high, tuple(t.dims), device=device, dtype=dtype)
