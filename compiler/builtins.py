"""Compile-time arithmetic and the built-in functions of the language.

These work on plain values (int, float, bool, str, list, symbolic dims).
Tensor operands are handled by the elaborator before it gets here. Errors are
:class:`EvalError`; the elaborator adds the span.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from modelc.symbolic import Sym
from modelc.values import Tensor, describe_value, type_name

__all__ = ["BUILTINS", "MAX_INT", "MAX_ITEMS", "EvalError", "arith", "check_list", "compare", "truth"]

MAX_INT = 2**63 - 1  # numbers beyond this are a limit error (no 10**10**9 hangs)
MAX_ITEMS = 1_000_000  # numbers in one list value, nested lists flattened (a literal weight)
MAX_NESTING = 32  # lists in lists


class EvalError(Exception):
    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


def _num(v) -> bool:
    return isinstance(v, (int, float, Sym)) and not isinstance(v, bool)


def _bounded(v):
    if isinstance(v, int) and abs(v) > MAX_INT:
        raise EvalError("E0508", f"number too large ({len(str(abs(v)))} digits)",
                        f"numbers are limited to {MAX_INT}")  # fmt: skip
    if isinstance(v, float) and not math.isfinite(v):
        raise EvalError("E0507", "arithmetic overflow (result is not a finite number)")
    return v


def check_list(v: list) -> list:
    """`v` if it holds at most MAX_ITEMS values once flattened (a list that appears twice counts
    twice, as in the weight it may become) and nests at most MAX_NESTING deep; else E0508."""
    memo: dict[int, int] = {}

    def count(x, depth: int) -> int:
        if not isinstance(x, list):
            return 1
        if depth > MAX_NESTING:
            raise EvalError("E0508", f"lists nested more than {MAX_NESTING} deep")
        if id(x) not in memo:
            total = 0
            for item in x:
                total += count(item, depth + 1)
                if total > MAX_ITEMS:
                    raise EvalError("E0508", f"a list of more than {MAX_ITEMS:,} values (nested lists "
                                    "counted in full)", "a literal weight this large belongs in a checkpoint")
            memo[id(x)] = total
        return memo[id(x)]

    count(v, 1)
    return v


def arith(op: str, a, b):
    if op == "+" and isinstance(a, list) and isinstance(b, list):
        return check_list(a + b)
    if op == "*" and isinstance(a, list) and isinstance(b, int) and not isinstance(b, bool):
        if len(a) * b > MAX_ITEMS:
            raise EvalError("E0508", f"a list of {len(a) * b:,} items; the limit is {MAX_ITEMS:,}")
        return check_list(a * b)
    if not (_num(a) and _num(b)):
        raise EvalError("E0506", f"cannot apply '{op}' to {describe_value(a)} and {describe_value(b)}",
                        _arith_hint(op, a, b))  # fmt: skip
    sym = isinstance(a, Sym) or isinstance(b, Sym)
    if sym and (op in ("/", "%", "**") or isinstance(a, float) or isinstance(b, float)
                or (op == "//" and isinstance(b, Sym))):  # 3 // H: no floor of a reciprocal
        raise EvalError("E0506", f"'{op}' is not supported on symbolic dimension {a if isinstance(a, Sym) else b}")
    if op in ("/", "//", "%") and b == 0:
        raise EvalError("E0507", "division by zero")
    if op == "**":
        return _power(a, b)
    if op == "//" and isinstance(a, Sym):
        if not isinstance(b, int) or b <= 0:
            raise EvalError("E0506", "a symbolic dimension can only be divided by a positive integer")
        return a // b
    result = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
              "//": lambda: a // b, "%": lambda: a % b}[op]()  # fmt: skip
    return _bounded(result)


def _power(a, b):
    ints = isinstance(b, int) and isinstance(a, int)
    if ints and b > 0 and a not in (0, 1, -1) and b * math.log2(abs(a)) > 63:
        raise EvalError("E0508", f"{a} ** {b} is too large", f"numbers are limited to {MAX_INT}")
    try:
        return _bounded(float(a) ** b if ints and b < 0 else a**b)
    except (OverflowError, ZeroDivisionError):
        raise EvalError("E0507", f"{a} ** {b} cannot be computed") from None


def _arith_hint(op, a, b) -> str | None:
    if isinstance(a, Tensor) or isinstance(b, Tensor):
        return ("tensors take +, -, *, /, ** and comparisons, with tensors or numbers; for "
                "x // k or x % k, the result's values are not known when compiling")
    if isinstance(a, str) or isinstance(b, str):
        return "strings cannot take part in arithmetic"
    return None


def compare(op: str, a, b) -> bool:
    if op in ("==", "!="):
        if isinstance(a, Tensor) or isinstance(b, Tensor):
            raise EvalError("E0509", f"cannot compare {describe_value(a)} and {describe_value(b)}",
                            "a tensor compares with a tensor or a number (element-wise, a bool "
                            "tensor); to compare shapes, channels(x) == 64")  # fmt: skip
        same = a == b and type_name(a) == type_name(b) or (_num(a) and _num(b) and a == b)
        return same if op == "==" else not same
    if isinstance(a, Sym) or isinstance(b, Sym):
        raise EvalError("E0506", f"cannot order symbolic dimension {a if isinstance(a, Sym) else b}")
    if not ((_num(a) and _num(b)) or (isinstance(a, str) and isinstance(b, str))):
        raise EvalError("E0506", f"cannot compare {describe_value(a)} and {describe_value(b)} with '{op}'")
    return {"<": a < b, "<=": a <= b, ">": a > b, ">=": a >= b}[op]


def truth(v, what: str) -> bool:
    if not isinstance(v, bool):
        raise EvalError("E0506", f"{what} must be true or false, got {describe_value(v)}")
    return v


# ---- built-in functions (compile time; never touch tensors' values) --------------
def _tensor(v, fn: str) -> Tensor:
    if not isinstance(v, Tensor):
        raise EvalError("E0506", f"{fn}() expects a tensor, got {describe_value(v)}")
    return v


def _channels(x):
    t = _tensor(x, "channels").type
    if t.rank < 2:
        raise EvalError("E0305", f"channels() needs a tensor of rank 2 or more, got {t}")
    return t.dims[1]


def _size(x, dim):
    t = _tensor(x, "size").type
    if not isinstance(dim, int) or not -t.rank <= dim < t.rank:
        raise EvalError("E0404", f"size(): dim {describe_value(dim)} is out of range for {t}")
    return t.dims[dim]


def _minmax(fn):
    def run(*args):
        items = args[0] if len(args) == 1 and isinstance(args[0], list) else list(args)
        if not items or not all(_num(v) and not isinstance(v, Sym) for v in items):
            raise EvalError("E0506", f"{fn.__name__}() expects numbers")
        return fn(items)

    return run


def _to_int(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError("E0506", f"int() expects a number, got {describe_value(v)}")
    if isinstance(v, float) and not math.isfinite(v):
        raise EvalError("E0507", f"int() of {v}")
    return int(v)


def _to_float(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError("E0506", f"float() expects a number, got {describe_value(v)}")
    return float(v)


def _len(v):
    if not isinstance(v, list):
        raise EvalError("E0506", f"len() expects a list, got {describe_value(v)}")
    return len(v)


def _abs(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise EvalError("E0506", f"abs() expects a number, got {describe_value(v)}")
    return abs(v)


# name -> (function, number of arguments (None: any), one-line doc)
BUILTINS: dict[str, tuple[Callable, int | None, str]] = {
    "channels": (_channels, 1, "channels(x): size of dimension 1 of tensor x"),
    "shape": (lambda x: list(_tensor(x, "shape").type.dims), 1, "shape(x): the dimensions of x, a list"),
    "rank": (lambda x: _tensor(x, "rank").type.rank, 1, "rank(x): number of dimensions of x"),
    "size": (_size, 2, "size(x, d): size of dimension d of x"),
    "len": (_len, 1, "len(list): number of items"),
    "min": (_minmax(min), None, "min(a, b, ...) or min(list)"),
    "max": (_minmax(max), None, "max(a, b, ...) or max(list)"),
    "abs": (_abs, 1, "abs(n)"),
    "int": (_to_int, 1, "int(n): round toward zero"),
    "float": (_to_float, 1, "float(n)"),
}
