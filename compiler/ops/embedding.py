"""Embeddings: token lookup tables, positional encodings, class tokens, patch embedding.

Sequences are batch-first, `[B, T, D]`. Positional ops *add* their encoding to
the input (x + P[:T]), as every transformer does right after the token
embedding; a class token prepends one learned row.
"""

from __future__ import annotations

from modelc.ops._init import INIT_ATTRS, SCHEMES, check_init, check_numbers, with_init
from modelc.ops._util import known_channels, need_float, need_float32, need_rank
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.ops.layout import exact_div
from modelc.pyformat import CallExpr
from modelc.pyrepr import literal
from modelc.types import TensorType


def _sequence(op: str, x: TensorType, learned: bool = True) -> int:
    """D of a [B, T, D] input, checked: float32 for a learned encoding, else any float."""
    need_rank(op, x, (3,), "[B, T, D]")
    (need_float32 if learned else need_float)(op, x)
    return known_channels(op, x, 2, "model width D (last dimension)")


def _fits(op: str, t, max_len: int) -> None:
    if isinstance(t, int) and t > max_len:
        raise OpError("E0301", f"{op}: sequence length {t} exceeds max_len {max_len}",
                      f"raise max_len to at least {t}")  # fmt: skip


@register
class Embedding(OpDef):
    name = "embedding"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "linear"
    doc = ("Looks up a learned vector per integer id: int64[B, T] -> [B, T, dim]. init or weight_init: how "
           "the table starts (the padding_idx row stays zero).")  # fmt: skip
    attrs = (
        Attr("num", "int", positional=True, min=1, aliases=("num_embeddings", "vocab"),
             doc="number of ids (vocabulary size)"),
        Attr("dim", "int", positional=True, min=1, aliases=("embedding_dim",), doc="vector size"),
        Attr("padding_idx", "int", None, min=0, doc="an id whose vector is zero and not trained"),
        *INIT_ATTRS,
    )  # fmt: skip
    outputs_layout = "new"

    def resolve(self, a, ins):
        x = ins[0]
        if not x.dtype.startswith("int"):
            raise OpError("E0506", f"embedding takes integer ids, got a {x.dtype} tensor {x}",
                          "declare the input as integers: input tokens: int64[B, T]")  # fmt: skip
        if a["padding_idx"] is not None and a["padding_idx"] >= a["num"]:
            raise OpError("E0404", f"embedding: padding_idx {a['padding_idx']} is not below num {a['num']}")
        check_init(self.name, a, ("weight",))
        return a

    def infer(self, a, ins):
        return [TensorType((*ins[0].dims, a["dim"]), "float32")]

    def params(self, a):
        return a["num"] * a["dim"]

    def module(self, a):
        kw = () if a["padding_idx"] is None else (("padding_idx", a["padding_idx"]),)
        return with_init(Ctor("nn.Embedding", (a["num"], a["dim"]), kw), a, ("weight",))

    def reference(self, a, ins, w):
        return [w["weight"][ins[0]]]

    def index_bound(self, a):
        return a["num"]

    def label(self, a):
        return f"embedding {a['num']}x{a['dim']}"


@register
class SinusoidalPosition(OpDef):
    name = "sinusoidal_position"
    family = "tensor"
    doc = "Adds the fixed sin/cos encoding of each position (Vaswani et al.): x + PE[:T]."
    attrs = (Attr("max_len", "int", 5000, min=1),)
    prefer_module = True

    def resolve(self, a, ins):
        d = _sequence(self.name, ins[0], learned=False)
        if d % 2:
            raise OpError("E0404", f"sinusoidal_position needs an even width, got {d}")
        _fits(self.name, ins[0].dims[1], a["max_len"])
        return {**a, "d_model": d}

    def module(self, a):
        kw = () if a["max_len"] == 5000 else (("max_len", a["max_len"]),)
        return Ctor("rt.SinusoidalPositionalEncoding", (a["d_model"],), kw)

    def reference(self, a, ins, w):
        import torch

        x = ins[0]  # PE(p, 2i) = sin(p / 10000^(2i/d)), PE(p, 2i+1) = cos(p / 10000^(2i/d))
        p = torch.arange(x.shape[1], dtype=torch.float64, device=x.device)[:, None]
        angle = p / 10000.0 ** (torch.arange(0, a["d_model"], 2, dtype=torch.float64, device=x.device) / a["d_model"])
        pe = torch.stack([angle.sin(), angle.cos()], -1).flatten(1)  # sin, cos interleaved
        return [x + pe.to(x.dtype)]

    def label(self, a):
        return "sinusoidal position"


