"""The op registry: one :class:`OpDef` per op, grouped by family in sibling files.

An entry declares everything about its op in one place:
- `attrs`: the attribute schema (types, defaults, validation, positional order);
- `resolve`: completes attributes from the input types (in_channels, ...);
- `infer`: the shape rule;
- `params` / `macs`: parameter count and multiply-accumulates;
- `module` / `call`: how it is emitted (an `nn.Module` constructor, or an expression);
- `label` and `family`: how it is drawn and summarised.
- `reference`: what it computes, for the interpreter that checks emitted modules.

Rules raise :class:`OpError`; the elaborator attaches the span of the node.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from modelc.diagnostics import CompilerBug, Span, error
from modelc.pyformat import CallExpr
from modelc.symbolic import Dim, Sym
from modelc.types import TensorType

__all__ = [
    "REQUIRED", "Attr", "Augmented", "Ctor", "OpDef", "OpError", "REGISTRY", "FAMILIES", "Requirement",
    "array_shape", "bind_attrs", "get", "register", "suggest",
]  # fmt: skip

REQUIRED: Any = object()

# Diagram colours and legends are keyed by these; at most 8 (see DESIGN.md).
FAMILIES = ("conv", "norm", "activation", "pool", "linear", "recurrent", "attention", "tensor")


class OpError(Exception):
    """A problem found by an op's rule; becomes a SpecError at the node's span."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint


@dataclass(frozen=True)
class Requirement:
    """A condition on input sizes that torch checks only when the module runs: `value`
    (a size, possibly symbolic) must be at least `minimum`. Shape inference reports it
    when the sizes are known (`message` formatted with the value); with symbolic sizes,
    `compile --verify` picks sizes that meet it."""

    value: Dim
    minimum: int
    code: str
    message: str  # may use {value}
    hint: str | None = None

    def check(self) -> None:
        if isinstance(self.value, int) and self.value < self.minimum:
            raise OpError(self.code, self.message.format(value=self.value), self.hint)


@dataclass(frozen=True)
class Attr:
    name: str
    kind: str  # int, float, number (an int stays an int), bool, str, ints, padding, dim, array, shape, bias
    default: Any = REQUIRED
    aliases: tuple[str, ...] = ()
    choices: tuple[str, ...] = ()
    positional: bool = False
    min: int | None = None
    doc: str = ""

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True)
class Augmented:
    """An in-place update of the first input: `out += skip` when the result keeps the input's
    variable, else `fallback` (`out.add_(skip)`), which returns the updated tensor."""

    operator: str  # "+" for `+=`
    target: str  # the variable updated: the first input
    value: str
    fallback: str


@dataclass(frozen=True)
class Ctor:
    """`torch.nn.Conv2d(3, 64, kernel_size=7)` as data; values are plain literals."""

    callee: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()


