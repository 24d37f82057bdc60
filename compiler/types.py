"""Tensor types: a shape of (possibly symbolic) dimensions and a dtype."""

from __future__ import annotations

from dataclasses import dataclass

from modelc.symbolic import Dim, subs

__all__ = ["TensorType"]


@dataclass(frozen=True)
class TensorType:
    dims: tuple[Dim, ...]
    dtype: str = "float32"

    @property
    def rank(self) -> int:
        return len(self.dims)

    def __str__(self) -> str:
        return "[" + ", ".join(str(d) for d in self.dims) + "]"

    def without_batch(self) -> str:
        """`256x56x56`: the form used on diagram edges."""
        return "x".join(str(d) for d in self.dims[1:]) or "scalar"

    def subs(self, env: dict[str, int]) -> TensorType:
        return TensorType(tuple(subs(d, env) for d in self.dims), self.dtype)

    def with_dims(self, dims) -> TensorType:
        return TensorType(tuple(dims), self.dtype)
