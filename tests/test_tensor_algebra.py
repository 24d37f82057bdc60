"""Tensor algebra, math functions, reductions and the layers of current models
(compiler/ops/math.py, reduce.py; silu, mish, softplus, glu; rms_norm, layer_norm over a
chosen dimension, stochastic_depth, rotary).

Each case is checked three ways against an oracle written here with torch directly: the
generated module's output, the reference interpreter's (modelc.interpret), and the IR's
shape and element type against what torch really returns. Random inputs include negative
values and integers, so a wrong sign, a dropped operand or a wrong promotion shows.
"""

from __future__ import annotations

import math

import modelc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelc import verify
from modelc.diagnostics import SpecError
from modelc.interpret import run_graph

torch = pytest.importorskip("torch")
F = torch.nn.functional

INPUTS = "input x: [B, 4, 6]\n    input y: [B, 4, 6]\n    input c: [B, 4, 1]\n    input i: int64[B, 4, 6]\n    input b: bool[B, 4, 6]"


def data(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(3, 4, 6, generator=g) * 2,
        "y": torch.randn(3, 4, 6, generator=g) * 2,
        "c": torch.randn(3, 4, 1, generator=g),
        "i": torch.randint(-5, 6, (3, 4, 6), generator=g),
        "b": torch.rand(3, 4, 6, generator=g) > 0.5,
    }


def run(expr: str, seed: int = 0):
    """(module output, interpreter output, IR type) of `output <expr>` over INPUTS."""
    text = f"model M {{\n    {INPUTS}\n    output {expr}\n}}\n"
    cls = modelc.load_source(text, "t.model")
    graph = cls.__modelc_graph__
    d = data(seed)
    args = [d[graph.node(n).local] for n in graph.inputs]
    with torch.no_grad():
        got = cls()(*args)
    interpreted = run_graph(graph, {}, args)[0]
    return got, interpreted, graph.type_of(graph.outputs[0][1]), cls.__modelc_source__


def same(got, want) -> None:
    assert got.dtype == want.dtype, (got.dtype, want.dtype)
    assert got.shape == want.shape, (got.shape, want.shape)
    if want.dtype.is_floating_point:
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5, equal_nan=True)
    else:
        assert torch.equal(got, want)


