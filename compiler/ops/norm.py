"""Normalization and regularization."""

from __future__ import annotations

from modelc.ops._util import known_channels, need_rank
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register


@register
class BatchNorm(OpDef):
    name = "batchnorm"
    family = "norm"
    doc = "Batch normalization over the channel dimension (1-d for rank 2/3, 2-d for rank 4)."
    attrs = (
        Attr("eps", "float", 1e-5),
        Attr("momentum", "float", 0.1),
        Attr("affine", "bool", True),
        Attr("track_running_stats", "bool", True),
    )
    prefer_module = True

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("batchnorm", x, (2, 3, 4), "[B, C], [B, C, L] or [B, C, H, W]")
        c = known_channels("batchnorm", x, 1, "channel count")
        return {**a, "num_features": c, "nd": 2 if x.rank == 4 else 1}

    def params(self, a):
        return 2 * a["num_features"] if a["affine"] else 0

    def module(self, a):
        kw = [("eps", a["eps"], 1e-5), ("momentum", a["momentum"], 0.1), ("affine", a["affine"], True),
              ("track_running_stats", a["track_running_stats"], True)]
        return Ctor(f"nn.BatchNorm{a['nd']}d", (a["num_features"],),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip

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
        return a

    def module(self, a):
        return Ctor("nn.Dropout", () if a["p"] == 0.5 else (a["p"],))

    def label(self, a):
        return f"dropout {a['p']:g}"
