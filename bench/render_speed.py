"""How long `modelc render` takes to make DOT text, in-process, as graphs grow.

    .venv/bin/python bench/render_speed.py --diff          # 12.5k, 25k, 50k, 100k nodes
    .venv/bin/python bench/render_speed.py --sizes 12500,25000 --shapes chain,resnet
    .venv/bin/python bench/render_speed.py --write /tmp/specs   # only write the specs

For each shape of network and each size, a spec of about that many IR nodes is
generated, compiled once (`modelc.graph`, not timed), and its diagram's DOT text
is made at every zoom level (`render_dot`; Graphviz's `dot` is not run: its cost
is Graphviz's, not modelc's); with `--diff`, also `diff_dot` against the same
shape at 90% of the size, at op and at stage level (the work of `render --diff`).
The script prints the seconds per view and size and the ratio of each doubling
of the size: about 2.0 for linear work, 4.0 for quadratic. Seconds are CPU time
of this process (`time.process_time`), so that waiting for a shared machine's
other jobs does not count; the run is single-threaded.

Shapes (all within the compiler's limit of 100,000 nodes):
- **chain**: `x -> repeat N (linear(64) -> relu)`, one unlabelled repetition;
- **blocks**: `layers: repeat N Res(64)`, a labelled sequence of residual blocks;
- **resnet**: `specs/resnet50.model` (ResNet-50 in torchvision's layout) with layer3
  repeated N times;
- **nested**: stages of residual blocks (`stages: for ...  Stage(n)`), each stage a
  block holding a `repeat` of blocks, so the stage level opens it;
- **transformer**: an encoder-decoder of N + N layers, each decoder layer reading
  the encoder's output (a side input);
- **conditioned**: residual blocks that each add a projection of a second input
  (`layers: repeat N Cond(c, 64)`, as a diffusion model's time embedding): every
  block reads one early value, the case where the fork of a merge lies far back.
"""

from __future__ import annotations

import argparse
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = (12_500, 25_000, 50_000, 100_000)
VIEWS = {"model": {"level": "model"}, "stage": {"level": "stage"}, "block": {"level": "block"},
         "op": {"level": "op"}, "no-fold": {"level": "stage", "fold": False}, "depth 2": {"depth": 2}}  # fmt: skip
LIMIT = 100_000  # the compiler's limit on graph size

RES_BLOCK = """block Res(width: int) {
    input x
    y = x -> fc1: linear(width) -> relu -> fc2: linear(width)
    output relu(x + y)
}
"""


