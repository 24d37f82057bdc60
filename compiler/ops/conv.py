"""Convolutions."""

from __future__ import annotations

from modelc.ops._util import compact, expand, known_channels, need_rank, numel, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.symbolic import Dim
from modelc.types import TensorType


def conv_out(size: Dim, k: int, s: int, p: int, d: int, ceil: bool = False) -> Dim:
    """floor((H + 2P - D*(K-1) - 1) / S) + 1 (ceil instead of floor when asked)."""
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        span = span + s - 1
    return span // s + 1


def check_size(op: str, out: Dim, size: Dim, k: int) -> None:
    if isinstance(out, int) and out <= 0:
        raise OpError("E0303", f"{op} output would be empty: input size {size} with kernel {k}",
                      "use a smaller kernel or stride, add padding, or a larger input")  # fmt: skip


@register
class Conv(OpDef):
    name = "conv"
    family = "conv"
    doc = "1-d or 2-d convolution (by input rank); in_channels come from the input shape."
    attrs = (
        Attr("out_channels", "int", positional=True, min=1, aliases=("channels",),
             doc="number of output channels"),
        Attr("k", "ints", 1, aliases=("kernel_size",), positional=True, min=1, doc="kernel size"),
        Attr("s", "ints", 1, aliases=("stride",), min=1),
        Attr("p", "padding", 0, aliases=("padding",), choices=("same", "valid"), min=0),
        Attr("d", "ints", 1, aliases=("dilation",), min=1),
        Attr("groups", "int", 1, min=1),
        Attr("bias", "bool", True),
    )  # fmt: skip

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("conv", x, (3, 4), "[B, C, L] or [B, C, H, W]")
        n = x.rank - 2
        cin = known_channels("conv", x, 1, "channel count")
        g = a["groups"]
        for what, c in (("in_channels", cin), ("out_channels", a["out_channels"])):
            if c % g:
                raise OpError("E0404", f"conv: {what} ({c}) must be divisible by groups ({g})")
        k, s, d = (expand(a[key], n, key) for key in ("k", "s", "d"))
        p = expand(a["p"], n, "p")
        if p == "valid":
            p = (0,) * n
        if p == "same" and any(v != 1 for v in s):
            raise OpError("E0404", "conv: padding \"same\" needs stride 1",
                          "pad explicitly, e.g. p=1 for a 3x3 kernel")  # fmt: skip
        return {**a, "in_channels": cin, "k": k, "s": s, "p": p, "d": d, "nd": n}

    def infer(self, a, ins):
        x = ins[0]
        spatial = []
        for i, size in enumerate(x.dims[2:]):
            if a["p"] == "same":
                spatial.append(size)
                continue
            out = conv_out(size, a["k"][i], a["s"][i], a["p"][i], a["d"][i])
            check_size("conv", out, size, a["k"][i])
            spatial.append(out)
        return [x.with_dims((x.dims[0], a["out_channels"], *spatial))]

    def params(self, a):
        per_out = a["in_channels"] // a["groups"] * prod(a["k"])
        return a["out_channels"] * per_out + (a["out_channels"] if a["bias"] else 0)

    def macs(self, a, ins, outs):
        return numel(outs[0]) * (a["in_channels"] // a["groups"] * prod(a["k"]))

    def module(self, a):
        kw = [("stride", compact(a["s"]), 1), ("padding", compact(a["p"]), 0),
              ("dilation", compact(a["d"]), 1), ("groups", a["groups"], 1), ("bias", a["bias"], True)]
        return Ctor(f"nn.Conv{a['nd']}d", (a["in_channels"], a["out_channels"], compact(a["k"])),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip

    def label(self, a):
        k = "x".join(str(v) for v in a["k"])
        s = compact(a["s"])
        stride = "" if s == 1 else f"/{s}" if isinstance(s, int) else "/" + "x".join(map(str, s))
        groups = ""
        if a["groups"] > 1:
            dw = a["groups"] == a["in_channels"]
            groups = " dw" if dw else f" g{a['groups']}"
        return f"conv {k}{stride}{groups}, {a['out_channels']}"
