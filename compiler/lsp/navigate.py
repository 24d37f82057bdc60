"""Hover and go-to-definition, answered from an :class:`~modelc.lsp.analysis.Analysis`.

Hover finds what the cursor is on in the checked IR: every node and container remembers
the span of the spec text it came from (`compiler/ir.py`), so the smallest span around
the cursor names it. A step inside a block is one span for every instance of the block;
the hover lists the instances (grouped when their figures agree). A binding name stands
for the value of its statement: the IR item whose span ends last inside it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from modelc import ops
from modelc import syntax as S
from modelc.diagnostics import Span
from modelc.ir import Graph
from modelc.lsp.analysis import Analysis, Region
from modelc.summary import batch_env
from modelc.symbolic import Dim, subs

__all__ = ["Target", "definition", "enclosing_block", "hover", "word_at"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MAX_SHOWN = 4  # instances listed by name in a hover


@dataclass(frozen=True)
class Target:
    """Where a definition is: a file and a region in it."""

    path: str
    region: Region


@dataclass(frozen=True)
class _Item:
    """A node (`key` its id) or a container (`key` its path) of one graph, at `span`."""

    graph: Graph
    key: int | tuple[str, ...]
    span: Span
    ref: tuple[int, int] | None = None  # a block instance's input: the value fed in

    @property
    def size(self) -> tuple[int, int]:
        s = self.span
        return (s.end_line - s.line, (s.end_col - s.col) if s.end_line == s.line else 10**6)


def word_at(a: Analysis, line: int, col: int) -> tuple[str, int, int] | None:
    """The identifier under (line, col), with its start and end columns."""
    text = a.lines[line - 1] if 0 < line <= len(a.lines) else ""
    for m in _WORD.finditer(text):
        if m.start() + 1 <= col <= m.end() + 1:
            return m.group(), m.start() + 1, m.end() + 1
    return None


def enclosing_block(module: S.Module | None, line: int, col: int) -> S.BlockDef | None:
    for item in module.items if module else ():
        if isinstance(item, S.BlockDef) and _contains(item.span, line, col):
            return item
    return None


# ---- hover ------------------------------------------------------------------------------------
def hover(a: Analysis, line: int, col: int) -> str | None:
    """Markdown about what is under the cursor, or None."""
    found = word_at(a, line, col)
    parts: list[str] = []
    items: list[_Item] = []
    if found and _is_label(a, line, found[2]):
        line, col = _after_label(a, line, found[2])  # the step the label names
    elif found and not _is_call(a, line, found[2]):
        items = _binding_items(a, found[0], line, col)
    items = items or _items_at(a, line, col)
    word = found[0] if found else ""
    if word in ops.REGISTRY and not ops.REGISTRY[word].internal and _called(a, line, found):
        parts.append(op_doc(word))
    elif a.program is not None and word in a.program.blocks and _called(a, line, found):
        parts.append(f"```\n{_signature(a.program.blocks[word])}\n```")
    if items:
        parts.append(_figures(items))
    return "\n\n".join(parts) or None


def op_doc(name: str) -> str:
    """An op's documentation: what it does and its attributes."""
    op = ops.REGISTRY[name]
    out = [f"**{name}** ({op.family})", "", op.doc]
    if op.attrs:
        out += ["", "attributes:"]
        for attr in op.attrs:
            default = "" if attr.default is ops.base.REQUIRED else f" = {attr.default!r}"
            alias = f" (also {', '.join(attr.aliases)})" if attr.aliases else ""
            doc = f": {attr.doc}" if attr.doc else ""
            out.append(f"- `{attr.name}`: {attr.kind}{default}{alias}{doc}")
    return "\n".join(out)


def _signature(block: S.BlockDef) -> str:
    params = ", ".join(_written(p.span) for p in block.params)
    return f"{block.kind} {block.name}({params})"


def _written(span: Span) -> str:
    """The spec text of a one-line span."""
    text = span.source.line(span.line)
    return text[span.col - 1 : span.end_col - 1] if span.end_line == span.line else text[span.col - 1 :]


def _called(a: Analysis, line: int, found) -> bool:
    """The word is a step or a call (not a binding or a label of the same name)."""
    text = a.lines[line - 1]
    before, after = text[: found[1] - 1].rstrip(), text[found[2] - 1 :].lstrip()
    return after.startswith("(") or before.endswith(("->", ":", "{", "(", ",", "+", "*")) or bool(
        re.search(r"repeat\s+\S+$", before))


