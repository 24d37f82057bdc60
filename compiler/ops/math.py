"""Tensor algebra: element-wise arithmetic and comparisons of tensors (`a * b`, `a - b`,
`a / b`, `a ** b`, `a < b`), of a tensor and a constant (`x + 1`, `1 - x`, `x ** 2`, `x > 0`),
`-x`, `where`, and the element-wise math functions (`exp`, `log`, `sqrt`, `rsqrt`, `sin`,
`cos`, `abs`, `clamp`).

NOTE: [Element types of arithmetic] Every rule here follows torch's type promotion
(`_util.promote`): int64 stays int64 (`ids + 1`, `ids * ids`), bool with bool stays bool for
`+` and `*`, a float constant or a true division makes an integer tensor float32, a
comparison gives bool. What torch refuses (`-` of bool tensors, an integer to a negative
integer power, `abs` of bool) is refused at compile time, E0506/E0404.
NOTE: [Constants are attributes] `x + 1` is one node with the constant as an attribute
(`arith`), not a tensor: the emitted code reads `x + 1`, and `add` keeps meaning a sum of
tensors (the residual and attention passes rely on that). `x * k` and `x / k` are `scale`.
"""

from __future__ import annotations

import math

from modelc.ops._util import FLOATS, broadcast, promote
from modelc.ops.base import Attr, OpDef, OpError, register
from modelc.pyrepr import literal
from modelc.types import TensorType

_INTS = ("int32", "int64")
_COMPARE = {"<": "lt", "<=": "le", ">": "gt", ">=": "ge", "==": "eq", "!=": "ne"}
_FLIPPED = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "==", "!=": "!="}  # k < x is x > k


def _result(op: str, operator: str, dtypes: list[str]) -> str:
    """The element type of `operator` between tensors of types `dtypes`, refusing what torch
    refuses."""
    if operator in _COMPARE:
        return "bool"
    if operator == "-" and "bool" in dtypes:
        raise OpError("E0506", f"{op}: '-' of bool tensors is not defined (torch refuses it)",
                      "for masks, use where(mask, a, b) or compare: x != y")  # fmt: skip
    dtype = _promote_types(dtypes)
    if operator == "/" and dtype not in FLOATS:  # true division: integers become float32
        return "float32"
    return dtype


def _promote_types(dtypes: list[str]) -> str:
    return promote([TensorType((1,), d) for d in dtypes])


class _Binary(OpDef):
    """An element-wise operator between two tensors; shapes broadcast as in torch."""

    family = "tensor"
    inputs = 2
    operator = ""
    torch_function = ""  # what the reference computes with (not the operator the emitter writes)

    def infer(self, a, ins):
        x, y = ins
        dims = broadcast(f"'{self.operator}'", x.dims, y.dims)
        return [TensorType(dims, _result(self.name, self.operator, [x.dtype, y.dtype]))]

    def reference(self, a, ins, w):
        import torch

        return [getattr(torch, self.torch_function)(ins[0], ins[1])]

    def call(self, a, args):
        return f"{args[0]} {self.operator} {args[1]}"

    def label(self, a):
        return self.operator


@register
class Sub(_Binary):
    name, operator, torch_function = "sub", "-", "sub"
    doc = "Element-wise difference, `a - b` in an expression; shapes broadcast as in torch."


@register
class Mul(_Binary):
    name, operator, torch_function = "mul", "*", "mul"
    doc = ("Element-wise product, `a * b` in an expression (gating, squeeze-excitation, SwiGLU); "
           "shapes broadcast as in torch ([B, C, H, W] * [B, C, 1, 1]).")  # fmt: skip


@register
class Div(_Binary):
    name, operator, torch_function = "div", "/", "true_divide"
    doc = "Element-wise true quotient, `a / b` in an expression; integer tensors give float32."


@register
class Pow(_Binary):
    name, operator, torch_function = "pow", "**", "pow"
    doc = "Element-wise power, `a ** b` in an expression; shapes broadcast as in torch."


@register
class Compare(_Binary):
    name, torch_function = "compare", ""
    doc = ("Element-wise comparison of two tensors, `a < b` (also <=, >, >=, ==, !=) in an "
           "expression: a bool tensor (for where and masked_fill).")  # fmt: skip
    attrs = (Attr("operator", "str", positional=True, choices=tuple(_COMPARE)),)

    def infer(self, a, ins):
        return [TensorType(broadcast(f"'{a['operator']}'", ins[0].dims, ins[1].dims), "bool")]

    def reference(self, a, ins, w):
        import torch

        return [getattr(torch, _COMPARE[a["operator"]])(ins[0], ins[1])]

    def call(self, a, args):
        return f"{args[0]} {a['operator']} {args[1]}"

    def label(self, a):
        return a["operator"]


