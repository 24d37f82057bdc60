"""The importer's intermediate form: every module instance as a template with holes.

A :class:`Raw` is what one module instance looks like in spec text, before blocks are
chosen: a `key` (the structure, with every hyper-parameter left as a hole) and the hole
`values`, in order. Two instances with the same key can share one block; the holes whose
values differ between them become the block's parameters (fingerprint.py). Rendering is
deferred (`render(exprs, extras)`): each hole is given an expression, a literal (`64`) or a
parameter's name (`width`), only once every block is known.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from modelc.importer.expr import literal

__all__ = ["WILD", "Group", "Raw", "leaf_raw"]


class _Wild:
    """The value of a hole that does not matter: the hyper-parameters of an absent optional child."""

    def __repr__(self) -> str:
        return "WILD"


WILD = _Wild()


@dataclass
class Group:
    """One block definition: instances with one key, and how each hole becomes an expression."""

    name: str
    key: str
    instances: list[Raw] = field(default_factory=list)
    params: list[tuple[str, str, int]] = field(default_factory=list)  # (name, type, column)
    exprs: list[str] = field(default_factory=list)  # per column: a literal or a parameter name
    text: str = ""  # the definition, once built


@dataclass
class Raw:
    """One module instance (a leaf op, a numbered sequence or a block) as a template."""

    kind: str  # "leaf", "seq" or "block"
    key: str
    values: list[Any]
    names: list[str]  # a name hint per hole (`conv2_stride`), for parameters
    render: Callable[[list[str], list[str]], str]  # (an expression per hole, extra tensors) -> step
    path: str = ""
    param_free: bool = False  # a leaf with no parameters or buffers: written without a label
    group: Group | None = None  # blocks: set by fingerprint.assign
    body: Callable[[list[str]], list[str]] | None = None  # blocks: the body's lines for these holes
    inputs: list[str] = field(default_factory=list)  # blocks: the input names
    fixed: str | None = None  # known blocks: the definition's text, its parameters are the holes
    block_name: str = ""  # the class name, the block's name

    def call(self, exprs: list[str], extras: list[str] | None = None) -> str:
        return self.render(exprs, extras or [])

    def wild(self) -> Raw:
        """This template with every value unknown (an absent optional child's stand-in)."""
        return Raw(self.kind, self.key, [WILD] * len(self.values), self.names, self.render, self.path,
                   self.param_free, None, self.body, self.inputs, self.fixed, self.block_name)  # fmt: skip


def hole_key(kw: str | None, default: Any) -> str:
    return f"<{kw or ''}={default!r}>"


def leaf_raw(op: str, pos: list[Any], kw: list[tuple[str, Any, Any]], label: str, path: str,
             param_free: bool, nodefault: object) -> Raw:  # fmt: skip
    """A leaf op's template: positional holes, then keyword holes that vanish at their default."""
    names = [f"{label}_{_SHORT.get(op, op)}" for _ in pos] + [f"{label}_{_LONG.get(k, k)}" for k, _, _ in kw]
    values = list(pos) + [v for _, v, _ in kw]
    defaults = [None if d is nodefault else literal(d) if d is not None else "none" for _, _, d in kw]
    key = f"{op}(" + ",".join(["_"] * len(pos) + [hole_key(k, d) for (k, _, _), d in zip(kw, defaults)]) + ")"

    def render(exprs: list[str], extras: list[str]) -> str:
        args = list(extras) + exprs[: len(pos)]
        for (k, _, _), d, e in zip(kw, defaults, exprs[len(pos):]):
            if e != d and not (d == "none" and e == "none"):
                args.append(f"{k}={e}")
        return f"{op}({', '.join(args)})" if args else op

    return Raw("leaf", key, values, names, render, path, param_free)


_SHORT = {"conv": "out", "linear": "out", "conv_transpose": "out", "dropout": "p", "group_norm": "groups",
          "multihead_attention": "heads", "self_attention": "heads"}  # fmt: skip
_LONG = {"s": "stride", "p": "pad", "k": "k", "d": "dilation"}
