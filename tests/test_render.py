"""Diagrams (`modelc render`): every spec at every level, checked on the rendered output.

The SVG and PNG files are rendered once (in parallel) by the `drawings` fixture; the
tests read them back: the SVG as XML (and its `<!-- params=... -->` comments), the PNG
size from its header. Tests that need Graphviz's `dot` are skipped without it.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import modelc
from modelc.driver import build_all
from modelc.load import load_file
from modelc.render import diff_dot, link_for, render_dot, run_dot, write
from modelc.render.layout import PNG_LIMIT_PX
from modelc.render.style import FAMILY_COLORS, SKIP_COLOR
from modelc.summary import batch_env

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted(p.stem for p in (ROOT / "specs").glob("*.model"))
LEVELS = ("model", "stage", "block", "op")
SVG = "{http://www.w3.org/2000/svg}"
XLINK = "{http://www.w3.org/1999/xlink}"
PAGE_PT = (6.75 * 72, 9 * 72)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz (dot) not installed")


@functools.cache
def graphs(name: str) -> tuple:
    path = ROOT / "specs" / f"{name}.model"
    return tuple(build_all(load_file(str(path))))


def resnet(tmp: Path, name: str, blocks: tuple[int, int, int, int]) -> str:
    """ResNet-50's spec with other stage depths (ResNet-101/152 have 3/4/23/3 and 3/8/36/3)."""
    text = (ROOT / "specs" / "resnet50.model").read_text()
    for i, n in zip((2, 3, 4), blocks[1:]):
        text = re.sub(rf"(layer{i}: for i in 0\.\.)\d+", rf"\g<1>{n}", text)
    path = tmp / f"{name}.model"
    path.write_text(text.replace("model ResNet50", f"model {name}"))
    return str(path)


class Drawing:
    """One rendered diagram, read back."""

    def __init__(self, rendered, svg: Path, png: Path | None, seconds: float):
        self.rendered, self.view, self.seconds = rendered, rendered.views[0], seconds
        self.text = svg.read_text()
        self.root = ET.fromstring(self.text)
        self.png = png_size(png) if png else None

    def nodes(self) -> dict[str, ET.Element]:
        """Diagram boxes by id (connectors of wrapped drawings and cluster captions left out)."""
        out = {}
        for g in self.root.iter(f"{SVG}g"):
            title = g.findtext(f"{SVG}title")
            if g.get("class") == "node" and not re.search(r"wrap\d+_|^caption:", title):
                out[g.findtext(f"{SVG}title")] = g
        return out

    def edges(self) -> list[ET.Element]:
        return [g for g in self.root.iter(f"{SVG}g") if g.get("class") == "edge"]

    def size_pt(self) -> tuple[float, float]:
        w, h = self.root.get("viewBox").split()[2:]
        return float(w), float(h)

    def smallest_font(self) -> float:
        return min(float(t.get("font-size")) for t in self.root.iter(f"{SVG}text"))


def text_of(el: ET.Element) -> str:
    return "".join("".join(t.itertext()) for t in el.iter(f"{SVG}text")).replace("\xa0", " ")


def png_size(path: Path) -> tuple[int, int]:
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def draw(graph, out: Path, png: bool = True, **options) -> Drawing:
    start = time.perf_counter()
    rendered = render_dot(graph, link=link_for(str(out)), **options)
    write(rendered, str(out.with_suffix(".svg")))
    seconds = time.perf_counter() - start
    if png:
        write(rendered, str(out.with_suffix(".png")))
    return Drawing(rendered, out.with_suffix(".svg"), out.with_suffix(".png") if png else None, seconds)


@pytest.fixture(scope="module")
def drawings(tmp_path_factory) -> dict[tuple[str, int, str], Drawing]:
    """Every model of every spec at every level, as SVG and PNG."""
    if shutil.which("dot") is None:
        pytest.skip("Graphviz (dot) not installed")
    out = tmp_path_factory.mktemp("diagrams")
    jobs = [(name, i, level) for name in SPECS for i in range(len(graphs(name))) for level in LEVELS]

    def one(job):
        name, i, level = job
        return draw(graphs(name)[i], out / f"{name}-{i}-{level}.svg", level=level)

    with ThreadPoolExecutor(max(2, os.cpu_count() or 2)) as pool:
        return dict(zip(jobs, pool.map(one, jobs)))


