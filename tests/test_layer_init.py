"""How layers' parameters start: `init`, `weight_init`, `bias_init` (with std, low, high,
value) on conv, conv_transpose, linear, embedding and the norms, and literal numbers for a
linear's weight and bias and a conv's bias.

Oracles: exact values (zeros, ones, constants, the literal numbers, an output computed by
hand), the moments of the distributions (a normal's std, the standard deviation of a normal
cut at +-2 computed from its formula, a uniform's mean and range) on layers of a million
weights, torch's own layers (their state_dict keys, what they start at without an init), and
torch's functions for what the modules compute. Meta-device construction, then `to_empty`
and each module's `reset_parameters`, gives the same values.
"""

from __future__ import annotations

import math
import pickle
import subprocess
import sys

import modelc
import pytest
from modelc.diagnostics import SpecError
from modelc.interpret import run_graph
from modelc.standalone import inline_runtime
from modelc.summary import summarize
from modelc.verify import verify_module
from passes_util import applied, refusals

torch = pytest.importorskip("torch")
F = torch.nn.functional


def build(shape: str, chain: str, dtype: str = ""):
    """A module of `input x: shape -> layer: chain`, seeded; and its class."""
    text = f"model M {{\n    input x: {dtype}{shape}\n    output x -> {chain}\n}}\n"
    cls = modelc.load_source(text, "t.model")
    torch.manual_seed(0)
    return cls(), cls


# ---- exact values -------------------------------------------------------------------------------
LAYERS = [  # (input, the layer, its torch.nn class)
    ("[B, 6]", "linear(5{})", torch.nn.Linear),
    ("[B, 6]", "linear(5, transposed=true{})", None),
    ("[B, 4, 9]", "conv(6, k=3{})", torch.nn.Conv1d),
    ("[B, 4, 9, 9]", "conv(6, k=3, groups=2{})", torch.nn.Conv2d),
    ("[B, 4, 9, 9]", "conv_transpose(6, k=2, s=2{})", torch.nn.ConvTranspose2d),
    ("[B, 4, 9]", "batchnorm({})", torch.nn.BatchNorm1d),
    ("[B, 4, 9, 9]", "batchnorm({})", torch.nn.BatchNorm2d),
    ("[B, 7, 6]", "layer_norm({})", torch.nn.LayerNorm),
    ("[B, 6, 3, 3]", "layer_norm(dim=1{})", None),
    ("[B, 6, 3, 3]", "group_norm(3{})", torch.nn.GroupNorm),
    ("[B, 6, 3, 3]", "instance_norm(affine=true{})", torch.nn.InstanceNorm2d),
]  # fmt: skip


def _call(chain: str, extra: str) -> str:
    return chain.format(extra if "(" in chain and not chain.endswith("({})") else extra.removeprefix(", "))


@pytest.mark.parametrize("shape, chain, torch_class", LAYERS, ids=[c[1] for c in LAYERS])
@pytest.mark.parametrize("extra, weight, bias", [
    (', init="zeros"', 0.0, 0.0),
    (', init="ones"', 1.0, 1.0),
    (', init="constant", value=0.25', 0.25, 0.25),
    (', weight_init="constant", value=-3', -3.0, None),
    (', bias_init="ones"', None, 1.0),
    (', weight_init="zeros", bias_init="constant", value=2', 0.0, 2.0),
])  # fmt: skip
def test_schemes_set_each_tensor_exactly(shape, chain, torch_class, extra, weight, bias):
    layer, cls = build(shape, "layer: " + _call(chain, extra))
    state = layer.state_dict()
    for key, want in (("layer.weight", weight), ("layer.bias", bias)):
        if want is not None:
            assert torch.equal(state[key], torch.full_like(state[key], want)), key
    plain, _ = build(shape, "layer: " + _call(chain, ""))  # same seed, torch's own start
    for key, want in (("layer.weight", weight), ("layer.bias", bias)):
        if want is None:  # the tensor the spec leaves alone starts as torch starts it
            assert torch.equal(state[key], plain.state_dict()[key]), key
    assert list(state) == list(plain.state_dict())  # the same keys, so checkpoints load
    if torch_class is not None:
        assert isinstance(layer.layer, torch_class)
    verify_module(cls, cls.__modelc_graph__)  # computes what the interpreter does


