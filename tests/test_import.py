"""`modelc import` / `modelc.from_module`: torch modules round-trip through a spec.

The oracle is torch itself: the original module, with every float parameter and buffer
randomised (BatchNorm running statistics included, so no layer is the identity), against the
module compiled from the imported spec, loaded with the original's `state_dict` (strict, so
the keys are the same) and run in eval mode. Each imported torchvision spec must stay within
twice the lines of the zoo's hand-written one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

import modelc  # noqa: E402
from modelc.cli import main  # noqa: E402
from modelc.diagnostics import SpecError  # noqa: E402
from torch import nn  # noqa: E402

SPECS = Path(__file__).resolve().parent.parent / "specs"


def randomise(module: nn.Module, seed: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for key, t in module.state_dict().items():
            if not t.is_floating_point():
                continue
            if key.endswith("running_var"):
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
            else:
                t.copy_(torch.randn(t.shape, generator=g) * 0.1)
    return module.eval()


def round_trip(module: nn.Module, *inputs: torch.Tensor, name: str | None = None) -> str:
    """Import, compile, load the weights strictly, compare outputs; returns the spec text."""
    randomise(module)
    text = modelc.from_module(module, inputs, name=name)
    compiled = modelc.load_source(text, "imported.model")().eval()
    compiled.load_state_dict(module.state_dict(), strict=True)
    with torch.no_grad():
        want, got = module(*inputs), compiled(*inputs)
    assert want.shape == got.shape
    assert want.abs().max() > 1e-3  # not a degenerate comparison
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)
    return text


def lines(text: str) -> int:
    return len(text.strip().splitlines())


def zoo_lines(name: str) -> int:
    return lines((SPECS / f"{name}.model").read_text())


def test_resnet50_round_trip_with_one_bottleneck_block():
    text = round_trip(torchvision.models.resnet50(), torch.randn(1, 3, 64, 64))
    assert text.count("block ") == 1 and "block Bottleneck(" in text  # one block for 16 instances
    assert "layer2: for i in 0..4 { Bottleneck(128, 2 if i == 0 else 1, 512, i == 0) }" in text
    assert lines(text) <= 2 * zoo_lines("resnet50")


def test_mobilenet_v2_round_trip():
    text = round_trip(torchvision.models.mobilenet_v2(), torch.randn(1, 3, 64, 64))
    assert "repeat 3 InvertedResidual" in text
    assert lines(text) <= 2 * zoo_lines("mobilenet_v2")


def test_vit_b_16_round_trip_with_twelve_encoder_blocks():
    # image_size=32: the same twelve 768-wide blocks on 4 patches, so the test stays quick.
    text = round_trip(torchvision.models.vit_b_16(image_size=32), torch.randn(1, 3, 32, 32))
    assert 'layers: for i in 0..12 prefix "encoder_layer_" { EncoderBlock }' in text
    assert "class_token: cls_token" in text and "pos_embedding: learned_position" in text
    assert lines(text) <= 2 * zoo_lines("vit_b_16")


@pytest.mark.slow
def test_swin_t_round_trip_with_known_modules():
    text = round_trip(torchvision.models.swin_t(), torch.randn(1, 3, 224, 224))
    assert "block ShiftedWindowAttention(heads: int, window: int, shift: int)" in text
    assert "[for i in 0..6 { SwinTransformerBlock(12, [0, 3][i % 2], 1536, 384) }]" in text
    assert lines(text) <= 2 * zoo_lines("swin_t")


class Unit(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.act = nn.Hardswish()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Tiny(nn.Module):
    """Blocks of one class with other widths, a Sequential, functions and methods."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = Unit(3, 16, 2)
        self.body = nn.Sequential(Unit(16, 16, 1), Unit(16, 32, 2), Unit(32, 32, 1))
        self.proj = nn.Conv2d(16, 32, 1, stride=2)
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        x = self.stem(x)
        y = self.body(x) + self.proj(x)
        z = torch.cat([y[:, :, ::2, 1::2].mean(dim=(2, 3)), torch.flatten(nn.functional.adaptive_avg_pool2d(y, 1), 1)],
                      dim=1)
        return self.head(torch.relu(z))


def test_small_custom_module_from_module():
    text = round_trip(Tiny(), torch.randn(2, 3, 32, 32), name="TinyNet")
    assert "model TinyNet {" in text and "block Unit(out: int, stride: int)" in text
    assert "body: for i in 0..3 { Unit(16 if i == 0 else 32, [1, 2, 1][i]) }" in text


