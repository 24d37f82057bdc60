"""Model and block bodies: statements, inputs (and their shape patterns), assignments, outputs.

NOTE: [Errors are collected per statement]
A statement that fails records its diagnostics and binds its names to
`Poison`; every use of a poisoned value is silent, so one mistake gives one
error, and independent mistakes are all reported together.
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from typing import Any

from modelc import ops
from modelc import syntax as S
from modelc.diagnostics import CompilerBug, Diagnostic, Note, SpecError, error
from modelc.elaborate.context import _MISSING, LIMITS, Ctx
from modelc.elaborate.expressions import _names_in
from modelc.infer import infer_node
from modelc.ir import Node
from modelc.symbolic import Sym, sym
from modelc.values import Configured, Poison, Tensor, describe_value


class StatementsMixin:
    """Runs bodies statement by statement; part of `_Elaborator` (modelc.elaborate)."""

    def _body(self, ctx: Ctx, bdef: S.BlockDef, inputs: list[Tensor] | None) -> list[tuple[str, Tensor]]:
        """Run a block or model body. `inputs` is None for a model (inputs are declared)."""
        outputs: list[tuple[str, Any]] = []
        supplied = list(inputs or [])
        body = bdef.body
        starts = []  # where each statement's diagnostics begin in self.problems
        for i, stmt in enumerate(body):
            starts.append(len(self.problems))
            sctx = replace(ctx, body=(body, i), current=stmt.names if isinstance(stmt, S.Assign) else ())
            try:
                self._stmt(sctx, stmt, supplied, outputs, model=inputs is None)
            except SpecError as exc:
                self._record(exc, ctx.frame.trace)
                for name in getattr(stmt, "names", ()):
                    ctx.scope.vars[name] = Poison
                if isinstance(stmt, S.Input):
                    ctx.scope.vars[stmt.name] = Poison
                if isinstance(stmt, S.Output):
                    outputs.append((stmt.name or "out", Poison))
        if inputs is None:
            self._note_training_problems(body, [*starts, len(self.problems)])
        if not outputs:
            what = "model" if inputs is None else "block"
            self._record(error("E0502", f"{what} {bdef.name} has no output", bdef.name_span,
                               "end the body with: output <expression>"), ctx.frame.trace)  # fmt: skip
        if any(v is Poison for _, v in outputs):
            return [(n, v) for n, v in outputs]
        return _name_outputs(outputs)

    def _note_training_problems(self, body: tuple, bounds: list[int]) -> None:
        """A shape error in a statement that only training-only outputs need (NOTE: [Training-only
        outputs] in ir.py) says so: eval mode would not run that layer, but it is built, and
        so checked, at the sizes given. `bounds[i]:bounds[i + 1]` are statement i's problems."""
        if bounds[-1] == bounds[0]:
            return
        for i, output in training_statements(body).items():
            note = Note("this is in the branch of a training-only output, which eval mode never runs; its "
                        "layers are still built, so they must fit the input sizes given", body[output].span)  # fmt: skip
            for k in range(bounds[i], bounds[i + 1]):
                if self.problems[k].code.startswith("E03"):  # shapes (E03xx); other mistakes are mistakes
                    self.problems[k] = replace(self.problems[k], notes=(*self.problems[k].notes, note))

    def _record(self, exc: SpecError, trace: tuple[Note, ...] = ()) -> None:
        """Keep the diagnostics of a failed statement, noting the block instantiations
        that led to it (`trace`) where the raiser did not."""
        self.problems.extend(_with_trace(d, trace) for d in exc.diagnostics)
        if len(self.problems) >= LIMITS["errors"]:
            raise SpecError(self.problems)

    def _stmt(self, ctx: Ctx, stmt, supplied: list[Tensor], outputs: list, model: bool) -> None:
        if isinstance(stmt, S.Input):
            _not_a_def(ctx, stmt.name, stmt)
            ctx.scope.vars[stmt.name] = (
                self._model_input(ctx, stmt) if model else self._block_input(ctx, stmt, supplied)
            )
        elif isinstance(stmt, S.Assign):
            value = self._eval(replace(ctx, var=stmt.names[0]), stmt.value)
            self._assign(ctx, stmt, value)
        elif isinstance(stmt, S.Def):
            self._def_stmt(ctx, stmt)
        elif isinstance(stmt, S.Output):
            if stmt.training and not model:
                raise error("E0510", "a block's output cannot be training-only: `output training` marks "
                            "an output of a model", stmt.training, "output the value from the block, and mark "
                            "the model's output: output training aux = ...", ctx.frame.trace)  # fmt: skip
            if stmt.name is not None:
                _check_output_name(ctx, stmt)
            for i, expr in enumerate(stmt.values):
                name = stmt.name or (expr.id if isinstance(expr, S.Name) else None)
                value = self._eval(replace(ctx, var=name or "out"), expr)
                if value is not Poison and not isinstance(value, Tensor):
                    hint = "unpack it first: a, b = ..., then output a, b" if isinstance(value, list) else None
                    raise error("E0509", f"an output must be a tensor, not {describe_value(value)}",
                                expr.span, hint, ctx.frame.trace)  # fmt: skip
                outputs.append((name, value))
        else:  # pragma: no cover - the grammar has no other statements
            raise CompilerBug(f"unknown statement {stmt!r}")

    def _assign(self, ctx: Ctx, stmt: S.Assign, value: Any) -> None:
        for name in stmt.names:
            _not_a_def(ctx, name, stmt)
        if len(stmt.names) == 1:
            ctx.scope.vars[stmt.names[0]] = value
            return
        if value is Poison:
            for name in stmt.names:
                ctx.scope.vars[name] = Poison
            return
        if not isinstance(value, (list, tuple)) or len(value) != len(stmt.names):
            raise error("E0506", f"cannot unpack {describe_value(value)} into {len(stmt.names)} names",
                        stmt.span)  # fmt: skip
        for name, v in zip(stmt.names, value):
            ctx.scope.vars[name] = v
        nodes = {v.node for v in value if isinstance(v, Tensor)}
        if len(nodes) == 1 and [v.port for v in value if isinstance(v, Tensor)] == list(range(len(value))):
            self.graph.node(nodes.pop()).out_vars = tuple(stmt.names)

    def _model_input(self, ctx: Ctx, stmt: S.Input) -> Tensor:
        if stmt.name in self.input_shapes:
            shape = list(self.input_shapes[stmt.name])
            shape = [sym(d) if isinstance(d, str) else d for d in shape]
        elif stmt.shape is None:
            raise error("E0505", f"model input '{stmt.name}' needs a shape", stmt.span,
                        f"input {stmt.name}: [B, 3, 224, 224]")  # fmt: skip
        else:
            shape = self._eval(replace(ctx, symbols=True), stmt.shape)
        if not isinstance(shape, list) or not shape:
            raise error("E0404", f"the shape of input '{stmt.name}' must be a list of dimensions, "
                        f"got {describe_value(shape)}", stmt.span)  # fmt: skip
        dims = []
        # Point at the bad dimension when the shape is written out as a list here.
        items = stmt.shape.items if stmt.name not in self.input_shapes and isinstance(stmt.shape, S.List) else ()
        for i, d in enumerate(shape):
            if isinstance(d, int) and not isinstance(d, bool) and 1 <= d <= LIMITS["dim"]:
                dims.append(d)
            elif isinstance(d, Sym) and len(d.terms) == 1 and str(d).isidentifier() and str(d).isascii():
                dims.append(str(d))  # a name as the language spells names: ASCII (--input, the API)
            else:
                where = items[i].span if len(items) == len(shape) else stmt.span
                raise error("E0404", f"a dimension of input '{stmt.name}' must be an integer from 1 to "
                            f"{LIMITS['dim']:,} or a symbol like B, got {describe_value(d)}", where)  # fmt: skip
        self._claim(ctx.frame, stmt.name, stmt.span, attribute=False)  # a parameter of forward
        node = Node("input", None, (), stmt.name, stmt.span, labelled=True, var=stmt.name)  # type: ignore[arg-type]
        node.attrs, node.types, node.params, node.macs = infer_node(
            ops.REGISTRY["input"], {"shape": tuple(dims), "dtype": stmt.dtype or "float32"}, [], stmt.span)
        n = self.graph.add(node, [])
        self.graph.inputs.append(n)
        self._bind_dims(ctx, stmt, node.types[0].dims)
        return Tensor(n, 0, node.types[0])

    def _block_input(self, ctx: Ctx, stmt: S.Input, supplied: list[Tensor]) -> Tensor:
        if not supplied:  # counted before the body runs; unreachable unless miscounted
            raise CompilerBug("block input count mismatch")
        value = supplied.pop(0)
        if stmt.shape is not None and value is not Poison:
            want = self._eval(replace(ctx, symbols=True), stmt.shape)
            got = list(value.type.dims)
            ok = isinstance(want, list) and len(want) == len(got) and all(
                isinstance(w, Sym) and len(w.terms) == 1 and str(w).isidentifier() or w == g
                for w, g in zip(want, got))  # fmt: skip
            if not ok:
                raise error("E0301", f"input '{stmt.name}' expects shape {_fmt_list(want)}, "
                            f"got {value.type}", stmt.span, notes=ctx.frame.trace)  # fmt: skip
            self._bind_dims(ctx, stmt, value.type.dims)
        if stmt.dtype and value is not Poison and value.type.dtype != stmt.dtype:
            raise error("E0506", f"input '{stmt.name}' expects {stmt.dtype} elements, got a "
                        f"{value.type.dtype} tensor", stmt.span, notes=ctx.frame.trace)  # fmt: skip
        return value

    def _bind_dims(self, ctx: Ctx, stmt: S.Input, dims) -> None:
        """`input x: [B, T, C]` binds the names B, T, C that are not yet defined to x's dimensions.

        NOTE: [Shape patterns bind names] so a body can say `reshape([B, T, heads, -1])`.
        A name already defined (a parameter, an earlier input's dimension) is compared
        instead, which also checks that two inputs agree: `input q: [B, T, D]`,
        `input k: [B, S, D]`.
        """
        items = stmt.shape.items if isinstance(stmt.shape, S.List) else ()
        if len(items) != len(dims):
            return
        for item, d in zip(items, dims):
            if not isinstance(item, S.Name) or item.id in self.program.consts:
                continue
            bound = ctx.scope.lookup(item.id)
            if bound is _MISSING:
                ctx.scope.vars[item.id] = d
                if isinstance(d, int) and not isinstance(d, bool):  # a size a shared class may take
                    ctx.frame.container.dims += ((item.id, d),)
            elif bound != d:
                raise error("E0301", f"input '{stmt.name}': dimension {item.id} is {d} here but "
                            f"{describe_value(bound)} before", item.span, notes=ctx.frame.trace)  # fmt: skip


