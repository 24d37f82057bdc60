"""Pooling."""

from __future__ import annotations

from modelc.ops._util import compact, expand, need_float, need_rank
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.ops.conv import check_size, conv_out
from modelc.symbolic import Dim


def _pool_out(size: Dim, k: int, s: int, p: int, d: int, ceil: bool) -> Dim:
    out = conv_out(size, k, s, p, d, ceil)
    # torch drops a last window that would start inside the right padding.
    if ceil and isinstance(out, int) and isinstance(size, int) and (out - 1) * s >= size + p:
        out -= 1
    # That can happen only when s + p > d*(k - 1) + 1, and then whether it does depends on the
    # size (on its parity for k=1, s=2), which a symbolic dimension cannot say.
    if ceil and not isinstance(size, int) and s + p > d * (k - 1) + 1:
        raise OpError("E0304", f"with ceil=true, this window (k={k}, s={s}, p={p}) gives an output size "
                      f"that depends on the input size {size} in a way modelc cannot follow",
                      "give the input a concrete size here, or use ceil=false")  # fmt: skip
    return out


class _Pool(OpDef):
    family = "pool"
    kind = ""  # "max" or "avg"

    def resolve(self, a, ins):
        x = ins[0]
        need_rank(self.name, x, (3, 4), "[B, C, L] or [B, C, H, W]")
        need_float(self.name, x)
        n = x.rank - 2
        k = expand(a["k"], n, "k")
        s = expand(a["s"] if a["s"] is not None else a["k"], n, "s")
        p = expand(a["p"], n, "p")
        d = expand(a.get("d", 1), n, "d")
        for kk, pp in zip(k, p):
            if pp * 2 > kk:  # torch checks the kernel, not the dilated window
                raise OpError("E0404", f"{self.name}: padding {pp} is more than half the kernel {kk}",
                              "torch allows padding of at most kernel // 2")  # fmt: skip
        return {**a, "k": k, "s": s, "p": p, "d": d, "nd": n}

    def infer(self, a, ins):
        x = ins[0]
        spatial = []
        for i, size in enumerate(x.dims[2:]):
            out = _pool_out(size, a["k"][i], a["s"][i], a["p"][i], a["d"][i], a["ceil"])
            check_size(self.name, out, size, a["k"][i])
            spatial.append(out)
        return [x.with_dims((*x.dims[:2], *spatial))]

    def label(self, a):
        k = "x".join(str(v) for v in a["k"])
        s = compact(a["s"])
        return f"{self.kind}pool {k}" + ("" if s == 1 else f"/{s}")


_POOL_ATTRS = (
    Attr("k", "ints", aliases=("kernel_size",), positional=True, min=1, doc="window size"),
    Attr("s", "ints", None, aliases=("stride",), min=1, doc="stride (default: the window size)"),
    Attr("p", "ints", 0, aliases=("padding",), min=0),
    Attr("ceil", "bool", False, aliases=("ceil_mode",)),
)


@register
class MaxPool(_Pool):
    name = "maxpool"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    kind = "max"
    doc = "Max pooling, 1-d or 2-d by input rank."
    attrs = (*_POOL_ATTRS, Attr("d", "ints", 1, aliases=("dilation",), min=1))

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        pool = F.max_pool1d if a["nd"] == 1 else F.max_pool2d
        return [pool(ins[0], a["k"], a["s"], a["p"], a["d"], ceil_mode=a["ceil"])]

    def module(self, a):
        kw = [("stride", compact(a["s"]), compact(a["k"])), ("padding", compact(a["p"]), 0),
              ("dilation", compact(a["d"]), 1), ("ceil_mode", a["ceil"], False)]
        return Ctor(f"nn.MaxPool{a['nd']}d", (compact(a["k"]),),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip


@register
class AvgPool(_Pool):
    name = "avgpool"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    kind = "avg"
    doc = "Average pooling, 1-d or 2-d by input rank."
    attrs = (*_POOL_ATTRS, Attr("count_include_pad", "bool", True))

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        pool = F.avg_pool1d if a["nd"] == 1 else F.avg_pool2d
        return [pool(ins[0], a["k"], a["s"], a["p"], a["ceil"], a["count_include_pad"])]

    def module(self, a):
        kw = [("stride", compact(a["s"]), compact(a["k"])), ("padding", compact(a["p"]), 0),
              ("ceil_mode", a["ceil"], False), ("count_include_pad", a["count_include_pad"], True)]
        return Ctor(f"nn.AvgPool{a['nd']}d", (compact(a["k"]),),
                    tuple((k, v) for k, v, default in kw if v != default))  # fmt: skip


class _AdaptivePool(OpDef):
    family = "pool"
    kind = ""
    attrs = (Attr("size", "ints", positional=True, aliases=("output_size",), min=1),)

    def resolve(self, a, ins):
        need_rank(self.name, ins[0], (3, 4), "[B, C, L] or [B, C, H, W]")
        need_float(self.name, ins[0])
        n = ins[0].rank - 2
        return {**a, "size": expand(a["size"], n, "size"), "nd": n}

    def infer(self, a, ins):
        x = ins[0]
        return [x.with_dims((*x.dims[:2], *a["size"]))]

    def module(self, a):
        return Ctor(f"nn.Adaptive{self.kind.capitalize()}Pool{a['nd']}d", (compact(a["size"]),))

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        pool = getattr(F, f"adaptive_{self.kind}_pool{a['nd']}d")
        return [pool(ins[0], a["size"])]

    def label(self, a):
        return f"adaptive {self.kind}pool " + "x".join(map(str, a["size"]))


@register
class AdaptiveAvgPool(_AdaptivePool):
    name = "adaptive_avgpool"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    kind = "avg"
    doc = "Adaptive average pooling to a fixed output size."


@register
class AdaptiveMaxPool(_AdaptivePool):
    name = "adaptive_maxpool"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    kind = "max"
    doc = "Adaptive max pooling to a fixed output size."
