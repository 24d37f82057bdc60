"""The op registry. Importing this package registers every op family."""

from modelc.ops import activation, conv, generative, linear, norm, pool, tensor  # noqa: F401
from modelc.ops import attention, embedding, layout, recurrent, window  # noqa: F401 - sequences, attention
from modelc.ops import math, reduce, routing  # noqa: F401 - tensor algebra, reductions, routing
from modelc.ops.base import FAMILIES, REGISTRY, Attr, Ctor, OpDef, OpError, Requirement, get, register

__all__ = ["FAMILIES", "REGISTRY", "Attr", "Ctor", "OpDef", "OpError", "Requirement", "get", "register"]
