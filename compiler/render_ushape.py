"""Keeping a U-Net's U: encoder and decoder levels drawn level with each other.

NOTE: [The U]
An encoder-decoder with skips (U-Net) is read as a U: the contracting path down
one side, the expanding path up the other, each skip across. The structure
says when to draw it so: skip connections (see `render_skip.py`) that *nest*
(each one's fork after the previous fork, its merge before the previous
merge), at least two deep, whose forks carry ever fewer values (the resolution
drops level by level; a residual network's nested skips keep their size and
stay straight). Then each skip's items (fork, the items on the skip, merge) are
given one rank, the middle of the innermost main path is the bottom, and the
edges from the bottom up to the outermost merge are drawn against the flow
(`Edge.back`), with the rest of the block holding that merge, so Graphviz
puts the decoder's levels above one another on the way back up; a short head
after the outermost merge (a 1x1 conv and the output) continues along its row.
Nothing depends on the spec's names.
"""

from __future__ import annotations

import itertools
import math
import re

import networkx as nx

__all__ = ["shape_u"]

_TAIL = 3  # at most this many items after the outermost merge are drawn in its row


def shape_u(view) -> None:
    """Fill `view.ranks` and mark the rising edges, when the view is a U."""
    dag = nx.DiGraph()
    dag.add_nodes_from(i.key for i in view.items)
    dag.add_edges_from((e.src, e.dst) for e in view.edges)
    if not nx.is_directed_acyclic_graph(dag):
        return
    order = {k: i for i, k in enumerate(nx.lexicographical_topological_sort(dag))}
    nest = _nested(_chains(view), dag, order)
    shapes = {i.key: i.shape for i in view.items}
    if len(nest) < 2 or not _shrinking([shapes[c[0]] for c in nest]):
        return
    fork, *_, merge = nest[-1]
    inner = set(nest[-1][1:-1])
    between = (nx.descendants(dag, fork) & nx.ancestors(dag, merge)) - inner
    path = _longest(dag.subgraph(between | {fork, merge}), order)
    bottom = path[len(path) // 2]
    top = nest[0][-1]
    later = nx.descendants(dag, bottom)
    rising = ({bottom, top} | later) & (nx.ancestors(dag, top) | {top})
    where = {i.key: i.cluster for i in view.items}
    if where[top]:  # the block holding the outermost merge rises as a whole
        rising |= {k for k in later if where[k][: len(where[top])] == where[top]}
    view.ranks = [list(c) for c in nest]
    tail = sorted(nx.descendants(dag, top) - rising, key=order.__getitem__)
    if 0 < len(tail) <= _TAIL and all(dag.has_edge(a, b) for a, b in itertools.pairwise([top, *tail])):
        view.ranks.append([top, *tail])  # a short head after the top merge: along the top
    for e in view.edges:
        e.back = e.src in rising and e.dst in rising


def undo(view) -> None:
    """Draw the view straight again (when it must be wrapped after all)."""
    view.ranks = []
    for e in view.edges:
        e.back = False


def _chains(view) -> list[tuple[str, ...]]:
    """Each skip connection as (fork, items on the skip..., merge)."""
    ins: dict[str, list] = {}
    outs: dict[str, list] = {}
    for e in view.edges:
        ins.setdefault(e.dst, []).append(e)
        outs.setdefault(e.src, []).append(e)

    def passes(k: str) -> bool:  # an item the skip runs through
        return len(ins.get(k, ())) == 1 and ins[k][0].skip and len(outs.get(k, ())) == 1 and outs[k][0].skip

    chains = []
    for e in view.edges:
        if not e.skip or passes(e.src):
            continue
        chain = [e.src, e.dst]
        while passes(chain[-1]):
            chain.append(outs[chain[-1]][0].dst)
        chains.append(tuple(chain))
    return list(dict.fromkeys(chains))


def _nested(chains: list[tuple[str, ...]], dag: nx.DiGraph, order: dict) -> list[tuple[str, ...]]:
    """The longest sequence of skips, each inside the previous one (outermost first)."""
    chains = sorted(chains, key=lambda c: (order[c[0]], -order[c[-1]]))
    after = {k: nx.descendants(dag, k) for c in chains for k in (c[0], c[-1])}

    def inside(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
        return inner[0] in after[outer[0]] and outer[-1] in after[inner[-1]]

    best: list[list[tuple[str, ...]]] = []
    for i, c in enumerate(chains):
        outer = [best[j] for j in range(i) if inside(c, chains[j])]
        best.append(max(outer, key=len, default=[]) + [c])
    return max(best, key=len, default=[])


def _shrinking(shapes: list[str]) -> bool:
    """Each fork's tensor is smaller than the previous one (when sizes are numbers)."""
    sizes = [_size(s) for s in shapes]
    if None in sizes:
        return len(set(shapes)) == len(shapes)
    return all(a > b for a, b in itertools.pairwise(sizes))


def _size(shape: str) -> int | None:
    dims = shape.split("x")
    return math.prod(int(d) for d in dims) if all(re.fullmatch(r"\d+", d) for d in dims) else None


def _longest(dag: nx.DiGraph, order: dict) -> list[str]:
    """The longest path through a DAG, ties broken by source order."""
    best: dict[str, tuple[int, list[str]]] = {}
    for k in sorted(dag.nodes, key=order.__getitem__):
        preds = [best[p] for p in sorted(dag.predecessors(k), key=order.__getitem__)]
        length, path = max(preds, key=lambda t: t[0], default=(0, []))
        best[k] = (length + 1, path + [k])
    return max(best.values(), key=lambda t: t[0])[1]