class OpDef:
    name: ClassVar[str]
    family: ClassVar[str]
    doc: ClassVar[str] = ""
    attrs: ClassVar[tuple[Attr, ...]] = ()
    inputs: ClassVar[int | None] = 1  # None: variadic, at least `min_inputs`
    min_inputs: ClassVar[int] = 1
    prefer_module: ClassVar[bool] = False  # emit as a submodule even when unlabelled
    internal: ClassVar[bool] = False  # created by the compiler, not callable from a spec

    # NOTE: [Sizes from other tensors] in ops/layout.py. `size_inputs`: after its `inputs`
    # tensors the node may read more, for their sizes only; the elaborator adds them (a spec
    # never passes them), where `sizes` has a size that the first input does not give.
    size_inputs: ClassVar[bool] = False

    def sizes(self, a: dict[str, Any]) -> tuple[Dim, ...]:
        """The sizes a `size_inputs` op computes when it runs (reshape's target shape)."""
        return ()

    def resolve(self, a: dict[str, Any], ins: list[TensorType]) -> dict[str, Any]:
        return a

    def infer(self, a: dict[str, Any], ins: list[TensorType]) -> list[TensorType]:
        return [ins[0]]

    # NOTE: [Memory layout] torch's `view` (and nothing else the compiler emits) needs its
    # input's elements in row-major order. `layout` says what an op's outputs are, so the
    # elaborator can refuse a view of something that may not be: "new" (contiguous, as
    # linear and matmul make), "same" (as its inputs: element-wise ops keep their input's
    # strides, and conv, pooling and batchnorm keep a channels-last layout), or "strided"
    # (may not be: permute, transpose, slices, nn.MultiheadAttention's batch-first output).
    needs_contiguous: ClassVar[bool] = False
    outputs_layout: ClassVar[str] = "same"  # what `layout` says unless the attributes matter

    def layout(self, a: dict[str, Any]) -> str:
        return self.outputs_layout

    def requires(self, a: dict[str, Any], ins: list[TensorType]) -> list[Requirement]:
        """Run-time conditions on the input sizes (reflect padding narrower than the input)."""
        return []

    def params(self, a: dict[str, Any]) -> int:
        return 0

    def workspace(self, a: dict[str, Any], ins: list[TensorType]) -> Dim:
        """Elements of the temporaries the op allocates while it runs and the IR does not show
        (attention's T x S scores): `compile --verify` counts them before it runs a module."""
        return 0

    def macs(self, a: dict[str, Any], ins: list[TensorType], outs: list[TensorType]) -> Dim:
        return 0

    def trainable_params(self, a: dict[str, Any], params: int) -> int:
        return params

    def module(self, a: dict[str, Any]) -> Ctor | None:
        return None

    def call(self, a: dict[str, Any], args: list[str]) -> str | None:
        return None

    def label(self, a: dict[str, Any]) -> str:
        return self.name

    # NOTE: [In place] in passes/inplace.py. `saves_output`: the op's backward may read its
    # output, or the output may be a view of an input; False only where neither holds (a
    # conv keeps its input, a batchnorm its input and statistics), so a following op may
    # overwrite the output. `inplace_call` / `inplace_module`: the forms that overwrite the
    # first input (`torch.relu_(x)`, `nn.ReLU(inplace=True)`); None where there is none.
    saves_output: ClassVar[bool] = True

    def inplace_call(self, a: dict[str, Any], args: list[str]) -> str | CallExpr | Augmented | None:
        return None

    def inplace_module(self, a: dict[str, Any]) -> Ctor | None:
        return None

    # NOTE: [Modules that are not tensor -> tensor] torch's LSTM is called as
    # `lstm(x, (h0, c0))` and returns `(out, (h, c))`; nn.MultiheadAttention takes
    # `(q, k, v)` and returns `(out, weights)`; a learned token is a bare
    # nn.Parameter used as `self.class_token`. These hooks say how forward uses
    # such a module; ops that override them set `sequential = False`, since
    # nn.Sequential can only chain tensor -> tensor modules.
    sequential: ClassVar[bool] = True  # its module can be a step of a numbered sequence

    def invoke(self, a: dict[str, Any], callee: str, args: list[str]) -> str | CallExpr:
        """The forward expression using the module attribute `callee` (`self.lstm`)."""
        return CallExpr(callee, list(args))

    def targets(self, a: dict[str, Any], names: list[str]) -> str:
        """The assignment target binding the node's outputs, in order."""
        return ", ".join(names)

    def index_bound(self, a: dict[str, Any]) -> int | None:
        """For ops taking integer ids (embedding): ids must be below this (verify feeds such)."""
        return None

    # NOTE: [Reference semantics] `reference` is what the op computes, in eval mode: the oracle
    # that generated modules are checked against (modelc.interpret, run by verify). It is
    # written from the op's definition with torch.nn.functional and tensor methods, and never
    # with the nn.Module or the expression the emitter writes, nor with modelc.runtime (both are
    # under test). `a`: the resolved attributes, symbolic sizes replaced by the run's; `ins`:
    # the input tensors; `w`: the node's own parameters and buffers from the module's
    # state_dict, keyed relative to the node (`weight`, `running_mean`, `out_proj.weight`; a
    # node that is itself a bare parameter or buffer, as `parameter`, finds it under "").
    # It returns one tensor per output, of the IR's shape and dtype (the interpreter checks).
    def reference(self, a: dict[str, Any], ins: list, w: dict[str, Any]) -> list:
        raise CompilerBug(f"op {self.name} has no reference semantics")


REGISTRY: dict[str, OpDef] = {}


def register(cls: type[OpDef]) -> type[OpDef]:
    if cls.name in REGISTRY:
        raise RuntimeError(f"op {cls.name!r} registered twice")
    if cls.family not in FAMILIES:
        raise RuntimeError(f"op {cls.name!r} has unknown family {cls.family!r}")
    REGISTRY[cls.name] = cls()
    return cls


def get(name: str) -> OpDef | None:
    return REGISTRY.get(name)


