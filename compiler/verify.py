"""Self-verification: run the emitted module and compare it with the IR.

`modelc compile --verify` (and every spec test, and the fuzzers) instantiates the
generated class, counts its parameters and runs a random batch; then runs the
reference interpreter (`modelc.interpret`) on the same inputs with the module's own
state_dict. Any disagreement with the shapes, dtypes and counts the compiler
predicted, or with the values the interpreter computes, is a :class:`CompilerBug`. A model
with training-only outputs is run with its root in training mode (every output computed, its
layers in eval mode) and again in eval mode, which must return the other outputs only.
This module imports torch only when called.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from modelc.diagnostics import CompilerBug, error
from modelc.ir import Graph
from modelc.symbolic import Sym, subs

__all__ = ["HALF_RTOL", "RTOL", "Plan", "concrete_env", "difference", "env_text", "plan", "size_problem",
           "verify_module"]

# NOTE: [What a verify run may cost] A spec can be valid and still too large to run
# here (an input of [B, 2, 16, 2**31 - 4], a 10-billion-parameter model) or, with
# symbolic sizes, too small at 16 (three unpadded 7x7 convs of stride 2, 2, 1 need H >= 64).
# Neither is a compiler bug: `plan` finds sizes at which every tensor has a positive
# size, estimates the memory and the work of one batch from the IR, and refuses with
# E0603 (and a hint) what would not fit or would take minutes, before torch allocates.
SIZES = (16, 32, 64, 128, 256, 512, 1024)  # tried in turn for every non-batch symbol
MAX_MACS = 10**12  # one batch: about a minute on two CPU cores (run twice: module and interpreter)
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
    env = sizes(graph, batch)
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


def sizes(graph: Graph, batch: int, what: str = "--verify", training: bool = True) -> dict[str, int]:
    """The first of SIZES at which every tensor of the graph has a positive size and every
    op's run-time requirement on its input sizes holds (`OpDef.requires`); E0603 naming
    `what` (the command that wants to run the graph) where none does. Without `training`,
    the training-only branch need not run (NOTE: [Training-only outputs] in ir.py)."""
    skip = set() if training else graph.training_only()
    problem, order = "", [n for n in graph.topo() if n not in skip]
    for other in SIZES:
        env = concrete_env(graph, batch, other)
        problem = next(filter(None, (size_problem(graph, n, env) for n in order)), "")
        if not problem:
            return env
    raise error("E0603", f"{what} cannot run {graph.name}: with the symbolic sizes at {env_text(env)}, "
                f"{problem}", None, "give the inputs concrete sizes with --input NAME=D1,D2,...")  # fmt: skip


def size_problem(graph: Graph, n: int, env: dict[str, int]) -> str | None:
    """Why node `n` cannot run at the sizes `env` (a size below 1, a requirement of its op
    that fails), or None."""
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
        peak = max(peak, live + _workspace(graph, n, env))
        live -= sum(size[m] for m in freed_at.get(i, ()))
    return peak


def _workspace(graph: Graph, n: int, env: dict[str, int]) -> int:
    """Bytes of the temporaries a node allocates while it runs (attention's scores), which the
    IR does not show as values (`OpDef.workspace`, in elements of 4 bytes)."""
    node = graph.node(n)
    elements = node.opdef.workspace(dict(node.attrs), graph.input_types(n))
    return 4 * int(subs(elements, env)) if elements else 0


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
    """Instantiate `cls`, redraw its weights at random (`_redraw`), run one random batch, and
    check it against `graph`: parameter count, state_dict names, every submodule's output
    shape and dtype, and the outputs' values against the reference interpreter's.

    SpecError E0603 where the run cannot happen here (see `plan`); CompilerBug where the
    module disagrees with the IR or the interpreter."""
    run = plan(graph, device)
    try:
        return _verify(cls, graph, device, seed, run.env)
    except NotImplementedError as exc:  # torch has no CPU kernel for some ops in half precision
        text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
        if not any(f"'{t}'" in text for t in ("Half", "BFloat16")):
            raise
        raise error("E0603", f"--verify cannot run {graph.name} on {device}: {text}", None,
                    "torch runs it on a GPU: verify_module(cls, graph, device=\"cuda\")") from None  # fmt: skip
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
    _redraw(model)
    args = []
    for n in graph.inputs:
        t = graph.node(n).type.subs(env)
        args.append(_random_input(graph, n, t, device))
    inputs = [a.clone() for a in args]  # for the interpreter, whatever the module does to its own
    expected_shapes = _module_shapes(graph, env)
    expected_dtypes = _module_dtypes(graph)
    seen: dict[str, tuple] = {}
    dtypes: dict[str, tuple] = {}

    def hook(name):
        def record(module, inputs, output):
            values = _flatten(output)  # torch's LSTM returns (out, (h, c))
            seen[name] = tuple(tuple(v.shape) for v in values)
            dtypes[name] = tuple(str(v.dtype).removeprefix("torch.") for v in values)

        return record

    modules = dict(model.named_modules())
    # A learned token is a bare nn.Parameter, not a module: nothing to hook.
    expected_shapes = {k: v for k, v in expected_shapes.items() if k in modules}
    handles = [m.register_forward_hook(hook(name)) for name, m in modules.items()
               if name in expected_shapes]  # fmt: skip
    try:
        with torch.no_grad(), _root_training(model, graph):
            out = model(*args)
    finally:
        for h in handles:
            h.remove()
    for name, want in expected_shapes.items():
        # Modules may return more than the node's outputs (an LSTM's state when unused).
        if seen.get(name, ())[: len(want)] != want:
            raise CompilerBug(f"{graph.name}: module '{name}' produced shape {seen.get(name)}, "
                              f"the IR predicted {want}")  # fmt: skip
        if dtypes[name][: len(want)] != expected_dtypes[name]:
            raise CompilerBug(f"{graph.name}: module '{name}' produced {', '.join(dtypes[name])}, the IR "
                              f"predicted {', '.join(expected_dtypes[name])}")  # fmt: skip
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
        if str(value.dtype).removeprefix("torch.") != graph.type_of(ref).dtype:
            raise CompilerBug(f"{graph.name}: output '{name}' is {value.dtype}, the IR predicted "
                              f"{graph.type_of(ref).dtype}")  # fmt: skip
        if not torch.isfinite(value).all():  # attributes can cause it (a negative LRN alpha): not a bug
            nonfinite.append(name)
        shapes[name] = want
    _check_weights(graph, model.state_dict())
    _check_values(graph, model, inputs, outs)
    _check_eval_mode(graph, model, inputs, outs)
    return {"params": actual, "outputs": shapes, "env": env, "modules_checked": len(seen), "nonfinite": nonfinite}


# NOTE: [Comparing with the interpreter] The module and the reference interpreter share
# torch's kernels, not their order of operations (a batchnorm as one fused kernel or as
# (x - mean) / sqrt(var + eps) * w + b), so fp32 rounding differs a little and adds up over
# layers. An output may differ by RTOL times a magnitude: its own largest finite value (the
# zoo's deepest models stay below 1e-6 of it) or, if larger, the largest value the run
# computes anywhere, as an output near 0 may be amplified rounding (a group_norm with one
# element per group is its bias, plus the rounding of x - mean divided by sqrt(eps)). In
# half precision the budget is a few units in the last place (HALF_RTOL; near 1, a unit is
# 1/1024 in float16 and 1/128 in bfloat16). Integer and bool outputs must be equal. Where
# the reference is not finite (a fully masked attention row, an overflow) the spec gives no
# value and nothing is compared; elsewhere a module value that is not finite is a difference.
RTOL = 1e-4
HALF_RTOL = {"torch.float16": 1e-2, "torch.bfloat16": 5e-2}


def difference(got, want, floor: float = 0.0) -> str | None:
    """How tensor `got` differs from the reference value `want`, or None within tolerance (of
    the largest finite value of `want`, or `floor` if larger)."""
    import torch

    if got.dtype != want.dtype or got.shape != want.shape:
        return f"is {got.dtype} {list(got.shape)}, the reference {want.dtype} {list(want.shape)}"
    if not want.is_floating_point():
        wrong = int((got != want).sum())
        return f"differs in {wrong:,} of {want.numel():,} elements" if wrong else None
    defined = torch.isfinite(want)
    if not defined.any():
        return None
    err = torch.where(defined, (got.double() - want.double()).abs(), 0.0).nan_to_num(float("inf")).max().item()
    scale = max(want.double().abs()[defined].max().item(), floor)
    tolerance = HALF_RTOL.get(str(want.dtype), RTOL) * scale
    if err <= tolerance:
        return None
    return f"differs by up to {err:.3g} (values up to {scale:.3g}; tolerance {tolerance:.3g})"


def _check_values(graph: Graph, model, inputs: list, outs: tuple) -> None:
    """Compare the module's outputs with the interpreter's; name the first module that differs."""
    import torch
    from modelc.interpret import evaluate

    largest = [0.0]

    def measure(ref, value) -> None:
        if value.is_floating_point() and value.numel():
            top = value.abs().amax().item()  # one pass; a second only when something is not finite
            if not math.isfinite(top):
                top = torch.where(torch.isfinite(value), value.abs(), 0).amax().item()
            largest[0] = max(largest[0], top)

    values = evaluate(graph, model.state_dict(), inputs, observe=measure)
    for (name, r), got in zip(graph.outputs, outs):
        problem = difference(got, values[r], largest[0])
        if problem:
            raise CompilerBug(f"{graph.name}: output '{name}' {problem} from the reference interpreter"
                              f"{_first_module_difference(graph, model, inputs, largest[0])}")  # fmt: skip


def _first_module_difference(graph: Graph, model, inputs: list, floor: float) -> str:
    """`; the first module to differ is 'layers.1' (...)`, by running both again and keeping
    every value (only when an output differs: it costs memory)."""
    import torch

    from modelc.interpret import evaluate

    values = evaluate(graph, model.state_dict(), [x.clone() for x in inputs], keep_all=True)
    refs = _module_refs(graph)
    order: list[tuple[str, tuple]] = []
    hooks = [m.register_forward_hook(lambda mod, i, out, name=name: order.append((name, _flatten(out))))
             for name, m in model.named_modules() if name in refs]  # fmt: skip
    try:
        with torch.no_grad(), _root_training(model, graph):
            model(*[x.clone() for x in inputs])
    finally:
        for h in hooks:
            h.remove()
    for name, got in order:
        for k, ref in enumerate(refs[name]):
            problem = difference(got[k], values[ref], floor) if k < len(got) else "is missing"
            if problem:
                return f"; the first module to differ is '{name}': its output {k} {problem}"
    return "; every module's output agrees (the difference is in the code between them)"


@contextlib.contextmanager
def _root_training(model, graph: Graph) -> Iterator[None]:
    """NOTE: [Training-only outputs] in ir.py: a model that has them runs with its root in
    training mode and its layers in eval mode, so forward computes every output (the training
    branch included) with the layers the interpreter's semantics describe."""
    model.training = bool(graph.training_outputs)
    try:
        yield
    finally:
        model.training = False


def _check_eval_mode(graph: Graph, model, inputs: list, outs: tuple) -> None:
    """In eval mode, forward returns the eval outputs only, with the values it computed for them
    with its root in training mode (`outs`, in the order of `graph.outputs`)."""
    if not graph.training_outputs:
        return
    import torch

    with torch.no_grad():
        got = model(*[x.clone() for x in inputs])
    got = got if isinstance(got, tuple) else (got,)
    want = [(name, v) for (name, _), v in zip(graph.outputs, outs) if name not in graph.training_outputs]
    if len(got) != len(want):
        raise CompilerBug(f"{graph.name}: in eval mode forward returned {len(got)} values, expected "
                          f"{len(want)} (its outputs but the training-only ones)")  # fmt: skip
    for (name, value), g in zip(want, got):
        if problem := difference(g, value):
            raise CompilerBug(f"{graph.name}: output '{name}' in eval mode {problem} from the same "
                              "output computed with the root in training mode")  # fmt: skip


def _module_refs(graph: Graph) -> dict[str, list]:
    """The IR values each submodule returns, by qualified name (nodes and containers)."""
    out = {}
    for n in graph.nodes():
        node = graph.node(n)
        if node.module and node.opdef.module(dict(node.attrs)) is not None:
            out[node.name] = [(n, k) for k in range(len(node.types))]
    for path, c in graph.containers.items():
        if path and c.outputs and not c.unrolled:  # an nn.ModuleList is never called itself
            out[".".join(path)] = [r for _, r in c.outputs]
    return out


def _check_weights(graph: Graph, state: dict) -> None:
    """Every state_dict entry belongs to a node (its key is the node's name, or under it), and
    every node with parameters has entries: the module's names are the IR's."""
    names = {graph.node(n).name: graph.node(n) for n in graph.nodes()}
    owned: set[str] = set()
    for key in state:
        parts = key.split(".")
        owner = next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in names), None)
        if owner is None:
            raise CompilerBug(f"{graph.name}: the module's state_dict entry '{key}' belongs to no node of the "
                              "IR (a module attribute named otherwise than its node)")  # fmt: skip
        owned.add(owner)
    for name, node in names.items():
        if node.params and name not in owned:
            raise CompilerBug(f"{graph.name}: node '{name}' has {node.params:,} parameters, the module's "
                              f"state_dict none under '{name}'")  # fmt: skip


