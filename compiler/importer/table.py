"""What a torch layer is in the spec language: the leaf-module table.

Each entry maps an `nn.Module` class (by name, so this file imports no torch) to a function
that reads the layer's hyper-parameters and returns a :class:`Leaf`: the spec op, its
positional attribute values and its keyword attributes with their defaults. Input sizes
(in-channels, in-features, normalized width) are never written: the compiler infers them
from the shapes, so an imported layer that matches torch's instance is one whose *output*
hyper-parameters are the same.

A value that the spec cannot express (a LayerNorm over two dimensions, a sequence-first
MultiheadAttention) raises :class:`Unsupported`, which the importer reports as E0703 at the
layer's module path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LEAVES", "NODEFAULT", "Leaf", "Unsupported", "leaf_for"]

NODEFAULT = object()


class Unsupported(Exception):
    """A layer whose configuration has no spec form (the message says which)."""


@dataclass
class Leaf:
    """One spec op call: `op(pos..., kw=value...)`; a keyword equal to its default is left out."""

    op: str
    pos: list[Any] = field(default_factory=list)
    kw: list[tuple[str, Any, Any]] = field(default_factory=list)  # (name, value, default)


def _size(v: Any) -> Any:
    """A per-dimension size: one int when all dimensions agree (`k=3`), else a list."""
    if isinstance(v, (tuple, list)):
        v = list(v)
        return v[0] if len(set(v)) == 1 else v
    return v


def _conv(m) -> Leaf:
    pad = m.padding if isinstance(m.padding, str) else _size(m.padding)
    if getattr(m, "padding_mode", "zeros") != "zeros":
        raise Unsupported(f"padding_mode={m.padding_mode!r}")
    return Leaf("conv", [m.out_channels], [("k", _size(m.kernel_size), NODEFAULT), ("s", _size(m.stride), 1),
                ("p", pad, 0), ("d", _size(m.dilation), 1), ("groups", m.groups, 1),
                ("bias", m.bias is not None, True)])  # fmt: skip


def _conv_transpose(m) -> Leaf:
    return Leaf("conv_transpose", [m.out_channels],
                [("k", _size(m.kernel_size), NODEFAULT), ("s", _size(m.stride), 1), ("p", _size(m.padding), 0),
                 ("output_padding", _size(m.output_padding), 0), ("d", _size(m.dilation), 1),
                 ("groups", m.groups, 1), ("bias", m.bias is not None, True)])  # fmt: skip


def _batchnorm(m) -> Leaf:
    if m.momentum is None:
        raise Unsupported("momentum=None (a cumulative average)")
    return Leaf("batchnorm", [], [("eps", m.eps, 1e-5), ("momentum", m.momentum, 0.1), ("affine", m.affine, True),
                                  ("track_running_stats", m.track_running_stats, True)])  # fmt: skip


def _layer_norm(m) -> Leaf:
    if len(m.normalized_shape) != 1:
        raise Unsupported(f"normalized_shape={list(m.normalized_shape)} (the spec normalizes the last dimension)")
    if getattr(m, "bias", 0) is None:
        raise Unsupported("bias=False")
    return Leaf("layer_norm", [], [("eps", m.eps, 1e-5), ("affine", m.elementwise_affine, True)])


def _group_norm(m) -> Leaf:
    return Leaf("group_norm", [m.num_groups], [("eps", m.eps, 1e-5), ("affine", m.affine, True)])


def _linear(m) -> Leaf:
    return Leaf("linear", [m.out_features], [("bias", m.bias is not None, True)])


def _pool(op: str) -> Callable:
    def make(m) -> Leaf:
        kw = [("s", _size(m.stride), NODEFAULT), ("p", _size(m.padding), 0), ("ceil", m.ceil_mode, False)]
        if op == "maxpool":
            kw.append(("d", _size(m.dilation), 1))
        else:
            kw.append(("count_include_pad", m.count_include_pad, True))
            if m.divisor_override is not None:
                raise Unsupported("divisor_override")
        if _size(m.stride) == _size(m.kernel_size):
            kw = [("s", None, None)] + kw[1:]  # the stride defaults to the window
        return Leaf(op, [_size(m.kernel_size)], [k for k in kw if k[1] is not None])

    return make


def _adaptive(op: str) -> Callable:
    def make(m) -> Leaf:
        size = _size(m.output_size)
        if size is None or (isinstance(size, list) and None in size):
            raise Unsupported(f"output_size={m.output_size}")
        return Leaf(op, [size])

    return make


def _attention(m) -> Leaf:
    if not m.batch_first:
        raise Unsupported("batch_first=False (the spec's attention takes [B, T, D])")
    if not m._qkv_same_embed_dim or m.bias_k is not None or m.add_zero_attn:
        raise Unsupported("separate key/value sizes, bias_k or add_zero_attn")
    return Leaf("multihead_attention", [m.num_heads],
                [("dropout", m.dropout, 0.0), ("bias", m.in_proj_bias is not None, True)])  # fmt: skip


def _simple(op: str, *attrs: tuple[str, str, Any]) -> Callable:
    """An op whose keywords are torch attributes read as they are: (spec name, torch name, default)."""
    return lambda m: Leaf(op, [], [(name, getattr(m, attr), default) for name, attr, default in attrs])


def _flatten(m) -> Leaf:
    return Leaf("flatten", [m.start_dim], [("end", m.end_dim, -1)])


def _embedding(m) -> Leaf:
    if m.max_norm is not None:
        raise Unsupported("max_norm")
    return Leaf("embedding", [m.num_embeddings, m.embedding_dim], [("padding_idx", m.padding_idx, None)])


def _permute(m) -> Leaf:
    return Leaf("permute", [list(m.dims)])


def _softmax(m) -> Leaf:
    return Leaf("softmax", [], [("dim", m.dim, -1)])


def _upsample(m) -> Leaf:
    return Leaf("upsample", [], [("scale", m.scale_factor, None), ("size", m.size, None), ("mode", m.mode, "nearest"),
                                 ("align_corners", m.align_corners, None)])  # fmt: skip


# NOTE: [Leaf table] keyed by class name (torch.nn and torchvision.ops.misc); classes that
# subclass one of these without changing forward are found through the MRO (leaf_for).
LEAVES: dict[str, Callable[[Any], Leaf]] = {
    "Conv1d": _conv, "Conv2d": _conv, "ConvTranspose1d": _conv_transpose, "ConvTranspose2d": _conv_transpose,
    "BatchNorm1d": _batchnorm, "BatchNorm2d": _batchnorm, "LayerNorm": _layer_norm, "GroupNorm": _group_norm,
    "Linear": _linear, "Embedding": _embedding, "MultiheadAttention": _attention,
    "ReLU": _simple("relu"), "ReLU6": _simple("relu6"), "GELU": _simple("gelu", ("approximate", "approximate", "none")),
    "Hardswish": _simple("hardswish"), "Hardsigmoid": _simple("hardsigmoid"), "Sigmoid": _simple("sigmoid"),
    "Tanh": _simple("tanh"), "ELU": _simple("elu", ("alpha", "alpha", 1.0)),
    "SiLU": _simple("silu"), "Mish": _simple("mish"),
    "Softplus": _simple("softplus", ("beta", "beta", 1.0), ("threshold", "threshold", 20.0)),
    "LeakyReLU": _simple("leaky_relu", ("negative_slope", "negative_slope", 0.01)),
    "Dropout": lambda m: Leaf("dropout", [m.p]), "Dropout1d": lambda m: Leaf("dropout", [m.p]),
    "Identity": _simple("identity"),
    # torchvision's stochastic depth: the identity in eval mode (see docs/import.md, limits);
    # as stochastic_depth(p) each block's own p would keep blocks from sharing one definition.
    "StochasticDepth": _simple("identity"),
    "MaxPool1d": _pool("maxpool"), "MaxPool2d": _pool("maxpool"), "AvgPool1d": _pool("avgpool"),
    "AvgPool2d": _pool("avgpool"), "AdaptiveAvgPool1d": _adaptive("adaptive_avgpool"),
    "AdaptiveAvgPool2d": _adaptive("adaptive_avgpool"), "AdaptiveMaxPool2d": _adaptive("adaptive_maxpool"),
    "Flatten": _flatten, "Permute": _permute, "Softmax": _softmax, "LogSoftmax": lambda m: Leaf("log_softmax", [], [("dim", m.dim, -1)]),
    "PixelShuffle": lambda m: Leaf("pixel_shuffle", [m.upscale_factor]), "Upsample": _upsample,
}  # fmt: skip


def leaf_for(module) -> Callable[[Any], Leaf] | None:
    """The table entry of `module`'s class, or of the nearest base class whose forward it keeps."""
    for cls in type(module).__mro__:
        if cls.__name__ in LEAVES and cls.__module__.startswith(("torch.nn", "torchvision.ops")):
            if type(module).forward is cls.forward:
                return LEAVES[cls.__name__]
            return None
    return None