def _not_a_def(ctx: Ctx, name: str, stmt) -> None:
    """A body's def keeps its name: a binding or input of that name would hide it from later steps."""
    value = ctx.scope.vars.get(name)
    if isinstance(value, Configured):
        raise error("E0202", f"'{name}' is a def of this body (line {value.span.line}); a binding "
                    "cannot take its name", stmt.span, "choose another name",
                    (Note("the def", value.span), *ctx.frame.trace))  # fmt: skip


def training_statements(body: tuple) -> dict[int, int]:
    """The model body's statements that only training-only outputs need (they read them,
    through names, and no other output does), each with the first such output statement
    (indices into `body`)."""
    last: dict[str, int] = {}  # name -> the statement that bound it last (bindings are sequential)
    reads: list[set[int]] = []
    for i, stmt in enumerate(body):
        exprs = stmt.values if isinstance(stmt, S.Output) else (stmt.value,) if isinstance(stmt, S.Assign) else ()
        reads.append({last[n] for e in exprs for n in _names_in(e) if n in last})
        for name in stmt.names if isinstance(stmt, S.Assign) else ():
            last[name] = i

    def needed(roots: list[int]) -> set[int]:
        seen: set[int] = set()
        while roots:
            i = roots.pop()
            if i not in seen:
                seen.add(i)
                roots.extend(reads[i])
        return seen

    outputs = [(i, stmt.training is not None) for i, stmt in enumerate(body) if isinstance(stmt, S.Output)]
    in_eval = needed([i for i, training in outputs if not training])
    only: dict[int, int] = {}
    for root in (i for i, training in outputs if training):
        for i in sorted(needed([root]) - in_eval):
            only.setdefault(i, root)
    return only


