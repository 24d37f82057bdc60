"""Architecture diagrams: IR -> DOT (always) -> SVG/PNG/PDF (with Graphviz's `dot`).

    import modelc
    from modelc.render import render_dot, render_file
    graph = modelc.graph("specs/resnet50.model")
    text = render_dot(graph, level="stage").dot           # DOT source
    render_file(graph, "resnet50.svg", level="block")     # runs `dot`

The pipeline: :func:`~modelc.render.view.build_view` picks what to draw at a
zoom level (folding repeated blocks), :func:`~modelc.render.layout.plan_layout`
decides direction and wrapping, :func:`~modelc.render.dot.to_dot` writes DOT,
and :func:`run_dot` lays it out. :func:`diff_dot` draws two graphs side by side
(see `render/diff.py`). Output is byte-deterministic for DOT and SVG.
Nothing here imports torch.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field

from modelc.diagnostics import CompilerBug, error
from modelc.ir import Graph
from modelc.ops import FAMILIES
from modelc.render.dot import Panel, lift_captions, to_dot
from modelc.render.layout import LIMIT_PT, PNG_DPI, PNG_LIMIT_PX, Plan, plan_layout
from modelc.render.style import DIFF, EDGE_COLOR, FAMILY_COLORS, SIZES, SKIP_COLOR, count, html, macs_text, short
from modelc.render.view import View, build_view

__all__ = [
    "FORMATS", "Rendered", "diff_dot", "link_for", "render_dot", "render_file", "run_dot", "to_svg",
    "write",
]  # fmt: skip

FORMATS = ("svg", "png", "pdf", "dot")


@dataclass
class Rendered:
    dot: str
    notes: list[str] = field(default_factory=list)  # what the layout changed, for stderr
    views: list[View] = field(default_factory=list)
    plans: list[Plan] = field(default_factory=list)


def render_dot(graphs: Graph | list[Graph], level: str | None = None, depth: int | None = None,
               direction: str = "TB", fold: bool | None = None, wrap: bool = True,
               link=None) -> Rendered:  # fmt: skip
    """The DOT source of a graph's diagram; several graphs (the models of one file) are
    drawn side by side, each in its own frame."""
    graphs = [graphs] if isinstance(graphs, Graph) else list(graphs)
    views = [build_view(g, level, depth, fold) for g in graphs]
    plans = [plan_layout(v, direction, wrap) for v in views]
    turned = next((p.direction for p in plans if p.direction != direction), None)
    if turned:  # one panel had to turn: turn them all, so they read the same way
        plans = [plan_layout(v, turned, wrap) for v in views]
    many = len(graphs) > 1
    panels = [Panel(v, prefix=f"{v.graph.name}/" if many else "", columns=p.columns,
                    caption=_signature(v.graph) if many else "")
              for v, p in zip(views, plans)]  # fmt: skip
    notes = list(dict.fromkeys(n for p in plans for n in p.notes))
    caption = _caption(views, notes, extra=[])
    return Rendered(to_dot(panels, plans[0].direction, caption, link), notes, views, plans)


def diff_dot(a: Graph, b: Graph, level: str | None = None, depth: int | None = None,
             direction: str = "TB", names: tuple[str, str] = ("A", "B"), link=None) -> Rendered:  # fmt: skip
    """Two graphs side by side, added/removed/changed boxes marked (matched by name)."""
    from modelc.render.diff import diff_panels

    panels, summary = diff_panels(a, b, level, depth, names, direction)
    views = [p.view for p in panels]
    caption = _caption(views, [], extra=[summary], diff=True)
    return Rendered(to_dot(panels, direction, caption, link), [], views, [])


def render_file(graph: Graph, path: str, **options) -> Rendered:
    """Write `graph`'s diagram to `path` (.svg, .png, .pdf or .dot)."""
    rendered = render_dot(graph, link=link_for(path), **options)
    rendered.notes += write(rendered, path)
    return rendered


def write(rendered: Rendered, path: str, inputs=()) -> list[str]:
    """Write DOT or run `dot`; returns notes about the output (a lowered PNG resolution).
    Without Graphviz, writes `<path>.dot` (unless that file exists) and raises E0602.
    Files are written atomically, never over the drawn specs or `inputs` (modelc.fileio)."""
    from modelc.fileio import write_file

    fmt = output_format(path)
    inputs = [*inputs, *(v.graph.span.file for v in rendered.views)]
    if fmt == "dot":
        write_file(path, rendered.dot, inputs)
        return []
    if dot_binary() is None:
        fallback = os.path.splitext(path)[0] + ".dot"
        if os.path.lexists(fallback):
            done = f"{fallback} exists, so it was left as it is"
            hint = f"install Graphviz, or ask for the DOT source with -o {fallback} (which replaces it)"
        else:
            write_file(fallback, rendered.dot, inputs)
            done = f"wrote {fallback} instead"
            hint = ("install Graphviz (apt install graphviz, brew install graphviz, or conda "
                    "install graphviz), or ask for a .dot file")  # fmt: skip
        raise error("E0602", f"Graphviz not found: cannot draw {path} (the `dot` program is "
                    f"missing); {done}", None, hint)  # fmt: skip
    dpi = png_dpi(rendered) if fmt == "png" else None
    write_file(path, run_dot(rendered.dot, fmt, dpi), inputs)
    if dpi is not None:
        return [f"{path}: drawn at {dpi} dpi to stay under the {PNG_LIMIT_PX:,}-px PNG limit"]
    return []


def output_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower().lstrip(".")
    ext = "dot" if ext == "gv" else ext
    if ext not in FORMATS:
        raise error("E0601", f"cannot tell the diagram format of {path!r}", None,
                    "end the file name in .svg, .png, .pdf or .dot")  # fmt: skip
    return ext


