"""Keeping a U-Net's U: encoder and decoder levels drawn level with each other.

NOTE: [The U]
An encoder-decoder with skips (U-Net) is read as a U: the contracting path down
one side, the expanding path up the other, each skip across. The structure
says when to draw it so: skip connections (see `render/skip.py`) that *nest*
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

from modelc.render.skip import Dag, Reach

__all__ = ["shape_u"]

_TAIL = 3  # at most this many items after the outermost merge are drawn in its row


def shape_u(view, dag: Dag | None = None) -> None:
    """Fill `view.ranks` and mark the rising edges, when the view is a U."""
    dag = Dag(view) if dag is None else dag
    if not dag.acyclic:
        return
    at = dag.index
    nest = _nested(_chains(view), dag)
    shapes = {i.key: i.shape for i in view.items}
    if len(nest) < 2 or not _shrinking([shapes[c[0]] for c in nest]):
        return
    fork, merge = at[nest[-1][0]], at[nest[-1][-1]]
    inner = {at[k] for k in nest[-1][1:-1]}
    between = (dag.descendants(fork) & dag.ancestors(merge)) - inner
    path = _longest(dag, between | {fork, merge})
    bottom = path[len(path) // 2]
    top = at[nest[0][-1]]
    later = dag.descendants(bottom)
    rising = ({bottom, top} | later) & (dag.ancestors(top) | {top})
    where = {i.key: i.cluster for i in view.items}
    held = where[dag.keys[top]]
    if held:  # the block holding the outermost merge rises as a whole
        rising |= {k for k in later if where[dag.keys[k]][: len(held)] == held}
    view.ranks = [list(c) for c in nest]
    tail = sorted(dag.descendants(top) - rising)
    if 0 < len(tail) <= _TAIL and all(b in dag.succ[a] for a, b in itertools.pairwise([top, *tail])):
        # a short head after the top merge: along the top
        view.ranks.append([dag.keys[k] for k in (top, *tail)])
    rising_keys = {dag.keys[k] for k in rising}
    for e in view.edges:
        e.back = e.src in rising_keys and e.dst in rising_keys


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


def _nested(chains: list[tuple[str, ...]], dag: Dag) -> list[tuple[str, ...]]:
    """The longest sequence of skips, each inside the previous one (outermost first);
    among equally long ones, the first found (chains taken by fork, then last merge).

    A chain is inside another when its fork comes after the other's fork and its merge
    before the other's merge (strictly, along paths), so the other's ends lie outside
    its ends in rank order too. Each chain extends the longest sequence that ends in a
    chain it is inside (the first such chain, of the longest sequences): the chains
    before it are kept by the length of their sequences, longest first, and within
    one length in order, so the first one it lies inside is the one; chains that end
    before this fork can hold no later chain and are dropped. Paths are checked by
    searches from the outer chain's ends, kept for the next chain."""
    at = dag.index
    chains = sorted(chains, key=lambda c: (at[c[0]], -at[c[-1]]))
    after: dict[int, Reach] = {}  # an outer fork's descendants
    before: dict[int, Reach] = {}  # an outer merge's ancestors

    def inside(inner: tuple[str, ...], outer: tuple[str, ...]) -> bool:
        fork, merge = at[outer[0]], at[outer[-1]]
        if fork not in after:
            after[fork] = Reach(dag, fork, forward=True)
        if merge not in before:
            before[merge] = Reach(dag, merge, forward=False)
        return at[inner[0]] in after[fork] and at[inner[-1]] in before[merge]

    best: list[list[tuple[str, ...]]] = []
    by_length: dict[int, dict[int, int]] = {}  # length -> {chain index: merge rank}, in order
    same_fork: list[int] = []  # chains with this chain's fork: inside none of each other
    for i, c in enumerate(chains):
        if same_fork and chains[same_fork[0]][0] != c[0]:
            for j in same_fork:
                by_length.setdefault(len(best[j]), {})[j] = at[chains[j][-1]]
            same_fork = []
        outer = _first_outer(c, chains, by_length, at, inside)
        best.append((best[outer] if outer is not None else []) + [c])
        same_fork.append(i)
    return max(best, key=len, default=[])


def _first_outer(c: tuple[str, ...], chains: list, by_length: dict[int, dict[int, int]], at: dict,
                 inside) -> int | None:  # fmt: skip
    """The first chain (in order) of the longest sequence that `c` is inside, or None;
    drops the chains that end before `c`'s fork."""
    fork, merge = at[c[0]], at[c[-1]]
    for length in sorted(by_length, reverse=True):
        group, found, gone = by_length[length], None, []
        for j, end in group.items():
            if end <= fork:
                gone.append(j)
            elif end > merge and inside(c, chains[j]):
                found = j
                break
        for j in gone:
            del group[j]
        if found is not None:
            return found
    return None


def _shrinking(shapes: list[str]) -> bool:
    """Each fork's tensor is smaller than the previous one (when sizes are numbers)."""
    sizes = [_size(s) for s in shapes]
    if None in sizes:
        return len(set(shapes)) == len(shapes)
    return all(a > b for a, b in itertools.pairwise(sizes))


def _size(shape: str) -> int | None:
    dims = shape.split("x")
    return math.prod(int(d) for d in dims) if all(re.fullmatch(r"\d+", d) for d in dims) else None


def _longest(dag: Dag, nodes: set[int]) -> list[int]:
    """The longest path through the sub-DAG on `nodes`, ties broken by rank (the first
    longest path found, each step from the lowest-ranked best predecessor)."""
    best: dict[int, tuple[int, int | None]] = {}  # node -> (length, predecessor on the path)
    for k in sorted(nodes):
        length, via = 0, None
        for p in dag.pred[k]:  # in rank order
            if p in best and best[p][0] > length:
                length, via = best[p][0], p
        best[k] = (length + 1, via)
    end = max(best, key=lambda k: best[k][0])
    path = []
    while end is not None:
        path.append(end)
        end = best[end][1]
    return path[::-1]
