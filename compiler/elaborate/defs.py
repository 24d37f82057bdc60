"""Defs: `def bn = batchnorm(eps=1e-3, momentum=0.01)` names an op or block call with some
of its arguments, in a file (beside the constants) or in a body (from its statement on).

NOTE: [Defs are calls written out] A use of a def (`x -> bn`, `x -> bn1: bn`,
`x -> bn(affine=false)`, `bn(x)`) is the call of its op or block with the def's arguments,
then the use's: the node, its name, its module and the generated code are those of the call
written out at the use (the module is the layer itself, never a wrapper, so the state_dict
keys do not change). A def's arguments are evaluated once, where it is written: a file's
among the constants (on its first use), a body's at its statement, where the block's
parameters are visible. A def may configure another (`def frozen = bn(affine=false)`): its
arguments follow the other's. An argument given twice, by two defs or by a def and its use,
is E0408; a file's defs that configure each other in a loop are E0205.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelc import ops
from modelc import syntax as S
from modelc.builtins import BUILTINS
from modelc.diagnostics import Note, Span, SpecError, error
from modelc.elaborate.context import _MISSING, Ctx, Scope
from modelc.load import builtin_name
from modelc.values import Configured, Poison, Tensor


class DefsMixin:
    """Defines and resolves defs; part of `_Elaborator` (modelc.elaborate)."""

    def _def_stmt(self, ctx: Ctx, stmt: S.Def) -> None:
        """`def name = call` in a body: a new name there, bound from here on."""
        name = stmt.name
        clash = builtin_name(name) or next(
            (kind for kind, names in (("block", self.program.blocks), ("model", self.program.models))
             if name in names), None)  # fmt: skip
        if clash:
            raise error("E0202", f"'{name}' is the name of a {clash}", stmt.name_span,
                        "choose another name for the def", ctx.frame.trace)  # fmt: skip
        if name in ctx.scope.vars:
            raise error("E0202", f"'{name}' is already defined in {ctx.frame.container.name or 'this body'}",
                        stmt.name_span, "a def takes a new name: not a parameter's, an input's or a binding's",
                        ctx.frame.trace)  # fmt: skip
        ctx.scope.vars[name] = self._configure(ctx, stmt)

    def _configured(self, ctx: Ctx, name: str) -> Configured | Any | None:
        """The def `name` names where `ctx` is (a body's, else the file's), Poison where it
        failed, or None when `name` is no def."""
        value = ctx.scope.lookup(name)
        if isinstance(value, Configured):
            return value
        if value is _MISSING and name in self.program.defs:
            return self._file_def(ctx, name)
        return None

    def _file_def(self, ctx: Ctx, name: str):
        if name in self._defs:
            return self._defs[name]
        stmt = self.program.defs[name]
        if name in self._def_stack:
            cycle = " -> ".join((*self._def_stack[self._def_stack.index(name):], name))
            raise error("E0205", f"def '{name}' is defined in terms of itself ({cycle})", stmt.call.func_span,
                        "a def configures an op, a block or another def")  # fmt: skip
        self._def_stack.append(name)
        try:
            value = self._configure(Ctx(ctx.frame, Scope({})), stmt)  # sees the constants and defs
        except SpecError as exc:
            if len(self._def_stack) > 1:  # reported once, by the def that was used
                self._defs[name] = Poison
                raise
            self._record(exc)
            value = Poison
        finally:
            self._def_stack.pop()
        self._defs[name] = value
        return value

    def _configure(self, ctx: Ctx, stmt: S.Def):
        call = stmt.call
        base = self._configured(ctx, call.func)
        if base is Poison:
            return Poison
        if base is None:
            if call.func in BUILTINS and call.func not in ops.REGISTRY:
                raise error("E0509", f"{call.func}() is a compile-time function, not a layer", call.func_span,
                            "a def names an op or a block with some of its arguments")  # fmt: skip
            opdef = ops.REGISTRY.get(call.func)
            if (opdef is None or opdef.internal) and call.func not in self.program.blocks:
                self._unknown_callee(ctx, call)
        args = [(self._eval(ctx, a), a.span) for a in call.args]
        kwargs = [(k.name, self._eval(ctx, k.value), k.span) for k in call.kwargs]
        values = [(v, s) for v, s in args] + [(v, s) for _, v, s in kwargs]
        if any(v is Poison for v, _ in values):
            return Poison
        for v, span in values:
            if isinstance(v, Tensor):
                raise error("E0509", f"a def cannot take a tensor: def {stmt.name} gives attributes of "
                            f"{call.func}", span, f"tensors come from the chain: x -> {stmt.name}",
                            ctx.frame.trace)  # fmt: skip
        if base is None:
            return Configured(stmt.name, call.func, tuple(args), tuple(kwargs), stmt.name_span)
        self._given_once(base, args, kwargs, ctx)
        return Configured(stmt.name, base.target, (*base.args, *args), (*base.kwargs, *kwargs), stmt.name_span)

    def _given_once(self, cfg: Configured, args: list, kwargs: list, ctx: Ctx) -> None:
        """E0408 where the arguments of a use (or of a def of a def) repeat one that `cfg` gives."""
        first = dict(self._arg_names(cfg.target, 0, cfg.args, cfg.kwargs))
        for name, span in self._arg_names(cfg.target, len(cfg.args), args, kwargs):
            if name in first:
                what = "attribute" if cfg.target in ops.REGISTRY else "argument"
                target = cfg.target if cfg.target in ops.REGISTRY else f"block {cfg.target}"
                raise error("E0408", f"{what} '{name}' of {target} is given by def {cfg.name} already",
                            span, f"leave it out here, or write {cfg.target}(...) out",
                            (Note("given here", first[name]), *ctx.frame.trace))  # fmt: skip

    def _arg_names(self, target: str, offset: int, args, kwargs) -> list[tuple[str, Span]]:
        """The parameter (or attribute, under its own name) that each argument sets, where known."""
        opdef = ops.REGISTRY.get(target)
        if opdef is not None:
            positional = [a.name for a in opdef.attrs if a.positional]
            canonical = {n: a.name for a in opdef.attrs for n in a.names}
        else:
            positional = [p.name for p in self.program.blocks[target].params]
            canonical = {}
        out = [(positional[offset + i], s) for i, (_, s) in enumerate(args) if offset + i < len(positional)]
        return out + [(canonical.get(n, n), s) for n, _, s in kwargs]

    def _configured_call(self, ctx: Ctx, cfg: Configured, call: S.Call, piped, label, label_span):
        """`x -> name(more)` for a def `name`: the call of its target with its arguments, then more."""
        inner = ctx if ctx.var is None else replace(ctx, var=None)  # arguments name no nodes
        args = [(self._eval(inner, a), a.span) for a in call.args]
        kwargs = [(k.name, self._eval(inner, k.value), k.span) for k in call.kwargs]
        if any(v is Poison for v, _ in args) or any(v is Poison for _, v, _ in kwargs):
            return Poison
        tensors = [] if piped is None else [piped]
        while args and isinstance(args[0][0], Tensor):
            tensors.append(args.pop(0)[0])
        self._given_once(cfg, args, kwargs, ctx)
        return self._apply(ctx, cfg.target, tensors, [*cfg.args, *args], [*cfg.kwargs, *kwargs], label,
                           label_span, call)  # fmt: skip
