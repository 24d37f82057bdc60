"""Helpers for the optimizer's tests: build a spec at two levels, give both the same random
weights (the unoptimized checkpoint, loaded through the optimized module's LOAD_RULES), and
compare what they compute."""

from __future__ import annotations

import torch

import modelc
from modelc.driver import build_all
from modelc.load import load_text
from modelc.passes import optimize
from modelc.verify import concrete_env

# fp32, as the issue asks: tighter than inductor's 2e-4.
ATOL, RTOL = 2e-5, 1e-5


def randomize(module: torch.nn.Module, seed: int = 0) -> None:
    """Every float parameter and buffer redrawn: default inits (running_var = 1, mean = 0,
    gamma = 1) would hide a wrong fold."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) * 1.5 + 0.5)
            elif name.endswith("running_mean") or name.endswith("bias"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.5)
            elif t.dim() == 1:  # norm weights
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)


def inputs_for(graph, seed: int = 1, batch: int = 2) -> list[torch.Tensor]:
    env = concrete_env(graph, batch, 8)
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in graph.inputs:
        t = graph.node(n).type.subs(env)
        if t.dtype.startswith("int"):
            out.append(torch.randint(0, 2, tuple(t.dims), generator=g))
        else:
            out.append(torch.randn(*t.dims, generator=g))
    return out


def pair(text: str, level: int, path: str = "opt.model", model: str | None = None, seed: int = 0,
         params: dict | None = None):  # fmt: skip
    """(unoptimized module, optimized module, inputs), both in eval mode with one checkpoint."""
    params = params or {}
    base = modelc.load_source(text, path, model, **params)()
    randomize(base, seed)
    opt = modelc.load_source(text, path, model, optimize=level, **params)()
    opt.load_state_dict(base.state_dict())  # through LOAD_RULES: strict
    graph = build_all(load_text(text, path), model, params)[0]
    return base.eval(), opt.eval(), inputs_for(graph, seed + 1)


def outputs(module, args) -> list[torch.Tensor]:
    with torch.no_grad():
        out = module(*[a.clone() for a in args])
    return list(out) if isinstance(out, tuple) else [out]


def assert_same(text: str, level: int, path: str = "opt.model", model: str | None = None,
                atol: float = ATOL, rtol: float = RTOL, seed: int = 0) -> None:  # fmt: skip
    base, opt, args = pair(text, level, path, model, seed)
    for a, b in zip(outputs(base, args), outputs(opt, args)):
        torch.testing.assert_close(b, a, atol=atol, rtol=rtol)


def applied(text: str, level: int, path: str = "opt.model") -> dict[str, int]:
    """How many rewrites each pass made."""
    graph = build_all(load_text(text, path))[0]
    done = optimize(graph, level, check=True)
    return {r.name: len(r.changes) for r in done.results}


def refusals(text: str, level: int, name: str, path: str = "opt.model") -> list[str]:
    graph = build_all(load_text(text, path))[0]
    done = optimize(graph, level, check=True)
    return [f"{x.what}: {x.why}" for r in done.results if r.name == name for x in r.refusals]