def test_embedding_and_rms_norm():
    layer, _ = build("[B, 5]", 'wte: embedding(10, 4, init="constant", value=0.5, padding_idx=2)', "int64")
    want = torch.full((10, 4), 0.5)
    want[2] = 0  # the padding row stays zero, as torch keeps it
    assert torch.equal(layer.wte.weight.detach(), want)
    layer, _ = build("[B, 5, 8]", 'rms: rms_norm(weight_init="zeros")')
    assert torch.equal(layer.rms.weight.detach(), torch.zeros(8)) and isinstance(layer.rms, torch.nn.RMSNorm)


def test_masked_bias_keeps_its_zeros_after_init():
    layer, cls = build("[B, 4]", 'qkv: linear(6, bias_mask=[1, 0, 1], init="ones")')
    assert torch.equal(layer.qkv.bias.detach(), torch.tensor([1.0, 1, 0, 0, 1, 1]))
    assert torch.equal(layer.qkv.weight.detach(), torch.ones(6, 4))
    verify_module(cls, cls.__modelc_graph__)


def test_emitted_constructors_say_what_they_do():
    _, cls = build("[B, 6]", 'head: linear(10, init="zeros")')
    assert 'self.head = rt.Linear(6, 10, weight_init="zeros", bias_init="zeros")' in cls.__modelc_source__
    _, cls = build("[B, 6]", 'fc: linear(10, bias=false, init="trunc_normal")')
    assert 'rt.Linear(6, 10, bias=False, weight_init="trunc_normal", std=0.02)' in cls.__modelc_source__
    _, cls = build("[B, 3, 8, 8]", 'stem: conv(8, k=3, weight_init="uniform", low=-0.5, high=0.5)')
    assert 'rt.Conv2d(3, 8, 3, weight_init="uniform", low=-0.5, high=0.5)' in cls.__modelc_source__
    _, cls = build("[B, 6]", "fc: linear(10)")
    assert "nn.Linear(6, 10)" in cls.__modelc_source__  # no init: torch's layer, as before


# ---- distributions ------------------------------------------------------------------------------
def big(extra: str):
    layer, _ = build("[B, 1024]", f"fc: linear(1024{extra})")
    return layer.fc.weight.detach(), layer.fc.bias.detach()


def test_normal_has_its_std():
    w, b = big(', init="normal", std=0.5')
    assert abs(w.std().item() - 0.5) < 0.005 and abs(w.mean().item()) < 0.002
    assert abs(b.std().item() - 0.5) < 0.05  # 1024 draws
    w, b = big(', weight_init="normal"')  # std 0.02 by default, as parameter's
    assert abs(w.std().item() - 0.02) < 0.0002
    assert b.abs().max() <= 1 / 32 and b.std() > 0  # nn.Linear's bias: U(-1/sqrt(1024), 1/sqrt(1024))


def test_trunc_normal_is_cut_at_two():
    """torch cuts at -2 and 2 (absolute, as timm): with std 1 the standard deviation is that of a
    standard normal restricted to [-2, 2], sqrt(1 - 2 * 2 phi(2) / (2 Phi(2) - 1))."""
    w, _ = big(', weight_init="trunc_normal", std=1.0')
    phi = math.exp(-2) / math.sqrt(2 * math.pi)
    mass = math.erf(2 / math.sqrt(2))
    assert w.abs().max().item() <= 2.0
    assert abs(w.std().item() - math.sqrt(1 - 4 * phi / mass)) < 0.005  # 0.8796


def test_uniform_spans_its_range():
    w, b = big(', init="uniform", low=-0.1, high=0.3')
    assert -0.1 <= w.min().item() < -0.099 and 0.299 < w.max().item() <= 0.3
    assert abs(w.mean().item() - 0.1) < 0.001
    assert abs(w.var().item() - 0.4**2 / 12) < 0.0002
    assert -0.1 <= b.min().item() and b.max().item() <= 0.3


# ---- meta device: build, to_empty, reset_parameters ---------------------------------------------
META = """model M {
    input x: [B, 3, 8, 8]
    input ids: int64[B, 5]
    y = x -> stem: conv(8, k=3, p=1, init="constant", value=0.125) -> bn: batchnorm(weight_init="zeros")
          -> ln: layer_norm(dim=1, bias_init="ones") -> flatten -> fc: linear(2, weight=LITERAL, bias=[0.5, -0.5])
    e = ids -> wte: embedding(10, 4, init="normal", std=1.0) -> proj: linear(4, init="trunc_normal", std=0.1)
    s = x -> sobel: conv(1, k=3, p=1, weight=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], bias=[0.25], trainable=false)
    output y, e, s
}
LITERAL = [[1, 0] * 256, [0, 1] * 256]
"""


