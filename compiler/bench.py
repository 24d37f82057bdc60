"""`modelc bench`: a compiled module against a reference, measured side by side in one run.

    modelc bench specs/resnet50.model -O1 --reference torchvision:resnet50 --batch 8
    modelc bench specs/attention_primitives.model -O2 --reference O0 --input x=1,2048,64

The two modules hold the same weights (the reference's `state_dict` loaded into ours, through
its LOAD_RULES at -O1/-O2; with an `O<level>` reference both get one random checkpoint of the
spec) and must compute the same outputs, in fp32 with TF32 off, before anything is timed: a
benchmark of a module that computes something else is refused (E0605). Then both are cast to
the dtype and layout asked for, optionally `torch.compile`d, warmed up, and timed in
interleaved rounds (the order alternating each round, the device synchronised around every
call), so a noisy machine slows both alike. Reported per module: the median, the 10th and 90th
percentiles, samples per second, the peak memory one forward adds (CUDA: the allocator's
peak; CPU: the peak resident set of a fresh child process running one forward after an
untimed one), and on CUDA the model FLOP utilisation: 2 x the IR's MACs per forward, over the
device's dense peak for the dtype. The ratio is the reference's median over ours (> 1: ours
is faster).

This module imports torch; the compile/check/render path never imports it.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from modelc.diagnostics import error
from modelc.ir import Graph

__all__ = ["Options", "bench", "format_report", "flat_outputs", "no_tf32", "peak_tflops", "randomize"]

DTYPES = ("fp32", "bf16", "fp16")

# Dense (not sparse) peak TFLOP/s by device and dtype, from the vendors' data sheets (SXM
# parts). fp32 is the CUDA-core rate: TF32 is off in a benchmark unless the caller turns it on.
_PEAKS = {
    "H200": {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},
    "H100": {"bf16": 989.4, "fp16": 989.4, "fp32": 66.9},
    "A100": {"bf16": 312.0, "fp16": 312.0, "fp32": 19.5},
}


@dataclass
class Options:
    """What to measure: the spec (as `modelc bench` takes it) and how."""

    spec: str
    model: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, tuple] = field(default_factory=dict)
    optimize: int = 0
    rewrites: tuple[str, ...] = ()
    reference: str | None = None  # "torchvision:NAME", "module:PATH:CLASS", "O0", "O1", "O2"
    device: str = "cpu"
    dtype: str = "fp32"
    batch: int | None = None  # the batch symbol's value (default 2; pinned --input dims win)
    compile: bool = False
    channels_last: bool = False
    reps: int = 10
    warmup: int = 3
    memory: bool = True
    threads: int | None = None
    progress: bool = True
    peak_tflops: float | None = None  # overrides the device table for MFU


def peak_tflops(device_name: str, dtype: str) -> float | None:
    """The dense peak of a known device for `dtype`, or None."""
    for key, peaks in _PEAKS.items():
        if key in device_name:
            return peaks.get(dtype)
    return None


# ---- building the two modules ------------------------------------------------------------
def _graph(opts: Options, optimize: int | None = None) -> Graph:
    from modelc.driver import build_all
    from modelc.load import load_file

    program = load_file(opts.spec)
    level = opts.optimize if optimize is None else optimize
    graphs = build_all(program, opts.model, opts.params, opts.inputs, level, opts.rewrites)
    if len(graphs) != 1:
        raise error("E0601", f"{opts.spec} defines {len(graphs)} models: bench measures one", None,
                    "pick one with --model NAME")  # fmt: skip
    return graphs[0]


def _module_class(graph: Graph, spec: str) -> type:
    from modelc.driver import exec_source
    from modelc.emit import emit

    return getattr(exec_source(emit([graph], spec), spec), graph.name)


def _reference(opts: Options):
    """(name, module or None for 'the spec at another level', that level)."""
    ref = opts.reference
    if ref is None:
        return None, None, None
    if ref in ("O0", "O1", "O2"):
        return f"-{ref}", None, int(ref[1])
    kind, _, rest = ref.partition(":")
    if kind == "torchvision" and rest:
        try:
            import torchvision
        except ImportError:
            raise error("E0601", "--reference torchvision:NAME needs torchvision", None,
                        "pip install torchvision") from None  # fmt: skip
        ctor = getattr(torchvision.models, rest, None)
        if not callable(ctor) or rest.startswith("_"):
            raise error("E0601", f"--reference {ref}: torchvision.models has no model '{rest}'", None)
        return f"torchvision {rest}", ctor(weights=None), None
    if kind == "module" and rest.count(":") == 1:
        where, cls_name = rest.split(":")
        return f"{cls_name} ({where})", _import_class(ref, where, cls_name)(), None
    raise error("E0601", f"--reference {ref!r}: expected torchvision:NAME, module:PATH:CLASS, "
                "or O0, O1, O2 (the spec at that level)", None)  # fmt: skip


def _import_class(ref: str, where: str, cls_name: str) -> type:
    """The reference is the user's own Python (a file or an importable module), run as they asked."""
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise error("E0601", f"--reference {ref}: no file {where}", None)
        spec = importlib.util.spec_from_file_location("modelc_bench_reference", where)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        try:
            module = importlib.import_module(where)
        except ImportError as exc:
            raise error("E0601", f"--reference {ref}: cannot import {where}: {exc}", None) from None
    cls = getattr(module, cls_name, None)
    if not isinstance(cls, type):
        raise error("E0601", f"--reference {ref}: {where} has no class {cls_name}", None)
    return cls


