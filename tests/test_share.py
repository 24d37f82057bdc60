"""One generated class per block definition (emit_share.py, generalize.py): its constructor
arguments, optional submodules, and classes built with arguments no instance of the spec had,
checked against a module compiled for exactly those arguments."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import modelc
from modelc.codecheck import check_generated
from modelc.diagnostics import CompilerBug
from modelc.generalize import Sym, Unsupported, fit, slot_kind

torch = pytest.importorskip("torch")

SPECS = Path(__file__).resolve().parents[1] / "specs"


def _namespace(text: str, name: str = "m.model") -> dict:
    namespace: dict = {}
    source = modelc.compile_source(text, name)
    exec(compile(check_generated(source), name, "exec"), namespace)
    return namespace


def _classes(source: str) -> list[str]:
    return [n.name for n in ast.parse(source).body if isinstance(n, ast.ClassDef)]


def test_resnet50_has_one_bottleneck_class_within_160_lines():
    source = modelc.compile_source((SPECS / "resnet50.model").read_text(), "resnet50.model")
    assert _classes(source) == ["Bottleneck", "ResNet50"]
    assert len(source.splitlines()) <= 160
    assert "def __init__(\n        self, in_channels: int, width: int, stride: int, downsample: bool = False\n" in source
    assert "if self.downsample is not None:" in source


@pytest.mark.parametrize(("spec", "block", "args", "flags", "probe"), [
    # arguments no ResNet-50 instance has: 48 -> 24 * 4 channels, stride 2, a downsample
    ("resnet50", "Bottleneck", (48, 24, 2), {"downsample": True}, "Bottleneck(24, stride=2)"),
    ("resnet50", "Bottleneck", (96, 24, 1), {}, "Bottleneck(24)"),
    ("resnet18", "BasicBlock", (20, 40, 2), {"downsample": True}, "BasicBlock(40, stride=2)"),
    ("convnext_small", "CNBlock", (40, 0.0), {}, "CNBlock(0.0)"),
])  # fmt: skip
def test_a_shared_class_built_with_new_arguments_is_the_block_compiled_for_them(spec, block, args, flags, probe):
    zoo = _namespace((SPECS / f"{spec}.model").read_text(), f"{spec}.model")
    text = (SPECS / f"{spec}.model").read_text().split("\nmodel ")[0]
    channels = args[0]
    text += f"\nmodel Probe {{\n    input x: [B, {channels}, 8, 8]\n    output x -> b: {probe}\n}}\n"
    reference = _namespace(text, "probe.model")["Probe"]().b
    shared = zoo[block](*args, **flags)
    state = {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    shared.load_state_dict(state)  # strict: the same keys and shapes
    reference.eval(), shared.eval()
    x = torch.randn(2, channels, 8, 8)
    torch.testing.assert_close(shared(x), reference(x), rtol=0, atol=0)


def test_instances_whose_forward_differs_get_classes_named_after_what_differs():
    text = ("block Unit(scale: int) {\n    input x\n    output x -> fc: linear(8) -> reshape([-1, scale, 8 // scale])\n}\n"
            "model M {\n    input x: [B, 8]\n    output x -> a: Unit(2) -> flatten -> b: Unit(4) -> flatten\n}\n")  # fmt: skip
    source = modelc.compile_source(text, "m.model")
    assert _classes(source) == ["Unit_scale2", "Unit_scale4", "M"]


def test_sizes_fit_from_parameters_inputs_and_earlier_slots():
    assert fit([64, 128], [("width", [64, 128])]) == "width"
    assert fit([256, 512], [("in_channels", [64, 256]), ("width", [64, 128])]) == "width * 4"
    assert fit([16, 32], [("width", [64, 128])]) == "width // 4"
    assert fit([3, 5], [("width", [64, 128])]) is None
    assert fit([0.1, 0.2], [("p", [0.1, 0.2])]) == "p"
    assert fit([7, 7], [("k", [7, 7])]) == "k"  # (the emitter asks only for slots that differ)


def test_slot_kinds():
    assert slot_kind([3, 3]) == "same"
    assert slot_kind([3, 5]) == "int"
    assert slot_kind([0.5, 1]) == "float"
    assert slot_kind([(3, 3), (5, 5)]) == "tuple"
    assert slot_kind(["relu", "gelu"]) is None
    assert slot_kind([True, False]) is None
    assert slot_kind([(1, 2), (1, 2, 3)]) is None


def test_a_symbol_refuses_to_be_branched_on_or_counted():
    s = Sym("width")
    assert s == Sym("width") and s != 3 and s != Sym("stride")
    with pytest.raises(Unsupported):
        bool(s)
    with pytest.raises(Unsupported):
        range(s)


@pytest.mark.parametrize("bad", [
    "    def __init__(self, width: str) -> None:\n        super().__init__()\n",
    "    def __init__(self, flag: bool = True) -> None:\n        super().__init__()\n",
    "    def forward(self, x: torch.Tensor, n: int = False) -> torch.Tensor:\n        return x\n",
    "    def __init__(self, flag: bool = False) -> None:\n        super().__init__()\n"
    "        if flag:\n            self.a = None\n        else:\n            self.a = None\n",
    "    def __init__(self, flag: bool = False) -> None:\n        super().__init__()\n"
    "        if flag == 1:\n            self.a = None\n",
])  # fmt: skip
def test_the_code_gate_refuses_other_signatures_and_branches(bad):
    source = f'# -*- coding: utf-8 -*-\nimport torch\nfrom torch import nn\n\n\nclass A(nn.Module):\n    """A."""\n\n{bad}'
    with pytest.raises(CompilerBug):
        check_generated(source)
