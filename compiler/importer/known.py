"""Known modules: torchvision classes whose forward torch.fx cannot trace, written by hand.

Swin's `ShiftedWindowAttention` computes its windows, shifts and masks with Python control flow
on sizes, and `PatchMerging` calls a function that fx keeps opaque (`_patch_merging_pad`). Each
entry here checks that an instance is the configuration the text expresses (else E0703) and
returns it as a block whose parameters are read from the instance. The texts are those of the
zoo's specs/swin_t.model, so the same names give the same `state_dict` keys.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from modelc.importer.raw import Raw
from modelc.importer.table import Unsupported

__all__ = ["KNOWN", "find"]

SHIFTED_WINDOW_ATTENTION = """\
block ShiftedWindowAttention(heads: int, window: int, shift: int) {
    input x: [B, H, W, C]
    n = window * window
    d = C // heads
    s = 0 if window >= H else shift                       # one window covers the map: no shift
    w = x -> roll([-s, -s], [1, 2]) if s > 0 else x
    w = w -> window_partition(window)                     # [B * windows, n, C]
    q, k, v = w -> qkv: linear(3 * C) -> reshape([-1, n, 3, heads, d]) -> permute([2, 0, 3, 1, 4])
                -> unbind(0)
    attn = q * d ** -0.5 @ transpose(k, -2, -1)
    table = relative_position_bias_table: parameter([(2 * window - 1) ** 2, heads])
    index = relative_position_index: relative_position_index(window)
    attn = attn + (index_select(table, index) -> reshape([n, n, heads]) -> permute([2, 0, 1]))
    windows = H // window * (W // window)
    attn = (attn -> reshape([-1, windows, heads, n, n])) + (x -> shifted_window_mask(window, s) -> unsqueeze(1))
           -> reshape([-1, heads, n, n]) if s > 0 else attn
    y = softmax(attn) @ v -> transpose(1, 2) -> reshape([-1, n, C]) -> proj: linear(C)
    y = y -> window_reverse(window, H, W)
    output y -> roll([s, s], [1, 2]) if s > 0 else y
}"""

PATCH_MERGING = """\
block PatchMerging {
    input x: [B, H, W, C]
    x0 = x -> slice(1, 0, step=2) -> slice(2, 0, step=2)  # even rows, even columns
    x1 = x -> slice(1, 1, step=2) -> slice(2, 0, step=2)  # odd rows, even columns
    x2 = x -> slice(1, 0, step=2) -> slice(2, 1, step=2)
    x3 = x -> slice(1, 1, step=2) -> slice(2, 1, step=2)
    output concat(x0, x1, x2, x3, dim=3) -> norm: layer_norm -> reduction: linear(2 * C, bias=false)
}"""


def _square(v: Any, what: str) -> int:
    v = list(v)
    if len(set(v)) != 1:
        raise Unsupported(f"{what}={v} (the known block takes square windows)")
    return int(v[0])


def _fixed(name: str, text: str, values: list, names: list[str], path: str) -> Raw:
    def render(exprs: list[str], extras: list[str]) -> str:
        args = list(extras) + list(exprs)
        return f"{name}({', '.join(args)})" if args else name

    return Raw("block", f"known:{name}", values, names, render, path, fixed=text, block_name=name)


def _shifted_window_attention(m, path: str) -> Raw:
    if type(m).__name__ != "ShiftedWindowAttention":
        raise Unsupported("only the v1 ShiftedWindowAttention is known")
    if m.qkv.bias is None or m.proj.bias is None:
        raise Unsupported("qkv or proj without bias")
    window = _square(m.window_size, "window_size")
    shift = _square(m.shift_size, "shift_size")
    return _fixed("ShiftedWindowAttention", SHIFTED_WINDOW_ATTENTION, [m.num_heads, window, shift],
                  ["heads", "window", "shift"], path)  # fmt: skip


def _patch_merging(m, path: str) -> Raw:
    norm = m.norm
    if type(norm).__name__ != "LayerNorm" or norm.eps != 1e-5 or m.reduction.bias is not None:
        raise Unsupported("a norm other than LayerNorm(eps=1e-5), or a reduction with bias")
    return _fixed("PatchMerging", PATCH_MERGING, [], [], path)


# NOTE: [Known modules] keyed by "module.Class"; each returns a fixed block (see docs/import.md).
KNOWN: dict[str, Callable[[Any, str], Raw]] = {
    "torchvision.models.swin_transformer.ShiftedWindowAttention": _shifted_window_attention,
    "torchvision.models.swin_transformer.PatchMerging": _patch_merging,
}


def find(module) -> Callable[[Any, str], Raw] | None:
    cls = type(module)
    return KNOWN.get(f"{cls.__module__}.{cls.__qualname__}")
