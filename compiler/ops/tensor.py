"""Structural tensor ops: flatten, identity, add, concat."""

from __future__ import annotations

from modelc.ops._util import norm_dim, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.symbolic import sym
from modelc.types import TensorType


@register
class Flatten(OpDef):
    name = "flatten"
    family = "tensor"
    doc = "Merges dimensions start..end (inclusive) into one."
    attrs = (Attr("start", "dim", 1, positional=True, aliases=("start_dim",)),
             Attr("end", "dim", -1, aliases=("end_dim",)))  # fmt: skip

    def resolve(self, a, ins):
        r = ins[0].rank
        start, end = norm_dim(a["start"], r, "flatten"), norm_dim(a["end"], r, "flatten")
        if start > end:
            raise OpError("E0404", f"flatten: start ({a['start']}) comes after end ({a['end']})")
        return {**a, "start": start, "end": end - r}

    def infer(self, a, ins):
        d = ins[0].dims
        end = a["end"] + len(d)
        return [ins[0].with_dims((*d[: a["start"]], prod(d[a["start"] : end + 1]), *d[end + 1 :]))]

    def module(self, a):
        args = [a["start"], a["end"]]
        while args and args[-1] == (1, -1)[len(args) - 1]:
            args.pop()
        return Ctor("nn.Flatten", tuple(args))

    def call(self, a, args):
        end = "" if a["end"] == -1 else f", {a['end']}"
        return f"torch.flatten({args[0]}, {a['start']}{end})"


@register
class Identity(OpDef):
    name = "identity"
    family = "tensor"
    doc = "Returns its input."

    def module(self, a):
        return Ctor("nn.Identity")

    def call(self, a, args):
        return args[0]


@register
class Add(OpDef):
    name = "add"
    family = "tensor"
    doc = "Element-wise sum of tensors of one shape; `a + b` in an expression."
    inputs = None
    min_inputs = 2

    def infer(self, a, ins):
        first = ins[0]
        for i, other in enumerate(ins[1:], 1):
            if other.dims != first.dims:
                raise OpError("E0301", f"cannot add tensors of shapes {first} and {other}",
                              "both operands of + must have the same shape")  # fmt: skip
        return [first]

    def call(self, a, args):
        return " + ".join(args)

    def label(self, a):
        return "add"


@register
class Concat(OpDef):
    name = "concat"
    family = "tensor"
    doc = "Joins tensors along dim (default 1, the channels); other dimensions must agree."
    attrs = (Attr("dim", "dim", 1),)
    inputs = None
    min_inputs = 1

    def resolve(self, a, ins):
        ranks = {t.rank for t in ins}
        if len(ranks) > 1:
            shapes = ", ".join(str(t) for t in ins)
            raise OpError("E0302", f"concat of tensors of different ranks: {shapes}")
        return {**a, "dim": norm_dim(a["dim"], ins[0].rank, "concat")}

    def infer(self, a, ins):
        dim = a["dim"]
        first = ins[0]
        for other in ins[1:]:
            for i, (x, y) in enumerate(zip(first.dims, other.dims)):
                if i != dim and x != y:
                    raise OpError("E0302", f"concat along dim {dim}: shapes {first} and {other} "
                                  f"differ in dim {i} ({x} vs {y})",
                                  "all inputs must match except in the concat dimension")  # fmt: skip
        total = sum((t.dims[dim] for t in ins[1:]), start=first.dims[dim])
        return [first.with_dims((*first.dims[:dim], total, *first.dims[dim + 1 :]))]

    def call(self, a, args):
        return f"torch.cat([{', '.join(args)}], dim={a['dim']})"

    def label(self, a):
        return f"concat(dim={a['dim']})"


@register
class Input(OpDef):
    """A model input; created by `input name: [dims]`, never called from a spec."""

    name = "input"
    family = "tensor"
    doc = "A model input of a declared shape; dimensions are integers or symbols."
    attrs = (Attr("shape", "ints"), Attr("dtype", "str", "float32"))
    inputs = 0
    min_inputs = 0
    internal = True

    def infer(self, a, ins):
        dims = tuple(sym(d) if isinstance(d, str) else d for d in a["shape"])
        return [TensorType(dims, a["dtype"])]

    def label(self, a):
        return "input"