# ---- every spec, every level ---------------------------------------------------------------
@needs_dot
@pytest.mark.parametrize("name", SPECS)
def test_every_level_of_every_spec(drawings, name):
    for (spec, _, level), d in drawings.items():
        if spec == name:
            where = f"{name} at {level} level"
            assert max(d.png) <= PNG_LIMIT_PX, f"{where}: PNG {d.png}"
            check_boxes(d, where)
            check_edges(d, where)
            check_counts(d, where)
            check_colours(d, where)
            for note in d.rendered.notes:  # a wrapped or turned drawing says so in the figure
                assert note.split(";")[0] in text_of(d.root), where


def check_boxes(d: Drawing, where: str) -> None:
    nodes = d.nodes()
    assert set(nodes) == {i.key for i in d.view.items}, where
    for item in d.view.items:
        text = text_of(nodes[item.key])
        assert text.startswith(f"{item.name} · {item.text}") or item.kind == "output", (where, text)
        if item.params:
            assert f"{item.params:,} params" in text, (where, text)
        link = nodes[item.key].find(f".//{SVG}a")
        assert re.search(r"\.model#L\d+$", link.get(f"{XLINK}href")), (where, item.key)
        assert re.search(r"\.model:\d+", link.get(f"{XLINK}title")), (where, item.key)
    kinds = {i.kind for i in d.view.items}
    assert {"input", "output"} <= kinds, where


def check_edges(d: Drawing, where: str) -> None:
    shapes = {e.shape for e in d.view.edges}
    names = {e.name for e in d.view.edges if e.name}  # `memory · Sx512`: the block input's name
    labels = [_shape_part(text_of(e), names) for e in d.edges()]
    labels = [label for label in labels if label]
    tensors = {(e.src, e.out) for e in d.view.edges}
    assert len(labels) == len(tensors), f"{where}: each tensor's shape is written once"
    assert set(labels) <= shapes, where
    batch = set(batch_env(d.view.graph))  # the symbolic batch dimension: never drawn
    assert not any(batch & set(label.split("x")) for label in labels), where


def _shape_part(label: str, names: set[str]) -> str:
    head, _, tail = label.partition(" · ")
    return tail if head in names else label


def check_counts(d: Drawing, where: str) -> None:
    per = re.findall(r"<!-- params=(\d+) count=(\d+) -->", d.text)
    total = sum(int(p) * int(c) for p, c in per)
    assert total == d.view.total_params, where
    assert f"{total:,} parameters" in text_of(d.root), where
    assert d.view.graph.name in text_of(d.root) and "MACs" in text_of(d.root), where


def check_colours(d: Drawing, where: str) -> None:
    fills = set()
    for g in d.nodes().values():
        shape = next(el for el in g.iter() if el.tag in (f"{SVG}path", f"{SVG}polygon"))
        fills.add(shape.get("fill").upper())
    palette = {c.upper() for c in FAMILY_COLORS.values()}
    assert fills <= palette | {"#FFFFFF"} and len(fills - {"#FFFFFF"}) <= 8, (where, fills)
    present = {i.family for i in d.view.items if i.family} | {f for i in d.view.items for f in i.families}
    caption = text_of(d.root.find(f"{SVG}g"))
    for family in FAMILY_COLORS:
        assert (f"■ {family}" in caption) == (family in present), (where, family)


@needs_dot
@pytest.mark.parametrize("name", SPECS)
def test_default_view_is_fast(tmp_path, name):
    start = time.perf_counter()  # spec file to SVG: parse, elaborate, draw, lay out
    rendered = render_dot(list(build_all(load_file(str(ROOT / "specs" / f"{name}.model")))))
    write(rendered, str(tmp_path / "d.svg"))
    assert time.perf_counter() - start < 2.0