def suggest(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return f"did you mean '{close[0]}'?" if close else None


# ---- attribute binding --------------------------------------------------------------
def bind_attrs(
    op: OpDef,
    args: list[tuple[Any, Span]],
    kwargs: list[tuple[str, Any, Span]],
    call_span: Span,
) -> dict[str, Any]:
    """Match positional and keyword arguments to the op's schema, check types."""
    out: dict[str, Any] = {}
    positional = [a for a in op.attrs if a.positional]
    if len(args) > len(positional):
        from modelc.hints import positional_hint  # torch's `linear(in, out)`, ...

        span, hint = positional_hint(op, args, kwargs)
        names = ", ".join(a.name for a in positional) or "none"
        raise error("E0405", f"{op.name} takes {len(positional)} positional attribute(s) "
                    f"({names}), got {len(args)}", span, hint)  # fmt: skip
    for attr, (value, span) in zip(positional, args):
        out[attr.name] = _check(op, attr, value, span)
    by_name = {n: a for a in op.attrs for n in a.names}
    for name, value, span in kwargs:
        attr = by_name.get(name)
        if attr is None:
            from modelc.hints import attribute_hint  # `in_features=` is inferred, ...

            raise error("E0401", f"{op.name} has no attribute '{name}'", span, attribute_hint(op, name))
        if attr.name in out:
            raise error("E0408", f"attribute '{attr.name}' of {op.name} given twice", span)
        out[attr.name] = _check(op, attr, value, span)
    for attr in op.attrs:
        if attr.name not in out:
            if attr.default is REQUIRED:
                raise error("E0403", f"{op.name} needs attribute '{attr.name}'", call_span,
                            f"{attr.name}: {attr.doc}" if attr.doc else None)  # fmt: skip
            out[attr.name] = attr.default
    return out


def _check(op: OpDef, attr: Attr, value: Any, span: Span) -> Any:
    checked = _coerce(attr, value)
    if checked is _BAD:
        raise error("E0402", f"attribute '{attr.name}' of {op.name} expects {_KIND_TEXT[attr.kind]}, "
                    f"got {describe(value)}", span, attr.doc or None)  # fmt: skip
    if attr.choices and checked not in attr.choices and not isinstance(checked, (int, tuple)):
        choices = ", ".join(f'"{c}"' for c in attr.choices)
        raise error("E0404", f"attribute '{attr.name}' of {op.name} must be one of {choices}, "
                    f"got {describe(value)}", span, suggest(str(checked), attr.choices))  # fmt: skip
    if attr.min is not None:
        for v in checked if isinstance(checked, tuple) else (checked,):
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < attr.min:
                raise error("E0404", f"attribute '{attr.name}' of {op.name} must be at least "
                            f"{attr.min}, got {v}", span)  # fmt: skip
    # torch keeps kernel sizes, strides and the like in 32-bit ints and scalars in float32:
    # beyond those, a module that compiled would fail (or overflow) when it runs.
    for v in checked if isinstance(checked, tuple) else (checked,):
        if isinstance(v, int) and not isinstance(v, bool) and abs(v) > MAX_ATTR_INT:
            raise error("E0508", f"attribute '{attr.name}' of {op.name} is {v:,}, over the limit of "
                        f"{MAX_ATTR_INT:,}", span)  # fmt: skip
        if isinstance(v, float) and abs(v) > MAX_ATTR_FLOAT:
            raise error("E0404", f"attribute '{attr.name}' of {op.name} is {v:g}, outside float32's "
                        f"range (+-{MAX_ATTR_FLOAT:.4g})", span)  # fmt: skip
    return checked


MAX_ATTR_INT = 2**31 - 1
MAX_ATTR_FLOAT = 3.4028234663852886e38  # the largest float32


_BAD = object()
_KIND_TEXT = {
    "int": "an integer",
    "dim": "an integer dimension",
    "float": "a number",
    "number": "a number",
    "bool": "true or false",
    "str": "a string",
    "ints": "an integer or a list of integers",
    "padding": 'an integer, a list of integers, "same" or "valid"',
    "array": "a rectangular (nested) list of numbers",
    "bias": "true, false or a list of numbers",
    "shape": "a list of dimensions (integers or symbols such as T)",
}


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _coerce(attr: Attr, v: Any) -> Any:
    kind = attr.kind
    if kind in ("int", "dim"):
        return v if _is_int(v) else _BAD
    if kind in ("float", "number"):
        if _is_int(v):
            return float(v) if kind == "float" else v
        return v if isinstance(v, float) and math.isfinite(v) else _BAD
    if kind == "bool":
        return v if isinstance(v, bool) else _BAD
    if kind == "bias":  # true, false, or the numbers themselves
        return v if isinstance(v, bool) else _array(v)
    if kind == "str":
        return v if isinstance(v, str) else _BAD
    if kind in ("ints", "padding"):
        if _is_int(v):
            return v
        if isinstance(v, (list, tuple)) and v and all(_is_int(x) for x in v):
            return tuple(v)
        if kind == "padding" and v in ("same", "valid"):
            return v
        return _BAD
    if kind == "array":
        return _array(v)
    if kind == "shape":
        ok = isinstance(v, (list, tuple)) and all(_is_int(x) or isinstance(x, Sym) for x in v)
        return tuple(v) if ok else _BAD
    raise RuntimeError(f"unknown attribute kind {kind}")


def _array(v: Any) -> Any:
    """A rectangular nested list of numbers -> nested tuples of floats (hashable)."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v) if math.isfinite(v) else _BAD
    if not isinstance(v, (list, tuple)) or not v:
        return _BAD
    items = [_array(x) for x in v]
    if any(x is _BAD for x in items):
        return _BAD
    shapes = {array_shape(x) for x in items}
    return tuple(items) if len(shapes) == 1 else _BAD


def array_shape(v: Any) -> tuple[int, ...]:
    """The shape of a value checked by the `array` kind: () for a number."""
    shape: list[int] = []
    while isinstance(v, tuple):
        shape.append(len(v))
        v = v[0]
    return tuple(shape)


def describe(v: Any) -> str:
    """A value as the user wrote it, for messages."""
    from modelc.values import describe_value

    return describe_value(v)