@register
class TimestepEmbedding(OpDef):
    name = "timestep_embedding"
    family = "tensor"
    doc = ("Sinusoidal embedding of diffusion timesteps [B] (integers or floats) -> float32 [B, dim], as "
           "diffusers' get_timestep_embedding: with h = dim // 2 and f_i = max_period^(-i / (h - "
           "downscale_freq_shift)), [sin(scale * t * f), cos(scale * t * f)] (cos first when "
           "flip_sin_to_cos), a zero column last when dim is odd. Stable Diffusion's UNet: "
           "flip_sin_to_cos=true, downscale_freq_shift=0.")  # fmt: skip
    attrs = (
        Attr("dim", "int", positional=True, min=1, aliases=("embedding_dim",), doc="the embedding size"),
        Attr("flip_sin_to_cos", "bool", False, doc="cosines first, then sines"),
        Attr("downscale_freq_shift", "float", 1.0, doc="the frequencies' exponents are -i / (dim // 2 - shift)"),
        Attr("scale", "float", 1.0, doc="a factor on the angles"),
        Attr("max_period", "float", 10000.0, doc="the longest period, 2 pi max_period at shift 0"),
    )  # fmt: skip
    outputs_layout = "new"

    def resolve(self, a, ins):
        t = ins[0]
        need_rank(self.name, t, (1,), "one timestep per sample, [B]")
        if t.dtype == "bool":
            raise OpError("E0506", f"timestep_embedding takes integer or float timesteps, got a bool tensor {t}")
        if not a["max_period"] > 0:
            raise OpError("E0404", f"timestep_embedding: max_period must be positive, got {a['max_period']:g}")
        if a["dim"] // 2 == a["downscale_freq_shift"]:
            raise OpError("E0404", f"timestep_embedding: dim // 2 - downscale_freq_shift is 0 (dim {a['dim']}), "
                          "a division by zero in the frequencies' exponents",
                          "a larger dim, or downscale_freq_shift=0")  # fmt: skip
        return a

    def infer(self, a, ins):
        return [TensorType((ins[0].dims[0], a["dim"]), "float32")]

    def call(self, a, args):
        defaults = (("flip_sin_to_cos", False), ("downscale_freq_shift", 1.0), ("scale", 1.0), ("max_period", 10000.0))
        kw = "".join(f", {k}={literal(a[k])}" for k, default in defaults if a[k] != default)
        return f"rt.timestep_embedding({args[0]}, {a['dim']}{kw})"

    def reference(self, a, ins, w):
        import torch

        t = ins[0].float().double()  # timesteps as float32, as diffusers reads them; the rest in float64
        half = a["dim"] // 2
        i = torch.arange(half, dtype=torch.float64, device=t.device)
        freq = a["max_period"] ** (-i / (half - a["downscale_freq_shift"]))
        angle = a["scale"] * t[:, None] * freq[None, :]
        parts = [angle.cos(), angle.sin()] if a["flip_sin_to_cos"] else [angle.sin(), angle.cos()]
        parts += [t.new_zeros(t.shape[0], a["dim"] % 2)]
        return [torch.cat(parts, 1).float()]

    def label(self, a):
        return f"timestep embedding {a['dim']}"