# ---- ResNet: folding, page fit ----------------------------------------------------------------
@needs_dot
def test_resnet50_and_resnet152_stage_views_have_the_same_boxes(tmp_path):
    r50 = draw(modelc.graph(resnet(tmp_path, "ResNet50", (3, 4, 6, 3))), tmp_path / "r50", level="stage")
    r152 = draw(modelc.graph(resnet(tmp_path, "ResNet152", (3, 8, 36, 3))), tmp_path / "r152", level="stage")
    assert len(r50.nodes()) == len(r152.nodes()) <= 25
    badges = [re.findall(r"× (\d+)", text_of(n)) for n in r50.nodes().values()]
    assert sorted(int(b[0]) for b in badges if b) == [2, 2, 3, 5]
    badges = [re.findall(r"× (\d+)", text_of(n)) for n in r152.nodes().values()]
    assert sorted(int(b[0]) for b in badges if b) == [2, 2, 7, 35]
    assert "layer3.1–35 · Bottleneck(256, stride=1)" in text_of(r152.nodes()["layer3.1"])


@needs_dot
def test_resnet50_stage_view_fits_a_page(tmp_path):
    d = draw(modelc.graph(str(ROOT / "specs/resnet50.model")), tmp_path / "r50", level="stage")
    assert d.png[0] <= 800 and d.png[1] <= 1400, d.png
    w, h = d.size_pt()
    scale = min(PAGE_PT[0] / w, PAGE_PT[1] / h)
    assert d.smallest_font() * scale >= 6.0, (d.smallest_font(), scale)


def test_levels_follow_the_spec():
    g = modelc.graph(str(ROOT / "specs/resnet50.model"))
    keys = {lvl: {i.key for i in render_dot(g, level=lvl).views[0].items} for lvl in LEVELS}
    assert {"layer1", "layer4", "conv1", "fc"} <= keys["model"]
    assert {"layer1.0", "layer1.1", "layer3.1"} <= keys["stage"] and "layer1.2" not in keys["stage"]
    assert {"layer2.0.conv2", "layer2.0.downsample.0"} <= keys["block"] and "layer3.2.conv1" not in keys["block"]
    assert {"layer3.5.conv1", "layer1.2.add"} <= keys["op"] and len(keys["op"]) == len(g) + 1
    depth = {n: {i.key for i in render_dot(g, depth=n).views[0].items} for n in (0, 1)}
    assert depth[0] == keys["model"] and depth[1] == keys["stage"]


# ---- skips, diff, wrapping ----------------------------------------------------------------------
def dashed(d: Drawing) -> set[str]:
    out = set()
    for e in d.edges():
        if any(p.get("stroke-dasharray") and p.get("stroke").upper() == SKIP_COLOR for p in e.iter(f"{SVG}path")):
            out.add(e.findtext(f"{SVG}title"))
    return out


@needs_dot
def test_skip_connections_end_at_merges_and_are_dashed(tmp_path):
    d = draw(modelc.graph(str(ROOT / "specs/resnet50.model")), tmp_path / "r", png=False, level="op", wrap=False)
    skips = dashed(d)
    adds = [k for k in d.nodes() if k.endswith(".add")]
    assert len(adds) == 16
    for add in adds:  # one shortcut per block: the identity edge, or the projection's last edge
        assert len([s for s in skips if s.endswith("->" + add)]) == 1, add
    assert "maxpool->layer1.0.downsample.0" in skips and "layer1.0.relu_2->layer1.1.add" in skips
    assert "layer1.0.bn3->layer1.0.add" not in skips
    u = draw(modelc.graph(str(ROOT / "specs/unet.model")), tmp_path / "u", png=False, level="stage", wrap=False)
    assert {f"enc{i}->dec{i}" for i in (1, 2, 3, 4)} <= dashed(u)