CASES = [
    # tensors with tensors, broadcasting as torch does
    ("x * y", lambda d: d["x"] * d["y"]),
    ("x * c", lambda d: d["x"] * d["c"]),
    ("x - y", lambda d: d["x"] - d["y"]),
    ("c - x", lambda d: d["c"] - d["x"]),
    ("x / y", lambda d: d["x"] / d["y"]),
    ("i / i", lambda d: d["i"] / d["i"]),  # integers: true division, float32 (nan at 0/0)
    ("abs(x) ** y", lambda d: d["x"].abs() ** d["y"]),
    ("i * i - i", lambda d: d["i"] * d["i"] - d["i"]),  # int64 stays int64
    ("i * x", lambda d: d["i"] * d["x"]),  # int64 with float32 is float32
    ("b * b", lambda d: d["b"] * d["b"]),  # bool with bool stays bool
    ("x < y", lambda d: d["x"] < d["y"]),
    ("i == i * 1", lambda d: d["i"] == d["i"]),
    ("x != c", lambda d: d["x"] != d["c"]),
    # tensors with constants
    ("x + 1", lambda d: d["x"] + 1),
    ("1 - x", lambda d: 1 - d["x"]),
    ("2 / x", lambda d: 2 / d["x"]),
    ("x ** 2", lambda d: d["x"] ** 2),
    ("2 ** x", lambda d: 2**d["x"]),
    ("x - 0.5", lambda d: d["x"] - 0.5),
    ("i + 1", lambda d: d["i"] + 1),  # int64
    ("i + 0.5", lambda d: d["i"] + 0.5),  # float32
    ("10 - i", lambda d: 10 - d["i"]),
    ("i / 2", lambda d: d["i"] / 2),  # scale: float32
    ("i ** 2", lambda d: d["i"] ** 2),
    ("b + 1", lambda d: d["b"] + 1),  # int64
    ("x > 0", lambda d: d["x"] > 0),
    ("0 < x", lambda d: d["x"] > 0),
    ("i >= 2", lambda d: d["i"] >= 2),
    ("-x", lambda d: -d["x"]),
    ("-i", lambda d: -d["i"]),
    ("where(x > 0, x, y)", lambda d: torch.where(d["x"] > 0, d["x"], d["y"])),
    ("where(b, x, 0.0)", lambda d: torch.where(d["b"], d["x"], 0.0)),
    ("where(b, i, 7)", lambda d: torch.where(d["b"], d["i"], 7)),
    ("where(b, x, c)", lambda d: torch.where(d["b"], d["x"], d["c"])),
    # math
    ("exp(x)", lambda d: torch.exp(d["x"])),
    ("log(abs(x))", lambda d: torch.log(d["x"].abs())),
    ("log(x)", lambda d: torch.log(d["x"])),  # nan below 0, as torch
    ("sqrt(abs(x))", lambda d: torch.sqrt(d["x"].abs())),
    ("rsqrt(abs(x) + 1)", lambda d: torch.rsqrt(d["x"].abs() + 1)),
    ("sin(x)", lambda d: torch.sin(d["x"])),
    ("cos(x)", lambda d: torch.cos(d["x"])),
    ("exp(i)", lambda d: torch.exp(d["i"])),  # integers become float32
    ("abs(i)", lambda d: torch.abs(d["i"])),  # and stay integers for abs
    ("x -> clamp(-1, 1)", lambda d: d["x"].clamp(-1, 1)),
    ("x -> clamp(min=0.5)", lambda d: d["x"].clamp(min=0.5)),
    ("i -> clamp(max=2)", lambda d: d["i"].clamp(max=2)),
    ("i -> clamp(0.5, 2.5)", lambda d: d["i"].clamp(0.5, 2.5)),
    # activations
    ("x -> silu", lambda d: F.silu(d["x"])),
    ("x -> mish", lambda d: F.mish(d["x"])),
    ("x -> softplus", lambda d: F.softplus(d["x"])),
    ("x * 10 -> softplus(beta=2, threshold=5)", lambda d: F.softplus(d["x"] * 10, beta=2, threshold=5)),
    ("x -> glu", lambda d: F.glu(d["x"])),
    ("x -> glu(1)", lambda d: F.glu(d["x"], 1)),
    # reductions
    ("x -> mean(1)", lambda d: d["x"].mean(1)),
    ("x -> mean([1, 2], keepdim=true)", lambda d: d["x"].mean((1, 2), keepdim=True)),
    ("x -> sum([-1, 1])", lambda d: d["x"].sum((1, 2))),
    ("i -> sum(2)", lambda d: d["i"].sum(2)),
    ("b -> sum(1)", lambda d: d["b"].sum(1)),
    ("x -> amax(-1, keepdim=true)", lambda d: d["x"].amax(-1, keepdim=True)),
    ("i -> amax([0, 2])", lambda d: d["i"].amax((0, 2))),
    ("x -> var(-1)", lambda d: d["x"].var(-1)),
    ("x -> var([1, 2], keepdim=true, correction=0)", lambda d: d["x"].var((1, 2), keepdim=True, correction=0)),
    # what the new forms are for
    ("x * rsqrt(((x ** 2) -> mean(-1, keepdim=true)) + 1e-6)",  # RMSNorm without its weight
     lambda d: d["x"] * torch.rsqrt(d["x"].pow(2).mean(-1, keepdim=True) + 1e-6)),
    ("(x -> silu) * y", lambda d: F.silu(d["x"]) * d["y"]),  # SwiGLU's gate
    ("x * (x -> mean(2, keepdim=true) -> sigmoid)",  # squeeze-excitation's rescaling
     lambda d: d["x"] * torch.sigmoid(d["x"].mean(2, keepdim=True))),
    ("(x - (x -> mean(-1, keepdim=true))) / sqrt((x -> var(-1, keepdim=true, correction=0)) + 1e-5)",
     lambda d: F.layer_norm(d["x"], (6,), eps=1e-5)),
]


