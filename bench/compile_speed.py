"""How long `modelc check`, `summary` and `compile` take, as whole processes.

    .venv/bin/python bench/compile_speed.py            # 5 timed runs per case
    .venv/bin/python bench/compile_speed.py --runs 3 --layers 2000

Each case runs as a subprocess (`python -m modelc.cli compile SPEC -o OUT`) and is
timed by wall clock, start to exit, after one untimed warm-up run (so bytecode
caches are written). The same run times a bare `python -c pass` and
`python -c "import torch"`: absolute times on a shared machine are noisy, the
ratios to those two references are what to compare between runs.

Specs: ResNet-50 (specs/resnet50.model, or the same spec written to a temporary
folder when the repository has none), `check` of ResNet-152 (specs/resnet152.model,
when present), and two generated networks of N layers
(default 10,000): one chain expression `x -> linear(64) -> relu -> ...`, and N
bindings `x1 = x0 -> linear(64)`, `x2 = x1 -> relu`, ...

Then a warm compile: in one process, `modelc.compile_file(SPEC)` of ResNet-50 and
ResNet-152 after one untimed call, the median and minimum of --warm-runs calls (what a
notebook or a build tool that compiles several specs pays; no start-up, no parser tables).

It also checks that check, summary and compile never import torch: each runs
once more in a wrapper that calls `modelc.cli.main(...)` and then lists the
`torch` modules in `sys.modules`. The script exits 1 if any did, or if a
command failed.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# Runs a modelc command in-process, then reports any torch module it imported.
_NO_TORCH = """\
import contextlib, os, sys
from modelc.cli import main
with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
    rc = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
print("TORCH_MODULES", len(loaded), " ".join(loaded[:5]), file=sys.stderr)
sys.exit(rc)
"""


# Times modelc.compile_file in-process: one untimed call, then `runs` timed ones.
_WARM = """\
import statistics, sys, time
import modelc
spec, runs = sys.argv[1], int(sys.argv[2])
modelc.compile_file(spec)
times = []
for _ in range(runs):
    start = time.perf_counter()
    modelc.compile_file(spec)
    times.append(time.perf_counter() - start)
