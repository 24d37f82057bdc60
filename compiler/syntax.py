"""The AST: small frozen dataclasses, each carrying the :class:`Span` it came from.

Expressions and chain steps are separate families: an expression computes a
value (a number, a list, a tensor); a step transforms the tensor piped into it
(`x -> step`). `parse.py` builds these; `elaborate/` is their only consumer.
"""

from __future__ import annotations

from dataclasses import dataclass

from modelc.diagnostics import Span

__all__ = [
    "Assign", "BinOp", "BlockDef", "BoolOp", "Call", "Chain", "Compare", "Const",
    "Def", "Expr", "For", "IfElse", "Import", "Index", "Input", "Item", "Labelled",
    "LabelledStep", "List", "Literal", "Module", "Name", "Neg", "Not", "Output",
    "Param", "Range", "Repeat", "Seq", "Stmt", "Step", "StepIf",
]  # fmt: skip


# ---- expressions ------------------------------------------------------------
@dataclass(frozen=True)
class Literal:
    value: int | float | bool | str
    span: Span


@dataclass(frozen=True)
class Name:
    id: str
    span: Span


@dataclass(frozen=True)
class List:
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % **
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Neg:
    operand: Expr
    span: Span


@dataclass(frozen=True)
class Not:
    operand: Expr
    span: Span


@dataclass(frozen=True)
class BoolOp:
    op: str  # and / or
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True)
class Compare:
    """`a < b <= c`: operands has one more element than ops."""

    ops: tuple[str, ...]
    operands: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class Range:
    """`lo..hi`, exclusive of hi."""

    lo: Expr
    hi: Expr
    span: Span


@dataclass(frozen=True)
class Index:
    obj: Expr
    index: Expr
    span: Span


@dataclass(frozen=True)
class IfElse:
    then: Expr
    cond: Expr
    else_: Expr
    span: Span


@dataclass(frozen=True)
class Kwarg:
    name: str
    value: Expr
    span: Span


@dataclass(frozen=True)
class Call:
    func: str
    args: tuple[Expr, ...]
    kwargs: tuple[Kwarg, ...]
    span: Span
    func_span: Span


@dataclass(frozen=True)
class Labelled:
    """`label: op(...)` in expression position: names the module."""

    label: str
    call: Call
    span: Span
    label_span: Span


@dataclass(frozen=True)
class ForList:
    """`[for v in items { body }]`: the body's value once per item, as a list. Labelled
    (`experts: [for ...]`), parallel branches: each branch's module is numbered in a list of
    modules named by the label."""

    var: str
    iterable: Expr
    body: Expr
    span: Span
    label: str | None = None
    label_span: Span | None = None


@dataclass(frozen=True)
class Chain:
    head: Expr
    steps: tuple[Step, ...]
    span: Span


Expr = (Literal | Name | List | BinOp | Neg | Not | BoolOp | Compare | Range | Index | IfElse | Call | Labelled
        | ForList | Chain)


# ---- chain steps -------------------------------------------------------------
@dataclass(frozen=True)
class Bare:
    """A step naming an op or block without arguments: `-> relu`."""

    name: str
    span: Span


@dataclass(frozen=True)
class LabelledStep:
    label: str
    step: Step
    span: Span
    label_span: Span


@dataclass(frozen=True)
class Repeat:
    count: Expr
    step: Step
    span: Span


@dataclass(frozen=True)
class For:
    var: str
    iterable: Expr
    steps: tuple[Step, ...]
    span: Span
    prefix: str | None = None  # `for i in 0..12 prefix "layer_" {...}`: items layer_0, layer_1, ...
    prefix_span: Span | None = None


@dataclass(frozen=True)
class Seq:
    """`(a -> b)` or `[a, b]`: a sequence; when labelled, its steps are numbered."""

    steps: tuple[Step, ...]
    span: Span
    brackets: bool = False  # `[a, b]`: inside a numbered sequence, a numbered sequence of its own


@dataclass(frozen=True)
class StepIf:
    """`a if cond else b` as a step: `then` when the compile-time condition holds, else
    `else_`, which is None for `a if cond` (no step at all)."""

    then: Step
    cond: Expr
    else_: Step | None
    span: Span


Step = Call | Bare | LabelledStep | Repeat | For | Seq | StepIf


# ---- statements and items ------------------------------------------------------
@dataclass(frozen=True)
class Input:
    name: str
    shape: Expr | None
    span: Span
    dtype: str | None = None  # `input tokens: int64[B, T]`; None: float32


@dataclass(frozen=True)
class Output:
    """`output expr, ...` (names None) or `output name = expr`; `output training ...` when
    `training`: computed only in training mode (NOTE: [Training-only outputs] in ir.py)."""

    name: str | None
    values: tuple[Expr, ...]
    span: Span
    training: Span | None = None  # the `training` keyword, where written


@dataclass(frozen=True)
class Assign:
    names: tuple[str, ...]
    value: Expr
    span: Span


@dataclass(frozen=True)
class Def:
    """`def bn = batchnorm(eps=1e-3)`, in a file or a body: a name for an op or block call
    with some of its arguments; `x -> bn` is that call written out."""

    name: str
    call: Call
    span: Span
    name_span: Span

    @property
    def names(self) -> tuple[str, ...]:
        """The name it binds (as `Assign.names`; a failed def's is poisoned)."""
        return (self.name,)


Stmt = Input | Output | Assign | Def


@dataclass(frozen=True)
class Param:
    """`name: type = default`; a union `k: int | list` has several types, in order."""

    name: str
    types: tuple[str, ...]
    default: Expr | None
    span: Span
    type_spans: tuple[Span, ...]

    @property
    def type(self) -> str:
        """The type as written: `int`, `int | list`."""
        return " | ".join(self.types)


@dataclass(frozen=True)
class BlockDef:
    kind: str  # "block" or "model"
    name: str
    params: tuple[Param, ...]
    body: tuple[Stmt, ...]
    span: Span
    name_span: Span


@dataclass(frozen=True)
class Import:
    path: str
    span: Span


@dataclass(frozen=True)
class Const:
    name: str
    value: Expr
    span: Span


Item = Import | BlockDef | Const | Def


@dataclass(frozen=True)
class Module:
    path: str
    items: tuple[Item, ...]
