"""Shape rules agree with torch.

Each example is a one-op spec compiled with `modelc.load_source`. When modelc
accepts it, the IR's output shape, parameter count and MACs must equal what a
torch module built independently from the same attributes gives (and the
generated module must agree too); when modelc rejects it, the error must be a
SpecError, and for attribute values in range torch must reject the combination as
well. No other exception may escape.
"""

from __future__ import annotations

import math

import modelc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from modelc import ops
from modelc.summary import summarize
from modelc.symbolic import subs
from modelc.verify import verify_module

torch = pytest.importorskip("torch")
nn = torch.nn

BATCH = 2
SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


# ---- helpers ------------------------------------------------------------------------------
def lit(v) -> str:
    """A value as spec source."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(lit(x) for x in v) + "]"
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def call(
    op: str, attrs: dict, args: tuple[str, ...] = ("x",), label: str | None = None
) -> str:
    inner = ", ".join(
        [*args, *(f"{k}={lit(v)}" for k, v in attrs.items() if v is not None)]
    )
    return (f"{label}: " if label else "") + f"{op}({inner})"


def spec(expr: str, **inputs: list) -> str:
    decls = "".join(
        f"    input {n}: [{', '.join(map(str, s))}]\n" for n, s in inputs.items()
    )
    return f"model M {{\n{decls}    output {expr}\n}}\n"


def compile_spec(text: str):
    """(class, graph) when modelc accepts the spec, None when it raises SpecError."""
    try:
        cls = modelc.load_source(text)
    except modelc.SpecError:
        return None
    return cls, cls.__modelc_graph__


def the_node(graph, op: str):
    found = [graph.node(n) for n in graph.nodes() if graph.node(n).op == op]
    assert len(found) == 1, found
    return found[0]


def predicted(graph) -> tuple[tuple[int, ...], int]:
    """The IR's model output shape at batch BATCH, and its parameter count."""
    ((_, ref),) = graph.outputs
    shape = tuple(subs(d, {"B": BATCH}) for d in graph.type_of(ref).dims)
    return shape, graph.num_params()


def run_reference(make, *shapes):
    """Build a torch module (or function) and run it; the exception when torch refuses."""
    try:
        module = make()
        with torch.no_grad():
            out = module(*(torch.randn(*s) for s in shapes))
    except (RuntimeError, ValueError, TypeError, IndexError) as exc:
        return None, None, exc
    params = (
        sum(p.numel() for p in module.parameters())
        if isinstance(module, nn.Module)
        else 0
    )
    return tuple(out.shape), params, None


def check(text: str, make, shapes, strict: bool):
    """Compile `text` and compare with the reference; (class, graph), or None if rejected."""
    compiled = compile_spec(text)
    event("accepted" if compiled else "SpecError")
    concrete = [tuple(BATCH if d == "B" else d for d in s) for s in shapes]
    if compiled is None:
        if strict:
            shape, _, exc = run_reference(make, *concrete)
            assert exc is not None, (
                f"modelc rejected what torch accepts ({shape}):\n{text}"
            )
        return None
    cls, graph = compiled
    graph.verify()
    want_shape, want_params, exc = run_reference(make, *concrete)
    assert exc is None, f"modelc accepted what torch rejects ({exc}):\n{text}"
    assert predicted(graph) == (want_shape, want_params), text
    verify_module(cls, graph)  # the generated module agrees too
    return cls, graph


def macs_at_batch_1(graph, op: str) -> int:
    """The node's MACs with the batch symbol at 1 (a concrete batch counts as given)."""
    macs = subs(the_node(graph, op).macs, {"B": 1})
    layer = next(r for r in summarize(graph)["layers"] if r["op"] == op)
    assert layer["macs"] == macs and layer["flops"] == 2 * macs
    return macs


# ---- strategies ---------------------------------------------------------------------------
def sometimes(valid, invalid):
    """Mostly a valid value; about one time in ten an out-of-range one."""
    # (5, not 0: hypothesis draws the ends of an integer range more often than the middle)
    return st.integers(0, 9).flatmap(lambda i: invalid if i == 5 else valid)


