"""What the optimizer does to the zoo's large models, and what it is worth on this CPU.

    .venv/bin/python bench/optimize.py                       # counts + timings, ~5 min
    .venv/bin/python bench/optimize.py --counts-only
    .venv/bin/python bench/optimize.py --models resnet50 mobilenet_v2 --runs 21

For ResNet-50, MobileNet v2, ViT-B/16, BERT and the primitive-attention spec: nodes and
parameters at -O0, -O1 and -O2 (from the IR). Then forward times in one process, eval mode,
`torch.inference_mode()`, fp32, 2 threads: modelc's module at -O0, -O1 and -O2 and, where
torchvision has the model, torchvision's eager module, all holding the same random weights
(torchvision's state_dict loaded into each level through its LOAD_RULES; the outputs are
compared first, and a module that computes something else is not timed). The variants run
interleaved, one forward each per round, so a noisy machine slows them alike; the table
gives medians and the ratio of torchvision's median to each (> 1: faster than torchvision).
Attention against sequence length is bench/attention_speed.py.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# name -> (spec, torchvision constructor or None, input shape)
MODELS = {
    "resnet50": ("specs/resnet50.model", "resnet50", (8, 3, 224, 224)),
    "mobilenet_v2": ("specs/mobilenet_v2.model", "mobilenet_v2", (16, 3, 224, 224)),
    "vit_b_16": ("specs/vit_b_16.model", "vit_b_16", (8, 3, 224, 224)),
    "bert": ("specs/bert.model", None, None),
    "attention_primitives": ("specs/attention_primitives.model", None, None),
}


def counts(names: list[str]) -> list[tuple]:
    from modelc.driver import build_all
    from modelc.load import load_file

    rows = []
    for name in names:
        spec = str(ROOT / MODELS[name][0])
        program = load_file(spec)
        row = [name]
        for level in (0, 1, 2):
            g = build_all(program, optimize=level)[0]
            row += [len(g), g.num_params()]
        rows.append(tuple(row))
    return rows


def _inputs(graph, shape, torch):
    """Random inputs (ids below every embedding's vocabulary); images of `shape`; sequences
    of 2 x 128 where the sizes are symbols."""
    from modelc.verify import _random_input, concrete_env

    env = concrete_env(graph, 2, 128)
    out = []
    for n in graph.inputs:
        t = graph.node(n).type.subs(env)
        if shape is not None and len(shape) == len(t.dims):
            t = t.with_dims(shape)
        out.append(_random_input(graph, n, t, "cpu"))
    return out


def timings(name: str, runs: int, torch) -> list[tuple[str, float, float]]:
    import modelc
    from modelc.bench import flat_outputs, randomize
    from modelc.driver import build_all
    from modelc.load import load_file

    spec, tv_name, shape = MODELS[name]
    spec = str(ROOT / spec)
    graph = build_all(load_file(spec))[0]
    torch.manual_seed(0)
    base = modelc.load(spec)()
    variants: dict[str, object] = {}
    if tv_name is not None:
        import torchvision

        ref = getattr(torchvision.models, tv_name)(weights=None)
        randomize(ref, torch)
        variants["torchvision"] = ref.eval()
        state = ref.state_dict()
    else:
        randomize(base, torch)
        state = base.state_dict()
    for level in (0, 1, 2):
        m = modelc.load(spec, optimize=level)()
        m.load_state_dict(state)
        variants[f"-O{level}"] = m.eval()
    args = _inputs(graph, shape, torch)
    with torch.inference_mode():
        want = [o for o in flat_outputs(variants[next(iter(variants))](*args))]
        for key, m in variants.items():  # a module that computes something else is not timed
            for a, b in zip(want, flat_outputs(m(*args))):
                tol = 1e-4 * max(1.0, a.abs().max().item())
                if not torch.allclose(a, b, atol=tol, rtol=1e-4):
                    raise SystemExit(f"{name} {key}: outputs differ by {(a - b).abs().max().item():.3g}")
        times: dict[str, list[float]] = {k: [] for k in variants}
        for _ in range(2):  # warm-up
            for m in variants.values():
                m(*args)
        for _ in range(runs):
            for key, m in variants.items():
                start = time.perf_counter()
                m(*args)
                times[key].append(time.perf_counter() - start)
    ref_key = "torchvision" if "torchvision" in times else "-O0"
    ref_median = statistics.median(times[ref_key])
    return [(key, statistics.median(t) * 1e3, ref_median / statistics.median(t)) for key, t in times.items()]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="*", default=list(MODELS), choices=list(MODELS))
    p.add_argument("--runs", type=int, default=15, help="timed forwards of each variant (interleaved)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--counts-only", action="store_true")
    args = p.parse_args(argv)
    print("| model | nodes -O0 / -O1 / -O2 | parameters -O0 / -O1 / -O2 |")
    print("| --- | ---: | ---: |")
    for row in counts(args.models):
        print(f"| {row[0]} | {row[1]:,} / {row[3]:,} / {row[5]:,} | {row[2]:,} / {row[4]:,} / {row[6]:,} |")
    if args.counts_only:
        return 0
    import torch

    torch.set_num_threads(args.threads)
    print(f"\ntorch {torch.__version__}, {args.threads} threads, fp32, eval, {args.runs} interleaved runs (median)")
    print("| model | variant | ms | speed vs reference |")
    print("| --- | --- | ---: | ---: |")
    for name in args.models:
        for key, ms, ratio in timings(name, args.runs, torch):
            ref = "torchvision" if MODELS[name][1] else "-O0"
            print(f"| {name} | {key} | {ms:.1f} | {ratio:.2f}x {ref} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
