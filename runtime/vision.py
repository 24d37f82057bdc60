"""Layers for vision and generative models that torch.nn lacks.

Each is deterministic in eval mode, takes no Python branch on tensor values (only
on `self.training` and constructor settings, as nn.Dropout does), uses every
parameter in every forward, and initialises its parameters in
`reset_parameters`, so a module built on the `meta` device can be initialised
after `to_empty`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

__all__ = [
    "CenterCrop",
    "ChannelFC",
    "GaussianNoise",
    "MaskingNoise",
    "Maxout",
    "Reparameterize",
    "center_crop",
    "maxout",
]


# ---- noise and sampling: random in training only ---------------------------------------
class GaussianNoise(nn.Module):
    """x + N(0, std^2) (or x * (1 + N(0, std^2)) when multiplicative) in training; x in eval."""

    def __init__(self, std: float = 0.1, multiplicative: bool = False) -> None:
        super().__init__()
        self.std, self.multiplicative = std, multiplicative

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        noise = torch.randn_like(x) * self.std
        return x * (1 + noise) if self.multiplicative else x + noise

    def extra_repr(self) -> str:
        return f"std={self.std}" + (", multiplicative=True" if self.multiplicative else "")


class MaskingNoise(nn.Module):
    """Zeroes a random fraction p of the elements in training, without rescaling; x in eval."""

    def __init__(self, p: float = 0.25) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return x
        return x * (torch.rand_like(x) >= self.p).to(x.dtype)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class Reparameterize(nn.Module):
    """mean + exp(log_var / 2) * eps, eps ~ N(0, 1), in training; the mean in eval mode."""

    def forward(self, mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return mean
        return mean + torch.exp(0.5 * log_var) * torch.randn_like(mean)


# ---- maxout, channel-wise fully connected ---------------------------------------------------
def maxout(x: torch.Tensor, k: int) -> torch.Tensor:
    """[B, k*C, ...] -> [B, C, ...]: the max over each group of k consecutive channels."""
    return x.unflatten(1, (x.shape[1] // k, k)).amax(2)


class Maxout(nn.Module):
    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return maxout(x, self.k)

    def extra_repr(self) -> str:
        return f"k={self.k}"


def _size(size: int | Sequence[int]) -> tuple[int, ...]:
    return (size,) if isinstance(size, int) else tuple(size)


class ChannelFC(nn.Module):
    """A fully connected layer per channel between feature maps: [B, C, *in_size] -> [B, C, *size].

    weight: [C, prod(in_size), prod(size)]; bias: [C, prod(size)]. No information
    flows between channels (Pathak et al., 2016, "Context Encoders", section 3.1).
    """

    def __init__(self, channels: int, in_size, size, bias: bool = True) -> None:
        super().__init__()
        self.channels, self.in_size, self.size = channels, _size(in_size), _size(size)
        n_in, n_out = math.prod(self.in_size), math.prod(self.size)
        self.weight = nn.Parameter(torch.empty(channels, n_in, n_out))
        self.bias = nn.Parameter(torch.empty(channels, n_out)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # As nn.Linear, per channel: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
        bound = 1 / math.sqrt(self.weight.shape[1])
        nn.init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.einsum("bci,cio->bco", x.flatten(2), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.unflatten(2, self.size)

    def extra_repr(self) -> str:
        return f"{self.channels}, in_size={self.in_size}, size={self.size}, bias={self.bias is not None}"


# ---- cropping ---------------------------------------------------------------------------------
def center_crop(x: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """The middle `size` of x's trailing dimensions (U-Net's copy-and-crop)."""
    size = tuple(size)
    have = x.shape[len(x.shape) - len(size) :]
    index = [slice((h - s) // 2, (h - s) // 2 + s) for h, s in zip(have, size)]
    return x[(..., *index)]


class CenterCrop(nn.Module):
    """Crops to a fixed size, or (with no size) to the spatial size of a second input."""

    def __init__(self, size: int | Sequence[int] | None = None) -> None:
        super().__init__()
        self.size = None if size is None else _size(size)

    def forward(self, x: torch.Tensor, like: torch.Tensor | None = None) -> torch.Tensor:
        if like is not None:
            return center_crop(x, like.shape[2:])
        size = self.size if len(self.size) > 1 else self.size * (x.dim() - 2)
        return center_crop(x, size)

    def extra_repr(self) -> str:
        return "" if self.size is None else f"size={self.size}"
