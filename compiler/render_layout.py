"""Layout decisions made before Graphviz runs: direction and wrapping into columns.

NOTE: [Sizes without a layout]
The decision must not depend on whether `dot` is installed (the DOT text is the
same everywhere), so sizes are *estimated* from the view: box sizes from their
text, the extent along the ranks as the costliest path through the drawing
(boxes, edge labels, rank gaps, cluster captions), the extent across as the
widest layer of a longest-path layering. The estimate errs on the large side;
tests check that the real layouts of every zoo spec stay under the PNG limit.

Wrapping cuts the drawing into columns of about equal length, each break placed
where the fewest values cross it (ideally one: a ResNet block's output, any
layer of a VGG) and then where the fewest clusters are cut in two; values
crossing a break are carried by numbered connectors. A top-to-bottom drawing
much longer than wide is wrapped to approach the proportions of a page; any
drawing that would exceed the 32,767-pixel PNG limit is wrapped, or turned
(TB <-> LR) when it is too wide instead. Either way the figure carries a note
and the CLI says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import networkx as nx

from modelc.render_ushape import undo
from modelc.render_view import Item, View

__all__ = ["PNG_LIMIT_PX", "Plan", "estimate", "plan_layout"]

PNG_LIMIT_PX = 32767
PNG_DPI = 96  # Graphviz's default for bitmaps
LIMIT_PT = PNG_LIMIT_PX * 72 / PNG_DPI
SAFE_PT = LIMIT_PT * 0.6  # estimates are rough: stay well below the limit
PAGE_RATIO = 9 / 6.75  # height / width of the page a figure should fit
_CHAR = 0.6  # average glyph width / font size (Helvetica, pessimistic)
_LINE = 1.3  # line height / font size
_STEP = {"TB": 27.0, "LR": 30.0}  # rank gap with an edge-label rank between, in points
_CAPTION = 32.0  # a cluster caption plus its top margin
_MARGIN = 12.0
_TITLE = 100.0


@dataclass
class Plan:
    direction: str
    columns: dict[str, int] = field(default_factory=dict)  # item key -> column
    notes: list[str] = field(default_factory=list)
    size: tuple[float, float] = (0.0, 0.0)  # estimated (width, height) in points

    @property
    def ncolumns(self) -> int:
        return max(self.columns.values(), default=0) + 1


def box(item: Item) -> tuple[float, float]:
    """Estimated (width, height) of an item's box in points."""
    text = len(item.name) + len(item.text) + 3 + (4 if item.count > 1 else 0)
    width = text * 11 * _CHAR + 16
    if item.params:
        width += (len(f"{item.params:,}") + 13) * 10 * _CHAR
    if item.families:
        width += 66
    return width, 11 * _LINE + 4 + (8 if item.count > 1 else 0)


def estimate(view: View, direction: str) -> tuple[float, float, dict[str, float]]:
    """(along, across, progress): extents in points along and across the ranks, and the
    cost of the costliest path from an input to each item (its position along the ranks)."""
    tb = direction == "TB"
    dag = _dag(view)
    sizes = {i.key: box(i) for i in view.items}
    items = {i.key: i for i in view.items}
    label = 0.0 if tb else 70.0  # in LR, shape labels widen the rank gaps
    step = {k: (h if tb else w) + _STEP[direction] + label for k, (w, h) in sizes.items()}
    pos: dict[str, float] = {}
    layer: dict[str, int] = {}
    order = list(nx.lexicographical_topological_sort(dag, key=lambda k: items[k].order))
    for k in order:
        preds = list(dag.predecessors(k))
        enter = [pos[p] + _cluster_cost(items[p].cluster, items[k].cluster) for p in preds]
        pos[k] = max(enter, default=len(items[k].cluster) * _CAPTION) + step[k]
        layer[k] = max((layer[p] + 1 for p in preds), default=0)
    fed = set().union(*(nx.descendants(dag, i.key) | {i.key} for i in view.items if i.kind == "input"))
    for k in reversed(order):  # what the inputs do not feed (a weight table) sits by its user
        users = list(dag.successors(k))
        if users and k not in fed:
            pos[k] = max(step[k], min(pos[u] - step[u] for u in users))
            layer[k] = max(0, min(layer[u] for u in users) - 1)
    along = max(pos.values(), default=0.0) + (_TITLE if tb else 0.0)
    widths: dict[int, float] = {}
    for k, (w, h) in sizes.items():
        extra = (w + 40 if tb else h + 16) + len(items[k].cluster) * 2 * _MARGIN
        widths[layer[k]] = widths.get(layer[k], 0.0) + extra
    return along, max(widths.values(), default=0.0), pos