@pytest.mark.parametrize("expr, oracle", CASES, ids=[c[0] for c in CASES])
def test_module_and_interpreter_equal_torch(expr, oracle):
    got, interpreted, ir_type, _ = run(expr)
    want = oracle(data())
    same(got, want)
    same(interpreted, want)
    assert ir_type.dtype == str(want.dtype).removeprefix("torch.")
    assert [d if isinstance(d, int) else 3 for d in ir_type.dims] == list(want.shape)


@pytest.mark.parametrize("expr, code", [
    ("x * y", "x * y"), ("x + 1", "x + 1.0"), ("1 - x", "1.0 - x"), ("x ** 2", "x ** 2.0"),
    ("i + 1", "i + 1"), ("0 < x", "x > 0"), ("-x", "-x"), ("where(b, x, 0)", "torch.where(b, x, 0.0)"),
    ("x -> mean([2, 1])", "x.mean((1, 2))"), ("x -> var(-1, correction=0)", "x.var(2, correction=0)"),
])  # fmt: skip
def test_emitted_code_reads_as_torch(expr, code):
    *_, source = run(expr)
    assert f" = {code}  #" in source, source


@pytest.mark.parametrize("expr, code, message", [
    ("b - b", "E0506", "'-' of bool tensors"),
    ("b - 1", "E0506", "'-' with a bool tensor"),
    ("-b", "E0506", "'-' of a bool tensor"),
    ("i ** -1", "E0404", "negative integer powers"),
    ("abs(b)", "E0506", "abs of a bool tensor"),
    ("where(x, x, y)", "E0506", "where needs a bool condition"),
    ("where(b, x)", "E0406", "where takes cond, a and b"),
    ("c -> glu(2)", "E0404", "and 1 is odd"),
    ("x -> clamp(2, 1)", "E0404", "min 2 is above max 1"),
    ("x -> clamp", "E0403", "clamp needs min, max or both"),
    ("i -> mean(1)", "E0506", "mean needs floating-point input"),
    ("x -> mean([1, -2])", "E0404", "dimension listed twice"),
    ("x < y < c", "E0506", "chained comparison of tensors"),
    ("x // 2", "E0506", "cannot apply '//'"),
    ("x < \"a\"", "E0506", "cannot compare"),
])  # fmt: skip
def test_what_torch_refuses_is_refused_here(expr, code, message):
    with pytest.raises(SpecError) as info:
        modelc.compile_source(f"model M {{\n    {INPUTS}\n    output {expr}\n}}\n", "t.model")
    d = info.value.diagnostics[0]
    assert d.code == code and message in d.message, d.render()


def test_abs_is_still_a_compile_time_function_of_numbers():
    text = "model M {\n    input x: [B, 4]\n    output x -> linear(abs(-3) + 1)\n}\n"
    assert "nn.Linear(4, 4)" in modelc.compile_source(text, "t.model")


def test_activation_modules_in_a_numbered_sequence_equal_torchs():
    text = ("model M {\n    input x: [B, 8]\n"
            "    output x -> layers: [silu, mish, softplus(beta=2), glu] -> act: silu\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    source = cls.__modelc_source__
    for ctor in ("nn.SiLU()", "nn.Mish()", "nn.Softplus(beta=2.0)", "nn.GLU()"):
        assert ctor in source
    x = torch.randn(5, 8)
    with torch.no_grad():
        want = F.silu(F.glu(F.softplus(F.mish(F.silu(x)), beta=2)))
        same(cls()(x), want)
    assert dict(cls().state_dict()) == {}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 3), min_size=1, max_size=3), st.lists(st.integers(1, 3), min_size=1, max_size=3),
       st.sampled_from(["*", "-", "/", "**", "<", "=="]))
