"""How a layer's parameters start: the initialisation attributes that layers with a weight and
a bias take (`linear(10, init="zeros")`, `conv(64, k=3, weight_init="trunc_normal", std=0.02,
bias_init="zeros")`), the same schemes and numbers as `parameter`'s, their checks, and the
constructor arguments of the modelc.runtime layer that applies them in `reset_parameters`.

Literal numbers (`weight=[[...]]`, `bias=[...]` of conv and linear) are checked here too: they
and the schemes are two ways of saying how a tensor starts.
"""

from __future__ import annotations

from typing import Any

from modelc.ops.base import Attr, Ctor, OpError, array_shape

__all__ = ["INIT_ATTRS", "SCHEMES", "check_init", "check_literal_init", "check_numbers", "fixed_bias", "fixed_weight",
           "flat", "free_tensors",
           "init_kwargs", "initialised", "literal_bias", "with_init"]  # fmt: skip

SCHEMES = ("normal", "trunc_normal", "uniform", "zeros", "ones", "constant")

INIT_ATTRS = (
    Attr("init", "str", None, choices=SCHEMES, doc="how every parameter of the layer starts (else as torch starts it)"),
    Attr("weight_init", "str", None, choices=SCHEMES, doc="how the weight starts"),
    Attr("bias_init", "str", None, choices=SCHEMES, doc="how the bias starts"),
    Attr("std", "float", 0.02, min=0, doc="the standard deviation of a normal or trunc_normal init"),
    Attr("low", "float", 0.0, doc="the lower bound of a uniform init"),
    Attr("high", "float", 1.0, doc="the upper bound of a uniform init"),
    Attr("value", "float", None, doc="the number of a constant init"),
)  # fmt: skip

_NUMBERS = (("std", 0.02, ("normal", "trunc_normal")), ("low", 0.0, ("uniform",)), ("high", 1.0, ("uniform",)))


def check_numbers(op: str, schemes: set[str], a: dict[str, Any], given: str) -> None:
    """std, low, high and value against the schemes in use (`given`: as the spec wrote them)."""
    if ("constant" in schemes) != (a["value"] is not None):
        raise OpError("E0404", f'{op}: value goes with init="constant", and it needs one',
                      f'{op}(..., init="constant", value=1e-6)')  # fmt: skip
    if "uniform" in schemes and not a["low"] < a["high"]:
        raise OpError("E0404", f"{op}: uniform needs low < high, got {a['low']:g} and {a['high']:g}")
    for name, default, users in _NUMBERS:
        if a[name] != default and not schemes & set(users):
            raise OpError("E0404", f"{op}: {name} does not apply to {given}")


def check_init(op: str, a: dict[str, Any], tensors: tuple[str, ...], why_not: dict[str, str] | None = None) -> None:
    """The initialisation attributes of a layer whose parameters are `tensors` ("weight",
    "bias"); `why_not` names a tensor that cannot take a scheme and says why (a literal weight,
    a tied one)."""
    why_not = why_not or {}
    if a["init"] is not None and (a["weight_init"] is not None or a["bias_init"] is not None):
        raise OpError("E0404", f"{op}: init sets every parameter; weight_init and bias_init set one each",
                      "give init alone, or weight_init and bias_init")  # fmt: skip
    for tensor in ("weight", "bias"):
        scheme = a[f"{tensor}_init"]
        if scheme is not None and tensor not in tensors:
            raise OpError("E0404", f"{op}: {tensor}_init, but the layer has no {tensor}{_lacks(tensors)}")
        if (scheme or a["init"]) is not None and tensor in why_not:
            raise OpError("E0404", f"{op}: {'init' if scheme is None else tensor + '_init'} does not apply: "
                          f"{why_not[tensor]}")  # fmt: skip
    if a["init"] is not None and not tensors:
        raise OpError("E0404", f"{op}: init, but the layer has no parameters{_lacks(tensors)}")
    schemes = {s for s in (a["init"], a["weight_init"], a["bias_init"]) if s is not None}
    given = ", ".join(f'{k}="{a[k]}"' for k in ("init", "weight_init", "bias_init") if a[k] is not None)
    check_numbers(op, schemes, a, given or "the layer's own initialisation (no init given)")


def _lacks(tensors: tuple[str, ...]) -> str:
    return "" if tensors else " (affine=false)"


