"""Normalization and regularization."""

from __future__ import annotations

from modelc.ops._init import INIT_ATTRS, check_init, with_init
from modelc.ops._util import known_channels, need_float, need_float32, need_rank, norm_dim, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, Requirement, register
from modelc.pyformat import CallExpr
from modelc.pyrepr import literal


@register
class BatchNorm(OpDef):
    name = "batchnorm"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "norm"
    doc = "Batch normalization over the channel dimension (1-d for rank 2/3, 2-d for rank 4)."
    attrs = (
        Attr("eps", "float", 1e-5),
        Attr("momentum", "float", 0.1),
        Attr("affine", "bool", True),
        Attr("track_running_stats", "bool", True),
        *INIT_ATTRS,
    )
    prefer_module = True

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("batchnorm", x, (2, 3, 4), "[B, C], [B, C, L] or [B, C, H, W]")
        c = known_channels("batchnorm", x, 1, "channel count")
        _need_type("batchnorm", x, a["affine"] or a["track_running_stats"])
        if a["eps"] <= 0:  # torch refuses it (0 only in training)
            raise OpError("E0404", f"batchnorm: eps must be positive, got {a['eps']:g}")
        check_init(self.name, a, _affine_tensors(a))
        return {**a, "num_features": c, "nd": 2 if x.rank == 4 else 1}

    def params(self, a):
        return 2 * a["num_features"] if a["affine"] else 0

    def module(self, a):
        kw = [("eps", a["eps"], 1e-5), ("momentum", a["momentum"], 0.1), ("affine", a["affine"], True),
              ("track_running_stats", a["track_running_stats"], True)]
        ctor = Ctor(f"nn.BatchNorm{a['nd']}d", (a["num_features"],),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip
        return with_init(ctor, a, _affine_tensors(a))

    def reference(self, a, ins, w):
        x = ins[0]
        axes = [0, *range(2, x.dim())]  # all but the channels
        if a["track_running_stats"]:  # eval mode uses the running statistics
            mean, var = _channels(w["running_mean"], x), _channels(w["running_var"], x)
        else:
            mean, var = x.mean(axes, keepdim=True), x.var(axes, correction=0, keepdim=True)
        return [_affine((x - mean) / (var + a["eps"]).sqrt(), w, a["affine"])]

    def label(self, a):
        return "batchnorm"


@register
class Dropout(OpDef):
    name = "dropout"
    family = "norm"
    doc = "Zeroes elements with probability p during training; identity in eval mode."
    attrs = (Attr("p", "float", 0.5, positional=True, min=0),)
    prefer_module = True

    def resolve(self, a, ins):
        if a["p"] > 1:
            raise OpError("E0404", f"dropout probability must be between 0 and 1, got {a['p']}")
        need_float("dropout", ins[0])
        return a

    def module(self, a):
        return Ctor("nn.Dropout", () if a["p"] == 0.5 else (a["p"],))

    def reference(self, a, ins, w):
        return [ins[0]]  # eval mode

    def label(self, a):
        return f"dropout {a['p']:g}"


@register
class LocalResponseNorm(OpDef):
    name = "local_response_norm"
    family = "norm"
    doc = ("AlexNet's \"NORM\": x / (k + alpha/size * sum of x^2 over `size` neighbouring "
           "channels)^beta. torch divides alpha by size; the 2012 paper does not.")  # fmt: skip
    attrs = (
        Attr("size", "int", positional=True, min=1, doc="number of neighbouring channels summed"),
        Attr("alpha", "float", 1e-4),
        Attr("beta", "float", 0.75),
        Attr("k", "float", 1.0),
    )
    prefer_module = True

    def resolve(self, a, ins):
        if ins[0].rank < 3:
            raise OpError("E0305", f"local_response_norm expects [B, C, ...] with spatial dimensions, "
                          f"got {ins[0]}")  # fmt: skip
        need_float("local_response_norm", ins[0])
        return a

    def module(self, a):
        kw = [("alpha", a["alpha"], 1e-4), ("beta", a["beta"], 0.75), ("k", a["k"], 1.0)]
        return Ctor("nn.LocalResponseNorm", (a["size"],), tuple((k, v) for k, v, d in kw if v != d))

    def reference(self, a, ins, w):
        import torch

        x = ins[0]
        c, size = x.shape[1], a["size"]
        # The sum of squares over channels c - size//2 .. c + (size-1)//2 (zeros beyond the
        # ends), by differences of a cumulative sum, in float64.
        sums = torch.cat([torch.zeros_like(x[:, :1], dtype=torch.float64),
                          (x.double() ** 2).cumsum(1)], 1)  # fmt: skip
        idx = torch.arange(c, device=x.device)
        hi, lo = (idx + (size - 1) // 2 + 1).clamp(max=c), (idx - size // 2).clamp(min=0)
        window = (sums.index_select(1, hi) - sums.index_select(1, lo)).to(x.dtype)
        return [x / (a["k"] + a["alpha"] / size * window) ** a["beta"]]

    def label(self, a):
        return f"LRN {a['size']}"


@register
class InstanceNorm(OpDef):
    name = "instance_norm"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "norm"
    doc = "Instance normalization: each channel of each sample to zero mean, unit variance."
    attrs = (
        Attr("eps", "float", 1e-5),
        Attr("momentum", "float", 0.1),
        Attr("affine", "bool", False),
        Attr("track_running_stats", "bool", False),
        *INIT_ATTRS,
    )
    prefer_module = True

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("instance_norm", x, (3, 4), "[B, C, L] or [B, C, H, W]")
        c = known_channels("instance_norm", x, 1, "channel count")
        _need_type("instance_norm", x, a["affine"] or a["track_running_stats"])
        check_init(self.name, a, _affine_tensors(a))
        return {**a, "num_features": c, "nd": x.rank - 2}

    def requires(self, a, ins):  # torch refuses to normalize over a single element
        return [Requirement(prod(ins[0].dims[2:]), 2, "E0301", f"instance_norm needs more than one spatial "
                            f"element, got {ins[0]}", "normalize before the spatial size shrinks to 1, or use "
                            "layer_norm")]  # fmt: skip

    def params(self, a):
        return 2 * a["num_features"] if a["affine"] else 0

    def module(self, a):
        kw = [("eps", a["eps"], 1e-5), ("momentum", a["momentum"], 0.1), ("affine", a["affine"], False),
              ("track_running_stats", a["track_running_stats"], False)]
        ctor = Ctor(f"nn.InstanceNorm{a['nd']}d", (a["num_features"],),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip
        return with_init(ctor, a, _affine_tensors(a))

    def reference(self, a, ins, w):
        x = ins[0]
        if a["track_running_stats"]:  # eval mode uses the running statistics
            mean, var = _channels(w["running_mean"], x), _channels(w["running_var"], x)
        else:
            axes = list(range(2, x.dim()))
            mean, var = x.mean(axes, keepdim=True), x.var(axes, correction=0, keepdim=True)
        return [_affine((x - mean) / (var + a["eps"]).sqrt(), w, a["affine"])]

    def label(self, a):
        return "instance_norm"


@register
class GroupNorm(OpDef):
    name = "group_norm"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "norm"
    doc = "Group normalization: channels split into `groups`, each normalized per sample."
    attrs = (
        Attr("groups", "int", positional=True, min=1, aliases=("num_groups",)),
        Attr("eps", "float", 1e-5),
        Attr("affine", "bool", True),
        *INIT_ATTRS,
    )
    prefer_module = True

    def resolve(self, a, ins):
        x = ins[0]
        if x.rank < 2:
            raise OpError("E0305", f"group_norm expects [B, C, ...], got {x}")
        c = known_channels("group_norm", x, 1, "channel count")
        _need_type("group_norm", x, a["affine"])
        if c % a["groups"]:
            raise OpError("E0404", f"group_norm: channels ({c}) must be divisible by groups ({a['groups']})")
        check_init(self.name, a, _affine_tensors(a))
        return {**a, "num_channels": c}

    def params(self, a):
        return 2 * a["num_channels"] if a["affine"] else 0

    def module(self, a):
        kw = [("eps", a["eps"], 1e-5), ("affine", a["affine"], True)]
        ctor = Ctor("nn.GroupNorm", (a["groups"], a["num_channels"]),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip
        return with_init(ctor, a, _affine_tensors(a))

    def reference(self, a, ins, w):
        x = ins[0]
        g = x.reshape(x.shape[0], a["groups"], -1)
        mean, var = g.mean(-1, keepdim=True), g.var(-1, correction=0, keepdim=True)
        return [_affine(((g - mean) / (var + a["eps"]).sqrt()).reshape(x.shape), w, a["affine"])]

    def label(self, a):
        return f"group_norm {a['groups']}"


@register
class LayerNorm(OpDef):
    name = "layer_norm"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "norm"
    doc = ("Layer normalization over one dimension, the last by default (transformers: [B, T, D]); "
           "dim=1 normalizes the channels of a [B, C, H, W] map at each position (ConvNeXt's "
           "LayerNorm2d), with the same weight and bias keys.")  # fmt: skip
    attrs = (Attr("eps", "float", 1e-5), Attr("affine", "bool", True, aliases=("elementwise_affine",)),
             Attr("dim", "dim", -1, doc="the dimension normalized"), *INIT_ATTRS)  # fmt: skip
    prefer_module = True

    def resolve(self, a, ins):
        x = ins[0]
        dim = norm_dim(a["dim"], x.rank, "layer_norm")
        d = known_channels("layer_norm", x, dim, f"normalized size (dimension {a['dim']})")
        _need_type("layer_norm", x, a["affine"])
        check_init(self.name, a, _affine_tensors(a))
        return {**a, "normalized_shape": d, "dim": dim - x.rank}

    def layout(self, a):  # over another dimension than the last: moved back, strided
        return "new" if a["dim"] == -1 else "strided"

    def params(self, a):
        return 2 * a["normalized_shape"] if a["affine"] else 0

    def module(self, a):
        kw = [("eps", a["eps"], 1e-5), ("elementwise_affine", a["affine"], True)]
        kwargs = tuple((k, v) for k, v, d in kw if v != d)
        if a["dim"] == -1:
            return with_init(Ctor("nn.LayerNorm", (a["normalized_shape"],), kwargs), a, _affine_tensors(a))
        return with_init(Ctor("rt.LayerNormDim", (a["normalized_shape"], a["dim"]), kwargs), a, _affine_tensors(a))

    def reference(self, a, ins, w):
        x, dim = ins[0], a["dim"]
        mean, var = x.mean(dim, keepdim=True), x.var(dim, correction=0, keepdim=True)
        y = (x - mean) / (var + a["eps"]).sqrt()
        if not a["affine"]:
            return [y]
        shape = [1] * x.dim()
        shape[dim] = -1
        return [y * w["weight"].reshape(shape) + w["bias"].reshape(shape)]

    def label(self, a):
        over = "" if a["dim"] == -1 else f", dim {a['dim']}"
        return f"layer norm {a['normalized_shape']}{over}"


@register
class RMSNorm(OpDef):
    name = "rms_norm"
    saves_output = False
    family = "norm"
    doc = ("Root-mean-square normalization over the last dimension, x * rsqrt(mean(x ** 2) + eps) "
           "* weight (LLaMA, Mistral; torch's nn.RMSNorm, Hugging Face's LlamaRMSNorm keys).")  # fmt: skip
    attrs = (Attr("eps", "float", 1e-6), Attr("affine", "bool", True, aliases=("elementwise_affine",)), *INIT_ATTRS)
    prefer_module = True
    outputs_layout = "new"

    def resolve(self, a, ins):
        d = known_channels("rms_norm", ins[0], -1, "normalized size (last dimension)")
        _need_type("rms_norm", ins[0], a["affine"])
        check_init(self.name, a, ("weight",) if a["affine"] else ())
        return {**a, "normalized_shape": d}

    def params(self, a):
        return a["normalized_shape"] if a["affine"] else 0

    def module(self, a):
        kwargs = (("eps", a["eps"]),) + ((("elementwise_affine", False),) if not a["affine"] else ())
        return with_init(Ctor("nn.RMSNorm", (a["normalized_shape"],), kwargs), a, ("weight",) if a["affine"] else ())

    def reference(self, a, ins, w):
        x = ins[0]
        y = x / ((x * x).sum(-1, keepdim=True) / x.shape[-1] + a["eps"]).sqrt()
        return [y * w["weight"] if a["affine"] else y]

    def label(self, a):
        return f"RMS norm {a['normalized_shape']}"


@register
class StochasticDepth(OpDef):
    name = "stochastic_depth"
    family = "norm"
    doc = ("Drop path: in training, zeroes the whole residual branch of each sample (mode \"row\") "
           "or of the batch (\"batch\") with probability p and scales the rest by 1 / (1 - p); "
           "the identity in eval mode (torchvision's StochasticDepth).")  # fmt: skip
    attrs = (Attr("p", "float", positional=True, min=0), Attr("mode", "str", "row", choices=("row", "batch")))
    prefer_module = True

    def resolve(self, a, ins):
        if a["p"] > 1:
            raise OpError("E0404", f"stochastic_depth probability must be between 0 and 1, got {a['p']}")
        need_float("stochastic_depth", ins[0])
        return a

    def module(self, a):
        return Ctor("rt.StochasticDepth", (a["p"],) + ((a["mode"],) if a["mode"] != "row" else ()))

    def reference(self, a, ins, w):
        return [ins[0]]  # eval mode

    def label(self, a):
        return f"stochastic depth {a['p']:g}"


@register
class Normalize(OpDef):
    name = "normalize"
    family = "norm"
    doc = ("x / max(||x||_p, eps) along dim (default: the last), as torch's F.normalize (whose dim "
           "defaults to 1): unit vectors for cosine attention, normalize(q) @ transpose(normalize(k), -2, -1) "
           "(Swin V2). No parameters.")  # fmt: skip
    attrs = (Attr("dim", "dim", -1, positional=True, doc="the dimension of the vectors"),
             Attr("p", "float", 2.0, doc="the exponent of the norm"),
             Attr("eps", "float", 1e-12, doc="the smallest divisor"))  # fmt: skip

    def resolve(self, a, ins):
        x = ins[0]
        need_float("normalize", x)
        if a["p"] <= 0:
            raise OpError("E0404", f"normalize: p must be positive, got {a['p']:g}", "p=2.0 is the L2 norm")
        if a["eps"] < 0:
            raise OpError("E0404", f"normalize: eps must not be negative, got {a['eps']:g}")
        return {**a, "dim": norm_dim(a["dim"], x.rank, "normalize") - x.rank}

    def reference(self, a, ins, w):
        x, p = ins[0], a["p"]
        norm = x.abs().pow(p).sum(a["dim"], keepdim=True).pow(1.0 / p)
        return [x / norm.clamp(min=a["eps"])]

    def call(self, a, args):
        kw = [f"dim={a['dim']}"] + [f"{k}={literal(a[k])}" for k, d in (("p", 2.0), ("eps", 1e-12)) if a[k] != d]
        return CallExpr("nn.functional.normalize", [args[0], *kw])

    def label(self, a):
        p = "L2" if a["p"] == 2.0 else f"L{a['p']:g}"
        return f"normalize {p} (dim={a['dim']})"


def _affine_tensors(a) -> tuple[str, ...]:
    """The parameters of a norm: weight and bias when affine, else none."""
    return ("weight", "bias") if a["affine"] else ()


def _need_type(op: str, x, stored: bool) -> None:
    """Float input; float32 when the norm stores parameters or statistics (NOTE: [Element types])."""
    (need_float32 if stored else need_float)(op, x)


def _channels(v, x):
    """A per-channel vector [C] shaped to broadcast over x [B, C, ...]."""
    return v.reshape(1, -1, *([1] * (x.dim() - 2)))


def _affine(y, w, affine: bool):
    """y * weight + bias per channel (dimension 1), when the norm is affine."""
    return _channels(w["weight"], y) * y + _channels(w["bias"], y) if affine else y