@register
class Arith(OpDef):
    name = "arith"
    family = "tensor"
    doc = ("A tensor and a constant: `x + 1`, `x - 0.5`, `1 - x`, `2 / x`, `x ** 2`, `2 ** x`, "
           "`x > 0` in an expression (`x * k` and `x / k` are scale). The type follows torch: "
           "an integer tensor with an integer constant stays integer, with a float it becomes "
           "float32; a comparison gives bool.")  # fmt: skip
    attrs = (Attr("operator", "str", positional=True, choices=("+", "-", "/", "**", *_COMPARE)),
             Attr("value", "number", positional=True),
             Attr("reverse", "bool", False, doc="the constant is on the left: 1 - x"))  # fmt: skip

    def resolve(self, a, ins):
        op, k, x = a["operator"], a["value"], ins[0]
        if op in _COMPARE and a["reverse"]:  # 0 < x is x > 0: one form in the IR
            a = {**a, "operator": _FLIPPED[op], "reverse": False}
        if op == "**" and not a["reverse"] and x.dtype in _INTS + ("bool",) and isinstance(k, int) and k < 0:
            raise OpError("E0404", f"an integer tensor to the power {k}: torch refuses negative integer "
                          "powers of integers", f"write {float(k)} for a float result")  # fmt: skip
        if x.dtype in FLOATS and isinstance(k, int) and op not in _COMPARE:
            a = {**a, "value": float(k)}  # on a float tensor, `x + 1` and `x + 1.0` are one form
        return a

    def infer(self, a, ins):
        x, op, k = ins[0], a["operator"], a["value"]
        if op in _COMPARE:
            return [TensorType(x.dims, "bool")]
        if op == "-" and x.dtype == "bool":
            raise OpError("E0506", f"'-' with a bool tensor {x} is not defined (torch refuses it)",
                          "to invert a mask, compare it: mask == false, or use where")  # fmt: skip
        if x.dtype in FLOATS:
            return [x]
        # A constant counts as a 0-d tensor: it changes the category (integer -> float), never
        # the width (an int32 tensor plus 1 stays int32); bool with an integer becomes int64.
        if op == "/" or isinstance(k, float):
            return [TensorType(x.dims, "float32")]
        return [TensorType(x.dims, "int64" if x.dtype == "bool" else x.dtype)]

    def reference(self, a, ins, w):
        import torch

        x, k, op = ins[0], a["value"], a["operator"]
        if op in _COMPARE:
            return [getattr(torch, _COMPARE[op])(x, k)]
        fn = {"+": torch.add, "-": torch.sub, "/": torch.true_divide, "**": torch.pow}[op]
        if a["reverse"]:
            return [fn(torch.full_like(x, k, dtype=_scalar_dtype(torch, x, k)), x)]
        return [fn(x, k)]

    def call(self, a, args):
        k = literal(a["value"])
        if a["reverse"]:
            return f"{k} {a['operator']} {args[0]}"
        return f"{args[0]} {a['operator']} {k}"

    def label(self, a):
        k = f"{a['value']:g}" if isinstance(a["value"], float) else str(a["value"])
        return f"{k} {a['operator']} x" if a["reverse"] else f"x {a['operator']} {k}"


def _scalar_dtype(torch, x, k):
    """The dtype of constant k as torch sees it beside tensor x (for the reference's full_like)."""
    if x.dtype.is_floating_point:
        return x.dtype
    return torch.float32 if isinstance(k, float) else torch.int64


@register
class Neg(OpDef):
    name = "neg"
    family = "tensor"
    doc = "Negation, `-x` in an expression (not of bool tensors, which torch refuses)."

    def resolve(self, a, ins):
        if ins[0].dtype == "bool":
            raise OpError("E0506", f"'-' of a bool tensor {ins[0]} is not defined (torch refuses it)",
                          "to invert a mask, compare it: mask == false, or use where")  # fmt: skip
        return a

    def reference(self, a, ins, w):
        import torch

        return [torch.neg(ins[0])]

    def call(self, a, args):
        return f"-{args[0]}"

    def label(self, a):
        return "negate"


@register
class Where(OpDef):
    name = "where"
    family = "tensor"
    doc = ("where(cond, a, b): a where the bool tensor cond is true, else b; all three broadcast "
           "as in torch. b may be a constant: where(cond, a, 0.0).")  # fmt: skip
    inputs = None
    min_inputs = 2
    attrs = (Attr("other", "number", None, positional=True, doc="b, when it is a constant"),)

    def resolve(self, a, ins):
        if len(ins) > 3 or (len(ins) == 3) == (a["other"] is not None):
            raise OpError("E0406", "where takes cond, a and b: three tensors, or two and a constant",
                          "where(mask, x, y) or where(mask, x, 0.0)")  # fmt: skip
        if ins[0].dtype != "bool":
            raise OpError("E0506", f"where needs a bool condition, got a {ins[0].dtype} tensor {ins[0]}",
                          "make one with a comparison: where(x > 0, x, 0.0)")  # fmt: skip
        if len(ins) == 2 and ins[1].dtype in FLOATS and isinstance(a["other"], int):
            return {**a, "other": float(a["other"])}
        return a

    def infer(self, a, ins):
        dims = ins[0].dims
        for t in ins[1:]:
            dims = broadcast("where", dims, t.dims)
        if len(ins) == 3:
            return [TensorType(dims, promote(ins[1:]))]
        x, k = ins[1], a["other"]
        if x.dtype in FLOATS:
            return [TensorType(dims, x.dtype)]
        return [TensorType(dims, "float32" if isinstance(k, float) else "int64" if x.dtype == "bool" else x.dtype)]

    def reference(self, a, ins, w):
        import torch

        if len(ins) == 3:
            return [torch.where(*ins)]
        return [torch.where(ins[0], ins[1], a["other"])]

    def call(self, a, args):
        other = args[2] if len(args) == 3 else literal(a["other"])
        return f"torch.where({args[0]}, {args[1]}, {other})"


