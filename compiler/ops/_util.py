"""Helpers shared by op rules: expanding per-dimension attributes, sizes, products."""

from __future__ import annotations

from modelc.ops.base import OpError
from modelc.symbolic import Dim
from modelc.types import TensorType

__all__ = ["FLOATS", "broadcast", "need_float", "need_float32", "need_ids", "promote", "expand", "known_channels", "need_rank", "norm_dim", "numel", "prod", "compact"]

FLOATS = ("float16", "bfloat16", "float32", "float64")  # the floating-point element types
_CATEGORY = {"bool": 0, "int32": 1, "int64": 1, "float16": 2, "bfloat16": 2, "float32": 2, "float64": 2}
_WIDTH = {"bool": 1, "int32": 32, "int64": 64, "float16": 16, "bfloat16": 16, "float32": 32, "float64": 64}


# NOTE: [Element types] The ops follow torch: what torch refuses for a type (softmax of
# integers, a conv of float64 input with its float32 weights) is refused at compile time
# (E0506), and what it accepts has the type torch gives it (`promote`). Ops with parameters
# or running statistics take float32 input, the type of every parameter a generated module
# creates; element-wise float math takes any floating type.
def need_float(op: str, *ts: TensorType) -> None:
    for t in ts:
        if t.dtype not in FLOATS:
            raise OpError("E0506", f"{op} needs floating-point input, got a {t.dtype} tensor {t}",
                          "integer ids become vectors through embedding; declare float inputs as float32")  # fmt: skip


def need_float32(op: str, *ts: TensorType) -> None:
    for t in ts:
        if t.dtype != "float32":
            raise OpError("E0506", f"{op} has float32 parameters and needs float32 input, got a {t.dtype} "
                          f"tensor {t}", "declare the input float32; for another precision, convert the "
                          "module with its inputs (model.half()) or use torch.autocast")  # fmt: skip


def need_ids(op: str, ids: TensorType, dtypes: tuple[str, ...] = ("int64",)) -> None:
    """The ids of an indexing op are of one of `dtypes`: int64 for gather, scatter_add and one_hot
    (what every torch version takes there; older ones refuse int32); index_select takes int32 too."""
    if ids.dtype not in dtypes:
        hint = "declare the ids int64" if ids.dtype == "int32" else "ids come from topk or argmax (int64), or an int64 input"
        raise OpError("E0506", f"{op} needs {' or '.join(dtypes)} ids, got a {ids.dtype} tensor {ids}", hint)


def promote(ts) -> str:
    """The element type torch gives an element-wise op of tensors `ts` (torch.result_type): the
    highest category (bool < integer < float) of the tensors with dimensions, and the widest type
    of it (float16 with bfloat16: float32); a 0-d tensor counts only if of a higher category."""
    shaped = [t.dtype for t in ts if t.rank] or [t.dtype for t in ts]
    zero_d = [t.dtype for t in ts if not t.rank]
    top = max(_CATEGORY[d] for d in shaped)
    if zero_d and max(_CATEGORY[d] for d in zero_d) > top:
        shaped, top = zero_d, max(_CATEGORY[d] for d in zero_d)
    kinds = {d for d in shaped if _CATEGORY[d] == top}
    if kinds == {"float16", "bfloat16"}:
        return "float32"
    return max(kinds, key=_WIDTH.__getitem__)


def expand(value, n: int, name: str) -> tuple:
    """`3` -> (3, 3); `[3, 5]` -> (3, 5) when n == 2; strings pass through."""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return (value,) * n
    if len(value) != n:
        raise OpError("E0404", f"'{name}' needs {n} value(s) for a {n}-d input, got {len(value)}")
    return tuple(value)


def need_rank(op: str, t: TensorType, ranks: tuple[int, ...], what: str) -> None:
    if t.rank not in ranks:
        want = " or ".join(str(r) for r in ranks)
        raise OpError("E0305", f"{op} expects a rank-{want} input ({what}), got {t.rank}-d {t}")


def known_channels(op: str, t: TensorType, axis: int, what: str) -> int:
    d = t.dims[axis]
    if not isinstance(d, int):
        raise OpError("E0304", f"{op} needs a known {what}, but the input {t} has '{d}' there",
                      "give the input a concrete size in that dimension")  # fmt: skip
    return d


def norm_dim(dim: int, rank: int, op: str) -> int:
    if not -rank <= dim < rank:
        raise OpError("E0404", f"{op}: dim {dim} is out of range for a rank-{rank} tensor")
    return dim % rank


def broadcast(op: str, a: tuple[Dim, ...], b: tuple[Dim, ...]) -> tuple[Dim, ...]:
    """torch's broadcasting of two shapes (trailing dimensions aligned; 1 stretches)."""
    n = max(len(a), len(b))
    a, b = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    out = []
    for x, y in zip(a, b):
        if x != y and x != 1 and y != 1:
            shapes = " and ".join("[" + ", ".join(map(str, s)) + "]" for s in (a, b))
            raise OpError("E0301", f"{op}: shapes {shapes} do not broadcast ({x} vs {y})")
        out.append(y if x == 1 else x)
    return tuple(out)


def prod(xs) -> Dim:
    out: Dim = 1
    for x in xs:
        out = out * x
    return out


def numel(t: TensorType) -> Dim:
    return prod(t.dims)


def compact(value) -> int | tuple:
    """(3, 3) -> 3 for emission and labels; (3, 5) stays."""
    if isinstance(value, tuple) and value and all(v == value[0] for v in value):
        return value[0]
    return value
