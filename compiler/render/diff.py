"""Two graphs side by side, with what was added, removed and changed marked.

NOTE: [Matching]
Boxes match by qualified name (`layer3.1`, `layer2.0.conv2`), at the same zoom
level on both sides. A box only in A is *removed*, only in B *added*; a box in
both is *changed* when its op, attributes, output shape, parameter count or
repetition count differ. Clusters match the same way. This works on any two
graphs, so an optimizer can show a graph before and after its passes
(`diff_dot(before, after)`), and the CLI compares two specs or one spec under
two parameter settings.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from modelc.ir import Graph
from modelc.render.dot import Panel
from modelc.render.layout import plan_layout
from modelc.render.style import count
from modelc.render.view import Cluster, Item, View, build_view

__all__ = ["Diff", "diff_panels", "diff_views"]


@dataclass
class Diff:
    a: dict[str, str] = field(default_factory=dict)  # item key -> state, left side
    b: dict[str, str] = field(default_factory=dict)
    clusters_a: dict[tuple, str] = field(default_factory=dict)
    clusters_b: dict[tuple, str] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        states = list(self.a.values()) + [s for s in self.b.values() if s != "changed"]
        return {s: states.count(s) for s in ("added", "removed", "changed")}


def _item_key(item: Item) -> tuple:
    return (item.kind, item.op, item.text, item.shape, item.params, item.count)


def _cluster_key(c: Cluster) -> tuple:
    return (c.kind, c.text, c.params, c.count)


def diff_views(a: View, b: View) -> Diff:
    d = Diff()
    _compare({i.key: i for i in a.items}, {i.key: i for i in b.items}, _item_key, d.a, d.b)
    _compare(a.clusters, b.clusters, _cluster_key, d.clusters_a, d.clusters_b)
    return d


def _compare(left: dict, right: dict, key, marks_a: dict, marks_b: dict) -> None:
    for name, x in left.items():
        if name not in right:
            marks_a[name] = "removed"
        elif key(x) != key(right[name]):
            marks_a[name] = marks_b[name] = "changed"
    for name in right:
        if name not in left:
            marks_b[name] = "added"


def diff_panels(a: Graph, b: Graph, level: str | None = None, depth: int | None = None,
                names: tuple[str, str] = ("A", "B"), direction: str = "TB",
                ) -> tuple[list[Panel], str]:  # fmt: skip
    """The two panels of a diff drawing and a one-line summary."""
    va, vb = build_view(a, level, depth), build_view(b, level, depth)
    d = diff_views(va, vb)
    panels = []
    for tag, view, marks, cmarks in ((names[0], va, d.a, d.clusters_a), (names[1], vb, d.b, d.clusters_b)):
        plan = plan_layout(view, direction)
        caption = f"{tag}: {_signature(view.graph)}"
        panels.append(Panel(view, prefix=f"{tag}/", caption=caption, marks=marks,
                            cluster_marks=cmarks, columns=plan.columns))  # fmt: skip
    return panels, _summary(d, va, vb, names)


def _signature(g: Graph) -> str:
    args = ", ".join(f"{k}={v}" for k, v in g.params)
    return f"{g.name}({args})"


def _summary(d: Diff, a: View, b: View, names: tuple[str, str]) -> str:
    n = d.counts()
    delta = b.total_params - a.total_params
    sign = "+" if delta >= 0 else "\u2212"
    return (f"{names[0]} \u2192 {names[1]}: {n['changed']} changed, {n['added']} added, "
            f"{n['removed']} removed \u00b7 parameters {count(a.total_params)} \u2192 "
            f"{count(b.total_params)} ({sign}{count(abs(delta))})")  # fmt: skip
