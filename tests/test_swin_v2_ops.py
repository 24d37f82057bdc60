"""What Swin Transformer V2 (specs/swin_v2_t.model) added to the language: `normalize`
(cosine attention), `relative_coords_table` (the input of the continuous position bias) and
linear's `bias_mask` (the key bias held at zero).

Each is checked against an oracle outside modelc: torch's F.normalize, torchvision's
ShiftedWindowAttentionV2 (its buffer, and its forward's zeroed clone of the qkv bias), F.linear;
the generated module, the reference interpreter (modelc.interpret) and the IR's shape and
element type alike.
"""

from __future__ import annotations

import modelc
import pytest
from modelc.bench import randomize
from modelc.diagnostics import SpecError
from modelc.interpret import run_graph

torch = pytest.importorskip("torch")
F = torch.nn.functional


def load(body: str, **kw) -> type:
    return modelc.load_source(f"model M {{\n{body}\n}}\n", "t.model", **kw)


def check(cls: type, inputs: list, want: list, model: torch.nn.Module | None = None) -> torch.nn.Module:
    """The outputs of `model` (a new `cls()` by default) and the interpreter's, and the IR's
    types, all equal `want`; the module."""
    model = (model or cls()).eval()
    with torch.no_grad():
        got = model(*inputs)
    got = list(got) if isinstance(got, tuple) else [got]
    graph = cls.__modelc_graph__
    interpreted = run_graph(graph, model.state_dict(), inputs)
    for g, i, w, (_, ref) in zip(got, interpreted, want, graph.outputs, strict=True):
        t = graph.type_of(ref)
        assert tuple(t.dims[1:]) == tuple(w.shape[1:]) and str(w.dtype) == f"torch.{t.dtype}"
        torch.testing.assert_close(g, w, rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(i, w, rtol=1e-5, atol=1e-6)
    return model


def refused(body: str) -> tuple[str, str]:
    with pytest.raises(SpecError) as info:
        modelc.compile_source(f"model M {{\n{body}\n}}\n", "t.model")
    d = info.value.diagnostics[0]
    return d.code, d.message


# ---- normalize -----------------------------------------------------------------------------
@pytest.mark.parametrize(("call", "kwargs"), [
    ("normalize", {"dim": -1}),
    ("normalize(1)", {"dim": 1}),
    ("normalize(dim=-2, p=1.0)", {"dim": -2, "p": 1.0}),
    ("normalize(p=3.0, eps=0.5)", {"dim": -1, "p": 3.0, "eps": 0.5}),
])  # fmt: skip
def test_normalize_equals_torch(call, kwargs):
    x = torch.randn(3, 4, 6, 5)
    x[0, 1, 2] = 0.0  # a zero vector along the last dimension: eps keeps it 0, not nan
    cls = load(f"    input x: [B, 4, 6, 5]\n    output x -> {call}")
    check(cls, [x], [F.normalize(x, **kwargs)])


def test_normalize_keeps_the_element_type():
    x = torch.randn(2, 3, 8, dtype=torch.float64)
    check(load("    input x: float64[B, 3, 8]\n    output normalize(x)"), [x], [F.normalize(x, dim=-1)])


def test_cosine_attention_scores_are_cosines():
    """Swin V2's scores before the temperature: cosines of every query with every key."""
    cls = load("    input q: [B, 4, 9, 8]\n    input k: [B, 4, 9, 8]\n"
               "    output normalize(q) @ transpose(normalize(k), -2, -1)")  # fmt: skip
    q, k = torch.randn(2, 4, 9, 8), torch.randn(2, 4, 9, 8)
    check(cls, [q, k], [F.cosine_similarity(q[..., :, None, :], k[..., None, :, :], dim=-1)])


@pytest.mark.parametrize(("body", "code", "message"), [
    ("    input x: [B, 4]\n    output normalize(x, p=0.0)", "E0404", "p must be positive"),
    ("    input x: [B, 4]\n    output normalize(x, eps=-1.0)", "E0404", "eps must not be negative"),
    ("    input x: [B, 4]\n    output normalize(x, 2)", "E0404", "dim 2 is out of range"),
    ("    input x: int64[B, 4]\n    output normalize(x)", "E0506", "needs floating-point input"),
])  # fmt: skip
def test_normalize_refusals(body, code, message):
    got_code, got_message = refused(body)
    assert got_code == code and message in got_message, got_message


# ---- relative_coords_table -----------------------------------------------------------------
@pytest.mark.parametrize("window", [2, 4, 7, 8])
def test_relative_coords_table_is_torchvisions_buffer(window):
    from torchvision.models.swin_transformer import ShiftedWindowAttentionV2

    attn = ShiftedWindowAttentionV2(16, [window, window], [0, 0], 2)
    cls = load(f"    input x: [B, 4]\n    output x, t: relative_coords_table({window})")
    x = torch.randn(2, 4)
    model = check(cls, [x], [x, attn.relative_coords_table])
    assert torch.equal(model.t, attn.relative_coords_table)  # to the bit
    assert list(model.state_dict()) == ["t"]  # persistent, as torchvision registers it
    side = 2 * window - 1
    assert tuple(cls.__modelc_graph__.type_of(cls.__modelc_graph__.outputs[1][1]).dims) == (1, side, side, 2)


def test_relative_coords_table_by_hand():
    """Window 2: offsets -1, 0, 1, divided by w - 1 = 1, times 8: log2(9) / 3 at the ends."""
    t = load("    input x: [B, 4]\n    output t: relative_coords_table(2)")().t
    end = torch.log2(torch.tensor(9.0)) / 3
    ends = torch.stack([-end, torch.tensor(0.0), end])
    assert torch.allclose(t[0, :, 1, 0], ends) and torch.allclose(t[0, 1, :, 1], ends)  # dy down, dx across
    assert not t[0, 1, :, 0].any() and not t[0, :, 1, 1].any()
    assert torch.allclose(t[0, 0, 2], torch.stack([-end, end]))  # one row up, one column right


def test_relative_coords_table_needs_a_window_of_two():
    code, message = refused("    input x: [B, 4]\n    output x, relative_coords_table(1)")
    assert code == "E0404" and "must be at least 2" in message


# ---- linear's bias_mask --------------------------------------------------------------------
QKV = "    input x: [B, 5, 8]\n    output x -> qkv: linear(12, bias_mask=[1, 0, 1])"


def torchvision_qkv(x, weight, bias):
    """shifted_window_attention's qkv projection in Swin V2: a clone of the bias, its middle
    third (the keys') zeroed."""
    bias = bias.clone()
    bias[bias.numel() // 3 : 2 * bias.numel() // 3].zero_()
    return F.linear(x, weight, bias)


def test_bias_mask_holds_the_key_bias_at_zero():
    cls = load(QKV)
    model = cls()
    assert list(model.state_dict()) == ["qkv.weight", "qkv.bias"] and cls.NUM_PARAMETERS == 8 * 12 + 12
    assert not model.qkv.bias[4:8].any()  # zero at first where masked
    with torch.no_grad():
        model.qkv.bias.copy_(torch.randn(12))  # a checkpoint's key bias is not zero: it is ignored
    x = torch.randn(3, 5, 8)
    check(cls, [x], [torchvision_qkv(x, model.qkv.weight, model.qkv.bias).detach()], model)


def test_bias_mask_gradients_match_torchvisions():
    model = load(QKV)()
    w, b = model.qkv.weight.detach().clone().requires_grad_(), torch.randn(12, requires_grad=True)
    with torch.no_grad():
        model.qkv.bias.copy_(b)
    x = torch.randn(3, 5, 8)
    model(x).square().sum().backward()
    torchvision_qkv(x, w, b).square().sum().backward()
    torch.testing.assert_close(model.qkv.bias.grad, b.grad)
    torch.testing.assert_close(model.qkv.weight.grad, w.grad)
    assert not model.qkv.bias.grad[4:8].any() and model.qkv.bias.grad[:4].all()


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_bias_mask_scripts_with_torch_jit():
    model = load(QKV)().eval()
    x = torch.randn(2, 5, 8)
    torch.testing.assert_close(torch.jit.script(model)(x), model(x))


def test_the_optimizer_leaves_masked_biases_alone():
    """Unmasked, merge-qkv would merge qk with v (both read x) and fold-batchnorm would fold bn
    into qk: a merged or folded bias would lose the zeros."""
    text = ("model M {\n    input x: [B, 8]\n    a = x -> qk: linear(8, bias_mask=[1, 0])\n"
            "    b = x -> v: linear(8)\n    output a -> bn: batchnorm, b\n}\n")  # fmt: skip
    base, opt = modelc.load_source(text, "t.model")(), modelc.load_source(text, "t.model", optimize=2)()
    assert {"qk", "v", "bn"} <= set(dict(opt.named_children()))
    randomize(base, torch)
    opt.load_state_dict(base.state_dict())
    x = torch.randn(4, 8)
    with torch.no_grad():
        for g, w in zip(opt.eval()(x), base.eval()(x), strict=True):
            torch.testing.assert_close(g, w)


@pytest.mark.parametrize(("call", "message"), [
    ("linear(12, bias=false, bias_mask=[1, 0, 1])", "bias_mask masks the bias, but bias=false"),
    ("linear(12, transposed=true, bias_mask=[1, 0, 1])", "not supported with transposed=true"),
    ("linear(12, bias_mask=[1, 2, 1])", "holds 0 (held at zero) or 1 (used)"),
    ("linear(12, bias_mask=[1, 0, 1, 1, 0])", "12 bias entries do not split into 5 equal parts"),
])  # fmt: skip
def test_bias_mask_refusals(call, message):
    code, got = refused(f"    input x: [B, 8]\n    output x -> {call}")
    assert code == "E0404" and message in got, got
