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
Each expression is an identifier of the spec, or one times, divided by or plus an integer
literal, or a quotient of two identifiers or of an integer literal and one, so
nothing but names made by modelc.names.Namespace and integer literals reach generated code.
Fitting is exact on every instance the file builds; another call of the class (a user's
`Bottleneck(64, 32, 2)`) computes the sizes from the same expressions.

NOTE: [Sizes in forward] The numbers `forward` is written with are slots too
(`q.reshape(-1, 49, 3, 6, 32)`, `rt.window_reverse(y, 7, 28, 28)`): instances whose
`forward` is the same code but for its numbers (`skeleton`) share a class, each differing
number fitted as above, and the class keeps the arguments its `forward` reads as attributes
(`self.heads = heads`, read as `q.reshape(-1, 49, 3, self.heads, 32)`, as torchvision keeps
`num_heads`). `Numbers` rewrites the numbers of the class's `forward`, leaf by leaf of each
statement before it is laid out (pyformat.leaves), in the order the text shows them; it
checks that it met the instance's own numbers there, one by one, so a statement written some
other way makes the class unshared, not wrong.
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["Numbers", "Sym", "Unsupported", "class_name", "fit", "number_targets", "on_self", "skeleton", "slot_kind"]


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
    then times or divided by one integer, then one divided by another (or an integer divided
    by one), then (with `offsets`: a count) plus or minus one.
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
    # An exact quotient: `C // heads` (a head's width), `8 // scale`. Exact, as a floor would
    # fit too much: 8 * (4096 // h) is 32768 // h for h = 32, 33 and 64, not for h = 31.
    positive = [(t, v) for t, v in candidates if all(_is_int(x) and x > 0 for x in v)]
    for text, vals in positive:
        for top, tops in [(t, v) for t, v in positive if t != text and len(set(v)) > 1]:
            if all(a == v * b for a, b, v in zip(tops, vals, values)):
                return f"{_operand(top)} // {_operand(text)}"
        products = {v * b for v, b in zip(values, vals)}
        if len(set(vals)) > 1 and len(products) == 1 and (m := products.pop()) > 0:
            return f"{m} // {_operand(text)}"
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


# A string literal, a comment, or a number that is no part of a name (`attn_1`, `x2`).
_SCAN = re.compile(r"""("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')|(#[^\n]*)|(?<![\w.])((?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?)(?![\w.])""")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def skeleton(lines: list[str]) -> tuple[tuple[str, tuple[str, ...]], list]:
    """Code as far as its numbers do not matter, and its numbers in order: comments dropped,
    whitespace outside strings normalised (wherever the lines break), each int shown as `#`
    and each float as `#.`, and the strings apart. Two texts with one skeleton differ in
    their numbers alone (NOTE: [Sizes in forward])."""
    text = "\n".join(lines)
    parts, strings, numbers, last = [], [], [], 0
    for m in _SCAN.finditer(text):
        parts.append(text[last:m.start()])
        last = m.end()
        if m.group(1) is not None:
            strings.append(m.group(1))
            parts.append("$")
        elif m.group(3) is not None:
            numbers.append(_number(m.group(3)))
            parts.append("#" if isinstance(numbers[-1], int) else "#.")
    parts.append(text[last:])
    lines_out, depth = [], 0
    for line in "".join(parts).split("\n"):
        body = line.strip()
        if not body:
            continue
        if depth == 0:  # a statement's first line: its indentation says which block it is in
            lines_out.append(f"{len(line) - len(line.lstrip())}|")
        lines_out[-1] += " " + body
        depth += sum(body.count(o) - body.count(c) for o, c in ("()", "[]", "{}"))
    code = "\n".join(re.sub(r" ?([^\w$#. ]) ?", r"\1", re.sub(r" +", " ", ln)) for ln in lines_out)
    code = re.sub(r",([)\]])", r"\1", code)  # a trailing comma of a split call
    return (code, tuple(strings)), numbers