def test_broadcast_shapes_follow_torch(a, b, op):
    """Shapes that broadcast compile to torch's result shape; those that do not are E0301."""
    text = (f"model M {{\n    input a: [{', '.join(map(str, a))}]\n"
            f"    input b: [{', '.join(map(str, b))}]\n    output a {op} b\n}}\n")
    ta, tb = torch.rand(a) + 0.5, torch.rand(b) + 0.5
    try:
        want = eval(f"ta {op} tb")  # noqa: S307 - the test's own oracle, on its own tensors
    except RuntimeError:
        with pytest.raises(SpecError) as info:
            modelc.compile_source(text, "t.model")
        assert info.value.diagnostics[0].code == "E0301"
        return
    cls = modelc.load_source(text, "t.model")
    with torch.no_grad():
        same(cls()(ta, tb), want)
    verify.verify_module(cls, cls.__modelc_graph__)


def test_softplus_beta_zero_is_refused():
    with pytest.raises(SpecError, match="beta must not be 0"):
        modelc.compile_source("model M { input x: [B, 4]  output x -> softplus(beta=0) }", "t.model")


def test_math_constants_are_exact():
    got, _, _, _ = run("exp(x * 0) * 0 + exp(x - x)")
    assert torch.equal(got, torch.ones(3, 4, 6))
    got, _, _, _ = run("cos(x * 0) - 1")
    assert torch.equal(got, torch.zeros(3, 4, 6))
    assert math.isclose(float(run("sin(x * 0 + 1.5707963267948966)")[0][0, 0, 0]), 1.0, rel_tol=1e-6)


@pytest.mark.parametrize("interleaved", [False, True])
def test_rotary_turns_each_pair_by_its_angle(interleaved):
    """Against a loop over positions and pairs, written from the definition."""
    flag = "true" if interleaved else "false"
    text = f"model M {{\n    input q: [B, H, T, 8]\n    output q -> rotary(theta=100.0, interleaved={flag})\n}}\n"
    cls = modelc.load_source(text, "t.model")
    q = torch.randn(2, 3, 5, 8)
    with torch.no_grad():
        got = cls()(q)
    want = torch.empty_like(q)
    for t in range(5):
        for i in range(4):
            a, b = (2 * i, 2 * i + 1) if interleaved else (i, i + 4)
            angle = t * 100.0 ** (-2 * i / 8)
            c, s = math.cos(angle), math.sin(angle)
            want[..., t, a] = q[..., t, a] * c - q[..., t, b] * s
            want[..., t, b] = q[..., t, a] * s + q[..., t, b] * c
    same(got, want)
    same(run_graph(cls.__modelc_graph__, {}, [q])[0], want)
    assert "rt.rotary(q, theta=100.0" in cls.__modelc_source__


def test_rotary_needs_pairs():
    with pytest.raises(SpecError, match="d = 7 is odd"):
        modelc.compile_source("model M { input q: [B, T, 7]  output q -> rotary }", "t.model")