def per_dim(nd: int, values):
    """Usually an int, else a list of nd ints; now and then a list of the wrong length."""

    def pick(i: int):
        if i == 5:
            return st.lists(values, min_size=1, max_size=3)
        return st.lists(values, min_size=nd, max_size=nd) if i in (1, 3, 7) else values

    return st.integers(0, 9).flatmap(pick)


def good_lengths(nd: int, *values) -> bool:
    return all(not isinstance(v, list) or len(v) == nd for v in values)


def in_range(v, lo: int) -> bool:
    return all(x >= lo for x in (v if isinstance(v, list) else [v]))


# ---- conv ---------------------------------------------------------------------------------
@st.composite
def convs(draw):
    nd = draw(st.sampled_from([1, 2]))
    cin = draw(st.sampled_from([1, 2, 3, 4, 6, 8]))
    sizes = draw(st.lists(st.integers(1, 16), min_size=nd, max_size=nd))
    padding = per_dim(nd, sometimes(st.integers(0, 3), st.just(-1)))
    a = {
        "out_channels": draw(sometimes(st.sampled_from([1, 2, 4, 5, 8]), st.just(0))),
        "k": draw(per_dim(nd, sometimes(st.integers(1, 5), st.just(0)))),
        "s": draw(per_dim(nd, sometimes(st.integers(1, 3), st.just(0)))),
        "p": draw(
            st.integers(0, 4).flatmap(
                lambda i: st.sampled_from(["same", "valid"]) if i == 0 else padding
            )
        ),
        "d": draw(per_dim(nd, sometimes(st.sampled_from([1, 1, 2, 3]), st.just(0)))),
        "groups": draw(sometimes(st.sampled_from([1, 1, 2, 4]), st.just(0))),
        "bias": draw(st.booleans()),
    }
    return (
        nd,
        [BATCH if draw(st.booleans()) else "B", cin, *sizes],
        a,
        draw(st.booleans()),
    )


@SETTINGS
@given(convs())
def test_conv(case):
    nd, shape, a, labelled = case
    text = spec(call("conv", a, label="c" if labelled else None), x=shape)
    cin = shape[1]
    strict = (
        good_lengths(nd, a["k"], a["s"], a["p"], a["d"])
        and all(in_range(a[k], 1) for k in ("k", "s", "d"))
        and (isinstance(a["p"], str) or in_range(a["p"], 0))
        and a["out_channels"] >= 1
        and a["groups"] >= 1
    )

    def make():
        return getattr(nn, f"Conv{nd}d")(
            cin,
            a["out_channels"],
            a["k"],
            stride=a["s"],
            padding=a["p"],
            dilation=a["d"],
            groups=a["groups"],
            bias=a["bias"],
        )

    compiled = check(text, make, [shape], strict)
    if compiled is not None:
        graph = compiled[1]
        out = the_node(graph, "conv").type.subs({"B": 1}).dims
        k = a["k"] if isinstance(a["k"], list) else [a["k"]] * nd
        per_position = cin // a["groups"] * math.prod(k)
        # REFERENCE.md: MACs = C_in/groups * Kh * Kw * C_out * H_out * W_out (per image)
        assert macs_at_batch_1(graph, "conv") == per_position * math.prod(out)
        # params = C_out * (C_in/groups * Kh * Kw) + C_out (bias)
        assert (
            the_node(graph, "conv").params
            == a["out_channels"] * per_position + a["out_channels"] * a["bias"]
        )


# ---- pooling ------------------------------------------------------------------------------
@st.composite
def pools(draw):
    op = draw(st.sampled_from(["maxpool", "avgpool"]))
    nd = draw(st.sampled_from([1, 2]))
    sizes = draw(st.lists(st.integers(1, 16), min_size=nd, max_size=nd))
    a = {
        "k": draw(per_dim(nd, sometimes(st.integers(1, 5), st.just(0)))),
        "s": draw(
            st.one_of(st.none(), per_dim(nd, sometimes(st.integers(1, 4), st.just(0))))
        ),
        "p": draw(per_dim(nd, sometimes(st.integers(0, 2), st.just(-1)))),
        "ceil": draw(st.booleans()),
    }
    if op == "maxpool":
        a["d"] = draw(per_dim(nd, sometimes(st.sampled_from([1, 1, 2, 3]), st.just(0))))
    else:
        a["count_include_pad"] = draw(st.booleans())
    return op, nd, ["B", draw(st.integers(1, 4)), *sizes], a, draw(st.booleans())


