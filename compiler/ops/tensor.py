"""Structural tensor ops: flatten, identity, add, concat, upsample, pad, center_crop."""

from __future__ import annotations

from modelc.ops._util import broadcast, compact, expand, need_float, need_rank, norm_dim, prod, promote
from modelc.ops.base import Attr, Augmented, Ctor, OpDef, OpError, Requirement, register
from modelc.pyformat import CallExpr
from modelc.pyrepr import literal
from modelc.symbolic import sym
from modelc.types import TensorType


@register
class Flatten(OpDef):
    name = "flatten"
    family = "tensor"
    doc = "Merges dimensions start..end (inclusive) into one."
    attrs = (Attr("start", "dim", 1, positional=True, aliases=("start_dim",)),
             Attr("end", "dim", -1, positional=True, aliases=("end_dim",)))  # fmt: skip

    def resolve(self, a, ins):
        r = ins[0].rank
        start, end = norm_dim(a["start"], r, "flatten"), norm_dim(a["end"], r, "flatten")
        if start > end:
            raise OpError("E0404", f"flatten: start ({a['start']}) comes after end ({a['end']})")
        return {**a, "start": start, "end": end - r}

    def infer(self, a, ins):
        d = ins[0].dims
        end = a["end"] + len(d)
        return [ins[0].with_dims((*d[: a["start"]], prod(d[a["start"] : end + 1]), *d[end + 1 :]))]

    def module(self, a):
        args = [a["start"], a["end"]]
        while args and args[-1] == (1, -1)[len(args) - 1]:
            args.pop()
        return Ctor("nn.Flatten", tuple(args))

    def reference(self, a, ins, w):
        x = ins[0]
        end = a["end"] + x.dim()
        return [x.reshape(*x.shape[: a["start"]], prod(x.shape[a["start"] : end + 1]), *x.shape[end + 1 :])]

    def call(self, a, args):
        end = "" if a["end"] == -1 else f", {a['end']}"
        return f"torch.flatten({args[0]}, {a['start']}{end})"


@register
class Identity(OpDef):
    name = "identity"
    family = "tensor"
    doc = "Returns its input."

    def module(self, a):
        return Ctor("nn.Identity")

    def reference(self, a, ins, w):
        return [ins[0]]

    def call(self, a, args):
        return args[0]


@register
class Add(OpDef):
    name = "add"
    family = "tensor"
    doc = "Element-wise sum, `a + b` in an expression; shapes broadcast as in torch ([B, H, N, N] + [H, N, N])."
    inputs = None
    min_inputs = 2

    def infer(self, a, ins):
        dims = ins[0].dims
        for other in ins[1:]:
            try:
                dims = broadcast("+", dims, other.dims)
            except OpError:
                from modelc.hints import add_mismatch_hint  # the dimension that differs, the fix

                raise OpError("E0301", f"cannot add tensors of shapes {ins[0]} and {other}",
                              add_mismatch_hint(dims, other.dims)) from None  # fmt: skip
        return [TensorType(dims, promote(ins))]  # torch's type promotion: int64 + float32 is float32

    def reference(self, a, ins, w):
        total = ins[0]
        for x in ins[1:]:
            total = total + x
        return [total]

    def call(self, a, args):
        return " + ".join(args)

    saves_output = False  # add's backward needs neither its inputs nor its output

    def inplace_call(self, a, args):
        if len(args) != 2:
            return None
        return Augmented("+", args[0], args[1], f"{args[0]}.add_({args[1]})")

    def label(self, a):
        return "add"