def number_targets(lines: list[str]) -> list[str]:
    """For each number of `skeleton`, the first variable its statement assigns (`attn`), to
    name an argument it may need."""
    out, depth, target = [], 0, ""
    for line in "\n".join(lines).split("\n"):
        if depth == 0:
            m = re.match(r"\s*([A-Za-z_]\w*)[\w, ]* [-+*/@]?= ", line)
            target = m[1] if m else "size"
        code = _SCAN.sub(lambda m: "0" if m.group(3) else "", line)
        out += [target] * sum(1 for m in _SCAN.finditer(line) if m.group(3))
        depth += sum(code.count(o) - code.count(c) for o, c in ("()", "[]", "{}"))
    return out


class Numbers:
    """The numbers of a class's `forward` rewritten: number `i` of the text becomes the
    expression `subs[i]` (of `self.` attributes). `ok` stays true while each number met is
    `values[i]`, the one the representative instance's own `forward` shows there."""

    def __init__(self, subs: dict[int, str], values: list):
        self.subs, self.values = subs, values
        self.seen = 0
        self.ok = True

    def leaf(self, text: str) -> str:
        out, last = [], 0
        for m in _SCAN.finditer(text):
            if m.group(3) is None:
                continue
            i, self.seen = self.seen, self.seen + 1
            if i >= len(self.values) or _number(m.group(3)) != self.values[i]:
                self.ok = False
            if i in self.subs:
                out += [text[last:m.start()], _in_place(self.subs[i], text[:m.start()], text[m.end():])]
                last = m.end()
        return "".join(out) + text[last:]

    @property
    def done(self) -> bool:
        return self.ok and self.seen == len(self.values)


def on_self(text: str, names: set[str]) -> str:
    """`heads * 4` -> `self.heads * 4`: the constructor arguments of an expression as the
    attributes `forward` reads."""
    return _WORD.sub(lambda m: f"self.{m[0]}" if m[0] in names else m[0], text)


def _in_place(expr: str, before: str, after: str) -> str:
    """`expr` where a number stood: in parentheses unless it is one name, or an argument of
    its own (`(-1, self.heads * 4)`)."""
    if re.fullmatch(r"[\w.]+", expr):
        return expr
    prev, nxt = before.rstrip()[-1:], after.lstrip()[:1]
    if prev in ("", "(", "[", ",", "=") and not before.rstrip().endswith(("==", "<=", ">=", "!=")) and nxt in ("", ")", "]", ","):
        return expr
    return f"({expr})"


def _number(text: str) -> int | float:
    return int(text) if text.isdigit() else float(text)


# ---- names of the classes a block definition needs (emit_share.py's groups of instances) ----
def class_name(base: str, g, groups: list) -> str:
    """The block's name; with several classes, each also named after the parameters whose
    values set its instances apart (`SwinBlock_shift3`)."""
    if len(groups) == 1:
        return base
    parts = _name_parts(g, groups)
    # Where another class would have the same name, a further value that tells them apart
    # (`InvertedResidual_k5_seTrue_stride1`, the residual one, beside `InvertedResidual_k5_seTrue`).
    alike = [_constant_args(h) for h in groups if h is not g and _name_parts(h, groups) == parts]
    own = _constant_args(g)
    parts += [f"{k}{v}" for k, v in own.items() if f"{k}{v}" not in parts and isinstance(v, (int, str))
              and any(o.get(k) != v for o in alike)][:1]  # fmt: skip
    name = "_".join([base, *parts])
    return name if name.isidentifier() and len(parts) > 0 else base


def _name_parts(g, groups: list) -> list[str]:
    """At most two values of block parameters that set the instances of `g` apart."""
    own = _constant_args(g)
    others = [_constant_args(h) for h in groups if h is not g]
    parts = [f"{k}{v}" for k, v in own.items()
             if isinstance(v, (int, str)) and not isinstance(v, bool) and all(o.get(k) != v for o in others)]  # fmt: skip
    if not parts:
        parts = [f"{k}{v}" for k, v in own.items() if isinstance(v, int) and any(o.get(k) != v for o in others)]
    return parts[:2]


def _constant_args(g) -> dict[str, Any]:
    """The block parameters (not input sizes) every member of `g` sets alike."""
    c_args = dict(g.rep.args)
    return {k: v for k, v in c_args.items() if all(dict(m.args).get(k) == v for m in g.members)}
