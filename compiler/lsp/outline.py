"""Completion and document symbols, answered from an :class:`~modelc.lsp.analysis.Analysis`.

Completion reads the text before the cursor: inside the parentheses of a call it offers
the attributes of that op (or the parameters of that block) not given yet; at a step
position (after `->`, a label's `:`, `repeat N` or `{`) the ops and the blocks in scope;
elsewhere also the bindings, parameters and constants visible there.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from modelc import ops
from modelc import syntax as S
from modelc.lsp.analysis import Analysis, Region
from modelc.lsp.navigate import enclosing_block

__all__ = ["Completion", "Symbol", "complete", "symbols"]

_STEP = re.compile(r"(?:->|:|\{|repeat\s+\S+|^\s*output)\s*[A-Za-z_]?\w*$")
_KEYWORDS = ("model", "block", "input", "output", "import", "def", "repeat", "for", "in", "if", "else",
             "and", "or", "not", "true", "false")  # fmt: skip
_MAX_BACK = 4000  # characters searched backwards for an open parenthesis


@dataclass(frozen=True)
class Completion:
    label: str
    kind: str  # op, block, attr, param, binding, const, keyword
    detail: str = ""
    doc: str = ""
    insert: str | None = None


@dataclass
class Symbol:
    name: str
    kind: str  # model, block, const, def, import, param, input, binding, output
    detail: str
    region: Region
    selection: Region
    children: list[Symbol] = field(default_factory=list)


# ---- completion ---------------------------------------------------------------------------------
def complete(a: Analysis, line: int, col: int) -> list[Completion]:
    before = _text_before(a, line, col)
    callee = _open_call(before)
    if callee is not None:
        given = set(re.findall(r"([A-Za-z_]\w*)\s*=(?!=)", before[before.rfind(callee + "(") :]))
        return _arguments(a, callee, given)
    here = before.rsplit("\n", 1)[-1]
    steps = _ops() + _blocks(a)
    if _STEP.search(here):
        return steps
    return steps + _names(a, line, col) + [Completion(k, "keyword") for k in _KEYWORDS]


def _text_before(a: Analysis, line: int, col: int) -> str:
    lines = a.lines[max(0, line - 40) : line - 1]
    current = a.lines[line - 1][: col - 1] if 0 < line <= len(a.lines) else ""
    return "\n".join([*lines, current])[-_MAX_BACK:]


def _open_call(before: str) -> str | None:
    """The name called by the innermost parenthesis open at the end of `before`."""
    depth = 0
    for i in range(len(before) - 1, -1, -1):
        ch = before[i]
        if ch in ")]":
            depth += 1
        elif ch in "([":
            if depth == 0:
                if ch == "[":
                    return None
                m = re.search(r"([A-Za-z_]\w*)\s*$", before[:i])
                return m.group(1) if m else None
            depth -= 1
        elif ch in "{}" or (ch == "\n" and re.match(r"\s*(?:output|input)?\s*[A-Za-z_]\w*\s*=[^=]",
                                                      before[i + 1 :]) and depth == 0):  # fmt: skip
            return None
    return None


def _arguments(a: Analysis, callee: str, given: set[str]) -> list[Completion]:
    if callee in ops.REGISTRY and not ops.REGISTRY[callee].internal:
        out = []
        for attr in ops.REGISTRY[callee].attrs:
            if given & set(attr.names):
                continue
            default = "required" if attr.default is ops.base.REQUIRED else f"default {attr.default!r}"
            out.append(Completion(attr.name, "attr", f"{attr.kind}, {default}", attr.doc, f"{attr.name}="))
        return out
    block = a.program.blocks.get(callee) if a.program is not None else None
    if block is None:
        return []
    return [Completion(p.name, "param", p.type, "", f"{p.name}=") for p in block.params if p.name not in given]


def _ops() -> list[Completion]:
    return [Completion(name, "op", op.family, op.doc)
            for name, op in sorted(ops.REGISTRY.items()) if not op.internal]  # fmt: skip


def _blocks(a: Analysis) -> list[Completion]:
    if a.program is None:
        return []
    defs = [Completion(name, "op", f"def: {d.call.func}") for name, d in sorted(a.program.defs.items())]
    return [Completion(name, "block", "block " + name) for name in sorted(a.program.blocks)] + defs


def _names(a: Analysis, line: int, col: int) -> list[Completion]:
    out = []
    block = enclosing_block(a.module, line, col)
    if block is not None:
        out += [Completion(p.name, "param", p.type) for p in block.params]
        seen = set()
        for stmt in block.body:
            if (stmt.span.line, stmt.span.col) >= (line, col):
                break
            names = stmt.names if isinstance(stmt, S.Assign) else (stmt.name,) if isinstance(stmt, S.Input) else ()
            seen.update(n for n in names if n)
        out += [Completion(n, "binding") for n in sorted(seen)]
    if a.program is not None:
        out += [Completion(n, "const") for n in sorted(a.program.consts)]
    return out


# ---- document symbols ---------------------------------------------------------------------------
def symbols(a: Analysis) -> list[Symbol]:
    """Imports, constants, models and blocks of the document, in order; a model or block
    has its parameters, inputs, bindings and outputs as children."""
    out = []
    for item in a.module.items if a.module else ():
        if isinstance(item, S.Import):
            r = _region(item.span)
            out.append(Symbol(item.path, "import", "import", r, r))
        elif isinstance(item, S.Const):
            r = _region(item.span)
            out.append(Symbol(item.name, "const", "constant", r, _head(item.span, item.name)))
        elif isinstance(item, S.Def):
            out.append(Symbol(item.name, "def", f"def: {item.call.func}", _region(item.span), _region(item.name_span)))
        else:
            out.append(_block_symbol(item))
    return out


def _block_symbol(block: S.BlockDef) -> Symbol:
    sym = Symbol(block.name, block.kind, block.kind, _region(block.span), _region(block.name_span))
    for p in block.params:
        sym.children.append(Symbol(p.name, "param", p.type, _region(p.span), _head(p.span, p.name)))
    for stmt in block.body:
        r = _region(stmt.span)
        if isinstance(stmt, S.Input):
            sym.children.append(Symbol(stmt.name, "input", "input", r, r))
        elif isinstance(stmt, S.Assign):
            sym.children += [Symbol(n, "binding", "binding", r, r) for n in stmt.names if n]
        elif isinstance(stmt, S.Output):
            sym.children.append(Symbol(stmt.name or "output", "output", "output", r, r))
        elif isinstance(stmt, S.Def):
            sym.children.append(Symbol(stmt.name, "def", f"def: {stmt.call.func}", r, _region(stmt.name_span)))
    return sym


def _region(span) -> Region:
    return (span.line, span.col, span.end_line, span.end_col)


def _head(span, name: str) -> Region:
    return (span.line, span.col, span.line, span.col + len(name))
