"""Self-verification: run the emitted module and compare it with the IR.

`modelc compile --verify` (and every spec test) instantiates the generated
class, counts its parameters and runs a random batch; any disagreement with the
shapes and counts the compiler predicted is a :class:`CompilerBug`. This is the
only compiler module that imports torch, and only when called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from modelc.diagnostics import CompilerBug, error
from modelc.ir import Graph
from modelc.symbolic import Sym, subs

__all__ = ["Plan", "concrete_env", "env_text", "plan", "verify_module"]

# NOTE: [What a verify run may cost] A spec can be valid and still too large to run
# here (an input of [B, 2, 16, 2**31 - 4], a 10-billion-parameter model) or, with
# symbolic sizes, too small at 16 (three unpadded 7x7 convs of stride 2, 2, 1 need H >= 64).
# Neither is a compiler bug: `plan` finds sizes at which every tensor has a positive
# size, estimates the memory and the work of one batch from the IR, and refuses with
# E0603 (and a hint) what would not fit or would take minutes, before torch allocates.
SIZES = (16, 32, 64, 128, 256, 512, 1024)  # tried in turn for every non-batch symbol
MAX_MACS = 10**12  # one batch: about a minute on two CPU cores
_BYTES = {"float64": 8, "int64": 8, "float32": 4, "int32": 4, "float16": 2, "bfloat16": 2, "int16": 2,
          "bool": 1, "int8": 1, "uint8": 1}  # fmt: skip


def concrete_env(graph: Graph, batch: int = 2, other: int = 16) -> dict[str, int]:
    """Values for every symbol of the inputs: the batch symbol -> batch, others -> other."""
    env: dict[str, int] = {}
    for n in graph.inputs:
        for i, d in enumerate(graph.node(n).type.dims):
            if isinstance(d, Sym):
                env.setdefault(str(d), batch if i == 0 else other)
    return env


@dataclass(frozen=True)
class Plan:
    """The sizes a verify run uses, and what one batch at those sizes costs."""

    env: dict[str, int]
    param_bytes: int
    activation_bytes: int  # peak of the tensors alive at once, by the IR's schedule
    macs: int

    @property
    def memory(self) -> int:
        # Modules allocate temporaries the IR does not show (an LSTM's gates, attention
        # scores): count each live tensor twice.
        return self.param_bytes + 2 * self.activation_bytes


def plan(graph: Graph, device: str = "cpu", batch: int = 2, memory: int | None = None) -> Plan:
    """Sizes and costs of a verify run of `graph`; SpecError E0603 where none is possible here."""
    env = _sizes(graph, batch)
    macs = sum(int(subs(graph.node(n).macs, env)) for n in graph.nodes())
    p = Plan(env, 4 * graph.num_params(), _activation_peak(graph, env), macs)
    at = f" at {env_text(env)}" if env else ""
    hint = ("verify a smaller model (--param K=V)" if p.param_bytes > p.activation_bytes
            else "verify smaller inputs (--input NAME=D1,D2,...)") + "; the compiled file is written as it is"  # fmt: skip
    available = _available_memory(device) if memory is None else memory
    if p.memory > available:
        raise error("E0603", f"--verify cannot run {graph.name}{at}: it needs about {_gib(p.memory)} "
                    f"(parameters {_gib(p.param_bytes)}, activations {_gib(2 * p.activation_bytes)}), "
                    f"and {_gib(available)} is available", None, hint)  # fmt: skip
    if device == "cpu" and p.macs > MAX_MACS:
        raise error("E0603", f"--verify cannot run {graph.name}{at}: one batch is {p.macs:,} "
                    f"multiply-accumulates, over the limit of {MAX_MACS:,} for a check on the CPU",
                    None, hint)  # fmt: skip
    return p


def _sizes(graph: Graph, batch: int) -> dict[str, int]:
    """The first of SIZES at which every tensor of the graph has a positive size and every
    op's run-time requirement on its input sizes holds (`OpDef.requires`)."""
    problem, order = "", graph.topo()
    for other in SIZES:
        env = concrete_env(graph, batch, other)
        problem = next(filter(None, (_problem(graph, n, env) for n in order)), "")
        if not problem:
            return env
    raise error("E0603", f"--verify cannot run {graph.name}: with the symbolic sizes at {env_text(env)}, "
                f"{problem}", None, "give the inputs concrete sizes with --input NAME=D1,D2,...")  # fmt: skip


