"""Expressions: `_eval` dispatches on the AST type to an `_e_<Type>` method.

Compile-time values (numbers, strings, lists, symbolic dimensions) are folded here; an
operator on tensors (`a + b`, `a @ b`, `t * 2`) becomes a node through `_op`, and a chain
or a call is handed to the steps and calls. Names are looked up in the scope, then among
the file's constants (evaluated once, on first use); an undefined name is reported as used
before its definition, or as part of a cycle of bindings, when it is assigned later in the
body.
"""

from __future__ import annotations

from typing import Any

from modelc import ops
from modelc import syntax as S
from modelc.builtins import BUILTINS, EvalError, arith, check_list, compare, truth
from modelc.diagnostics import Note, error
from modelc.elaborate.context import _MISSING, LIMITS, Ctx, Scope
from modelc.ops.base import suggest
from modelc.symbolic import TooComplex, sym
from modelc.values import Configured, Poison, Tensor, describe_value


class ExpressionsMixin:
    """Evaluates expressions; part of `_Elaborator` (modelc.elaborate)."""

    def _eval(self, ctx: Ctx, e) -> Any:
        method = getattr(self, "_e_" + type(e).__name__)
        try:
            return method(ctx, e)
        except EvalError as exc:
            raise error(exc.code, exc.message, e.span, exc.hint, ctx.frame.trace) from None
        except TooComplex as exc:  # NOTE: [Bounded expressions] in symbolic.py
            raise error("E0508", f"too complex: {exc}", e.span,
                        "give the input concrete sizes (--input NAME=D1,D2,...)", ctx.frame.trace) from None

    def _e_Literal(self, ctx, e: S.Literal):
        v = e.value
        if isinstance(v, int) and not isinstance(v, bool) and v > 2**63 - 1:
            raise EvalError("E0508", f"number too large ({len(str(v))} digits)")
        return v

    def _e_Name(self, ctx: Ctx, e: S.Name):
        v = ctx.scope.lookup(e.id)
        if isinstance(v, Configured) or v is _MISSING and e.id in self.program.defs:
            raise EvalError("E0506", f"'{e.id}' is a def, a layer with some of its attributes, not a value",
                            f"apply it: x -> {e.id} or {e.id}(x)")  # fmt: skip
        if v is not _MISSING:
            return v
        if e.id in self.program.consts:
            return self._const(ctx, e.id)
        if ctx.symbols:
            return sym(e.id)
        if e.id in ops.REGISTRY or e.id in self.program.blocks or e.id in BUILTINS:
            raise EvalError("E0506", f"'{e.id}' is a layer, not a value",
                            f"apply it: x -> {e.id} or {e.id}(x)")  # fmt: skip
        self._undefined(ctx, e)

    def _undefined(self, ctx: Ctx, e: S.Name):
        later = _later(ctx)
        if e.id in later:
            cycle = self._cycle(e.id, ctx.current, later)
            if cycle:
                raise error("E0205", f"cycle between bindings: {' -> '.join(cycle)}", e.span,
                            "a model is a directed acyclic graph; break the loop")  # fmt: skip
            where = later[e.id].span
            raise error("E0204", f"'{e.id}' is used before its definition", e.span,
                        f"it is defined later, at line {where.line}; move that line up",
                        notes=(Note("defined here", where),))  # fmt: skip
        candidates = ctx.scope.visible() | set(self.program.consts)
        raise error("E0201", f"undefined name '{e.id}'", e.span, suggest(e.id, candidates),
                    ctx.frame.trace)  # fmt: skip

    def _cycle(self, start: str, current: tuple[str, ...], later: dict[str, S.Assign]) -> list[str]:
        """A path start -> ... -> one of `current` through the pending assignments, if any."""
        seen: set[str] = set()

        def walk(name: str, path: list[str]) -> list[str]:
            if name in current:
                return path + [name]
            if name in seen or name not in later:
                return []
            seen.add(name)
            for ref in sorted(_names_in(later[name].value)):
                found = walk(ref, path + [name])
                if found:
                    return found
            return []

        found = walk(start, [])
        return [found[-1], *found] if found else []

    def _const(self, ctx: Ctx, name: str):
        if name in self.globals.vars:
            return self.globals.vars[name]
        const = self.program.consts[name]
        if name in self._const_stack:
            raise error("E0205", f"constant '{name}' is defined in terms of itself", const.span)
        self._const_stack.append(name)
        try:
            value = self._eval(Ctx(ctx.frame, Scope({})), const.value)
        finally:
            self._const_stack.pop()
        if isinstance(value, Tensor):
            raise error("E0509", f"constant '{name}' cannot be a tensor", const.span)
        self.globals.vars[name] = value
        return value

    def _e_List(self, ctx, e: S.List):
        items = [self._eval(ctx, x) for x in e.items]
        return Poison if any(v is Poison for v in items) else check_list(items)

    def _e_BinOp(self, ctx, e: S.BinOp):
        """`a + b + c` is ((a + b) + c): the left spine is walked in a loop, not by recursion,
        so a sum of 200,000 terms is not "nested too deeply"."""
        spine = _left_spine(e, S.BinOp)
        value = self._eval(ctx, spine[-1].left)
        for node in reversed(spine):
            right = self._eval(ctx, node.right)
            try:
                value = self._binop(ctx, node, value, right)
            except EvalError as exc:
                raise error(exc.code, exc.message, node.span, exc.hint, ctx.frame.trace) from None
        return value

    def _binop(self, ctx, e: S.BinOp, a, b):
        if a is Poison or b is Poison:
            return Poison
        if e.op in _TENSOR_OPS and isinstance(a, Tensor) and isinstance(b, Tensor):
            return self._op(ctx, ops.REGISTRY[_TENSOR_OPS[e.op]], [a, b], {}, None, e.span)
        if e.op == "@":
            if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
                raise EvalError("E0506", f"'@' is the matrix product of two tensors, got "
                                f"{describe_value(a)} and {describe_value(b)}")  # fmt: skip
            return self._op(ctx, ops.REGISTRY["matmul"], [a, b], {}, None, e.span)
        scaled = _scaling(e.op, a, b)
        if scaled is not None:
            return self._op(ctx, ops.REGISTRY["scale"], [scaled[0]], {"factor": scaled[1]}, None, e.span)
        constant = _with_constant(e.op, a, b)
        if constant is not None:
            tensor, attrs = constant
            return self._op(ctx, ops.REGISTRY["arith"], [tensor], attrs, None, e.span)
        return arith(e.op, a, b)

    def _e_Neg(self, ctx, e: S.Neg):
        v = self._eval(ctx, e.operand)
        if isinstance(v, Tensor):
            return self._op(ctx, ops.REGISTRY["neg"], [v], {}, None, e.span)
        return Poison if v is Poison else arith("-", 0, v)

    def _e_Not(self, ctx, e: S.Not):
        v = self._eval(ctx, e.operand)
        return Poison if v is Poison else not truth(v, "the operand of 'not'")

    def _e_BoolOp(self, ctx, e: S.BoolOp):
        """`a or b or c`, short-circuit, left to right (a loop over the left spine, as `_e_BinOp`)."""
        spine = _left_spine(e, S.BoolOp)
        value = self._eval(ctx, spine[-1].left)
        for node in reversed(spine):
            if value is Poison:
                return Poison
            try:
                if truth(value, f"the left side of '{node.op}'") == (node.op == "or"):
                    continue
                right = self._eval(ctx, node.right)
                value = Poison if right is Poison else truth(right, f"the right side of '{node.op}'")
            except EvalError as exc:
                raise error(exc.code, exc.message, node.span, exc.hint, ctx.frame.trace) from None
        return value

    def _e_Compare(self, ctx, e: S.Compare):
        values = [self._eval(ctx, x) for x in e.operands]
        if any(v is Poison for v in values):
            return Poison
        if any(isinstance(v, Tensor) for v in values):
            if len(e.ops) > 1:
                raise EvalError("E0506", "a chained comparison of tensors (a < b < c) has no single "
                                "meaning", "compare two at a time and combine: where(a < b, ...)")  # fmt: skip
            return self._compare_tensors(ctx, e, e.ops[0], *values)
        return all(compare(op, a, b) for op, a, b in zip(e.ops, values, values[1:]))

    def _compare_tensors(self, ctx, e: S.Compare, op: str, a, b):
        """`x > 0`, `a == b`: an element-wise comparison, a bool tensor."""
        if isinstance(a, Tensor) and isinstance(b, Tensor):
            return self._op(ctx, ops.REGISTRY["compare"], [a, b], {"operator": op}, None, e.span)
        constant = _with_constant(op, a, b)
        if constant is None:
            return compare(op, a, b)  # a tensor and a string, list, ...: the usual error
        tensor, attrs = constant
        return self._op(ctx, ops.REGISTRY["arith"], [tensor], attrs, None, e.span)

    def _e_Range(self, ctx, e: S.Range):
        lo, hi = self._eval(ctx, e.lo), self._eval(ctx, e.hi)
        if lo is Poison or hi is Poison:
            return Poison
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (lo, hi)):
            raise EvalError("E0506", f"a range needs integers, got {describe_value(lo)}..{describe_value(hi)}")
        if hi - lo > LIMITS["repeat"]:
            raise EvalError("E0508", f"range {lo}..{hi} has {hi - lo:,} items; the limit is {LIMITS['repeat']:,}")
        return list(range(lo, hi))

    def _e_Index(self, ctx, e: S.Index):
        obj, idx = self._eval(ctx, e.obj), self._eval(ctx, e.index)
        if obj is Poison or idx is Poison:
            return Poison
        if not isinstance(obj, list):
            hint = "to pick from a tensor, use an op such as select" if isinstance(obj, Tensor) else None
            raise EvalError("E0506", f"cannot index {describe_value(obj)}", hint)
        if not isinstance(idx, int) or isinstance(idx, bool):
            raise EvalError("E0506", f"a list index must be an integer, got {describe_value(idx)}")
        if not -len(obj) <= idx < len(obj):
            raise EvalError("E0404", f"index {idx} is out of range for a list of {len(obj)}")
        return obj[idx]

    def _e_IfElse(self, ctx, e: S.IfElse):
        cond = self._eval(ctx, e.cond)
        if cond is Poison:
            return Poison
        # Only the chosen branch is elaborated: the other creates no layers.
        return self._eval(ctx, e.then if truth(cond, "a condition") else e.else_)

    def _e_Chain(self, ctx, e: S.Chain):
        value = self._eval(ctx, e.head)
        for step in e.steps:
            value = self._step(ctx, step, value)
        return value

    def _e_Call(self, ctx, e: S.Call):
        return self._call(ctx, e, None, None, None)

    def _e_Labelled(self, ctx, e: S.Labelled):
        return self._call(ctx, e.call, None, self._label(ctx, e.label, e.label_span), e.label_span)


