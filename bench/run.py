"""The benchmark suite: modelc's modules against their references, side by side, per device.

    .venv/bin/python bench/run.py                      # the device it finds (CUDA if any, else CPU)
    .venv/bin/python bench/run.py --device cpu --only resnet50
    .venv/bin/python bench/run.py --table-only         # regenerate bench/README.md's tables

Each comparison is one `modelc bench` run (modelc.bench.bench: shared weights, outputs
compared in fp32 first, interleaved timing, peak memory, MFU on CUDA). The results go to
bench/results/<date>-<device>.json, written after every comparison so an interrupted run keeps
what it measured, and the tables between the `<!-- suite:DEVICE -->` markers of
bench/README.md are regenerated from the newest results file of each device.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import sys
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
README = ROOT / "bench" / "README.md"
REF_LSTM = "module:bench/references.py:LSTM"  # the suite runs in the repository's root
ATTENTION = {"width": 768, "heads": 12}  # BERT-base's attention, written from primitives

# (key, label, target ratio or None, options for modelc.bench.Options)
CPU = [
    ("resnet50-O0", "ResNet-50 -O0 eager", 1.00,
     dict(spec="specs/resnet50.model", optimize=0, reference="torchvision:resnet50", batch=8)),
    ("resnet50-O1", "ResNet-50 -O1 eager", 1.05,
     dict(spec="specs/resnet50.model", optimize=1, reference="torchvision:resnet50", batch=8)),
    ("resnet50-O1-cl", "ResNet-50 -O1 channels_last", 1.05,
     dict(spec="specs/resnet50.model", optimize=1, reference="torchvision:resnet50", batch=8, channels_last=True)),
    ("mobilenet_v2-O2", "MobileNet v2 -O2 eager", 1.05,
     dict(spec="specs/mobilenet_v2.model", optimize=2, reference="torchvision:mobilenet_v2", batch=8)),
    ("vit_b_16-O2", "ViT-B/16 -O2 eager", 1.00,
     dict(spec="specs/vit_b_16.model", optimize=2, reference="torchvision:vit_b_16", batch=8)),
    *[(f"attention-T{t}", f"primitive attention -O2, T = {t}", 1.00,
       dict(spec="specs/attention_primitives.model", optimize=2, reference="O0", params=ATTENTION,
            inputs={"x": (1, t, 768)}))
      for t in (512, 1024, 2048)],
    ("lstm", "LSTM(512, 512, 2), T = 256", 1.00,
     dict(spec="specs/lstm.model", reference=REF_LSTM, inputs={"x": (8, 256, 512)})),
    ("resnet50-O2-compile", "ResNet-50 -O2 + torch.compile", 1.00,
     dict(spec="specs/resnet50.model", optimize=2, reference="torchvision:resnet50", batch=8, compile=True)),
]  # fmt: skip

CUDA = [
    ("resnet50-O2", "ResNet-50 -O2 eager", 1.05,
     dict(spec="specs/resnet50.model", optimize=2, reference="torchvision:resnet50", batch=256)),
    ("mobilenet_v2-O2", "MobileNet v2 -O2 eager", 1.05,
     dict(spec="specs/mobilenet_v2.model", optimize=2, reference="torchvision:mobilenet_v2", batch=256)),
    ("vit_b_16-O2", "ViT-B/16 -O2 eager", 1.00,
     dict(spec="specs/vit_b_16.model", optimize=2, reference="torchvision:vit_b_16", batch=256)),
    *[(f"attention-T{t}", f"primitive attention -O2, T = {t}", 8.00 if t == 2048 else 1.00,
       dict(spec="specs/attention_primitives.model", optimize=2, reference="O0", params=ATTENTION,
            inputs={"x": (4, t, 768)}))
      for t in (512, 2048, 8192)],
    ("lstm", "LSTM(512, 512, 2), T = 256 (cuDNN)", 1.00,
     dict(spec="specs/lstm.model", reference=REF_LSTM, inputs={"x": (256, 256, 512)})),
    ("resnet50-O2-compile", "ResNet-50 -O2 + torch.compile", 1.00,
     dict(spec="specs/resnet50.model", optimize=2, reference="torchvision:resnet50", batch=256, compile=True)),
]  # fmt: skip

SETTINGS = {
    "cpu": dict(device="cpu", dtype="fp32", threads=2, reps=30, warmup=3),
    "cuda": dict(device="cuda", dtype="bf16", reps=20, warmup=5),
}


def run(device: str, only: list[str], out: Path, reps: int | None = None) -> list[dict]:
    import torch

    from modelc.bench import Options, bench

    suite = CPU if device == "cpu" else CUDA
    rows = []
    for key, label, target, opts in suite:
        if only and not any(o in key for o in only):
            continue
        settings = {**SETTINGS[device], **({"reps": reps} if reps else {})}
        options = Options(**{**settings, **opts}, progress=True)  # drawn where modelc.progress says
        print(f"{label} ...", file=sys.stderr, flush=True)
        row = {"key": key, "label": label, "target": target}
        try:
            row["report"] = bench(options)
        except Exception as exc:  # noqa: BLE001 - a failed comparison is recorded, and the suite goes on
            row["error"] = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            traceback.print_exc()
        rows.append(row)
        print(_line(row), file=sys.stderr, flush=True)
        _write(out, device, rows, torch)
    return rows


def _write(out: Path, device: str, rows: list[dict], torch) -> None:
    data = {
        "date": datetime.date.today().isoformat(),
        "device": device,
        "device_name": rows[0].get("report", {}).get("device_name") if rows else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "commit": _commit(),
        "command": " ".join(["python", "bench/run.py", *sys.argv[1:]]),
        "rows": rows,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=1) + "\n")
    tmp.replace(out)


def _commit() -> str | None:
    """HEAD's short hash (MODELC_COMMIT where the tree is a copy without its history)."""
    import subprocess

    if os.environ.get("MODELC_COMMIT"):
        return os.environ["MODELC_COMMIT"]
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()  # fmt: skip
    except (OSError, subprocess.CalledProcessError):
        return None


