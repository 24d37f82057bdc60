"""One class for many block instances: the values that differ between instances become
constructor arguments (`Bottleneck(in_channels, width, stride)`), each named after what it
is, and checked against every instance.

NOTE: [Sharing a class] The emitter gives the instances of one block definition one class
when they have the same submodules (some may lack an optional one: `downsample`), the same
`forward`, and constructor values that one expression per slot gives for all of them. A slot
is an attribute of a submodule (`conv1.out_channels`) or an argument of a child block's
class. Its expression is `fit` from the instance's own values, tried in this order:
  1. the expression of an earlier slot of the class (data flow: bn1 follows conv1's width),
  2. a block parameter (`width`), or one times or divided by a constant (`width * 4`),
  3. a size of a block input (`in_channels`: dimension 1 of the input; `in_features`: the
     last),
  4. else a new argument named after the slot (`conv2_k`).
Each expression is an identifier of the spec or a product of one with an integer literal, so
nothing but names made by modelc.names.Namespace and integer literals reach generated code.
Fitting is exact on every instance the file builds; another call of the class (a user's
`Bottleneck(64, 32, 2)`) computes the sizes from the same expressions.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Sym", "Unsupported", "fit", "slot_kind"]


class Unsupported(Exception):
    """An op's constructor did something with a symbolic value other than pass it on."""


class Sym:
    """A value known only as a Python expression of constructor arguments."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __eq__(self, other: object) -> bool:  # `v != default` keeps the keyword: right for a Sym
        return isinstance(other, Sym) and other.text == self.text

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.text)

    def __bool__(self) -> bool:
        raise Unsupported(f"a branch on {self.text}")

    def __index__(self) -> int:
        raise Unsupported(f"{self.text} used as a number")

    __int__ = __float__ = __index__

    def __repr__(self) -> str:
        return f"Sym({self.text})"


def slot_kind(values: list[Any]) -> str | None:
    """How a slot's per-instance values can be shared: "same" (one literal), "int", "float",
    "tuple" (numbers, each fit on its own: `(C, 1, 1)`, `k=(3, 3)`), or None (strings,
    lists, tuples of other lengths: not shareable)."""
    first = values[0]
    if all(type(v) is type(first) and v == first for v in values):
        return "same"
    if all(_is_int(v) for v in values):
        return "int"
    if all(_is_int(v) or isinstance(v, float) for v in values):
        return "float"
    if all(isinstance(v, tuple) and len(v) == len(first) and v and all(map(_is_num, v)) for v in values):
        return "tuple"
    return None


def fit(values: list, candidates: list[tuple[str, list[Any]]], offsets: bool = False) -> str | None:
    """The first candidate expression equal to `values` on every instance: a candidate as is,
    then times or divided by one integer, then (with `offsets`: a count) plus or minus one.
    `candidates`: (Python expression, its value per instance), in order of preference."""
    for text, vals in candidates:
        if vals == values and all(_is_int(v) or isinstance(v, float) for v in vals):
            return text
    if not all(_is_int(v) for v in values):
        return None
    for text, vals in candidates:
        if not all(_is_int(v) and v > 0 for v in vals):
            continue
        if all(v % c == 0 for v, c in zip(values, vals)):
            k = {v // c for v, c in zip(values, vals)}
            if len(k) == 1 and (m := k.pop()) > 1:
                return f"{_operand(text)} * {m}"
        if (m := _divisor(values, vals)) is not None:
            return f"{_operand(text)} // {m}"
    for text, vals in candidates if offsets else []:
        k = {v - c for v, c in zip(values, vals) if _is_int(c)}
        if len(k) == 1 and len(vals) == len(values) and (m := k.pop()) in (-1, 1):
            return f"{_operand(text)} {'-' if m < 0 else '+'} 1"
    return None


def _divisor(values: list[int], vals: list[int]) -> int | None:
    """The least m > 1 with c // m == v for every pair (`k // 2` gives 0, 1, 2 for k = 1, 3, 5)."""
    v, c = next(((v, c) for v, c in zip(values, vals) if v > 0), (None, None))
    if v is None:
        return None
    for m in range(max(2, c // (v + 1) + 1), c // v + 1):  # the m with c // m == v
        if all(c2 // m == v2 for v2, c2 in zip(values, vals)):
            return m
    return None


def _operand(text: str) -> str:
    return text if text.isidentifier() else f"({text})"


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return _is_int(v) or isinstance(v, float)
