"""Blocks: instantiation (a container with its own frame and scope, its body run on the
input tensors) and the binding and checking of block and model parameters.
"""

from __future__ import annotations

from typing import Any

from modelc import syntax as S
from modelc.diagnostics import Note, Span, error
from modelc.elaborate.context import LIMITS, Ctx, Frame, Scope
from modelc.ir import Container
from modelc.ops.base import suggest
from modelc.values import Poison, describe_value, type_name

_PARAM_TYPES = ("int", "float", "bool", "str", "list")


class BlocksMixin:
    """Instantiates blocks and binds parameters; part of `_Elaborator` (modelc.elaborate)."""

    def _instantiate(self, ctx: Ctx, bdef: S.BlockDef, tensors, args, kwargs, label, label_span, call):
        frame = ctx.frame
        if bdef.name in frame.stack:
            chain = " -> ".join((*frame.stack[frame.stack.index(bdef.name):], bdef.name))
            raise error("E0503", f"block {bdef.name} instantiates itself ({chain})", call.span,
                        "blocks cannot be recursive; use repeat or for", frame.trace)  # fmt: skip
        if len(frame.stack) >= LIMITS["depth"]:
            raise error("E0508", f"blocks nested more than {LIMITS['depth']} deep", call.span)
        declared = [s for s in bdef.body if isinstance(s, S.Input)]
        if len(declared) != len(tensors):
            names = ", ".join(s.name for s in declared) or "none"
            raise error("E0406", f"block {bdef.name} takes {len(declared)} input tensor(s) ({names}), "
                        f"got {len(tensors)}", call.span, notes=frame.trace)  # fmt: skip
        values = self._bind_params(ctx, bdef, args, kwargs, call.span)
        local = self._instance_name(frame, bdef.name, label, label_span or call.span)
        path = (*frame.path, local)
        note = Note(f"in block {bdef.name}, instantiated as {'.'.join(path)}", call.span)
        container = Container(path, "block", bdef.name, bdef.span, args=tuple(values.items()),
                              inputs=[(s.name, t.ref) for s, t in zip(declared, tensors)],
                              trace=(note, *frame.trace), var=ctx.var)  # fmt: skip
        self.graph.containers[path] = container
        inner = Frame(container, (*frame.stack, bdef.name), container.trace)
        outputs = self._body(Ctx(inner, Scope(dict(values), self.globals)), bdef, list(tensors))
        self._finish(inner)
        if not outputs or any(v is Poison for _, v in outputs):
            return Poison
        container.outputs = [(name, v.ref) for name, v in outputs]
        values_out = [v for _, v in outputs]
        return values_out[0] if len(values_out) == 1 else values_out

    def _bind_params(self, ctx: Ctx, bdef: S.BlockDef, args, kwargs, span: Span) -> dict[str, Any]:
        params = bdef.params
        what = f"{bdef.kind} {bdef.name}"
        if len(args) > len(params):
            names = ", ".join(p.name for p in params) or "none"
            raise error("E0405", f"{what} takes {len(params)} argument(s) ({names}), got {len(args)}",
                        args[len(params)][1], notes=ctx.frame.trace)  # fmt: skip
        given: dict[str, tuple[Any, Span | None]] = {}
        for p, (v, s) in zip(params, args):
            given[p.name] = (v, s)
        by_name = {p.name: p for p in params}
        for name, v, s in kwargs:
            if name not in by_name:
                raise error("E0405", f"{what} has no parameter '{name}'", s or span,
                            suggest(name, by_name) or f"parameters: {', '.join(by_name) or 'none'}",
                            ctx.frame.trace)  # fmt: skip
            if name in given:
                raise error("E0408", f"argument '{name}' of {what} given twice", s or span)
            given[name] = (v, s)
        values: dict[str, Any] = {}
        scope = Scope(values, self.globals)
        for p in params:
            if p.name in given:
                v, s = given[p.name]
            elif p.default is not None:
                v, s = self._eval(Ctx(ctx.frame, scope), p.default), p.default.span
            elif bdef.kind == "model":  # the value comes from the command line or the API
                raise error("E0405", f"{what} needs argument '{p.name}'", p.span,
                            f"pass --param {p.name}=VALUE, or give it a default")  # fmt: skip
            else:
                raise error("E0405", f"{what} needs argument '{p.name}'", span, notes=ctx.frame.trace)
            values[p.name] = check_param(p, v, s or p.span, what)
        return values


def check_param(p: S.Param, v: Any, span: Span, what: str) -> Any:
    """Check a block or model parameter value against its type, or any type of a union
    (`k: int | list`); an integer is widened to a float where float is its only number type."""
    for i, (t, tspan) in enumerate(zip(p.types, p.type_spans)):
        if t not in _PARAM_TYPES:
            raise error("E0407", f"unknown parameter type '{t}'", tspan,
                        suggest(t, _PARAM_TYPES) or "types: " + ", ".join(_PARAM_TYPES))  # fmt: skip
        if t in p.types[:i]:
            raise error("E0407", f"type '{t}' is listed twice for parameter '{p.name}'", tspan)
    for t in sorted(p.types, key=lambda t: t == "float"):  # an int stays an int where int is accepted
        if _IS[t](v):
            return float(v) if t == "float" else v
    hint = f"'{p.name}' accepts {_either(p.types)}" if len(p.types) > 1 else None
    raise error("E0407", f"parameter '{p.name}' of {what} is {p.type}, got {describe_value(v)} "
                f"({type_name(v)})", span, hint)  # fmt: skip


_IS = {
    "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "float": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
    "bool": lambda v: isinstance(v, bool),
    "str": lambda v: isinstance(v, str),
    "list": lambda v: isinstance(v, list),
}


def _either(types: tuple[str, ...]) -> str:
    """`int or list`, `int, float or str`."""
    return ", ".join(types[:-1]) + " or " + types[-1]
