"""modelc.runtime: the small library that generated modules import.

Only what `torch.nn` lacks lives here; generated code uses `torch.nn` directly
wherever it can.
"""

from __future__ import annotations

from collections import OrderedDict

from torch import nn

from modelc.runtime.checkpoint import *  # noqa: F403 - loading unoptimized checkpoints (rt.CheckpointRules)
from modelc.runtime.layers import *  # noqa: F403 - today's layers torch.nn lacks (rt.StochasticDepth, ...)
from modelc.runtime.sequence import *  # noqa: F403 - sequence and attention layers (rt.JordanRNN, ...)
from modelc.runtime.vision import *  # noqa: F403 - vision and generative layers (rt.ChannelFC, ...)
from modelc.runtime.weights import *  # noqa: F403 - layers started as the spec says (rt.Linear, rt.FixedConv2d, ...)

__all__ = ["module_dict", "named_sequential"]


def named_sequential(*items: tuple[str, nn.Module]) -> nn.Sequential:
    """An `nn.Sequential` whose children have the given names (`("conv1", m), ("0", m2)`)."""
    return nn.Sequential(OrderedDict(items))


def module_dict(*items: tuple[str, nn.Module]) -> nn.ModuleDict:
    """The items of a sequence that forward calls one by one (extra inputs), when some are
    labelled: `("0", m), ("gate", m2)`, called as `self.layers["gate"](x, memory)`."""
    return nn.ModuleDict(OrderedDict(items))