def randomize(module, torch, seed: int = 1) -> None:
    """Every float tensor redrawn, BatchNorm statistics too (defaults would hide a wrong fold);
    scaled so a deep network's activations stay in range."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            elif key.endswith("running_mean"):
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
            elif t.dim() == 1:
                t.copy_(torch.rand(t.shape, generator=g) * 0.5 + 0.75 if key.endswith("weight")
                        else torch.randn(t.shape, generator=g) * 0.05)  # fmt: skip
            else:
                t.copy_(torch.randn(t.shape, generator=g) / max(1, t[0].numel()) ** 0.5)


def _share_weights(ours, reference, torch) -> tuple[bool, str]:
    """Give ours the reference's (randomized) weights: (whether they are the same weights now,
    how, or why not)."""
    randomize(reference, torch)
    try:
        ours.load_state_dict(reference.state_dict())
    except RuntimeError as exc:  # other keys or shapes: time them, but nothing can be compared
        first = str(exc).strip().splitlines()[0][:160]
        return False, f"not shared ({first})"
    return True, "the reference's state_dict"


def _inputs(graph: Graph, opts: Options, torch) -> tuple[list, dict[str, int]]:
    from modelc.verify import _random_input, sizes

    env = sizes(graph, opts.batch or 2, "bench")
    torch.manual_seed(0)
    args = [_random_input(graph, n, graph.node(n).type.subs(env), "cpu") for n in graph.inputs]
    return args, env


# ---- measuring -----------------------------------------------------------------------------
@dataclass
class _Variant:
    name: str
    module: Any
    times: list[float] = field(default_factory=list)


def flat_outputs(out) -> list:
    """The tensors of a module's output (a tensor, or tuples, lists and dicts of them), in order."""
    if isinstance(out, (tuple, list)):
        return [t for o in out for t in flat_outputs(o)]
    if isinstance(out, dict):
        return [t for o in out.values() for t in flat_outputs(o)]
    return [out] if hasattr(out, "shape") else []


