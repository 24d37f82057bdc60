"""Layers of today's architectures that torch.nn lacks: layer norm over another dimension
than the last, linear layers with a transposed weight or a partly masked bias, stochastic
depth (drop path), rotary and timestep embeddings.

As everywhere in modelc.runtime: deterministic in eval mode, no Python branch on tensor
values (only on `self.training` and constructor settings), parameters initialised in
`reset_parameters` (inherited), so a module built on the meta device materialises.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from modelc.runtime.weights import Initialised

__all__ = ["LayerNormDim", "MaskedBiasLinear", "StochasticDepth", "TransposedLinear", "rotary", "timestep_embedding"]


class LayerNormDim(Initialised, nn.LayerNorm):
    """nn.LayerNorm over dimension `dim` (1: the channels of a [B, C, H, W] map, as
    torchvision's LayerNorm2d): the same `weight` and `bias`, so checkpoints load. `init`:
    weight_init, bias_init and their numbers (modelc.runtime.Initialised)."""

    def __init__(self, normalized_shape: int, dim: int, eps: float = 1e-5, elementwise_affine: bool = True,
                 **init) -> None:  # fmt: skip
        super().__init__(normalized_shape, eps=eps, elementwise_affine=elementwise_affine, **init)
        self.dim = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.layer_norm(x.movedim(self.dim, -1), self.normalized_shape, self.weight, self.bias, self.eps)
        return y.movedim(-1, self.dim)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, dim={self.dim}"


class _TransposedLinear(nn.Module):

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = nn.Parameter(torch.empty(in_features, out_features))
        self.bias = nn.Parameter(torch.empty(out_features)) if bias else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        nn.init.normal_(self.weight, std=0.02)  # as GPT-2 starts its Conv1D layers
        if self.bias is not None:
            nn.init.zeros_(self.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight.t(), self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class MaskedBiasLinear(Initialised, nn.Linear):
    """nn.Linear whose bias, cut into len(mask) equal parts, counts in forward only where mask
    is 1: `mask=(1, 0, 1)` keeps a fused qkv projection's key bias at zero (torchvision's Swin
    V2 zeroes that part of a clone of `qkv.bias` in forward). The parameter keeps its full
    size and its key, and gets no gradient where masked. `init`: weight_init, bias_init and
    their numbers (modelc.runtime.Initialised); the masked parts of the bias stay zero."""

    def __init__(self, in_features: int, out_features: int, mask: tuple[int, ...], **init) -> None:
        self.mask = [int(m) for m in mask]
        super().__init__(in_features, out_features, **init)

    def reset_parameters(self) -> None:
        super().reset_parameters()
        with torch.no_grad():  # as torchvision starts it: zero where masked
            self.bias.copy_(self.masked_bias())

    def masked_bias(self) -> torch.Tensor:
        parts: list[torch.Tensor] = []
        for i, part in enumerate(self.bias.chunk(len(self.mask))):
            parts.append(part if self.mask[i] == 1 else torch.zeros_like(part))
        return torch.cat(parts)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(x, self.weight, self.masked_bias())

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask={tuple(self.mask)}"


class TransposedLinear(Initialised, _TransposedLinear):
    """A linear layer whose weight is stored [in, out]: y = x @ weight + bias. Hugging Face's
    GPT-2 checkpoints keep their projections this way (its Conv1D), so they load as they are.
    It starts as GPT-2's Conv1D (normal(0, 0.02), zero bias) unless weight_init or bias_init
    say otherwise (modelc.runtime.Initialised)."""


class StochasticDepth(nn.Module):
    """Drop path (Huang et al., 2016): in training, each sample's input (mode "row") or the
    whole batch's ("batch") is zeroed with probability p and the rest scaled by 1 / (1 - p);
    the identity in eval mode. torchvision.ops.StochasticDepth computes the same."""

    def __init__(self, p: float, mode: str = "row") -> None:
        super().__init__()
        self.p, self.mode = p, mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        shape = [x.shape[0]] + [1] * (x.dim() - 1) if self.mode == "row" else [1] * x.dim()
        keep = torch.empty(shape, dtype=x.dtype, device=x.device).bernoulli_(1.0 - self.p)
        if self.p < 1.0:
            keep.div_(1.0 - self.p)
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}, mode={self.mode!r}"


def rotary(x: torch.Tensor, theta: float = 10000.0, interleaved: bool = False) -> torch.Tensor:
    """Rotary position embedding of x [..., T, d] at positions 0..T-1: feature pairs turned by
    t * theta^(-2i/d), the angles in float32 as Hugging Face computes them. Pairs are (i, i +
    d/2) (rotate_half), or (2i, 2i+1) when interleaved."""
    d, t = x.shape[-1], x.shape[-2]
    inv_freq = 1.0 / (theta ** (torch.arange(0, d, 2, device=x.device, dtype=torch.int64).float() / d))
    angles = torch.arange(t, device=x.device, dtype=torch.float32)[:, None] * inv_freq[None, :]
    cos, sin = angles.cos().to(x.dtype), angles.sin().to(x.dtype)
    if interleaved:
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1).flatten(-2)
    x1, x2 = x[..., : d // 2], x[..., d // 2 :]
    return torch.cat((x1 * cos - x2 * sin, x2 * cos + x1 * sin), dim=-1)


def timestep_embedding(t: torch.Tensor, dim: int, flip_sin_to_cos: bool = False, downscale_freq_shift: float = 1.0,
                       scale: float = 1.0, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of timesteps t [B] -> float32 [B, dim], computed as diffusers'
    get_timestep_embedding does (in float32): angles scale * t * exp(-ln(max_period) * i /
    (dim // 2 - downscale_freq_shift)), sines then cosines (swapped when flip_sin_to_cos),
    zero-padded by one column when dim is odd."""
    half = dim // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    angles = scale * (t[:, None].float() * torch.exp(exponent / (half - downscale_freq_shift))[None, :])
    emb = torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)
    if flip_sin_to_cos:
        emb = torch.cat([emb[:, half:], emb[:, :half]], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))