def chain_spec(nodes: int) -> str:
    """About `nodes` nodes: one unlabelled repetition of linear -> relu."""
    n = max(1, (nodes - 2) // 2)
    return f"model Chain {{\n    input x: [B, 64]\n    output x -> repeat {n} (linear(64) -> relu)\n}}\n"


def blocks_spec(nodes: int) -> str:
    """About `nodes` nodes: a labelled sequence of residual blocks (5 nodes each)."""
    n = max(1, (nodes - 4) // 5)
    return (RES_BLOCK + "model Blocks {\n    input x: [B, 64]\n"
            f"    output x -> stem: linear(64) -> layers: repeat {n} Res(64) -> head: linear(10)\n}}\n")  # fmt: skip


def resnet_spec(nodes: int) -> str:
    """About `nodes` nodes: ResNet-50 with layer3 repeated (10 nodes a bottleneck)."""
    path = ROOT / "specs" / "resnet50.model"
    text = path.read_text()
    n = max(2, (nodes - 176) // 10 + 6)
    return re.sub(r"(layer3: for i in 0\.\.)\d+", rf"\g<1>{n}", text)


def nested_spec(nodes: int) -> str:
    """About `nodes` nodes: 16 stages (blocks), each a labelled repeat of residual blocks."""
    per = max(1, (nodes - 4) // (16 * 5))
    return (RES_BLOCK + "block Stage(n: int, width: int) {\n    input x\n"
            "    output x -> blocks: repeat n Res(width) -> norm: layer_norm\n}\n"
            "model Nested {\n    input x: [B, 64]\n"
            f"    output x -> stages: for i in 0..16 {{ Stage({per}, 64) }} -> head: linear(10)\n}}\n")  # fmt: skip


def transformer_spec(nodes: int) -> str:
    """About `nodes` nodes: the Transformer of specs/transformer.model with N + N layers."""
    text = (ROOT / "specs" / "transformer.model").read_text()
    n = max(1, (nodes - 12) // 26)  # 11 nodes an encoder layer, 15 a decoder layer
    return text.replace("encoder_layers: int = 6", f"encoder_layers: int = {n}").replace(
        "decoder_layers: int = 6", f"decoder_layers: int = {n}")  # fmt: skip


def conditioned_spec(nodes: int) -> str:
    """About `nodes` nodes: residual blocks (7 nodes each) adding a projection of `c`."""
    n = max(1, (nodes - 6) // 7)
    return ("block Cond(width: int) {\n    input x\n    input c\n"
            "    y = x -> fc1: linear(width) -> relu -> fc2: linear(width)\n"
            "    output relu(x + y + (c -> proj: linear(width)))\n}\n"
            "model Conditioned {\n    input x: [B, 64]\n    input t: [B, 16]\n"
            "    c = t -> embed: linear(64)\n"
            f"    output x -> stem: linear(64) -> layers: repeat {n} Cond(c, 64) -> head: linear(10)\n}}\n")  # fmt: skip


SHAPES = {"chain": chain_spec, "blocks": blocks_spec, "resnet": resnet_spec, "nested": nested_spec,
          "transformer": transformer_spec, "conditioned": conditioned_spec}  # fmt: skip


def write_spec(shape: str, nodes: int, folder: Path) -> Path:
    path = folder / f"{shape}_{nodes}.model"
    path.write_text(SHAPES[shape](min(nodes, LIMIT)))
    return path


def time_views(graph, views: dict[str, dict]) -> dict[str, float]:
    """Seconds to make the DOT text of `graph` for each view."""
    from modelc.render import render_dot

    out = {}
    for name, options in views.items():
        start = time.process_time()
        render_dot(graph, **options)
        out[name] = time.process_time() - start
    return out


def time_diff(a, b) -> float:
    from modelc.render import diff_dot

    start = time.process_time()
    diff_dot(a, b, level="op")
    diff_dot(a, b, level="stage")
    return time.process_time() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)), help="node counts, comma-separated")
    ap.add_argument("--shapes", default=",".join(SHAPES), help=f"of {', '.join(SHAPES)}")
    ap.add_argument("--views", default=",".join(VIEWS), help=f"of {', '.join(VIEWS)}")
    ap.add_argument("--diff", action="store_true", help="also time `render --diff` (op and stage)")
    ap.add_argument("--write", metavar="DIR", help="write the specs to DIR and stop")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    shapes = args.shapes.split(",")
    views = {v: VIEWS[v] for v in args.views.split(",")}
    if args.write:
        folder = Path(args.write)
        folder.mkdir(parents=True, exist_ok=True)
        for shape in shapes:
            for n in sizes:
                print(write_spec(shape, n, folder))
        return 0
    import modelc

    print(f"# Python {platform.python_version()}, {platform.system()} {platform.release()} "
          f"{platform.machine()}: DOT text in-process, CPU seconds")  # fmt: skip
    cols = [*views, *(["diff"] if args.diff else []), "total"]
    print(f"{'shape':<12} {'nodes':>7}  " + " ".join(f"{c:>8}" for c in cols) + "  x prev")
    with tempfile.TemporaryDirectory() as tmp:
        for shape in shapes:
            prev = None
            for n in sizes:
                graph = modelc.graph(str(write_spec(shape, n, Path(tmp))))
                times = time_views(graph, views)
                if args.diff:
                    other = modelc.graph(str(write_spec(shape, n * 9 // 10, Path(tmp))))
                    times["diff"] = time_diff(other, graph)
                total = sum(times.values())
                ratio = f"{total / prev:6.2f}" if prev else "     -"
                print(f"{shape:<12} {len(graph):>7}  " + " ".join(f"{t:8.2f}" for t in times.values())
                      + f" {total:8.2f}  {ratio}", flush=True)  # fmt: skip
                prev = total
    return 0


if __name__ == "__main__":
    sys.exit(main())
