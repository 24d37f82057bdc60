"""Values of the elaborator: numbers, strings, lists, and tensors in the graph."""

from __future__ import annotations

from dataclasses import dataclass

from modelc.symbolic import Sym
from modelc.types import TensorType

__all__ = ["Configured", "Poison", "Tensor", "describe_value", "type_name"]


@dataclass(frozen=True)
class Tensor:
    """Output `port` of graph node `node`."""

    node: int
    port: int
    type: TensorType

    @property
    def ref(self) -> tuple[int, int]:
        return (self.node, self.port)


@dataclass(frozen=True)
class Configured:
    """What `def name = target(args)` names: an op or block (`target`, another def's resolved)
    with some arguments, evaluated where the def is; `x -> name(more)` calls target(args, more).
    `args`: (value, span); `kwargs`: (name, value, span), the spans where they are written."""

    name: str
    target: str
    args: tuple[tuple[object, object], ...]
    kwargs: tuple[tuple[str, object, object], ...]
    span: object  # the def's name, where notes point


class _Poison:
    """The value of an expression that already failed; uses of it stay silent."""

    def __repr__(self) -> str:
        return "<poison>"


Poison = _Poison()


def type_name(v) -> str:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "str"
    if isinstance(v, (list, tuple)):
        return "list"
    if isinstance(v, Tensor):
        return "tensor"
    if isinstance(v, Configured):
        return "def"
    if isinstance(v, Sym):
        return "symbolic dimension"
    return type(v).__name__


def describe_value(v) -> str:
    if isinstance(v, Tensor):
        return f"a tensor {v.type}"
    if isinstance(v, Configured):
        return f"def {v.name} (a configured {v.target})"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"' if len(v) < 40 else f'a string of {len(v)} characters'
    if isinstance(v, (list, tuple)):
        return f"a list [{', '.join(describe_value(x) for x in v[:4])}{', ...' if len(v) > 4 else ''}]"
    if isinstance(v, (int, float, Sym)):
        text = str(v)
        return text if len(text) < 40 else f"a {type_name(v)} of {len(text)} digits"
    return type_name(v)
