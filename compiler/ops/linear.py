"""Fully connected layers."""

from __future__ import annotations

from modelc.ops._util import known_channels, need_float32, numel
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register


@register
class Linear(OpDef):
    name = "linear"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "linear"
    doc = ("Affine map over the last dimension; in_features come from the input shape. "
           "transposed=true stores the weight [in, out] (GPT-2's Conv1D in Hugging Face's "
           "checkpoints). tie=\"transformer.wte\" uses that layer's weight (an embedding's or "
           "a linear's of the same shape) instead of its own: counted once, under both keys "
           "in the state_dict (GPT-2's LM head).")  # fmt: skip
    attrs = (
        Attr("out_features", "int", positional=True, min=1, aliases=("features",)),
        Attr("bias", "bool", True),
        Attr("transposed", "bool", False, doc="the weight stored [in, out]"),
        Attr("tie", "str", None, doc="the layer (its state_dict name) whose weight this one uses"),
    )
    outputs_layout = "new"

    def resolve(self, a, ins):
        x = ins[0]
        if x.rank < 2:
            raise OpError("E0305", f"linear expects an input of rank 2 or more, got {x}")
        fin = known_channels("linear", x, -1, "feature count (last dimension)")
        need_float32("linear", x)
        return {**a, "in_features": fin}

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

    def module(self, a):
        kw = () if a["bias"] else (("bias", False),)
        return Ctor("rt.TransposedLinear" if a["transposed"] else "nn.Linear", (a["in_features"], a["out_features"]), kw)

    def reference(self, a, ins, w):
        y = ins[0] @ (w["weight"] if a["transposed"] else w["weight"].T)
        return [y + w["bias"] if a["bias"] else y]

    def label(self, a):
        tied = f" (tied to {a['tie']})" if a["tie"] is not None else ""
        return f"linear {a['in_features']}->{a['out_features']}{tied}"