def to_svg(graph: Graph, **options) -> str | None:
    """SVG text of the default diagram, or None without Graphviz (for Jupyter)."""
    if dot_binary() is None:
        return None
    return run_dot(render_dot(graph, link=link_for(None), **options).dot, "svg").decode()


# ---- Graphviz -------------------------------------------------------------------------
def dot_binary() -> str | None:
    return shutil.which("dot")


def run_dot(source: str, fmt: str, dpi: int | None = None) -> bytes:
    """Lay out and draw DOT text. A drawing with clusters is laid out by `dot` and drawn
    by `neato -n2` (nothing moves) with its captions above the edges (`lift_captions`)."""
    exe = _dot()
    extra = [f"-Gdpi={dpi}"] if dpi else []
    if fmt in ("svg", "png", "pdf") and re.search(r'subgraph "?cluster', source):
        return _graphviz([exe, "-Kneato", "-n2", f"-T{fmt}", *extra], lift_captions(layout(source)))
    return _graphviz([exe, f"-T{fmt}", *extra], source)


@functools.lru_cache(maxsize=4)
def layout(source: str) -> str:
    """The laid-out graph (`dot -Tdot`), kept for the other formats of the same drawing."""
    return _graphviz([_dot(), "-Tdot"], source).decode()


def _dot() -> str:
    exe = dot_binary()
    if exe is None:
        raise error("E0602", "Graphviz not found (the `dot` program is missing)", None,
                    "install Graphviz: apt install graphviz, brew install graphviz")  # fmt: skip
    return exe


def _graphviz(args: list[str], source: str) -> bytes:
    done = subprocess.run(args, input=source.encode(), capture_output=True, timeout=600, check=False)
    if done.returncode != 0 or not done.stdout:
        raise CompilerBug(f"{' '.join(args[1:])} failed: {done.stderr.decode(errors='replace').strip()}")
    return done.stdout


def png_dpi(rendered: Rendered) -> int | None:
    """A dpi keeping the PNG under the pixel limit, measured with a layout when it is close."""
    w, h = max((p.size for p in rendered.plans), default=(0.0, 0.0), key=max)
    if rendered.plans and max(w, h) < LIMIT_PT * 0.4:
        return None
    bb = re.search(r'\bbb="([^"]+)"', layout(rendered.dot)).group(1).split(",")
    inches = max(float(bb[2]) - float(bb[0]), float(bb[3]) - float(bb[1])) / 72
    fit = int((PNG_LIMIT_PX - 64) / inches)
    return fit if fit < PNG_DPI else None


def link_for(out_path: str | None):
    """`link(span)`: the spec file relative to the output's folder, with `#L<line>`."""
    base = os.path.dirname(os.path.abspath(out_path)) if out_path else None

    @functools.cache
    def file(target: str) -> str:  # once per spec file, not once per box
        if base and os.path.exists(target):
            target = os.path.relpath(os.path.abspath(target), base)
        return target.replace(os.sep, "/")

    def link(span) -> str:
        return f"{file(span.file)}#L{span.line}"

    return link


# ---- caption ----------------------------------------------------------------------------
def _caption(views: list[View], notes: list[str], extra: list[str], diff: bool = False) -> str:
    titles = list({t["name"] + t["args"]: t for t in map(_title, views)}.values())
    source = " vs ".join(dict.fromkeys(os.path.basename(v.graph.span.file) for v in views))
    folded = any(i.count > 1 for v in views for i in v.items)
    subtitle = f"{views[0].level} view \u00b7 {source}"
    if folded:
        subtitle += " \u00b7 \u00d7 N: N identical copies drawn once"
    return html("title", titles=titles, subtitle=subtitle, legend=_legend(views, diff),
                summary=extra, notes=notes)  # fmt: skip


def _signature(g: Graph) -> str:
    return g.name + "(" + ", ".join(f"{k}={v}" for k, v in g.params) + ")"


def _title(view: View) -> dict[str, str]:
    g = view.graph
    args = ", ".join(f"{k}={v}" for k, v in g.params)
    n = view.total_params
    brief = f" ({short(n)})" if short(n) != count(n) else ""  # "170 parameters", not "170 (170)"
    totals = f"{count(n)} parameters{brief} \u00b7 {macs_text(view.total_macs)} per sample"
    return {"name": g.name, "args": f"({args})", "totals": totals}


def _legend(views: list[View], diff: bool) -> list[list[dict]]:
    present = {i.family for v in views for i in v.items if i.family}
    present |= {f for v in views for i in v.items for f in i.families}
    box = "\u25a0"  # a filled square in the family's colour
    entries = [_entry(box, FAMILY_COLORS[f], f, 14) for f in FAMILIES if f in present]
    if any(e.skip for v in views for e in v.edges):
        entries.append(_entry("- - \u2192", SKIP_COLOR, "skip connection"))
    if any(i.training for v in views for i in v.items):
        entries.append(_entry("- - \u2192", EDGE_COLOR, "training only"))
    if diff:
        entries += [_entry(mark, color, state) for state, (color, _, mark) in DIFF.items()]
    rows = -(-len(entries) // 6)  # at most 6 a row, rows of even length (4 + 3, not 6 + 1)
    per_row = -(-len(entries) // max(rows, 1))
    return [entries[i : i + per_row] for i in range(0, len(entries), per_row)]


def _entry(symbol: str, ink: str, text: str, size: int = SIZES["legend"]) -> dict:
    return {"symbol": symbol, "ink": ink, "text": text, "size": size}