@needs_dot
def test_diff_marks_added_removed_and_changed(tmp_path):
    a = modelc.graph(resnet(tmp_path, "ResNet50", (3, 4, 6, 3)))
    b = modelc.graph(resnet(tmp_path, "ResNet101", (3, 4, 23, 3)))
    stage = diff_dot(a, b, level="stage")
    assert 'id="A/layer3.1"' in stage.dot and "~" in stage.dot
    assert "1 changed, 0 added, 0 removed" in stage.dot
    op = diff_dot(a, b, level="op")
    assert "0 changed, 170 added, 0 removed" in op.dot  # 17 more bottlenecks of 10 ops
    lenet = (ROOT / "specs/lenet5.model").read_text()
    edited = lenet.replace("conv(16, k=5)", "conv(20, k=5)").replace(" -> relu -> fc2: linear(84)", "")
    (tmp_path / "edited.model").write_text(edited.replace("LeNet5", "LeNet5b"))
    after = modelc.graph(str(tmp_path / "edited.model"))
    d = diff_dot(modelc.graph(str(ROOT / "specs/lenet5.model")), after, level="op")
    summary = re.search(r"(\d+) changed, (\d+) added, (\d+) removed", d.dot).groups()
    assert summary == ("6", "0", "2")  # conv2, relu_1, maxpool_1, flatten, fc1, fc3; fc2, relu_3
    path = tmp_path / "diff.svg"
    write(d, str(path))
    nodes = {g.findtext(f"{SVG}title"): text_of(g) for g in ET.parse(path).iter(f"{SVG}g")
             if g.get("class") == "node"}  # fmt: skip
    assert "B/fc2" not in nodes and nodes["A/fc2"].startswith("− fc2 · linear 120->84")
    assert nodes["A/conv2"].startswith("~ conv2") and nodes["B/conv2"].startswith("~ conv2 · conv 5x5, 20")


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "modelc.cli", "render", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300, check=False)  # fmt: skip


def test_large_graphs_wrap_and_say_so(tmp_path):
    spec = resnet(tmp_path, "ResNet152", (3, 8, 36, 3))
    done = cli(spec, "--level", "op", "-o", str(tmp_path / "r152.dot"))
    assert done.returncode == 0, done.stderr
    assert "PNG limit" in done.stderr and "wrapped into" in done.stderr
    assert "wrapped into" in (tmp_path / "r152.dot").read_text()


@pytest.mark.slow
def test_the_compilers_limit_renders_in_linear_time(tmp_path):
    """ResNet-50 with 9,988 bottlenecks in layer3: 99,996 nodes, the compiler's limit, to
    DOT at op level (a box per node, wrapped into columns) and at stage level (folded).
    Rendering was quadratic (finding skips and U-shapes, folding, wrapping): 50,000
    nodes took 45 s. On the 2-core development machine, under load, this took 19 s and
    6 s of CPU time (the compile another 8 s); the bounds are three times that, in CPU
    time so that waiting for a busy machine does not count. bench/render_speed.py
    measures the growth."""
    graph = modelc.graph(resnet(tmp_path, "ResNetLimit", (3, 4, 9988, 3)))
    assert len(graph) == 99_996
    for level, bound in (("op", 60.0), ("stage", 20.0)):
        start = time.process_time()
        rendered = render_dot(graph, level=level)
        seconds = time.process_time() - start
        assert seconds < bound, f"{level} level: {seconds:.1f} s of CPU time, bound {bound:.0f} s"
        view = rendered.views[0]
        adds = {i.key for i in view.items if i.op == "add"}
        shortcuts = [e for e in view.edges if e.skip and e.dst in adds]
        if level == "op":  # every node drawn, one shortcut into each block's add
            assert len(view.items) == len(graph) + 1 and len(adds) == len(shortcuts) == 9_998
            assert "wrapped into" in rendered.notes[0]
        else:
            assert "layer3.1–9987" in rendered.dot and "× 9987" in rendered.dot


@needs_dot
def test_output_is_deterministic_and_keeps_text(tmp_path):
    spec = "specs/resnet50.model"
    runs = []
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        for ext in ("dot", "svg"):
            assert cli(spec, "--level", "block", "-o", str(tmp_path / f"{seed}.{ext}"), env=env).returncode == 0
        runs.append([(tmp_path / f"{seed}.{ext}").read_bytes() for ext in ("dot", "svg")])
    assert runs[0] == runs[1]
    assert b"<text" in runs[0][1]
    assert cli(spec, "-o", str(tmp_path / "r.pdf")).returncode == 0
    assert b"/FontFile" in (tmp_path / "r.pdf").read_bytes()  # embedded fonts: real text


