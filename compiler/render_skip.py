"""Finding skip connections in a view, so they can be drawn distinctly.

NOTE: [Skip connections]
A skip connection joins two paths that split earlier: it ends at a merge (an
`add`, `concat` or other tensor op with several inputs, such as a `center_crop`,
or a collapsed block with several inputs, such as a U-Net `Up` block). Ops that
compute with their inputs (a matmul's values, a cross-attention's memory) are
not merges: what they read is not a skip. For each merge we find the fork where its
inputs' paths split (the latest common ancestor of all inputs) and the longest
path from the fork to each input. The input with the longest path is the main
branch; an input whose path is short (at most two steps, or a third of the main
one) and at least two steps shorter is a skip, and so are the edges leading to
it back to the fork while they form a plain chain (one edge in, one out). The
parallel branches of an Inception module are of comparable length: no skips. A ResNet identity shortcut is one edge `x -> add`; a
projection shortcut is `x -> downsample.0 -> downsample.1 -> add`; a U-Net skip
is `enc1 -> concat`. This works on drawn items, so it holds at every zoom level.
"""

from __future__ import annotations

from collections import defaultdict

import networkx as nx

__all__ = ["mark_skips"]

_SHORTER = 2  # a skip's path is at least this much shorter than the main one ...
_SHORT = 2  # ... and at most this long, or a third of the main one (Inception's
# parallel branches are not skips)


def mark_skips(view) -> None:
    preds: dict[str, list] = defaultdict(list)
    succs: dict[str, list] = defaultdict(list)
    dag = nx.DiGraph()
    for item in view.items:
        dag.add_node(item.key)
    for e in view.edges:
        preds[e.dst].append(e)
        succs[e.src].append(e)
        dag.add_edge(e.src, e.dst)
    if not nx.is_directed_acyclic_graph(dag):
        return
    rank = {k: i for i, k in enumerate(nx.lexicographical_topological_sort(dag))}
    for item in view.items:
        merges = item.kind in ("block", "seq") or item.family == "tensor"
        if merges and len({e.src for e in preds[item.key]}) > 1:
            _mark(item.key, dag, rank, preds, succs)


def _mark(merge: str, dag: nx.DiGraph, rank: dict, preds: dict, succs: dict) -> None:
    ins = preds[merge]
    common = set.intersection(*({e.src} | nx.ancestors(dag, e.src) for e in ins))
    if not common:
        return
    fork = max(common, key=rank.__getitem__)
    length = _longest_from(fork, dag, rank, {e.src for e in ins})
    main = max(length.get(e.src, -1) for e in ins)
    for e in ins:
        n = length.get(e.src, main)
        if n <= main - _SHORTER and n <= max(_SHORT, main // 3):
            _mark_back(e, fork, preds, succs)


def _longest_from(fork: str, dag: nx.DiGraph, rank: dict, targets: set[str]) -> dict[str, int]:
    """Longest path length (in edges) from `fork` to each node up to the last target."""
    stop = max(rank[t] for t in targets)
    dist = {fork: 0}
    for node in sorted(nx.descendants(dag, fork), key=rank.__getitem__):
        if rank[node] > stop:
            break
        best = [dist[p] + 1 for p in dag.predecessors(node) if p in dist]
        if best:
            dist[node] = max(best)
    return dist


def _mark_back(edge, fork: str, preds: dict, succs: dict) -> None:
    edge.skip = True
    cur = edge.src
    while cur != fork and len(preds[cur]) == 1 and len(succs[cur]) == 1:
        edge = preds[cur][0]
        edge.skip = True
        cur = edge.src
