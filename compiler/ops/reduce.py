"""Reductions over one or several dimensions: `mean`, `sum`, `amax`, `var`.

`dim` is one dimension or a list of them (`mean([2, 3])`, global average pooling of a
feature map); `keepdim=true` keeps each reduced dimension as size 1 (`x - mean(x, -1,
keepdim=true)` broadcasts back). The element types follow torch: mean and var need floats,
sum of integers or bools is int64, amax keeps the type.
"""

from __future__ import annotations

from modelc.ops._util import FLOATS, need_float, norm_dim, prod
from modelc.ops.base import Attr, OpDef, OpError, register
from modelc.pyrepr import literal
from modelc.types import TensorType


class _Reduce(OpDef):
    family = "pool"
    attrs = (Attr("dim", "ints", positional=True, doc="a dimension, or a list of them"),
             Attr("keepdim", "bool", False))  # fmt: skip
    outputs_layout = "new"
    method = ""  # the tensor method the emitter writes
    floats_only = True

    def resolve(self, a, ins):
        x = ins[0]
        if self.floats_only:
            need_float(self.name, x)
        dims = a["dim"] if isinstance(a["dim"], tuple) else (a["dim"],)
        normed = tuple(norm_dim(d, x.rank, self.name) for d in dims)
        if len(set(normed)) != len(normed):
            raise OpError("E0404", f"{self.name}: dimension listed twice in {list(dims)}")
        # One form in the IR: `mean(1)` and `mean([1])` are the same node; a list is sorted.
        return {**a, "dim": normed[0] if len(normed) == 1 else tuple(sorted(normed))}

    def dims(self, a) -> tuple[int, ...]:
        return a["dim"] if isinstance(a["dim"], tuple) else (a["dim"],)

    def infer(self, a, ins):
        x = ins[0]
        reduced = set(self.dims(a))
        if a["keepdim"]:
            dims = [1 if i in reduced else d for i, d in enumerate(x.dims)]
        else:
            dims = [d for i, d in enumerate(x.dims) if i not in reduced]
        return [TensorType(tuple(dims), self.dtype(x.dtype))]

    def dtype(self, dtype: str) -> str:
        return dtype

    def count(self, a, x) -> object:
        """How many elements each output element reduces (for the reference's mean and var)."""
        return prod(x.shape[d] for d in self.dims(a))

    def call(self, a, args):
        dim = a["dim"]
        keep = ", keepdim=True" if a["keepdim"] else ""
        return f"{args[0]}.{self.method}({literal(dim)}{keep}{self.extra(a)})"

    def extra(self, a) -> str:
        return ""

    def label(self, a):
        return f"{self.name}(dim={literal(a['dim'])})"


@register
class Mean(_Reduce):
    name = method = "mean"
    doc = "Average over dim, one or several (mean pooling over time: mean(1); global: mean([2, 3]))."

    def reference(self, a, ins, w):
        x = ins[0]
        return [x.sum(self.dims(a), keepdim=a["keepdim"]) / self.count(a, x)]


@register
class Sum(_Reduce):
    name = method = "sum"
    doc = "Sum over dim, one or several; integer and bool tensors give int64."
    floats_only = False

    def dtype(self, dtype):
        return dtype if dtype in FLOATS else "int64"

    def reference(self, a, ins, w):
        x = ins[0] if ins[0].dtype.is_floating_point else ins[0].long()
        for d in sorted(self.dims(a), reverse=True):  # one dimension at a time: another path
            x = x.sum(d, keepdim=True)
        return [x if a["keepdim"] else x.squeeze(self.dims(a))]


@register
class Amax(_Reduce):
    name = method = "amax"
    doc = "The largest value over dim, one or several (not the index: that is argmax)."
    floats_only = False

    def resolve(self, a, ins):
        if ins[0].dtype == "bool":
            raise OpError("E0506", f"amax of a bool tensor {ins[0]}: compare and sum instead")
        return super().resolve(a, ins)

    def reference(self, a, ins, w):
        x = ins[0]
        for d in sorted(self.dims(a), reverse=True):
            x = x.max(d, keepdim=True).values
        return [x if a["keepdim"] else x.squeeze(self.dims(a))]


@register
class Var(_Reduce):
    name = method = "var"
    doc = ("Variance over dim, one or several, with Bessel's correction by default (torch's "
           "correction=1); correction=0 is the population variance that layer norm uses.")  # fmt: skip
    attrs = (*_Reduce.attrs, Attr("correction", "int", 1, min=0))

    def extra(self, a):
        return "" if a["correction"] == 1 else f", correction={a['correction']}"

    def reference(self, a, ins, w):
        x, dims = ins[0], self.dims(a)
        centred = x - x.sum(dims, keepdim=True) / self.count(a, x)
        total = (centred * centred).sum(dims, keepdim=a["keepdim"])
        return [total / (self.count(a, x) - a["correction"])]