@SETTINGS
@given(pools())
def test_pool(case):
    op, nd, shape, a, labelled = case
    text = spec(call(op, a, label="pool" if labelled else None), x=shape)
    strict = (
        good_lengths(nd, *(v for v in a.values() if not isinstance(v, bool)))
        and all(in_range(a[k], 1) for k in ("k", "s", "d") if a.get(k) is not None)
        and in_range(a["p"], 0)
    )

    def make():
        kw = {"stride": a["s"], "padding": a["p"], "ceil_mode": a["ceil"]}
        if op == "maxpool":
            return getattr(nn, f"MaxPool{nd}d")(a["k"], dilation=a["d"], **kw)
        return getattr(nn, f"AvgPool{nd}d")(
            a["k"], count_include_pad=a["count_include_pad"], **kw
        )

    compiled = check(text, make, [shape], strict)
    if compiled is not None:
        assert macs_at_batch_1(compiled[1], op) == 0


@SETTINGS
@given(
    st.sampled_from(["adaptive_avgpool", "adaptive_maxpool"]),
    st.sampled_from([1, 2]),
    st.data(),
)
def test_adaptive_pool(op, nd, data):
    sizes = data.draw(st.lists(st.integers(1, 12), min_size=nd, max_size=nd))
    size = data.draw(per_dim(nd, st.integers(0, 6)))
    shape = ["B", data.draw(st.integers(1, 4)), *sizes]
    text = spec(call(op, {"size": size}), x=shape)
    strict = good_lengths(nd, size) and in_range(size, 1)

    def make():
        return getattr(nn, f"Adaptive{'Avg' if 'avg' in op else 'Max'}Pool{nd}d")(size)

    check(text, make, [shape], strict)


# ---- linear, flatten, concat, batchnorm ---------------------------------------------------------
@SETTINGS
@given(
    st.lists(st.integers(1, 6), min_size=0, max_size=2),
    st.integers(1, 16),
    st.integers(0, 12),
    st.booleans(),
    st.booleans(),
)
def test_linear(middle, fin, fout, bias, labelled):
    shape = ["B", *middle, fin]
    text = spec(
        call(
            "linear",
            {"out_features": fout, "bias": bias},
            label="fc" if labelled else None,
        ),
        x=shape,
    )
    compiled = check(
        text, lambda: nn.Linear(fin, fout, bias=bias), [shape], strict=fout >= 1
    )
    if fout < 1:
        assert compiled is None
        return
    graph = compiled[1]
    assert macs_at_batch_1(graph, "linear") == math.prod(middle) * fin * fout
    assert the_node(graph, "linear").params == fin * fout + fout * bias


def test_linear_needs_rank_2():
    assert compile_spec(spec(call("linear", {"out_features": 3}), x=[4])) is None


@SETTINGS
@given(
    st.lists(st.integers(1, 5), min_size=1, max_size=4),
    st.integers(-6, 5),
    st.one_of(st.none(), st.integers(-6, 5)),
    st.booleans(),
)
def test_flatten(rest, start, end, labelled):
    shape = ["B", *rest]
    a = {"start": start, "end": end}
    text = spec(call("flatten", a, label="flat" if labelled else None), x=shape)

    class Ref(nn.Module):
        def forward(self, x):
            return torch.flatten(x, start, -1 if end is None else end)

    check(text, Ref, [shape], strict=True)


@st.composite
def concats(draw):
    rank = draw(st.integers(2, 4))
    n = draw(st.integers(1, 3))
    dim = draw(st.integers(-rank - 1, rank))
    base = draw(st.lists(st.integers(1, 5), min_size=rank - 1, max_size=rank - 1))
    axis = (
        dim % rank if -rank <= dim < rank else 0
    )  # out of range: torch and modelc refuse
    shapes = []
    for _ in range(n):
        s = ["B", *base]
        if axis:
            s[axis] = draw(st.integers(1, 5))
        if draw(st.integers(0, 9)) == 0 and rank > 2:  # sometimes a mismatch elsewhere
            s[-1] = s[-1] + 1
        if draw(st.integers(0, 19)) == 0:  # sometimes a different rank
            s = s + [1]
        shapes.append(s)
    return shapes, dim


