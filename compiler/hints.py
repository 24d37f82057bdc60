"""Hints for mistakes that PyTorch (and Keras) habits lead to.

A "did you mean" must name something of the same kind that does what the
user wanted: `mul` is not `matmul`, `swish` is not `hardswish`, and a
compile-time function such as `min` is no layer. The functions here are
called by the elaborator and the attribute binder when they report an error;
they only build text.
"""

from __future__ import annotations

import difflib
import re
from typing import Any

__all__ = ["add_mismatch_hint", "attribute_hint", "callee_hint", "positional_hint"]

# ---- unknown ops ------------------------------------------------------------------------
_NO_MATH = "modelc has no element-wise {name}; the math it has: exp, log, sqrt, rsqrt, sin, cos, abs, clamp"

# Names from torch, torch.nn and Keras (lower case, `2d` and `_` dropped) -> a hint.
_FOREIGN: dict[str, str] = {
    "multiply": "did you mean 'mul'? (also written a * b)",
    "subtract": "did you mean 'sub'? (also written a - b)",
    "divide": "did you mean 'div'? (also written a / b)",
    "truedivide": "did you mean 'div'? (also written a / b)",
    "prod": "modelc has no product over a dimension; a * b multiplies tensors element-wise",
    "swish": "did you mean 'silu'? (x * sigmoid(x); hardswish is a different, piecewise-linear function)",
    "square": "write x ** 2",
    "reciprocal": "write 1 / x",
    "clip": "did you mean 'clamp'?",
    "maximum": "write where(a > b, a, b)",
    "minimum": "write where(a < b, a, b)",
    "argmin": "modelc has no argmin: argmax of the negation, (-x) -> argmax(dim)",
    "cat": "did you mean 'concat'?",
    "stack": "modelc has no stack: unsqueeze(dim) each tensor, then concat along that dim",
    "squeeze": "modelc has no squeeze: use reshape([...]) or flatten",
    "interpolate": "did you mean 'upsample'?",
    "bmm": "did you mean 'matmul'? (also written a @ b)",
    "dense": "did you mean 'linear'?",
    "globalaveragepooling": "use adaptive_avgpool(1) -> flatten, or mean([2, 3])",
    "globalavgpool": "use adaptive_avgpool(1) -> flatten, or mean([2, 3])",
    "maxpooling": "did you mean 'maxpool'?",
    "averagepooling": "did you mean 'avgpool'?",
    "batchnormalization": "did you mean 'batchnorm'?",
    "layernormalization": "did you mean 'layer_norm'?",
    "zeropad": "did you mean 'pad'?",
    "constantpad": "did you mean 'pad'?",
    "reflectionpad": "use pad(p, mode=\"reflect\")",
    "replicationpad": "use pad(p, mode=\"replicate\")",
    "sequential": "chain steps with ->; a labelled ( ... ) is an nn.Sequential (see 'Sequences' "
                  "in docs/language.md)",
    "contiguous": "modelc tracks memory layout itself: reshape copies when it must",
}
for _name in ("tan", "selu", "celu", "prelu", "hardtanh", "softsign", "logsigmoid", "tanhshrink", "erf"):
    _FOREIGN[_name] = _NO_MATH.format(name=_name)


def _fold(name: str) -> str:
    """`BatchNorm2d` -> `batchnorm`, `layer_norm` -> `layernorm`: how torch names match ours."""
    return re.sub(r"[123]d$", "", name.lower()).replace("_", "")


def callee_hint(call, blocks, body: tuple[Any, int] | None) -> str | None:
    """The hint for an unknown op or block `call.func`. Only ops and blocks are suggested
    for a step; a compile-time function (`min`, `channels`) only where a value is expected."""
    from modelc import ops
    from modelc.builtins import BUILTINS

    name = call.func
    layers = [n for n, d in ops.REGISTRY.items() if not d.internal] + sorted(blocks)
    same = [n for n in layers if _fold(n) == _fold(name)]
    if same:
        return f"did you mean '{same[0]}'?"
    if _fold(name) in _FOREIGN:
        return _FOREIGN[_fold(name)]
    step = _is_step(call, body)
    return suggest_function(name, layers if step else layers + sorted(BUILTINS))


def suggest_function(name: str, candidates) -> str | None:
    """`did you mean`, for names of functions: a candidate that differs from the name only by
    a prefix (`hardswish` for `swish`, `matmul` for `mul`, `max` for `argmax`) is another
    function, not a typo."""
    close = [c for c in difflib.get_close_matches(name, sorted(set(candidates)), n=5, cutoff=0.6)
             if not _prefixed(name, c)]  # fmt: skip
    return f"did you mean '{close[0]}'?" if close else None


def _prefixed(a: str, b: str) -> bool:
    short, long = sorted((a.lower(), b.lower()), key=len)
    return len(long) - len(short) >= 2 and long.endswith(short)


