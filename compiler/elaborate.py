"""AST -> IR. Entry point: :func:`elaborate`.

Evaluates parameter expressions, expands block calls, sequences and
repetitions, resolves names, and builds the :class:`Graph`, inferring each
node's shape as it is created (so `channels(x)` and in-channel inference work
during elaboration).

NOTE: [Names in the module tree]
A labelled step is named by its label. Inside a labelled sequence
(`features: (...)`, `layer1: repeat 3 B(64)`, `layer2: for i in 0..4 {...}`)
unlabelled steps are numbered 0, 1, ... in order, and unlabelled sequences
nested in it continue the numbering (they flatten), which is how
`nn.Sequential` numbers torchvision's `features.0`, `layer2.3`; a bracketed
list `[a, b]` nested in it instead takes the next number itself and numbers
its own steps (`features.0.0`: torchvision's Conv2dNormActivation). Elsewhere an
unlabelled op gets the name of its op (`relu`, `relu_1`) once the enclosing
container is complete, so that a later label can never collide with it; an
unlabelled block instance is named at once (`bottleneck`, `bottleneck_1`)
because its contents need the path.

NOTE: [Errors are collected per statement]
A statement that fails records its diagnostics and binds its names to
`Poison`; every use of a poisoned value is silent, so one mistake gives one
error, and independent mistakes are all reported together.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace
from typing import Any

from modelc import ops
from modelc import syntax as S
from modelc.builtins import BUILTINS, EvalError, arith, check_list, compare, truth
from modelc.diagnostics import CompilerBug, Diagnostic, Note, Span, SpecError, error
from modelc.infer import infer_node
from modelc.ir import Container, Graph, Node
from modelc.names import reserved_attribute
from modelc.load import Program
from modelc.ops.base import bind_attrs, suggest
from modelc.symbolic import Sym, TooComplex, sym
from modelc.values import Poison, Tensor, describe_value, type_name

__all__ = ["LIMITS", "elaborate", "check_param"]

LIMITS = {
    "nodes": 100_000,  # graph size
    "dim": 2**31 - 1,  # one tensor dimension
    "params": 2**40,  # parameters of one layer
    "repeat": 100_000,  # one repetition or loop
    "depth": 64,  # nested block instantiations
    "errors": 50,  # diagnostics kept before stopping
}

_PARAM_TYPES = ("int", "float", "bool", "str", "list")


@dataclass
class Scope:
    vars: dict[str, Any]
    parent: Scope | None = None

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return _MISSING

    def visible(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= set(scope.vars)
            scope = scope.parent
        return out


_MISSING = object()


@dataclass
class Frame:
    """A container under construction."""

    container: Container
    stack: tuple[str, ...] = ()  # block names being instantiated (recursion check)
    trace: tuple[Note, ...] = ()
    used: dict[str, Span] = field(default_factory=dict)
    automatic: set[str] = field(default_factory=set)  # names of `used` that modelc chose
    suffix: dict[str, int] = field(default_factory=dict)  # next _N to try per base name
    unnamed: list[int] = field(default_factory=list)
    counter: list[int] | None = None  # set in a numbered sequence
    prefix: str = ""  # of the numbers in it: `for ... prefix "layer_"` names items layer_0, ...

    @property
    def path(self) -> tuple[str, ...]:
        return self.container.path


@dataclass(frozen=True)
class Ctx:
    frame: Frame
    scope: Scope
    var: str | None = None  # variable-name hint for nodes made now
    symbols: bool = False  # unknown names become symbolic dims (input shapes)
    body: tuple[Any, int] | None = None  # (statements, index of the running one); see _later
    current: tuple[str, ...] = ()  # names the running statement assigns


def elaborate(
    program: Program,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    inputs: dict[str, tuple[int | str, ...]] | None = None,
) -> Graph:
    """Build the graph of `model` (the file's only model when None).

    `params` override the model's parameters; `inputs` override the declared
    shapes of its inputs (dims are ints or symbol names).
    """
    return _Elaborator(program, inputs or {}).model(_pick_model(program, model), params or {})


def _pick_model(program: Program, name: str | None) -> S.BlockDef:
    if name is not None:
        if name in program.models:
            return program.models[name]
        raise error("E0504", f"no model named '{name}' in {program.path}", None,
                    suggest(name, program.models) or _models_hint(program))  # fmt: skip
    if not program.main_models:
        raise error("E0504", f"{program.path} defines no model", program.span,
                    "a spec needs a `model Name { ... }` section")  # fmt: skip
    if len(program.main_models) > 1:
        raise error("E0504", f"{program.path} defines several models; choose one",
                    None, _models_hint(program))  # fmt: skip
    return program.models[program.main_models[0]]


def _models_hint(program: Program) -> str:
    return "models: " + ", ".join(program.main_models or program.models) + " (use --model NAME)"


class _Elaborator:
    def __init__(self, program: Program, input_shapes: dict[str, tuple[int | str, ...]]):
        self.program = program
        self.input_shapes = input_shapes
        self.graph: Graph | None = None
        self.problems: list[Diagnostic] = []
        self.globals = Scope({})
        self._const_stack: list[str] = []
        self.strided: dict[int, int] = {}  # node -> the node whose output may leave it non-contiguous

    # ---- entry ---------------------------------------------------------------------
    def model(self, mdef: S.BlockDef, overrides: dict[str, Any]) -> Graph:
        unknown = sorted(set(overrides) - {p.name for p in mdef.params})
        if unknown:
            names = ", ".join(p.name for p in mdef.params) or "none"
            raise error("E0405", f"model {mdef.name} has no parameter '{unknown[0]}'", mdef.name_span,
                        suggest(unknown[0], [p.name for p in mdef.params]) or f"parameters: {names}")
        ctx0 = Ctx(Frame(Container((), "model", mdef.name, mdef.span)), self.globals)
        values = self._bind_params(ctx0, mdef, [], [(k, v, None) for k, v in overrides.items()], mdef.span)
        graph = Graph(mdef.name, mdef.span, tuple(values.items()))
        self.graph = graph
        self.strided = {}  # node ids are per graph
        frame = Frame(graph.containers[()])
        ctx = Ctx(frame, Scope(dict(values), self.globals))
        if not any(isinstance(s, S.Input) for s in mdef.body):
            raise error("E0501", f"model {mdef.name} has no input", mdef.name_span,
                        "declare one: input image: [B, 3, 224, 224]")  # fmt: skip
        outputs = self._body(ctx, mdef, inputs=None)
        self._finish(frame)
        self._raise_problems()
        declared = {graph.node(n).local for n in graph.inputs}
        for name in sorted(set(self.input_shapes) - declared):
            raise error("E0601", f"--input {name}: model {mdef.name} has no input '{name}'", None,
                        suggest(name, declared) or f"inputs: {', '.join(sorted(declared)) or 'none'}")
        graph.outputs = [(name, v.ref) for name, v in outputs]
        graph.containers[()].outputs = list(graph.outputs)
        graph.containers[()].inputs = [(graph.node(n).local, (n, 0)) for n in graph.inputs]
        return graph

    def _raise_problems(self) -> None:
        if self.problems:
            raise SpecError(self.problems)

    # ---- bodies ----------------------------------------------------------------------
    def _body(self, ctx: Ctx, bdef: S.BlockDef, inputs: list[Tensor] | None) -> list[tuple[str, Tensor]]:
        """Run a block or model body. `inputs` is None for a model (inputs are declared)."""
        outputs: list[tuple[str, Any]] = []
        supplied = list(inputs or [])
        body = bdef.body
        for i, stmt in enumerate(body):
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
        if not outputs:
            what = "model" if inputs is None else "block"
            self._record(error("E0502", f"{what} {bdef.name} has no output", bdef.name_span,
                               "end the body with: output <expression>"), ctx.frame.trace)  # fmt: skip
        if any(v is Poison for _, v in outputs):
            return [(n, v) for n, v in outputs]
        return _name_outputs(outputs)

    def _record(self, exc: SpecError, trace: tuple[Note, ...] = ()) -> None:
        """Keep the diagnostics of a failed statement, noting the block instantiations
        that led to it (`trace`) where the raiser did not."""
        self.problems.extend(_with_trace(d, trace) for d in exc.diagnostics)
        if len(self.problems) >= LIMITS["errors"]:
            raise SpecError(self.problems)

    def _stmt(self, ctx: Ctx, stmt, supplied: list[Tensor], outputs: list, model: bool) -> None:
        if isinstance(stmt, S.Input):
            ctx.scope.vars[stmt.name] = (
                self._model_input(ctx, stmt) if model else self._block_input(ctx, stmt, supplied)
            )
        elif isinstance(stmt, S.Assign):
            value = self._eval(replace(ctx, var=stmt.names[0]), stmt.value)
            self._assign(ctx, stmt, value)
        elif isinstance(stmt, S.Output):
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
            elif bound != d:
                raise error("E0301", f"input '{stmt.name}': dimension {item.id} is {d} here but "
                            f"{describe_value(bound)} before", item.span, notes=ctx.frame.trace)  # fmt: skip

    # ---- expressions -----------------------------------------------------------------
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
        if e.op == "+" and isinstance(a, Tensor) and isinstance(b, Tensor):
            return self._op(ctx, ops.REGISTRY["add"], [a, b], {}, None, e.span)
        if e.op == "@":
            if not (isinstance(a, Tensor) and isinstance(b, Tensor)):
                raise EvalError("E0506", f"'@' is the matrix product of two tensors, got "
                                f"{describe_value(a)} and {describe_value(b)}")  # fmt: skip
            return self._op(ctx, ops.REGISTRY["matmul"], [a, b], {}, None, e.span)
        scaled = _scaling(e.op, a, b)
        if scaled is not None:
            return self._op(ctx, ops.REGISTRY["scale"], [scaled[0]], {"factor": scaled[1]}, None, e.span)
        return arith(e.op, a, b)

    def _e_Neg(self, ctx, e: S.Neg):
        v = self._eval(ctx, e.operand)
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
        return all(compare(op, a, b) for op, a, b in zip(e.ops, values, values[1:]))

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
        return self._call(ctx, e.call, None, e.label, e.label_span)

    # ---- steps ---------------------------------------------------------------------------
    def _step(self, ctx: Ctx, step, x: Any, label: str | None = None, label_span: Span | None = None):
        if x is Poison:
            return Poison
        if not isinstance(x, Tensor):
            raise error("E0509", f"only a tensor can flow into a step; this is {describe_value(x)}",
                        step.span, notes=ctx.frame.trace)  # fmt: skip
        if isinstance(step, S.Call):
            return self._call(ctx, step, x, label, label_span)
        if isinstance(step, S.Bare):
            call = S.Call(step.name, (), (), step.span, step.span)
            return self._call(ctx, call, x, label, label_span)
        if isinstance(step, S.LabelledStep):
            if isinstance(step.step, (S.Seq, S.Repeat, S.For)):
                return self._sequence(ctx, step, x)
            return self._step(ctx, step.step, x, step.label, step.label_span)
        if isinstance(step, S.Seq):
            if step.brackets and ctx.frame.counter is not None:
                return self._sub_sequence(ctx, step, x)
            return self._steps(ctx, step.steps, x)
        if isinstance(step, S.Repeat):
            count = self._count(ctx, step.count, "repeat count")
            for _ in range(count):
                x = self._step(ctx, step.step, x)
            return x
        if isinstance(step, S.For):
            if step.prefix is not None:
                raise error("E0509", "'prefix' names the items of a labelled 'for'", step.span,
                            f'label it: layers: for {step.var} in ... prefix "{step.prefix}" {{ ... }}')
            items = self._eval(ctx, step.iterable)
            if items is Poison:
                return Poison
            if not isinstance(items, list):
                raise error("E0506", f"'for' needs a list or a range, got {describe_value(items)}",
                            step.iterable.span)  # fmt: skip
            for item in items:
                inner = replace(ctx, scope=Scope({step.var: item}, ctx.scope))
                x = self._steps(inner, step.steps, x)
            return x
        raise CompilerBug(f"unknown step {step!r}")

    def _steps(self, ctx: Ctx, steps, x):
        for s in steps:
            x = self._step(ctx, s, x)
        return x

    def _count(self, ctx: Ctx, expr, what: str) -> int:
        n = self._eval(ctx, expr)
        if n is Poison:
            return 0
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise error("E0506", f"{what} must be a non-negative integer, got {describe_value(n)}", expr.span)
        if n > LIMITS["repeat"]:
            raise error("E0508", f"{what} {n:,} is over the limit of {LIMITS['repeat']:,}", expr.span)
        return n

    def _sequence(self, ctx: Ctx, step: S.LabelledStep, x: Tensor):
        """A labelled sequence: a container whose unlabelled steps are numbered."""
        parent = ctx.frame
        self._claim(parent, step.label, step.label_span)
        origin = {S.Seq: "group", S.Repeat: "repeat", S.For: "for"}[type(step.step)]
        if len(parent.path) >= LIMITS["depth"]:  # generated code nests nn.Sequential(...) as deep
            raise error("E0508", f"modules (blocks and sequences) nested more than {LIMITS['depth']} deep",
                        step.span)  # fmt: skip
        container = Container((*parent.path, step.label), "seq", "", step.span,
                              inputs=[("x", x.ref)], trace=parent.trace, origin=origin, var=ctx.var)  # fmt: skip
        self.graph.containers[container.path] = container
        frame = Frame(container, parent.stack, parent.trace, counter=[0])
        body = step.step
        if isinstance(body, S.For) and body.prefix is not None:
            if not body.prefix.isidentifier():
                raise error("E0404", f"a prefix of item names must be an identifier, got \"{body.prefix}\"",
                            body.span)  # fmt: skip
            frame.prefix, body = body.prefix, replace(body, prefix=None)
        inner = replace(ctx, frame=frame)
        out = self._steps(inner, body.steps, x) if isinstance(body, S.Seq) else self._step(inner, body, x)
        if isinstance(out, Tensor):
            if out.ref == x.ref:
                raise error("E0509", f"sequence '{step.label}' is empty", step.span)
            container.outputs = [("out", out.ref)]
        return out

    def _sub_sequence(self, ctx: Ctx, seq: S.Seq, x: Tensor):
        """`[a, b]` inside a numbered sequence: a sequence of its own, named by the next number."""
        number = f"{ctx.frame.prefix}{ctx.frame.counter[0]}"
        ctx.frame.counter[0] += 1
        return self._sequence(ctx, S.LabelledStep(number, seq, seq.span, seq.span), x)

    # ---- calls ---------------------------------------------------------------------------
    def _call(self, ctx: Ctx, call: S.Call, piped: Tensor | None, label: str | None, label_span):
        name = call.func
        if name in BUILTINS:
            if piped is not None or label:
                raise error("E0509", f"{name}() is a compile-time function, not a layer", call.span)
            return self._builtin(ctx, call)
        opdef = ops.REGISTRY.get(name)
        bdef = self.program.blocks.get(name)
        if (opdef is None or opdef.internal) and bdef is None:
            if ctx.scope.lookup(name) is Poison:  # a binding that failed: already reported
                return Poison
            self._unknown_callee(ctx, call)
        args = [(self._eval(replace(ctx, var=None), a), a.span) for a in call.args]
        kwargs = [(k.name, self._eval(replace(ctx, var=None), k.value), k.span) for k in call.kwargs]
        if any(v is Poison for v, _ in args) or any(v is Poison for _, v, _ in kwargs):
            return Poison
        tensors = [] if piped is None else [piped]
        while args and isinstance(args[0][0], Tensor):
            tensors.append(args.pop(0)[0])
        for v, span in args + [(v, s) for _, v, s in kwargs]:
            if isinstance(v, Tensor):
                raise error("E0509", f"a tensor cannot be an attribute of {name}", span,
                            "tensor inputs come first: op(x, y, attr=...)")  # fmt: skip
        if ctx.frame.counter is not None and len(tensors) != 1:
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

        raise error("E0203", f"unknown op or block '{call.func}'", call.func_span,
                    callee_hint(call, self.program.blocks, ctx.body), ctx.frame.trace)  # fmt: skip

    def _builtin(self, ctx: Ctx, call: S.Call):
        fn, nargs, doc = BUILTINS[call.func]
        if call.kwargs:
            raise error("E0401", f"{call.func}() takes no keyword arguments", call.kwargs[0].span, doc)
        if nargs is not None and len(call.args) != nargs:
            raise error("E0405", f"{call.func}() takes {nargs} argument(s), got {len(call.args)}",
                        call.span, doc)  # fmt: skip
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
        return self._op(ctx, opdef, tensors, attrs, label, call.span, label_span)

    def _op(self, ctx: Ctx, opdef, tensors: list[Tensor], attrs: dict, label, span: Span, label_span=None):
        if any(t is Poison for t in tensors):
            return Poison
        frame = ctx.frame
        resolved, types, params, macs = infer_node(opdef, attrs, [t.type for t in tensors], span, frame.trace)
        if frame.counter is not None and (not opdef.sequential or opdef.module(resolved) is None):
            raise error("E0509", f"{opdef.name} cannot be a step of the numbered sequence "
                        f"'{frame.container.local}'", span, "apply it before or after the sequence",
                        frame.trace)  # fmt: skip
        _check_size(types, params, span)
        source = next((self.strided[t.ref[0]] for t in tensors if t.ref[0] in self.strided), None)
        if opdef.needs_contiguous and source is not None:
            origin = self.graph.node(source)
            raise error("E0306", f"{opdef.name} needs a contiguous input, and this one may not be: "
                        f"{origin.op} changes its layout", span, "use reshape, which copies when it must",
                        (Note(f"the {origin.op} is here", origin.span), *frame.trace))  # fmt: skip
        functional = type(opdef).call is not ops.OpDef.call
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

    # ---- blocks -----------------------------------------------------------------------------
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

    def _unroll(self, frame: Frame, extra: list[Tensor]) -> None:
        """A numbered sequence whose blocks take more than the previous output.

        NOTE: [Unrolled sequences] nn.Sequential passes one tensor along, so such a
        sequence (`layers: for i in 0..6 { DecoderLayer(memory) }`) becomes an
        nn.ModuleList (an nn.ModuleDict when items have names), called item by item in
        the parent's forward; the keys (`layers.0.self_attn...`) are the same. The
        extra tensors become inputs of the sequence's container, and of every sequence
        it is nested in: a sequence holding one called item by item is itself called
        item by item (nn.Sequential cannot call a ModuleList).
        """
        path = frame.container.path
        while path in self.graph.containers and self.graph.containers[path].kind == "seq":
            c = self.graph.containers[path]
            c.unrolled = True
            for t in extra:
                if t.ref not in [r for _, r in c.inputs]:
                    c.inputs.append((f"in{len(c.inputs)}", t.ref))
            path = path[:-1]

    def _instance_name(self, frame: Frame, block: str, label: str | None, span: Span) -> str:
        if label:
            self._claim(frame, label, span)
            return label
        if frame.counter is not None:
            frame.counter[0] += 1
            return f"{frame.prefix}{frame.counter[0] - 1}"
        return _unique(frame, _snake(block), span)

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

    # ---- naming ------------------------------------------------------------------------------
    def _claim(self, frame: Frame, name: str, span: Span, attribute: bool = True) -> None:
        """Take `name` in the frame: unique, and where it names a module attribute, not reserved."""
        if attribute and reserved_attribute(name):
            alt = name.lstrip("_") or "layer"
            while reserved_attribute(alt):
                alt += "_"
            why = "names starting with '_' belong to nn.Module" if name.startswith("_") else \
                "it is reserved in Python, nn.Module or generated code"
            raise error("E0206", f"'{name}' cannot name a layer: {why}", span, f"try '{alt}'")
        if name in frame.used:
            where = ".".join(frame.path) or "the model"
            if name in frame.automatic:
                raise error("E0202", f"'{name}' is already the name modelc gave an unlabelled block "
                            f"instance in {where}", span, "label that instance, or choose another label",
                            (Note("the unlabelled instance", frame.used[name]),))  # fmt: skip
            if frame.used[name] == span:  # the same label again: a step that repeat or for copies
                raise error("E0202", f"'{name}' is defined twice in {where}: a label inside "
                            "repeat or for names every copy", span,
                            "label the repeat or for instead (`layer1: repeat 3 ...` numbers the copies), "
                            "or put the labelled steps in a block")  # fmt: skip
            raise error("E0202", f"'{name}' is defined twice in {where}", span,
                        "labels name modules and must be unique in their block",
                        (Note("first defined here", frame.used[name]),))  # fmt: skip
        frame.used[name] = span

    def _finish(self, frame: Frame) -> None:
        """Give unlabelled ops of a finished container unique names: relu, relu_1, ..."""
        for n in frame.unnamed:
            node = self.graph.node(n)
            node.local = _unique(frame, node.local, node.span)


def _left_spine(e, kind) -> list:
    """`e`, its left operand, that one's left operand, ... while they are of type `kind`."""
    spine = [e]
    while isinstance(spine[-1].left, kind):
        spine.append(spine[-1].left)
    return spine


def _check_size(types, params: int, span: Span) -> None:
    big = [d for t in types for d in t.dims if isinstance(d, int) and d > LIMITS["dim"]]
    if big:
        raise error("E0508", f"a dimension of {big[0]:,} is over the limit of {LIMITS['dim']:,}", span)
    if params > LIMITS["params"]:
        raise error("E0508", f"a layer with {params:,} parameters is over the limit of "
                    f"{LIMITS['params']:,}", span)  # fmt: skip


def _unique(frame: Frame, base: str, span: Span) -> str:
    """An automatic name: `base` made a valid attribute (`If` -> `if_`, `Forward` ->
    `forward_`, no leading `_`), else the first free `base_N`; claims it in the frame."""
    base = base.lstrip("_") or "layer"
    if reserved_attribute(base):
        base += "_"
    name, i = base, frame.suffix.get(base, 0)
    while name in frame.used:
        i += 1
        name = f"{base}_{i}"
    frame.suffix[base] = i
    frame.used[name] = span
    frame.automatic.add(name)
    return name


def check_param(p: S.Param, v: Any, span: Span, what: str) -> Any:
    """Check (and widen int -> float) a block or model parameter value."""
    if p.type not in _PARAM_TYPES:
        raise error("E0407", f"unknown parameter type '{p.type}'", p.type_span,
                    suggest(p.type, _PARAM_TYPES) or "types: " + ", ".join(_PARAM_TYPES))  # fmt: skip
    ok = {
        "int": isinstance(v, int) and not isinstance(v, bool),
        "float": isinstance(v, (int, float)) and not isinstance(v, bool),
        "bool": isinstance(v, bool),
        "str": isinstance(v, str),
        "list": isinstance(v, list),
    }[p.type]
    if not ok:
        raise error("E0407", f"parameter '{p.name}' of {what} is {p.type}, got {describe_value(v)} "
                    f"({type_name(v)})", span)  # fmt: skip
    return float(v) if p.type == "float" else v


def _with_trace(d: Diagnostic, trace: tuple[Note, ...]) -> Diagnostic:
    if not trace or d.notes[-len(trace) :] == trace:
        return d
    return replace(d, notes=(*d.notes, *trace))


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


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


def _fmt_list(v) -> str:
    return "[" + ", ".join(str(x) for x in v) + "]" if isinstance(v, list) else describe_value(v)
