"""Calls: `f(...)` as a step or an expression, dispatched to a compile-time builtin, a block
(blocks.py) or an op; an op call binds its attributes, infers its node's types and adds
the node to the graph (with its name, its place in a numbered sequence, and its memory
layout).
"""

from __future__ import annotations

from dataclasses import replace

from modelc import ops
from modelc import syntax as S
from modelc.builtins import BUILTINS, EvalError
from modelc.diagnostics import Note, Span, error
from modelc.elaborate.context import _MISSING, LIMITS, Ctx
from modelc.infer import infer_node
from modelc.ir import Node
from modelc.ops.base import bind_attrs
from modelc.ops.layout import size_keys, sizes_code
from modelc.symbolic import Sym
from modelc.values import Configured, Poison, Tensor, describe_value


class CallsMixin:
    """Calls builtins, blocks and ops; part of `_Elaborator` (modelc.elaborate)."""

    def _call(self, ctx: Ctx, call: S.Call, piped: Tensor | None, label: str | None, label_span):
        name = call.func
        configured = self._configured(ctx, name)  # a def (defs.py)
        if configured is Poison:
            return Poison
        if configured is not None:
            return self._configured_call(ctx, configured, call, piped, label, label_span)
        inner = ctx if ctx.var is None else replace(ctx, var=None)  # arguments name no nodes
        args = None
        if name in BUILTINS and name not in ops.REGISTRY:
            if piped is not None or label:
                raise error("E0509", f"{name}() is a compile-time function, not a layer", call.span)
            return self._builtin(ctx, call)
        if name in BUILTINS and piped is None and not label:
            # `abs` is both: a compile-time function of numbers, and an op of tensors.
            if call.kwargs:
                return self._builtin(ctx, call)
            args = [(self._eval(inner, a), a.span) for a in call.args]
            if not any(isinstance(v, Tensor) for v, _ in args):
                return self._builtin(ctx, call, [v for v, _ in args])
        opdef = ops.REGISTRY.get(name)
        if (opdef is None or opdef.internal) and name not in self.program.blocks:
            if ctx.scope.lookup(name) is Poison:  # a binding that failed: already reported
                return Poison
            self._unknown_callee(ctx, call)
        if args is None:
            args = [(self._eval(inner, a), a.span) for a in call.args]
        kwargs = [(k.name, self._eval(inner, k.value), k.span) for k in call.kwargs]
        if any(v is Poison for v, _ in args) or any(v is Poison for _, v, _ in kwargs):
            return Poison
        tensors = [] if piped is None else [piped]
        variadic = opdef is not None and name not in self.program.blocks and opdef.inputs is None
        while args and (isinstance(args[0][0], Tensor) or (variadic and _tensors(args[0][0]))):
            value = args.pop(0)[0]
            tensors += value if isinstance(value, list) else [value]  # concat(ys): a list's tensors
        return self._apply(ctx, name, tensors, args, kwargs, label, label_span, call)

    def _apply(self, ctx: Ctx, name: str, tensors, args, kwargs, label, label_span, call: S.Call):
        """Op or block `name` applied to `tensors` with attributes or arguments `args`, `kwargs`."""
        opdef = ops.REGISTRY.get(name)
        bdef = self.program.blocks.get(name)
        for v, span in args + [(v, s) for _, v, s in kwargs]:
            if isinstance(v, Tensor):
                raise error("E0509", f"a tensor cannot be an attribute of {name}", span,
                            "tensor inputs come first: op(x, y, attr=...)")  # fmt: skip
            if _tensors(v):
                raise error("E0509", f"{name} takes no list of tensors", span, _LIST_HINT)
        if ctx.frame.counter is not None and ctx.frame.branches is None and len(tensors) != 1:
            if bdef is None or len(tensors) == 0:
                raise error("E0509", f"in the numbered sequence '{ctx.frame.container.local}', each "
                            "step takes only the previous step's output", call.span,
                            "a block can take more inputs: wrap the op in a block")  # fmt: skip
            self._unroll(ctx.frame, tensors[1:])
        if bdef is not None:
            return self._instantiate(ctx, bdef, tensors, args, kwargs, label, label_span, call)
        return self._op_call(ctx, opdef, tensors, args, kwargs, label, label_span, call)

    def _unknown_callee(self, ctx: Ctx, call: S.Call):
        value = ctx.scope.lookup(call.func)
        if value is not _MISSING:
            raise error("E0203", f"'{call.func}' is {describe_value(value)}, not an op or block",
                        call.func_span, notes=ctx.frame.trace)  # fmt: skip
        if call.func in self.program.models:
            raise error("E0203", f"'{call.func}' is a model; only blocks can be used inside a model",
                        call.func_span, f"declare it as `block {call.func}(...)`")  # fmt: skip
        from modelc.hints import callee_hint  # ops and blocks for a step; PyTorch names

        defs = [n for n in ctx.scope.visible() if isinstance(ctx.scope.lookup(n), Configured)]
        defs += list(self.program.defs)
        raise error("E0203", f"unknown op or block '{call.func}'", call.func_span,
                    callee_hint(call, [*self.program.blocks, *defs], ctx.body), ctx.frame.trace)  # fmt: skip

    def _builtin(self, ctx: Ctx, call: S.Call, values: list | None = None):
        fn, nargs, doc = BUILTINS[call.func]
        if call.kwargs:
            raise error("E0401", f"{call.func}() takes no keyword arguments", call.kwargs[0].span, doc)
        if nargs is not None and len(call.args) != nargs:
            raise error("E0405", f"{call.func}() takes {nargs} argument(s), got {len(call.args)}",
                        call.span, doc)  # fmt: skip
        if values is None:
            values = [self._eval(ctx, a) for a in call.args]
        if any(v is Poison for v in values):
            return Poison
        try:
            return fn(*values)
        except EvalError as exc:
            raise error(exc.code, exc.message, call.span, exc.hint, ctx.frame.trace) from None

    def _op_call(self, ctx, opdef, tensors, args, kwargs, label, label_span, call: S.Call):
        want = opdef.inputs
        if (want is not None and len(tensors) != want) or len(tensors) < opdef.min_inputs:
            count = f"{want}" if want is not None else f"at least {opdef.min_inputs}"
            hint = f"write x -> {opdef.name}(...) or {opdef.name}(x, ...)" if not tensors else None
            raise error("E0406", f"{opdef.name} takes {count} input tensor(s), got {len(tensors)}",
                        call.span, hint, ctx.frame.trace)  # fmt: skip
        attrs = bind_attrs(opdef, args, kwargs, call.span)
        if opdef.size_inputs:
            tensors = [*tensors, *self._size_sources(ctx, opdef.sizes(attrs), tensors)]
        return self._op(ctx, opdef, tensors, attrs, label, call.span, label_span)

    def _size_sources(self, ctx: Ctx, sizes, tensors: list[Tensor]) -> list[Tensor]:
        """The inputs of the enclosing block or model to read `sizes` from, where `tensors` do
        not have them (NOTE: [Sizes from other tensors] in ops/layout.py). None in a numbered
        sequence, whose modules see only the previous step's output."""
        if any(t is Poison for t in tensors) or ctx.frame.container.kind not in ("block", "model"):
            return []
        have = [t.type.dims for t in tensors]
        missing = [d for d in sizes if isinstance(d, Sym) and sizes_code(d, have) is None]
        refs = [(n, 0) for n in self.graph.inputs] if ctx.frame.container.kind == "model" \
            else [r for _, r in ctx.frame.container.inputs]  # fmt: skip
        wanted = {d for d in missing} | {s for d in missing for s in d.symbols}
        chosen: list[Tensor] = []
        for ref in dict.fromkeys(refs):
            gives = size_keys(self.graph.type_of(ref).dims) & wanted
            if gives and ref not in [t.ref for t in tensors]:
                chosen.append(Tensor(ref[0], ref[1], self.graph.type_of(ref)))
                wanted -= gives
        return chosen

    def _op(self, ctx: Ctx, opdef, tensors: list[Tensor], attrs: dict, label, span: Span, label_span=None):
        if any(t is Poison for t in tensors):
            return Poison
        resolved, types, params, macs = infer_node(opdef, attrs, [t.type for t in tensors], span, ctx.frame.trace)
        functional = type(opdef).call is not ops.OpDef.call
        frame = ctx.frame
        if frame.branches is not None and not (label or params or opdef.prefer_module or not functional):
            frame = frame.branches  # NOTE: [Branches] in elaborate/branches.py: forward's own op
        if frame.counter is not None and (not opdef.sequential or opdef.module(resolved) is None):
            where, hint = ("a branch of", "put it in a block") if frame.branches is not None else \
                ("a step of the numbered sequence", "apply it before or after the sequence")  # fmt: skip
            raise error("E0509", f"{opdef.name} cannot be {where} '{frame.container.local}'", span, hint,
                        frame.trace)  # fmt: skip
        _check_size(types, params, span)
        data = tensors[: opdef.inputs] if opdef.size_inputs else tensors  # not those read for sizes
        source = next((self.strided[t.ref[0]] for t in data if t.ref[0] in self.strided), None)
        if opdef.needs_contiguous and source is not None:
            origin = self.graph.node(source)
            raise error("E0306", f"{opdef.name} needs a contiguous input, and this one may not be: "
                        f"{origin.op} changes its layout", span, "use reshape, which copies when it must",
                        (Note(f"the {origin.op} is here", origin.span), *frame.trace))  # fmt: skip
        numbered = frame.counter is not None and label is None
        module = bool(label) or numbered or opdef.prefer_module or params > 0 or not functional
        if label:
            self._claim(frame, label, label_span or span)
            local = label
        elif numbered:
            local = f"{frame.prefix}{frame.counter[0]}"
            frame.counter[0] += 1
        else:
            local = opdef.name  # provisional; made unique in _finish
        node = Node(opdef.name, resolved, frame.path, local, span, frame.trace, module=module,
                    labelled=bool(label), var=ctx.var, types=types, params=params, macs=macs)  # fmt: skip
        if len(self.graph) >= LIMITS["nodes"]:
            raise error("E0508", f"the model has more than {LIMITS['nodes']:,} layers", span)
        n = self.graph.add(node, [t.ref for t in tensors])
        layout = opdef.layout(resolved)  # NOTE: [Memory layout] in ops/base.py
        if layout == "strided" or (layout == "same" and source is not None):
            self.strided[n] = n if layout == "strided" else source
        if not label and not numbered:
            frame.unnamed.append(n)
        outs = [Tensor(n, i, t) for i, t in enumerate(types)]
        return outs[0] if len(outs) == 1 else outs


_LIST_HINT = ("a list of tensors is an input of the ops that take any number of them: concat(ys, dim=1), "
              "add(ys); pick one with ys[0]")


def _tensors(value) -> bool:
    """A non-empty list of tensors: `ys = experts: [for ...]`, `x -> chunk(2)`."""
    return isinstance(value, list) and bool(value) and all(isinstance(v, Tensor) for v in value)


def _check_size(types, params: int, span: Span) -> None:
    big = [d for t in types for d in t.dims if isinstance(d, int) and d > LIMITS["dim"]]
    if big:
        raise error("E0508", f"a dimension of {big[0]:,} is over the limit of {LIMITS['dim']:,}", span)
    if params > LIMITS["params"]:
        raise error("E0508", f"a layer with {params:,} parameters is over the limit of "
                    f"{LIMITS['params']:,}", span)  # fmt: skip