@contextlib.contextmanager
def no_tf32(torch):
    """Plain fp32 for the comparison: TF32 would round differently from the reference."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = False
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


def _compare(ours: _Variant, ref: _Variant, args: list, torch, values: bool) -> float | None:
    """Run both once (fp32, TF32 off): the same output shapes, and with shared weights the same
    values; returns the largest relative difference (None when values are not compared).
    E0605 where they disagree or the reference cannot run on the spec's inputs."""
    with torch.inference_mode(), no_tf32(torch):
        got = flat_outputs(ours.module(*args))
        try:
            want = flat_outputs(ref.module(*args))
        except Exception as exc:  # noqa: BLE001 - the user's reference, on our inputs
            text = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else type(exc).__name__
            raise error("E0605", f"bench refused: {ref.name} cannot run on the spec's inputs: {text}", None,
                        "benchmark against a module that takes the spec's inputs") from None  # fmt: skip
    if len(got) != len(want) or any(a.shape != b.shape for a, b in zip(got, want)):
        shapes = lambda ts: ", ".join(str(list(t.shape)) for t in ts)  # noqa: E731
        raise error("E0605", f"bench refused: {ours.name} returns [{shapes(got)}], {ref.name} [{shapes(want)}]",
                    None, "benchmark against the model the spec describes")  # fmt: skip
    if not values:
        return None
    worst = 0.0
    for a, b in zip(got, want):
        if not a.is_floating_point():
            if not torch.equal(a, b):
                raise error("E0605", f"bench refused: {ours.name} and {ref.name} give different integer outputs", None)
            continue
        scale = max(1.0, b.abs().max().item()) if b.numel() else 1.0
        diff = (a.float() - b.float()).abs().max().item() if a.numel() else 0.0
        if not diff <= 1e-4 * scale:
            raise error("E0605", f"bench refused: {ours.name} and {ref.name} compute different outputs "
                        f"(largest difference {diff:.3g}, outputs up to {scale:.3g})", None,
                        "a benchmark of a module that computes something else means nothing; "
                        "check the reference and the spec's parameters")  # fmt: skip
        worst = max(worst, diff / scale)
    return worst


def _time(variants: list[_Variant], args: list, opts: Options, torch, label: str) -> None:
    """Warm-up rounds, then timed ones; each round calls every variant once, the order
    alternating. A bar counts the calls (modelc.progress: on a terminal, unless --json)."""
    cuda = opts.device.startswith("cuda")
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rounds = range(opts.warmup + opts.reps)
    calls = [(r, v) for r in rounds for v in (variants if r % 2 == 0 else variants[::-1])]
    if opts.progress:
        from modelc.progress import progress

        calls = progress(calls, desc=label, total=len(calls), unit="run")
    with torch.inference_mode():
        for r, v in calls:
            sync()
            start = time.perf_counter()
            v.module(*args)
            sync()
            if r >= opts.warmup:
                v.times.append(time.perf_counter() - start)


def _cuda_peak(module, args: list, torch) -> int:
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.inference_mode():
        module(*args)
    torch.cuda.synchronize()
    return torch.cuda.max_memory_allocated() - base


