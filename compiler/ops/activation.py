"""Element-wise activations and the softmax family.

Unlabelled activations are emitted as expressions (`torch.relu(x)`); labelled
ones, and those inside a numbered sequence, as modules (`nn.ReLU()`).
"""

from __future__ import annotations

from modelc.ops._util import norm_dim
from modelc.ops.base import Attr, Ctor, OpDef, register
from modelc.pyrepr import literal


class _Activation(OpDef):
    family = "activation"
    module_name = ""  # nn.<module_name>
    function = ""  # expression prefix, called with the input first

    def module(self, a):
        return Ctor(f"nn.{self.module_name}", (), self._kwargs(a))

    def call(self, a, args):
        extra = "".join(f", {k}={literal(v)}" for k, v in self._kwargs(a))
        return f"{self.function}({args[0]}{extra})"

    def _kwargs(self, a) -> tuple:
        return tuple((attr.name, a[attr.name]) for attr in self.attrs if a[attr.name] != attr.default)


@register
class ReLU(_Activation):
    name, module_name, function = "relu", "ReLU", "torch.relu"
    doc = "max(x, 0)"


@register
class Sigmoid(_Activation):
    name, module_name, function = "sigmoid", "Sigmoid", "torch.sigmoid"
    doc = "1 / (1 + exp(-x))"


@register
class Tanh(_Activation):
    name, module_name, function = "tanh", "Tanh", "torch.tanh"
    doc = "tanh(x)"


@register
class LeakyReLU(_Activation):
    name, module_name, function = "leaky_relu", "LeakyReLU", "nn.functional.leaky_relu"
    doc = "x if x > 0 else negative_slope * x"
    attrs = (Attr("negative_slope", "float", 0.01, positional=True, aliases=("slope",)),)


@register
class ELU(_Activation):
    name, module_name, function = "elu", "ELU", "nn.functional.elu"
    doc = "x if x > 0 else alpha * (exp(x) - 1)"
    attrs = (Attr("alpha", "float", 1.0, positional=True),)


@register
class GELU(_Activation):
    name, module_name, function = "gelu", "GELU", "nn.functional.gelu"
    doc = "x * Phi(x); approximate=\"tanh\" for the tanh approximation"
    attrs = (Attr("approximate", "str", "none", choices=("none", "tanh")),)


class _Softmax(_Activation):
    attrs = (Attr("dim", "dim", -1, positional=True, doc="the dimension that sums to one"),)

    def resolve(self, a, ins):
        return {**a, "dim": norm_dim(a["dim"], ins[0].rank, self.name) - ins[0].rank}

    def _kwargs(self, a) -> tuple:
        return (("dim", a["dim"]),)  # torch has no default dim: always explicit

    def label(self, a):
        return f"{self.name}(dim={a['dim']})"


@register
class Softmax(_Softmax):
    name, module_name, function = "softmax", "Softmax", "torch.softmax"
    doc = "exp(x) / sum(exp(x)) along dim (default: the last)"


@register
class LogSoftmax(_Softmax):
    name, module_name, function = "log_softmax", "LogSoftmax", "torch.log_softmax"
    doc = "log(softmax(x)) along dim (default: the last)"


@register
class ReLU6(_Activation):
    name, module_name, function = "relu6", "ReLU6", "nn.functional.relu6"
    doc = "min(max(x, 0), 6)"


@register
class Hardswish(_Activation):
    name, module_name, function = "hardswish", "Hardswish", "nn.functional.hardswish"
    doc = "x * relu6(x + 3) / 6"


@register
class Hardsigmoid(_Activation):
    name, module_name, function = "hardsigmoid", "Hardsigmoid", "nn.functional.hardsigmoid"
    doc = "relu6(x + 3) / 6"