class Erf(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return torch.erf(self.fc(x))


class Outer(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.block = Erf()

    def forward(self, x):
        return self.block(x)


def test_an_op_without_mapping_is_a_located_error():
    with pytest.raises(SpecError) as info:
        modelc.from_module(Outer(), torch.randn(1, 8))
    assert info.value.render() == (
        "block: error[E0701]: cannot import torch.erf\n"
        "  = hint: see docs/import.md for what is imported"
    )


class Shared(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(8, 8)

    def forward(self, x):
        return self.fc(self.fc(x))


def test_a_layer_with_weights_used_twice_is_refused():
    with pytest.raises(SpecError) as info:
        modelc.from_module(Shared(), torch.randn(1, 8))
    assert info.value.diagnostics[0].code == "E0705"
    assert info.value.render().startswith("fc: error[E0705]")


def test_command_line_writes_a_spec_that_checks(tmp_path, capsys):
    out = tmp_path / "r18.model"
    assert main(["import", "torchvision:resnet18", "--input", "x=1,3,32,32", "--name", "R18", "-o", str(out)]) == 0
    assert main(["check", str(out)]) == 0
    assert "ok: R18:" in capsys.readouterr().out
    assert main(["import", "torchvision:resnet5"]) == 1
    assert "torchvision:resnet5: error[E0702]: torchvision has no model 'resnet5'" in capsys.readouterr().err


def test_command_line_file_class_and_args(tmp_path, capsys, monkeypatch):
    (tmp_path / "net.py").write_text(
        "from torch import nn\n\n"
        "class Net(nn.Module):\n"
        "    def __init__(self, width=4):\n"
        "        super().__init__()\n"
        "        self.fc = nn.Linear(8, width)\n\n"
        "    def forward(self, x):\n"
        "        return self.fc(x).relu()\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MODELC_PROGRESS", "1")  # the bar over the modules, on stderr
    assert main(["import", "net.py:Net", "--arg", "width=6", "--input", "x=1,8"]) == 0
    captured = capsys.readouterr()
    assert "fc: linear(6)" in captured.out and "import" in captured.err


class Attention(nn.Module):
    """Embedding, self- and cross-attention, and many traced functions and methods."""

    def __init__(self) -> None:
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.mha = nn.MultiheadAttention(16, 4, batch_first=True)
        self.cross = nn.MultiheadAttention(16, 2, batch_first=True)
        self.norm = nn.LayerNorm(16, eps=1e-6)
        self.fc = nn.Linear(16, 16)

    def forward(self, x):
        h = self.emb(x)
        a, _ = self.mha(h, h, h, need_weights=False)
        m = torch.relu(self.fc(h)) * 0.5
        c = self.cross(a, m, m)[0]  # m read twice: bound once
        y = nn.functional.gelu(self.norm(a + c)).transpose(1, 2).unsqueeze(1)
        y = y.reshape(y.shape[0], -1)
        q, k = h.chunk(2, dim=-1)
        z = torch.matmul(q, k.transpose(-2, -1)).softmax(-1) / 8
        return torch.cat([torch.sigmoid(y), z.flatten(1), torch.tanh(h).mean(1)], dim=1)


def test_functions_methods_and_attention():
    text = round_trip(Attention(), torch.randint(0, 50, (2, 6)))
    assert "input x: int64[B, 6]" in text
    assert "-> mha: self_attention(4)" in text and "cross: multihead_attention(mul_, mul_, 2)" in text
    assert "chunk_0, chunk_1 = x -> chunk(2, dim=-1)" in text


class Stack(nn.Module):
    def __init__(self, act: bool) -> None:
        super().__init__()
        self.act = act
        self.layers = nn.ModuleList([nn.Linear(8, 8) for _ in range(3)])
        self.out = nn.Linear(8, 2)

    def forward(self, x):
        for layer in self.layers:
            x = torch.relu(layer(x)) if self.act else layer(x)
        return self.out(x)


def test_a_module_list_called_in_a_chain_is_a_numbered_sequence():
    text = round_trip(Stack(act=False), torch.randn(2, 8))
    assert "layers: (linear(8) -> linear(8) -> linear(8)) -> out: linear(2)" in text
    with pytest.raises(SpecError, match=r"<root>: error\[E0705\]: cannot import a call of layers.0"):
        modelc.from_module(Stack(act=True), torch.randn(2, 8))


@pytest.mark.parametrize("name", ["efficientnet_b0", "mobilenet_v3_small"])
def test_silu_squeeze_excitation_and_stochastic_depth_round_trip(name):
    """SiLU, x * scale of tensors (squeeze-excitation) and StochasticDepth, which the language
    now has: EfficientNet-B0 and MobileNet v3 import, load strictly and compute the same."""
    reference = getattr(torchvision.models, name)(weights=None).eval()
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for t in reference.state_dict().values():
            if t.is_floating_point():
                t.add_(torch.randn(t.shape, generator=g) * 0.05)
    x = torch.randn(1, 3, 64, 64, generator=g)
    text = modelc.from_module(reference, (x,))
    assert "silu" in text or "hardswish" in text
    ours = modelc.load_source(text, f"{name}.model")().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x), rtol=1e-4, atol=1e-4)
