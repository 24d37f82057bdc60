"""Measure the cost model of the optimizer's merge-depthwise-pointwise pass.

Times depthwise, pointwise and dense 2-d convolutions (torch.nn.functional.conv2d, float32,
eval mode, no autograd) over a grid of sizes on this machine, fits per kind

    time = per_call + MACs * per_mac

(weighted least squares on relative error, so small and large cases count alike; sizes
measured at over twice the fitted time are left out as disturbed and the fit redone), and prints
the constants as Python to paste into compiler/passes/costs.py, with the command and the
machine they came from. Then it checks the model where it matters: for depthwise+pointwise
pairs from tiny to MobileNet sizes it times the pair and the dense convolution they merge
into, and prints both, the model's predictions and whether each says merging is faster.

    .venv/bin/python bench/cost_model.py                   # CPU, 2 threads, 7 rounds
    .venv/bin/python bench/cost_model.py --device cuda     # a GPU
    .venv/bin/python bench/cost_model.py --quick           # fewer sizes, 3 rounds (a smoke test)

Every case is timed once per round, rounds interleave the cases (so a burst of load on a
shared machine hits every kind alike), and each case's time is the median over the rounds of
one round's time per call: on a CPU the 10th percentile of calls timed one by one for at
least --min-ms (see `timer`), on a GPU the mean of a loop of calls that runs at least --min-ms. Batch size 1 by default (--batch):
latency, what the pass decides for.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch
import torch.nn.functional as F

# (in channels, out channels, kernel, spatial size) per case; depthwise has out = in.
GRID = {
    "depthwise": [(c, c, k, h) for c in (8, 32, 96, 256, 512) for k in (3, 5) for h in (7, 14, 28, 56, 112)],
    "pointwise": [(c, n, 1, h) for c, n in ((8, 8), (16, 32), (32, 64), (96, 24), (144, 24), (128, 128),
                                            (256, 256), (512, 512), (1024, 1024)) for h in (7, 14, 28, 56, 112)],
    "dense": [(c, n, k, h) for c, n in ((3, 32), (4, 4), (8, 8), (16, 16), (32, 32), (64, 64), (128, 128),
                                        (256, 256)) for k in (3, 5) for h in (7, 14, 28, 56)],
}  # fmt: skip
QUICK = {kind: cases[::3] for kind, cases in GRID.items()}
MAX_MACS = 1.2e9  # larger cases take too long on a CPU and add nothing to the fit

# depthwise+pointwise pairs to check the model against: (channels, pointwise outputs, kernel, size)
PAIRS = [(2, 2, 3, 8), (4, 4, 3, 8), (4, 8, 3, 16), (8, 8, 3, 16), (8, 16, 5, 16), (16, 16, 3, 16),
         (16, 32, 3, 32), (32, 32, 3, 28), (32, 64, 3, 112), (96, 24, 3, 56), (144, 32, 3, 28),
         (256, 256, 3, 28), (512, 512, 3, 14), (1024, 1024, 3, 7)]  # fmt: skip


def macs(kind: str, c: int, n: int, k: int, h: int, batch: int) -> int:
    per_out = k * k * (1 if kind == "depthwise" else c)
    return batch * n * h * h * per_out  # stride 1, "same" padding: the output is h x h


def make(kind: str, c: int, n: int, k: int, h: int, batch: int, device: str):
    x = torch.randn(batch, c, h, h, device=device)
    groups = c if kind == "depthwise" else 1
    w = torch.randn(n, c // groups, k, k, device=device) / (c // groups * k * k) ** 0.5
    b = torch.randn(n, device=device)

    def run():
        return F.conv2d(x, w, b, 1, k // 2, 1, groups)

    return run


def make_pair(c: int, n: int, k: int, h: int, batch: int, device: str):
    """(the depthwise then the pointwise conv, the dense conv they merge into)."""
    x = torch.randn(batch, c, h, h, device=device)
    wd, bd = torch.randn(c, 1, k, k, device=device), torch.randn(c, device=device)
    wp, bp = torch.randn(n, c, 1, 1, device=device), torch.randn(n, device=device)
    wm, bm = wp * wd.reshape(1, c, k, k), bp + wp.flatten(1) @ bd

    def separate():
        return F.conv2d(F.conv2d(x, wd, bd, 1, k // 2, 1, c), wp, bp)

    def merged():
        return F.conv2d(x, wm, bm, 1, k // 2)

    return separate, merged


def timer(fn, device: str, min_ms: float) -> float:
    """Seconds per call: on a GPU the mean over a loop of calls that runs at least `min_ms`
    (launches queue back to back, as in a model); on a CPU the 10th percentile of at least
    20 calls timed one by one for at least `min_ms`. NOTE: [Timing on a shared CPU] With two
    threads on a busy two-core machine, most calls wait a scheduler time slice (10 to 40 ms)
    for their second thread, and so do means and medians of them: the fastest tenth of the
    calls are those that ran undisturbed, and the median over the rounds of that is stable
    to a few percent between runs where the median of the calls was not."""
    if device == "cuda":
        return _loop_mean(fn, min_ms)
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 20 or (time.perf_counter() - start) * 1e3 < min_ms:
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.quantiles(times, n=10)[0]


def _loop_mean(fn, min_ms: float) -> float:
    torch.cuda.synchronize()
    fn()
    n = 1
    while True:
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(n):
            fn()
        torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        if dt * 1e3 >= min_ms:
            return dt / n
        n = max(n * 2, int(n * min_ms / max(dt * 1e3, 1e-3) * 1.2))


def measure(cases: dict, device: str, rounds: int, min_ms: float) -> dict:
    """Median over `rounds` interleaved rounds of each case's time per call."""
    samples: dict = {key: [] for key in cases}
    for r in range(rounds):
        for key, fn in cases.items():
            samples[key].append(timer(fn, device, min_ms))
        print(f"  round {r + 1}/{rounds} done", file=sys.stderr)
    return {key: statistics.median(v) for key, v in samples.items()}