def test_meta_device_then_reset_parameters_starts_the_same():
    cls = modelc.load_source(META, "meta.model")
    torch.manual_seed(0)
    direct = cls()
    with torch.device("meta"):
        meta = cls()
    assert all(p.is_meta for p in meta.parameters())
    meta.to_empty(device="cpu")
    torch.manual_seed(0)  # construction order is reset order: the random draws repeat too
    for m in meta.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for key, value in direct.state_dict().items():
        assert torch.equal(meta.state_dict()[key], value), key
    assert not meta.sobel.weight.requires_grad and meta.fc.weight.requires_grad
    assert abs(meta.wte.weight.std().item() - 1.0) < 0.5  # normal(0, 1), not the meta device's garbage


def test_runtime_layers_pickle_and_print():
    cls = modelc.load_source(META, "meta.model")
    model = cls()
    again = pickle.loads(pickle.dumps(model))
    assert torch.equal(again.stem.weight, model.stem.weight)
    assert "weight_init='constant'" in repr(model.stem) and "<2 numbers>" in repr(model.fc)


def test_standalone_file_starts_the_same_without_modelc(tmp_path):
    """--standalone copies rt.Conv2d, rt.FixedLinear, their mixin and `initialise` in."""
    path = tmp_path / "m.py"
    path.write_text(inline_runtime(modelc.compile_source(META, "meta.model")), encoding="utf-8")
    torch.manual_seed(0)
    want = modelc.load_source(META, "meta.model")().state_dict()
    torch.save(want, tmp_path / "want.pt")
    script = ("import sys, importlib.util, torch\nsys.modules['modelc'] = None\n"
              f"spec = importlib.util.spec_from_file_location('m', {str(path)!r})\n"
              "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)\n"
              f"torch.manual_seed(0); got = m.M().state_dict(); want = torch.load({str(tmp_path / 'want.pt')!r})\n"
              "print(all(torch.equal(got[k], want[k]) for k in want) and list(got) == list(want))\n")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "True", done.stdout + done.stderr


