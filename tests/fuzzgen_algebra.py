"""The tensor-algebra part of tests/fuzzgen.py's generator: element-wise math, reductions over
several dims, glu, rms_norm, layer_norm over a chosen dim and rotary as chain steps, and
expressions of tensors (a - b, a * b, a / b, a ** b, -a, comparisons in where, a gate that
broadcasts, topk and argmax with one_hot) as statements.

The same rules as fuzzgen (NOTE: [A shape model of its own] there): each choice comes with
its output shape and parameter count, worked out here, never asked of the compiler. The
values stay finite for the sampled torch runs, which refuse nan and inf: logarithms and
roots read `abs` and a floor, `exp` a clamped input, a quotient divides by `abs(b) + 1`.

This module imports nothing from fuzzgen (fuzzgen imports it): `AlgebraSteps` is mixed into
its generator and calls the generator's own `_op`, `to_type`, `p` and `r`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ALGEBRA_KINDS", "AlgebraSteps", "Compound", "Formula", "Invalid", "SHAPES"]


class Invalid(Exception):
    """The generator's shape model rejects a choice (the generator then picks another)."""


def _dim(d: int, rank: int) -> int:
    if not -rank <= d < rank:
        raise Invalid("dim")
    return d % rank


def _ints(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


# ---- shape rules (t: the input's dims, batch first; a: the attributes, defaults included) --------
def _same(t, a):
    return t, 0


def _clamp(t, a):
    if a["min"] is None and a["max"] is None or (None not in (a["min"], a["max"]) and a["min"] > a["max"]):
        raise Invalid("clamp")
    return t, 0


def _softplus(t, a):
    if a["beta"] == 0:
        raise Invalid("beta")
    return t, 0


def _glu(t, a):
    d = _dim(a["dim"], len(t))
    if d == 0 or t[d] % 2:
        raise Invalid("glu")
    return (*t[:d], t[d] // 2, *t[d + 1 :]), 0


def _rms_norm(t, a):
    if len(t) < 2:
        raise Invalid("rank")
    return t, t[-1] if a["affine"] else 0


def _layer_norm(t, a):
    d = _dim(a["dim"], len(t))
    if d == 0:
        raise Invalid("the batch")
    return t, 2 * t[d] if a["affine"] else 0


def _rotary(t, a):
    if len(t) < 3 or t[-1] % 2:
        raise Invalid("rotary")
    return t, 0


def _reduce(t, a):
    """mean, sum, amax, var over one or several dims, with or without keepdim."""
    given = _ints(a["dim"])
    dims = {_dim(d, len(t)) for d in given}
    if len(dims) != len(given) or 0 in dims:
        raise Invalid("dims")  # listed twice (E0404), or the batch
    if "correction" in a and math.prod(t[d] for d in dims) <= a["correction"]:
        raise Invalid("var of too few elements")  # nan or inf
    out = tuple(1 if i in dims else s for i, s in enumerate(t)) if a["keepdim"] else (
        tuple(s for i, s in enumerate(t) if i not in dims))  # fmt: skip
    if len(out) < 2:
        raise Invalid("nothing left but the batch")
    return out, 0


def _topk(t, a):
    d = _dim(a["dim"], len(t))
    if d == 0 or not 1 <= a["k"] <= t[d]:
        raise Invalid("topk")
    return (*t[:d], a["k"], *t[d + 1 :]), 0


SHAPES = {
    "exp": _same, "log": _same, "sqrt": _same, "rsqrt": _same, "sin": _same, "cos": _same, "abs": _same,
    "neg": _same, "silu": _same, "mish": _same, "softplus": _softplus, "clamp": _clamp, "glu": _glu,
    "rms_norm": _rms_norm, "layer_norm": _layer_norm, "rotary": _rotary, "stochastic_depth": _same,
    "mean": _reduce, "sum": _reduce, "amax": _reduce, "var": _reduce, "topk": _topk,
}  # fmt: skip

ALGEBRA_KINDS = ("math", "reduce", "glu", "rotary", "norm2")


# ---- terms ------------------------------------------------------------------------------------------
@dataclass
class Compound:
    """Steps that go together, `(abs -> clamp(min=0.1) -> log)`: one step of a chain."""

    steps: list

    def text(self) -> str:
        return "(" + " -> ".join(s.text() for s in self.steps) + ")"

    def apply(self, t, run):
        for s in self.steps:
            t = s.apply(t, run)
        return t


@dataclass
class Formula:
    """A tensor expression `template` of terms ({0}, {1}: fuzzgen's tensor expressions, {0}
    a name when it appears twice); `shape` gives its dims from the terms' types."""

    template: str
    terms: list
    shape: Callable

    def text(self, nested: bool = False) -> str:
        out = self.template.format(*(x.text(True) for x in self.terms))
        return f"({out})" if nested else out

    def apply(self, run):
        types = [x.apply(run) for x in self.terms]
        return type(types[0])(self.shape(*types))  # fuzzgen's tensor type, as the terms'


def _both(a, b):
    if a != b:
        raise Invalid("shapes")
    return a


# ---- the generator's steps and statements ---------------------------------------------------------
class AlgebraSteps:
    """Mixed into fuzzgen's generator."""

    def algebra_kinds(self, t, sc, keep_rank: bool) -> list:
        kinds = [("math", 1.5), ("norm2", 0.6), ("reduce", 0.6)]
        if any(s % 2 == 0 for s in t[1:]):
            kinds.append(("glu", 0.3))
        if len(t) >= 3 and t[-1] % 2 == 0:
            kinds.append(("rotary", 0.3))
        return kinds

    def _s_math(self, t, sc, keep_rank):
        r = self.r

        def step(op, values=None):
            return self._op(op, sc, values or {}, positional=r.randint(0, 2))

        kind = r.choice(["sin", "cos", "abs", "neg", "silu", "mish", "softplus", "clamp", "exp", "log", "sqrt",
                         "rsqrt", "stochastic_depth"])  # fmt: skip
        if kind == "exp":  # e^8 at most
            return Compound([step("clamp", {"min": -8.0, "max": 8.0}), step("exp")])
        if kind in ("log", "sqrt", "rsqrt"):  # positive input, away from 0 where it matters
            floor = [step("clamp", {"min": 0.125})] if kind != "sqrt" else []
            return Compound([step("abs"), *floor, step(kind)])
        if kind == "clamp":
            return step("clamp", r.choice([{"min": -1.0}, {"max": 1.0}, {"min": -0.5, "max": 2.0}, {"min": 0.0, "max": 1.0}]))
        if kind == "softplus":
            values = {"beta": r.choice([0.5, 1.0, 2.0])} if self.p(0.5) else {}
            return step("softplus", {**values, **({"threshold": 5.0} if self.p(0.3) else {})})
        if kind == "stochastic_depth":
            return step("stochastic_depth", {"p": r.choice([0.0, 0.1, 0.5])})
        return step(kind)

    def _s_reduce(self, t, sc, keep_rank):
        r = self.r
        op = r.choice(["mean", "sum", "amax", "var"])
        dims = r.sample(range(1, len(t)), r.randint(1, min(2, len(t) - 1)))
        keepdim = keep_rank or self.p(0.4)
        written = [d - len(t) if self.p(0.3) else d for d in dims]
        values = {"dim": written[0] if len(dims) == 1 and self.p(0.5) else tuple(written)}
        if keepdim or self.p(0.3):
            values["keepdim"] = keepdim
        if op == "var" and self.p(0.4):
            values["correction"] = 0
        return self._op(op, sc, values, positional=1)

    def _s_glu(self, t, sc, keep_rank):
        dims = [d for d in range(1, len(t)) if t[d] % 2 == 0]
        d = self.r.choice(dims)
        return self._op("glu", sc, {"dim": d - len(t) if d == len(t) - 1 and self.p(0.5) else d}, positional=1)

    def _s_rotary(self, t, sc, keep_rank):
        values = {"theta": self.r.choice([100.0, 10000.0, 500000.0])} if self.p(0.5) else {}
        if self.p(0.4):
            values["interleaved"] = self.p(0.5)
        return self._op("rotary", sc, values)

    def _s_norm2(self, t, sc, keep_rank):
        """rms_norm, or layer_norm over a chosen dim (the channels of a feature map)."""
        values = {"affine": self.p(0.7)} if self.p(0.3) else {}
        if self.p(0.5):
            return self._op("rms_norm", sc, {**values, **({"eps": 1e-5} if self.p(0.3) else {})})
        d = self.r.randint(1, len(t) - 1)
        return self._op("layer_norm", sc, {**values, "dim": d - len(t) if self.p(0.5) else d})

    def init_values(self, bias: bool) -> dict:
        """Sometimes, how a layer's parameters start (init, weight_init, bias_init and numbers)."""
        if not self.p(0.1):
            return {}
        r = self.r
        scheme = r.choice(["normal", "trunc_normal", "uniform", "zeros", "ones", "constant"])
        values = {r.choice(["init", "weight_init"] + (["bias_init"] if bias else [])): scheme}
        numbers = {"normal": {"std": 0.1}, "trunc_normal": {"std": 0.02}, "uniform": {"low": -0.1, "high": 0.1},
                   "constant": {"value": 0.01}}.get(scheme, {})  # fmt: skip
        return {**values, **{k: v for k, v in numbers.items() if k == "value" or self.p(0.5)}}

    def formula(self, a, t, sc) -> Formula:
        """An expression of `a` (a name, of type t) and a branch from it of the same type."""
        r = self.r
        kind = r.choice(["sub", "mul", "div", "pow", "where", "neg", "gate", "rms", "topk", "ids", "one_hot"])
        if kind == "rms":  # RMSNorm written out
            return Formula("{0} * rsqrt((({0} ** 2) -> mean(-1, keepdim=true)) + 1e-06)", [a], lambda x: x)
        if kind in ("topk", "ids", "one_hot"):
            return self._pick(kind, a, t)
        b = self.to_type(a, t, t, sc)
        if kind == "gate":  # squeeze-excitation's rescaling: broadcasts [.., 1, ..] over t
            d = r.randint(1, len(t) - 1)
            return Formula(f"{{0}} * ({{1}} -> mean({d}, keepdim=true) -> sigmoid)", [a, b], _both)
        template = {"sub": "{0} - {1}", "mul": "{0} * {1}", "div": "{0} / (abs({1}) + 1.0)",
                    "pow": "(abs({0}) + 1.0) ** ({1} -> tanh)", "where": "where({1} > {0}, {0}, -{0} * 0.5)",
                    "neg": "-{0} + {1}"}[kind]  # fmt: skip
        return Formula(template, [a, b], _both)

    def _pick(self, kind: str, a, t) -> Formula:
        """topk's values or (as floats) its indices; one_hot of an argmax."""
        d = self.r.randint(1, len(t) - 1)
        if kind == "one_hot":
            n = t[d] + self.r.randint(0, 3)  # argmax ids are below t[d]

            def shape(x):
                return (*x[:d], *x[d + 1 :], n)

            return Formula(f"one_hot({{0}} -> argmax({d}), {n}) * 0.5", [a], shape)
        k = self.r.randint(1, min(t[d], 4))
        index, scale = (0, "") if kind == "topk" else (1, " * 0.5")
        return Formula(f"({{0}} -> topk({k}, dim={d}))[{index}]{scale}", [a], lambda x: _topk(x, {"k": k, "dim": d})[0])
