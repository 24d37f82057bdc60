"""Routing: which entries are largest, and their indices as one-hot rows. A mixture of experts
picks `topk` experts per token from its router's scores and weighs their outputs; with
`one_hot` those picks become a dense [..., experts] weight that a product and a sum apply.

The index outputs are int64, as torch makes them; `one_hot` of int64 ids is int64 (it takes
part in float arithmetic after torch's promotion: `one_hot(i, 8) * w` is float32). `gather`
picks by such ids position by position (each token's top-k expert outputs) and `scatter_add`
adds at them; `index_select` with ids of any shape is in layout.py.
"""

from __future__ import annotations

from modelc.ops._util import known_channels, need_ids, norm_dim
from modelc.ops.base import Attr, OpDef, OpError, Requirement, register
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
        need_ids(self.name, ins[0])
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


# ---- picking and adding by index -------------------------------------------------------------
# NOTE: [Ids no larger than the tensor] gather and scatter_add take ids of their data's
# rank, no larger than it in any dimension but the one they index (torch's rule): a size
# equal to the data's passes, known sizes are compared, and a known size of the ids
# against a symbolic one of the data is a run-time requirement (`compile --verify` picks
# sizes that meet it). Two different symbolic sizes cannot be compared: an error.
def _within(op: str, ids: TensorType, data: TensorType, what: str, skip: int | None = None) -> list[Requirement]:
    """The rule of the NOTE for ids against `data` (named `what`), every dimension but `skip`."""
    out = []
    for i, (n, m) in enumerate(zip(ids.dims, data.dims)):
        if i == skip or n == m:
            continue
        if isinstance(n, int) and isinstance(m, int):
            if n > m:
                raise OpError("E0301", f"{op}: the ids {ids} are larger than {what} {data} in dim {i} ({n} > {m})")
        elif isinstance(n, int):
            out.append(Requirement(m, n, "E0301", f"{op}: the ids {ids} need {what} of at least {n} in dim {i}, "
                                   "got {value}"))  # fmt: skip
        else:
            raise OpError("E0301", f"{op}: the ids {ids} and {what} {data} differ in dim {i} ({n} vs {m})",
                          "the ids may be smaller than it there, by a known size, or the same size")  # fmt: skip
    return out


def _same_rank(op: str, ids: TensorType, data: TensorType, what: str) -> None:
    if ids.rank != data.rank:
        raise OpError("E0305", f"{op} needs ids of the rank of {what} {data} ({data.rank}), got {ids.rank}-d ids "
                      f"{ids}", "unsqueeze the ids and expand them: ids -> unsqueeze(-1) -> expand([..., D])")  # fmt: skip


def _grid(ids, dim: int) -> tuple:
    """Advanced indices selecting, at each position of `ids`, that position with its
    coordinate in `dim` replaced by the id: what gather reads and scatter_add writes."""
    import torch

    coords = [torch.arange(n, device=ids.device).reshape([-1 if i == d else 1 for i in range(ids.dim())])
              for d, n in enumerate(ids.shape)]  # fmt: skip
    coords[dim] = ids
    return tuple(torch.broadcast_tensors(*coords))


@register
class Gather(OpDef):
    name = "gather"
    family = "tensor"
    doc = ("The entries of x at int64 ids along dim, position by position (torch.gather): for dim 1, "
           "out[i][j][k] = x[i][ids[i][j][k]][k]. The ids have x's rank and the result their shape: "
           "each token's picked experts, gather(outputs, picks, 2).")  # fmt: skip
    attrs = (Attr("dim", "dim", positional=True),)
    inputs = 2
    outputs_layout = "new"

    def resolve(self, a, ins):
        x, ids = ins
        need_ids(self.name, ids)
        _same_rank(self.name, ids, x, "x")
        dim = norm_dim(a["dim"], x.rank, self.name)
        return {**a, "dim": dim, "size": x.dims[dim] if isinstance(x.dims[dim], int) else None}

    def requires(self, a, ins):
        return _within(self.name, ins[1], ins[0], "x", a["dim"])

    def infer(self, a, ins):
        return [TensorType(ins[1].dims, ins[0].dtype)]

    def index_bound(self, a):
        return a["size"]

    def reference(self, a, ins, w):
        x, ids = ins
        return [x[_grid(ids, a["dim"])]]  # advanced indexing, not torch.gather

    def call(self, a, args):
        return f"torch.gather({args[0]}, {a['dim']}, {args[1]})"

    def label(self, a):
        return f"gather(dim={a['dim']})"


@register
class ScatterAdd(OpDef):
    name = "scatter_add"
    family = "tensor"
    doc = ("x with src added at int64 ids along dim, out of place (torch.scatter_add): for dim 0, "
           "out[ids[i][j]][j] += src[i][j]; repeated ids add up. ids, src and x have one rank, the ids "
           "are no larger than src, nor than x but in dim; src has x's type.")  # fmt: skip
    attrs = (Attr("dim", "dim", positional=True),)
    inputs = 3
    outputs_layout = "same"  # torch copies x, and may keep its strides

    def resolve(self, a, ins):
        x, ids, src = ins
        need_ids(self.name, ids)
        _same_rank(self.name, ids, x, "x")
        _same_rank(self.name, ids, src, "src")
        if src.dtype != x.dtype:
            raise OpError("E0506", f"scatter_add adds src to x of the same type, got a {src.dtype} src {src} "
                          f"and a {x.dtype} x {x}")  # fmt: skip
        dim = norm_dim(a["dim"], x.rank, self.name)
        return {**a, "dim": dim, "size": x.dims[dim] if isinstance(x.dims[dim], int) else None}

    def requires(self, a, ins):
        x, ids, src = ins
        return _within(self.name, ids, src, "src") + _within(self.name, ids, x, "x", a["dim"])

    def index_bound(self, a):
        return a["size"]

    def reference(self, a, ins, w):
        x, ids, src = ins
        part = src[tuple(slice(0, n) for n in ids.shape)]  # src's entries at the ids' positions
        return [x.clone().index_put_(_grid(ids, a["dim"]), part, accumulate=True)]

    def call(self, a, args):
        return f"torch.scatter_add({args[0]}, {a['dim']}, {args[1]}, {args[2]})"

    def label(self, a):
        return f"scatter add(dim={a['dim']})"