def initialised(a: dict[str, Any]) -> bool:
    return any(a[k] is not None for k in ("init", "weight_init", "bias_init"))


def init_kwargs(a: dict[str, Any], tensors: tuple[str, ...]) -> tuple[tuple[str, Any], ...]:
    """The runtime layer's arguments: weight_init and bias_init (init spread over the
    tensors), then the numbers their schemes use."""
    per = {t: a[f"{t}_init"] or a["init"] for t in tensors}
    kw = [(f"{t}_init", s) for t, s in per.items() if s is not None]
    used = {s for s in per.values() if s is not None}
    kw += [(name, a[name]) for name, _, users in _NUMBERS if used & set(users)]
    kw += [("value", a["value"])] if "constant" in used else []
    return tuple(kw)


def with_init(ctor: Ctor, a: dict[str, Any], tensors: tuple[str, ...]) -> Ctor:
    """`ctor` (a torch.nn layer, or a modelc.runtime one) as the runtime layer that starts as `a`
    says (init attributes, a literal bias already among its kwargs as bias_init): nn.Linear ->
    rt.Linear (modelc.runtime.weights); unchanged when neither is given. `tensors`: those the
    init attributes set."""
    if not initialised(a) and a.get("bias_values") is None:
        return ctor
    callee = "rt." + ctor.callee.removeprefix("nn.").removeprefix("rt.")
    return Ctor(callee, ctor.args, ctor.kwargs + init_kwargs(a, tensors))


# ---- literal numbers ------------------------------------------------------------------------------
def literal_bias(op: str, a: dict[str, Any], size: int) -> dict[str, Any]:
    """`bias=[...]` (checked: `size` numbers) kept as `bias_values`, and `bias` true; idempotent,
    as resolve runs again on resolved attributes."""
    values = a["bias"] if isinstance(a["bias"], tuple) else a.get("bias_values")
    if values is None:
        return {**a, "bias_values": None}
    if array_shape(values) != (size,):
        raise OpError("E0404", f"{op}: the literal bias has shape {list(array_shape(values))}, expected [{size}]",
                      "one number per output")  # fmt: skip
    return {**a, "bias": True, "bias_values": values}


def check_literal_init(op: str, a: dict[str, Any]) -> None:
    """check_init for a conv or linear: a literal weight or bias, or a tied weight, takes no scheme."""
    why_not = {"weight": "the weight is given (weight=)"} if a["weight"] is not None else {}
    if a.get("tie") is not None:
        why_not["weight"] = f"the weight is {a['tie']}'s (tie)"
    if a["bias_values"] is not None:
        why_not["bias"] = "the bias is given (bias=)"
    check_init(op, a, ("weight", "bias") if a["bias"] else ("weight",), why_not)


def free_tensors(a: dict[str, Any]) -> tuple[str, ...]:
    """The tensors of a conv or linear that init attributes set: neither literal nor tied."""
    own = () if a["weight"] is not None or a.get("tie") is not None else ("weight",)
    return own + (("bias",) if a["bias"] and a["bias_values"] is None else ())


def flat(w) -> tuple[float, ...]:
    """Nested tuples -> one flat tuple in row-major order (the module reshapes it)."""
    if not isinstance(w, tuple):
        return (w,)
    return tuple(v for item in w for v in flat(item))


def fixed_weight(a: dict[str, Any], full: tuple[int, ...], w: dict, x):
    """The weight the reference uses: a frozen literal is a constant of the spec (one kernel
    repeated over `full`, or all of it, times scale); else the module's."""
    import torch

    if a["trainable"] or a["weight"] is None:
        return w.get("weight")
    return (torch.tensor(a["weight"], dtype=x.dtype, device=x.device) * a["scale"]).expand(full)


def fixed_bias(a: dict[str, Any], w: dict, x):
    """The bias the reference uses: frozen, a literal bias is a constant, and so is the zero bias
    that a literal weight starts with (unless bias_init says otherwise); else the module's."""
    import torch

    bias = w.get("bias")
    if a["trainable"] or bias is None:
        return bias
    if a["bias_values"] is not None:
        return torch.tensor(a["bias_values"], dtype=x.dtype, device=x.device)
    if a["weight"] is not None and a["bias_init"] is None and a["init"] is None:
        return bias.new_zeros(bias.shape)
    return bias