def test_without_graphviz_writes_dot_and_fails_cleanly(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {**os.environ, "PATH": str(bin_dir)}
    done = cli("specs/lenet5.model", "-o", str(tmp_path / "lenet.png"), env=env)
    assert done.returncode == 1
    assert "error[E0602]: Graphviz not found" in done.stderr and "Traceback" not in done.stderr
    assert (tmp_path / "lenet.dot").read_text().startswith("digraph LeNet5")


def test_command_line_errors(tmp_path):
    done = cli("specs/lenet5.model", "-o", str(tmp_path / "x.jpg"))
    assert done.returncode == 1 and "E0601" in done.stderr
    done = cli("specs/lenet5.model", "specs/mlp.model")
    assert done.returncode == 1 and "--diff" in done.stderr


@needs_dot
def test_jupyter_and_no_torch():
    code = ("import sys, modelc; g = modelc.graph('specs/lenet5.model'); svg = g._repr_mimebundle_()['image/svg+xml']; "
            "assert svg.startswith('<svg') and svg.rstrip().endswith('</svg>'); "
            "assert 'torch' not in sys.modules, 'render imported torch'")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                          check=False)  # fmt: skip
    assert done.returncode == 0, done.stderr


# ---- U-Net's U, periodic folds, the Transformer's memory -------------------------------------
def positions(rendered) -> dict[str, tuple[float, float]]:
    """Node centres (points, y up) from Graphviz's own layout (`dot -Tplain`)."""
    out = {}
    for line in run_dot(rendered.dot, "plain").decode().splitlines():
        if line.startswith("node "):
            _, name, x, y = line.split(" ", 4)[:4]
            out[name.strip('"')] = (float(x) * 72, float(y) * 72)
    return out


TINY_U = """model TinyU(size: int = 64) {
    input image: [B, 3, size, size]
    a = image -> conv(8, k=3, p=1) -> relu
    b = a -> maxpool(2) -> conv(16, k=3, p=1) -> relu
    c = b -> maxpool(2) -> conv(32, k=3, p=1) -> relu
    x = c -> conv_transpose(16, k=2, s=2)
    x = concat(b, x) -> conv(16, k=3, p=1) -> relu -> conv_transpose(8, k=2, s=2)
    x = concat(a, x) -> conv(8, k=3, p=1) -> relu
    output x -> conv(2, k=1)
}
"""


def levels(view) -> list[list[str]]:
    """The U's levels: the ranks that begin with a skip's fork (outermost first)."""
    return [r for r in view.ranks if any(e.skip and e.src == r[0] for e in view.edges)]


def check_u(rendered, bottom: str, direction: str, where: str) -> None:
    """Every skip is level (its ends on one rank), the levels are stacked along the flow
    on either side, and `bottom` is the extreme point of the drawing."""
    view, at = rendered.views[0], positions(rendered)
    axis = 1 if direction == "TB" else 0  # TB: ranks are rows (y); LR: columns (x)
    skips = [e for e in view.edges if e.skip]
    assert len(skips) >= 2, where
    for e in skips:
        assert abs(at[e.src][axis] - at[e.dst][axis]) < 1.0, (where, e.src, e.dst, at[e.src], at[e.dst])
    forks = [level[0] for level in levels(view)]  # outermost first
    merges = [level[-1] for level in levels(view)]
    depth = [at[k][axis] for k in forks]
    assert depth == (sorted(depth, reverse=True) if axis == 1 else sorted(depth)), where  # going down
    across = 1 - axis  # the contracting path on one side, the expanding path on the other
    assert all(at[f][across] < at[m][across] for f, m in zip(forks, merges)) or all(
        at[f][across] > at[m][across] for f, m in zip(forks, merges)), where  # fmt: skip
    extreme = min if axis == 1 else max
    assert extreme(at.values(), key=lambda p: p[axis])[axis] == at[bottom][axis], where


