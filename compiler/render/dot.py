"""Views -> DOT text, through the `graphviz` package (no layout happens here).

A drawing is one or more :class:`Panel`s (one per view; two side by side for a
diff) under a caption holding the title, totals, legend and notes. Opened
containers become clusters; when a panel is wrapped into columns (see
`render/layout.py`), a cluster split by a column break is drawn once per column,
the later pieces marked "(cont.)", and edges between columns do not constrain
the layout, so every column starts at the top.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field, replace

import graphviz

from modelc.render.style import (
    DIFF, EDGE_COLOR, FAMILY_COLORS, FONT, INK, SIZES, SKIP_COLOR, count, html, macs_text,
)  # fmt: skip
from modelc.render.view import Cluster, Item, View

__all__ = ["Panel", "lift_captions", "to_dot"]

Path = tuple[str, ...]
_BIG = 300  # boxes above which layout speed matters more than the straightest edges


@dataclass
class Panel:
    view: View
    prefix: str = ""  # node-id prefix, so two panels never share an id
    caption: str = ""  # drawn as a cluster around the panel when given
    marks: dict[str, str] = field(default_factory=dict)  # item key -> diff state
    cluster_marks: dict[Path, str] = field(default_factory=dict)
    columns: dict[str, int] = field(default_factory=dict)  # item key -> column (wrapping)


def to_dot(panels: list[Panel], direction: str, caption: str, link=None) -> str:
    """DOT source for the panels; `link(span)` gives a node's href (or None)."""
    name = " vs ".join(p.view.graph.name for p in panels)
    dg = graphviz.Digraph(name=name)
    dg.attr("graph", rankdir=direction, fontname=FONT, fontsize=str(SIZES["name"]), label=caption,
            labelloc="t", nodesep="0.18", ranksep="0.06", pad="0.2", outputorder="edgesfirst")  # fmt: skip
    if any(p.view.ranks for p in panels):
        dg.attr("graph", newrank="true")  # rank=same across clusters (a U-Net's levels)
    if sum(len(p.view.items) for p in panels) > _BIG:
        dg.attr("graph", nslimit="4")  # bound dot's x-placement passes: seconds, not minutes
    dg.attr("node", shape="box", style="rounded,filled", fontname=FONT, fontsize=str(SIZES["name"]),
            margin="0.08,0.03", width="0", height="0", color="#444444", fontcolor=INK)  # fmt: skip
    dg.attr("edge", fontname=FONT, fontsize=str(SIZES["edge"]), color=EDGE_COLOR,
            fontcolor="#444444", arrowsize="0.6", penwidth="1")  # fmt: skip
    for i, panel in enumerate(panels):
        if panel.caption:
            with dg.subgraph(name=f"cluster_panel{i}") as sub:
                sub.attr(label=panel.caption, labeljust="l", style="rounded", color="#777777",
                         fontsize=str(SIZES["title"] - 2))  # fmt: skip
                _panel(sub, panel, link, direction)
        else:
            _panel(dg, panel, link, direction)
    return dg.source


# ---- one panel ------------------------------------------------------------------------
def _panel(dg, panel: Panel, link, direction: str) -> None:
    by_place: dict[tuple[int, Path], list[Item]] = defaultdict(list)
    for item in panel.view.items:
        by_place[(panel.columns.get(item.key, 0), item.cluster)].append(item)
    first: dict[Path, int] = {}  # cluster -> the first column holding any of it
    kids: dict[int, dict[Path, set[Path]]] = defaultdict(lambda: defaultdict(set))  # per column
    for c, p in by_place:
        for i in range(1, len(p) + 1):
            first[p[:i]] = min(first.get(p[:i], c), c)
            kids[c][p[: i - 1]].add(p[:i])
    # Graphviz places the first-written part leftmost, which LR turns into bottommost.
    for col in sorted({c for c, _ in by_place}, reverse=direction == "LR"):
        tree = {path: sorted(inside) for path, inside in kids[col].items()}
        _cluster(dg, panel, (), col, tree, first, by_place, link)
    col = panel.columns.get
    crossing = [e for e in panel.view.edges if col(e.src, 0) != col(e.dst, 0)]
    labelled = {(e.src, e.out) for e in crossing if e.label}
    links: dict[str, int] = {}  # item feeding a later column -> number
    drawn: set[str] = set()  # connectors drawn at the top of a column
    for edge in panel.view.edges:
        if col(edge.src, 0) == col(edge.dst, 0):
            _edge(dg, panel.prefix + edge.src, panel.prefix + edge.dst, edge)
        else:
            _wrap_edge(dg, panel, edge, (links, drawn), (edge.src, edge.out) in labelled)
    for level in panel.view.ranks:  # items drawn level with each other (render/ushape.py)
        with dg.subgraph() as same:
            same.attr(rank="same")
            for key in level:
                same.node(panel.prefix + key)


