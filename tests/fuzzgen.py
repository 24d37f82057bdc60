"""Random `.model` specs for fuzzing modelc: valid ones that come with their expected
output shapes and parameter count, and mutations of valid ones.

Every generator draws from a `random.Random`: tests/test_fuzz.py passes hypothesis's
`st.randoms()` (so failures shrink), bench/fuzz.py a seeded `random.Random` (fast, no
shrinking). Nothing here imports torch or the compiler's internals beyond the op registry.

NOTE: [A shape model of its own]
The generator never asks the compiler whether a choice is valid. It keeps its own small
model of the ops it uses (output shapes, parameter counts, the limits torch puts on
them), evaluates every expression it writes (the expressions it writes mean the same in
the spec language and in Python, so `eval` computes them), and so knows each spec's
output shapes and parameter count before the compiler sees it. A disagreement with the
compiler is a finding on one side or the other. Blocks are stored as small step trees
and re-interpreted at every instantiation, so a block reused with other arguments, or
inside `repeat`/`for`, is checked like the first instance. The tensor algebra (element-wise
math, reductions, expressions of tensors) is in tests/fuzzgen_algebra.py, mixed in.
"""

from __future__ import annotations

import keyword
import math
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from fuzzgen_algebra import ALGEBRA_KINDS, AlgebraSteps, Invalid
from fuzzgen_algebra import SHAPES as ALGEBRA_SHAPES
from modelc import ops
from modelc.ops.base import OpDef

__all__ = ["GeneratedSpec", "Invalid", "generate", "hostile_texts", "mutate", "runnable", "seed_texts"]

ROOT = Path(__file__).resolve().parent.parent


# ---- values ---------------------------------------------------------------------------
class TT(tuple):
    """A tensor type in the generator's model: ("B", 3, 32, 32); only dim 0 is symbolic."""


def _channels(t):
    return t[1]


_EVAL_NS = {
    "__builtins__": {},
    "true": True,
    "false": False,
    "channels": _channels,
    "size": lambda t, d: t[d],
    "rank": len,
    "shape": list,
    "len": len,
    "min": min,
    "max": max,
    "abs": abs,
    "int": int,
    "float": float,
}


