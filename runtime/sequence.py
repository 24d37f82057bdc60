"""Sequence and attention layers that torch.nn lacks, for generated modules.

Recurrent: JordanRNN, BahdanauDecoder. Positions: SinusoidalPositionalEncoding,
PositionEmbedding, PatchEmbed, `parameter` (a bare learned tensor: ViT's
class token). Layout steps usable in nn.Sequential: Transpose, Permute, Reshape,
Select; functions: causal_mask, window_partition, window_reverse; containers:
module_list. Everything is batch-first.
"""

from __future__ import annotations

import math

from typing import Optional

import torch
from torch import nn

from modelc.runtime.weights import initialise

__all__ = [
    "BahdanauDecoder", "JordanRNN", "PatchEmbed", "Permute", "PositionEmbedding", "Reshape",
    "SDPAMultiheadAttention", "Select", "SinusoidalPositionalEncoding", "Transpose", "causal_attn_mask",
    "causal_mask", "module_list", "parameter", "relative_coords_table", "relative_position_index",
    "shifted_window_mask", "window_partition", "window_reverse",
]  # fmt: skip

_ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "identity": lambda x: x}


# ---- containers and parameters -------------------------------------------------------------
def module_list(*items: nn.Module) -> nn.ModuleList:
    """The items of a numbered sequence that forward calls one by one (extra inputs)."""
    return nn.ModuleList(items)


def parameter(*shape: int, std: float = 0.02, init: str = "normal", value: float = 0.0,
              low: float = 0.0, high: float = 1.0) -> nn.Parameter:
    """A learned tensor at its initial values: normal(0, std) (zeros when std is 0),
    trunc_normal (std, cut at -2 and 2, as timm and torchvision's ViTs start), uniform(low,
    high), zeros, ones, or constant(value) (modelc.runtime.initialise)."""
    p = torch.empty(shape)
    initialise(p, init, std=std, low=low, high=high, value=value)
    return nn.Parameter(p)


# ---- layout ------------------------------------------------------------------------------------
class Transpose(nn.Module):
    def __init__(self, dim0: int, dim1: int) -> None:
        super().__init__()
        self.dim0, self.dim1 = dim0, dim1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.transpose(self.dim0, self.dim1)

    def extra_repr(self) -> str:
        return f"{self.dim0}, {self.dim1}"


class Permute(nn.Module):
    def __init__(self, dims: tuple[int, ...]) -> None:
        super().__init__()
        self.dims = tuple(dims)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.permute(*self.dims)

    def extra_repr(self) -> str:
        return str(list(self.dims))


class Reshape(nn.Module):
    def __init__(self, *sizes: int) -> None:
        super().__init__()
        self.sizes = sizes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(*self.sizes)

    def extra_repr(self) -> str:
        return str(list(self.sizes))


class Select(nn.Module):
    def __init__(self, dim: int, index: int) -> None:
        super().__init__()
        self.dim, self.index = dim, index

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.select(self.dim, self.index)

    def extra_repr(self) -> str:
        return f"dim={self.dim}, index={self.index}"


def causal_mask(t: int, s: int, device: torch.device | None = None) -> torch.Tensor:
    """Bool [t, s], true above the diagonal: the future positions a query may not see."""
    return torch.ones(t, s, dtype=torch.bool, device=device).triu(1)


def causal_attn_mask(mask: torch.Tensor, t: int, s: int) -> torch.Tensor:
    """scaled_dot_product_attention's attn_mask hiding what `mask` hides and the future (key j
    after query i): bool `mask` true where hidden -> true where a query may attend; a float
    mask (added to the scores) -> -inf in the future."""
    future = causal_mask(t, s, mask.device)
    if mask.dtype == torch.bool:
        return ~(mask | future)
    return mask.masked_fill(future, float("-inf"))