@needs_dot
@pytest.mark.parametrize("direction", ["TB", "LR"])
def test_unet_keeps_its_u_shape(tmp_path, direction):
    unet = modelc.graph(str(ROOT / "specs/unet.model"))
    stage = render_dot(unet, direction=direction)
    assert [level[0] for level in levels(stage.views[0])] == ["enc1", "enc2", "enc3", "enc4"]
    assert [level[-1] for level in levels(stage.views[0])] == ["dec1", "dec2", "dec3", "dec4"]
    check_u(stage, "bottom", direction, f"U-Net stage {direction}")
    at, axis = positions(stage), 1 if direction == "TB" else 0
    assert at["output/out"][axis] == at["head"][axis] == at["dec1"][axis]  # the head along the top
    if direction == "TB":  # inside the blocks too, valid and padded convs
        check_u(render_dot(unet, level="block"), "bottom.conv2", "TB", "U-Net block")
        padded = modelc.graph(str(ROOT / "specs/unet.model"), p=1, size=64)
        check_u(render_dot(padded, level="op"), "bottom.conv2", "TB", "U-Net p=1 op")
        # not by name: any encoder-decoder whose nested skips shrink level by level
        (tmp_path / "tiny.model").write_text(TINY_U)
        tiny = render_dot(modelc.graph(str(tmp_path / "tiny.model")))
        assert [len(level) for level in levels(tiny.views[0])] == [2, 2]
        check_u(tiny, "relu_2", "TB", "TinyU")


def test_only_encoder_decoders_are_drawn_as_a_u():
    for name in ("resnet50", "swinir_light", "transformer", "googlenet", "swin_t"):
        for level in LEVELS:
            view = render_dot(graphs(name)[0], level=level, wrap=False).views[0]
            assert not view.ranks and not any(e.back for e in view.edges), (name, level)


def badges(d: Drawing) -> dict[str, str]:
    """Box and cluster captions by name (`features.5.0–5` -> `... × 3`)."""
    out = {}
    for g in d.root.iter(f"{SVG}g"):
        if g.get("class") == "node":  # boxes, and cluster captions (drawn as nodes)
            text = text_of(g)
            out[text.split(" · ")[0].strip()] = text
    return out


@needs_dot
def test_swin_stages_fold_by_period(tmp_path):
    d = draw(graphs("swin_t")[0], tmp_path / "swin", level="stage")
    text = badges(d)
    depths = [re.search(r"· (\d+) × SwinBlock", text[f"features.{i}"]).group(1) for i in (1, 3, 5, 7)]
    assert depths == ["2", "2", "6", "2"]  # the spec's depths, in bold like a badge
    assert "<B>6 ×</B> SwinBlock" in d.rendered.dot
    # stage 3 alternates shift 0 and 3: drawn as one pair, x 3
    assert "(SwinBlock, SwinBlock)  × 3" in text["features.5.0–5"]
    assert "shift=0" in text["features.5.0"] and "shift=3" in text["features.5.1"]
    blocks = [i for i in d.view.items if i.op == "SwinBlock"]
    assert len(blocks) == 7 and sum(i.count for i in blocks) == 12  # 2 + 2 + 2 + 1 boxes, 12 blocks
    assert not any(k.startswith(("features.5.2", "features.5.3")) for k in d.nodes())
    # the last stage's two blocks are the same (one 7x7 window: no shift), args say so
    assert "SwinBlock(24, shift=0|3, window=7, mlp_ratio=4)  × 2" in text["features.7.0–1"]
    assert len(d.nodes()) <= 21 and d.png[1] <= 1800, (len(d.nodes()), d.png)


@needs_dot
def test_swinir_and_vit_show_their_depths(tmp_path):
    swinir = draw(graphs("swinir_light")[0], tmp_path / "swinir", level="stage")
    text = badges(swinir)
    assert "RSTB(6, heads=6, window=8)  × 4" in text["layers.0–3"]
    assert "(SwinBlock, SwinBlock)  × 3" in text["layers.0.residual_group.0–5"]
    blocks = [i for i in swinir.view.items if i.op == "SwinBlock"]
    assert len(blocks) == 2 and sum(i.count for i in blocks) == 24  # 4 RSTBs of 6 blocks
    vit = draw(graphs("vit_b_16")[0], tmp_path / "vit", level="stage")
    layers = badges(vit)["encoder.layers.encoder_layer_0–11"]
    assert "EncoderBlock(12, mlp_dim=3072, p=0.0)  × 12" in layers