def _is_step(call, body) -> bool:
    """Whether `call` is a step of a chain (`x -> name` or `x -> name(...)`), as opposed to a
    call where a value is expected (`min(a, b)`, an attribute)."""
    from modelc import syntax as S

    if call.span == call.func_span:  # a bare step: `x -> relu`
        return True
    if body is None:
        return False
    statements, i = body
    stack: list[Any] = [statements[i]]
    while stack:
        node = stack.pop()
        if isinstance(node, (list, tuple)):
            stack.extend(node)
            continue
        if isinstance(node, (S.Chain, S.Seq, S.For)) and any(s is call for s in node.steps):
            return True
        if isinstance(node, (S.LabelledStep, S.Repeat)) and node.step is call:
            return True
        if isinstance(node, S.StepIf) and (node.then is call or node.else_ is call):
            return True
        if hasattr(node, "__dataclass_fields__"):
            stack.extend(getattr(node, f) for f in node.__dataclass_fields__ if not f.endswith("span"))
    return False


# ---- attributes ---------------------------------------------------------------------------
# torch's constructor arguments for ops whose input size modelc infers: the positional order,
# how many torch requires, and which of them modelc takes from the input tensor.
_TORCH_SIGNATURES: dict[str, tuple[tuple[str, ...], int]] = {
    "linear": (("in_features", "out_features", "bias"), 2),
    "conv": (("in_channels", "out_channels", "kernel_size", "stride", "padding", "dilation",
              "groups", "bias"), 3),  # fmt: skip
    "conv_transpose": (("in_channels", "out_channels", "kernel_size", "stride", "padding",
                        "output_padding", "groups", "bias"), 3),  # fmt: skip
    "batchnorm": (("num_features", "eps", "momentum", "affine", "track_running_stats"), 1),
    "instance_norm": (("num_features", "eps", "momentum", "affine", "track_running_stats"), 1),
    "layer_norm": (("normalized_shape", "eps", "elementwise_affine"), 1),
    "group_norm": (("num_groups", "num_channels", "eps", "affine"), 2),
    "lstm": (("input_size", "hidden_size", "num_layers"), 2),
    "gru": (("input_size", "hidden_size", "num_layers"), 2),
    "rnn": (("input_size", "hidden_size", "num_layers"), 2),
    "multihead_attention": (("embed_dim", "num_heads"), 2),
    "self_attention": (("embed_dim", "num_heads"), 2),
    "cross_attention": (("embed_dim", "num_heads"), 2),
}
_INFERRED = frozenset({"in_features", "in_channels", "num_features", "normalized_shape",
                       "num_channels", "input_size", "embed_dim"})  # fmt: skip


def attribute_hint(op, name: str) -> str:
    """The hint for a keyword that `op` does not have."""
    if name in _INFERRED and name in _TORCH_SIGNATURES.get(op.name, ((),))[0]:
        return f"{op.name} infers {name} from its input tensor: leave it out"
    known = [n for a in op.attrs for n in a.names]
    return suggest_function(name, known) or (
        f"{op.name} takes: {', '.join(a.name for a in op.attrs)}" if op.attrs
        else f"{op.name} takes no attributes")  # fmt: skip


def positional_hint(op, args: list[tuple[Any, Any]], kwargs: list[tuple[str, Any, Any]]):
    """(span, hint) for `op` given more positional attributes than it takes. A torch-style
    call (`linear(32 * 8 * 8, 128)`, `conv(3, 64, 3)`) gets the modelc call without the
    input size; another gets its surplus named, in the order of the op's attributes."""
    positional = [a for a in op.attrs if a.positional]
    span = args[len(positional)][1]
    named = _named_call(op, args)
    torch = _torch_call(op, args)
    if torch is not None and (named is None or _prefers_torch(op, args)):
        dropped, kept = torch
        names = " and ".join(_TORCH_SIGNATURES[op.name][0][i] for i in dropped)
        return args[dropped[0]][1], (f"{op.name} infers {names} from its input tensor: "
                                     f"write {_call_text(op.name, kept, kwargs)}")  # fmt: skip
    if not op.attrs:
        return span, f"{op.name} takes no attributes"
    if named is None:
        return span, f"{op.name} takes: {', '.join(a.name for a in op.attrs)}"
    hint = f"name the others, e.g. {_call_text(op.name, named, kwargs)}"
    if torch is not None:  # conv(16, 3, 2): torch's Conv2d(in, out, k) is a reading too
        hint += f"; {op.name} infers {_TORCH_SIGNATURES[op.name][0][torch[0][0]]} from its input tensor"
    return span, hint


def _named_call(op, args):
    """[(name or None, value, span)]: the surplus positionals named after the op's other
    attributes, in order; None when they do not fit."""
    from modelc.ops.base import _BAD, _coerce

    positional = [a for a in op.attrs if a.positional]
    others = [a for a in op.attrs if not a.positional]
    surplus = args[len(positional) :]
    if len(surplus) > len(others):
        return None
    if any(_coerce(a, v) is _BAD for a, (v, _) in zip(others, surplus)):
        return None
    kept = [(None, v, s) for v, s in args[: len(positional)]]
    return kept + [(a.name, v, s) for a, (v, s) in zip(others, surplus)]