@register
class Concat(OpDef):
    name = "concat"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "tensor"
    doc = "Joins tensors along dim (default 1, the channels); other dimensions must agree."
    attrs = (Attr("dim", "dim", 1),)
    inputs = None
    min_inputs = 1

    def resolve(self, a, ins):
        ranks = {t.rank for t in ins}
        if len(ranks) > 1:
            shapes = ", ".join(str(t) for t in ins)
            raise OpError("E0302", f"concat of tensors of different ranks: {shapes}")
        return {**a, "dim": norm_dim(a["dim"], ins[0].rank, "concat")}

    def infer(self, a, ins):
        dim = a["dim"]
        first = ins[0]
        for other in ins[1:]:
            for i, (x, y) in enumerate(zip(first.dims, other.dims)):
                if i != dim and x != y:
                    raise OpError("E0302", f"concat along dim {dim}: shapes {first} and {other} "
                                  f"differ in dim {i} ({x} vs {y})",
                                  "all inputs must match except in the concat dimension")  # fmt: skip
        total = sum((t.dims[dim] for t in ins[1:]), start=first.dims[dim])
        return [TensorType((*first.dims[:dim], total, *first.dims[dim + 1 :]), promote(ins))]

    def reference(self, a, ins, w):
        import torch

        return [torch.cat(ins, a["dim"])]

    def call(self, a, args):
        # The list is a CallExpr so that a long one is split as ruff splits a list literal.
        return CallExpr("torch.cat", [CallExpr("", list(args), collection=True, brackets="[]"), f"dim={a['dim']}"])

    def label(self, a):
        return f"concat(dim={a['dim']})"


_MODES = {"nearest": (3, 4), "nearest-exact": (3, 4), "linear": (3,), "bilinear": (4,), "bicubic": (4,)}


@register
class Upsample(OpDef):
    name = "upsample"
    saves_output = False  # a new tensor, not kept for its backward: may be overwritten
    family = "tensor"
    doc = "Resizes the spatial dimensions by a scale factor or to a size (nn.Upsample / interpolate)."
    attrs = (
        Attr("scale", "float", None, positional=True, aliases=("scale_factor",), doc="size multiplier"),
        Attr("size", "ints", None, min=1, doc="the output's spatial size (instead of scale)"),
        Attr("mode", "str", "nearest", choices=tuple(_MODES)),
        Attr("align_corners", "bool", None, doc="for linear, bilinear and bicubic modes"),
    )

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("upsample", x, (3, 4), "[B, C, L] or [B, C, H, W]")
        need_float("upsample", x)
        if (a["scale"] is None) == (a["size"] is None):
            raise OpError("E0404", "upsample needs exactly one of 'scale' and 'size'",
                          "e.g. upsample(2) or upsample(size=[64, 64])")  # fmt: skip
        if x.rank not in _MODES[a["mode"]]:
            raise OpError("E0404", f"upsample mode \"{a['mode']}\" does not apply to a rank-{x.rank} input",
                          "linear is for [B, C, L]; bilinear and bicubic for [B, C, H, W]")  # fmt: skip
        if a["align_corners"] is not None and a["mode"].startswith("nearest"):
            raise OpError("E0404", "align_corners applies only to linear, bilinear and bicubic modes")
        if a["scale"] is not None and a["scale"] <= 0:
            raise OpError("E0404", f"upsample scale must be positive, got {a['scale']:g}")
        n = x.rank - 2
        size = None if a["size"] is None else expand(a["size"], n, "size")
        return {**a, "size": size, "nd": n}

    def infer(self, a, ins):
        x = ins[0]
        if a["size"] is not None:
            return [x.with_dims((*x.dims[:2], *a["size"]))]
        scale = a["scale"]
        spatial = []
        for d in x.dims[2:]:
            if isinstance(d, int):
                if d * scale >= 2**63:  # int() of an infinite product would raise
                    raise OpError("E0508", f"upsample by {scale:g} makes size {d} too large")
                spatial.append(int(d * scale))  # torch floors the product
                if spatial[-1] < 1:
                    raise OpError("E0303", f"upsample output would be empty: size {d} scaled by {scale:g}",
                                  "use a larger scale or input")  # fmt: skip
            elif scale.is_integer():
                spatial.append(d * int(scale))
            else:
                raise OpError("E0304", f"upsample by {scale:g} needs known sizes, but the input {x} has '{d}'",
                              "use an integer scale, or give the input a concrete size")  # fmt: skip
        return [x.with_dims((*x.dims[:2], *spatial))]

    def _kwargs(self, a) -> list[tuple[str, object]]:
        kw = [("size", compact(a["size"])) if a["size"] is not None else ("scale_factor", a["scale"])]
        kw.append(("mode", a["mode"]))
        if a["align_corners"] is not None:
            kw.append(("align_corners", a["align_corners"]))
        return kw

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        size = None if a["size"] is None else list(a["size"])
        scale = None if a["scale"] is None else a["scale"]
        return [F.interpolate(ins[0], size, scale, a["mode"], a["align_corners"])]

    def module(self, a):
        return Ctor("nn.Upsample", (), tuple(self._kwargs(a)))

    def call(self, a, args):
        kw = "".join(f", {k}={literal(v)}" for k, v in self._kwargs(a))
        return f"nn.functional.interpolate({args[0]}{kw})"

    def label(self, a):
        how = f"x{a['scale']:g}" if a["size"] is None else "to " + "x".join(map(str, a["size"]))
        return f"upsample {how} {a['mode']}"


