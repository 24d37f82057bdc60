"""Swin's window ops, cyclic shifts and sub-pixel shuffles: window_partition and
window_reverse, relative_position_index, relative_coords_table (Swin V2), shifted_window_mask,
roll and pixel_shuffle.

Their reference semantics (`reference`) are derived from the definitions in the docs, not
from modelc.runtime's functions, which the emitted code calls and the interpreter checks.
"""

from __future__ import annotations

from modelc.ops._util import norm_dim
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.ops.layout import exact_div
from modelc.pyformat import CallExpr
from modelc.symbolic import Dim
from modelc.types import TensorType


@register
class Roll(OpDef):
    name = "roll"
    family = "tensor"
    doc = "Cyclic shift along dims: roll([-3, -3], [1, 2]) (Swin's shifted windows)."
    attrs = (Attr("shifts", "ints", positional=True), Attr("dims", "ints", positional=True))

    def resolve(self, a, ins):
        shifts = a["shifts"] if isinstance(a["shifts"], tuple) else (a["shifts"],)
        dims = a["dims"] if isinstance(a["dims"], tuple) else (a["dims"],)
        if len(shifts) != len(dims):
            raise OpError("E0404", f"roll: {len(shifts)} shift(s) for {len(dims)} dim(s)")
        return {**a, "shifts": shifts, "dims": tuple(norm_dim(d, ins[0].rank, "roll") for d in dims)}

    def reference(self, a, ins, w):
        import torch

        x = ins[0]
        for shift, dim in zip(a["shifts"], a["dims"]):  # out[i] = x[(i - shift) mod n]
            n = x.shape[dim]
            x = x.index_select(dim, (torch.arange(n, device=x.device) - shift) % n)
        return [x]

    def call(self, a, args):
        return CallExpr("torch.roll", [args[0], f"shifts={a['shifts']}", f"dims={a['dims']}"])

    def label(self, a):
        return f"roll{list(a['shifts'])}"



# ---- windows and pixels --------------------------------------------------------------------
def _windows(op: str, size: Dim, w: int, what: str) -> Dim:
    n = exact_div(size, w)
    if n is None:
        raise OpError("E0301", f"{op}: {what} {size} is not a multiple of the window {w}",
                      "pad the input, or choose a window that divides it")  # fmt: skip
    return n


@register
class WindowPartition(OpDef):
    name = "window_partition"
    family = "tensor"
    doc = "[B, H, W, C] -> [B * H/w * W/w, w*w, C]: non-overlapping w x w windows (Swin)."
    attrs = (Attr("window", "int", positional=True, min=1),)
    outputs_layout = "new"

    def infer(self, a, ins):
        x, w = ins[0], a["window"]
        if x.rank != 4:
            raise OpError("E0305", f"window_partition expects [B, H, W, C], got {x}")
        b, h, wd, c = x.dims
        nh, nw = _windows(self.name, h, w, "height"), _windows(self.name, wd, w, "width")
        return [x.with_dims((b * nh * nw, w * w, c))]

    def reference(self, a, ins, w):
        return [partition(ins[0], a["window"])]

    def call(self, a, args):
        return f"rt.window_partition({args[0]}, {a['window']})"

    def label(self, a):
        return f"window partition {a['window']}x{a['window']}"