def _problem(graph: Graph, n: int, env: dict[str, int]) -> str | None:
    node = graph.node(n)
    for t in node.types:
        for d in t.dims:
            if not (isinstance(size := subs(d, env), int) and size > 0):
                return f"'{node.name}' would have a size of {size}"
    for r in node.opdef.requires(dict(node.attrs), graph.input_types(n)):
        if not isinstance(value := subs(r.value, env), int) or value < r.minimum:
            return f"'{node.name}' fails: {r.message.format(value=value)}"
    return None


def _activation_peak(graph: Graph, env: dict[str, int]) -> int:
    """Peak bytes of tensors alive at once when the nodes run in topological order: a
    node's outputs live until their last user has run (a model output, to the end)."""
    order = graph.topo()
    index = {n: i for i, n in enumerate(order)}
    outputs = {ref[0] for _, ref in graph.outputs}
    last = {n: len(order) if n in outputs else max((index[u] for u, _, _ in graph.users(n)), default=index[n])
            for n in order}  # fmt: skip
    freed_at: dict[int, list[int]] = {}
    for n, i in last.items():
        freed_at.setdefault(i, []).append(n)
    size = {n: sum(_nbytes(t, env) for t in graph.node(n).types) for n in order}
    live = peak = 0
    for i, n in enumerate(order):
        live += size[n]
        peak = max(peak, live)
        live -= sum(size[m] for m in freed_at.get(i, ()))
    return peak


def _nbytes(t, env: dict[str, int]) -> int:
    count = 1
    for d in t.dims:
        count *= int(subs(d, env))
    return count * _BYTES.get(t.dtype, 4)


def _available_memory(device: str) -> int:
    if device != "cpu":
        import torch

        return torch.cuda.mem_get_info(torch.device(device))[0]
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return 8 * 2**30


def env_text(env: dict[str, int]) -> str:
    return ", ".join(f"{k}={v}" for k, v in env.items())


def _gib(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def verify_module(cls: type, graph: Graph, device: str = "cpu", seed: int = 0) -> dict[str, Any]:
    """Instantiate `cls`, run one random batch, and check it against `graph`.

    SpecError E0603 where the run cannot happen here (see `plan`); CompilerBug where the
    module disagrees with the IR."""
    run = plan(graph, device)
    try:
        return _verify(cls, graph, device, seed, run.env)
    except (MemoryError, RuntimeError) as exc:  # torch reports a failed allocation as a RuntimeError
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if not isinstance(exc, MemoryError) and not any(m in text for m in _OOM_MESSAGES):
            raise
        raise error("E0603", f"--verify ran out of memory running {graph.name} at {env_text(run.env)} "
                    f"(estimated {_gib(run.memory)}): {text}", None,
                    "verify smaller inputs (--input NAME=D1,D2,...)") from None  # fmt: skip


_OOM_MESSAGES = ("can't allocate memory", "out of memory")


def _verify(cls: type, graph: Graph, device: str, seed: int, env: dict[str, int]) -> dict[str, Any]:
    import torch

    torch.manual_seed(seed)
    model = cls().to(device).eval()
    expected = graph.num_params()
    actual = sum(p.numel() for p in model.parameters())
    if actual != expected:
        raise CompilerBug(f"{graph.name}: the module has {actual:,} parameters, the IR predicted {expected:,}")
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