def training_outputs(mdef: S.BlockDef, outputs: list[tuple[str, Tensor]]) -> set[str]:
    """The names of a model's training-only outputs (`output training ...`); E0510 when every
    output is one, as eval mode would return nothing. `outputs` are the body's, in order (one
    per value of each output statement)."""
    marked = [stmt for stmt in mdef.body if isinstance(stmt, S.Output) for _ in stmt.values]
    names = {name for (name, _), stmt in zip(outputs, marked) if stmt.training}
    if names and len(names) == len(outputs):
        first = next(stmt for stmt in marked if stmt.training)
        raise error("E0510", f"every output of model {mdef.name} is training-only: in eval mode, "
                    "forward would return nothing", first.training,
                    "output the model's prediction without `training`")  # fmt: skip
    return names


def _with_trace(d: Diagnostic, trace: tuple[Note, ...]) -> Diagnostic:
    if not trace or d.notes[-len(trace) :] == trace:
        return d
    return replace(d, notes=(*d.notes, *trace))


def _check_output_name(ctx: Ctx, stmt: S.Output) -> None:
    """`output y = ...` names part of the model's interface: it may not repeat an earlier
    output's name (`output y` of a variable y included), which would rename one silently."""
    statements, index = ctx.body
    for earlier in statements[:index]:
        if isinstance(earlier, S.Output) and stmt.name in (
                earlier.name, *(e.id for e in earlier.values if earlier.name is None and isinstance(e, S.Name))):  # fmt: skip
            raise error("E0202", f"output '{stmt.name}' is defined twice", stmt.span,
                        "give each output its own name", (Note("first defined here", earlier.span),))  # fmt: skip


def _name_outputs(outputs: list[tuple[str | None, Tensor]]) -> list[tuple[str, Tensor]]:
    """Output names: each output's own (`output y = ...`, or the variable `output y` returns),
    else `out` for a single output and `outN` (N its position) among several; a name already
    taken (`output x, x`) gets the next free `outN`."""
    if len(outputs) == 1:
        return [(outputs[0][0] or "out", outputs[0][1])]
    named, used = [], set()
    for i, (name, v) in enumerate(outputs):
        if not name or name in used:
            name = next(f"out{j}" for j in itertools.count(i) if f"out{j}" not in used
                        and f"out{j}" not in (n for n, _ in outputs[i + 1:]))  # fmt: skip
        used.add(name)
        named.append((name, v))
    return named


def _fmt_list(v) -> str:
    return "[" + ", ".join(str(x) for x in v) + "]" if isinstance(v, list) else describe_value(v)
