"""Helpers shared by op rules: expanding per-dimension attributes, sizes, products."""

from __future__ import annotations

from modelc.ops.base import OpError
from modelc.symbolic import Dim
from modelc.types import TensorType

__all__ = ["broadcast", "expand", "known_channels", "need_rank", "norm_dim", "numel", "prod", "compact"]


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