def _wrap_edge(dg, panel: Panel, edge, state: tuple[dict[str, int], set[str]], label: bool) -> None:
    """An edge to a later column, through numbered connectors: one where the value
    leaves its column (carrying the shape, when this value's shape goes on a crossing
    edge), one at the top of each column that reads it. `state` holds the numbers
    given so far (value's item -> number, 1, 2, ... in order) and the connectors drawn."""
    links, drawn = state
    first = edge.src not in links
    n = links.setdefault(edge.src, 1 + len(links))
    out = f"{panel.prefix}wrap{n}_out"
    into = f"{panel.prefix}wrap{n}_in{panel.columns[edge.dst]}"
    if first:
        _connector(dg, out, n)
        _edge(dg, panel.prefix + edge.src, out, replace(edge, skip=False, label=label))
    if into not in drawn:
        drawn.add(into)
        _connector(dg, into, n)
    _edge(dg, into, panel.prefix + edge.dst, replace(edge, label=False))


def _connector(dg, key: str, n: int) -> None:
    dg.node(key, label=str(n), shape="circle", style="filled", fillcolor="#333333", fontcolor="white",
            fontsize=str(SIZES["small"]), width="0.25", fixedsize="true", tooltip=f"continues at {n}")


def _cluster(dg, panel: Panel, path: Path, col: int, tree: dict[Path, list[Path]],
             first: dict[Path, int], by_place: dict, link) -> None:  # fmt: skip
    """The items of cluster `path` in column `col`, then its child clusters there
    (`tree`: the sorted children of each cluster in this column), recursively; a
    cluster first drawn in an earlier column (`first`) is captioned "(cont.)"."""
    for item in by_place.get((col, path), []):
        dg.node(panel.prefix + item.key, **_node_attrs(item, panel, link))
    for kid in tree.get(path, ()):
        with dg.subgraph(name=f"cluster_{panel.prefix}{col}_{'.'.join(kid)}") as sub:
            sub.attr(**_cluster_attrs(panel.view.clusters[kid], panel, cont=col != first[kid]))
            _cluster(sub, panel, kid, col, tree, first, by_place, link)


def _cluster_attrs(c: Cluster, panel: Panel, cont: bool) -> dict[str, str]:
    mark = panel.cluster_marks.get(c.path)
    per = f"{count(c.params)} params" + (" each" if c.count > 1 else "")
    label = html("cluster", name=c.name + (" (cont.)" if cont else ""),
                 **_counted("" if cont else c.text, c.kind),
                 badge=f"\u00d7 {c.count}" if c.count > 1 and not cont else "",
                 details="" if cont else per, **_mark_context(mark))  # fmt: skip
    fill = "#F3F3F3" if c.kind == "seq" else "#FFFFFF"
    attrs = {"label": label, "labeljust": "l", "style": "rounded,filled", "fillcolor": fill,
             "color": "#AAAAAA" if c.kind == "seq" else "#777777",
             "fontsize": str(SIZES["cluster"]), "penwidth": "2" if c.count > 1 else "1"}  # fmt: skip
    if c.span is not None:
        attrs["tooltip"] = f"{c.name} \u00b7 {c.text} \u00b7 {c.span.short}"
    if mark:
        attrs.update(color=DIFF[mark][0], penwidth="2.5", style="rounded,filled," + DIFF[mark][1])
    return attrs


# ---- nodes and edges --------------------------------------------------------------------
def _node_attrs(item: Item, panel: Panel, link) -> dict[str, str]:
    mark = panel.marks.get(item.key)
    attrs = {"label": _label(item, mark), "tooltip": _tooltip(item), "id": panel.prefix + item.key,
             "fillcolor": FAMILY_COLORS.get(item.family, "#FFFFFF"),
             "comment": f"params={item.params} count={item.count}"}  # fmt: skip
    if item.kind in ("input", "output"):
        attrs.update(style="rounded,filled,bold", fillcolor="#FFFFFF", penwidth="2")
    elif item.kind in ("block", "seq"):
        attrs.update(penwidth="1.5", peripheries="2" if item.badge > 1 else "1")
    if item.training:  # computed only in training mode: a dashed border
        attrs["style"] = attrs.get("style", "rounded,filled") + ",dashed"
    href = link(item.span) if link and item.span is not None else None
    if href:
        attrs["href"] = href
    if mark:
        color, style, _ = DIFF[mark]
        attrs.update(color=color, penwidth="3", style=f"{attrs.get('style', 'rounded,filled')},{style}")
    return attrs


def _label(item: Item, mark: str | None) -> str:
    strip, badge, details = [], "", ""
    if item.kind in ("block", "seq"):
        strip = _strip(item.families)
        if item.badge > 1:
            badge = f"\u00d7 {item.badge}"
    if item.params:
        details = f"{count(item.params)} params" + (" each" if badge else "")
    text = item.text if item.kind != "output" else "training output" if item.training else "output"
    return html("node", name=item.name, **_counted(text, item.kind), strip=strip, badge=badge,
                details=details, strip_width=sum(w for _, w in strip),
                **_mark_context(mark))  # fmt: skip


