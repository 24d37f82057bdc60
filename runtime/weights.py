"""Layers whose weight and bias start as the spec says: an initialisation scheme (`init=`,
`weight_init=`, `bias_init=` in a spec) or literal numbers (`weight=[[...]]`, `bias=[...]`).

Each class is the torch.nn layer of its name (same constructor, same state_dict keys) with
`Initialised` mixed in. Everything happens in `reset_parameters`, after the layer's own
initialisation, from torch's random generator in construction order: so `torch.manual_seed`
then the constructor gives the same values in every process, and a module built on the meta
device gets them after `to_empty()` and a `reset_parameters()` of each layer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "BatchNorm1d", "BatchNorm2d", "Conv1d", "Conv2d", "ConvTranspose1d", "ConvTranspose2d", "Embedding",
    "FixedConv1d", "FixedConv2d", "FixedLinear", "GroupNorm", "InstanceNorm1d", "InstanceNorm2d", "Initialised",
    "LayerNorm", "Linear", "RMSNorm", "initialise",
]  # fmt: skip

Init = str | Sequence[float] | None  # a scheme's name, or the tensor's numbers (flat, row-major)


def initialise(t: torch.Tensor, init: Init, std: float = 0.02, low: float = 0.0, high: float = 1.0,
               value: float = 0.0) -> None:
    """Fill `t` in place: normal(0, std) (zeros when std is 0), trunc_normal (std, cut at -2
    and 2, as timm and torchvision's ViTs start), uniform(low, high), zeros, ones,
    constant(value), or the given numbers; None leaves it as it is."""
    with torch.no_grad():
        if init is None:
            return
        if not isinstance(init, str):
            t.copy_(torch.tensor(init, dtype=t.dtype, device=t.device).reshape(t.shape))
        elif init == "normal" and std:
            nn.init.normal_(t, std=std)
        elif init == "trunc_normal":
            nn.init.trunc_normal_(t, std=std)
        elif init == "uniform":
            nn.init.uniform_(t, low, high)
        elif init == "ones":
            nn.init.ones_(t)
        elif init == "constant":
            nn.init.constant_(t, value)
        else:
            nn.init.zeros_(t)


class Initialised:
    """Mixed into a torch layer (before it): `weight_init` and `bias_init` (a scheme or numbers,
    see `initialise`, with its std, low, high and value) overwrite what the layer's own
    `reset_parameters` drew; a tensor the layer does not have is skipped. An embedding's
    padding_idx row stays zero, as torch keeps it."""

    def __init__(self, *args, weight_init: Init = None, bias_init: Init = None, std: float = 0.02,
                 low: float = 0.0, high: float = 1.0, value: float = 0.0, **kwargs) -> None:  # fmt: skip
        # Set before the layer's __init__, which calls reset_parameters.
        self.weight_init, self.bias_init = _frozen(weight_init), _frozen(bias_init)
        self.init_numbers = {"std": std, "low": low, "high": high, "value": value}
        super().__init__(*args, **kwargs)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        for name, init in (("weight", self.weight_init), ("bias", self.bias_init)):
            if getattr(self, name, None) is not None:
                initialise(getattr(self, name), init, **self.init_numbers)
        if getattr(self, "padding_idx", None) is not None:
            self._fill_padding_idx_with_zero()

    def extra_repr(self) -> str:
        given = [f"{name}={_shown(v)}" for name, v in (("weight_init", self.weight_init), ("bias_init", self.bias_init))
                 if v is not None]  # fmt: skip
        return ", ".join([super().extra_repr(), *given])


def _frozen(init: Init) -> Init:
    return init if init is None or isinstance(init, str) else tuple(float(v) for v in init)


def _shown(init: Init) -> str:
    return repr(init) if isinstance(init, str) else f"<{len(init)} numbers>"


class Linear(Initialised, nn.Linear):
    pass


class Conv1d(Initialised, nn.Conv1d):
    pass


class Conv2d(Initialised, nn.Conv2d):
    pass


class ConvTranspose1d(Initialised, nn.ConvTranspose1d):
    pass


class ConvTranspose2d(Initialised, nn.ConvTranspose2d):
    pass


class Embedding(Initialised, nn.Embedding):
    pass


class BatchNorm1d(Initialised, nn.BatchNorm1d):
    pass


class BatchNorm2d(Initialised, nn.BatchNorm2d):
    pass


class InstanceNorm1d(Initialised, nn.InstanceNorm1d):
    pass


class InstanceNorm2d(Initialised, nn.InstanceNorm2d):
    pass


class LayerNorm(Initialised, nn.LayerNorm):
    pass


class GroupNorm(Initialised, nn.GroupNorm):
    pass


class RMSNorm(Initialised, nn.RMSNorm):
    pass


# ---- literal weights ----------------------------------------------------------------------------
class _Fixed(Initialised):
    """A layer whose weight is literal numbers and which, unless trainable, is frozen.

    `weight` is flat, row-major: one kernel (prod(kernel_size) numbers, copied into every
    filter of a conv) or the whole weight tensor; it is multiplied by `scale`. The bias starts
    as `bias_init` says (its numbers, from a literal `bias=[...]`), else at zero.
    """

    def __init__(self, *args, weight: Sequence[float] | None = None, scale: float = 1.0,
                 trainable: bool = True, bias_init: Init = None, **kwargs) -> None:  # fmt: skip
        # Set before the layer's __init__, which calls reset_parameters.
        self.literal = None if weight is None else tuple(float(v) for v in weight)
        self.scale = scale
        zero_bias = "zeros" if self.literal is not None and bias_init is None else bias_init
        super().__init__(*args, bias_init=zero_bias, **kwargs)
        self.requires_grad_(trainable)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        if self.literal is None:
            return
        shape = self.weight.shape
        values = torch.tensor(self.literal, dtype=self.weight.dtype, device=self.weight.device)
        kernel = values.reshape(shape if values.numel() == self.weight.numel() else shape[2:])
        with torch.no_grad():
            self.weight.copy_((kernel * self.scale).expand(shape))


class FixedConv1d(_Fixed, nn.Conv1d):
    pass


class FixedConv2d(_Fixed, nn.Conv2d):
    pass


class FixedLinear(_Fixed, nn.Linear):
    pass
