"""Spec expressions as text, with just enough precedence to parenthesize correctly.

The spec grammar binds, loosest first: conditional, chain (`->`), `+`, `*`/`@`, atoms. A chain
cannot be an operand of `+` without parentheses (`(x -> conv) + y`), and a conditional cannot be
the start of a chain. :class:`E` carries a text and its level; the helpers wrap operands when
their level is too loose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = ["ADD", "ATOM", "CHAIN", "COND", "MUL", "E", "add", "binary", "chain", "literal", "wrap_line"]

COND, CHAIN, ADD, MUL, ATOM = range(5)


@dataclass(frozen=True)
class E:
    text: str
    prec: int = ATOM

    def at_least(self, prec: int) -> str:
        return self.text if self.prec >= prec else f"({self.text})"


def literal(value: Any) -> str:
    """A Python value as a spec literal: `true`, `1e-06`, `[1, 2]`, `"same"`."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    if value is None:
        return "none"  # only ever compared with a `none` default, and then left out
    return repr(value)


def chain(src: E, step: str) -> E:
    """`src -> step`: a chain continues a chain; a conditional source needs parentheses."""
    return E(f"{src.at_least(CHAIN)} -> {step}", CHAIN)


def add(a: E, b: E) -> E:
    return E(f"{a.at_least(ADD)} + {b.at_least(MUL)}", ADD)


def binary(a: E, op: str, b: E) -> E:
    """A `*`, `/`, `//` or `@` product (left-associative)."""
    return E(f"{a.at_least(MUL)} {op} {b.at_least(ATOM)}", MUL)


def wrap_line(line: str, width: int = 100) -> list[str]:
    """A long statement split before top-level `->`, continuation lines under the first `=`."""
    if len(line) <= width:
        return [line]
    cuts, depth = [], 0
    for i, ch in enumerate(line):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif depth == 0 and line.startswith(" -> ", i):
            cuts.append(i)
    if not cuts:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()))
    eq = line.find(" = ")
    cont = " " * (eq + 3) if 0 <= eq < 40 else indent + "    "
    pieces = [line[a:b] for a, b in zip([0, *cuts], [*cuts, len(line)])]
    out = [pieces[0]]
    for piece in pieces[1:]:
        if len(out[-1]) + len(piece) <= width or (len(out) == 1 and len(out[0]) <= 16):
            out[-1] += piece
        else:
            out.append(cont + piece.lstrip())
    return out