def _counted(text: str, kind: str) -> dict[str, str]:
    """A sequence's length in bold, like a badge: `**6 x** SwinBlock` (the spec's depth)."""
    lead, sep, rest = text.partition(" \u00d7 ")
    if kind == "seq" and sep and lead.isdigit():
        return {"lead": lead + " \u00d7", "text": rest}
    return {"lead": "", "text": text}


def _mark_context(mark: str | None) -> dict[str, str]:
    """The +/-/~ mark of a diff state, in ink (the border carries the colour)."""
    return {"mark": DIFF[mark][2] if mark else "", "mark_color": INK}


def _strip(families: tuple[str, ...], budget: float = 64.0) -> list[tuple[str, int]]:
    """A colour strip of a container's ops, at most about `budget` points wide: one cell per
    run of one family, or, for long containers, one cell per family sized by its share."""
    runs: list[list] = []
    for f in families:
        if runs and runs[-1][0] == f:
            runs[-1][1] += 1
        else:
            runs.append([f, 1])
    if len(runs) * 3 > budget:
        share = {f: families.count(f) for f in dict.fromkeys(families)}
        runs = [[f, n] for f, n in share.items()]
    unit = min(4.0, budget / max(1, len(families)))
    return [(FAMILY_COLORS[f], max(3, round(unit * n))) for f, n in runs]


def _tooltip(item: Item) -> str:
    parts = [f"{item.name} \u00b7 {item.text}"]
    if item.shape:
        parts.append(f"out {item.shape}")
    if item.kind not in ("input", "output"):
        per = " each" if item.count > 1 else ""
        parts.append(f"{count(item.params)} params{per}, {macs_text(item.macs)}{per}")
    if item.span is not None:
        parts.append(item.span.short)
    if item.used is not None:
        parts[-1] = f"defined at {item.span.short}, used at {item.used.short}"
    return " \u00b7 ".join(parts)


def _edge(dg, src: str, dst: str, e) -> None:
    attrs: dict[str, str] = {}
    label = " \u00b7 ".join(t for t in (e.name, e.shape if e.label else "") if t)
    if label:
        attrs["label"] = label
    if e.skip:
        attrs.update(style="dashed", color=SKIP_COLOR, penwidth="1.3", weight="1")
    else:
        attrs["weight"] = "4"
    if e.training:  # into the training-only branch
        attrs["style"] = "dashed"
    if e.name:  # a side input (a decoder's memory) may arrive level, from the side
        attrs.update(minlen="0", weight="1")
    if e.back:  # drawn from the far end, pointing the right way: a U's rising side
        src, dst = dst, src
        attrs["dir"] = "back"
    dg.edge(src, dst, **attrs)


# ---- captions above the edges -------------------------------------------------------------
_CLUSTER = re.compile(r'subgraph ("?cluster[^{"]*"?) \{\s*graph \[(.*?)\];', re.DOTALL)


def lift_captions(laid: str) -> str:
    """A laid-out graph (`dot -Tdot`) whose cluster captions are drawn above the edges.

    NOTE: [Captions over edges]
    Graphviz draws clusters first, so an edge entering a cluster runs through its
    caption, and dot does not route edges around captions. Each caption is taken
    out of its cluster (which keeps the space dot reserved for it) and drawn again,
    at the same place, as a node filled with the cluster's colour; nodes are drawn
    after edges (`outputorder=edgesfirst`), so an edge passes *under* the caption
    instead of striking its text. `neato -n2` then draws the result without moving
    anything.
    """
    captions = []

    def lift(m: re.Match) -> str:
        attrs = m.group(2)
        label = _html_value(attrs, "label")
        lp, fill = _value(attrs, "lp"), _value(attrs, "fillcolor") or "#FFFFFF"
        if label is None or lp is None:
            return m.group(0)
        name = m.group(1).strip('"')
        tip = _value(attrs, "tooltip")
        captions.append(f'"caption:{name}" [label={label} pos="{lp}" width={_value(attrs, "lwidth")} '
                        f'height={_value(attrs, "lheight")} fixedsize=true shape=box margin=0 '
                        f'style=filled fillcolor="{fill}" color="{fill}" penwidth=0'
                        + (f' tooltip="{tip}"' if tip else "") + "];")  # fmt: skip
        return m.group(0).replace(f"label={label}", 'label=""', 1)

    body = _CLUSTER.sub(lift, laid)
    end = body.rstrip().rfind("}")
    return body[:end] + "".join(f"\t{c}\n" for c in captions) + body[end:]


def _value(attrs: str, key: str) -> str | None:
    m = re.search(rf'(?<![\w_]){key}=("(?:[^"\\]|\\.)*"|[^,\s\]]+)', attrs)
    return m.group(1).strip('"') if m else None


def _html_value(attrs: str, key: str) -> str | None:
    """An HTML-like value, `<...>` with its nested tags, as written."""
    start = attrs.find(f"{key}=<")
    if start < 0:
        return None
    depth, i = 0, start + len(key) + 1
    for j in range(i, len(attrs)):
        depth += {"<": 1, ">": -1}.get(attrs[j], 0)
        if depth == 0:
            return attrs[i : j + 1]
    return None