# ---- literal weights and biases -----------------------------------------------------------------
def test_literal_linear_computes_x_w_plus_b():
    text = ("model M {\n    input x: [B, 3]\n"
            "    output x -> mix: linear(2, weight=[[1, 2, 3], [-1, 0, 0.5]], bias=[0.5, -1])\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    model = cls()
    x = torch.tensor([[1.0, 1.0, 1.0], [2.0, 0.0, -2.0]])
    want = torch.tensor([[1 + 2 + 3 + 0.5, -1 + 0.5 - 1], [2 - 6 + 0.5, -2 - 1 - 1]])
    with torch.no_grad():
        assert torch.equal(model(x), want)
    assert torch.equal(run_graph(cls.__modelc_graph__, model.state_dict(), [x])[0], want)
    assert all(p.requires_grad for p in model.parameters())  # learnable: the literal is where it starts
    assert sorted(model.state_dict()) == ["mix.bias", "mix.weight"]


def test_frozen_literal_linear_and_scale():
    text = ("model M {\n    input x: [B, 2]\n"
            "    output x -> avg: linear(1, weight=[[1, 1]], scale=0.5, bias=false, trainable=false)\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    model = cls()
    with torch.no_grad():
        assert torch.equal(model(torch.tensor([[3.0, 5.0]])), torch.tensor([[4.0]]))
    assert not model.avg.weight.requires_grad
    counts = summarize(cls.__modelc_graph__)
    assert (counts["total_params"], counts["trainable_params"]) == (2, 0)
    verify_module(cls, cls.__modelc_graph__)


def test_literal_conv_bias():
    text = ("model M {\n    input x: [B, 1, 6, 6]\n"
            "    output x -> sobel: conv(1, k=3, p=1, weight=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], bias=[0.25],"
            " trainable=false)\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    x = torch.randn(2, 1, 6, 6)
    kernel = torch.tensor([[-1.0, 0, 1], [-2, 0, 2], [-1, 0, 1]]).reshape(1, 1, 3, 3)
    want = F.conv2d(x, kernel, torch.tensor([0.25]), padding=1)
    model = cls()
    with torch.no_grad():
        torch.testing.assert_close(model(x), want)
    torch.testing.assert_close(run_graph(cls.__modelc_graph__, model.state_dict(), [x])[0], want)
    verify_module(cls, cls.__modelc_graph__)
    text2 = text.replace("trainable=false", 'weight_init="zeros"').replace("weight=[[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], ", "")
    model = modelc.load_source(text2, "t.model")()
    assert torch.equal(model.sobel.weight, torch.zeros(1, 1, 3, 3)) and torch.equal(model.sobel.bias, torch.tensor([0.25]))


def test_passes_leave_literal_layers_alone():
    text = "model M { input x: [B, 4]  output x -> linear(4, weight=[[1, 0, 0, 0]] * 4) -> batchnorm }"
    assert applied(text, 1)["fold-batchnorm"] == 0
    assert any("fixed weights" in r for r in refusals(text, 1, "fold-batchnorm"))
    text = "model M { input x: [B, 4]  output x -> linear(4, bias=[1, 2, 3, 4]) -> batchnorm }"
    assert any("fixed weights" in r for r in refusals(text, 1, "fold-batchnorm"))


# ---- refusals ------------------------------------------------------------------------------------
@pytest.mark.parametrize("shape, chain, code, message", [
    ("[B, 3]", "linear(2, weight=[[1, 2], [3, 4]])", "E0404", "expected [out_features, in_features] = [2, 3]"),
    ("[B, 3]", "linear(2, bias=[1, 2, 3])", "E0404", "the literal bias has shape [3], expected [2]"),
    ("[B, 3]", "linear(2, bias=[[1, 2]])", "E0404", "the literal bias has shape [1, 2], expected [2]"),
    ("[B, 3]", 'linear(2, bias="yes")', "E0402", "expects true, false or a list of numbers"),
    ("[B, 3]", "linear(3, weight=[[1, 0, 0]] * 3, transposed=true)", "E0404", "literal weight and transposed=true"),
    ("[B, 3]", "linear(2, scale=0.5)", "E0404", "'scale' applies to a literal weight"),
    ("[B, 3]", 'linear(2, weight=[[1, 0, 0]] * 2, weight_init="zeros")', "E0404", "weight_init does not apply"),
    ("[B, 3]", 'linear(2, bias=[1, 2], init="zeros")', "E0404", "init does not apply: the bias is given"),
    ("[B, 3]", 'linear(2, init="zeros", bias_init="ones")', "E0404", "init sets every parameter"),
    ("[B, 3]", 'linear(2, bias=false, bias_init="ones")', "E0404", "bias_init, but the layer has no bias"),
    ("[B, 3]", 'linear(2, init="constant")', "E0404", 'value goes with init="constant"'),
    ("[B, 3]", "linear(2, value=1.0)", "E0404", 'value goes with init="constant"'),
    ("[B, 3]", 'linear(2, init="zeros", std=0.1)', "E0404", 'std does not apply to init="zeros"'),
    ("[B, 3]", "linear(2, std=0.1)", "E0404", "std does not apply to the layer's own initialisation"),
    ("[B, 3]", 'linear(2, init="uniform", low=1, high=0)', "E0404", "uniform needs low < high"),
    ("[B, 3]", 'linear(2, init="xavier")', "E0404", "must be one of"),
    ("[B, 3, 4]", 'layer_norm(affine=false, init="ones")', "E0404", "no parameters (affine=false)"),
    ("[B, 3, 4]", 'rms_norm(bias_init="zeros")', "E0404", "bias_init, but the layer has no bias"),
    ("[B, 3, 4]", 'instance_norm(weight_init="ones")', "E0404", "no weight (affine=false)"),
    ("[B, 1, 5, 5]", 'conv(1, k=3, weight=[[1, 1, 1]] * 3, init="ones")', "E0404", "init does not apply"),
    ("[B, 1, 5, 5]", "conv(2, k=3, bias=[1])", "E0404", "the literal bias has shape [1], expected [2]"),
    ("[B, 3]", "linear(2, bias=[1, 2], bias_mask=[1, 0])", "E0404", "bias_mask does not go with literal numbers"),
])  # fmt: skip
def test_refusals_are_located(shape, chain, code, message):
    with pytest.raises(SpecError) as info:
        modelc.compile_source(f"model M {{\n    input x: {shape}\n    output x -> {chain}\n}}\n", "t.model")
    d = info.value.diagnostics[0]
    assert d.code == code and message in d.message, d.render()
    assert d.span.line == 3


def test_tied_weight_takes_no_init():
    text = ("model M {\n    input ids: int64[B, T]\n    x = ids -> wte: embedding(10, 4)\n"
            '    output x -> head: linear(10, bias=false, tie="wte", weight_init="zeros")\n}\n')  # fmt: skip
    with pytest.raises(SpecError, match="the weight is wte's"):
        modelc.compile_source(text, "t.model")