print(statistics.median(times), min(times))
"""


def chain_spec(layers: int) -> str:
    """One chain expression of `layers` steps, alternating linear(64) and relu."""
    steps = "".join(
        f"        -> {'linear(64)' if i % 2 == 0 else 'relu'}\n" for i in range(layers)
    )
    return f"model Chain{layers} {{\n    input x: [B, 64]\n    output x\n{steps}}}\n"


def bindings_spec(layers: int) -> str:
    """`layers` binding statements, each applying one layer to the previous binding."""
    lines = [f"model Bindings{layers} {{", "    input x0: [B, 64]"]
    for i in range(1, layers + 1):
        lines.append(f"    x{i} = x{i - 1} -> {'linear(64)' if i % 2 else 'relu'}")
    lines += [f"    output x{layers}", "}", ""]
    return "\n".join(lines)


def time_runs(argv: list[str], runs: int) -> list[float]:
    """Wall time of `runs` runs of argv, after one untimed warm-up; fails loudly on an error."""
    times = []
    for i in range(runs + 1):
        start = time.perf_counter()
        proc = subprocess.run(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
        elapsed = time.perf_counter() - start
        if proc.returncode != 0:
            raise SystemExit(
                f"failed ({proc.returncode}): {' '.join(argv)}\n{proc.stderr}"
            )
        if i:
            times.append(elapsed)
    return times


def torch_modules(py: str, args: list[str]) -> str:
    proc = subprocess.run(
        [py, "-c", _NO_TORCH, *args], capture_output=True, text=True, check=False
    )
    line = next(
        (x for x in proc.stderr.splitlines() if x.startswith("TORCH_MODULES")), ""
    )
    if proc.returncode != 0 or not line:
        raise SystemExit(
            f"failed ({proc.returncode}): modelc {' '.join(args)}\n{proc.stderr}"
        )
    return line.split(" ", 1)[1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--runs", type=int, default=5, help="timed runs per case (default 5)"
    )
    ap.add_argument(
        "--layers", type=int, default=10_000, help="layers in the generated specs"
    )
    ap.add_argument(
        "--warm-runs", type=int, default=20, help="timed in-process compiles (default 20)"
    )
    ap.add_argument(
        "--python", default=sys.executable, help="interpreter with modelc installed"
    )
    opts = ap.parse_args()
    py = opts.python
    tmp = Path(tempfile.mkdtemp(prefix="modelc-bench-"))
    resnet = ROOT / "specs" / "resnet50.model"
    n = opts.layers
    chain, binds = tmp / f"chain{n}.model", tmp / f"bindings{n}.model"
    chain.write_text(chain_spec(n))
    binds.write_text(bindings_spec(n))
    cli = [py, "-m", "modelc.cli"]

    def modelc(cmd: str, spec: Path) -> list[str]:
        out = ["-o", str(tmp / f"{spec.stem}.py")] if cmd == "compile" else []
        return [*cli, cmd, str(spec), *out]

    cases = [
        ("python -c pass", [py, "-c", "pass"]),
        ('python -c "import torch"', [py, "-c", "import torch"]),
        ('python -c "import modelc"', [py, "-c", "import modelc"]),
    ]
    resnet152 = ROOT / "specs" / "resnet152.model"
    if resnet152.exists():
        cases.append(("check resnet152", modelc("check", resnet152)))
    for spec, label in (
        (resnet, "resnet50"),
        (chain, f"chain {n:,}"),
        (binds, f"bindings {n:,}"),
    ):
        for cmd in ("check", "summary", "compile"):
            cases.append((f"{cmd} {label}", modelc(cmd, spec)))

    print(
        f"python {platform.python_version()} ({py}), {os.cpu_count()} CPUs, "
        f"{platform.platform()}; {opts.runs} timed runs per case"
    )
    results = []
    for label, argv in cases:
        t = time_runs(argv, opts.runs)
        results.append((label, statistics.median(t), min(t)))
        print(
            f"  {label:<28} median {results[-1][1]:7.3f} s", file=sys.stderr, flush=True
        )
    base, torch_t = results[0][1], results[1][1]
    print()
    print(f"| {'case':<28} | median s | min s  | x python | x import torch |")
    print(f"| {'-' * 28} | -------: | -----: | -------: | -------------: |")
    for label, med, lo in results:
        print(
            f"| {label:<28} | {med:8.3f} | {lo:6.3f} | {med / base:8.1f} | {med / torch_t:14.2f} |"
        )

    print("\nwarm compile, in-process (modelc.compile_file, after one untimed call):")
    for spec in (resnet, resnet152):
        if not spec.exists():
            continue
        proc = subprocess.run([py, "-c", _WARM, str(spec), str(opts.warm_runs)],
                              capture_output=True, text=True, check=False)  # fmt: skip
        if proc.returncode != 0:
            raise SystemExit(f"warm compile of {spec} failed:\n{proc.stderr}")
        med, lo = (float(x) * 1000 for x in proc.stdout.split())
        print(f"  {spec.stem:<10} median {med:6.1f} ms, min {lo:6.1f} ms ({opts.warm_runs} runs)")

    for spec in (chain, binds):
        text = (tmp / f"{spec.stem}.py").read_text()
        layers = text.count("nn.Linear(") + text.count("torch.relu(")
        if layers != n:
            print(
                f"\ncompile {spec.name}: the module has {layers} layers, expected {n}"
            )
            return 1
    print(
        f"\ngenerated modules: {n:,} layers each in {chain.stem}.py and {binds.stem}.py"
    )

    print("\ntorch modules imported by modelc commands (expected: 0):")
    bad = False
    for cmd in ("check", "summary", "compile"):
        args = [cmd, str(resnet)] + (
            ["-o", str(tmp / "resnet50.py")] if cmd == "compile" else []
        )
        found = torch_modules(py, args)
        bad |= not found.startswith("0")
        print(f"  modelc {cmd} resnet50: {found}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
