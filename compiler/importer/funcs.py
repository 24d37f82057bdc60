"""Traced functions and methods as spec expressions.

torch.fx records `torch.flatten(x, 1)`, `x + y`, `x.permute(0, 2, 1)` and `x[:, 0]` as
call_function / call_method nodes; each entry here turns one into a spec expression, given
its arguments already as expressions (:class:`Arg`: the text and, for tensors, the shape
ShapeProp saw). An entry returns None when its arguments have no spec form; the importer then
reports E0701 with the module path and the function's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from modelc.importer.expr import ATOM, E, add, binary, chain, literal

__all__ = ["Arg", "FUNCTIONS", "METHODS", "function_name"]


@dataclass
class Arg:
    """An argument of a traced call: a tensor or value expression, or a Python constant."""

    expr: E | None  # None: a constant (value holds it)
    value: Any = None
    shape: tuple | None = None  # a tensor's shape (ShapeProp), when known

    @property
    def is_tensor(self) -> bool:
        return self.expr is not None and self.shape is not None

    @property
    def is_expr(self) -> bool:
        return self.expr is not None

    def text(self) -> str:
        return self.expr.text if self.expr is not None else literal(self.value)


def function_name(fn: Any) -> str:
    """`torch.flatten`, `torch.nn.functional.relu`, `operator.add`: how errors and the table name it."""
    module = getattr(fn, "__module__", None) or ""
    name = getattr(fn, "__name__", repr(fn))
    if module in ("torch._C._nn", "torch._C._VariableFunctions", "torch._C") or module.startswith("torch._C"):
        module = "torch.nn.functional" if module == "torch._C._nn" else "torch"
    if module == "_operator":
        module = "operator"
    return f"{module}.{name}" if module else name


def _unary(op: str) -> Callable:
    return lambda a, kw: chain(a[0].expr, op) if a[0].is_expr else None


def _add(a: list[Arg], kw: dict) -> E | None:
    if len(a) == 2 and a[0].is_expr and a[1].is_expr:
        return add(a[0].expr, a[1].expr)
    return None


def _product(op: str) -> Callable:
    def make(a: list[Arg], kw: dict) -> E | None:
        if len(a) != 2:
            return None
        x, y = a
        if x.is_tensor and y.is_tensor:  # element-wise (squeeze-excitation's x * scale) or @
            return binary(x.expr, op, y.expr) if op in ("@", "*", "/") else None
        if op == "@":
            return None
        left = x.expr if x.is_expr else E(literal(x.value))
        right = y.expr if y.is_expr else E(literal(y.value))
        if y.is_tensor:  # 2 * x, 1 / x: the constant first, as the spec allows
            return binary(left, op, right) if op in ("*", "/") else None
        return binary(left, op, right)

    return make


def _dim(a: list[Arg], kw: dict, i: int, name: str, default: Any) -> Any:
    return a[i].value if len(a) > i else kw.get(name, default)


def _flatten(a: list[Arg], kw: dict, default: int = 0) -> E | None:
    start, end = _dim(a, kw, 1, "start_dim", default), _dim(a, kw, 2, "end_dim", -1)
    step = "flatten" if start == 1 else f"flatten({start})"
    if end != -1:
        step = f"flatten({start}, end={end})"
    return chain(a[0].expr, step)


def _cat(a: list[Arg], kw: dict) -> E | None:
    tensors = a[0].value if a and isinstance(a[0].value, list) else None
    if not tensors or not all(isinstance(t, Arg) and t.is_expr for t in tensors):
        return None
    dim = _dim(a, kw, 1, "dim", 0)
    return E(f"concat({', '.join(t.text() for t in tensors)}, dim={dim})")


def _dims(a: list[Arg], kw: dict) -> list | None:
    rest = [x.value for x in a[1:]]
    if len(rest) == 1 and isinstance(rest[0], (list, tuple)):
        rest = list(rest[0])
    return rest or kw.get("dims")


def _permute(a: list[Arg], kw: dict) -> E | None:
    return chain(a[0].expr, f"permute({literal(_dims(a, kw))})")


def _transpose(a: list[Arg], kw: dict) -> E | None:
    return chain(a[0].expr, f"transpose({a[1].value}, {a[2].value})")


def _reshape(a: list[Arg], kw: dict) -> E | None:
    """reshape/view: `flatten(s, e)` when it merges neighbouring dimensions (as ShapeProp saw it),
    else the target sizes (the batch, dimension 0, as -1)."""
    src, out_shape = a[0], kw.get("__out__")
    if src.shape is None or out_shape is None:
        return None
    ins, outs = list(src.shape), list(out_shape)
    for s in range(len(ins)):
        for e in range(s + 1, len(ins)):
            merged = ins[:s] + [_prod(ins[s : e + 1])] + ins[e + 1 :]
            if merged == outs:
                return _flatten([src, Arg(None, s), Arg(None, e if e != len(ins) - 1 else -1)], {}, 1)
    if outs and ins and outs[0] == ins[0]:
        outs = [-1] + outs[1:]
    return chain(src.expr, f"reshape({literal(outs)})")


def _prod(xs: list[int]) -> int:
    out = 1
    for x in xs:
        out *= x
    return out


def _mean(a: list[Arg], kw: dict) -> E | None:
    dim, keep = _dim(a, kw, 1, "dim", None), _dim(a, kw, 2, "keepdim", False)
    if dim is None:
        return None
    return chain(a[0].expr, f"mean({literal(dim)}" + (", keepdim=true)" if keep else ")"))


def _softmax(a: list[Arg], kw: dict) -> E | None:
    dim = _dim(a, kw, 1, "dim", -1)
    return chain(a[0].expr, "softmax" if dim == -1 else f"softmax({dim})")


def _attr_step(op: str, name: str, default: Any) -> Callable:
    def make(a: list[Arg], kw: dict) -> E | None:
        v = _dim(a, kw, 1, name, default)
        return chain(a[0].expr, op if v == default else f"{op}({literal(v)})")

    return make


def _adaptive_avg(a: list[Arg], kw: dict) -> E | None:
    size = _dim(a, kw, 1, "output_size", None)
    if isinstance(size, (list, tuple)) and len(set(size)) == 1:
        size = size[0]
    return chain(a[0].expr, f"adaptive_avgpool({literal(size)})")


def _dropout(a: list[Arg], kw: dict) -> E | None:
    return chain(a[0].expr, f"dropout({literal(_dim(a, kw, 1, 'p', 0.5))})")


def _getitem(a: list[Arg], kw: dict) -> E | None:
    """x[:, 0] -> select(1, 0); x[..., 0::2] -> slice(-1, 0, step=2); shape(x)[i] -> shape(x)[i]."""
    x, index = a
    if x.is_expr and not x.is_tensor and isinstance(index.value, int):
        return E(f"{x.expr.at_least(ATOM)}[{index.value}]")
    if not x.is_tensor:
        return None
    items = index.value if isinstance(index.value, tuple) else (index.value,)
    rank = len(x.shape)
    if items.count(Ellipsis) > 1:
        return None
    if Ellipsis in items:
        at = items.index(Ellipsis)
        fill = rank - (len(items) - 1)
        items = items[:at] + (slice(None),) * fill + items[at + 1 :]
    out, dim = x.expr, 0
    steps = []
    for item in items:
        if isinstance(item, int):
            steps.append(f"select({dim}, {item})")
            continue  # the dimension goes away
        if not isinstance(item, slice) or not all(isinstance(v, (int, type(None))) for v in
                                                  (item.start, item.stop, item.step)):  # fmt: skip
            return None
        if item != slice(None):
            args = [str(dim), str(item.start or 0)] + ([str(item.stop)] if item.stop is not None else [])
            steps.append(f"slice({', '.join(args)}" + (f", step={item.step})" if item.step not in (None, 1) else ")"))
        dim += 1
    for step in steps:
        out = chain(out, step)
    return out


def _size(a: list[Arg], kw: dict) -> E | None:
    if len(a) > 1:
        return E(f"size({a[0].text()}, {a[1].value})")
    return E(f"shape({a[0].text()})")


def _getattr(a: list[Arg], kw: dict) -> E | None:
    return E(f"shape({a[0].text()})") if a[1].value == "shape" and a[0].is_tensor else None


def _passthrough(a: list[Arg], kw: dict) -> E | None:
    return a[0].expr


FUNCTIONS: dict[str, Callable] = {
    "operator.add": _add, "operator.iadd": _add, "torch.add": _add,
    "operator.mul": _product("*"), "operator.truediv": _product("/"), "operator.floordiv": _product("//"),
    "operator.matmul": _product("@"), "torch.matmul": _product("@"),
    "operator.getitem": _getitem, "builtins.getattr": _getattr,
    "torch.flatten": _flatten, "torch.cat": _cat, "torch.concat": _cat, "torch.permute": _permute,
    "torch.transpose": _transpose, "torch.reshape": _reshape,
    "torch.relu": _unary("relu"), "torch.nn.functional.relu": _unary("relu"),
    "torch.nn.functional.relu6": _unary("relu6"), "torch.nn.functional.hardtanh": None,
    "torch.nn.functional.gelu": _unary("gelu"), "torch.sigmoid": _unary("sigmoid"), "torch.tanh": _unary("tanh"),
    "torch.nn.functional.hardswish": _unary("hardswish"), "torch.nn.functional.hardsigmoid": _unary("hardsigmoid"),
    "torch.nn.functional.silu": _unary("silu"), "torch.nn.functional.mish": _unary("mish"),
    "torch.exp": _unary("exp"), "torch.sqrt": _unary("sqrt"), "torch.rsqrt": _unary("rsqrt"),
    "torch.softmax": _softmax, "torch.nn.functional.softmax": _softmax, "torch.mean": _mean,
    "torch.nn.functional.adaptive_avg_pool2d": _adaptive_avg, "torch.nn.functional.dropout": _dropout,
    "torch.unsqueeze": _attr_step("unsqueeze", "dim", None),
}  # fmt: skip

METHODS: dict[str, Callable] = {
    "add": _add, "mul": _product("*"), "matmul": _product("@"), "flatten": _flatten,
    "permute": _permute, "transpose": _transpose, "reshape": _reshape, "view": _reshape,
    "mean": _mean, "softmax": _softmax, "relu": _unary("relu"), "sigmoid": _unary("sigmoid"),
    "tanh": _unary("tanh"), "unsqueeze": _attr_step("unsqueeze", "dim", None), "size": _size,
    "exp": _unary("exp"), "sqrt": _unary("sqrt"), "rsqrt": _unary("rsqrt"),
    "contiguous": _passthrough,
}  # fmt: skip
# chunk, unbind and split have several outputs: convert.py binds them (`a, b = x -> chunk(2)`).
FUNCTIONS = {k: v for k, v in FUNCTIONS.items() if v is not None}