def ev(text: str, env: dict):
    """The value of an expression the generator wrote (same meaning as in the spec language).

    A tensor bound to a builtin's name (`len = x -> relu`) does not hide the builtin: calls
    resolve to builtins in the spec language too."""
    local = {k: v for k, v in env.items() if not (k in _EVAL_NS and isinstance(v, TT))}
    try:
        return eval(text, _EVAL_NS, local)
    except (ArithmeticError, IndexError, TypeError, ValueError) as exc:  # a block reused with other values
        raise Invalid(f"{text}: {exc}") from None  # the compiler says E0507, E0404, E0506 ...


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def lit(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + v + '"'
    if isinstance(v, float):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    return str(v)


# ---- the shape model --------------------------------------------------------------------
SYMBOLIC = [False]  # set while a spec with symbolic sizes is made (see _pool)
MAX_DIM = 64
MAX_ELEMS = 1 << 15  # per sample; keeps the sampled torch runs fast


def _checked(t: TT) -> TT:
    dims = t[1:]
    if any(not _is_int(d) or d < 1 for d in dims):
        raise Invalid(f"bad dims {t}")
    if math.prod(dims) > MAX_ELEMS or any(d > 4 * MAX_DIM for d in dims):
        raise Invalid(f"too large {t}")
    return TT(t)


def _expand(v, n: int):
    if isinstance(v, str):
        return v
    if _is_int(v):
        return (v,) * n
    v = tuple(v)
    if len(v) != n or not all(_is_int(x) for x in v):
        raise Invalid("wrong length")
    return v


def _window(size, k, s, p, d, ceil=False, pool=False):
    span = size + 2 * p - d * (k - 1) - 1
    out = (span + (s - 1 if ceil else 0)) // s + 1
    if pool and ceil and (out - 1) * s >= size + p:
        out -= 1
    if out < 1:
        raise Invalid("empty output")
    return out


def _rank(t, *ranks):
    if len(t) not in ranks:
        raise Invalid(f"rank {len(t)}")


def _conv(t, a):
    _rank(t, 3, 4)
    n, cin, g, cout = len(t) - 2, t[1], a["groups"], a["out_channels"]
    if cin % g or cout % g or cout < 1 or g < 1:
        raise Invalid("groups")
    k, s, d = (_expand(a[key], n) for key in ("k", "s", "d"))
    p = _expand(a["p"], n)
    if any(v < 1 for v in (*k, *s, *d)):
        raise Invalid("non-positive")
    if p == "valid":
        p = (0,) * n
    if p == "same":
        if any(v != 1 for v in s):
            raise Invalid("same needs stride 1")
        spatial = t[2:]
    else:
        if any(v < 0 for v in p):
            raise Invalid("negative padding")
        spatial = tuple(_window(t[2 + i], k[i], s[i], p[i], d[i]) for i in range(n))
    params = cout * (cin // g) * math.prod(k) + (cout if a["bias"] else 0)
    return TT((t[0], cout, *spatial)), params


def _pool(t, a):
    _rank(t, 3, 4)
    n = len(t) - 2
    k = _expand(a["k"], n)
    s = _expand(a["s"] if a["s"] is not None else a["k"], n)
    p = _expand(a["p"], n)
    d = _expand(a.get("d", 1), n)
    if any(v < 1 for v in (*k, *s, *d)) or any(v < 0 for v in p):
        raise Invalid("bad window")
    if any(pp * 2 > kk for kk, pp in zip(k, p)):  # the kernel, not the dilated window (as torch's 1-d)
        raise Invalid("padding over half the kernel")
    if SYMBOLIC[0] and a["ceil"] and any(ss + pp > dd * (kk - 1) + 1 for kk, ss, pp, dd in zip(k, s, p, d)):
        raise Invalid("ceil's last-window rule on a symbolic size")  # E0304
    spatial = tuple(_window(t[2 + i], k[i], s[i], p[i], d[i], a["ceil"], pool=True) for i in range(n))
    for i in range(n):
        # A window that sees only padding gives -inf (max) or 0/0 (avg without the padding): torch
        # allows it, but the sampled runs check that outputs are finite.
        for w in range(spatial[i]):
            if not any(0 <= w * s[i] - p[i] + j * d[i] < t[2 + i] for j in range(k[i])):
                raise Invalid("a window inside the padding")
    return TT((*t[:2], *spatial)), 0


def _adaptive(t, a):
    _rank(t, 3, 4)
    size = _expand(a["size"], len(t) - 2)
    if any(v < 1 for v in size):
        raise Invalid("size")
    return TT((*t[:2], *size)), 0


def _batchnorm(t, a):
    _rank(t, 2, 3, 4)
    return t, 2 * t[1] if a["affine"] else 0


def _dropout(t, a):
    if not 0 <= a["p"] <= 1:
        raise Invalid("p")
    return t, 0


def _linear(t, a):
    if len(t) < 2 or a["out_features"] < 1:
        raise Invalid("linear")
    fin, fout = t[-1], a["out_features"]
    return TT((*t[:-1], fout)), fin * fout + (fout if a["bias"] else 0)


def _norm_dim(dim, rank):
    if not -rank <= dim < rank:
        raise Invalid("dim")
    return dim % rank


def _flatten(t, a):
    r = len(t)
    start, end = _norm_dim(a["start"], r), _norm_dim(a["end"], r)
    if start > end or start == 0:
        raise Invalid("flatten")
    return TT((*t[:start], math.prod(t[start : end + 1]), *t[end + 1 :])), 0


def _same(t, a):
    if "dim" in a:
        _norm_dim(a["dim"], len(t))
    return t, 0


def _conv_transpose(t, a):
    _rank(t, 3, 4)
    n, cin, g, cout = len(t) - 2, t[1], a["groups"], a["out_channels"]
    if cin % g or cout % g:
        raise Invalid("groups")
    k, s, p, op, d = (_expand(a[key], n) for key in ("k", "s", "p", "output_padding", "d"))
    if any(o >= max(ss, dd) for o, ss, dd in zip(op, s, d)):
        raise Invalid("output_padding")
    spatial = tuple((t[2 + i] - 1) * s[i] - 2 * p[i] + d[i] * (k[i] - 1) + op[i] + 1 for i in range(n))
    params = cin * (cout // g) * math.prod(k) + (cout if a["bias"] else 0)
    return TT((t[0], cout, *spatial)), params


def _group_norm(t, a):
    _rank(t, 2, 3, 4)
    if t[1] % a["groups"]:
        raise Invalid("groups")
    return t, 2 * t[1] if a["affine"] else 0


def _instance_norm(t, a):
    _rank(t, 3, 4)
    if math.prod(t[2:]) == 1:
        raise Invalid("one spatial element")
    return t, 2 * t[1] if a["affine"] else 0


def _lrn(t, a):
    _rank(t, 3, 4)
    return t, 0


def _upsample(t, a):
    _rank(t, 3, 4)
    if (a["scale"] is None) == (a["size"] is None):
        raise Invalid("scale or size")
    if len(t) not in {"nearest": (3, 4), "nearest-exact": (3, 4), "linear": (3,), "bilinear": (4,),
                      "bicubic": (4,)}[a["mode"]]:  # fmt: skip
        raise Invalid("mode")
    if a["align_corners"] is not None and a["mode"].startswith("nearest"):
        raise Invalid("align_corners")
    if a["size"] is not None:
        return TT((*t[:2], *_expand(a["size"], len(t) - 2))), 0
    return TT((*t[:2], *(int(d * a["scale"]) for d in t[2:]))), 0


def _pad(t, a):
    _rank(t, 3, 4)
    p = a["p"]
    if not _is_int(p):
        raise Invalid("the generator pads by one number")
    if a["mode"] != "constant" and (a["value"] != 0.0 or p < 0):
        raise Invalid("mode")
    if a["mode"] == "reflect" and p >= min(t[2:]) or a["mode"] == "circular" and p > min(t[2:]):
        raise Invalid("wraps")
    return TT((*t[:2], *(d + 2 * p for d in t[2:]))), 0


def _pixel_shuffle(t, a):
    _rank(t, 4)
    r = a["r"]
    if t[1] % (r * r):
        raise Invalid("channels")
    return TT((t[0], t[1] // (r * r), t[2] * r, t[3] * r)), 0


def _transpose(t, a):
    i, j = _norm_dim(a["dim0"], len(t)), _norm_dim(a["dim1"], len(t))
    if 0 in (i, j):
        raise Invalid("the generator keeps the batch first")
    d = list(t)
    d[i], d[j] = d[j], d[i]
    return TT(d), 0


def _ints(v) -> tuple:
    return tuple(v) if isinstance(v, (tuple, list)) else (v,)


def _permute(t, a):
    dims = [_norm_dim(d, len(t)) for d in _ints(a["dims"])]
    if sorted(dims) != list(range(len(t))) or dims[0] != 0:
        raise Invalid("permute")
    return TT(t[d] for d in dims), 0


def _reshape(t, a):
    shape = _ints(a["shape"])
    if shape[0] != -1 or any(not _is_int(d) or d < 1 for d in shape[1:]) or math.prod(shape[1:]) != math.prod(t[1:]):
        raise Invalid("reshape")  # the generator writes [-1, sizes...] keeping the batch
    return TT((t[0], *shape[1:])), 0


def _slice(t, a):
    dim = _norm_dim(a["dim"], len(t))
    start, end, step = a["start"], a["end"], a["step"]
    if dim == 0 or start < 0 or (end is not None and end < 0) or not _is_int(t[dim]):
        raise Invalid("slice")
    n = len(range(start, t[dim] if end is None else min(end, t[dim]), step))
    if n < 1:
        raise Invalid("empty slice")
    return TT((*t[:dim], n, *t[dim + 1 :])), 0


def _select(t, a):
    dim = _norm_dim(a["dim"], len(t))
    if dim == 0 or len(t) < 3 or not -t[dim] <= a["index"] < t[dim]:
        raise Invalid("select")
    return TT((*t[:dim], *t[dim + 1 :])), 0


def _unsqueeze(t, a):
    dim = _norm_dim(a["dim"], len(t) + 1)
    if dim == 0 or len(t) >= 4:
        raise Invalid("unsqueeze")
    return TT((*t[:dim], 1, *t[dim:])), 0


def _roll(t, a):
    shifts, dims = _ints(a["shifts"]), [_norm_dim(d, len(t)) for d in _ints(a["dims"])]
    if len(shifts) != len(dims):
        raise Invalid("roll")
    return t, 0


_GATES = {"rnn": 1, "gru": 3, "lstm": 4}


def _recurrent(op):
    def rule(t, a):
        _rank(t, 3)
        h, dirs = a["hidden"], 2 if a["bidirectional"] else 1
        g = _GATES[op] * h
        ins = [t[2]] + [dirs * h] * (a["layers"] - 1)
        params = dirs * sum(g * (i + h) + (2 * g if a["bias"] else 0) for i in ins)
        return TT((t[0], t[1], dirs * h)), params

    return rule


def _self_attention(t, a):
    _rank(t, 3)
    d = t[2]
    if d % a["heads"]:
        raise Invalid("heads")
    return t, 4 * d * d + (4 * d if a["bias"] else 0)


SHAPES = {
    "conv_transpose": _conv_transpose, "group_norm": _group_norm,
    "instance_norm": _instance_norm, "local_response_norm": _lrn, "upsample": _upsample, "pad": _pad,
    "pixel_shuffle": _pixel_shuffle, "transpose": _transpose, "rnn": _recurrent("rnn"),
    "permute": _permute, "reshape": _reshape, "slice": _slice, "select": _select, "unsqueeze": _unsqueeze,
    "roll": _roll,
    "gru": _recurrent("gru"), "lstm": _recurrent("lstm"), "self_attention": _self_attention,
    "relu6": _same, "hardswish": _same, "hardsigmoid": _same,
    "conv": _conv, "maxpool": _pool, "avgpool": _pool, "adaptive_avgpool": _adaptive,
    "adaptive_maxpool": _adaptive, "batchnorm": _batchnorm, "dropout": _dropout, "linear": _linear,
    "flatten": _flatten, "identity": _same, "relu": _same, "sigmoid": _same, "tanh": _same,
    "leaky_relu": _same, "elu": _same, "gelu": _same, "softmax": _same, "log_softmax": _same,
    **ALGEBRA_SHAPES,  # math, reductions over several dims, glu, rms_norm, layer_norm(dim), rotary, topk
}  # fmt: skip


def _bind(op: str, args: list, kwargs: list) -> dict:
    """Attribute values by canonical name, defaults included (the registry's schema)."""
    opdef = ops.REGISTRY[op]
    positional = [a for a in opdef.attrs if a.positional]
    out = {attr.name: v for attr, v in zip(positional, args)}
    by_name = {n: a for a in opdef.attrs for n in a.names}
    for name, v in kwargs:
        out[by_name[name].name] = v
    for attr in opdef.attrs:
        if attr.name not in out:
            out[attr.name] = attr.default
    for attr in opdef.attrs:  # the generator writes floats where a float is expected
        v = out[attr.name]
        if attr.kind == "float" and _is_int(v):
            out[attr.name] = float(v)
        if attr.min is not None and any(x < attr.min for x in (v if isinstance(v, (tuple, list)) else (v,))
                                        if isinstance(x, (int, float)) and not isinstance(x, bool)):  # fmt: skip
            raise Invalid(f"{op}: {attr.name} below {attr.min}")  # E0404 (a block reused with other values)
    return out


def _concat(types, dim):
    ranks = {len(t) for t in types}
    if len(ranks) != 1:
        raise Invalid("ranks")
    r = ranks.pop()
    dim = _norm_dim(dim, r)
    if dim == 0:
        raise Invalid("batch concat")
    for t in types[1:]:
        if any(x != y for i, (x, y) in enumerate(zip(types[0], t)) if i != dim):
            raise Invalid("concat dims")
    total = sum(t[dim] for t in types)
    return _checked(TT((*types[0][:dim], total, *types[0][dim + 1 :])))


# ---- the step tree (text + interpretation) ------------------------------------------------
@dataclass
class Run:
    """Interpretation state: values by name, and the parameters counted so far."""

    env: dict
    params: int = 0

    def child(self, **more) -> Run:
        return _ChildRun(dict(self.env, **more), parent=self)


@dataclass
class _ChildRun(Run):
    parent: Run | None = None

    def count(self, n: int) -> None:
        root = self
        while isinstance(root, _ChildRun) and root.parent is not None:
            root = root.parent
        root.params += n


def _count(run: Run, n: int) -> None:
    if isinstance(run, _ChildRun):
        run.count(n)
    else:
        run.params += n


@dataclass
class OpStep:
    op: str
    args: list  # expression texts
    kwargs: list  # (name, expression text)
    label: str | None = None

    def text(self) -> str:
        parts = list(self.args) + [f"{k}={v}" for k, v in self.kwargs]
        call = self.op if not parts and self._bare else f"{self.op}({', '.join(parts)})"
        return f"{self.label}: {call}" if self.label else call

    _bare = True

    def apply(self, t, run: Run):
        a = _bind(self.op, [ev(x, run.env) for x in self.args], [(k, ev(v, run.env)) for k, v in self.kwargs])
        out, params = SHAPES[self.op](t, a)
        _count(run, params)
        return _checked(out)


@dataclass
class PipeStep:
    """`x -> add(y)` / `x -> concat(y, dim=1)`: the piped tensor is the first input."""

    op: str  # add or concat
    others: list  # TExpr
    dim: str | None = None

    def text(self) -> str:
        parts = [o.text(True) for o in self.others] + ([f"dim={self.dim}"] if self.dim else [])
        return f"{self.op}({', '.join(parts)})"

    def apply(self, t, run: Run):
        types = [t] + [o.apply(run) for o in self.others]
        if self.op == "add":
            if any(x != t for x in types):
                raise Invalid("add shapes")
            return TT(t)  # a new tensor (see _nonempty)
        return _concat(types, ev(self.dim, run.env) if self.dim else 1)


@dataclass
class BlockStep:
    block: Block
    args: list
    kwargs: list
    label: str | None = None
    extra: list = field(default_factory=list)  # further tensor inputs (TExpr)

    def text(self) -> str:
        parts = [e.text(True) for e in self.extra] + list(self.args) + [f"{k}={v}" for k, v in self.kwargs]
        call = f"{self.block.name}({', '.join(parts)})" if parts or self.label else self.block.name
        return f"{self.label}: {call}" if self.label else call

    def apply(self, t, run: Run):
        ins = [t] + [e.apply(run) for e in self.extra]
        outs = self.block.apply(ins, self.args, self.kwargs, run)
        if len(outs) != 1:
            raise Invalid("several outputs in a chain")
        return outs[0]


@dataclass
class SeqStep:
    steps: list
    brackets: bool = False  # [a, b] instead of (a -> b)
    label: str | None = None
    numbered: bool = False  # [a, b] in a numbered sequence: a numbered sequence of its own

    def text(self) -> str:
        body = f"[{', '.join(s.text() for s in self.steps)}]" if self.brackets else (
            f"({' -> '.join(s.text() for s in self.steps)})")  # fmt: skip
        return f"{self.label}: {body}" if self.label else body

    def apply(self, t, run: Run):
        out = t
        for s in self.steps:
            out = s.apply(out, run)
        return _nonempty(self, out, t)


@dataclass
class RepeatStep:
    count: str  # INT, NAME or (expr)
    step: object
    label: str | None = None

    def text(self) -> str:
        body = f"repeat {self.count} {self.step.text()}"
        return f"{self.label}: {body}" if self.label else body

    def apply(self, t, run: Run):
        n = ev(self.count, run.env)
        if not _is_int(n) or n < 0 or n > 8:
            raise Invalid("count")
        out = t
        for _ in range(n):
            out = self.step.apply(out, run)
        return _nonempty(self, out, t)


@dataclass
class ForStep:
    var: str
    iterable: str  # `lo..hi` or a list expression
    steps: list
    label: str | None = None

    def text(self) -> str:
        body = f"for {self.var} in {self.iterable} {{ {' -> '.join(s.text() for s in self.steps)} }}"
        return f"{self.label}: {body}" if self.label else body

    def items(self, env) -> list:
        if ".." in self.iterable:
            lo, hi = self.iterable.split("..")
            return list(range(ev(lo, env), ev(hi, env)))
        return list(ev(self.iterable, env))

    def apply(self, t, run: Run):
        items = self.items(run.env)
        if len(items) > 8:
            raise Invalid("too many items")
        out = t
        for item in items:
            inner = run.child(**{self.var: item})
            for s in self.steps:
                out = s.apply(out, inner)
        return _nonempty(self, out, t)


def _nonempty(step, out: TT, t: TT) -> TT:
    # A labelled sequence whose output is its input (no layers on the way) is an error.
    if (step.label or getattr(step, "numbered", False)) and out is t:
        raise Invalid("empty sequence")
    return out


# ---- tensor expressions and statements -----------------------------------------------------
@dataclass
class Var:
    name: str

    def text(self, nested=False) -> str:
        return self.name

    def apply(self, run: Run):
        return run.env[self.name]


@dataclass
class Chain:
    head: object
    steps: list

    def text(self, nested=False) -> str:
        head = self.head.text(True)
        out = " -> ".join([head, *(s.text() for s in self.steps)])
        return f"({out})" if nested and self.steps else out

    def apply(self, run: Run):
        t = self.head.apply(run)
        for s in self.steps:
            t = s.apply(t, run)
        return t


@dataclass
class Sum:
    terms: list  # TExpr; written a + b (+ c)

    def text(self, nested=False) -> str:
        out = " + ".join(x.text(True) for x in self.terms)
        return f"({out})" if nested else out

    def apply(self, run: Run):
        types = [x.apply(run) for x in self.terms]
        if any(x != types[0] for x in types):
            raise Invalid("add shapes")
        return TT(types[0])  # a new tensor (see _nonempty)


@dataclass
class Call:
    """`relu(a + b)`, `add(a, b, c)`, `concat(a, b, dim=1)`, `lbl: conv(x, 8, k=3)`, `Blk(x, y, 4)`."""

    callee: str
    tensors: list
    args: list = field(default_factory=list)
    kwargs: list = field(default_factory=list)
    label: str | None = None
    block: Block | None = None

    def text(self, nested=False) -> str:
        parts = [x.text(True) for x in self.tensors] + list(self.args) + [f"{k}={v}" for k, v in self.kwargs]
        out = f"{self.callee}({', '.join(parts)})"
        return f"{self.label}: {out}" if self.label else out

    def apply(self, run: Run):
        types = [x.apply(run) for x in self.tensors]
        if self.block is not None:
            outs = self.block.apply(types, self.args, self.kwargs, run)
            if len(outs) != 1:
                raise Invalid("several outputs")
            return outs[0]
        if self.callee == "add":
            return Sum([_Const(t) for t in types]).apply(run)
        if self.callee == "concat":
            kw = dict(self.kwargs)
            return _concat(types, ev(kw["dim"], run.env) if "dim" in kw else 1)
        return OpStep(self.callee, self.args, self.kwargs).apply(types[0], run)


@dataclass
class _Const:
    t: TT

    def apply(self, run):
        return self.t


@dataclass
class Cond:
    cond: str
    then: object
    else_: object

    def text(self, nested=False) -> str:
        out = f"{self.then.text(True)} if {self.cond} else {self.else_.text(True)}"
        return f"({out})" if nested else out

    def apply(self, run: Run):
        return (self.then if ev(self.cond, run.env) else self.else_).apply(run)


@dataclass
class Assign:
    names: list
    value: object

    def text(self) -> str:
        return f"{', '.join(self.names)} = {self.value.text()}"

    def run(self, run: Run):
        if len(self.names) > 1:
            outs = self.value.apply_all(run)
            if len(outs) != len(self.names):
                raise Invalid("unpack")
            run.env.update(zip(self.names, outs))
        else:
            run.env[self.names[0]] = self.value.apply(run)


@dataclass
class MultiCall:
    """`a, b = Blk(x, ...)`: a block with several outputs."""

    call: Call

    def text(self, nested=False) -> str:
        return self.call.text()

    def apply_all(self, run: Run):
        types = [x.apply(run) for x in self.call.tensors]
        return self.call.block.apply(types, self.call.args, self.call.kwargs, run)


@dataclass
class Block:
    name: str
    params: list  # (name, type, default text or None)
    inputs: list  # (name, declared shape text or None)
    body: list  # Assign
    outputs: list  # TExpr
    out_names: list | None = None  # `output n = e` (one output only)

    def text(self) -> str:
        ps = ", ".join(f"{n}: {ty}" + (f" = {d}" if d is not None else "") for n, ty, d in self.params)
        lines = [f"block {self.name}({ps}) {{"]
        lines += [f"    input {n}" + (f": {s}" if s else "") for n, s in self.inputs]
        lines += [f"    {s.text()}" for s in self.body]
        lines.append(_output_text(self.outputs, self.out_names))
        return "\n".join(lines) + "\n}"

    def bind(self, args: list, kwargs: list, env: dict) -> dict:
        values = {}
        given = dict(zip([p[0] for p in self.params], [ev(a, env) for a in args]))
        given.update({k: ev(v, env) for k, v in kwargs})
        for name, ty, default in self.params:
            if name in given:
                v = given[name]
            elif default is not None:
                v = ev(default, {**GLOBALS_OF(env), **values})
            else:
                raise Invalid(f"missing {name}")
            values[name] = float(v) if ty == "float" else v
        return values

    def apply(self, types: list, args: list, kwargs: list, run: Run) -> list:
        if len(types) != len(self.inputs):
            raise Invalid("inputs")
        values = self.bind(args, kwargs, run.env)
        g = GLOBALS_OF(run.env)
        inner = Run({_GLOBALS_KEY: g, **g, **values}, 0)
        for (name, shape), t in zip(self.inputs, types):
            if shape is not None and len(shape.split(",")) != len(t):
                raise Invalid("declared rank")
            inner.env[name] = t
        for stmt in self.body:
            stmt.run(inner)
        outs = [o.apply(inner) for o in self.outputs]
        _count(run, inner.params)
        return outs


_GLOBALS_KEY = "\0globals"


def GLOBALS_OF(env: dict) -> dict:
    return env.get(_GLOBALS_KEY, {})


def _output_text(outputs, names) -> str:
    if names:
        return f"    output {names[0]} = {outputs[0].text()}"
    # Right after `output`, `training` is the keyword (a tricky variable may be called so).
    first, *rest = [o.text() for o in outputs]
    first = f"({first})" if re.match(r"training\b", first) else first
    return "    output " + ", ".join([first, *rest])


@dataclass
class GeneratedSpec:
    text: str
    outputs: list  # expected output types, e.g. [("B", 10)]
    params: int  # expected parameter count
    model: str
    symbols: dict = field(default_factory=dict)  # symbolic input sizes -> the value predicted at

    def __repr__(self) -> str:  # what hypothesis prints for a failing example
        return f"GeneratedSpec(model={self.model!r}, outputs={self.outputs}, params={self.params})\n{self.text}"


# ---- the generator -------------------------------------------------------------------------
_VAR_NAMES = ["x", "y", "h", "z", "t", "u", "a", "b", "feat", "hidden", "skip", "res", "out2", "tmp"]
# NOTE: [Tricky names] Names that collide with what generated code uses: Python keywords and
# builtins, nn.Module's attributes, the module aliases, and near-collisions of one another.
_TRICKY_VARS = ["torch", "nn", "F", "rt", "self", "super", "print", "len", "relu", "conv", "lambda", "class",
                "None", "True", "pass", "return", "yield", "match", "type", "_", "__init__", "x_1",
                "forward", "shape", "x_", "x__", "print_", "self_", "self_1", "INPUT_SHAPES", "NUM_PARAMETERS",
                "out_1", "float", "training", "state_dict", "_v", "float_", "int"]  # fmt: skip
_LABELS = ["stem", "head", "fc", "features", "classifier", "conv1", "bn1", "proj", "pool", "drop", "act",
           "layer1", "layer2", "down", "body", "trunk", "neck", "mlp", "gate", "norm"]  # fmt: skip
_TRICKY_LABELS = ["x", "self", "torch", "nn", "F", "rt", "out", "int", "list", "print", "super", "block",
                  "relu", "conv", "input_", "layer_1", "private_", "x_1", "sigma", "x_", "forward_", "training_",
                  "eval_", "float_", "to_", "apply_", "INPUT_SHAPES_", "out_1", "if_", "class_"]  # fmt: skip
_BLOCK_NAMES = ["Unit", "Stage", "Res", "Mix", "Cell", "Tower", "Module", "Tensor", "Linear", "Sequential",
                "ReLU", "Conv2d", "F", "Identity", "Parameter", "Layer", "HTTPBlock", "ABC", "Forward", "Training",
                "Train", "Eval", "To", "ZeroGrad", "StateDict", "Apply", "Float", "If", "Class", "Lambda", "Self",
                "Torch", "Nn", "Rt", "InputShapes", "Modules", "Parameters", "Cuda", "Half", "Type", "Super",
                "Print", "Unit_1", "Layer_1"]  # fmt: skip
# `Unit_1` is also the name the emitter gives a second class of block Unit: models are named first.
_MODEL_NAMES = ["Net", "Model", "Fuzz", "Tiny", "MyModel", "Classifier", "Main", "ResNetX", "Sequential", "Unit_1",
                "Layer_1", "Layer_2", "Mix_1", "Res_1", "Forward", "Module"]  # fmt: skip
# Steps that keep a symbolic size symbolic and need no known size (no linear on it, no
# batchnorm after a transpose) and never compare two sizes (no residuals or concats).
_SYMBOLIC_KINDS = {"act", "dropout", "batchnorm", "softmax", "conv", "pool", "adaptive", "conv_transpose",
                   "upsample", "pad", "pixel_shuffle", "group", "repeat", "for", "block", "seq", "math"}
_ACTS = ["relu", "sigmoid", "tanh", "leaky_relu", "elu", "gelu", "identity", "relu6", "hardswish", "hardsigmoid"]


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)


@dataclass
class Scope:
    """Where the generator is writing: a model or block body (or a loop inside one)."""

    env: dict  # name -> value: parameters, constants, loop variables, tensors
    labels: set  # labels taken in the current module frame
    numbered: bool = False  # in a labelled sequence: steps take one tensor
    in_loop: bool = False  # repeat/for body: labels would repeat
    depth: int = 0  # block nesting

    def but(self, **kw) -> Scope:
        return Scope(**{**self.__dict__, **kw})


class _Gen(AlgebraSteps):
    def __init__(self, r: random.Random, size: int | None = None):
        self.r = r
        self.budget = size if size is not None else r.choice([3, 6, 10, 16, 24])
        self.blocks: list[Block] = []
        self.consts: dict[str, tuple[str, object]] = {}
        self.taken: set[str] = set()  # every name defined at file level, params and vars
        self.reserved_labels: set[str] = set()
        self.n = 0
        self.symbols: dict[str, int] = {}  # symbolic input sizes, and the value the model uses

    # -- small helpers
    def p(self, prob: float) -> bool:
        return self.r.random() < prob

    def fresh(self, base: str) -> str:
        self.n += 1
        return f"{base}{self.n}"

    def label(self, sc: Scope, force: bool = False) -> str | None:
        """A label for a layer, or None (always None where it would repeat)."""
        if sc.in_loop or not (force or self.p(0.35)):
            return None
        pool = _TRICKY_LABELS if self.p(0.2) else _LABELS
        for _ in range(4):
            name = self.r.choice(pool)
            if self.p(0.3):
                name = f"{name}{self.r.randint(0, 9)}"
            # An unlabelled block instance takes its block's snake-case name (and _1, _2 ...) at once.
            clash = any(name == b or name.startswith(b + "_") for b in self.reserved_labels)
            if name not in sc.labels and not clash:
                sc.labels.add(name)
                return name
        return None

    def var(self, sc: Scope) -> str:
        pool = _TRICKY_VARS if self.p(0.15) else _VAR_NAMES
        name = self.r.choice(pool)
        if name in self.taken or (name in sc.env and not isinstance(sc.env[name], TT)):
            name = self.fresh("v")
        return name

    def attr_name(self, op: str, name: str) -> str:
        for a in ops.REGISTRY[op].attrs:
            if a.name == name:
                return self.r.choice(a.names)
        raise KeyError(name)

    # -- expressions that evaluate to a chosen value
    def iexpr(self, target: int, sc: Scope, depth: int = 0) -> str:
        r = self.r
        if depth > 2 or self.p(0.45):
            return self._iname(target, sc) or str(target) if target >= 0 else f"-{-target}"
        kind = r.choice(["name", "add", "sub", "mul", "div", "mod", "pow", "max", "min", "abs", "int", "len",
                         "cond", "index", "tensor"])  # fmt: skip

        def sub(v: int) -> str:
            return self.iexpr(v, sc, depth + 1)

        if kind == "name":
            return self._iname(target, sc) or str(target)
        if kind == "add":
            a = r.randint(0, abs(target) + 2)
            return f"({sub(a)} + {sub(target - a)})"
        if kind == "sub":
            a = r.randint(0, 5)
            return f"({sub(target + a)} - {sub(a)})"
        if kind == "mul" and target > 0:
            f = r.choice([d for d in range(1, min(target, 12) + 1) if target % d == 0])
            return f"{sub(f)} * {sub(target // f)}" if depth == 0 and self.p(0.3) else f"({sub(f)} * {sub(target // f)})"
        if kind == "div" and target >= 0:
            f = r.randint(1, 4)
            return f"({sub(target * f + r.randint(0, f - 1))} // {sub(f)})"
        if kind == "mod" and target >= 0:
            f = target + r.randint(1, 5)
            return f"({sub(target + f * r.randint(0, 3))} % {f})"
        if kind == "pow" and target > 0:
            for base in (2, 3, 4, 5, 6, 7, 8):
                e = round(math.log(target, base))
                if e >= 1 and base**e == target:
                    return f"({base} ** {e})"
            return f"({sub(target)} ** 1)"
        if kind == "max" and target >= 0:  # max(-1, 0) is 0: the second item is clamped at 0
            return f"max({sub(target)}, {max(0, target - r.randint(0, 3))})"
        if kind == "min":
            return f"min([{target + r.randint(0, 3)}, {sub(target)}])" if self.p(0.5) else f"min({sub(target)}, {target + 1})"
        if kind == "abs":
            return f"abs({-target})" if target > 0 else f"abs({target})"
        if kind == "int":
            return f"int({target}.{r.randint(0, 9)})" if target >= 0 else f"int({target}.0)"
        if kind == "len" and 0 <= target <= 6:
            return f"len([{', '.join(['0'] * target)}])" if self.p(0.5) else f"len([1] * {target})"
        if kind == "cond":
            c = self.p(0.5)
            other = target + r.randint(1, 3)
            a, b = (target, other) if c else (other, target)
            return f"({sub(a)} if {self.bexpr(c, sc)} else {sub(b)})"
        if kind == "index":
            items = [target + r.randint(-2, 2) for _ in range(r.randint(1, 3))]
            i = r.randrange(len(items) + 1)
            items.insert(i, target)
            idx = i if self.p(0.6) else i - len(items)
            return f"{lit(items)}[{idx}]"
        if kind == "tensor":
            for name, v in sc.env.items():
                if isinstance(v, TT) and name not in _EVAL_NS and not keyword.iskeyword(name):
                    if v[1] == target:
                        return f"channels({name})"
                    for d in range(1, len(v) if not self.symbols else 1):  # no symbolic sizes
                        if v[d] == target:
                            return f"size({name}, {d - len(v) if self.p(0.5) else d})"
                    if len(v) == target:
                        return r.choice([f"rank({name})", f"len(shape({name}))"])
        return str(target) if target >= 0 else f"-{-target}"

    def _iname(self, target: int, sc: Scope) -> str | None:
        names = [n for n, v in sc.env.items() if _is_int(v) and v == target and not n.startswith("\0")]
        names += [n for n, (_, v) in self.consts.items() if _is_int(v) and v == target and n not in sc.env]
        return self.r.choice(names) if names and self.p(0.8) else None

    def bexpr(self, target: bool, sc: Scope, depth: int = 0) -> str:
        r = self.r
        names = [n for n, v in sc.env.items() if isinstance(v, bool) and not n.startswith("\0")]
        kind = r.choice(["lit", "name", "cmp", "not", "and", "or", "chain"]) if depth < 2 else "lit"
        if kind == "name" and names:
            n = r.choice(names)
            return n if sc.env[n] == target else f"(not {n})"
        if kind == "cmp":
            a = r.randint(0, 20)
            op = r.choice(["==", "!=", "<", "<=", ">", ">="])
            b = next(b for b in (a, a + 1, a - 1, a + 2) if eval(f"{a} {op} {b}") == target)
            return f"({self.iexpr(a, sc, 2)} {op} {self.iexpr(b, sc, 2)})"
        if kind == "not":
            return f"(not {self.bexpr(not target, sc, depth + 1)})"
        if kind == "and":
            a = True if target else self.p(0.5)
            b = target if a else self.p(0.5)
            return f"({self.bexpr(a, sc, depth + 1)} and {self.bexpr(b, sc, depth + 1)})"
        if kind == "or":
            a = False if not target else self.p(0.5)
            b = target if not a else self.p(0.5)
            return f"({self.bexpr(a, sc, depth + 1)} or {self.bexpr(b, sc, depth + 1)})"
        if kind == "chain":
            a = r.randint(0, 9)
            return f"(0 <= {a} < 10)" if target else f"(0 <= {a} < {a})"
        return lit(target)

    def fexpr(self, target: float, sc: Scope) -> str:
        names = [n for n, v in sc.env.items() if isinstance(v, float) and v == target and not n.startswith("\0")]
        if names and self.p(0.7):
            return self.r.choice(names)
        choices = [repr(target)]
        if target == 0.5:
            choices += ["1 / 2", "0.25 * 2", "5e-1", "float(1) / 2"]
        if target == 0.25:
            choices += ["1 / 4", "0.5 ** 2", "2.5e-1"]
        if target == 0.0:
            choices += ["0", "0.0 * 3"]
        return self.r.choice(choices)

    # -- steps
    def step(self, t: TT, sc: Scope, keep_rank: bool = False) -> tuple[object, TT]:
        """One random step valid for `t` (retrying, then falling back to an activation)."""
        for _ in range(6):
            kinds = self._step_kinds(t, sc, keep_rank)
            kind = self.r.choices([k for k, _ in kinds], [w for _, w in kinds])[0]
            labels = set(sc.labels)
            try:
                s = getattr(self, "_s_" + kind)(t, sc, keep_rank)
                out = s.apply(t, self.run_for(sc))
                self.budget -= 1
                return s, out
            except Invalid:
                sc.labels.clear()
                sc.labels.update(labels)
        s = OpStep(self.r.choice(["relu", "identity", "tanh"]), [], [], self.label(sc))
        return s, s.apply(t, self.run_for(sc))

    def run_for(self, sc: Scope) -> Run:
        return Run(dict(sc.env), 0)

    def _step_kinds(self, t: TT, sc: Scope, keep_rank: bool) -> list:
        r4 = len(t) in (3, 4)
        small = self.budget <= 0
        kinds = [("act", 4), ("dropout", 1), ("batchnorm", 2), ("softmax", 0.5), ("norm", 1.5)]
        if r4:
            kinds += [("conv", 6), ("pool", 2), ("adaptive", 1), ("conv_transpose", 1), ("upsample", 1),
                      ("pad", 1)]  # fmt: skip
            if len(t) == 4:
                kinds += [("pixel_shuffle", 0.5)]
            if not keep_rank:
                kinds += [("flatten", 1)]
        if len(t) >= 3:
            kinds += [("transpose", 0.5), ("permute", 0.4)]
            if not keep_rank:
                kinds += [("mean", 0.5), ("select", 0.3)]
        kinds += [("slice", 0.4), ("roll", 0.2)]
        if not keep_rank:
            kinds += [("reshape", 0.5)] + ([("unsqueeze", 0.3)] if len(t) <= 3 else [])
        if len(t) == 3 and not sc.numbered:
            kinds += [("recurrent", 1.5), ("self_attention", 1)]
        kinds += [("linear", 2 if len(t) == 2 else 0.5)]
        if not small:
            kinds += [("group", 1), ("repeat", 1), ("for", 1), ("block", 2), ("extra", 1.5)]
            if not sc.in_loop:
                kinds += [("seq", 1.5)]
            if not sc.numbered:
                kinds += [("pipe", 0.7)]
        kinds += self.algebra_kinds(t, sc, keep_rank)  # tests/fuzzgen_algebra.py
        if self.symbols:  # NOTE: [Symbolic sizes] in spec()
            kinds = [k for k in kinds if k[0] in _SYMBOLIC_KINDS]
        return [k for k in kinds if k[0] in ("group", "repeat", "for", "block", "extra", "seq", "pipe", "act", "pool",
                                             "adaptive", "softmax", "norm", "recurrent", *ALGEBRA_KINDS)
                or k[0] in ops.REGISTRY]

    def _op(self, op: str, sc: Scope, values: dict, positional: int = 0) -> OpStep:
        """An OpStep for `op` with attribute `values` (canonical names) written by the registry's schema."""
        opdef = ops.REGISTRY[op]
        if sc.numbered and (not getattr(opdef, "sequential", True) or type(opdef).module is OpDef.module):
            raise Invalid(f"{op} has no module form for a numbered sequence")
        attrs = opdef.attrs
        pos = [a.name for a in attrs if a.positional]
        args, kwargs = [], []
        for i, name in enumerate(pos[:positional]):
            if name not in values:
                break
            args.append(self._vexpr(values[name], sc))
        for name, v in values.items():
            if name in pos[: len(args)]:
                continue
            default = next(a.default for a in attrs if a.name == name)
            if v == default and type(v) is type(default) and self.p(0.5):
                continue
            kwargs.append((self.attr_name(op, name), self._vexpr(v, sc)))
        self.r.shuffle(kwargs)
        s = OpStep(op, args, kwargs, self.label(sc))
        s._bare = not args and not kwargs and self.p(0.7)
        return s

    def _vexpr(self, v, sc: Scope) -> str:
        if isinstance(v, bool):
            return self.bexpr(v, sc) if self.p(0.3) else lit(v)
        if _is_int(v):
            return self.iexpr(v, sc)
        if isinstance(v, float):
            return self.fexpr(v, sc)
        if isinstance(v, tuple):
            return "[" + ", ".join(self.iexpr(x, sc, 2) for x in v) + "]"
        names = [n for n, x in sc.env.items() if x == v and isinstance(x, str) and not n.startswith("\0")]
        return self.r.choice(names) if names and self.p(0.5) else lit(v)

    def _width(self, sc: Scope, lo: int = 1, hi: int = 32) -> int:
        ints = [v for n, v in sc.env.items() if _is_int(v) and lo <= v <= hi and not n.startswith("\0")]
        if ints and self.p(0.5):
            return self.r.choice(ints)
        return self.r.choice([lo, 2, 3, 4, 8, 8, 16, 16, 24, 32, hi])

    def _s_act(self, t, sc, keep_rank):
        op = self.r.choice([a for a in _ACTS if a in ops.REGISTRY])
        values = {}
        if op == "leaky_relu" and self.p(0.5):
            values["negative_slope"] = self.r.choice([0.1, 0.2, 0.01])
        if op == "elu" and self.p(0.5):
            values["alpha"] = self.r.choice([0.5, 1.0, 2.0])
        if op == "gelu" and self.p(0.5):
            values["approximate"] = self.r.choice(["tanh", "none"])
        return self._op(op, sc, values, positional=1)

    def _s_softmax(self, t, sc, keep_rank):
        op = self.r.choice(["softmax", "log_softmax"])
        dim = self.r.randint(-len(t), len(t) - 1)
        return self._op(op, sc, {"dim": dim}, positional=self.r.randint(0, 1))

    def _s_dropout(self, t, sc, keep_rank):
        return self._op("dropout", sc, {"p": self.r.choice([0.0, 0.25, 0.5, 0.1])} if self.p(0.7) else {}, 1)

    def _s_batchnorm(self, t, sc, keep_rank):
        values = {}
        if self.p(0.3):
            values["affine"] = self.p(0.5)
        if self.p(0.2):
            values["eps"] = 0.001
        if self.p(0.2):
            values["momentum"] = 0.01
        return self._op("batchnorm", sc, values)

    def _s_norm(self, t, sc, keep_rank):
        choices = [o for o in ("layer_norm", "group_norm", "instance_norm", "local_response_norm")
                   if o in ops.REGISTRY and (len(t) in (3, 4) or o in ("layer_norm", "group_norm"))]  # fmt: skip
        if not choices:
            raise Invalid("no norm")
        op = self.r.choice(choices)
        values = {}
        if op == "group_norm":
            values["groups"] = self.r.choice([d for d in range(1, t[1] + 1) if t[1] % d == 0])
        if op == "local_response_norm":
            values["size"] = self.r.choice([1, 2, 5])
        if op != "local_response_norm" and self.p(0.3):
            values["affine"] = self.p(0.5)
        return self._op(op, sc, values, positional=1)

    def _s_conv_transpose(self, t, sc, keep_rank):
        r = self.r
        values = {"out_channels": self._width(sc, 1, 16), "k": r.choice([1, 2, 3, 4])}
        s = r.choice([1, 2, 2])
        if s != 1:
            values["s"] = s
        if self.p(0.4):
            values["p"] = r.randint(0, 1)
        if s > 1 and self.p(0.4):
            values["output_padding"] = r.randint(0, s - 1)
        if self.p(0.15):
            values["d"] = 2
        if self.p(0.2) and t[1] % 2 == 0 and values["out_channels"] % 2 == 0:
            values["groups"] = 2
        return self._op("conv_transpose", sc, values, positional=r.randint(1, 2))

    def _s_upsample(self, t, sc, keep_rank):
        r = self.r
        modes = ["nearest", "nearest-exact"] + (["linear"] if len(t) == 3 else ["bilinear", "bicubic"])
        values = {"mode": r.choice(modes)} if self.p(0.6) else {}
        if self.p(0.7):
            values["scale"] = r.choice([2, 2.0, 0.5, 1.5, 3] if not self.symbols else [2, 3])
        else:
            values["size"] = r.choice([1, 4, 6]) if self.p(0.6) else tuple(r.choice([2, 5]) for _ in t[2:])
        if values.get("mode", "nearest")[:7] != "nearest" and self.p(0.3):
            values["align_corners"] = self.p(0.5)
        return self._op("upsample", sc, values, positional=1)

    def _s_pad(self, t, sc, keep_rank):
        r = self.r
        values = {"p": r.choice([0, 1, 2, -1])}
        if self.p(0.4):
            values["mode"] = r.choice(["constant", "reflect", "replicate", "circular"])
        if values.get("mode", "constant") == "constant" and self.p(0.3):
            values["value"] = r.choice([0.0, 1.0, -0.5])
        return self._op("pad", sc, values, positional=1)

    def _s_pixel_shuffle(self, t, sc, keep_rank):
        return self._op("pixel_shuffle", sc, {"r": self.r.choice([1, 2])}, positional=1)

    def _s_transpose(self, t, sc, keep_rank):
        i, j = self.r.sample(range(1, len(t)), 2)
        return self._op("transpose", sc, {"dim0": i - len(t) if self.p(0.3) else i, "dim1": j}, positional=2)

    # Layout steps: new orders and views of the same elements (contiguous or not).
    def _s_permute(self, t, sc, keep_rank):
        rest = list(range(1, len(t)))
        self.r.shuffle(rest)
        return self._op("permute", sc, {"dims": (0, *(d - len(t) if self.p(0.2) else d for d in rest))}, positional=1)

    def _s_reshape(self, t, sc, keep_rank):
        n, factors = math.prod(t[1:]), []
        for _ in range(self.r.randint(0, 2)):  # up to 3 sizes after the batch: rank 2 to 4
            f = self.r.choice([d for d in range(1, min(n, 16) + 1) if n % d == 0])
            factors.append(f)
            n //= f
        sizes = [*factors, n]
        self.r.shuffle(sizes)
        return self._op("reshape", sc, {"shape": (-1, *sizes)}, positional=1)

    def _s_slice(self, t, sc, keep_rank):
        dim = self.r.randint(1, len(t) - 1)
        values = {"dim": dim if self.p(0.7) else dim - len(t), "start": self.r.randint(0, max(0, t[dim] - 1))}
        if self.p(0.5):
            values["end"] = self.r.randint(values["start"] + 1, t[dim] + 2)
        if self.p(0.4):
            values["step"] = self.r.randint(1, 3)
        return self._op("slice", sc, values, positional=3)

    def _s_select(self, t, sc, keep_rank):
        dim = self.r.randint(1, len(t) - 1)
        return self._op("select", sc, {"dim": dim, "index": self.r.randint(-t[dim], t[dim] - 1)}, positional=2)

    def _s_unsqueeze(self, t, sc, keep_rank):
        dim = self.r.randint(1, len(t))
        return self._op("unsqueeze", sc, {"dim": dim if self.p(0.7) else dim - len(t) - 1}, positional=1)

    def _s_roll(self, t, sc, keep_rank):
        dims = self.r.sample(range(1, len(t)), self.r.randint(1, len(t) - 1))
        shifts = [self.r.randint(-5, 5) for _ in dims]
        return self._op("roll", sc, {"shifts": tuple(shifts), "dims": tuple(dims)}, positional=2)

    def _s_mean(self, t, sc, keep_rank):
        dim = self.r.randint(1, len(t) - 1)
        values = {"dim": dim if self.p(0.6) else dim - len(t)}
        if self.p(0.4):
            values["keepdim"] = self.p(0.5)
        return self._op("mean", sc, values, positional=1)

    def _s_recurrent(self, t, sc, keep_rank):
        r = self.r
        op = r.choice([o for o in ("lstm", "gru", "rnn") if o in ops.REGISTRY])
        values = {"hidden": self._width(sc, 1, 16)}
        if self.p(0.3):
            values["layers"] = r.randint(1, 2)
        if self.p(0.3):
            values["bidirectional"] = self.p(0.6)
        if self.p(0.2):
            values["bias"] = self.p(0.5)
        if values.get("layers", 1) > 1 and self.p(0.3):
            values["dropout"] = 0.25
        return self._op(op, sc, values, positional=1)

    def _s_self_attention(self, t, sc, keep_rank):
        d = t[2]
        values = {"heads": self.r.choice([h for h in range(1, d + 1) if d % h == 0 and h <= 8])}
        if self.p(0.3):
            values["causal"] = self.p(0.5)
        if self.p(0.2):
            values["bias"] = self.p(0.5)
        return self._op("self_attention", sc, values, positional=1)

    def _s_conv(self, t, sc, keep_rank, cout=None):
        r, n, cin = self.r, len(t) - 2, t[1]
        g = 1
        if self.p(0.25):
            g = r.choice([d for d in range(1, cin + 1) if cin % d == 0])
        cout = cout or self._width(sc)
        cout = max(g, cout - cout % g)
        k = r.choice([1, 1, 3, 3, 5, 2])
        s = r.choice([1, 1, 1, 2, 3])
        d = r.choice([1, 1, 1, 1, 2])
        p = r.choice([0, k // 2, k // 2, 1, "same", "valid"])
        if p == "same":
            s = 1
        values = {"out_channels": cout, "k": k}
        if n == 2 and self.p(0.15):
            values["k"] = (k, r.choice([1, 3]))
        if s != 1 or self.p(0.2):
            values["s"] = s
        if p != 0 or self.p(0.2):
            values["p"] = p if not (n == 2 and isinstance(p, int) and self.p(0.15)) else (p, 0)
        if d != 1:
            values["d"] = d
        if g != 1:
            values["groups"] = g
        if self.p(0.3):
            values["bias"] = self.p(0.5)
        values.update(self.init_values(values.get("bias", True)))  # tests/fuzzgen_algebra.py
        return self._op("conv", sc, values, positional=r.randint(1, 2))

    def _s_pool(self, t, sc, keep_rank):
        r = self.r
        op = r.choice([o for o in ("maxpool", "avgpool") if o in ops.REGISTRY])
        k = r.choice([1, 2, 2, 3, 3, 4])
        values = {"k": k}
        if self.p(0.5):
            values["s"] = r.choice([1, 2, k])
        if self.p(0.4):
            values["p"] = r.randint(0, k // 2)
        if self.p(0.25):
            values["ceil"] = self.p(0.7)
        if op == "maxpool" and self.p(0.15):
            values["d"] = 2
        if op == "avgpool" and self.p(0.15):
            values["count_include_pad"] = False
        return self._op(op, sc, values, positional=1)

    def _s_adaptive(self, t, sc, keep_rank):
        op = self.r.choice(["adaptive_avgpool", "adaptive_maxpool"])
        size = self.r.choice([1, 1, 2, 3, 4, 7])
        if len(t) == 4 and self.p(0.2):
            size = (size, self.r.choice([1, 2]))
        return self._op(op, sc, {"size": size}, positional=1)

    def _s_flatten(self, t, sc, keep_rank):
        rank = len(t)
        start = self.r.randint(1, rank - 1)
        end = self.r.randint(start, rank - 1)
        values = {}
        if start != 1 or self.p(0.3):
            values["start"] = start if self.p(0.6) else start - rank
        if end != rank - 1 or self.p(0.3):
            values["end"] = end if self.p(0.4) else end - rank
        return self._op("flatten", sc, values, positional=1)

    def _s_linear(self, t, sc, keep_rank):
        values = {"out_features": self._width(sc, 1, 48)}
        if self.p(0.3):
            values["bias"] = self.p(0.5)
        values.update(self.init_values(values.get("bias", True)))  # tests/fuzzgen_algebra.py
        return self._op("linear", sc, values, positional=1)

    def _s_group(self, t, sc, keep_rank):
        steps, _ = self.steps(t, sc, self.r.randint(1, 3), keep_rank)
        brackets = self.p(0.3)
        return SeqStep(steps, brackets=brackets, numbered=brackets and sc.numbered)

    def _s_seq(self, t, sc, keep_rank):
        label = self.label(sc, force=True)
        if label is None:
            raise Invalid("no label")
        inner = sc.but(labels=set(), numbered=True)
        kind = self.r.choice(["group", "group", "repeat", "for"])
        s = getattr(self, "_s_" + kind)(t, inner, keep_rank)
        s.label = label
        return s

    def _s_repeat(self, t, sc, keep_rank):
        n = self.r.randint(0, 3) if self.p(0.9) else 1
        inner = sc.but(in_loop=True)
        body = self._try_extra(t, inner)  # NOTE: [Extra inputs]
        if body is None:
            body, _ = self.step(t, inner, keep_rank=True)
        count = self._count_text(n, sc)
        return RepeatStep(count, body)

    def _try_extra(self, t: TT, sc: Scope):
        """Sometimes, a loop's body is a block reading the loop's input again (`repeat 3 Dec(x)`)."""
        if self.symbols or self.budget <= 0 or not self.p(0.25):
            return None
        try:
            s = self._s_extra(t, sc, True)
            s.apply(t, self.run_for(sc))
        except Invalid:
            return None
        self.budget -= 1
        return s

    def _count_text(self, n: int, sc: Scope) -> str:
        names = [k for k, v in sc.env.items() if _is_int(v) and v == n and not k.startswith("\0")]
        if names and self.p(0.5):
            return self.r.choice(names)
        if self.p(0.3):
            return f"({self.iexpr(n, sc)})"
        return str(n)

    def _s_for(self, t, sc, keep_rank):
        r = self.r
        var = r.choice(["i", "j", "n", "idx", "w"])
        if var in sc.env or var in self.taken:
            var = self.fresh("i")
        lists = [n for n, v in sc.env.items() if isinstance(v, list) and 0 < len(v) <= 4
                 and all(_is_int(x) and 1 <= x <= 32 for x in v) and not n.startswith("\0")]  # fmt: skip
        if lists and self.p(0.4):
            iterable = r.choice(lists)
        elif self.p(0.7):
            lo = r.randint(0, 2)
            iterable = f"{self.iexpr(lo, sc, 2)}..{self.iexpr(lo + r.randint(0, 3), sc, 2)}"
        else:
            iterable = lit([r.choice([2, 4, 8, 16]) for _ in range(r.randint(1, 3))])
        probe = ForStep(var, iterable, [])
        items = probe.items(sc.env)
        first = items[0] if items else 1
        inner = sc.but(env={**sc.env, var: first}, in_loop=True)
        extra = self._try_extra(t, inner)  # NOTE: [Extra inputs]
        steps, _ = ([extra], t) if extra is not None else self.steps(t, inner, r.randint(1, 2), keep_rank=True)
        return ForStep(var, iterable, steps)

    def _s_pipe(self, t, sc, keep_rank):
        """`x -> add(y)` or `x -> concat(y)`, y a branch computed from a bound tensor."""
        srcs = [n for n, v in sc.env.items() if isinstance(v, TT)]
        if not srcs:
            raise Invalid("no tensors")
        src = self.r.choice(srcs)
        if self.p(0.5):
            other = self.to_type(Var(src), sc.env[src], t, sc)
            return PipeStep("add", [other])
        if len(t) == 2:
            raise Invalid("concat of rank 2")
        target = TT((*t[:1], self._width(sc, 1, 16), *t[2:]))
        other = self.to_type(Var(src), sc.env[src], target, sc)
        return PipeStep("concat", [other], self._vexpr(1, sc) if self.p(0.3) else None)

    def _s_block(self, t, sc, keep_rank):
        """A call of an existing block that fits, else of a new one."""
        if sc.depth >= 2:
            raise Invalid("deep")
        run = self.run_for(sc)
        for b in self.r.sample(self.blocks, len(self.blocks)):
            if len(b.inputs) != 1 or len(b.outputs) != 1:
                continue
            args, kwargs = self.call_args(b, sc)
            try:
                out = b.apply([t], args, kwargs, run)
            except Invalid:
                continue
            if keep_rank and len(out) != len(t):
                continue
            return BlockStep(b, args, kwargs, self.label(sc))
        b = self.new_block([t], sc, keep_rank, n_out=1)
        args, kwargs = self.call_args(b, sc, b.reference)
        return BlockStep(b, args, kwargs, self.label(sc))

    def _s_extra(self, t, sc, keep_rank):
        """`Mix(m)`: a block that also reads another tensor of this step's type, often the chain's
        own input (`x = x -> layers: repeat 3 Mix(x)`).

        NOTE: [Extra inputs] In a labelled repeat or for (an nn.ModuleList called item by item),
        every item must get that tensor, not the previous item's output: the IR interpreter
        (verify_module) compares the values, so such a mix-up fails the case."""
        if sc.depth >= 2:
            raise Invalid("deep")
        same = [n for n, v in sc.env.items() if isinstance(v, TT) and v == t and n not in _EVAL_NS
                and not keyword.iskeyword(n)]  # fmt: skip
        if not same:
            raise Invalid("no other tensor of this type")
        fits = [b for b in self.blocks if getattr(b, "mixes", None) == t]
        b = self.r.choice(fits) if fits and self.p(0.5) else self._mix_block(t, sc)
        args, kwargs = self.call_args(b, sc, b.reference)
        return BlockStep(b, args, kwargs, self.label(sc), extra=[Var(self.r.choice(same))])

    def _mix_block(self, t: TT, sc: Scope) -> Block:
        """A block of two inputs of type t whose output (type t) depends on both."""
        name = self.fresh(self.r.choice(["Mix", "Dec", "Fuse", "Gate"]))
        self.taken.add(name)
        self.reserved_labels.add(_snake(name))
        x, m = self.r.choice([("x", "memory"), ("x", "m"), ("h", "skip"), ("print", "print_"), ("a", "self"),
                              ("x", "x_"), ("inp", "inp_1")])  # fmt: skip
        globals_ = GLOBALS_OF(sc.env)
        bsc = Scope({_GLOBALS_KEY: globals_, **globals_, x: t, m: t}, set(), depth=sc.depth + 1)
        saved = self.budget
        self.budget = min(self.budget, self.r.randint(1, 3))
        branch = self.to_type(Var(x), t, t, bsc)
        self.budget = saved - 1
        kind = self.r.choice(["sum", "pipe", "call"])
        if kind == "sum":
            out = Sum([branch, Var(m)] if self.p(0.5) else [Var(m), branch])
        elif kind == "pipe":
            out = Chain(branch, [PipeStep("add", [Var(m)])]) if isinstance(branch, Chain) else Sum([branch, Var(m)])
        else:
            out = Call("add", [branch, Var(m)])
        block = Block(name, [], [(x, None), (m, None)], [], [out])
        block.reference, block.mixes = {}, t
        self.blocks.append(block)
        return block

    def steps(self, t: TT, sc: Scope, n: int, keep_rank: bool = False) -> tuple[list, TT]:
        out = []
        for _ in range(n):
            s, t = self.step(t, sc, keep_rank)
            out.append(s)
        return out, t

    # -- adapting one type to another (for residuals and concats)
    def to_type(self, head, t: TT, target: TT, sc: Scope) -> object:
        """An expression from `head` (of type t) to `target`: random rank-keeping steps, then fixes."""
        if len(t) != len(target):
            raise Invalid("rank")
        steps = []
        if self.p(0.6) and self.budget > 0:
            steps, t = self.steps(t, sc.but(in_loop=sc.in_loop), self.r.randint(1, 2), keep_rank=True)
        if t[2:] != target[2:] and len(t) > 2:
            size = target[2:] if len(set(target[2:])) > 1 or self.p(0.3) else target[2]
            steps.append(self._op(self.r.choice(["adaptive_avgpool", "adaptive_maxpool"]), sc,
                                  {"size": tuple(size) if isinstance(size, tuple) else size}, 1))  # fmt: skip
        if len(t) == 2 and t[1] != target[1]:
            steps.append(self._op("linear", sc, {"out_features": target[1]}, 1))
        elif t[1] != target[1]:
            steps.append(self._op("conv", sc, {"out_channels": target[1], "k": 1}, 1))
        expr = Chain(head, steps) if steps else head
        if expr.apply(self.run_for(sc)) != target:
            raise Invalid("adapter")
        return expr

    # -- blocks
    def call_args(self, b: Block, sc: Scope, values: dict | None = None) -> tuple[list, list]:
        """Arguments for a call of `b`: positional, then keywords, defaults sometimes left out."""
        values = values or {name: self._param_value(ty) for name, ty, _ in b.params}
        args, kwargs = [], []
        positional = True
        for name, ty, default in b.params:
            v = values[name]
            if default is not None and self.p(0.4):
                dv = ev(default, {**GLOBALS_OF(sc.env), **values})
                if dv == v and type(dv) is type(v):
                    positional = False
                    continue
            text = self._vexpr(v, sc) if ty != "list" else lit(v)
            if positional and self.p(0.6):
                args.append(text)
            else:
                positional = False
                kwargs.append((name, text))
        self.r.shuffle(kwargs)
        return args, kwargs

    def _param_value(self, ty: str):
        r = self.r
        return {"int": lambda: r.choice([1, 2, 4, 8, 16]), "bool": lambda: self.p(0.5),
                "float": lambda: r.choice([0.0, 0.25, 0.5]), "str": lambda: r.choice(["none", "tanh"]),
                "list": lambda: [r.choice([4, 8]) for _ in range(r.randint(1, 3))]}[ty]()  # fmt: skip

    def new_block(self, types: list, sc: Scope, keep_rank: bool, n_out: int) -> Block:
        name = self.r.choice(_BLOCK_NAMES)
        if name in self.taken or self.p(0.5):
            name = self.fresh(name)
        if name in self.taken:
            name = self.fresh("Blk")
        self.taken.add(name)
        self.reserved_labels.add(_snake(name))
        params, values = [], {}
        for pname, ty in self.r.sample([("width", "int"), ("stride", "int"), ("act", "bool"), ("drop", "float"),
                                        ("mode", "str"), ("widths", "list"), ("w", "int")], self.r.randint(0, 3)):
            v = self._param_value(ty)
            default = None
            if self.p(0.5):
                dv = v if self.p(0.7) else self._param_value(ty)
                default = lit(dv) if ty != "int" or not values or self.p(0.5) else self._default_expr(dv, values, sc)
            params.append((pname, ty, default))
            values[pname] = v
        globals_ = GLOBALS_OF(sc.env)
        env = {_GLOBALS_KEY: globals_, **globals_, **values}
        bsc = Scope(env, set(), depth=sc.depth + 1)
        inputs = []
        tricky = self.r.choice([["print", "print_"], ["a", "self"], ["x", "x_"], ["torch", "nn"], ["rt", "_v"],
                                ["x_1", "x"], ["forward", "training"]])  # fmt: skip
        for i, t in enumerate(types):
            iname = ["x", "y", "z"][i] if self.p(0.8) else f"inp{i}"
            if i < 2 and self.p(0.15):
                iname = tricky[i]
            shape = None
            if self.p(0.2):  # symbols match any size (and bind names: distinct ones per input)
                shape = "[" + ", ".join(["N"] + [f"D{i}{j}" for j in range(1, len(t))]) + "]"
            inputs.append((iname, shape))
            env[iname] = t
        block = Block(name, params, inputs, [], [])
        block.reference = dict(values)
        saved = self.budget
        self.budget = min(self.budget, self.r.randint(1, 5))
        body, outs = self.body(bsc, [n for n, _ in inputs], n_out, keep_rank_of=types[0] if keep_rank else None)
        self.budget = saved - 1
        block.body, block.outputs = body, outs
        if n_out == 1 and self.p(0.2):
            block.out_names = [self.r.choice(["out", "y", "result"])]
        self.blocks.append(block)
        return block

    def _default_expr(self, v: int, values: dict, sc: Scope) -> str:
        name, pv = next(((n, x) for n, x in values.items() if _is_int(x) and x != 0), (None, None))
        if name is None or v % pv:
            return str(v)
        return f"{name} * {v // pv}"

    # -- bodies
    def body(self, sc: Scope, inputs: list, n_out: int, keep_rank_of: TT | None = None) -> tuple[list, list]:
        """Statements over the tensors named `inputs`, and `n_out` output expressions."""
        stmts = []
        for _ in range(self.r.randint(0, 3) if self.budget > 0 else 0):
            try:
                stmt = self.statement(sc)
                stmt.run(Run(sc.env))  # binds its names (types) in the scope
            except Invalid:
                continue
            stmts.append(stmt)
        tensors = [n for n, v in sc.env.items() if isinstance(v, TT)]
        outs = []
        for i in range(n_out):
            name = tensors[-1] if i == 0 and self.p(0.7) else self.r.choice(tensors)
            t = sc.env[name]
            if keep_rank_of is not None and len(t) != len(keep_rank_of):
                # Not inputs[0] by name: a statement may have rebound it to another rank (reshape).
                same = [n for n in tensors if len(sc.env[n]) == len(keep_rank_of)]
                if not same:
                    raise Invalid("no tensor of the block input's rank")
                name = self.r.choice(same)
                t = sc.env[name]
            expr = Var(name)
            if self.p(0.5) and self.budget > 0:
                steps, _ = self.steps(t, sc, self.r.randint(1, 2), keep_rank=keep_rank_of is not None)
                expr = Chain(expr, steps)
            outs.append(expr)
        return stmts, outs

    def statement(self, sc: Scope):
        r = self.r
        tensors = [n for n, v in sc.env.items() if isinstance(v, TT)]
        src = tensors[-1] if self.p(0.6) else r.choice(tensors)
        t = sc.env[src]
        kinds = {"chain": 6, "cond": 1, "call": 1}
        if not self.symbols:  # NOTE: [Symbolic sizes]: never compare two sizes
            kinds.update(residual=2, concat=1.5, multi=0.5, algebra=1.5)
        kind = r.choices(list(kinds), list(kinds.values()))[0]
        name = self.var(sc) if not (kind == "chain" and self.p(0.3)) else src
        if kind == "chain" or (kind == "concat" and len(t) == 2):
            steps, _ = self.steps(t, sc, r.randint(1, 4))
            return Assign([name], Chain(Var(src), steps))
        if kind == "residual":
            branch = self.to_type(Var(src), t, t, sc)
            terms = [Var(src), branch] + ([self.to_type(Var(src), t, t, sc)] if self.p(0.2) else [])
            if self.p(0.3):
                return Assign([name], Call("add", terms))
            expr = Sum(terms)
            if self.p(0.4):
                act = self.r.choice(["relu", "tanh"])
                expr = Call(act, [expr]) if self.p(0.5) else Chain(expr, [OpStep(act, [], [])])
            return Assign([name], expr)
        if kind == "concat":
            parts = []
            for _ in range(r.randint(1, 3)):
                target = TT((t[0], self._width(sc, 1, 16), *t[2:]))
                parts.append(self.to_type(Var(src), t, target, sc))
            kwargs = [("dim", self._vexpr(r.choice([1, 1 - len(t)]), sc))] if self.p(0.4) else []
            return Assign([name], Call("concat", parts, kwargs=kwargs, label=self.label(sc)))
        if kind == "algebra":  # a - b, where(b > a, ...), topk, one_hot ... (tests/fuzzgen_algebra.py)
            return Assign([name], self.formula(Var(src), t, sc))
        if kind == "cond":  # only the chosen branch is elaborated; both are valid here
            c = self.p(0.5)
            steps, _ = self.steps(t, sc, r.randint(1, 2))
            then, else_ = Chain(Var(src), steps), Var(src)
            if self.p(0.5):
                then, else_ = else_, then
            return Assign([name], Cond(self.bexpr(c, sc), then, else_))
        if kind == "call":
            op = r.choice(["relu", "conv", "linear", "block"] if not self.symbols else ["relu", "conv", "block"])
            if op == "conv" and len(t) in (3, 4):
                s = self._s_conv(t, sc, False)
                return Assign([name], Call("conv", [Var(src)], s.args, s.kwargs, s.label))
            if op == "linear":
                s = self._s_linear(t, sc, False)
                return Assign([name], Call("linear", [Var(src)], s.args, s.kwargs, s.label))
            if op == "block" and sc.depth < 2 and len(tensors) >= 1:
                ins = [src] + ([r.choice(tensors)] if self.p(0.4) else [])
                b = self.new_block([sc.env[n] for n in ins], sc, False, n_out=1)
                args, kwargs = self.call_args(b, sc, b.reference)
                return Assign([name], Call(b.name, [Var(n) for n in ins], args, kwargs, self.label(sc), b))
            return Assign([name], Call("relu", [Var(src)]))
        if kind == "multi" and sc.depth < 2:
            b = self.new_block([t], sc, False, n_out=2)
            args, kwargs = self.call_args(b, sc, b.reference)
            names = [name, self.var(sc)]
            if names[1] == names[0]:
                names[1] = self.fresh("v")
            return Assign(names, MultiCall(Call(b.name, [Var(src)], args, kwargs, self.label(sc), b)))
        raise Invalid("no statement")

    # -- the file
    def spec(self) -> GeneratedSpec:
        r = self.r
        consts = {}
        for cname, ty in r.sample([("WIDTH", "int"), ("DEPTH", "int"), ("DROP", "float"), ("USE_BN", "bool"),
                                   ("SIZES", "list")], r.randint(0, 2)):  # fmt: skip
            v = self._param_value(ty)
            consts[cname] = v
            self.consts[cname] = (lit(v), v)
            self.taken.add(cname)
        mname = r.choice(_MODEL_NAMES)
        self.taken.add(mname)
        params, values = [], {}
        for pname, ty in r.sample([("num_classes", "int"), ("width", "int"), ("depth", "int"), ("flag", "bool"),
                                   ("drop", "float"), ("mode", "str"), ("widths", "list"), ("c", "int")],
                                  r.randint(0, 3)):  # fmt: skip
            v = self._param_value(ty)
            params.append((pname, ty, lit(v)))
            values[pname] = v
            self.taken.add(pname)
        env = {_GLOBALS_KEY: dict(consts), **consts, **values}
        sc = Scope(env, set())
        inputs = []
        batch = r.choice(["B", "B", "N", "batch"])
        # NOTE: [Symbolic sizes] Sometimes the spatial sizes are symbols ([B, 3, H, W]). The shape
        # model computes with 16 for each (the size verify_module runs them at) and the compiler's
        # output sizes are compared after substituting 16; steps are limited to _SYMBOLIC_KINDS.
        symbolic = SYMBOLIC[0] = self.p(0.15)
        for i in range(1 if self.p(0.8) or symbolic else 2):
            rank = r.choice([2, 3, 4, 4, 4] if not symbolic else [3, 4, 4])
            if i and self.p(0.6):
                t = env[inputs[0][0]]
            else:
                c = r.choice([1, 2, 3, 4, 8])
                spatial = [r.choice([4, 5, 7, 8, 12, 16]) if not symbolic else 16 for _ in range(rank - 2)]
                t = TT((batch, c if rank > 2 else r.choice([3, 8, 16]), *spatial))
            iname = r.choice(["image", "x", "inp", "tokens", "data"]) if i == 0 else r.choice(["aux", "y", "extra"])
            if iname in self.taken:
                iname = self.fresh("in")
            dims = [batch] + [self.iexpr(d, sc, 2) if self.p(0.2) else str(d) for d in t[1:]]
            if symbolic:
                names = r.choice([["H", "W"], ["Hin", "Win"], ["T"], ["L"], ["S"]])[: rank - 2]
                names += [f"D{j}" for j in range(len(names), rank - 2)]
                self.symbols.update({name: 16 for name in names})
                dims[2:] = names
            inputs.append((iname, "[" + ", ".join(dims) + "]"))
            env[iname] = t
            self.taken.add(iname)
            sc.labels.add(iname)  # a model input names a node of the model's frame
        n_out = 1 if self.p(0.85) else 2
        input_types = [env[n] for n, _ in inputs]
        body, outs = self.body(sc, [n for n, _ in inputs], n_out)
        out_names = [r.choice(["logits", "out", "y"])] if n_out == 1 and self.p(0.2) else None
        text = self._file(consts, mname, params, inputs, body, outs, out_names)
        run = Run({_GLOBALS_KEY: dict(consts), **consts, **values}, 0)
        for (iname, _), t in zip(inputs, input_types):
            run.env[iname] = t
        for stmt in body:
            stmt.run(run)
        types = [o.apply(run) for o in outs]
        return GeneratedSpec(text, [tuple(t) for t in types], run.params, mname, dict(self.symbols))

    def _file(self, consts, mname, params, inputs, body, outs, out_names) -> str:
        r = self.r
        items = [f"{k} = {lit(v)}" for k, v in consts.items()]
        blocks = [b.text() for b in self.blocks]
        r.shuffle(blocks)  # definition order does not matter
        ps = ", ".join(f"{n}: {ty} = {d}" for n, ty, d in params)
        lines = [f"model {mname}({ps}) {{" if params or self.p(0.5) else f"model {mname} {{"]
        if self.p(0.3):
            lines.append("    # generated by tests/fuzzgen.py")
        lines += [f"    input {n}: {s}" for n, s in inputs]
        lines += [f"    {s.text()}" for s in body]
        lines.append(_output_text(outs, out_names))
        lines.append("}")
        model = "\n".join(lines)
        parts = items + blocks + [model]
        if self.p(0.3) and items:
            parts = blocks + [model] + items  # constants may come after their use
        return "\n\n".join(parts) + "\n"


def generate(r: random.Random, size: int | None = None) -> GeneratedSpec:
    """A random valid spec, with its expected output shapes and parameter count."""
    try:
        return _Gen(r, size).spec()
    finally:
        SYMBOLIC[0] = False


# ---- mutations --------------------------------------------------------------------------------
_TOKEN = re.compile(r'\s+|#[^\n]*|"(?:[^"\\\n]|\\.)*"|\d+(?:\.\d+)?(?:[eE][+-]?\d+)?|[A-Za-z_]\w*'
                    r"|->|\*\*|//|==|!=|<=|>=|\.\.|.", re.DOTALL)  # fmt: skip
_VOCAB = ["->", "(", ")", "[", "]", "{", "}", ",", ":", "=", "+", "-", "*", "/", "//", "%", "**", "..", "==",
          "<", "if", "else", "for", "in", "repeat", "and", "or", "not", "true", "false", "input", "output",
          "model", "block", "import", "def", "|", "x", "relu", "conv", "linear", "concat", "add", "flatten", "channels",
          "size", "len", "B", "0", "1", "-1", "3", "0.5", "1e-3", '"same"', '"x"', '""', "\n", "#", "@", ";",
          "'", "`", "\\", "\t", "\x00", "\ufeff", "\u00e9", "\U0001f600", "\u202e", "\r", "\x0c", "1e999",
          "99999999999999999999999999", "2**63", "-9223372036854775808", "9223372036854775807", "2147483648",
          "1e308", "0.0", "nan", "inf", "__init__", "self", "None", "lambda", "import \"x.model\"",
          "forward", "__class__", "batchnorm", "maxpool", "for i in 0..3 {", "repeat 3"]  # fmt: skip


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _huge(r: random.Random) -> str:
    return r.choice(["9" * r.randint(19, 400), "2147483648", "9223372036854775808", "1e999", "1" + "0" * 5000,
                     "0." + "0" * 400 + "1", "4294967296", "65536", "100000", "1000001"])  # fmt: skip


def mutate(r: random.Random, text: str, n: int | None = None) -> str:
    """Apply 1..n random edits: token deletes, duplicates, swaps and replacements, byte noise,
    huge numbers, deep nesting, truncation."""
    toks = tokens(text)
    for _ in range(n if n is not None else r.choice([1, 1, 1, 2, 3, 5])):
        if not toks:
            toks = [r.choice(_VOCAB)]
        i = r.randrange(len(toks))
        kind = r.choices(["delete", "dup", "swap", "replace", "insert", "number", "nest", "chars", "cut", "span"],
                         [4, 2, 2, 4, 3, 2, 1, 1, 0.5, 1])[0]  # fmt: skip
        if kind == "delete":
            del toks[i]
        elif kind == "dup":
            toks.insert(i, toks[i])
        elif kind == "swap":
            j = r.randrange(len(toks)) if r.random() < 0.5 else min(i + 2, len(toks) - 1)
            toks[i], toks[j] = toks[j], toks[i]
        elif kind == "replace":
            toks[i] = r.choice(_VOCAB) if r.random() < 0.6 else r.choice(toks)
        elif kind == "insert":
            toks.insert(i, r.choice(_VOCAB) if r.random() < 0.7 else " ")
        elif kind == "number":
            ints = [j for j, tok in enumerate(toks) if tok[:1].isdigit()]
            j = r.choice(ints) if ints else i
            toks[j] = r.choice([_huge(r), "0", "1", "-1", "-" + toks[j] if toks[j][:1].isdigit() else "0"])
        elif kind == "nest":
            depth = r.choice([50, 200, 1000, 5000, 20000])
            open_, close = r.choice([("(", ")"), ("[", "]"), ("-", ""), ("not ", ""), ("{", "}"), ("(relu -> ", ")"),
                                     ("repeat 2 ", ""), ("x -> (", ")"), ("1 + ", ""), ("[1, ", "]")])  # fmt: skip
            if open_ == "repeat 2 ":
                # 2**17 copies of anything reach the limit of 100,000 layers, seconds of work (~50-100
                # us a layer; test_limits.py trips it once): not worth fuzzing again and again.
                depth = r.randint(1, 12)
            toks.insert(i + 1, close * depth)
            toks.insert(i, open_ * depth)
        elif kind == "chars":
            noise = "".join(chr(r.choice([r.randint(0, 127), r.randint(128, 0x2FFF), r.randint(0xE000, 0x10FFFF)]))
                            for _ in range(r.randint(1, 8)))  # fmt: skip
            noise = noise.replace("\ud800", "")
            toks.insert(i, "".join(c for c in noise if not 0xD800 <= ord(c) <= 0xDFFF))
        elif kind == "cut":
            toks = toks[: i] if r.random() < 0.5 else toks[i:]
        elif kind == "span":
            j = min(len(toks), i + r.randint(1, 12))
            piece = toks[i:j]
            k = r.randrange(len(toks) + 1)
            toks[k:k] = piece if r.random() < 0.5 else []
            if r.random() < 0.5:
                del toks[i:j]
    return "".join(toks)


def runnable(graph, max_elems: int = 20_000_000) -> bool:
    """Whether verify_module can run a compiled graph here: every size positive at the sizes it
    runs at (a symbolic size may be too small: `[B, 3, H]` -> 100 valid convs needs H > 200),
    and no tensor or layer too large for memory (`[B, 2, 16, 2**31 - 4]` is a valid input)."""
    from modelc.symbolic import subs
    from modelc.verify import concrete_env

    if graph.num_params() > max_elems:
        return False
    env = concrete_env(graph)
    for n in graph.nodes():
        for t in graph.node(n).types:
            dims = [subs(d, env) for d in t.dims]
            if any(not isinstance(d, int) or d <= 0 for d in dims) or math.prod(dims) > max_elems:
                return False
    return True


def seed_texts() -> list[tuple[str, str]]:
    """(name, text) of the zoo's specs."""
    seeds = []
    for path in sorted((ROOT / "specs").glob("*.model")):
        try:
            seeds.append((path.name, path.read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError):
            continue
    return seeds


def hostile_texts(n: int = 3000) -> list[tuple[str, str]]:
    """Fixed families of hostile input of size about `n` (binary files are written by the callers).

    Sizes above ~20,000 take the parser tens of seconds (it is linear, at ~60 us a token)."""
    body = "model M { input x: [B, 3]  output x -> relu }"
    return [
        ("empty", ""),
        ("blank", " \n\t\r\n"),
        ("comment", "# only a comment"),
        ("bom", "\ufeff" + body),
        ("nul", body.replace(" ", "\x00", 1)),
        ("crlf", body.replace(" ", "\r\n")),
        ("unterminated string", 'model M { input x: [B, 3]  output x -> gelu(approximate="tanh'),
        ("long name", f"model M {{ input {'x' * n}: [B, 3]  output {'x' * n} }}"),
        ("long line", body.replace("relu", "relu" + " -> relu" * min(n, 20000))),
        ("deep parens", "model M { input x: [B, 3]  n = " + "(" * n + "1" + ")" * n + "  output x }"),
        ("deep minus", "model M { input x: [B, 3]  n = " + "-" * n + "1  output x }"),
        ("deep not", "model M { input x: [B, 3]  n = " + "not " * n + "true  output x }"),
        ("deep list", "model M { input x: [B, 3]  n = " + "[" * n + "]" * n + "  output x }"),
        ("deep group", "model M { input x: [B, 3]  output x -> " + "(" * n + "relu" + ")" * n + " }"),
        ("deep seq", "model M { input x: [B, 3]  output x -> " + "[" * n + "relu" + "]" * n + " }"),
        ("deep repeat", "model M { input x: [B, 3]  output x -> " + "repeat 1 " * n + "relu }"),
        ("deep ternary", "model M { input x: [B, 3]  output " + "x if true else " * n + "x }"),
        ("deep chain of names", "model M { input x: [B, 3]  a0 = x\n" + "".join(
            f"a{i + 1} = a{i}\n" for i in range(min(n, 20000))) + f"output a{min(n, 20000)} }}"),
        ("deep for", "model M { input x: [B, 3]  output x -> " + "for i in 0..1 { " * min(n, 3000) + "relu"
         + " }" * min(n, 3000) + " }"),
        ("many blocks", "".join(f"block B{i} {{ input x  output x -> B{i + 1} }}\n" for i in range(min(n, 3000)))
         + f"block B{min(n, 3000)} {{ input x  output x }}\nmodel M {{ input x: [B, 3]  output x -> B0 }}"),
        ("many consts", "".join(f"C{i} = C{i + 1} + 1\n" for i in range(min(n, 5000))) + f"C{min(n, 5000)} = 0\n"
         + "model M { input x: [B, 3]  output x -> linear(C0 % 7 + 1) }"),
        ("huge int", f"model M {{ input x: [B, 3]  output x -> linear({'9' * n}) }}"),
        ("huge float", "model M { input x: [B, 3]  output x -> dropout(1e999) }"),
        ("huge dim", "model M { input x: [B, 99999999999999999999]  output x }"),
        ("huge repeat", "model M { input x: [B, 3]  output x -> repeat 99999999999 relu }"),
        ("nested repeats", "model M { input x: [B, 3]  output x -> repeat 40 repeat 40 (relu -> tanh) }"),
        ("huge list", "model M { input x: [B, 3]  n = [0] * 999999999  output x }"),
        ("huge power", "model M { input x: [B, 3]  n = 9 ** 9 ** 9 ** 9  output x }"),
        ("huge shift", "model M { input x: [B, 3]  output x -> linear(2 ** 62) }"),
        ("big spatial", "model M { input x: [B, 3, 2147483647, 2147483647]  output x -> conv(64, k=3) }"),
        ("many errors", "model M { input x: [B, 3]\n" + "".join(f"y{i} = nope{i}\n" for i in range(min(n, 5000)))
         + "output x }"),
        ("import self", 'import "fuzz.model"\nmodel M { input x: [B, 3]  output x }'),
        ("import dir", 'import "/"\nmodel M { input x: [B, 3]  output x }'),
        ("import dev", 'import "/dev/zero"\nmodel M { input x: [B, 3]  output x }'),
    ]


# ---- every attribute of every op at extreme values ----------------------------------------------
_INPUTS = ["[B, 4, 8, 8]", "[B, 4, 8]", "[B, 8]", "int64[B, 8]", "[B, 4, 16, 16]", "[B, 16, 8]", "[8, 4, 8]"]
_SAMPLE = {"int": 2, "dim": 1, "float": 0.5, "number": 0.5, "bool": False, "ints": 2, "padding": 1, "str": None,
           "array": [[1, 0], [0, 1]], "shape": ["B", -1]}  # fmt: skip
EXTREMES = ["0", "-1", "1", "2147483647", "2147483648", "9223372036854775807", "1" + "0" * 30, "1e308", "-1e308",
            "1e-300", "0.0", "true", '"x"', '""', "[]", "[0]", "[1, 1, 1, 1, 1]", "[2147483647, 2147483647]",
            "[-1, -1]", "[[1]]", "[B]", "B"]  # fmt: skip


# Ops whose required attributes' samples do not fit, or that need an optional one.
_HINTS = {"permute": "dims=[0, 2, 1]", "upsample": "scale=2", "unbind": "dim=1", "position_embedding": "max_len=64",
          "select": "dim=1, index=0", "slice": "dim=1, start=0, end=2", "roll": "shifts=[1], dims=[1]",
          "window_reverse": "window=2, h=4, w=4", "mean": "dim=1", "split": "sizes=2, dim=1",
          "shifted_window_mask": "window=4, shift=2", "clamp": "min=0.0", "topk": "k=2",
          "timestep_embedding": "dim=8"}  # fmt: skip
# Ops whose first tensors must be of another kind: a bool condition; int64 ids, all 0 (the argmax
# of a dimension of size 1), so that they are in range along any dimension; one number per sample ([B]).
_IDS = "argmax(unsqueeze(x, -1), -1)"
_FIRST = {"where": "x > 0", "gather": f"x, {_IDS}", "scatter_add": f"x, {_IDS}, x", "index_select": f"x, {_IDS}",
          "timestep_embedding": "(x -> select(1, 0))"}


def _sample_text(attr) -> str:
    v = _SAMPLE[attr.kind]
    if attr.kind == "str":
        return lit(attr.choices[0] if attr.choices else "x")
    if attr.kind == "shape":
        return "[B, -1]"
    return lit(v)


def op_base_calls(op: str) -> list[str]:
    """Spec texts calling `op` with small values for its required attributes, on several inputs and
    with 1 to 3 tensor arguments (the callers keep those that compile)."""
    opdef = ops.REGISTRY[op]
    required = [a for a in opdef.attrs if a.default is ops.base.REQUIRED and a.name not in _HINTS.get(op, "")]
    args = ", ".join([f"{a.name}={_sample_text(a)}" for a in required] + ([_HINTS[op]] if op in _HINTS else []))
    out = []
    for shape in _INPUTS:
        for n in (1, 2, 3):
            tensors = ", ".join([_FIRST.get(op, "x")] + ["x"] * (n - 1))
            call = f"{op}({tensors}{', ' if args else ''}{args})"
            out.append(f"model M {{ input x: {shape}\n  y = {call}\n  output x }}")
    return out


# Values small enough that a module accepting them can also be built and run here.
SMALL_EXTREMES = frozenset(["0", "-1", "1", "1e-300", "0.0", "true", "[0]", "[1, 1, 1, 1, 1]", "[-1, -1]", "[[1]]"])


def op_attr_variants(op: str, base: str) -> list[tuple[str, str]]:
    """(value, text): `base` (a compiling call of `op`) with each attribute in turn set to each
    extreme value."""
    call = base.split("\n")[1]
    out = []
    for attr in ops.REGISTRY[op].attrs:
        for value in EXTREMES:
            if f"{attr.name}=" in call:
                head, rest = call.split(f"{attr.name}=", 1)
                depth, end = 0, len(rest)
                for i, ch in enumerate(rest):  # the end of the old value: a top-level ',' or ')'
                    depth += ch in "[("
                    if ch in ",)]" and depth == 0:
                        end = i
                        break
                    depth -= ch in "])"
                new = f"{head}{attr.name}={value}{rest[end:]}"
            else:
                new = call[:-1] + f", {attr.name}={value})"
            out.append((value, base.replace(call, new)))
    return out
