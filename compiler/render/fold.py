"""Folding repeated blocks: a run of identical instances drawn once with `x N`.

NOTE: [What folds]
Only what the spec repeated can fold: the child containers of an opened
sequence (`repeat`, `for`, `( ... )`), taken in order. Consecutive children
fold into one run when they are *identical* — same structure, ops, attributes
and output shapes, compared through :func:`signature` — and form a chain: each
copy reads the previous copy's outputs (and values every copy reads, such as a
Transformer decoder's memory), and only the last copy's outputs are used
outside the run. The first copy of a run (its *representative*) is
drawn; the others are hidden, and their nodes are drawn as the representative's.
So ResNet-50 and ResNet-152 fold to the same picture with different counts.

NOTE: [Periodic runs]
Some stages repeat a *group* of different blocks: Swin's blocks alternate
windows shifted by 0 and by half a window, so no two consecutive copies are
identical, but consecutive *pairs* are. When no run of identical copies starts
at a child, a run of identical periods (2 to 4 children, at least twice) is
looked for: its first period is drawn, inside a cluster of its own
(`features.5.0–5 · (SwinBlock, SwinBlock) x 3`), and copy `i` is drawn as
member `i mod period` of the first period. A plain run is preferred where both
fit, so a ResNet stage folds as before.
"""

from __future__ import annotations

import itertools
from collections import defaultdict

from modelc.ir import Graph

__all__ = ["Folding", "fold_runs", "run_name", "signature"]

Path = tuple[str, ...]
_PERIODS = (2, 3, 4)  # group sizes looked for in periodic runs