def _left_spine(e, kind) -> list:
    """`e`, its left operand, that one's left operand, ... while they are of type `kind`."""
    spine = [e]
    while isinstance(spine[-1].left, kind):
        spine.append(spine[-1].left)
    return spine


def _later(ctx: Ctx) -> dict[str, S.Assign]:
    """The assignments still ahead of the running statement in its body (built on an error only:
    doing it for every statement is quadratic in the length of the body)."""
    if ctx.body is None:
        return {}
    body, i = ctx.body
    return {n: s for s in body[i + 1 :] if isinstance(s, S.Assign) for n in s.names}


def _names_in(expr) -> set[str]:
    """Every Name read by an expression (for cycle reports)."""
    out: set[str] = set()
    stack = [expr]
    while stack:
        e = stack.pop()
        if isinstance(e, S.Name):
            out.add(e.id)
        elif isinstance(e, tuple):
            stack.extend(e)
        elif hasattr(e, "__dataclass_fields__"):
            stack.extend(getattr(e, f) for f in e.__dataclass_fields__ if f != "span")
    return out


# Operators between two tensors, and the op each becomes (NOTE: [Constants are attributes]).
_TENSOR_OPS = {"+": "add", "-": "sub", "*": "mul", "/": "div", "**": "pow"}
_WITH_CONSTANT = ("+", "-", "/", "**", "<", "<=", ">", ">=", "==", "!=")


def _with_constant(op: str, a, b) -> tuple[Tensor, dict] | None:
    """`x + 1`, `1 - x`, `x ** 2`, `x > 0`: (the tensor, the `arith` node's attributes)."""
    if op not in _WITH_CONSTANT:
        return None
    for tensor, k, reverse in ((a, b, False), (b, a, True)):
        if isinstance(tensor, Tensor) and isinstance(k, (int, float)) and not isinstance(k, bool):
            return tensor, {"operator": op, "value": k, "reverse": reverse}
    return None


def _scaling(op: str, a, b) -> tuple[Tensor, int | float] | None:
    """`t * k`, `k * t`, `t / k` for a tensor t and a number k: (t, factor)."""
    number = (int, float)
    if isinstance(a, Tensor) and isinstance(b, number) and not isinstance(b, bool) and op in ("*", "/"):
        if op == "/" and b == 0:
            raise EvalError("E0507", "division by zero")
        return a, b if op == "*" else 1.0 / b  # an int stays one: `t * 2` keeps int64 (ops.Scale)
    if op == "*" and isinstance(b, Tensor) and isinstance(a, number) and not isinstance(a, bool):
        return b, a
    return None
