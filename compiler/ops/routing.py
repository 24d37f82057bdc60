"""Routing: which entries are largest, and their indices as one-hot rows. A mixture of experts
picks `topk` experts per token from its router's scores and weighs their outputs; with
`one_hot` those picks become a dense [..., experts] weight that a product and a sum apply.

The index outputs are int64, as torch makes them; `one_hot` of int64 ids is int64 (it takes
part in float arithmetic after torch's promotion: `one_hot(i, 8) * w` is float32).
"""

from __future__ import annotations

from modelc.ops._util import FLOATS, known_channels, norm_dim
from modelc.ops.base import Attr, OpDef, OpError, register
from modelc.ops.reduce import _Reduce
from modelc.types import TensorType


@register
class TopK(OpDef):
    name = "topk"
    family = "tensor"
    doc = ("The k largest entries along dim (default: the last) and their indices, largest first: "
           "weights, experts = scores -> topk(2). Indices are int64.")  # fmt: skip
    attrs = (Attr("k", "int", positional=True, min=1), Attr("dim", "dim", -1, positional=True))
    outputs_layout = "new"

    def resolve(self, a, ins):
        x = ins[0]
        if x.dtype == "bool":
            raise OpError("E0506", f"topk of a bool tensor {x}: compare or sum first")
        dim = norm_dim(a["dim"], x.rank, "topk")
        size = known_channels("topk", x, dim, f"size of dimension {a['dim']}")
        if a["k"] > size:
            raise OpError("E0404", f"topk: k = {a['k']} is more than the {size} entries of dimension {a['dim']}")
        return {**a, "dim": dim - x.rank}

    def infer(self, a, ins):
        x = ins[0]
        dims = list(x.dims)
        dims[a["dim"]] = a["k"]
        return [TensorType(tuple(dims), x.dtype), TensorType(tuple(dims), "int64")]

    def reference(self, a, ins, w):
        import torch

        # A stable descending sort, its first k: the same picks as topk where entries differ.
        order = torch.argsort(ins[0], dim=a["dim"], descending=True, stable=True)
        idx = order.narrow(a["dim"], 0, a["k"])
        return [torch.gather(ins[0], a["dim"], idx), idx]

    def call(self, a, args):
        dim = "" if a["dim"] == -1 else f", dim={a['dim']}"
        return f"torch.topk({args[0]}, {a['k']}{dim})"

    def label(self, a):
        return f"top {a['k']}"


@register
class Argmax(_Reduce):
    """A reduction (reduce.py) whose result is an index: its shape rule and emission are theirs."""

    name = method = "argmax"
    family = "tensor"
    doc = "The index of the largest entry along dim (int64), as a prediction: logits -> argmax(-1)."
    attrs = (Attr("dim", "dim", positional=True), Attr("keepdim", "bool", False))
    floats_only = False

    def resolve(self, a, ins):
        if ins[0].dtype == "bool":
            raise OpError("E0506", f"argmax of a bool tensor {ins[0]}")
        return super().resolve(a, ins)

    def dtype(self, dtype: str) -> str:
        return "int64"

    def reference(self, a, ins, w):
        import torch

        x = ins[0].double() if ins[0].dtype.is_floating_point else ins[0]
        hit = x == x.amax(a["dim"], keepdim=True)  # the first index of the largest value
        n = x.shape[a["dim"]]
        shape = [1] * x.dim()
        shape[a["dim"]] = n
        first = torch.where(hit, torch.arange(n).reshape(shape), n).amin(a["dim"], keepdim=a["keepdim"])
        return [first]

    def label(self, a):
        return self.name


@register
class OneHot(OpDef):
    name = "one_hot"
    family = "tensor"
    doc = ("Integer ids [...] as rows [..., num_classes] with a 1 at each id (int64): a dense "
           "routing weight is one_hot(experts, 8) * weights, summed over the picks.")  # fmt: skip
    attrs = (Attr("num_classes", "int", positional=True, min=1),)
    outputs_layout = "new"

    def index_bound(self, a):
        return a["num_classes"]

    def resolve(self, a, ins):
        if ins[0].dtype not in ("int64",):
            hint = "ids come from topk or argmax (int64) or an int64 input" if ins[0].dtype in FLOATS else None
            raise OpError("E0506", f"one_hot needs int64 ids, got a {ins[0].dtype} tensor {ins[0]}", hint)
        return a

    def infer(self, a, ins):
        return [TensorType((*ins[0].dims, a["num_classes"]), "int64")]

    def reference(self, a, ins, w):
        import torch

        ids = ins[0]
        return [(ids.unsqueeze(-1) == torch.arange(a["num_classes"])).long()]

    def call(self, a, args):
        return f"nn.functional.one_hot({args[0]}, {a['num_classes']})"

    def label(self, a):
        return f"one hot {a['num_classes']}"
