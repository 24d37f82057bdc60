"""Fully connected layers."""

from __future__ import annotations

from modelc.ops._init import (INIT_ATTRS, check_literal_init, fixed_bias, fixed_weight, flat, free_tensors,
                              literal_bias, with_init)  # fmt: skip
from modelc.ops._util import known_channels, need_float32, numel
from modelc.ops.base import Attr, Ctor, OpDef, OpError, array_shape, register


@register
class Linear(OpDef):
    name = "linear"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "linear"
    doc = ("Affine map over the last dimension; in_features come from the input shape. "
           "transposed=true stores the weight [in, out] (GPT-2's Conv1D in Hugging Face's "
           "checkpoints). tie=\"transformer.wte\" uses that layer's weight (an embedding's or "
           "a linear's of the same shape) instead of its own: counted once, under both keys "
           "in the state_dict (GPT-2's LM head). bias_mask=[1, 0, 1] cuts the bias into equal "
           "parts and keeps those marked 0 at zero in forward (Swin V2's key bias), under the "
           "same key. weight=[[...]] and bias=[...] give its numbers ([out, in] and [out]); "
           "init, weight_init and bias_init how they start.")  # fmt: skip
    attrs = (
        Attr("out_features", "int", positional=True, min=1, aliases=("features",)),
        Attr("bias", "bias", True, doc="false for none; or its numbers, [out_features]"),
        Attr("transposed", "bool", False, doc="the weight stored [in, out]"),
        Attr("tie", "str", None, doc="the layer (its state_dict name) whose weight this one uses"),
        Attr("bias_mask", "ints", None, doc="per equal part of the bias, 1 to use it, 0 to hold it at zero"),
        Attr("weight", "array", None, doc="the literal weight, [out_features, in_features]"),
        Attr("scale", "float", 1.0, doc="factor applied to a literal weight"),
        Attr("trainable", "bool", True, doc="false freezes the weights (requires_grad=False)"),
        *INIT_ATTRS,
    )
    outputs_layout = "new"

    def resolve(self, a, ins):
        x = ins[0]
        if x.rank < 2:
            raise OpError("E0305", f"linear expects an input of rank 2 or more, got {x}")
        fin = known_channels("linear", x, -1, "feature count (last dimension)")
        need_float32("linear", x)
        a = literal_bias("linear", {**a, "in_features": fin}, a["out_features"])
        _check_literal(a)
        check_literal_init("linear", a)
        return {**a, "bias_mask": _bias_mask(a)}

    def infer(self, a, ins):
        x = ins[0]
        return [x.with_dims((*x.dims[:-1], a["out_features"]))]

    def params(self, a):
        weight = 0 if a["tie"] is not None else a["in_features"] * a["out_features"]  # counted at its owner
        return weight + (a["out_features"] if a["bias"] else 0)

    def weight_shape(self, a) -> tuple[int, int]:
        """The shape of the weight in the state_dict: [out, in], or [in, out] when transposed."""
        shape = (a["out_features"], a["in_features"])
        return shape[::-1] if a["transposed"] else shape

    def macs(self, a, ins, outs):
        return numel(outs[0]) * a["in_features"]

    def trainable_params(self, a, params):
        return params if a["trainable"] else 0

    def module(self, a):
        args = (a["in_features"], a["out_features"])
        if a["bias_mask"] is not None:
            return with_init(Ctor("rt.MaskedBiasLinear", (*args, a["bias_mask"])), a, free_tensors(a))
        fixed = a["weight"] is not None or not a["trainable"]
        callee = "rt.FixedLinear" if fixed else "rt.TransposedLinear" if a["transposed"] else "nn.Linear"
        kw = [("bias", a["bias"], True), ("weight", None if a["weight"] is None else flat(a["weight"]), None),
              ("scale", a["scale"], 1.0), ("bias_init", a["bias_values"], None), ("trainable", a["trainable"], True)]
        ctor = Ctor(callee, args, tuple((k, v) for k, v, d in kw if v != d))
        return with_init(ctor, a, free_tensors(a))

    def reference(self, a, ins, w):
        weight, bias = fixed_weight(a, self.weight_shape(a), w, ins[0]), fixed_bias(a, w, ins[0])
        y = ins[0] @ (weight if a["transposed"] else weight.T)
        if not a["bias"]:
            return [y]
        if a["bias_mask"] is None:
            return [y + bias]
        import torch

        part = a["out_features"] // len(a["bias_mask"])  # bias entry i belongs to part i // part
        held = torch.tensor([a["bias_mask"][i // part] == 0 for i in range(a["out_features"])], device=y.device)
        return [y + bias.masked_fill(held, 0.0)]

    def label(self, a):
        tied = f" (tied to {a['tie']})" if a["tie"] is not None else ""
        masked = f", bias mask {list(a['bias_mask'])}" if a["bias_mask"] is not None else ""
        frozen = "" if a["trainable"] else " (fixed)"
        return f"linear {a['in_features']}->{a['out_features']}{tied}{masked}{frozen}"


def _bias_mask(a) -> tuple[int, ...] | None:
    """The checked bias_mask as a tuple (None when not given)."""
    mask = a["bias_mask"]
    if mask is None:
        return None
    mask = mask if isinstance(mask, tuple) else (mask,)
    if not a["bias"]:
        raise OpError("E0404", "linear: bias_mask masks the bias, but bias=false", "drop bias_mask, or keep the bias")
    if a["transposed"]:
        raise OpError("E0404", "linear: bias_mask is not supported with transposed=true")
    if a["weight"] is not None or a["bias_values"] is not None or not a["trainable"]:
        raise OpError("E0404", "linear: bias_mask does not go with literal numbers (weight=, bias=[...]) or "
                      "trainable=false", "set the masked entries of the literal bias to 0 instead")  # fmt: skip
    if any(m not in (0, 1) for m in mask):
        raise OpError("E0404", f"linear: bias_mask holds 0 (held at zero) or 1 (used), got {list(mask)}")
    if a["out_features"] % len(mask):
        raise OpError("E0404", f"linear: {a['out_features']} bias entries do not split into {len(mask)} equal parts",
                      "one mask value per equal part: bias_mask=[1, 0, 1] for a fused q, k, v projection")  # fmt: skip
    return mask


def _check_literal(a) -> None:
    """A literal weight is the whole [out_features, in_features] matrix, stored as nn.Linear's."""
    if a["weight"] is None:
        if a["scale"] != 1.0:
            raise OpError("E0404", "linear: 'scale' applies to a literal weight, but none is given",
                          "give weight=[[...]] or drop scale")  # fmt: skip
        return
    for given, why in (("transposed", "transposed=true"), ("tie", "tie")):
        if a[given] not in (None, False):
            raise OpError("E0404", f"linear: a literal weight and {why} do not go together",
                          "the literal weight is [out_features, in_features], stored as nn.Linear's")  # fmt: skip
    want = (a["out_features"], a["in_features"])
    if array_shape(a["weight"]) != want:
        raise OpError("E0404", f"linear: the literal weight has shape {list(array_shape(a['weight']))}, expected "
                      f"[out_features, in_features] = {list(want)}", "one row per output, one column per input")  # fmt: skip