def _module_shapes(graph: Graph, env: dict[str, int]) -> dict[str, tuple]:
    """Predicted output shapes of every submodule, by its qualified name."""
    return {name: tuple(tuple(subs(d, env) for d in graph.type_of(r).dims) for r in refs)
            for name, refs in _module_refs(graph).items()}  # fmt: skip


def _redraw(model) -> None:
    """Every float parameter and buffer drawn again at its initial scale (the global generator,
    seeded by the caller): default initialisations hide faults (zero biases, unit norm weights,
    zero running means would not show a bias or a statistic that the module drops or swaps).
    Running variances land in [0.5, 1.5], values that start at one in [0.75, 1.25], constants
    that start at zero have std 0.1; a frozen parameter is a constant of the spec and stays."""
    import torch

    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point() or name in frozen or not t.numel():
                continue
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif t.numel() > 1 and t.std() > 0:
                t.copy_(torch.randn_like(t) * t.std())
            elif bool((t == 1).all()):
                t.copy_(torch.rand_like(t) * 0.5 + 0.75)
            else:
                t.copy_(torch.randn_like(t) * 0.1)


def _module_dtypes(graph: Graph) -> dict[str, tuple]:
    """Predicted output dtypes of every submodule, by its qualified name."""
    return {name: tuple(graph.type_of(r).dtype for r in refs) for name, refs in _module_refs(graph).items()}


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