def window_partition(x: torch.Tensor, w: int) -> torch.Tensor:
    """[B, H, W, C] -> [B * H/w * W/w, w*w, C], windows in row-major order (as torchvision's Swin)."""
    b, h, wd, c = x.shape
    x = x.reshape(b, h // w, w, wd // w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(b * (h // w) * (wd // w), w * w, c)


def window_reverse(x: torch.Tensor, w: int, h: int, wd: int) -> torch.Tensor:
    """Inverse of window_partition: [B * h/w * wd/w, w*w, C] -> [B, h, wd, C]."""
    c = x.shape[-1]
    x = x.reshape(-1, h // w, wd // w, w, w, c).permute(0, 1, 3, 2, 4, 5)
    return x.reshape(-1, h, wd, c)


# ---- positions ----------------------------------------------------------------------------------
class SinusoidalPositionalEncoding(nn.Module):
    """x + PE[:T], PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d))."""

    def __init__(self, d_model: int, max_len: int = 5000) -> None:
        super().__init__()
        self.register_buffer("pe", torch.empty(max_len, d_model), persistent=False)  # fixed: not in the state_dict
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Fill the table. Also after `to_empty` (a module built on the meta device, as FSDP2
        does): the table is in no state_dict, so no checkpoint restores it."""
        max_len, d_model = self.pe.shape
        position = torch.arange(max_len, dtype=torch.float32).unsqueeze(1)
        freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * (-math.log(10000.0) / d_model))
        pe = torch.zeros(max_len, d_model)
        pe[:, 0::2] = torch.sin(position * freq)
        pe[:, 1::2] = torch.cos(position * freq)
        with torch.no_grad():
            self.pe.copy_(pe)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.pe[: x.shape[1]].to(x.dtype)


class PositionEmbedding(nn.Embedding):
    """x + E[0..T-1]: a learned vector per position (GPT-2's wpe); the key is `weight`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return x + self.weight[: x.shape[1]]


class PatchEmbed(nn.Module):
    """[B, C, H, W] -> [B, H/p * W/p, dim]: a p x p, stride-p conv, flattened to tokens."""

    def __init__(self, in_channels: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, patch, stride=patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


# ---- recurrent ------------------------------------------------------------------------------------
class JordanRNN(nn.Module):
    """Jordan network: the previous output, not the hidden state, is fed back.

    h_t = activation(U x_t + W y_(t-1) + b),  y_t = output_activation(V h_t + c),  y_0 = 0.
    """

    def __init__(self, input_size: int, hidden: int, output: int, activation: str = "tanh",
                 output_activation: str = "sigmoid") -> None:  # fmt: skip
        super().__init__()
        self.U = nn.Linear(input_size, hidden)
        self.W = nn.Linear(output, hidden, bias=False)
        self.V = nn.Linear(hidden, output)
        self.activation, self.output_activation = activation, output_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        act, out_act = _ACTIVATIONS[self.activation], _ACTIVATIONS[self.output_activation]
        ux = self.U(x)  # all time steps at once
        y = x.new_zeros(x.shape[0], self.V.out_features)
        outputs = []
        for t in range(x.shape[1]):
            h = act(ux[:, t] + self.W(y))
            y = out_act(self.V(h))
            outputs.append(y)
        return torch.stack(outputs, dim=1)


class BahdanauDecoder(nn.Module):
    """An LSTM decoder with additive attention (Bahdanau, Cho, Bengio 2015), teacher-forced.

    For each step t, with s the previous decoder state:
        e_j = v_a . tanh(W_a s + U_a h_j),  a = softmax(e),  c_t = sum_j a_j h_j,
        s_t = LSTMCell([y_t; c_t], s).
    y holds the embedded previous targets [B, T, E]; enc the encoder states [B, S, K];
    s0 the initial state [B, H] (the cell starts at zero). Returns the states
    [B, T, H] and the contexts [B, T, K].
    """

    def __init__(self, emb: int, enc: int, hidden: int, attention: int | None = None) -> None:
        super().__init__()
        attention = attention or hidden
        self.W_a = nn.Linear(hidden, attention, bias=False)
        self.U_a = nn.Linear(enc, attention)
        self.v_a = nn.Linear(attention, 1, bias=False)
        self.cell = nn.LSTMCell(emb + enc, hidden)

    def forward(self, y: torch.Tensor, enc: torch.Tensor, s0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        keys = self.U_a(enc)  # [B, S, A], once for all steps
        h, c = s0, torch.zeros_like(s0)
        states, contexts = [], []
        for t in range(y.shape[1]):
            scores = self.v_a(torch.tanh(keys + self.W_a(h).unsqueeze(1))).squeeze(2)  # [B, S]
            weights = torch.softmax(scores, dim=1)
            context = torch.bmm(weights.unsqueeze(1), enc).squeeze(1)  # [B, K]
            h, c = self.cell(torch.cat([y[:, t], context], dim=1), (h, c))
            states.append(h)
            contexts.append(context)
        return torch.stack(states, dim=1), torch.stack(contexts, dim=1)


# ---- attention ---------------------------------------------------------------------------------
class SDPAMultiheadAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention (batch first; the same parameters and state_dict keys) computed with
    scaled_dot_product_attention: `is_causal=True` instead of a materialised [T, S] mask, and one
    projection GEMM for self-attention. A bool `attn_mask` is true where a score is hidden (as
    nn.MultiheadAttention reads it); a float one is added to the scores. Returns the output only
    (no attention weights). Dropout on the weights in training, as nn.MultiheadAttention."""

    def forward(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,  # type: ignore[override]
                attn_mask: torch.Tensor | None = None, is_causal: bool = False) -> torch.Tensor:  # fmt: skip
        q, k, v = self._project(query, key, value)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            attn_mask = ~attn_mask  # torch's SDPA reads a bool mask as "may attend"
        p = self.dropout if self.training else 0.0
        y = nn.functional.scaled_dot_product_attention(q, k, v, attn_mask, p, is_causal=is_causal)
        b, t = query.shape[:2]
        return self.out_proj(y.transpose(1, 2).reshape(b, t, self.embed_dim))

    def _project(self, query, key, value) -> list[torch.Tensor]:
        """q, k, v: [B, heads, L, D / heads]; a single GEMM when query, key and value are one tensor."""
        w, b = self.in_proj_weight, self.in_proj_bias
        if query is key and key is value:
            parts = nn.functional.linear(query, w, b).chunk(3, dim=-1)
        else:
            ws, bs = w.chunk(3), (b.chunk(3) if b is not None else (None,) * 3)
            parts = [nn.functional.linear(x, wi, bi) for x, wi, bi in zip((query, key, value), ws, bs)]
        return [x.unflatten(-1, (self.num_heads, self.head_dim)).transpose(1, 2) for x in parts]


# ---- Swin: windows with a relative position bias, shifted ------------------------------------
def relative_position_index(window: int) -> nn.Buffer:
    """For every pair (i, j) of positions in a window, the row of its offset in a
    (2w-1)^2 bias table: [w*w * w*w] ids (torchvision's Swin buffer of the same name)."""
    coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
    rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)  # offsets from 0
    return nn.Buffer((rel[:, :, 0] * (2 * window - 1) + rel[:, :, 1]).flatten())


def relative_coords_table(window: int) -> nn.Buffer:
    """[1, 2w-1, 2w-1, 2]: the offsets (dy, dx) between positions of a w x w window, divided by
    w - 1 and times 8 (so in [-8, 8]), then log-spaced, sign(t) * log2(1 + |t|) / 3: the input of
    Swin V2's continuous position bias MLP (torchvision's buffer of the same name, computed in
    the same order, so equal to the bit)."""
    offsets = torch.arange(-(window - 1), window, dtype=torch.float32)
    table = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij")).permute(1, 2, 0).unsqueeze(0)
    table = table / (window - 1) * 8
    return nn.Buffer(torch.sign(table) * torch.log2(torch.abs(table) + 1.0) / 3.0)


def shifted_window_mask(h: int, w: int, window: int, shift: int, device: Optional[torch.device] = None,
                        dtype: Optional[torch.dtype] = None) -> torch.Tensor:  # fmt: skip
    """[windows, window^2, window^2]: -100 where two positions of a window of the map rolled by
    -shift came from different regions of the unrolled map (so they do not attend), else 0; in
    `dtype` (the scores', so a bf16 model stays bf16), float32 by default. The regions are the
    rows (and columns) before h - window, from there to h - shift, and after: 3 x 3 of them.
    Typed for torch.jit.script."""
    rows = torch.arange(h, device=device)
    cols = torch.arange(w, device=device)
    row_region = (rows >= h - window).long() + (rows >= h - shift).long()
    col_region = (cols >= w - window).long() + (cols >= w - shift).long()
    region = (3 * row_region[:, None] + col_region[None, :]).float()
    ids = window_partition(region[None, :, :, None], window).squeeze(2)  # [windows, window^2]
    differs = ids[:, None, :] != ids[:, :, None]
    return torch.zeros(differs.shape, device=device, dtype=dtype).masked_fill(differs, -100.0)
