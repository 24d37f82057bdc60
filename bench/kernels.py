"""Where the time goes: the device kernels of modelc's module and its reference, side by side.

    .venv/bin/python bench/kernels.py specs/resnet50.model -O2 --reference torchvision:resnet50 \\
        --device cuda --dtype bf16 --batch 256

Builds the pair as `modelc bench` does (shared weights, outputs compared first), runs a few
forwards of each under torch.profiler, and prints for each module its total device time per
forward, the time per kind of kernel (convolution, matmul, normalisation, element-wise, copies
and layout changes, attention, other), and the most expensive kernels. Used to say why a
target of bench/run.py is missed.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict

KINDS = [  # (kind, pattern over the kernel's name), first match wins
    ("attention", r"flash|fmha|attention|sdpa|efficient_attention"),
    ("normalisation", r"batch_norm|bn_|layer_norm|layernorm|norm_kernel|welford"),
    ("convolution", r"conv|cudnn|implicit_gemm|xmma_fprop|fprop|dgrad|wgrad|winograd|sm90_xmma|nhwc"),
    ("matmul", r"gemm|matmul|cublas|cutlass|sm90|ampere|wgmma"),
    ("copy / layout", r"copy|transpose|permute|contiguous|nchwToNhwc|nhwcToNchw|cat|memcpy|elementwise_kernel_with_index"),
    ("element-wise", r"elementwise|vectorized|relu|gelu|add|mul|clamp|activation|hardtanh"),
    ("reduction / softmax", r"reduce|softmax|mean|sum"),
]


def kind_of(name: str) -> str:
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low, re.I):
            return kind
    return "other"


def profile(module, args, torch, runs: int, cuda: bool):
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as tprofile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch.inference_mode():
        for _ in range(3):
            module(*args)
        if cuda:
            torch.cuda.synchronize()
        with tprofile(activities=activities) as prof:
            for _ in range(runs):
                module(*args)
            if cuda:
                torch.cuda.synchronize()
    per_kernel: dict[str, float] = defaultdict(float)
    for e in prof.key_averages():
        t = (e.device_time_total if cuda else e.self_cpu_time_total) / runs / 1e3  # ms per forward
        if t > 0 and (cuda and e.device_type.name == "CUDA" or not cuda and e.key.startswith("aten::")):
            per_kernel[e.key] += t
    return per_kernel


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("spec")
    p.add_argument("-O", dest="optimize", type=int, default=0)
    p.add_argument("--reference", required=True)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="fp32")
    p.add_argument("--batch", type=int)
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--top", type=int, default=12)
    a = p.parse_args(argv)
    import torch

    from modelc.bench import Options, _cast, _compare, _prepare, _setup

    opts = Options(spec=a.spec, optimize=a.optimize, reference=a.reference, device=a.device, dtype=a.dtype,
                   batch=a.batch, channels_last=a.channels_last, progress=False)  # fmt: skip
    graph, ours, ref, args, _, same, _ = _setup(opts, torch)
    for v in (ours, ref):
        v.module = v.module.to(opts.device)
    _compare(ours, ref, [x.to(opts.device) for x in args], torch, same)
    cuda = opts.device.startswith("cuda")
    dev_args = _cast(args, opts, torch)
    results = {}
    for v in (ours, ref):
        results[v.name] = profile(_prepare(v.module, opts, torch), dev_args, torch, a.runs, cuda)
    unit = "device" if cuda else "CPU (aten ops, self time)"
    print(f"{graph.name}: {opts.dtype}, batch {args[0].shape[0]}, {unit} ms per forward, {a.runs} profiled forwards")
    kinds = sorted({kind_of(k) for r in results.values() for k in r})
    names = list(results)
    print("| kind | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for kind in kinds + ["total"]:
        cells = []
        for n in names:
            r = results[n]
            cells.append(f"{sum(t for k, t in r.items() if kind in ('total', kind_of(k))):.2f}")
        print(f"| {kind} | " + " | ".join(cells) + " |")
    for n in names:
        print(f"\n{n}: the {a.top} most expensive kernels")
        for k, t in sorted(results[n].items(), key=lambda kv: -kv[1])[: a.top]:
            print(f"  {t:8.3f} ms  [{kind_of(k)}]  {k[:110]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
