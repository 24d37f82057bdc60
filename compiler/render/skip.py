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

NOTE: [Linear time]
A view may hold 100,000 items, so nothing here visits the whole graph per merge.
Items are numbered by their rank in the lexicographic topological order (a
:class:`Dag`), and every search walks ranks in order with a heap, so it can stop
as soon as the answer is known: the fork is found by walking back from the
merge's inputs, highest rank first, until an item reaches all of them (or none
can); longest paths from a fork are explored up to the last input's rank and
kept, so merges sharing a fork (every decoder layer reading the encoder's
output) share one exploration. The work per merge is the part of the graph
between its fork and its inputs, except where one input comes from far back
through a single item (a conditioning input or an early value read by every
layer): a probe then finds the fork from that side (`_probe`), with a forward
search kept for the next merge. Graphs with many merges whose fork lies far
back on every side still cost the distance to the fork per merge; no spec
here has them. Nothing changes what is found: the same forks, lengths and skips
as a search of the whole graph.
"""

from __future__ import annotations

import heapq
from collections import defaultdict
from functools import reduce
from operator import and_

__all__ = ["Dag", "Longest", "Reach", "common_ancestor", "mark_skips"]

_SHORTER = 2  # a skip's path is at least this much shorter than the main one ...
_SHORT = 2  # ... and at most this long, or a third of the main one (Inception's
# parallel branches are not skips)
_ORIGIN_BITS = 60  # items without inputs are told apart by one bit of this many
_PATIENCE = 32  # items walked back before the first probe for a shortcut


class Dag:
    """A view's items as integers: `keys[i]` is the item of rank i in the lexicographic
    topological order of the items (by `key(item)`; by item key when None), the same
    order as networkx's `lexicographical_topological_sort` of the view's edges.
    `succ[i]` and `pred[i]` are the distinct neighbours. `acyclic` is False (and the
    ranks are partial) when the edges have a cycle."""

    def __init__(self, view, key=None):
        names = [i.key for i in view.items]
        ids = {k: n for n, k in enumerate(names)}
        for e in view.edges:  # an edge's ends are items; any that is not goes last
            for k in (e.src, e.dst):
                if k not in ids:
                    ids[k] = len(names)
                    names.append(k)
        pairs = {(ids[e.src], ids[e.dst]) for e in view.edges}
        succ: list[list[int]] = [[] for _ in names]
        for a, b in pairs:
            succ[a].append(b)
        keys = [key(i) for i in view.items] + names[len(view.items) :] if key else names
        order = _topological(keys, succ)
        self.acyclic = len(order) == len(names)
        self.keys = [names[n] for n in order]
        self.index = {k: r for r, k in enumerate(self.keys)}
        rank = [0] * len(names)
        for r, n in enumerate(order):
            rank[n] = r
        self.succ = [sorted([rank[m] for m in succ[n]]) for n in order]
        self.pred: list[list[int]] = [[] for _ in order]
        for r, out in enumerate(self.succ):
            for m in out:
                self.pred[m].append(r)
        self._origin: list[int] | None = None

    def __len__(self) -> int:
        return len(self.keys)

    def origin(self) -> list[int]:
        """Per item, a bit set of the items without inputs it descends from (each such
        item one bit of `_ORIGIN_BITS`, shared when there are more): two items whose
        sets are disjoint have no common ancestor."""
        if self._origin is None:
            out, roots = [0] * len(self), 0
            for r, ps in enumerate(self.pred):
                if ps:
                    out[r] = reduce(lambda a, p: a | out[p], ps, 0)
                else:
                    out[r], roots = 1 << (roots % _ORIGIN_BITS), roots + 1
            self._origin = out
        return self._origin

    def descendants(self, r: int) -> set[int]:
        return _closure(r, self.succ)

    def ancestors(self, r: int) -> set[int]:
        return _closure(r, self.pred)


def _topological(key: list, succ: list[list[int]]) -> list[int]:
    """Kahn's algorithm taking the ready node of smallest (key, index) first; shorter
    than the node count when there is a cycle. Nodes are compared by their place in
    that order, found by one sort, so the heap holds integers."""
    by_key = sorted(range(len(succ)), key=lambda n: (key[n], n))
    place = [0] * len(succ)
    for i, n in enumerate(by_key):
        place[n] = i
    indegree = [0] * len(succ)
    for out in succ:
        for m in out:
            indegree[m] += 1
    ready = [place[n] for n in range(len(succ)) if indegree[n] == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        n = by_key[heapq.heappop(ready)]
        order.append(n)
        for m in succ[n]:
            indegree[m] -= 1
            if indegree[m] == 0:
                heapq.heappush(ready, place[m])
    return order


def _closure(start: int, step: list[list[int]]) -> set[int]:
    """Everything reachable from `start` through `step`, `start` excluded."""
    seen: set[int] = set()
    todo = [start]
    while todo:
        for m in step[todo.pop()]:
            if m not in seen:
                seen.add(m)
                todo.append(m)
    return seen


class Reach:
    """Whether items are reachable from `start`, forward (its descendants) or backward
    (its ancestors), `start` excluded. Explored lazily in rank order (a path forward
    only rises in rank), only as far as the items asked about, and kept."""

    def __init__(self, dag: Dag, start: int, forward: bool = True):
        self.step = dag.succ if forward else dag.pred
        self.sign = 1 if forward else -1
        self.seen: set[int] = set()
        self.frontier: list[int] = []
        self._visit(start)

    def _visit(self, r: int) -> None:
        for m in self.step[r]:
            if m not in self.seen:
                self.seen.add(m)
                heapq.heappush(self.frontier, self.sign * m)

    def __contains__(self, r: int) -> bool:
        bound = self.sign * r
        while self.frontier and self.frontier[0] < bound:
            self._visit(self.sign * heapq.heappop(self.frontier))
        return r in self.seen


class Longest:
    """Longest path lengths (in edges) from forks, explored lazily in rank order up to
    the ranks asked for, and kept per fork: `lengths(fork, stop)` holds every
    descendant of `fork` up to rank `stop` (and `fork` itself, at 0)."""

    def __init__(self, dag: Dag):
        self.dag = dag
        self.state: dict[int, tuple[dict[int, int], list[int]]] = {}

    def lengths(self, fork: int, stop: int) -> dict[int, int]:
        state = self.state.get(fork)
        if state is None:
            state = self.state[fork] = ({fork: 0}, list(self.dag.succ[fork]))
        dist, frontier = state
        pred, succ = self.dag.pred, self.dag.succ
        while frontier and frontier[0] <= stop:
            r = heapq.heappop(frontier)
            if r in dist:
                continue
            dist[r] = 1 + max(dist[p] for p in pred[r] if p in dist)
            for m in succ[r]:
                heapq.heappush(frontier, m)
        return dist


def common_ancestor(dag: Dag, sources: list[int], after: dict[int, Reach] | None = None) -> int | None:
    """The latest (highest-rank) item that is an ancestor of, or one of, every source
    (distinct ranks), or None. Walks back from the sources, highest rank first, with
    the set of sources each item reaches: the first item popped that reaches all is
    the answer. It stops early when the lowest source reaches all (nothing later can
    be an ancestor of it), when some source's set dies out (no common ancestor), or
    when a probe finds the answer (`_probe`; `after` keeps the forward searches it
    makes, for the next call)."""
    if reduce(and_, (dag.origin()[s] for s in sources)) == 0:
        return None
    after = {} if after is None else after
    full, low = (1 << len(sources)) - 1, min(sources)
    reach = {s: 1 << i for i, s in enumerate(sources)}
    alive = [1] * len(sources)  # items in the heap carrying each source's bit
    heap = [-s for s in sources]
    heapq.heapify(heap)
    popped, probe = 0, _PATIENCE
    while heap:
        r = -heapq.heappop(heap)
        bits = reach[r]
        if bits == full:
            return r
        _count(alive, bits, -1)
        for p in dag.pred[r]:
            old = reach.get(p)
            if old is None:
                heapq.heappush(heap, -p)
                old = 0
            reach[p] = old | bits
            _count(alive, bits & ~old, 1)
            if p == low and reach[p] == full:
                return p
        if not all(alive):
            return None
        popped += 1
        if popped == probe:  # a long walk: look for a shortcut now and then
            probe *= 2
            found = _probe(dag, sources, [(-h, reach[-h]) for h in heap], alive, after)
            if found is not None:
                return found
    return None


def _probe(dag: Dag, sources: list[int], heap: list[tuple[int, int]], alive: list[int],
           after: dict[int, Reach]) -> int | None:  # fmt: skip
    """The answer of `common_ancestor`, when one item `u` alone in the heap carries some
    source's bit and `u` is an ancestor (or one) of every source. Every item that can
    still reach all sources carries that bit, so it is `u` or an ancestor of `u`: if `u`
    reaches all sources, nothing ranks above it. If not, and `u` has one input `p`, the
    same holds for `p` (all of `u`'s ancestors are `p` or its ancestors), and so on.
    This is what a decoder's memory or a conditioning input read by every layer needs:
    the walk back from the main branch would cross the whole network to find it."""
    for i, n in enumerate(alive):
        if n != 1:
            continue
        u = next(r for r, bits in heap if bits >> i & 1)
        while True:
            if u not in after:
                after[u] = Reach(dag, u, forward=True)
            if all(s == u or s in after[u] for s in sources):
                return u
            if len(dag.pred[u]) != 1:
                break
            u = dag.pred[u][0]
    return None


def _count(alive: list[int], bits: int, delta: int) -> None:
    i = 0
    while bits:
        if bits & 1:
            alive[i] += delta
        bits >>= 1
        i += 1


def mark_skips(view, dag: Dag | None = None) -> None:
    dag = Dag(view) if dag is None else dag
    if not dag.acyclic:
        return
    preds: dict[str, list] = defaultdict(list)
    succs: dict[str, list] = defaultdict(list)
    for e in view.edges:
        preds[e.dst].append(e)
        succs[e.src].append(e)
    longest = Longest(dag)
    after: dict[int, Reach] = {}  # forward searches made while looking for forks
    for item in view.items:
        merges = item.kind in ("block", "seq") or item.family == "tensor"
        if merges and len({e.src for e in preds[item.key]}) > 1:
            _mark(item.key, dag, (longest, after), preds, succs)


def _mark(merge: str, dag: Dag, kept: tuple[Longest, dict], preds: dict, succs: dict) -> None:
    """Mark the skips into `merge`; `kept` holds the searches shared between merges."""
    longest, after = kept
    ins = preds[merge]
    sources = list(dict.fromkeys(dag.index[e.src] for e in ins))
    fork = common_ancestor(dag, sources, after)
    if fork is None:
        return
    length = longest.lengths(fork, max(sources))
    main = max(length[s] for s in sources)
    for e in ins:
        n = length[dag.index[e.src]]
        if n <= main - _SHORTER and n <= max(_SHORT, main // 3):
            _mark_back(e, dag.keys[fork], preds, succs)


def _mark_back(edge, fork: str, preds: dict, succs: dict) -> None:
    edge.skip = True
    cur = edge.src
    while cur != fork and len(preds[cur]) == 1 and len(succs[cur]) == 1:
        edge = preds[cur][0]
        edge.skip = True
        cur = edge.src
