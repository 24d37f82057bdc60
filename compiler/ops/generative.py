"""Layers of autoencoders and generative models: noise, sampling, maxout, channel-wise fc.

Their modules live in `modelc.runtime.vision` (torch.nn has none of them). The
noise layers and the sampling layer are random only in training mode and the
identity (or the mean) in eval mode, like nn.Dropout.
"""

from __future__ import annotations

from modelc.ops._util import known_channels, need_float, need_float32, need_rank, numel, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.pyrepr import literal


class _Noise(OpDef):
    family = "norm"  # drawn and summarised with dropout: a training-time regularizer
    prefer_module = True

    def reference(self, a, ins, w):
        return [ins[0]]  # eval mode: no noise


@register
class GaussianNoise(_Noise):
    name = "gaussian_noise"
    doc = ("Adds N(0, std^2) noise in training (x * (1 + noise) when multiplicative); "
           "the identity in eval mode. The corruption of a denoising autoencoder.")  # fmt: skip
    attrs = (
        Attr("std", "float", 0.1, positional=True, min=0, doc="standard deviation of the noise"),
        Attr("multiplicative", "bool", False),
    )

    def resolve(self, a, ins):
        need_float(self.name, ins[0])  # normal noise: floats
        return a

    def module(self, a):
        kw = (("multiplicative", True),) if a["multiplicative"] else ()
        return Ctor("rt.GaussianNoise", (a["std"],), kw)

    def label(self, a):
        return f"gaussian noise {a['std']:g}" + (" (x)" if a["multiplicative"] else "")


@register
class MaskingNoise(_Noise):
    name = "masking_noise"
    doc = ("Sets a random fraction p of the inputs to 0 in training, without rescaling the rest "
           "(Vincent et al., 2010); the identity in eval mode.")  # fmt: skip
    attrs = (Attr("p", "float", 0.25, positional=True, min=0, doc="fraction of inputs zeroed"),)

    def resolve(self, a, ins):
        if a["p"] >= 1:
            raise OpError("E0404", f"masking_noise: p must be below 1, got {a['p']:g}")
        return a

    def module(self, a):
        return Ctor("rt.MaskingNoise", (a["p"],))

    def label(self, a):
        return f"masking noise {a['p']:g}"


@register
class Reparameterize(OpDef):
    name = "reparameterize"
    family = "tensor"
    doc = ("z = mean + exp(log_var / 2) * N(0, 1) in training, the mean in eval mode "
           "(Kingma & Welling, 2014); inputs: mean, log_var of one shape.")  # fmt: skip
    inputs = 2
    min_inputs = 2
    prefer_module = True

    def infer(self, a, ins):
        mean, log_var = ins
        if mean.dims != log_var.dims:
            raise OpError("E0301", f"reparameterize: mean {mean} and log-variance {log_var} differ in shape")
        need_float(self.name, mean, log_var)
        if mean.dtype != log_var.dtype:
            raise OpError("E0506", f"reparameterize: mean ({mean.dtype}) and log-variance ({log_var.dtype}) "
                          "differ in element type")  # fmt: skip
        return [mean]

    def module(self, a):
        return Ctor("rt.Reparameterize")

    def reference(self, a, ins, w):
        return [ins[0]]  # eval mode: the mean

    def label(self, a):
        return "sample z"


@register
class Maxout(OpDef):
    name = "maxout"
    family = "activation"
    doc = ("Max over groups of k consecutive channels (dimension 1): [B, k*C, ...] -> [B, C, ...] "
           "(Goodfellow et al., 2013). Put it after a layer of k times the units.")  # fmt: skip
    attrs = (Attr("k", "int", positional=True, min=1, aliases=("pieces",), doc="pieces per unit"),)

    def resolve(self, a, ins):
        x = ins[0]
        if x.rank < 2:
            raise OpError("E0305", f"maxout expects [B, C, ...], got {x}")
        c = known_channels("maxout", x, 1, "channel count")
        if c % a["k"]:
            raise OpError("E0404", f"maxout: channels ({c}) must be divisible by k ({a['k']})",
                          f"make the layer before it {a['k']} times the units wanted")  # fmt: skip
        return a

    def infer(self, a, ins):
        x = ins[0]
        return [x.with_dims((x.dims[0], x.dims[1] // a["k"], *x.dims[2:]))]

    def module(self, a):
        return Ctor("rt.Maxout", (a["k"],))

    def call(self, a, args):
        return f"rt.maxout({args[0]}, {literal(a['k'])})"

    def reference(self, a, ins, w):
        x, k = ins[0], a["k"]  # out[:, c] = max of x[:, c*k .. c*k + k-1]
        return [x.reshape(x.shape[0], x.shape[1] // k, k, *x.shape[2:]).amax(2)]

    def label(self, a):
        return f"maxout {a['k']}"


@register
class ChannelFC(OpDef):
    name = "channel_fc"
    family = "linear"
    doc = ("Channel-wise fully connected (Pathak et al., 2016): each channel's feature map is fully "
           "connected to an output map of its own; no mixing across channels. "
           "Parameters C * (H*W) * (H'*W') + bias.")  # fmt: skip
    attrs = (
        Attr("size", "ints", None, positional=True, min=1, doc="output map size (default: the input's)"),
        Attr("bias", "bool", True),
    )

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("channel_fc", x, (3, 4), "[B, C, L] or [B, C, H, W]")
        need_float32("channel_fc", x)
        c = known_channels("channel_fc", x, 1, "channel count")
        size_in = tuple(known_channels("channel_fc", x, i, "spatial size") for i in range(2, x.rank))
        size = a["size"]
        size_out = size_in if size is None else (size,) * len(size_in) if isinstance(size, int) else tuple(size)
        if len(size_out) != len(size_in):
            raise OpError("E0404", f"channel_fc: 'size' needs {len(size_in)} value(s), got {len(size_out)}")
        return {**a, "channels": c, "in_size": size_in, "size": size_out}

    def infer(self, a, ins):
        x = ins[0]
        return [x.with_dims((*x.dims[:2], *a["size"]))]

    def params(self, a):
        per_channel = prod(a["in_size"]) * prod(a["size"]) + (prod(a["size"]) if a["bias"] else 0)
        return a["channels"] * per_channel

    def macs(self, a, ins, outs):
        return numel(outs[0]) * prod(a["in_size"])

    def module(self, a):
        kw = () if a["bias"] else (("bias", False),)
        return Ctor("rt.ChannelFC", (a["channels"], a["in_size"], a["size"]), kw)

    def reference(self, a, ins, w):
        x = ins[0]  # out[b, c, o] = sum_i x[b, c, i] * weight[c, i, o] + bias[c, o]
        y = (x.flatten(2)[..., None] * w["weight"]).sum(2)
        y = y + w["bias"] if a["bias"] else y
        return [y.reshape(*x.shape[:2], *a["size"])]

    def label(self, a):
        return f"channel-wise fc {'x'.join(map(str, a['in_size']))}->{'x'.join(map(str, a['size']))}"