def _is_call(a: Analysis, line: int, end: int) -> bool:
    return a.lines[line - 1][end - 1 :].lstrip().startswith("(")


def _is_label(a: Analysis, line: int, end: int) -> bool:
    after = a.lines[line - 1][end - 1 :].lstrip()
    return after.startswith(":") and not after.startswith("::")


def _after_label(a: Analysis, line: int, end: int) -> tuple[int, int]:
    text = a.lines[line - 1]
    at = text.index(":", end - 1) + 1
    while at < len(text) and text[at] in " \t":
        at += 1
    return line, at + 1


def _index(a: Analysis) -> list[_Item]:
    """Every node and container of the analysis whose span is in this document (built once,
    on the first hover, so a re-check while typing does not pay for it)."""
    cached = getattr(a, "_index", None)
    if cached is not None:
        return cached
    out = []
    for g in a.graphs:
        for n, node in g.g.nodes(data="data"):
            if node.span.file == a.path:
                out.append(_Item(g, n, node.span))
        for path, c in g.containers.items():
            if path and c.kind == "seq" and c.span.file == a.path:
                out.append(_Item(g, path, c.span))
    a._index = out  # type: ignore[attr-defined]
    return out


def _items_at(a: Analysis, line: int, col: int) -> list[_Item]:
    """The items with the smallest span around (line, col): one per instance."""
    around = [i for i in _index(a) if _contains(i.span, line, col)]
    if not around:
        return []
    best = min(i.size for i in around)
    spans = [i for i in around if i.size == best]
    first = spans[0].span
    return [i for i in spans if i.span == first]


def _binding_items(a: Analysis, name: str, line: int, col: int) -> list[_Item]:
    """The items holding the value of binding `name` where the cursor is: its statement's
    last item, or the input of that name."""
    stmt = _binding_stmt(a.module, name, line, col)
    if isinstance(stmt, S.Input):
        return [i for i in _index(a) if i.span == stmt.span] or _block_inputs(a, name, line, col)
    if not isinstance(stmt, S.Assign):
        return []
    inside = [i for i in _index(a) if _within(i.span, stmt.span)]
    ranked = [((i.span.end_line, i.span.end_col), (-i.span.line, -i.span.col), i.span) for i in inside]
    ranked += _labelled_blocks(a, stmt)
    if not ranked:
        return []
    last = max(ranked, key=lambda r: r[:2])[2]
    return [i for i in inside if i.span == last] or _instances(a, last)


def _labelled_blocks(a: Analysis, stmt: S.Assign) -> list[tuple]:
    """Block calls labelled in the statement (`stem: Stem(16)`): a block instance's span is
    its definition, so the label in the text places it (ranked by where the label is)."""
    out = []
    for line in range(stmt.span.line, stmt.span.end_line + 1):
        for m in re.finditer(r"\b([A-Za-z_]\w*)\s*:\s*([A-Za-z_]\w*)\s*(?:\(|$|->)", a.lines[line - 1]):
            if a.program is not None and m.group(2) in a.program.blocks:
                out.append(((line, m.end()), (0, 0), ("label", m.group(1), m.group(2))))
    return out


def _instances(a: Analysis, key) -> list[_Item]:
    """The instances of a labelled block call (`key` from _labelled_blocks)."""
    if not (isinstance(key, tuple) and key[:1] == ("label",)):
        return []
    return [_Item(g, path, c.span) for g in a.graphs for path, c in g.containers.items()
            if c.kind == "block" and path and path[-1] == key[1] and c.name == key[2]]  # fmt: skip


def _block_inputs(a: Analysis, name: str, line: int, col: int) -> list[_Item]:
    block = enclosing_block(a.module, line, col)
    out = []
    for g in a.graphs:
        for path, c in g.containers.items():
            if block and c.kind == "block" and c.name == block.name:
                out += [_Item(g, path, c.span, ref) for key, ref in c.inputs if key == name]
    return out


def _binding_stmt(module: S.Module | None, name: str, line: int, col: int):
    """The statement that defines the `name` seen at (line, col): the one it sits in when
    the cursor is on its left side, else the last one before."""
    block = enclosing_block(module, line, col)
    if block is None:
        return None
    found = None
    for stmt in block.body:
        names = stmt.names if isinstance(stmt, S.Assign) else (stmt.name,) if isinstance(stmt, S.Input) else ()
        on_left = stmt.span.line == line and _left_of_equals(stmt, col)
        if (stmt.span.line, stmt.span.col) > (line, col) or (_contains(stmt.span, line, col) and not on_left):
            break
        if name in names:
            found = stmt
    return found


