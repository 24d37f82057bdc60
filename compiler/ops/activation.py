"""Element-wise activations and the softmax family.

Unlabelled activations are emitted as expressions (`torch.relu(x)`); labelled
ones, and those inside a numbered sequence, as modules (`nn.ReLU()`).
"""

from __future__ import annotations

import math

from modelc.ops._util import need_float, norm_dim
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.pyrepr import literal


class _Activation(OpDef):
    family = "activation"
    module_name = ""  # nn.<module_name>
    function = ""  # expression prefix, called with the input first
    integers = False  # also integer input (relu, relu6: torch clamps them); else floats only

    def resolve(self, a, ins):
        x = ins[0]
        if not self.integers:
            need_float(self.name, x)
        elif x.dtype == "bool":
            raise OpError("E0506", f"{self.name} needs numbers, got a bool tensor {x}")
        return a

    def module(self, a):
        return Ctor(f"nn.{self.module_name}", (), self._kwargs(a))

    def call(self, a, args):
        extra = "".join(f", {k}={literal(v)}" for k, v in self._kwargs(a))
        return f"{self.function}({args[0]}{extra})"

    def _kwargs(self, a) -> tuple:
        return tuple((attr.name, a[attr.name]) for attr in self.attrs if a[attr.name] != attr.default)

    inplace_function = ""  # `torch.relu_`: the in-place function, when torch has one
    has_inplace = False  # the module and function take inplace=True

    def inplace_call(self, a, args):
        if self.inplace_function:
            return f"{self.inplace_function}({args[0]})"
        if self.has_inplace:
            extra = "".join(f", {k}={literal(v)}" for k, v in self._kwargs(a))
            return f"{self.function}({args[0]}{extra}, inplace=True)"
        return None

    def inplace_module(self, a):
        if self.inplace_function or self.has_inplace:
            return Ctor(f"nn.{self.module_name}", (), (*self._kwargs(a), ("inplace", True)))
        return None


@register
class ReLU(_Activation):
    name, module_name, function = "relu", "ReLU", "torch.relu"
    doc = "max(x, 0)"
    integers = True
    inplace_function = "torch.relu_"

    def reference(self, a, ins, w):
        return [ins[0].clamp(min=0)]


@register
class Sigmoid(_Activation):
    name, module_name, function = "sigmoid", "Sigmoid", "torch.sigmoid"
    doc = "1 / (1 + exp(-x))"

    def reference(self, a, ins, w):
        return [1 / (1 + (-ins[0]).exp())]


@register
class Tanh(_Activation):
    name, module_name, function = "tanh", "Tanh", "torch.tanh"
    doc = "tanh(x)"

    def reference(self, a, ins, w):
        return [ins[0].tanh()]


@register
class LeakyReLU(_Activation):
    name, module_name, function = "leaky_relu", "LeakyReLU", "nn.functional.leaky_relu"
    has_inplace = True
    doc = "x if x > 0 else negative_slope * x"
    attrs = (Attr("negative_slope", "float", 0.01, positional=True, aliases=("slope",)),)

    def reference(self, a, ins, w):
        x = ins[0]
        return [x.where(x > 0, x * a["negative_slope"])]


@register
class ELU(_Activation):
    name, module_name, function = "elu", "ELU", "nn.functional.elu"
    has_inplace = True
    doc = "x if x > 0 else alpha * (exp(x) - 1)"
    attrs = (Attr("alpha", "float", 1.0, positional=True),)

    def reference(self, a, ins, w):
        x = ins[0]
        return [x.where(x > 0, a["alpha"] * (x.exp() - 1))]


@register
class GELU(_Activation):
    name, module_name, function = "gelu", "GELU", "nn.functional.gelu"
    doc = "x * Phi(x); approximate=\"tanh\" for the tanh approximation"
    attrs = (Attr("approximate", "str", "none", choices=("none", "tanh")),)

    def reference(self, a, ins, w):
        x = ins[0]
        if a["approximate"] == "tanh":
            return [0.5 * x * (1 + ((2 / math.pi) ** 0.5 * (x + 0.044715 * x**3)).tanh())]
        return [0.5 * x * (1 + (x / 2**0.5).erf())]


class _Softmax(_Activation):
    attrs = (Attr("dim", "dim", -1, positional=True, doc="the dimension that sums to one"),)

    def resolve(self, a, ins):
        super().resolve(a, ins)
        return {**a, "dim": norm_dim(a["dim"], ins[0].rank, self.name) - ins[0].rank}

    def _kwargs(self, a) -> tuple:
        return (("dim", a["dim"]),)  # torch has no default dim: always explicit

    def label(self, a):
        return f"{self.name}(dim={a['dim']})"