@register
class Rotary(OpDef):
    name = "rotary"
    family = "attention"
    doc = ("Rotary position embedding (RoPE, Su et al.) of queries or keys [..., T, d]: the feature "
           "pairs of position t turned by t * theta^(-2i/d). interleaved=false pairs feature i with "
           "i + d/2 (Hugging Face's LLaMA, rotate_half); true pairs 2i with 2i+1 (GPT-J, Meta's "
           "original LLaMA). Positions count from 0 along dim -2.")  # fmt: skip
    attrs = (Attr("theta", "float", 10000.0, min=1), Attr("interleaved", "bool", False))

    def resolve(self, a, ins):
        x = ins[0]
        need_float(self.name, x)
        if x.rank < 2:
            raise OpError("E0305", f"rotary expects [..., T, d], got {x}")
        d = known_channels(self.name, x, -1, "feature size d (last dimension)")
        if d % 2:
            raise OpError("E0404", f"rotary turns pairs of features, and d = {d} is odd")
        return a

    def call(self, a, args):
        kw = "" if a["theta"] == 10000.0 else f", theta={literal(a['theta'])}"
        kw += ", interleaved=True" if a["interleaved"] else ""
        return f"rt.rotary({args[0]}{kw})"

    def reference(self, a, ins, w):
        import torch

        x = ins[0].double()  # as complex numbers: z * e^(i * angle), another path than rt.rotary
        d, t = x.shape[-1], x.shape[-2]
        freq = a["theta"] ** (-torch.arange(0, d // 2, dtype=torch.float64) * 2 / d)
        angle = torch.arange(t, dtype=torch.float64)[:, None] * freq[None, :]
        turn = torch.polar(torch.ones_like(angle), angle)
        if a["interleaved"]:
            z = torch.view_as_complex(x.reshape(*x.shape[:-1], d // 2, 2).contiguous())
            out = torch.view_as_real(z * turn).flatten(-2)
        else:
            z = torch.complex(x[..., : d // 2], x[..., d // 2 :]) * turn
            out = torch.cat([z.real, z.imag], -1)
        return [out.to(ins[0].dtype)]

    def label(self, a):
        return f"rotary {a['theta']:g}" + (" interleaved" if a["interleaved"] else "")


@register
class PositionEmbedding(OpDef):
    name = "position_embedding"
    family = "linear"
    doc = "Adds a learned vector per position 0..T-1 (GPT-2's wpe, BERT's position_embeddings)."
    attrs = (Attr("max_len", "int", positional=True, min=1, doc="the most positions"),)

    def resolve(self, a, ins):
        d = _sequence(self.name, ins[0])
        _fits(self.name, ins[0].dims[1], a["max_len"])
        return {**a, "d_model": d}

    def params(self, a):
        return a["max_len"] * a["d_model"]

    def module(self, a):
        return Ctor("rt.PositionEmbedding", (a["max_len"], a["d_model"]))

    def reference(self, a, ins, w):
        return [ins[0] + w["weight"][: ins[0].shape[1]]]

    def label(self, a):
        return f"position embedding {a['max_len']}x{a['d_model']}"


class _Parameter(OpDef):
    """An op holding one bare nn.Parameter, named by its label (`class_token`)."""

    sequential = False
    std = 0.02

    def module(self, a):
        return Ctor("rt.parameter", a["shape"], (("std", a.get("std", self.std)),))


@register
class Parameter(_Parameter):
    name = "parameter"
    family = "tensor"
    doc = ("A learned tensor of the given shape: table = relative_position_bias_table: "
           "parameter([169, 3]). It starts as `init` says: normal(0, std) (the default), "
           "trunc_normal (std, cut at -2 and 2), uniform(low, high), zeros, ones, or constant "
           "(value): gamma: parameter([C], init=\"constant\", value=1e-6).")  # fmt: skip
    attrs = (Attr("shape", "ints", positional=True, min=1), Attr("std", "float", 0.02, min=0),
             Attr("init", "str", "normal", choices=SCHEMES),
             Attr("value", "float", None, doc="the constant of init=\"constant\""),
             Attr("low", "float", 0.0, doc="the lower bound of init=\"uniform\""),
             Attr("high", "float", 1.0, doc="the upper bound of init=\"uniform\""))  # fmt: skip
    inputs = 0
    min_inputs = 0

    def resolve(self, a, ins):
        check_numbers("parameter", {a["init"]}, a, f'init="{a["init"]}"')
        return {**a, "shape": a["shape"] if isinstance(a["shape"], tuple) else (a["shape"],)}

    def module(self, a):
        init = a["init"]
        kwargs = {"normal": (("std", a["std"]),), "trunc_normal": (("std", a["std"]),),
                  "uniform": (("low", a["low"]), ("high", a["high"])), "constant": (("value", a["value"]),)}
        extra = () if init == "normal" else (("init", init),)
        return Ctor("rt.parameter", a["shape"], (*kwargs.get(init, ()), *extra))

    def infer(self, a, ins):
        return [TensorType(a["shape"])]

    def params(self, a):
        n = 1
        for d in a["shape"]:
            n *= d
        return n

    def invoke(self, a, callee, args):
        return callee

    def reference(self, a, ins, w):
        return [w[""]]

    def label(self, a):
        return "parameter " + "x".join(map(str, a["shape"]))


@register
class LearnedPosition(_Parameter):
    name = "learned_position"
    family = "tensor"
    doc = "Adds a learned [1, T, D] parameter (ViT's pos_embedding); T and D must be known."

    def resolve(self, a, ins):
        d = _sequence(self.name, ins[0])
        t = known_channels(self.name, ins[0], 1, "sequence length T")
        return {**a, "shape": (1, t, d)}

    def params(self, a):
        return a["shape"][1] * a["shape"][2]

    def invoke(self, a, callee, args):
        return f"{args[0]} + {callee}"

    def reference(self, a, ins, w):
        return [ins[0] + w[""]]

    def label(self, a):
        return f"learned position {a['shape'][1]}x{a['shape'][2]}"


@register
class ClsToken(_Parameter):
    name = "cls_token"
    family = "tensor"
    doc = "Prepends a learned token to the sequence: [B, T, D] -> [B, T+1, D] (BERT's [CLS], ViT)."
    std = 0.0  # zeros, as torchvision's ViT

    def resolve(self, a, ins):
        return {**a, "shape": (1, 1, _sequence(self.name, ins[0]))}

    def infer(self, a, ins):
        b, t, d = ins[0].dims
        return [ins[0].with_dims((b, t + 1, d))]

    def params(self, a):
        return a["shape"][2]

    def invoke(self, a, callee, args):
        x = args[0]
        return CallExpr("torch.cat", [f"[{callee}.expand({x}.shape[0], -1, -1), {x}]", "dim=1"])

    def reference(self, a, ins, w):
        import torch

        x = ins[0]
        return [torch.cat([w[""].expand(x.shape[0], 1, x.shape[2]), x], 1)]

    def label(self, a):
        return "class token"


@register
class PatchEmbed(OpDef):
    name = "patch_embed"
    family = "conv"
    doc = "Cuts an image into p x p patches and projects each: [B, C, H, W] -> [B, H/p * W/p, dim]."
    attrs = (Attr("dim", "int", positional=True, min=1), Attr("patch", "int", positional=True, min=1))
    outputs_layout = "strided"

    def resolve(self, a, ins):
        x = ins[0]
        need_rank(self.name, x, (4,), "[B, C, H, W]")
        need_float32(self.name, x)
        return {**a, "in_channels": known_channels(self.name, x, 1, "channel count")}

    def infer(self, a, ins):
        b, _, h, w = ins[0].dims
        p = a["patch"]
        nh, nw = exact_div(h, p), exact_div(w, p)
        if nh is None or nw is None:
            raise OpError("E0301", f"patch_embed: image {h}x{w} is not a multiple of the patch {p}")
        return [ins[0].with_dims((b, nh * nw, a["dim"]))]

    def params(self, a):
        return a["dim"] * (a["in_channels"] * a["patch"] ** 2 + 1)

    def macs(self, a, ins, outs):
        b, n, d = outs[0].dims
        return b * n * d * a["in_channels"] * a["patch"] ** 2

    def module(self, a):
        return Ctor("rt.PatchEmbed", (a["in_channels"], a["dim"], a["patch"]))

    def reference(self, a, ins, w):
        x, p = ins[0], a["patch"]  # each p x p patch, flattened (channel, row, col), projected
        b, c, _, _ = x.shape
        patches = x.unfold(2, p, p).unfold(3, p, p).permute(0, 2, 3, 1, 4, 5).reshape(b, -1, c * p * p)
        return [patches @ w["proj.weight"].reshape(a["dim"], -1).T + w["proj.bias"]]

    def label(self, a):
        return f"patch embed {a['patch']}x{a['patch']}, {a['dim']}"