@register
class WindowReverse(OpDef):
    name = "window_reverse"
    family = "tensor"
    doc = "Inverse of window_partition: [B * H/w * W/w, w*w, C] -> [B, H, W, C]."
    attrs = (Attr("window", "int", positional=True, min=1), Attr("h", "int", positional=True, min=1),
             Attr("w", "int", positional=True, min=1))  # fmt: skip
    outputs_layout = "new"

    def infer(self, a, ins):
        x, w = ins[0], a["window"]
        if x.rank != 3 or x.dims[1] != w * w:
            raise OpError("E0305", f"window_reverse expects [windows, {w * w}, C], got {x}")
        n = _windows(self.name, a["h"], w, "height") * _windows(self.name, a["w"], w, "width")
        b = exact_div(x.dims[0], n)
        if b is None:
            raise OpError("E0301", f"window_reverse: {x.dims[0]} windows are not a multiple of the "
                          f"{n} windows of a {a['h']}x{a['w']} map")  # fmt: skip
        return [x.with_dims((b, a["h"], a["w"], x.dims[2]))]

    def reference(self, a, ins, w):
        import torch

        x = ins[0]
        b = x.shape[0] // ((a["h"] // a["window"]) * (a["w"] // a["window"]))
        # Where window_partition takes each element from: scatter it back there.
        where = partition(torch.arange(b * a["h"] * a["w"], device=x.device).reshape(b, a["h"], a["w"], 1),
                          a["window"]).flatten()  # fmt: skip
        out = x.new_empty(b * a["h"] * a["w"], x.shape[-1])
        out[where] = x.reshape(-1, x.shape[-1])
        return [out.reshape(b, a["h"], a["w"], x.shape[-1])]

    def call(self, a, args):
        return f"rt.window_reverse({args[0]}, {a['window']}, {a['h']}, {a['w']})"

    def label(self, a):
        return f"window reverse {a['window']}x{a['window']}"


@register
class RelativePositionIndex(OpDef):
    name = "relative_position_index"
    family = "tensor"
    doc = ("The constant ids [w*w * w*w] of the relative offset of every pair of positions in a "
           "w x w window, for a (2w-1)^2-row bias table (Swin); a buffer named by its label.")  # fmt: skip
    attrs = (Attr("window", "int", positional=True, min=1),)
    inputs = 0
    min_inputs = 0
    sequential = False

    def infer(self, a, ins):
        return [TensorType((a["window"] ** 4,), "int64")]

    def reference(self, a, ins, w):
        import torch

        # Positions p = (row, col) of a w x w window in row-major order; the pair (i, j) reads row
        # (row_i - row_j + w - 1) * (2w - 1) + (col_i - col_j + w - 1) of the bias table.
        n = a["window"]
        p = torch.arange(n * n)
        row, col = p // n, p % n
        return [((row[:, None] - row[None, :] + n - 1) * (2 * n - 1) + col[:, None] - col[None, :] + n - 1).flatten()]

    def module(self, a):
        return Ctor("rt.relative_position_index", (a["window"],))

    def invoke(self, a, callee, args):
        return callee

    def label(self, a):
        return f"relative position index {a['window']}x{a['window']}"


@register
class RelativeCoordsTable(OpDef):
    name = "relative_coords_table"
    family = "tensor"
    doc = ("The constant [1, 2w-1, 2w-1, 2] table of the relative offsets (dy, dx) of a w x w window, "
           "each scaled to [-8, 8] and log-spaced, sign(t) * log2(1 + |t|) / 3: the input of Swin V2's "
           "continuous position bias MLP; a buffer named by its label.")  # fmt: skip
    attrs = (Attr("window", "int", positional=True, min=2),)
    inputs = 0
    min_inputs = 0
    sequential = False

    def infer(self, a, ins):
        side = 2 * a["window"] - 1
        return [TensorType((1, side, side, 2))]

    def reference(self, a, ins, w):
        # A float buffer is state, as a parameter is: a checkpoint (or verify's randomised
        # weights) may hold other values than the table it starts as (tests/test_swin_v2_ops.py
        # checks those against torchvision's).
        return [w[""]]

    def module(self, a):
        return Ctor("rt.relative_coords_table", (a["window"],))

    def invoke(self, a, callee, args):
        return callee

    def label(self, a):
        return f"relative coords table {a['window']}x{a['window']}"