def memory_edges(dot: str) -> list[str]:
    return [line.strip() for line in dot.splitlines() if "->" in line and "memory" in line]


@needs_dot
def test_transformer_memory_is_drawn_once(tmp_path):
    g = graphs("transformer")[0]
    for level in ("model", "stage", "block"):
        edges = memory_edges(render_dot(g, level=level).dot)
        assert len(edges) == 1, (level, edges)  # once, not once per decoder layer
        assert "memory · Sx512" in edges[0] and "dashed" not in edges[0] and "minlen=0" in edges[0], edges
    stage = render_dot(g)
    assert memory_edges(stage.dot)[0].startswith('"encoder.norm" -> "decoder.layers.0"')
    at = positions(stage)  # it arrives level, from the side: not through a caption
    assert abs(at["encoder.norm"][1] - at["decoder.layers.0"][1]) < 1.0
    block = render_dot(g, level="block")
    assert memory_edges(block.dot)[0].startswith('"encoder.norm" -> "decoder.layers.0.multihead_attn"')
    op = render_dot(g, level="op", wrap=False)  # nothing folded: one per layer, none a skip
    edges = memory_edges(op.dot)
    assert len(edges) == 6 and not any("dashed" in e for e in edges)


def test_readme_shows_the_diagrams():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Diagrams", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"\((docs/diagrams/[\w.-]+\.svg)\)", section)
    for name in ("unet", "transformer", "swin-t-stage", "lenet5", "resnet50-stage", "resnet152-stage"):
        assert f"docs/diagrams/{name}.svg" in shown, name
    for svg in shown:
        assert (ROOT / svg).exists() and (ROOT / svg).with_suffix(".png").exists(), svg
        assert max(png_size((ROOT / svg).with_suffix(".png"))) <= PNG_LIMIT_PX, svg


def _box(g: ET.Element) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of the first outline in an SVG group."""
    shape = next(el for el in g.iter() if el.tag in (f"{SVG}path", f"{SVG}polygon"))
    nums = [float(v) for v in re.findall(r"-?\d+(?:\.\d+)?", shape.get("d") or shape.get("points"))]
    xs, ys = nums[0::2], nums[1::2]
    return min(xs), min(ys), max(xs), max(ys)


@needs_dot
def test_cluster_captions_are_drawn_over_edges(tmp_path):
    d = draw(graphs("resnet50")[0], tmp_path / "r", png=False, level="block")
    groups = [g for g in d.root.iter(f"{SVG}g") if g.get("class") in ("cluster", "node", "edge")]
    title = {id(g): g.findtext(f"{SVG}title") for g in groups}
    captions = [i for i, g in enumerate(groups) if title[id(g)].startswith("caption:")]
    edges = [i for i, g in enumerate(groups) if g.get("class") == "edge"]
    clusters = {title[id(g)]: g for g in groups if g.get("class") == "cluster"}
    assert len(captions) == len(clusters) == len(d.view.clusters)
    assert min(captions) > max(edges)  # drawn after (over) every edge
    for i in captions:
        g = groups[i]
        cluster = clusters[title[id(g)].removeprefix("caption:")]
        assert not text_of(cluster)  # the caption is drawn once, by the node
        x0, y0, x1, y1 = _box(g)
        cx0, cy0, cx1, _ = _box(cluster)
        assert cx0 <= x0 and x1 <= cx1 and cy0 <= y0 and y1 <= cy0 + 30, title[id(g)]  # top band
        fill = next(el for el in g.iter() if el.tag == f"{SVG}polygon").get("fill").upper()
        assert fill == next(el for el in cluster.iter() if el.tag == f"{SVG}path").get("fill").upper()
    assert any(text_of(groups[i]).startswith("layer3 · 6 × Bottleneck") for i in captions)



def test_title_states_a_short_parameter_count_once():
    from modelc.load import load_text

    small = "model M {\n    input x: [B, 10]\n    output x -> linear(10)\n}\n"
    dot = render_dot(build_all(load_text(small, "m.model"))).dot
    assert "110 parameters \u00b7" in dot and "(110)" not in dot
    assert "25,557,032 parameters (25.6M) \u00b7" in render_dot(list(graphs("resnet50"))).dot
