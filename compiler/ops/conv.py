"""Convolutions: conv (optionally with literal, fixed weights) and conv_transpose."""

from __future__ import annotations

from modelc.ops._init import (INIT_ATTRS, check_init, check_literal_init, fixed_bias, fixed_weight, flat,
                              free_tensors, literal_bias, with_init)  # fmt: skip
from modelc.ops._util import compact, expand, known_channels, need_float32, need_rank, numel, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, array_shape, register
from modelc.symbolic import Dim
from modelc.types import TensorType


def conv_out(size: Dim, k: int, s: int, p: int, d: int, ceil: bool = False) -> Dim:
    """floor((H + 2P - D*(K-1) - 1) / S) + 1 (ceil instead of floor when asked)."""
    span = size + 2 * p - d * (k - 1) - 1
    if ceil:
        span = span + s - 1
    return span // s + 1


def _channels_and_groups(op: str, x: TensorType, a) -> tuple[int, int, int]:
    """(spatial rank, in_channels, groups) of a 1-d/2-d convolution's input, checked."""
    need_rank(op, x, (3, 4), "[B, C, L] or [B, C, H, W]")
    need_float32(op, x)
    cin = known_channels(op, x, 1, "channel count")
    g = a["groups"]
    for what, c in (("in_channels", cin), ("out_channels", a["out_channels"])):
        if c % g:
            raise OpError("E0404", f"{op}: {what} ({c}) must be divisible by groups ({g})")
    return x.rank - 2, cin, g


def check_size(op: str, out: Dim, size: Dim, k: int) -> None:
    if isinstance(out, int) and out <= 0:
        raise OpError("E0303", f"{op} output would be empty: input size {size} with kernel {k}",
                      "use a smaller kernel or stride, add padding, or a larger input")  # fmt: skip