def fit(points: list[tuple[float, float]]) -> tuple[float, float]:
    """(per_call, per_mac) seconds minimizing the relative error over (macs, seconds) points,
    both kept non-negative."""
    a11 = sum(1 / t**2 for _, t in points)
    a12 = sum(m / t**2 for m, t in points)
    a22 = sum(m * m / t**2 for m, t in points)
    b1 = sum(1 / t for _, t in points)
    b2 = sum(m / t for m, t in points)
    det = a11 * a22 - a12 * a12
    call, mac = (b1 * a22 - b2 * a12) / det, (a11 * b2 - a12 * b1) / det
    if call < 0:  # refit through the origin
        call, mac = 0.0, b2 / a22
    if mac < 0:
        call, mac = b1 / a11, 0.0
    return call, mac


def robust_fit(points: list[tuple[float, float]]) -> tuple[float, float, list[tuple[float, float]]]:
    """`fit`, refitted without the points measured over DISTURBED times the model's time, until
    none is left out anew: (per_call, per_mac, the points left out). Another process taking
    the CPU only ever adds time, so only slow outliers are dropped."""
    kept = list(points)
    while True:
        call, mac = fit(kept)
        now = [(m, t) for m, t in points if t <= DISTURBED * (call + m * mac)]
        if len(now) == len(kept) or len(now) < 3:
            return call, mac, [p for p in points if p not in kept]
        kept = now


DISTURBED = 2.0


def machine(device: str, threads: int) -> str:
    if device == "cuda":
        return (f"{torch.cuda.get_device_name()}, torch {torch.__version__}, "
                f"cudnn.allow_tf32={torch.backends.cudnn.allow_tf32}")  # fmt: skip
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {threads} threads, torch {torch.__version__}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads (CPU)")
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--min-ms", type=float, default=20.0, help="shortest timed loop per sample")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    grid = QUICK if args.quick else GRID
    rounds = 3 if args.quick else args.rounds
    cases = {(kind, *case): make(kind, *case, args.batch, args.device)
             for kind, sizes in grid.items() for case in sizes
             if macs(kind, *case, args.batch) <= MAX_MACS}  # fmt: skip
    times = measure(cases, args.device, rounds, args.min_ms)
    constants = report_fit(times, args.batch)
    report_pairs(constants, args, rounds)
    print_constants(constants, args, rounds)
    return 0