def _line(row: dict) -> str:
    if "error" in row:
        return f"  {row['label']}: failed: {row['error']}"
    r = row["report"]
    return f"  {row['label']}: {r['ratio']:.2f}x (target {row['target']:.2f}x)"


# ---- the tables in bench/README.md ------------------------------------------------------------
def table(data: dict) -> str:
    cuda = data["device"] == "cuda"
    head = ["comparison", "reference", "modelc ms", "reference ms", "ratio", "target", "met",
            "peak MiB modelc / ref"] + (["MFU modelc / ref"] if cuda else [])  # fmt: skip
    lines = [
        f"{data['date']}, {data['device_name']}, torch {data['torch']}, commit {data['commit']}: "
        f"`{data['command']}`",
        "",
        "| " + " | ".join(head) + " |",
        "| " + " | ".join(["---", "---"] + ["---:"] * (len(head) - 2)) + " |",
    ]
    for row in data["rows"]:
        if "error" in row:
            lines.append(f"| {row['label']} | | | | failed: {row['error'][:80]} | {row['target']:.2f}x | no |" +
                         " |" * (len(head) - 7))  # fmt: skip
            continue
        r = row["report"]
        ours, ref = r["variants"]
        met = _met(r["ratio"], row["target"], ours, ref)
        mem = " / ".join("-" if v["peak_mib"] is None else f"{v['peak_mib']:.0f}" for v in (ours, ref))
        cells = [row["label"], ref["name"], _ms(ours["median_ms"]), _ms(ref["median_ms"]),
                 f"{r['ratio']:.3f}x", f"{row['target']:.2f}x", met, mem]  # fmt: skip
        if cuda:
            cells.append(" / ".join("-" if v["mfu"] is None else f"{100 * v['mfu']:.1f}%" for v in (ours, ref)))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _met(ratio: float, target: float, *variants) -> str:
    """yes; "within noise" where the shortfall is under half the wider 10th-90th percentile
    spread of the two modules' times (the ratio cannot be told from the target); else no."""
    if ratio >= target:
        return "yes"
    noise = max((v["p90_ms"] - v["p10_ms"]) / v["median_ms"] for v in variants) / 2
    return f"within noise (±{100 * noise:.0f}%)" if ratio >= target - noise else "**no**"


def _ms(ms: float) -> str:
    return f"{ms:.3f}" if ms < 1 else f"{ms:.2f}" if ms < 100 else f"{ms:.1f}"


NOT_MEASURED = {
    "cuda": "Not yet measured: no GPU available. On a machine with one: `.venv/bin/python bench/run.py --device cuda`.",
    "cpu": "Not yet measured: `.venv/bin/python bench/run.py --device cpu`.",
}


def update_readme() -> None:
    text = README.read_text()
    for device in ("cpu", "cuda"):
        files = sorted(RESULTS.glob(f"*-{device}.json"))
        body = table(json.loads(files[-1].read_text())) if files else NOT_MEASURED[device]
        pattern = re.compile(rf"(<!-- suite:{device} -->).*?(<!-- /suite:{device} -->)", re.S)
        if not pattern.search(text):
            raise SystemExit(f"bench/README.md has no <!-- suite:{device} --> markers")
        text = pattern.sub(lambda m: f"{m.group(1)}\n{body}\n{m.group(2)}", text)
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", choices=("cpu", "cuda"), help="default: cuda if torch sees one, else cpu")
    p.add_argument("--only", nargs="*", default=[], metavar="KEY", help="run the comparisons whose key has KEY")
    p.add_argument("--reps", type=int, help="timed runs of each module (default: 30 on the CPU, 20 on CUDA)")
    p.add_argument("--table-only", action="store_true", help="only regenerate bench/README.md's tables")
    p.add_argument("--output", type=Path, help="the results file (default bench/results/<date>-<device>.json)")
    args = p.parse_args(argv)
    os.chdir(ROOT)  # specs/ and bench/references.py are named from here, in the results too
    if not args.table_only:
        import torch

        device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
        out = args.output or RESULTS / f"{datetime.date.today().isoformat()}-{device}.json"
        rows = run(device, args.only, out, args.reps)
        print(table(json.loads(out.read_text())))
        if any("error" in r for r in rows):
            print("bench/run.py: some comparisons failed (see above)", file=sys.stderr)
    update_readme()
    return 0


if __name__ == "__main__":
    sys.exit(main())