# ---- norms and drop path of current models --------------------------------------------------
def test_rms_norm_and_channels_first_layer_norm_equal_torch():
    text = ("model M {\n    input t: [B, T, 32]\n    input x: [B, 16, 5, 6]\n"
            "    output t -> rms: rms_norm(eps=1e-5), x -> ln: layer_norm(dim=1, eps=1e-6)\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    model = cls().eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape))
    rms = torch.nn.RMSNorm(32, eps=1e-5)
    rms.load_state_dict({"weight": model.state_dict()["rms.weight"]})
    ln = torchvision_layer_norm_2d(16, model.state_dict())
    t, x = torch.randn(2, 7, 32), torch.randn(2, 16, 5, 6)
    with torch.no_grad():
        got_t, got_x = model(t, x)
        same(got_t, rms(t))
        same(got_x, ln(x))
        ref_t, ref_x = run_graph(cls.__modelc_graph__, model.state_dict(), [t, x])
    same(ref_t, rms(t))
    same(ref_x, ln(x))
    assert sorted(model.state_dict()) == ["ln.bias", "ln.weight", "rms.weight"]


def torchvision_layer_norm_2d(c: int, state: dict):
    """torchvision's LayerNorm2d written out: permute to channels-last, nn.LayerNorm, back."""
    norm = torch.nn.LayerNorm(c, eps=1e-6)
    norm.load_state_dict({"weight": state["ln.weight"], "bias": state["ln.bias"]})
    return lambda x: norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def test_stochastic_depth_is_torchvisions_in_training_and_gone_at_o1():
    ops_ = pytest.importorskip("torchvision.ops")
    text = "model M {\n    input x: [B, 8, 4, 4]\n    output x + (x -> sd: stochastic_depth(0.3))\n}\n"
    model = modelc.load_source(text, "t.model")()
    x = torch.randn(64, 8, 4, 4)
    model.train()
    torch.manual_seed(3)
    got = model(x)
    torch.manual_seed(3)
    same(got, x + ops_.StochasticDepth(0.3, "row").train()(x))
    dropped = (got == x).flatten(1).all(1)  # the samples whose branch was dropped
    assert 0 < int(dropped.sum()) < 64
    model.eval()
    same(model(x), 2 * x)
    assert "StochasticDepth" not in modelc.compile_source(text, "t.model", optimize=1)


# ---- tied and transposed weights ---------------------------------------------------------------
TIED = """model M {{
    input ids: int64[B, T]
    x = ids -> body: (wte: embedding(50, 16) -> proj: linear(16, transposed=true))
    output x -> lm_head: linear({out}, bias=false, tie="{owner}")
}}
"""


def test_a_tied_linear_shares_one_parameter_under_two_keys():
    cls = modelc.load_source(TIED.format(out=50, owner="body.wte"), "t.model")
    model = cls()
    assert model.lm_head.weight is model.body.wte.weight
    assert sorted(model.state_dict()) == ["body.proj.bias", "body.proj.weight", "body.wte.weight", "lm_head.weight"]
    assert model.body.proj.weight.shape == (16, 16) and cls.NUM_PARAMETERS == 50 * 16 + 16 * 16 + 16
    assert sum(p.numel() for p in model.parameters()) == cls.NUM_PARAMETERS
    ids = torch.randint(0, 50, (2, 5))
    with torch.no_grad():
        e = model.body.wte(ids)
        want = (e @ model.body.proj.weight + model.body.proj.bias) @ model.body.wte.weight.T
        same(model(ids), want)
        same(run_graph(cls.__modelc_graph__, model.state_dict(), [ids])[0], want)
    verify.verify_module(cls, cls.__modelc_graph__)


@pytest.mark.parametrize("out, owner, message", [
    (50, "body.wtf", 'tie="body.wtf": no layer of M has that name'),
    (50, "body.proj", "its weight is [16, 16], and this layer's would be [50, 16]"),
    (40, "body.wte", "its weight is [50, 16], and this layer's would be [40, 16]"),
    (50, "lm_head", "a linear has no weight of its own"),
])  # fmt: skip
def test_ties_that_cannot_share_are_refused(out, owner, message):
    with pytest.raises(SpecError) as info:
        modelc.compile_source(TIED.format(out=out, owner=owner), "t.model")
    d = info.value.diagnostics[0]
    assert d.code == "E0404" and message in d.message and d.span.line == 4, d.render()


def test_the_optimizer_leaves_shared_and_transposed_weights_alone():
    text = ("model M {\n    input x: [B, 16]\n    y = x -> fc: linear(16, transposed=true) -> bn: batchnorm\n"
            "    output y -> head: linear(16, tie=\"fc\")\n}\n")  # fmt: skip
    base = modelc.load_source(text, "t.model")()
    opt = modelc.load_source(text, "t.model", optimize=1)()
    assert "bn" in dict(opt.named_children())  # not folded into the transposed fc
    opt.load_state_dict(base.state_dict())
    x = torch.randn(4, 16)
    with torch.no_grad():
        same(opt.eval()(x), base.eval()(x))


# ---- routing --------------------------------------------------------------------------------
def test_topk_argmax_and_one_hot_equal_torch():
    text = ("model M {\n    input x: [B, 6, 8]\n    input ids: int64[B, 6]\n"
            "    v, i = x -> topk(3)\n    w, j = x -> topk(2, dim=1)\n"
            "    output v, i, w, j, x -> argmax(-1), x -> argmax(1, keepdim=true), one_hot(ids, 10), one_hot(i, 8)\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    graph = cls.__modelc_graph__
    x, ids = torch.randn(2, 6, 8), torch.randint(0, 10, (2, 6))
    top, top1 = torch.topk(x, 3), torch.topk(x, 2, dim=1)
    want = [top.values, top.indices, top1.values, top1.indices, x.argmax(-1), x.argmax(1, keepdim=True),
            F.one_hot(ids, 10), F.one_hot(top.indices, 8)]  # fmt: skip
    with torch.no_grad():
        got = cls()(x, ids)
    for g, r, w in zip(got, run_graph(graph, {}, [x, ids]), want):
        same(g, w)
        same(r, w)
    assert [graph.type_of(ref).dtype for _, ref in graph.outputs] == ["float32", "int64", "float32", "int64",
                                                                      "int64", "int64", "int64", "int64"]


@pytest.mark.parametrize("expr, message", [
    ("x -> topk(9)", "k = 9 is more than the 8 entries"),
    ("b -> topk(2)", "topk of a bool tensor"),
    ("one_hot(x, 4)", "one_hot needs int64 ids"),
])  # fmt: skip
def test_routing_refusals(expr, message):
    with pytest.raises(SpecError, match=message):
        modelc.compile_source(f"model M {{\n    input x: [B, 4, 8]\n    input b: bool[B, 8]\n    output {expr}\n}}\n",
                              "t.model")


def test_a_dense_top_2_mixture_of_experts_equals_the_sparse_one():
    """What specs/mixtral.model writes, on its own: one_hot(topk) weights over every expert's
    output equal picking the two experts per token and adding their weighted outputs."""
    text = """block Experts(hidden: int) {
    input x: [B, T, D]
    input weight: [B, T, E]
    w1 = w1: parameter([E, hidden, D])
    w2 = w2: parameter([E, D, hidden])
    y = relu(unsqueeze(x, 1) @ transpose(w1, -2, -1)) @ transpose(w2, -2, -1)
    output (y * (weight -> permute([0, 2, 1]) -> unsqueeze(-1))) -> sum(1)
}
model M {
    input x: [B, T, 8]
    weights, chosen = x -> gate: linear(4, bias=false) -> softmax -> topk(2)
    dense = one_hot(chosen, 4) * (weights -> unsqueeze(-1)) -> sum(2)
    output experts: Experts(x, dense, 16)
}
"""
    model = modelc.load_source(text, "moe.model")()
    x = torch.randn(3, 5, 8)
    with torch.no_grad():
        got = model(x)
        probs = torch.softmax(model.gate(x), -1)
        w, e = torch.topk(probs, 2)
        want = torch.zeros_like(x)
        for b in range(3):
            for t in range(5):
                for k in range(2):
                    n = e[b, t, k]
                    h = torch.relu(model.experts.w1[n] @ x[b, t])
                    want[b, t] += w[b, t, k] * (model.experts.w2[n] @ h)
    same(got, want)