@register
class Conv(OpDef):
    name = "conv"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "conv"
    doc = ("1-d or 2-d convolution (by input rank); in_channels come from the input shape. weight=[[...]] "
           "and bias=[...] give its numbers; init, weight_init and bias_init how they start.")  # fmt: skip
    attrs = (
        Attr("out_channels", "int", positional=True, min=1, aliases=("channels",),
             doc="number of output channels"),
        Attr("k", "ints", 1, aliases=("kernel_size",), positional=True, min=1, doc="kernel size"),
        Attr("s", "ints", 1, aliases=("stride",), min=1),
        Attr("p", "padding", 0, aliases=("padding",), choices=("same", "valid"), min=0),
        Attr("d", "ints", 1, aliases=("dilation",), min=1),
        Attr("groups", "int", 1, min=1),
        Attr("bias", "bias", True, doc="false for none; or its numbers, [out_channels]"),
        Attr("weight", "array", None, doc="literal kernel: [kh, kw] (every filter) or [out, in/groups, kh, kw]"),
        Attr("scale", "float", 1.0, doc="factor applied to a literal weight (1/16 for a binomial kernel)"),
        Attr("trainable", "bool", True, doc="false freezes the weights (requires_grad=False)"),
        *INIT_ATTRS,
    )  # fmt: skip

    def resolve(self, a, ins):
        x = ins[0]
        n, cin, g = _channels_and_groups("conv", x, a)
        k, s, d = (expand(a[key], n, key) for key in ("k", "s", "d"))
        _check_weight(a, (a["out_channels"], cin // g, *k))
        a = literal_bias("conv", a, a["out_channels"])
        check_literal_init("conv", a)
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

    def trainable_params(self, a, params):
        return params if a["trainable"] else 0

    def module(self, a):
        kw = [("stride", compact(a["s"]), 1), ("padding", compact(a["p"]), 0),
              ("dilation", compact(a["d"]), 1), ("groups", a["groups"], 1), ("bias", a["bias"], True)]
        args = (a["in_channels"], a["out_channels"], compact(a["k"]))
        fixed = a["weight"] is not None or not a["trainable"]
        kw += [("weight", None if a["weight"] is None else flat(a["weight"]), None), ("scale", a["scale"], 1.0),
               ("bias_init", a["bias_values"], None), ("trainable", a["trainable"], True)]
        ctor = Ctor(f"rt.FixedConv{a['nd']}d" if fixed else f"nn.Conv{a['nd']}d", args,
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip
        return with_init(ctor, a, free_tensors(a))

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        x = ins[0]  # a frozen literal is a constant of the spec; so is the zero bias it starts with
        weight = fixed_weight(a, (a["out_channels"], a["in_channels"] // a["groups"], *a["k"]), w, x)
        conv = F.conv1d if a["nd"] == 1 else F.conv2d
        return [conv(x, weight, fixed_bias(a, w, x), a["s"], a["p"], a["d"], a["groups"])]

    def label(self, a):
        frozen = "" if a["trainable"] else " (fixed)"
        return f"conv {_kernel_text(a)}, {a['out_channels']}{frozen}"


def _kernel_text(a) -> str:
    """`3x3/2 dw`: kernel, stride when not 1, groups when not 1."""
    k = "x".join(str(v) for v in a["k"])
    s = compact(a["s"])
    stride = "" if s == 1 else f"/{s}" if isinstance(s, int) else "/" + "x".join(map(str, s))
    groups = ""
    if a["groups"] > 1:
        dw = a["groups"] == a["in_channels"]
        groups = " dw" if dw else f" g{a['groups']}"
    return f"{k}{stride}{groups}"


def _check_weight(a, full: tuple[int, ...]) -> None:
    """A literal weight is one kernel (shared by every filter) or the whole weight tensor."""
    w = a["weight"]
    if w is None:
        if a["scale"] != 1.0:
            raise OpError("E0404", "conv: 'scale' applies to a literal weight, but none is given",
                          "give weight=[[...]] or drop scale")  # fmt: skip
        return
    shape, kernel = array_shape(w), full[2:]
    if shape != kernel and shape != full:
        want = " or ".join(str(list(s)) for s in dict.fromkeys((kernel, full)))
        raise OpError("E0404", f"conv: the literal weight has shape {list(shape)}, expected {want}",
                      "a kernel of k x k numbers, or [out_channels, in_channels / groups, k, k]")  # fmt: skip


@register
class ConvTranspose(OpDef):
    name = "conv_transpose"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "conv"
    doc = ("Transposed (fractionally-strided) convolution, 1-d or 2-d by input rank: "
           "out = (in - 1)*s - 2p + d*(k - 1) + output_padding + 1.")  # fmt: skip
    attrs = (
        Attr("out_channels", "int", positional=True, min=1, aliases=("channels",),
             doc="number of output channels"),
        Attr("k", "ints", 1, aliases=("kernel_size",), positional=True, min=1, doc="kernel size"),
        Attr("s", "ints", 1, aliases=("stride",), min=1),
        Attr("p", "ints", 0, aliases=("padding",), min=0),
        Attr("output_padding", "ints", 0, aliases=("op",), min=0,
             doc="extra size on one side of the output (picks among the sizes a stride allows)"),
        Attr("d", "ints", 1, aliases=("dilation",), min=1),
        Attr("groups", "int", 1, min=1),
        Attr("bias", "bool", True),
        *INIT_ATTRS,
    )  # fmt: skip

    def resolve(self, a, ins):
        x = ins[0]
        check_init("conv_transpose", a, ("weight", "bias") if a["bias"] else ("weight",))
        n, cin, g = _channels_and_groups("conv_transpose", x, a)
        k, s, p, op, d = (expand(a[key], n, key) for key in ("k", "s", "p", "output_padding", "d"))
        for o, ss, dd in zip(op, s, d):
            if o >= max(ss, dd):
                raise OpError("E0404", f"conv_transpose: output_padding {o} must be smaller than the "
                              f"stride ({ss}) or the dilation ({dd})")  # fmt: skip
        return {**a, "in_channels": cin, "k": k, "s": s, "p": p, "output_padding": op, "d": d, "nd": n}

    def infer(self, a, ins):
        x = ins[0]
        spatial = []
        for i, size in enumerate(x.dims[2:]):
            out = (size - 1) * a["s"][i] - 2 * a["p"][i] + a["d"][i] * (a["k"][i] - 1) + a["output_padding"][i] + 1
            check_size("conv_transpose", out, size, a["k"][i])
            spatial.append(out)
        return [x.with_dims((x.dims[0], a["out_channels"], *spatial))]

    def params(self, a):
        per_in = a["out_channels"] // a["groups"] * prod(a["k"])
        return a["in_channels"] * per_in + (a["out_channels"] if a["bias"] else 0)

    def macs(self, a, ins, outs):
        # Every input element meets every weight of its group once (torch's FlopCounter agrees).
        return numel(ins[0]) * (a["out_channels"] // a["groups"] * prod(a["k"]))

    def module(self, a):
        kw = [("stride", compact(a["s"]), 1), ("padding", compact(a["p"]), 0),
              ("output_padding", compact(a["output_padding"]), 0), ("groups", a["groups"], 1),
              ("bias", a["bias"], True), ("dilation", compact(a["d"]), 1)]
        ctor = Ctor(f"nn.ConvTranspose{a['nd']}d", (a["in_channels"], a["out_channels"], compact(a["k"])),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip
        return with_init(ctor, a, ("weight", "bias") if a["bias"] else ("weight",))

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        conv = F.conv_transpose1d if a["nd"] == 1 else F.conv_transpose2d
        return [conv(ins[0], w["weight"], w.get("bias"), a["s"], a["p"], a["output_padding"], a["groups"], a["d"])]

    def label(self, a):
        return f"conv_transpose {_kernel_text(a)}, {a['out_channels']}"
