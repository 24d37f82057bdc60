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
"""

from __future__ import annotations

from collections import defaultdict

from modelc.ir import Graph

__all__ = ["Folding", "fold_runs", "signature"]

Path = tuple[str, ...]


class Folding:
    """Runs of identical sibling containers, keyed by their first member."""

    def __init__(self, runs: dict[Path, list[Path]] | None = None,
                 subtree: dict[Path, list[int]] | None = None):  # fmt: skip
        self.runs = runs or {}
        self.rep = {m: first for first, ms in self.runs.items() for m in ms}
        self.copy = {m: (first, i) for first, ms in self.runs.items() for i, m in enumerate(ms)}
        self.subtree = subtree

    def shown_path(self, path: Path) -> Path:
        """`path` with every hidden copy replaced by its run's representative."""
        i = 1
        while i <= len(path):
            first = self.rep.get(path[:i])
            if first is not None and first != path[:i]:
                path = first + path[i:]
            i += 1
        return path

    def count(self, path: Path) -> int:
        """How many copies a container (or something drawn in it) stands for."""
        n = 1
        for i in range(1, len(path) + 1):
            n *= len(self.runs.get(path[:i], ())) or 1
        return n

    def shown_name(self, path: Path) -> str:
        members = self.runs.get(path, ())
        name = ".".join(path)
        if len(members) > 1:
            return f"{name}\u2013{members[-1][-1]}"
        return name

    def members(self, graph: Graph, path: Path) -> list[int]:
        """The IR nodes of one copy of the container at `path`, in source order."""
        if self.subtree is None:
            self.subtree = subtrees(graph)
        return self.subtree.get(path, [])

    def between_copies(self, a: Path, b: Path) -> bool:
        """Whether scopes `a` and `b` lie in different copies of one run."""
        for i in range(1, min(len(a), len(b)) + 1):
            ca, cb = self.copy.get(a[:i]), self.copy.get(b[:i])
            if ca and cb and ca[0] == cb[0] and ca[1] != cb[1]:
                return True
            if a[:i] != b[:i]:
                return False
        return False


def subtrees(graph: Graph) -> dict[Path, list[int]]:
    """IR nodes under each container path (the node's own scope and its ancestors)."""
    out: dict[Path, list[int]] = defaultdict(list)
    for n in sorted(graph.nodes()):
        scope = graph.node(n).scope
        for i in range(len(scope) + 1):
            out[scope[:i]].append(n)
    return dict(out)


def fold_runs(graph: Graph, is_open: set[Path]) -> Folding:
    sub = subtrees(graph)
    runs: dict[Path, list[Path]] = {}
    stack: list[Path] = [()]
    while stack:
        path = stack.pop()
        kids = _children(graph, path, sub)
        if graph.containers[path].kind == "seq":
            for run in _runs(graph, kids, sub):
                runs[run[0]] = run
        hidden = {m for r in runs.values() for m in r[1:]}
        stack.extend(k for k in reversed(kids) if k in is_open and k not in hidden)
    return Folding(runs, sub)


def _children(graph: Graph, path: Path, sub: dict[Path, list[int]]) -> list[Path]:
    kids = [p for p in graph.containers if len(p) == len(path) + 1 and p[: len(path)] == path]
    return sorted((k for k in kids if sub.get(k)), key=lambda k: sub[k][0])


def _runs(graph: Graph, kids: list[Path], sub: dict[Path, list[int]]) -> list[list[Path]]:
    out: list[list[Path]] = []
    run: list[Path] = []
    sigs = {k: signature(graph, k, sub) for k in kids}
    for k in kids:
        if run and sigs[k] == sigs[run[-1]] and _chained(graph, run[-1], k, sub):
            run.append(k)
            continue
        if len(run) > 1:
            out.append(run)
        run = [k]
    if len(run) > 1:
        out.append(run)
    return out


def _chained(graph: Graph, a: Path, b: Path, sub: dict[Path, list[int]]) -> bool:
    """b reads a's outputs and values a reads too (a Transformer decoder's memory);
    a's outputs are used only by b."""
    in_a, in_b = set(sub[a]), set(sub[b])
    shared = {u for n in sub[a] for u, _ in graph.inputs_of(n) if u not in in_a}
    if not any(u in in_a for n in sub[b] for u, _ in graph.inputs_of(n)):
        return False
    for n in sub[b]:
        if any(u not in in_b and u not in in_a and u not in shared for u, _ in graph.inputs_of(n)):
            return False
    for n in sub[a]:
        if any(v not in in_a and v not in in_b for v, _, _ in graph.users(n)):
            return False
    return not any(ref[0] in in_a for _, ref in graph.outputs)


def signature(graph: Graph, path: Path, sub: dict[Path, list[int]] | None = None) -> tuple:
    """The structure of a container, independent of its position and name."""
    sub = sub if sub is not None else subtrees(graph)
    nodes = sub.get(path, [])
    index = {n: i for i, n in enumerate(nodes)}
    outside: dict[int, int] = {}
    rows = []
    for n in nodes:
        node = graph.node(n)
        ins = tuple(
            (index[u], out) if u in index else ("ext", outside.setdefault(u, len(outside)), out)
            for u, out in graph.inputs_of(n)
        )
        types = tuple(str(t) for t in node.types)
        rows.append((node.scope[len(path):], node.local, node.op, node.attrs, types, ins))
    kids = tuple(sorted((p[len(path):], c.kind, c.name) for p, c in graph.containers.items()
                        if len(p) > len(path) and p[: len(path)] == path))  # fmt: skip
    return (graph.containers[path].kind, graph.containers[path].name, kids, tuple(rows))