def report_fit(times: dict, batch: int) -> dict:
    constants = {}
    for kind in GRID:
        points = [(macs(kind, *key[1:], batch), t) for key, t in times.items() if key[0] == kind]
        call, mac, dropped = robust_fit(points)
        constants[kind] = (call, mac)
        kept = [(m, t) for m, t in points if (m, t) not in dropped]
        errors = sorted(abs(call + m * mac - t) / t for m, t in kept)
        print(f"\n{kind}: per call {call * 1e6:.2f} us, per MAC {mac * 1e12:.3f} ps "
              f"({1 / mac / 1e9 if mac else float('inf'):.1f} GMAC/s); relative error median "
              f"{statistics.median(errors):.0%}, worst {errors[-1]:.0%} over {len(kept)} sizes; "
              f"{len(dropped)} left out, at over {DISTURBED:g}x the model (disturbed, or where two "
              f"constants do not fit): marked *")  # fmt: skip
        print(f"  {'in':>5} {'out':>5} {'k':>2} {'size':>4} {'MACs':>12} {'measured us':>12} {'model us':>10}")
        for key, t in sorted(times.items()):
            if key[0] == kind:
                m = macs(kind, *key[1:], batch)
                mark = " *" if (m, t) in dropped else ""
                print(f"  {key[1]:>5} {key[2]:>5} {key[3]:>2} {key[4]:>4} {m:>12,} {t * 1e6:>12.1f} "
                      f"{(call + m * mac) * 1e6:>10.1f}{mark}")  # fmt: skip
    return constants


def report_pairs(constants: dict, args, rounds: int) -> None:
    """Measured and predicted: a depthwise+pointwise pair against its merged dense conv."""
    cases = {}
    for c, n, k, h in PAIRS:
        separate, merged = make_pair(c, n, k, h, args.batch, args.device)
        cases[(c, n, k, h, "separate")] = separate
        if macs("dense", c, n, k, h, args.batch) <= MAX_MACS * 4:
            cases[(c, n, k, h, "merged")] = merged
    times = measure(cases, args.device, rounds, args.min_ms)

    def model(kind, c, n, k, h):
        call, mac = constants[kind]
        return call + macs(kind, c, n, k, h, args.batch) * mac

    print("\ndepthwise+pointwise pairs against the merged dense conv (us; faster: which is)")
    print(f"  {'C':>5} {'N':>5} {'k':>2} {'size':>4} {'pair':>10} {'merged':>10} {'faster':>8} "
          f"{'model pair':>11} {'model merged':>13} {'model says':>10}")  # fmt: skip
    for c, n, k, h in PAIRS:
        sep, mer = times[(c, n, k, h, "separate")], times.get((c, n, k, h, "merged"))
        msep = model("depthwise", c, c, k, h) + model("pointwise", c, n, 1, h)
        mmer = model("dense", c, n, k, h)
        measured = "-" if mer is None else ("merged" if mer < sep else "pair")
        mer_text = "-" if mer is None else f"{mer * 1e6:.1f}"
        print(f"  {c:>5} {n:>5} {k:>2} {h:>4} {sep * 1e6:>10.1f} {mer_text:>10} {measured:>8} "
              f"{msep * 1e6:>11.1f} {mmer * 1e6:>13.1f} {'merged' if mmer < msep else 'pair':>10}")  # fmt: skip


def print_constants(constants: dict, args, rounds: int) -> None:
    command = "bench/cost_model.py " + " ".join(sys.argv[1:]) if sys.argv[1:] else "bench/cost_model.py"
    print("\n# ---- paste into compiler/passes/costs.py ----")
    print(f"# {command}  (median of {rounds} interleaved rounds, batch {args.batch})")
    print(f"# on {machine(args.device, args.threads)}")
    print(f'{args.device.upper()} = CostTable("{args.device}", (')
    for kind, (call, mac) in constants.items():
        print(f'    ("{kind}", OpCost(per_call_us={call * 1e6:.3g}, per_mac_ps={mac * 1e12:.3g})),')
    print("))")


if __name__ == "__main__":
    sys.exit(main())