class Folding:
    """Runs of identical sibling containers (or of identical groups of them), keyed by
    their first member; `period[first]` is the group size (1 for a plain run)."""

    def __init__(self, runs: dict[Path, list[Path]] | None = None,
                 subtree: dict[Path, list[int]] | None = None,
                 period: dict[Path, int] | None = None):  # fmt: skip
        self.runs = runs or {}
        self.period = {first: (period or {}).get(first, 1) for first in self.runs}
        self.rep: dict[Path, Path] = {}  # member -> the member drawn for it
        self.copy: dict[Path, tuple[Path, int]] = {}  # member -> (run, which repetition)
        self.times: dict[Path, int] = {}  # drawn member -> copies it stands for
        self.group: dict[Path, Path] = {}  # drawn member of a periodic run -> its group's path
        self.groups: dict[Path, tuple[Path, list[Path]]] = {}  # group path -> (run's first, drawn)
        for first, ms in self.runs.items():
            p = self.period[first]
            for i, m in enumerate(ms):
                self.rep[m], self.copy[m] = ms[i % p], (first, i // p)
            for m in ms[:p]:
                self.times[m] = len(ms) // p
            if p > 1:
                group = first[:-1] + (run_name(first, ms[-1]),)
                self.groups[group] = (first, ms[:p])
                self.group.update((m, group) for m in ms[:p])
        self.subtree = subtree
        # a group's path among the displayed clusters -> the group
        self.shown_groups = {self.display(ms[0])[:-1]: g for g, (_, ms) in self.groups.items()}

    def shown_path(self, path: Path) -> Path:
        """`path` with every hidden copy replaced by the member drawn for it."""
        i = 1
        while i <= len(path):
            rep = self.rep.get(path[:i])
            if rep is not None and rep != path[:i]:
                path = rep + path[i:]
            i += 1
        return path

    def display(self, path: Path) -> Path:
        """A shown path as clusters nest in the drawing: with the group of a periodic
        run inserted before its drawn members (`features`, `5`, `0–5`, `1`)."""
        out: list[str] = []
        for i in range(1, len(path) + 1):
            group = self.group.get(path[:i])
            if group is not None:
                out.append(group[-1])
            out.append(path[i - 1])
        return tuple(out)

    def real(self, display: Path) -> Path:
        """The container path a displayed cluster path stands for (groups left out)."""
        return tuple(e for i, e in enumerate(display) if display[: i + 1] not in self.shown_groups)

    def count(self, path: Path) -> int:
        """How many copies a container (or something drawn in it) stands for."""
        n = 1
        for i in range(1, len(path) + 1):
            n *= self.times.get(path[:i], 1)
        return n

    def own(self, path: Path) -> int:
        """Copies of a container a plain run folds into it (its `x N` badge), else 1."""
        return len(self.runs[path]) if self.period.get(path) == 1 else 1

    def shown_name(self, path: Path) -> str:
        members = self.runs.get(path, ())
        if len(members) > 1 and self.period.get(path) == 1:
            return ".".join(path[:-1] + (run_name(path, members[-1]),))
        return ".".join(path)

    def members(self, graph: Graph, path: Path) -> list[int]:
        """The IR nodes of one copy of the container at `path`, in source order."""
        if self.subtree is None:
            self.subtree = subtrees(graph)
        return self.subtree.get(path, [])

    def between_copies(self, a: Path, b: Path) -> bool:
        """Whether scopes `a` and `b` lie in different repetitions of one run (looked up
        through the drawn copies, so runs inside a hidden copy count too)."""
        pa: Path = ()
        for i in range(min(len(a), len(b))):
            ka, kb = pa + (a[i],), pa + (b[i],)
            ca, cb = self.copy.get(ka), self.copy.get(kb)
            if ca and cb and ca[0] == cb[0] and ca[1] != cb[1]:
                return True
            if ka != kb:
                return False
            pa = self.shown_path(ka)
        return False


def run_name(first: Path, last: Path) -> str:
    """`0–5` for copies `0` ... `5`; `encoder_layer_0–11` when their names share a prefix."""
    a, b = first[-1], last[-1]
    common = 0
    while common < min(len(a), len(b)) and a[common] == b[common] and not a[common].isdigit():
        common += 1
    return f"{a}\u2013{b[common:]}"


def subtrees(graph: Graph) -> dict[Path, list[int]]:
    """IR nodes under each container path (the node's own scope and its ancestors)."""
    out: dict[Path, list[int]] = defaultdict(list)
    for n in sorted(graph.nodes()):
        scope = graph.node(n).scope
        for i in range(len(scope) + 1):
            out[scope[:i]].append(n)
    return dict(out)


def fold_runs(graph: Graph, is_open: set[Path]) -> Folding:
    """The runs of every opened sequence that is not itself a hidden copy. Each
    container is visited once, with indexes of the container tree made once, so the
    work is linear in the graph (times the nesting depth)."""
    sub = subtrees(graph)
    inner = _descendants(graph)
    ins = _Memo(graph.inputs_of)  # each node's inputs, asked for by several steps
    runs: dict[Path, list[Path]] = {}
    period: dict[Path, int] = {}
    stack: list[Path] = [()]
    while stack:
        path = stack.pop()
        kids = _children(inner, path, sub)
        hidden: set[Path] = set()  # only this sequence's runs hide its children
        if graph.containers[path].kind == "seq":
            for run, p in _runs(graph, kids, sub, inner, ins):
                runs[run[0]], period[run[0]] = run, p
                hidden.update(run[p:])
        stack.extend(k for k in reversed(kids) if k in is_open and k not in hidden)
    return Folding(runs, sub, period)


class _Memo(dict):
    """`f(key)`, computed when first asked for and kept."""

    def __init__(self, f):
        super().__init__()
        self.f = f

    def __missing__(self, key):
        value = self[key] = self.f(key)
        return value


def _descendants(graph: Graph) -> dict[Path, list[Path]]:
    """Every container's descendant containers (in `graph.containers` order)."""
    out: dict[Path, list[Path]] = {p: [] for p in graph.containers}
    for p in graph.containers:
        for i in range(len(p)):
            if p[:i] in out:
                out[p[:i]].append(p)
    return out


def _children(inner: dict[Path, list[Path]], path: Path, sub: dict[Path, list[int]]) -> list[Path]:
    kids = [p for p in inner[path] if len(p) == len(path) + 1]
    return sorted((k for k in kids if sub.get(k)), key=lambda k: sub[k][0])


def _runs(graph: Graph, kids: list[Path], sub: dict[Path, list[int]],
          inner: dict[Path, list[Path]] | None = None, ins=None) -> list[tuple[list[Path], int]]:  # fmt: skip
    """Maximal runs, left to right: identical copies (period 1), else identical groups.
    `ins` maps a node to its inputs (`graph.inputs_of`, kept)."""
    ins = _Memo(graph.inputs_of) if ins is None else ins
    sigs = [signature(graph, k, sub, inner, ins) for k in kids]
    chained = [_chained(graph, a, b, sub, ins) for a, b in itertools.pairwise(kids)]
    out: list[tuple[list[Path], int]] = []
    i = 0
    while i < len(kids):
        for p in (1, *_PERIODS):
            n = _repeats(sigs, chained, i, p)
            if n >= 2:
                out.append((kids[i : i + n * p], p))
                i += n * p
                break
        else:
            i += 1
    return out


def _repeats(sigs: list, chained: list[bool], start: int, p: int) -> int:
    """How many times the group `sigs[start:start+p]` repeats from `start`, each child
    reading the previous one's outputs (so the run is one chain)."""
    if start + p > len(sigs) or not all(chained[start : start + p - 1]):
        return 0
    n = 1
    while start + (n + 1) * p <= len(sigs):
        nxt = range(start + n * p, start + (n + 1) * p)
        if any(sigs[j] != sigs[j - p] for j in nxt) or not all(chained[j - 1] for j in nxt):
            break
        n += 1
    return n


def _chained(graph: Graph, a: Path, b: Path, sub: dict[Path, list[int]], ins) -> bool:
    """b reads a's outputs and values a reads too (a Transformer decoder's memory);
    a's outputs are used only by b. `ins[n]` is `graph.inputs_of(n)`."""
    in_a, in_b = set(sub[a]), set(sub[b])
    shared = {u for n in sub[a] for u, _ in ins[n] if u not in in_a}
    if not any(u in in_a for n in sub[b] for u, _ in ins[n]):
        return False
    for n in sub[b]:
        if any(u not in in_b and u not in in_a and u not in shared for u, _ in ins[n]):
            return False
    for n in sub[a]:
        if any(v not in in_a and v not in in_b for v, _, _ in graph.users(n)):
            return False
    return not any(ref[0] in in_a for _, ref in graph.outputs)


def signature(graph: Graph, path: Path, sub: dict[Path, list[int]] | None = None,
              inner: dict[Path, list[Path]] | None = None, ins=None) -> tuple:  # fmt: skip
    """The structure of a container, independent of its position and name. `sub`,
    `inner` and `ins` are the graph's `subtrees`, container `_descendants` and node
    inputs (`graph.inputs_of`), made when None: pass them when asking for many."""
    sub = sub if sub is not None else subtrees(graph)
    inner = inner if inner is not None else _descendants(graph)
    ins = _Memo(graph.inputs_of) if ins is None else ins
    nodes = sub.get(path, [])
    index = {n: i for i, n in enumerate(nodes)}
    outside: dict[int, int] = {}
    rows = []
    for n in nodes:
        node = graph.node(n)
        refs = tuple(
            (index[u], out) if u in index else ("ext", outside.setdefault(u, len(outside)), out)
            for u, out in ins[n]
        )
        types = tuple(str(t) for t in node.types)
        rows.append((node.scope[len(path):], node.local, node.op, node.attrs, types, refs))
    kids = tuple(sorted((p[len(path):], graph.containers[p].kind, graph.containers[p].name)
                        for p in inner[path]))  # fmt: skip
    return (graph.containers[path].kind, graph.containers[path].name, kids, tuple(rows))