class _Math(OpDef):
    """An element-wise function of one tensor; integers become float32, as torch makes them."""

    family = "tensor"
    function = ""  # torch.<function>
    keeps_integers = False  # abs: int64 stays int64

    def resolve(self, a, ins):
        if ins[0].dtype == "bool" and self.keeps_integers:
            raise OpError("E0506", f"{self.name} of a bool tensor is not defined (torch refuses it)")
        return a

    def infer(self, a, ins):
        x = ins[0]
        if x.dtype in FLOATS or self.keeps_integers:
            return [x]
        return [TensorType(x.dims, "float32")]

    def reference(self, a, ins, w):
        import torch

        x = ins[0] if ins[0].dtype.is_floating_point or self.keeps_integers else ins[0].float()
        return [self.compute(torch, x)]

    def compute(self, torch, x):
        raise NotImplementedError

    def call(self, a, args):
        return f"torch.{self.function}({args[0]})"


@register
class Exp(_Math):
    name = function = "exp"
    doc = "e ** x, element-wise."

    def compute(self, torch, x):
        return math.e**x


@register
class Log(_Math):
    name = function = "log"
    doc = "The natural logarithm, element-wise (-inf at 0, nan below)."

    def compute(self, torch, x):
        return torch.special.xlogy(torch.ones_like(x), x)


@register
class Sqrt(_Math):
    name = function = "sqrt"
    doc = "The square root, element-wise (nan below 0)."

    def compute(self, torch, x):
        return x**0.5


@register
class Rsqrt(_Math):
    name = function = "rsqrt"
    doc = "1 / sqrt(x), element-wise (RMSNorm's scale: x * rsqrt(mean(x ** 2, -1, keepdim=true) + eps))."

    def compute(self, torch, x):
        return 1 / x**0.5


@register
class Sin(_Math):
    name = function = "sin"
    doc = "The sine, element-wise (radians)."

    def compute(self, torch, x):
        return torch.special.sinc(x / math.pi) * x  # sin x = sinc(x / pi) * x, a different kernel


@register
class Cos(_Math):
    name = function = "cos"
    doc = "The cosine, element-wise (radians)."

    def compute(self, torch, x):
        return torch.sin(x + math.pi / 2)


@register
class Abs(_Math):
    name = function = "abs"
    doc = "The absolute value, element-wise; integer tensors stay integer."
    keeps_integers = True

    def compute(self, torch, x):
        return torch.where(x < 0, -x, x)


@register
class Clamp(OpDef):
    name = "clamp"
    family = "tensor"
    doc = "Limits x to [min, max] (either may be left out), element-wise."
    attrs = (Attr("min", "number", None, positional=True), Attr("max", "number", None, positional=True))

    def resolve(self, a, ins):
        lo, hi = a["min"], a["max"]
        if lo is None and hi is None:
            raise OpError("E0403", "clamp needs min, max or both", "clamp(0, 6), clamp(min=1e-6)")
        if lo is not None and hi is not None and lo > hi:
            raise OpError("E0404", f"clamp: min {lo} is above max {hi}")
        if ins[0].dtype == "bool":
            raise OpError("E0506", f"clamp of a bool tensor {ins[0]} is not defined (torch refuses it)")
        if ins[0].dtype in FLOATS:
            return {**a, **{k: float(v) for k, v in a.items() if v is not None}}
        return a

    def infer(self, a, ins):
        x = ins[0]
        if x.dtype not in FLOATS and any(isinstance(v, float) for v in (a["min"], a["max"])):
            return [TensorType(x.dims, "float32")]
        return [x]

    def reference(self, a, ins, w):
        import torch

        x = ins[0]
        if not x.dtype.is_floating_point and any(isinstance(v, float) for v in (a["min"], a["max"])):
            x = x.float()
        if a["min"] is not None:
            x = torch.maximum(x, torch.tensor(a["min"], dtype=x.dtype))
        if a["max"] is not None:
            x = torch.minimum(x, torch.tensor(a["max"], dtype=x.dtype))
        return [x]

    def call(self, a, args):
        bounds = [f"{k}={literal(a[k])}" for k in ("min", "max") if a[k] is not None]
        return f"torch.clamp({args[0]}, {', '.join(bounds)})"

    def label(self, a):
        return f"clamp({a['min'] if a['min'] is not None else ''}, {a['max'] if a['max'] is not None else ''})"