@SETTINGS
@given(concats())
def test_concat(case):
    shapes, dim = case
    names = [f"x{i}" for i in range(len(shapes))]
    text = spec(
        call("concat", {"dim": dim}, args=tuple(names)), **dict(zip(names, shapes))
    )

    class Ref(nn.Module):
        def forward(self, *xs):
            return torch.cat(xs, dim=dim)

    check(text, Ref, shapes, strict=True)


@SETTINGS
@given(
    st.integers(1, 5),
    st.integers(1, 8),
    st.booleans(),
    st.booleans(),
    st.floats(1e-6, 1e-2),
    st.floats(0.0, 1.0),
)
def test_batchnorm(rank, channels, affine, track, eps, momentum):
    shape = ["B", channels, *[3] * (rank - 2)][:rank] if rank > 1 else ["B"]
    a = {
        "eps": eps,
        "momentum": momentum,
        "affine": affine,
        "track_running_stats": track,
    }
    text = spec(call("batchnorm", a), x=shape)
    nd = 2 if rank == 4 else 1

    def make():
        if rank not in (2, 3, 4):
            raise ValueError("modelc's batchnorm takes ranks 2 to 4")
        m = getattr(nn, f"BatchNorm{nd}d")(
            channels,
            eps=eps,
            momentum=momentum,
            affine=affine,
            track_running_stats=track,
        )
        return m.eval()

    compiled = check(text, make, [shape], strict=True)
    if compiled is not None:
        cls, graph = compiled
        assert the_node(graph, "batchnorm").params == (2 * channels if affine else 0)
        bn = next(
            m for m in cls().modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)
        )
        assert (bn.eps, bn.momentum, bn.affine, bn.track_running_stats) == (
            eps,
            momentum,
            affine,
            track,
        )


# ---- any op, any attributes: it works and agrees with torch, or it is a SpecError -----------
_VALUES = st.one_of(
    st.integers(-3, 9),
    st.floats(-2.0, 2.0, allow_nan=False).map(lambda f: round(f, 3)),
    st.booleans(),
    st.sampled_from(["same", "valid", "tanh", "none", "nearest", "reflect", ""]),
    st.lists(st.integers(-1, 5), min_size=0, max_size=4),
    st.lists(
        st.lists(st.integers(-1, 2), min_size=1, max_size=3), min_size=1, max_size=3
    ),
)


@st.composite
def any_call(draw, name: str):
    op = ops.REGISTRY[name]
    known = [n for a in op.attrs for n in a.names]
    keys = draw(st.lists(st.sampled_from([*known, "bogus"]), max_size=4, unique=True))
    attrs = {k: draw(_VALUES) for k in keys}
    for a in op.attrs:  # usually give the required ones
        if (
            a.default is ops.base.REQUIRED
            and not set(a.names) & set(attrs)
            and draw(st.integers(0, 5))
        ):
            attrs[a.name] = draw(st.integers(1, 6))
    n_inputs = (
        op.inputs if op.inputs is not None else draw(st.integers(op.min_inputs, 3))
    )
    shape = ["B", *draw(st.lists(st.integers(1, 6), min_size=0, max_size=3))]
    return attrs, n_inputs, shape


@pytest.mark.parametrize(
    "name", sorted(n for n, op in ops.REGISTRY.items() if not op.internal)
)
@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_attributes_work_or_raise_spec_error(name, data):
    attrs, n_inputs, shape = data.draw(any_call(name))
    names = tuple(f"x{i}" for i in range(n_inputs))
    text = spec(call(name, attrs, args=names), **{n: shape for n in names})
    compiled = compile_spec(text)  # anything but SpecError fails the test
    event("accepted" if compiled else "SpecError")
    if compiled is None:
        return
    cls, graph = compiled
    graph.verify()
    # the generated module's parameters and output shapes match the IR's
    result = verify_module(cls, graph)
    if result["nonfinite"]:
        # Attribute values can make the numbers non-finite (local_response_norm with a negative
        # alpha): a warning, not a compiler bug; shapes and parameters are still checked.
        event("non-finite output")
    assert result["params"] == predicted(graph)[1]