_PAD_MODULES = {"constant": "ConstantPad", "reflect": "ReflectionPad", "replicate": "ReplicationPad",
                "circular": "CircularPad"}  # fmt: skip


@register
class Pad(OpDef):
    name = "pad"
    family = "tensor"
    doc = ("Pads the spatial dimensions. p: one number for every side; one per spatial dimension "
           "(both sides, like conv); or torch's order, last dimension first (left, right, top, bottom). "
           "Negative amounts crop.")  # fmt: skip
    attrs = (
        Attr("p", "ints", positional=True, aliases=("padding",)),
        Attr("mode", "str", "constant", choices=tuple(_PAD_MODULES)),
        Attr("value", "float", 0.0, doc="fill value of constant mode"),
    )

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("pad", x, (3, 4), "[B, C, L] or [B, C, H, W]")
        n = x.rank - 2
        p = a["p"]
        if isinstance(p, int):
            pad = (p,) * (2 * n)
        elif len(p) == n:  # per spatial dimension, first to last -> torch's last-first pairs
            pad = tuple(v for size in reversed(p) for v in (size, size))
        elif len(p) == 2 * n:
            pad = tuple(p)
        else:
            raise OpError("E0404", f"pad: 'p' needs 1, {n} or {2 * n} values for a {n}-d input, got {len(p)}")
        if a["mode"] != "constant" and (a["value"] != 0.0 or any(v < 0 for v in pad)):
            raise OpError("E0404", f"pad mode \"{a['mode']}\" takes neither a fill value nor negative padding")
        if a["mode"] in ("reflect", "replicate") and x.dtype == "bool":
            raise OpError("E0506", f"pad mode \"{a['mode']}\" needs numbers, got a bool tensor {x}")
        return {**a, "pad": pad, "nd": n}

    def infer(self, a, ins):
        x = ins[0]
        n = a["nd"]
        spatial = list(x.dims[2:])
        for i in range(n):  # torch pairs run from the last dimension backwards
            before, after = a["pad"][2 * i], a["pad"][2 * i + 1]
            d = n - 1 - i
            size = spatial[d]
            spatial[d] = size + before + after
            if isinstance(spatial[d], int) and spatial[d] <= 0:
                raise OpError("E0303", f"pad output would be empty: size {size} padded by {before}, {after}")
        return [x.with_dims((*x.dims[:2], *spatial))]

    def requires(self, a, ins):
        n, out = a["nd"], []
        for i in range(n):  # torch pairs run from the last dimension backwards
            p, size = max(a["pad"][2 * i], a["pad"][2 * i + 1]), ins[0].dims[2 + n - 1 - i]
            if a["mode"] == "reflect":
                out.append(Requirement(size, p + 1, "E0404", f"pad: reflect padding {p} needs an input larger "
                                       "than that, got {value}"))  # fmt: skip
            elif a["mode"] == "circular":
                out.append(Requirement(size, p, "E0404", f"pad: circular padding {p} would wrap around an "
                                       "input of size {value} more than once"))  # fmt: skip
        return out

    def reference(self, a, ins, w):
        import torch.nn.functional as F

        return [F.pad(ins[0], a["pad"], a["mode"], a["value"] if a["mode"] == "constant" else None)]

    def module(self, a):
        n, pad = a["nd"], compact(a["pad"])
        if a["mode"] == "constant":
            if a["value"] == 0.0 and n == 2:
                return Ctor("nn.ZeroPad2d", (pad,))
            return Ctor(f"nn.ConstantPad{n}d", (pad, a["value"]))
        return Ctor(f"nn.{_PAD_MODULES[a['mode']]}{n}d", (pad,))

    def call(self, a, args):
        kw = "" if a["mode"] == "constant" else f", mode={literal(a['mode'])}"
        kw += "" if a["value"] == 0.0 else f", value={literal(a['value'])}"
        return f"nn.functional.pad({args[0]}, {literal(a['pad'])}{kw})"

    def label(self, a):
        return f"pad {','.join(map(str, a['pad']))}" + ("" if a["mode"] == "constant" else f" {a['mode']}")