@register
class ShiftedWindowMask(OpDef):
    name = "shifted_window_mask"
    family = "attention"
    doc = ("For x [B, H, W, C] rolled by -shift: [windows, w*w, w*w], -100 between positions "
           "of a window that came from different regions of the unrolled map, else 0 (Swin).")  # fmt: skip
    attrs = (Attr("window", "int", positional=True, min=1), Attr("shift", "int", positional=True, min=1))

    def infer(self, a, ins):
        x, w = ins[0], a["window"]
        if x.rank != 4:
            raise OpError("E0305", f"shifted_window_mask expects [B, H, W, C], got {x}")
        if a["shift"] >= w:  # a shift of a whole window or more moves windows, not their contents
            raise OpError("E0404", f"shifted_window_mask: shift {a['shift']} must be smaller than the "
                          f"window {w}", "Swin shifts by half a window")  # fmt: skip
        n = _windows(self.name, x.dims[1], w, "height") * _windows(self.name, x.dims[2], w, "width")
        return [TensorType((n, w * w, w * w))]

    def reference(self, a, ins, w):
        import torch

        _, h, wd, _ = ins[0].shape
        device = ins[0].device

        # Rolled by -shift, position r of the map holds r + shift of the unrolled one: it wrapped
        # around when r + shift >= size. Two positions of a window attend to each other when they
        # wrapped alike in both dimensions.
        def wrapped(size):
            return (torch.arange(size, device=device) + a["shift"] >= size).long()

        region = (wrapped(h)[:, None] * 2 + wrapped(wd)[None, :]).float()[None, :, :, None]
        ids = partition(region, a["window"]).squeeze(-1)  # [windows, w*w]
        differs = ids[:, :, None] != ids[:, None, :]
        return [torch.zeros(differs.shape, device=device).masked_fill(differs, -100.0)]

    def call(self, a, args):
        x = args[0]
        return CallExpr("rt.shifted_window_mask", [f"{x}.shape[1]", f"{x}.shape[2]", str(a["window"]),
                                                    str(a["shift"]), f"{x}.device", f"{x}.dtype"])  # fmt: skip

    def label(self, a):
        return f"shifted window mask {a['shift']}"


@register
class PixelShuffle(OpDef):
    name = "pixel_shuffle"
    family = "tensor"
    doc = "[B, C*r*r, H, W] -> [B, C, H*r, W*r] (sub-pixel upsampling)."
    attrs = (Attr("r", "int", positional=True, min=1, aliases=("upscale_factor",)),)

    def infer(self, a, ins):
        x, r = ins[0], a["r"]
        if x.rank != 4:
            raise OpError("E0305", f"pixel_shuffle expects [B, C, H, W], got {x}")
        b, c, h, w = x.dims
        out_c = exact_div(c, r * r)
        if out_c is None:
            raise OpError("E0301", f"pixel_shuffle({r}): channels {c} are not a multiple of {r * r}")
        return [x.with_dims((b, out_c, h * r, w * r))]

    def reference(self, a, ins, w):
        x, r = ins[0], a["r"]  # out[b, c, h*r + i, w*r + j] = x[b, c*r*r + i*r + j, h, w]
        b, c, h, wd = x.shape
        return [x.reshape(b, c // (r * r), r, r, h, wd).permute(0, 1, 4, 2, 5, 3).reshape(b, c // (r * r), h * r, wd * r)]

    def module(self, a):
        return Ctor("nn.PixelShuffle", (a["r"],))

    def call(self, a, args):
        return f"nn.functional.pixel_shuffle({args[0]}, {a['r']})"

    def label(self, a):
        return f"pixel shuffle x{a['r']}"


def partition(x, w: int):
    """[B, H, W, C] -> [B * H/w * W/w, w*w, C]: window (b, i, j) holds rows i*w.. and columns
    j*w.. of x[b], row-major, windows numbered row-major per sample (by unfolding)."""
    b, _, _, c = x.shape
    return x.unfold(1, w, w).unfold(2, w, w).permute(0, 1, 2, 4, 5, 3).reshape(-1, w * w, c)
