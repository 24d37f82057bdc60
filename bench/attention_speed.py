"""Attention from primitives at -O0 and -O2: forward time and peak memory, in one run.

    .venv/bin/python bench/attention_speed.py                      # specs/attention_primitives.model
    .venv/bin/python bench/attention_speed.py --lengths 512 1024 2048 --threads 2 --param width=256

Each (level, T) runs in a fresh subprocess (so one run's allocations cannot hide another's):
it builds the module and the input, runs one forward (eval, no_grad) and reports how much
it raised the process's peak resident memory (getrusage's ru_maxrss): the activations and
temporaries; then times `--repeats` forwards and reports the median. Ratios
are -O0 / -O2: time >1 means -O2 is faster, memory >1 means -O2 uses less.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

CHILD = r"""
import json, resource, statistics, sys, time
import torch
import modelc

spec, level, t, batch, threads, repeats, params = json.loads(sys.argv[1])
torch.set_num_threads(threads)
cls = modelc.load(spec, optimize=level, **params)
model = cls().eval()
name, shape = next(iter(cls.INPUT_SHAPES.items()))
dims = [batch if d == "B" else t if isinstance(d, str) else d for d in shape]
x = torch.randn(*dims)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
with torch.no_grad():
    model(x)  # the first forward: its peak is the activations' and temporaries' (and warms up)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model(x)
        times.append(time.perf_counter() - start)
print(json.dumps({"seconds": statistics.median(times), "grew_kib": peak - before, "peak_kib": peak}))
"""


def measure(spec: str, level: int, t: int, args, params: dict) -> dict:
    job = json.dumps([spec, level, t, args.batch, args.threads, args.repeats, params])
    out = subprocess.run([sys.executable, "-c", CHILD, job], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--spec", default="specs/attention_primitives.model")
    ap.add_argument("--lengths", type=int, nargs="+", default=[512, 1024, 2048])
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--param", action="append", default=[], help="K=V, an integer model parameter")
    args = ap.parse_args()
    params = {k: int(v) for k, v in (p.split("=", 1) for p in args.param)}
    print(f"{args.spec} {params or ''} B={args.batch}, {args.threads} threads, median of {args.repeats}")
    print(f"{'T':>6} {'-O0 ms':>9} {'-O2 ms':>9} {'speedup':>8} {'-O0 MiB':>9} {'-O2 MiB':>9} {'memory':>7}")
    for t in args.lengths:
        o0, o2 = (measure(args.spec, level, t, args, params) for level in (0, 2))
        m0, m2 = o0["grew_kib"] / 1024, o2["grew_kib"] / 1024
        ratio = f"{m0 / m2:6.1f}x" if m2 > 0 else "   n/a"
        print(f"{t:>6} {o0['seconds'] * 1e3:9.1f} {o2['seconds'] * 1e3:9.1f} {o0['seconds'] / o2['seconds']:7.1f}x "
              f"{m0:9.1f} {m2:9.1f} {ratio}")  # fmt: skip


if __name__ == "__main__":
    main()