@register
class Softmax(_Softmax):
    name, module_name, function = "softmax", "Softmax", "torch.softmax"
    doc = "exp(x) / sum(exp(x)) along dim (default: the last)"

    def reference(self, a, ins, w):
        e = (ins[0] - ins[0].amax(a["dim"], keepdim=True)).exp()
        return [e / e.sum(a["dim"], keepdim=True)]


@register
class LogSoftmax(_Softmax):
    name, module_name, function = "log_softmax", "LogSoftmax", "torch.log_softmax"
    doc = "log(softmax(x)) along dim (default: the last)"

    def reference(self, a, ins, w):
        shifted = ins[0] - ins[0].amax(a["dim"], keepdim=True)
        return [shifted - shifted.exp().sum(a["dim"], keepdim=True).log()]


@register
class ReLU6(_Activation):
    name, module_name, function = "relu6", "ReLU6", "nn.functional.relu6"
    has_inplace = True
    doc = "min(max(x, 0), 6)"
    integers = True

    def reference(self, a, ins, w):
        return [ins[0].clamp(0, 6)]


@register
class Hardswish(_Activation):
    name, module_name, function = "hardswish", "Hardswish", "nn.functional.hardswish"
    has_inplace = True
    doc = "x * relu6(x + 3) / 6"

    def reference(self, a, ins, w):
        return [ins[0] * (ins[0] + 3).clamp(0, 6) / 6]


@register
class Hardsigmoid(_Activation):
    name, module_name, function = "hardsigmoid", "Hardsigmoid", "nn.functional.hardsigmoid"
    has_inplace = True
    doc = "relu6(x + 3) / 6"

    def reference(self, a, ins, w):
        return [(ins[0] + 3).clamp(0, 6) / 6]


@register
class SiLU(_Activation):
    name, module_name, function = "silu", "SiLU", "nn.functional.silu"
    has_inplace = True
    doc = "x * sigmoid(x) (swish; LLaMA's and EfficientNet's activation)"

    def reference(self, a, ins, w):
        return [ins[0] / (1 + (-ins[0]).exp())]


@register
class Mish(_Activation):
    name, module_name, function = "mish", "Mish", "nn.functional.mish"
    has_inplace = True
    doc = "x * tanh(softplus(x))"

    def reference(self, a, ins, w):
        x = ins[0]
        return [x * (x.exp().log1p()).tanh()]


@register
class Softplus(_Activation):
    name, module_name, function = "softplus", "Softplus", "nn.functional.softplus"
    doc = "log(1 + exp(beta * x)) / beta; x itself where beta * x > threshold"
    attrs = (Attr("beta", "float", 1.0), Attr("threshold", "float", 20.0))

    def resolve(self, a, ins):
        super().resolve(a, ins)
        if a["beta"] == 0:
            raise OpError("E0404", "softplus: beta must not be 0 (it divides by beta)")
        return a

    def reference(self, a, ins, w):
        x, beta = ins[0], a["beta"]
        return [x.where(x * beta > a["threshold"], (x * beta).exp().log1p() / beta)]


@register
class GLU(_Activation):
    name, module_name, function = "glu", "GLU", "nn.functional.glu"
    doc = "a * sigmoid(b), a and b the two halves of x along dim (default: the last), which must be even"
    attrs = (Attr("dim", "dim", -1, positional=True),)

    def resolve(self, a, ins):
        super().resolve(a, ins)
        x = ins[0]
        dim = norm_dim(a["dim"], x.rank, "glu")
        size = x.dims[dim]
        if not isinstance(size, int):
            raise OpError("E0304", f"glu halves dim {a['dim']} of {x}, whose size '{size}' is not known",
                          "give the input a concrete size in that dimension")  # fmt: skip
        if size % 2:
            raise OpError("E0404", f"glu halves dim {a['dim']} of {x}, and {size} is odd")
        return {**a, "dim": dim - x.rank}

    def _kwargs(self, a) -> tuple:
        return () if a["dim"] == -1 else (("dim", a["dim"]),)

    def infer(self, a, ins):
        x = ins[0]
        dims = list(x.dims)
        dims[a["dim"]] = dims[a["dim"]] // 2
        return [x.with_dims(dims)]

    def reference(self, a, ins, w):
        first, second = ins[0].chunk(2, a["dim"])
        return [first / (1 + (-second).exp())]
