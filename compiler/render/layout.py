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
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from modelc.diagnostics import CompilerBug
from modelc.render.skip import Dag
from modelc.render.ushape import undo
from modelc.render.view import Item, View

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


def estimate(view: View, direction: str, dag: Dag | None = None) -> tuple[float, float, dict[str, float]]:
    """(along, across, progress): extents in points along and across the ranks, and the
    cost of the costliest path from an input to each item (its position along the ranks).
    `dag` is the view's items in source order (`_dag`), made when not given."""
    tb = direction == "TB"
    dag = _dag(view) if dag is None else dag
    if not dag.acyclic:
        raise CompilerBug(f"the view of {view.graph.name} has a cycle")
    sizes = {i.key: box(i) for i in view.items}
    items = {i.key: i for i in view.items}
    label = 0.0 if tb else 70.0  # in LR, shape labels widen the rank gaps
    step = {k: (h if tb else w) + _STEP[direction] + label for k, (w, h) in sizes.items()}
    pos: dict[str, float] = {}
    layer: dict[str, int] = {}
    keys = dag.keys  # topological, by source order
    for r, k in enumerate(keys):
        preds = [keys[p] for p in dag.pred[r]]
        enter = [pos[p] + _cluster_cost(items[p].cluster, items[k].cluster) for p in preds]
        pos[k] = max(enter, default=len(items[k].cluster) * _CAPTION) + step[k]
        layer[k] = max((layer[p] + 1 for p in preds), default=0)
    fed = _fed(dag, [dag.index[i.key] for i in view.items if i.kind == "input"])
    for r in reversed(range(len(keys))):  # what the inputs do not feed (a weight table) sits by its user
        k, users = keys[r], [keys[u] for u in dag.succ[r]]
        if users and r not in fed:
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


def _dag(view: View) -> Dag:
    """The view's items, topologically sorted by source order."""
    return Dag(view, key=lambda item: item.order)


def _fed(dag: Dag, inputs: list[int]) -> set[int]:
    """The inputs and everything they feed."""
    seen = set(inputs)
    todo = list(inputs)
    while todo:
        for m in dag.succ[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


def plan_layout(view: View, direction: str = "TB", wrap: bool = True) -> Plan:
    """Direction and columns for a view; notes say what was changed and why."""
    dag = _dag(view)
    along, across, pos = estimate(view, direction, dag)
    plan = Plan(direction, size=(across, along) if direction == "TB" else (along, across))
    if across > SAFE_PT:
        turned = "LR" if direction == "TB" else "TB"
        plan.notes.append(f"drawn {_words(turned)} instead of {_words(direction)}: "
                          f"too wide for a {PNG_LIMIT_PX:,}-px PNG")  # fmt: skip
        plan.direction = direction = turned
        along, across, pos = estimate(view, direction, dag)
    k = _columns(along, across, direction) if wrap else 1
    if view.ranks:  # a U (render/ushape.py) is half as long: wrapped only for the PNG limit
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
    fewest distinct values cross it and then the fewest clusters are cut in two.

    A break after position `p` is crossed by a value when the value's item lies at or
    before `p` and one of its users after it, and cuts a cluster whose first item lies
    at or before `p` and whose last after it; both counts are made for every candidate
    position by one sweep, so placing the breaks is linear (after sorting)."""
    candidates = sorted(set(pos.values()))[:-1]
    reach: dict[str, float] = {}  # a value's item -> the position of its last user
    for e in view.edges:
        reach[e.src] = max(reach.get(e.src, pos[e.dst]), pos[e.dst])
    values = _covering(candidates, [(pos[src], end) for src, end in reach.items()])
    split = _covering(candidates, _cluster_spans(view, pos))
    breaks: list[float] = []
    taken: set[float] = set()
    for j in range(1, k):
        target, slack = along * j / k, along / k * 0.3
        margin = slack + 1e-9 * (along + 1.0)  # a little wider: the test below decides
        lo, hi = bisect_left(candidates, target - margin), bisect_right(candidates, target + margin)
        near = [i for i in range(lo, hi)
                if abs(candidates[i] - target) <= slack and candidates[i] not in taken]  # fmt: skip
        if near:
            best = min(near, key=lambda i, t=target: (values[i], split[i], abs(candidates[i] - t)))
            breaks.append(candidates[best])
            taken.add(candidates[best])
    breaks.sort()
    columns = {item.key: bisect_left(breaks, pos[item.key]) for item in view.items}
    used = {c: i for i, c in enumerate(sorted(set(columns.values())))}
    return {key: used[c] for key, c in columns.items()}


def _covering(points: list[float], spans: list[tuple[float, float]]) -> list[int]:
    """For each of the sorted `points`, how many spans `(lo, hi)` have `lo <= p < hi`."""
    delta = [0] * (len(points) + 1)
    for lo, hi in spans:
        a, b = bisect_left(points, lo), bisect_left(points, hi)
        if a < b:
            delta[a] += 1
            delta[b] -= 1
    out, running = [], 0
    for d in delta[:-1]:
        running += d
        out.append(running)
    return out


def _cluster_spans(view: View, pos: dict[str, float]) -> list[tuple[float, float]]:
    """(first, last) position of the items in each cluster."""
    spans: dict[tuple, list[float]] = {}
    for item in view.items:
        for i in range(1, len(item.cluster) + 1):
            spans.setdefault(item.cluster[:i], []).append(pos[item.key])
    return [(min(v), max(v)) for v in spans.values()]


def _words(direction: str) -> str:
    return "left to right" if direction == "LR" else "top to bottom"