def _cluster_cost(a: tuple, b: tuple) -> float:
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common]:
        common += 1
    return (len(b) - common) * _CAPTION + (len(a) - common) * _MARGIN


def _dag(view: View) -> nx.DiGraph:
    dag = nx.DiGraph()
    dag.add_nodes_from(i.key for i in view.items)
    dag.add_edges_from((e.src, e.dst) for e in view.edges)
    return dag


def plan_layout(view: View, direction: str = "TB", wrap: bool = True) -> Plan:
    """Direction and columns for a view; notes say what was changed and why."""
    along, across, pos = estimate(view, direction)
    plan = Plan(direction, size=(across, along) if direction == "TB" else (along, across))
    if across > SAFE_PT:
        turned = "LR" if direction == "TB" else "TB"
        plan.notes.append(f"drawn {_words(turned)} instead of {_words(direction)}: "
                          f"too wide for a {PNG_LIMIT_PX:,}-px PNG")  # fmt: skip
        plan.direction = direction = turned
        along, across, pos = estimate(view, direction)
    k = _columns(along, across, direction) if wrap else 1
    if view.ranks:  # a U (render_ushape.py) is half as long: wrapped only for the PNG limit
        k = k if along > SAFE_PT else 1
        if k > 1:
            undo(view)
    if k > 1:
        plan.columns = _split(view, pos, along, k)
        if plan.ncolumns > 1:
            why = f"to stay under the {PNG_LIMIT_PX:,}-px PNG limit" if along > SAFE_PT else "to fit a page"
            what = "columns" if direction == "TB" else "rows"
            plan.notes.append(f"wrapped into {plan.ncolumns} {what} {why}; numbered circles continue the flow")
    return plan


def _columns(along: float, across: float, direction: str) -> int:
    """Columns (rows, in LR) needed to stay under the PNG limit; in TB also enough to
    approach the proportions of a page when much longer than that. A left-to-right
    drawing was asked for as such (a U-Net): it wraps only when it must."""
    need = math.ceil(along / SAFE_PT)
    aspect = along / max(across, 250.0)
    readable = 1
    if direction == "TB" and along > 1800 and aspect > 2 * PAGE_RATIO:
        readable = math.ceil(math.sqrt(aspect / PAGE_RATIO))
    return max(need, readable, 1)


def _split(view: View, pos: dict[str, float], along: float, k: int) -> dict[str, int]:
    """Columns of about `along / k` each. Each break is placed, near its target, where the
    fewest distinct values cross it and then the fewest clusters are cut in two."""
    crossing = [(pos[e.src], pos[e.dst], e.src) for e in view.edges]
    spans = _cluster_spans(view, pos)
    candidates = sorted(set(pos.values()))[:-1]
    breaks: list[float] = []
    for j in range(1, k):
        target, slack = along * j / k, along / k * 0.3
        near = [p for p in candidates if abs(p - target) <= slack and p not in breaks]
        if near:
            breaks.append(min(near, key=lambda p, t=target: _break_cost(p, t, crossing, spans)))
    breaks.sort()
    columns = {item.key: sum(1 for b in breaks if pos[item.key] > b) for item in view.items}
    used = sorted(set(columns.values()))
    return {key: used.index(c) for key, c in columns.items()}


def _break_cost(p: float, target: float, crossing: list, spans: list) -> tuple:
    """(values crossing, clusters cut, distance from the target) of a break after `p`."""
    values = len({src for a, b, src in crossing if a <= p < b})
    split = sum(1 for lo, hi in spans if lo <= p < hi)
    return (values, split, abs(p - target))


def _cluster_spans(view: View, pos: dict[str, float]) -> list[tuple[float, float]]:
    """(first, last) position of the items in each cluster."""
    spans: dict[tuple, list[float]] = {}
    for item in view.items:
        for i in range(1, len(item.cluster) + 1):
            spans.setdefault(item.cluster[:i], []).append(pos[item.key])
    return [(min(v), max(v)) for v in spans.values()]


def _words(direction: str) -> str:
    return "left to right" if direction == "LR" else "top to bottom"