@register
class CenterCrop(OpDef):
    name = "center_crop"
    family = "tensor"
    doc = ("Crops the middle of the spatial dimensions: to `size`, or to the spatial size of a "
           "second input (U-Net's copy-and-crop: center_crop(skip, up)).")  # fmt: skip
    attrs = (Attr("size", "ints", None, positional=True, min=1),)
    inputs = None
    min_inputs = 1
    outputs_layout = "strided"

    def resolve(self, a, ins):
        x = ins[0]
        need_rank("center_crop", x, (3, 4), "[B, C, L] or [B, C, H, W]")
        if len(ins) > 2 or (len(ins) == 2) == (a["size"] is not None):
            raise OpError("E0406", "center_crop takes a size, or a second tensor whose size to crop to",
                          "center_crop(x, [56, 56]) or center_crop(skip, like)")  # fmt: skip
        n = x.rank - 2
        if len(ins) == 2 and ins[1].rank != x.rank:
            raise OpError("E0302", f"center_crop to a tensor of another rank: {x} and {ins[1]}")
        size = tuple(ins[1].dims[2:]) if len(ins) == 2 else expand(a["size"], n, "size")
        for have, want in zip(x.dims[2:], size):
            if isinstance(have, int) and isinstance(want, int) and want > have:
                raise OpError("E0303", f"center_crop to {list(size)} does not fit in {x}",
                              "the crop must not be larger than the input")  # fmt: skip
        return {**a, "size": size if len(ins) == 1 else None, "crop": size}

    def infer(self, a, ins):
        return [ins[0].with_dims((*ins[0].dims[:2], *a["crop"]))]

    def reference(self, a, ins, w):
        x = ins[0]
        for axis, want in enumerate(a["crop"], start=2):
            x = x.narrow(axis, (x.shape[axis] - want) // 2, want)
        return [x]

    def module(self, a):
        return Ctor("rt.CenterCrop", () if a["size"] is None else (compact(a["size"]),))

    def call(self, a, args):
        if a["size"] is None:
            return f"rt.center_crop({args[0]}, {args[1]}.shape[2:])"
        return f"rt.center_crop({args[0]}, {literal(a['size'])})"

    def label(self, a):
        return "center_crop " + "x".join(map(str, a["crop"]))


@register
class Input(OpDef):
    """A model input; created by `input name: [dims]`, never called from a spec."""

    name = "input"
    family = "tensor"
    doc = "A model input of a declared shape; dimensions are integers or symbols."
    attrs = (Attr("shape", "ints"), Attr("dtype", "str", "float32"))
    inputs = 0
    min_inputs = 0
    internal = True

    def infer(self, a, ins):
        dims = tuple(sym(d) if isinstance(d, str) else d for d in a["shape"])
        return [TensorType(dims, a["dtype"])]

    def reference(self, a, ins, w):
        return [ins[0]]  # the value fed to the model (the interpreter passes it in)

    def label(self, a):
        return "input"