def _left_of_equals(stmt, col: int) -> bool:
    return isinstance(stmt, S.Input) or (isinstance(stmt, S.Assign) and col <= stmt.span.col + sum(
        len(n) + 2 for n in stmt.names))


def _figures(items: list[_Item]) -> str:
    """Shape, parameters and MACs of each instance, instances with equal figures grouped."""
    groups: dict[str, list[str]] = {}
    for item in items:
        name, text = _describe(item)
        groups.setdefault(text, []).append(name)
    out = []
    for text, names in groups.items():
        shown = ", ".join(f"`{n}`" for n in names[:_MAX_SHOWN])
        more = f" and {len(names) - _MAX_SHOWN} more" if len(names) > _MAX_SHOWN else ""
        out.append(f"{shown}{more}: {text}")
    return "\n\n".join(out)


def _describe(item: _Item) -> tuple[str, str]:
    g, env = item.graph, batch_env(item.graph)
    if isinstance(item.key, int):
        node = g.node(item.key)
        types, params, macs = node.types, node.params, subs(node.macs, env)
        name, op = node.name, node.opdef.label(dict(node.attrs))
    elif item.ref is not None:  # a block's input, in one instance
        return ".".join(item.key), _shape(g.type_of(item.ref))
    else:
        c = g.containers[item.key]
        inside = [d for _, d in g.g.nodes(data="data") if d.scope[: len(item.key)] == item.key]
        types = tuple(g.type_of(ref) for _, ref in c.outputs)
        params = sum(d.params for d in inside)
        macs = sum((subs(d.macs, env) for d in inside), 0)
        name, op = ".".join(item.key), c.origin or c.kind
    shapes = ", ".join(_shape(t) for t in types)
    batch = " (batch 1)" if env else ""
    return name, f"{op} → {shapes}  \nparameters: {params:,}  \nMACs{batch}: {_count(macs)}"


def _shape(t) -> str:
    return "[" + ", ".join(str(d) for d in t.dims) + "]"


def _count(value: Dim) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


# ---- definition ---------------------------------------------------------------------------------
def definition(a: Analysis, line: int, col: int) -> Target | None:
    """Where the name (or import) under the cursor is defined."""
    module = a.module
    for item in module.items if module else ():
        if isinstance(item, S.Import) and _contains(item.span, line, col):
            target = os.path.join(os.path.dirname(a.path), item.path)
            return Target(os.path.realpath(target), (1, 1, 1, 1))
    found = word_at(a, line, col)
    if found is None:
        return None
    name = found[0]
    stmt = _binding_stmt(module, name, line, col)
    if stmt is not None:
        return Target(a.path, _name_region(a, stmt, name))
    block = enclosing_block(module, line, col)
    for p in block.params if block else ():
        if p.name == name:
            return Target(a.path, (p.span.line, p.span.col, p.span.line, p.span.col + len(name)))
    program = a.program
    defined = program.definition(name) if program is not None else None
    if isinstance(defined, (S.BlockDef, S.Def)):
        return Target(defined.name_span.file, _region(defined.name_span))
    if isinstance(defined, S.Const):
        span = defined.span
        return Target(span.file, (span.line, span.col, span.line, span.col + len(name)))
    return None


def _name_region(a: Analysis, stmt, name: str) -> Region:
    """Where `name` is written in its defining statement."""
    line = stmt.span.line
    text = a.lines[line - 1]
    m = re.compile(rf"\b{re.escape(name)}\b").search(text, stmt.span.col - 1)
    col = m.start() + 1 if m else stmt.span.col
    return (line, col, line, col + len(name))


def _region(span: Span) -> Region:
    return (span.line, span.col, span.end_line, span.end_col)


def _contains(span: Span, line: int, col: int) -> bool:
    return (span.line, span.col) <= (line, col) <= (span.end_line, span.end_col)


def _within(inner: Span, outer: Span) -> bool:
    return (outer.line, outer.col) <= (inner.line, inner.col) and (inner.end_line, inner.end_col) <= (
        outer.end_line, outer.end_col)