def _cpu_peak(opts: Options, which: str) -> int | None:
    """One forward in a fresh process, after an untimed one: how far it raised the resident
    set above what the built module holds (None where that cannot be measured: not Linux, or the child failed)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    payload = json.dumps({"options": asdict(opts), "which": which})
    proc = subprocess.run([sys.executable, "-m", "modelc.bench", payload],
                          capture_output=True, text=True, timeout=1800)  # fmt: skip
    if proc.returncode != 0:
        return None
    return int(proc.stdout.strip().splitlines()[-1])


def _setup(opts: Options, torch):
    """(graph, ours, reference or None, args, env, whether both hold the same weights, how the
    weights were set)."""
    graph = _graph(opts)
    ref_name, ref_module, ref_level = _reference(opts)
    ours = _module_class(graph, opts.spec)()
    args, env = _inputs(graph, opts, torch)
    same, weights = False, "random"
    if ref_level is not None:  # the spec at another level: one random checkpoint of the spec
        ref_module = _module_class(_graph(opts, ref_level), opts.spec)()
        base = _module_class(_graph(opts, 0), opts.spec)()
        randomize(base, torch)
        state = base.state_dict()
        ours.load_state_dict(state)
        ref_module.load_state_dict(state)
        same, weights = True, "one random checkpoint of the spec"
    elif ref_module is not None:
        same, weights = _share_weights(ours, ref_module, torch)
    else:
        randomize(ours, torch)
    reference = None if ref_module is None else _Variant(ref_name, ref_module.eval())
    mine = _Variant(f"modelc -O{opts.optimize}" + (" +rewrite" if opts.rewrites else ""), ours.eval())
    return graph, mine, reference, args, env, same, weights


def _torch_dtype(name: str, torch):
    return {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[name]


def _prepare(module, opts: Options, torch):
    module = module.to(opts.device)
    if opts.dtype != "fp32":
        module = module.to(_torch_dtype(opts.dtype, torch))
    if opts.channels_last:
        module = module.to(memory_format=torch.channels_last)
    if opts.compile:
        module = torch.compile(module)
    return module


def _cast(args: list, opts: Options, torch) -> list:
    dtype = _torch_dtype(opts.dtype, torch)
    out = []
    for a in args:
        a = a.to(opts.device)
        if a.is_floating_point():
            a = a.to(dtype)
            if opts.channels_last and a.dim() == 4:
                a = a.contiguous(memory_format=torch.channels_last)
        out.append(a)
    return out


def bench(opts: Options) -> dict[str, Any]:
    """Measure; returns the report (see format_report). E0601 for bad options, E0605 where
    the modules disagree."""
    import torch

    if opts.dtype not in DTYPES:
        raise error("E0601", f"--dtype {opts.dtype}: expected one of {', '.join(DTYPES)}", None)
    if opts.device.startswith("cuda") and not torch.cuda.is_available():
        raise error("E0601", f"--device {opts.device}: torch sees no CUDA device here", None)
    if opts.reps < 1 or opts.warmup < 0:
        raise error("E0601", "--reps must be at least 1 and --warmup at least 0", None)
    if opts.threads:
        torch.set_num_threads(opts.threads)
    graph, ours, ref, args, env, same, weights = _setup(opts, torch)
    variants = [ours] + ([ref] if ref else [])
    for v in variants:
        v.module = v.module.to(opts.device)
    dev_args = [a.to(opts.device) for a in args]
    worst = _compare(ours, ref, dev_args, torch, same) if ref else None
    for v in variants:
        v.module = _prepare(v.module, opts, torch)
    dev_args = _cast(args, opts, torch)
    _time(variants, dev_args, opts, torch, f"bench {graph.name}")
    from modelc.symbolic import subs

    macs = sum(int(subs(graph.node(n).macs, env)) for n in graph.nodes())
    device_name = torch.cuda.get_device_name(opts.device) if opts.device.startswith("cuda") else _cpu_name()
    peak = opts.peak_tflops or (peak_tflops(device_name, opts.dtype) if opts.device.startswith("cuda") else None)
    batch = next((int(a.shape[0]) for a in args if a.dim()), 1)
    rows = []
    for v, which in zip(variants, ("ours", "reference")):
        median = statistics.median(v.times)
        qs = statistics.quantiles(v.times, n=10, method="inclusive") if len(v.times) >= 2 else [median] * 9
        if opts.device.startswith("cuda"):
            mem = _cuda_peak(v.module, dev_args, torch)
        else:
            mem = _cpu_peak(opts, which) if opts.memory else None
        rows.append({
            "name": v.name, "median_ms": median * 1e3, "p10_ms": qs[0] * 1e3, "p90_ms": qs[-1] * 1e3,
            "samples_per_s": batch / median, "peak_mib": None if mem is None else mem / 2**20,
            "tflops": 2 * macs / median / 1e12,
            "mfu": None if peak is None else 2 * macs / median / 1e12 / peak,
        })  # fmt: skip
    return {
        "spec": opts.spec, "model": graph.name, "optimize": opts.optimize, "reference": opts.reference,
        "device": opts.device, "device_name": device_name, "dtype": opts.dtype, "batch": batch,
        "sizes": env, "channels_last": opts.channels_last, "compile": opts.compile,
        "threads": torch.get_num_threads(), "torch": torch.__version__, "reps": opts.reps,
        "warmup": opts.warmup, "macs": macs, "peak_tflops": peak, "weights": weights,
        "outputs_compared": worst is not None, "max_relative_difference": worst,
        "ratio": rows[1]["median_ms"] / rows[0]["median_ms"] if len(rows) > 1 else None,
        "variants": rows,
    }  # fmt: skip


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    import platform

    return platform.processor() or "cpu"


def format_report(r: dict[str, Any]) -> str:
    sizes = ", ".join(f"{k}={v}" for k, v in r["sizes"].items()) or "fixed sizes"
    layout = ", channels_last" if r["channels_last"] else ""
    mode = "torch.compile" if r["compile"] else "eager"
    head = [f"{r['model']} ({r['spec']}) on {r['device']} ({r['device_name']}), {r['dtype']}{layout}, {mode}, "
            f"{sizes}, {r['threads']} threads, torch {r['torch']}",
            f"{r['reps']} interleaved runs after {r['warmup']} warm-up; weights: {r['weights']}; "
            + ("outputs match (largest relative difference "
               f"{r['max_relative_difference']:.2g})" if r["outputs_compared"] else "outputs not compared")]  # fmt: skip
    cols = ["", "median ms", "p10-p90 ms", "samples/s", "peak MiB", "TFLOP/s"] + (["MFU"] if r["peak_tflops"] else [])
    rows = [cols]
    for v in r["variants"]:
        row = [v["name"], f"{v['median_ms']:.2f}", f"{v['p10_ms']:.2f}-{v['p90_ms']:.2f}",
               f"{v['samples_per_s']:.1f}", "-" if v["peak_mib"] is None else f"{v['peak_mib']:.1f}",
               f"{v['tflops']:.3g}"]  # fmt: skip
        if r["peak_tflops"]:
            row.append(f"{100 * v['mfu']:.1f}%")
        rows.append(row)
    widths = [max(len(row[i]) for row in rows) for i in range(len(cols))]
    table = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))
             for row in rows]  # fmt: skip
    tail = []
    if r["ratio"] is not None:
        ours, ref = r["variants"][0]["name"], r["variants"][1]["name"]
        tail.append(f"ratio: {r['ratio']:.2f}x ({ours} vs {ref}; > 1: {ours} is faster)")
    return "\n".join(head + table + tail)


# ---- the child process of a CPU memory measurement ------------------------------------------
def _child(payload: str) -> int:
    import torch

    data = json.loads(payload)
    opts = Options(**{**data["options"], "inputs": {k: tuple(v) for k, v in data["options"]["inputs"].items()},
                      "rewrites": tuple(data["options"]["rewrites"]), "compile": False, "progress": False})  # fmt: skip
    if opts.threads:
        torch.set_num_threads(opts.threads)
    graph, ours, ref, args, *_ = _setup(opts, torch)
    v = ours if data["which"] == "ours" else ref
    module = _prepare(v.module, opts, torch)
    args = _cast(args, opts, torch)
    del ours, ref
    import gc

    with torch.inference_mode():  # a first forward sets up what is made once (oneDNN's
        module(*args)  # primitives, thread pools): not the forward's own memory
    gc.collect()
    _release_free_memory()
    base = _reset_peak()
    with torch.inference_mode():
        module(*args)
    print(max(0, _status_kib("VmHWM") - base) * 1024)
    return 0


def _release_free_memory() -> None:
    """Hand memory freed while building (temporaries of the weights' set-up) back to the
    system, so the forward's allocations raise the resident set instead of reusing it."""
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _reset_peak() -> int:
    """Reset the kernel's peak-RSS mark of this process (Linux: clear_refs 5) and return the
    current resident set, in KiB."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
    return _status_kib("VmRSS")


def _status_kib(key: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise OSError(f"/proc/self/status has no {key}")


if __name__ == "__main__":  # pragma: no cover - run by _cpu_peak
    sys.exit(_child(sys.argv[1]))