def _prefers_torch(op, args) -> bool:
    """conv(16, 3, 2) reads as modelc's conv(16, k=3, s=2) as well as torch's Conv2d(16, 3, 2):
    torch's order wins when modelc's kernel size would be implausibly large."""
    if op.name not in ("conv", "conv_transpose"):
        return True
    second = args[1][0]
    return isinstance(second, int) and second > 11


def _torch_call(op, args):
    """(indices of the input sizes, [(name or None, value, span)]) when `args` read as torch's
    constructor arguments for `op`, else None."""
    from modelc.ops.base import _BAD, _coerce

    sig = _TORCH_SIGNATURES.get(op.name)
    if sig is None or not sig[1] <= len(args) <= len(sig[0]):
        return None
    by_name = {n: a for a in op.attrs for n in a.names}
    positional = [a for a in op.attrs if a.positional]
    dropped, kept = [], []
    for i, (value, span) in enumerate(args):
        torch_name = sig[0][i]
        if torch_name in _INFERRED:
            if not isinstance(value, int) or isinstance(value, bool):
                return None
            dropped.append(i)
            continue
        attr = by_name.get(torch_name)
        if attr is None or _coerce(attr, value) is _BAD:
            return None
        kept.append((attr, value, span))
    if not dropped:
        return None
    out, leading = [], True
    for j, (attr, value, span) in enumerate(kept):
        leading = leading and j < len(positional) and positional[j] is attr
        out.append((None if leading else attr.name, value, span))
    return dropped, out


def _call_text(op: str, items, kwargs) -> str:
    """`op(a, b=c, ...)` from (name or None, value, span) items and the user's keywords, each
    as written when it fits on its line."""
    parts = [_text(v, s) if n is None else f"{n}={_text(v, s)}" for n, v, s in items]
    parts += [_text(None, s) for _, _, s in kwargs]
    return f"{op}({', '.join(parts)})" if parts else op


def _text(value, span) -> str:
    if span is not None and span.line == span.end_line and span.line >= span.source.shown_from:
        line = span.source.line(span.line)
        written = line[span.col - 1 : span.end_col - 1]
        if written and len(written) <= 40:
            return written
    from modelc.ops.base import describe

    return describe(value)


# ---- shapes -----------------------------------------------------------------------------
def add_mismatch_hint(a: tuple, b: tuple) -> str:
    """Why shapes `a` and `b` do not broadcast under `+`, and the usual fix."""
    n = max(len(a), len(b))
    pa, pb = (1,) * (n - len(a)) + tuple(a), (1,) * (n - len(b)) + tuple(b)
    bad = [i for i, (x, y) in enumerate(zip(pa, pb)) if x != y and x != 1 and y != 1]
    if not bad:
        return "+ broadcasts sizes as torch does: equal, or 1"
    i = bad[0]
    x, y = pa[i], pb[i]
    text = f"dimension {i} differs ({x} vs {y}); + broadcasts only sizes that are equal or 1"
    if len(a) != len(b):
        return text + " (shapes of different ranks are aligned at their last dimension)"
    if not (isinstance(x, int) and isinstance(y, int)):
        return text + "; symbolic sizes match only themselves"
    if (n == 2 and i == 1) or (n == 3 and i == 2):
        src, size = (a, y) if x < y else (b, x)
        return text + f": project the {_shape(src)} operand, e.g. linear({size})"
    if n >= 4 and i == 1:
        return text + ": " + _projection(a, b)
    if n >= 4:
        return text + ": check the padding and stride of the layers on each side"
    return text


def _projection(a: tuple, b: tuple) -> str:
    """A 1x1 convolution mapping one operand onto the other (a ResNet shortcut)."""
    # Project the operand with the larger feature map (the unstrided one), else the second.
    sa, sb = a[2:], b[2:]
    src, dst = (a, b) if _larger(sa, sb) else (b, a)
    stride = _stride(src[2:], dst[2:])
    s = "" if stride in (None, 1) else f", s={stride}"
    spatial = "" if src[2:] == dst[2:] else " (and its spatial size)"
    return (f"project the {_shape(src)} operand to {dst[1]} channels{spatial} with a 1x1 "
            f"convolution, e.g. conv({dst[1]}, k=1{s}), as a ResNet shortcut does")  # fmt: skip


def _larger(sa: tuple, sb: tuple) -> bool:
    return all(isinstance(x, int) and isinstance(y, int) and x > y for x, y in zip(sa, sb)) and bool(sa)


def _stride(src: tuple, dst: tuple) -> int | None:
    if not all(isinstance(x, int) and isinstance(y, int) for x, y in zip(src, dst)):
        return None
    ratios = {-(-x // y) for x, y in zip(src, dst) if y}
    return ratios.pop() if len(ratios) == 1 else None


def _shape(dims: tuple) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"
