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
from modelc.generalize import Numbers, Sym, Unsupported, fit, number_targets, skeleton, slot_kind

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
    assert "def __init__(\n        self, in_channels: int, width: int, stride: int = 1, downsample: bool = False\n" in source
    assert "Bottleneck(256, 128, stride=2, downsample=True)," in source and "*[Bottleneck(512, 128) for _ in range(3)],"  in source
    assert "if self.downsample is not None:" in source


@pytest.mark.parametrize(("spec", "block", "args", "flags", "probe"), [
    # arguments no ResNet-50 instance has: 48 -> 24 * 4 channels, stride 2, a downsample
    ("resnet50", "Bottleneck", (48, 24), {"stride": 2, "downsample": True}, "Bottleneck(24, stride=2)"),
    ("resnet50", "Bottleneck", (96, 24, 1), {}, "Bottleneck(24)"),
    ("resnet18", "BasicBlock", (20, 40), {"stride": 2, "downsample": True}, "BasicBlock(40, stride=2)"),
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
    text = ("block Unit(scale: int) {\n    input x\n    output x -> fc: linear(8) -> (relu if scale > 2)\n}\n"
            "model M {\n    input x: [B, 8]\n    output x -> a: Unit(2) -> b: Unit(4)\n}\n")  # fmt: skip
    source = modelc.compile_source(text, "m.model")
    assert sorted(_classes(source)) == ["M", "Unit_scale2", "Unit_scale4"]


UNIT = ("block Unit(scale: int) {\n    input x\n    output x -> fc: linear(8) -> reshape([-1, scale, 8 // scale])\n}\n"
        "model M {\n    input x: [B, 8]\n    output x -> a: Unit(2) -> flatten -> b: Unit(4) -> flatten\n}\n")  # fmt: skip


def test_instances_whose_forward_differs_in_its_numbers_share_a_class_that_keeps_them():
    # NOTE: [Sizes in forward]: reshape([-1, 2, 4]) and reshape([-1, 4, 2]) are one class's code
    source = modelc.compile_source(UNIT, "m.model")
    assert _classes(source) == ["Unit", "M"]
    assert "self.scale = scale" in source and "out.reshape(-1, self.scale, 8 // self.scale)" in source
    assert "self.a = Unit(2)" in source and "self.b = Unit(4)" in source
    # a scale no instance has is the block compiled for it
    unit = _namespace(UNIT)["Unit"](8)
    reference = _namespace(UNIT.replace("Unit(2) -> flatten -> b: Unit(4)", "Unit(8)"))["M"]().a
    unit.load_state_dict(reference.state_dict())
    x = torch.randn(3, 8)
    assert unit(x).shape == (3, 8, 1)
    torch.testing.assert_close(unit(x), reference(x), rtol=0, atol=0)


def test_swin_attention_is_one_class_per_shift_and_new_sizes_build_the_block_compiled_for_them():
    text = (SPECS / "swin_t.model").read_text()
    zoo = _namespace(text, "swin_t.model")
    names = _classes(modelc.compile_source(text, "swin_t.model"))
    assert names == ["ShiftedWindowAttention_shift3", "ShiftedWindowAttention", "SwinBlock", "SwinBlock_shift3",
                     "PatchMerging", "Swin_T"]  # fmt: skip
    # 14 x 21 maps of 192 channels in 6 heads: no Swin-T stage has them (nor a map that is not square)
    probe = text.split("\nmodel ")[0] + (
        "\nmodel Probe {\n    input x: [B, 14, 21, 192]\n    output x -> b: ShiftedWindowAttention(6, 7, 0)\n}\n")
    reference = _namespace(probe, "probe.model")["Probe"]().b
    shared = zoo["ShiftedWindowAttention"](14, 21, 192, 6)
    state = {k: torch.randn_like(v) if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    shared.load_state_dict(state)
    x = torch.randn(2, 14, 21, 192)
    torch.testing.assert_close(shared(x), reference(x), rtol=0, atol=0)


def test_skeletons_ignore_numbers_layout_and_comments_but_not_blocks_or_strings():
    one, nums = skeleton(["        q = q.reshape(-1, 49, 3, 6, 32)  # s.model:15", '        y = self.d["a1"](q) * 0.5'])
    assert nums == [1, 49, 3, 6, 32, 0.5]
    split, _ = skeleton(["        # s.model:15", "        q = q.reshape(", "            -1, 16, 3, 12, 32", "        )",
                         '        y = self.d["a1"](q) * 0.25'])  # fmt: skip
    assert split == one
    assert skeleton(['        y = self.d["a2"](q) * 0.5'])[0] != skeleton(['        y = self.d["a1"](q) * 0.5'])[0]
    assert skeleton(["        q = q * 2"])[0] != skeleton(["        q = q * 2.0"])[0]  # an int is no float
    inside = ["        if c:", "            a = 1", "            b = 2"]
    after = ["        if c:", "            a = 1", "        b = 2"]
    assert skeleton(inside)[0] != skeleton(after)[0]
    assert number_targets(["        q = q.reshape(", "            -1, 16", "        )", "        k, v = f(2)"]) == ["q", "q", "k"]


def test_numbers_are_rewritten_in_order_and_a_number_out_of_place_is_noticed():
    n = Numbers({1: "self.n * self.n", 3: "self.heads"}, [1, 49, 3, 6])
    assert [n.leaf(t) for t in ("x.reshape", "-1", "49", "3", '"6"', "6")] == \
        ["x.reshape", "-1", "self.n * self.n", "3", '"6"', "self.heads"]  # fmt: skip
    assert n.done
    assert Numbers({0: "self.a + 1"}, [2]).leaf("-2") == "-(self.a + 1)"
    wrong = Numbers({0: "self.heads"}, [6, 32])
    wrong.leaf("f(32, 6)")
    assert not wrong.done
    short = Numbers({0: "self.heads"}, [6, 32])
    short.leaf("6")
    assert not short.done


def test_sizes_fit_from_parameters_inputs_and_earlier_slots():
    assert fit([64, 128], [("width", [64, 128])]) == "width"
    assert fit([256, 512], [("in_channels", [64, 256]), ("width", [64, 128])]) == "width * 4"
    assert fit([16, 32], [("width", [64, 128])]) == "width // 4"
    assert fit([3, 5], [("width", [64, 128])]) is None
    assert fit([0.1, 0.2], [("p", [0.1, 0.2])]) == "p"
    assert fit([7, 7], [("k", [7, 7])]) == "k"  # (the emitter asks only for slots that differ)
    # a repeat count (NOTE: [Repeated blocks]): also one more or less than a parameter
    assert fit([2, 5], [("layers", [3, 6])]) is None
    assert fit([2, 5], [("layers", [3, 6])], offsets=True) == "layers - 1"
    assert fit([4, 7], [("n", [3, 6])], offsets=True) == "n + 1"
    assert fit([2, 9], [("layers", [3, 6])], offsets=True) is None
    # quotients: a head's width from the channels and the heads; a constant over a parameter
    assert fit([32, 32, 64], [("heads", [3, 6, 6]), ("C", [96, 192, 384])]) == "C // heads"
    assert fit([4, 2], [("scale", [2, 4])]) == "8 // scale"
    assert fit([4, 4], [("scale", [2, 2])]) == "scale * 2"


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


@pytest.mark.parametrize("items", [
    "*[nn.ReLU() for i in range(n)]",  # a loop variable other than `_`
    "*[nn.ReLU() for _ in range(n) if n]",
    "*[nn.ReLU() for _ in range(0, n)]",
    "*[nn.ReLU() for _ in list(n)]",
    "*[nn.ReLU() for _ in range(n) for _ in range(n)]",
    "*[_ for _ in range(n)]",
    "*(nn.ReLU() for _ in range(n))",
    "*[print() for _ in range(n)]",
])  # fmt: skip
def test_the_code_gate_takes_only_the_repeat_form_of_nn_sequential(items):
    """NOTE: [Repeated blocks]: `*[item for _ in range(count)]`, an argument of nn.Sequential."""
    head = '# -*- coding: utf-8 -*-\nimport torch\nfrom torch import nn\n\n\nclass A(nn.Module):\n    """A."""\n\n'
    init = "    def __init__(self, n: int = 2) -> None:\n        super().__init__()\n        self.s = {}\n"
    check_generated(head + init.format("nn.Sequential(*[nn.ReLU() for _ in range(n)])"))
    with pytest.raises(CompilerBug):
        check_generated(head + init.format(f"nn.Sequential({items})"))
    with pytest.raises(CompilerBug):  # the form itself, outside nn.Sequential
        check_generated(head + init.format("nn.ModuleList(*[nn.ReLU() for _ in range(n)])"))


# ---- model arguments (NOTE: [Model arguments] in emit_share.py) -------------------------------
@pytest.mark.parametrize(("spec", "model", "kwargs"), [
    ("resnet18", None, {"num_classes": 10}),
    ("lenet5", None, {"num_classes": 7}),
    ("alexnet", None, {"num_classes": 5, "dropout": 0.1}),
    ("dcgan", "Generator", {"nz": 20, "ngf": 8, "nc": 1}),
    ("vae", None, {"latent": 6, "hidden": 32}),
    ("gpt", None, {"vocab": 97, "block_size": 16, "layers": 2}),  # a depth, inside a block
    ("gpt2", None, {"vocab": 97, "positions": 16, "layers": 2}),
    ("gpt2", None, {"vocab": 97, "positions": 16, "layers": 2, "heads": 4, "d": 40}),  # sizes in forward
    ("transformer", None, {"d_model": 32, "heads": 2, "encoder_layers": 3, "ff": 64}),  # into block classes
    ("llama3", None, {"vocab": 64, "hidden": 96, "layers": 2, "eps": 1e-4, "kv_heads": 4, "theta": 1e4}),  # not d
    ("bert", None, {"vocab": 64, "layers": 2, "ff": 48, "max_len": 16, "types": 3}),
    ("vit_b_16", None, {"num_classes": 7, "num_heads": 2, "hidden": 32, "mlp_dim": 48}),
    ("unet", None, {"in_channels": 2, "num_classes": 3, "base": 4}),
    ("googlenet", None, {"num_classes": 10, "k5": 5}),  # the paper's 5x5 branch: k=k5, p=k5 // 2
    ("mixtral", None, {"vocab": 64, "hidden": 32, "layers": 1, "kv_heads": 4, "top_k": 3}),  # forward's top-k
])  # fmt: skip
def test_a_model_built_with_arguments_is_the_model_compiled_with_them(spec, model, kwargs):
    path = str(SPECS / f"{spec}.model")
    ours = modelc.load(path, model)(**kwargs)
    compiled = modelc.load(path, model, **kwargs)
    reference = compiled()
    torch.manual_seed(0)
    state = {k: torch.rand_like(v) + 0.5 if v.is_floating_point() else v for k, v in reference.state_dict().items()}
    reference.load_state_dict(state)
    ours.load_state_dict(state)  # strict: the same keys and shapes
    ours.eval(), reference.eval()
    sizes = [[d if isinstance(d, int) else 3 for d in shape] for shape in compiled.INPUT_SHAPES.values()]
    ids = spec.startswith(("gpt", "llama", "mixtral", "bert"))  # token ids
    inputs = [torch.randint(0, 3, s) if ids else torch.rand(*s) for s in sizes]
    torch.manual_seed(1)
    want = reference(*inputs)
    torch.manual_seed(1)
    got = ours(*inputs)
    torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_a_parameter_that_changes_more_than_model_level_values_stays_a_value():
    source = modelc.compile_file(str(SPECS / "resnet50.model"))
    assert "def __init__(self, num_classes: int = 1000) -> None:" in source
    assert "self.fc = nn.Linear(2048, num_classes)" in source
    # gpt2: `layers` is a repeat count; `d` and `heads` set sizes in the attention block's
    # forward (its reshape), which the class keeps (NOTE: [Sizes in forward]): all arguments
    source = modelc.compile_file(str(SPECS / "gpt2.model"))
    signature = source.split("class GPT2")[1].split("def __init__(")[1].split(") -> None:")[0]
    assert "layers: int = 12" in signature and "eps: float = 1e-05" in signature
    assert "heads: int = 12" in signature and "d: int = 768" in signature
    assert "*[Block(d, heads, eps) for _ in range(layers)]" in source
    assert "q.reshape(q.shape[0], q.shape[1], self.heads, self.D // self.heads)" in source
    # llama3: d = 4097 still gives 4097 // 32 = 128 per head, as 4096 does; a second changed
    # graph (driver.variants: 4095, or 8192) shows that `d` reaches the attention's reshape
    source = modelc.compile_file(str(SPECS / "llama3.model"))
    signature = source.split("class Llama3")[1].split("def __init__(")[1].split(") -> None:")[0]
    assert "layers: int = 32" in signature and "d:" not in signature


def test_a_module_that_needs_a_literal_keeps_the_parameter_a_value():
    """nn.Unflatten(1, (1, n)) has no form with `n` an argument (fuzz: a CompilerBug, 'unsqueeze
    in sequence s has no module form', when the changed graph was fitted)."""
    text = "model Net(n: int = 1) { input x: [B, 3]  output x -> s: [fc: linear(n), relu, unsqueeze(n)] }"
    source = modelc.compile_source(text, "t.model")
    assert "def __init__(self) -> None:" in source and "nn.Unflatten(1, (1, 1))" in source


def test_a_parameter_free_step_nothing_reads_is_left_out_of_forward():
    """A ShuffleNet-style unit: the stride-2 instance does not read the chunk's parts."""
    text = ("block Unit(out: int, stride: int = 1) {\n    input x\n    a, b = x -> chunk(2, dim=1)\n"
            "    y = (x -> left: conv(out // 2, k=3, s=2, p=1) if stride == 2 else b) -> right: conv(out // 2, k=1)\n"
            "    z = x -> conv(out // 2, k=3, s=2, p=1) if stride == 2 else a\n    output concat(z, y)\n}\n"
            "model Shuffle {\n    input x: [B, 8, 16, 16]\n    output x -> u1: Unit(16, stride=2) -> u2: Unit(16)\n}\n")  # fmt: skip
    source = modelc.compile_source(text, "shuffle.model")
    assert source.count(".chunk(2, dim=1)") == 1  # in the stride-1 class only
    module = _namespace(text, "shuffle.model")["Shuffle"]()
    x = torch.randn(2, 8, 16, 16)
    u1 = module.u1
    want = torch.cat([u1.conv(x), u1.right(u1.left(x))], dim=1)
    a, b = want.chunk(2, dim=1)
    want = torch.cat([a, module.u2.right(b)], dim=1)
    torch.testing.assert_close(module(x), want)


# ---- instances described once per fingerprint (emit_tree.Tree.fingerprint) ----------------------
def test_instances_alike_have_one_fingerprint_and_others_another():
    from modelc.driver import build
    from modelc.emit_tree import Tree

    tree = Tree(build(str(SPECS / "resnet50.model")))
    blocks = [p for p, c in tree.graph.containers.items() if c.kind == "block"]
    prints = {p: tree.fingerprint(p) for p in blocks}
    assert None not in prints.values()
    # layer1: the first Bottleneck has a downsample, the next two are alike; layer2's differ in size
    first, second, third = (p for p in blocks if p[0] == "layer1")
    assert prints[second] == prints[third] != prints[first]
    assert not {prints[p] for p in blocks if p[0] == "layer2"} & {prints[second], prints[first]}
    assert len(set(prints.values())) < len(blocks)


@pytest.mark.parametrize("name", ["gpt2", "transformer", "unet"])
def test_describing_once_per_fingerprint_emits_what_describing_each_instance_does(name, monkeypatch):
    """The shortcut and the long way give the same bytes (the long way: no instance has a
    fingerprint, so each is described itself)."""
    from modelc.emit_tree import Tree

    fast = modelc.compile_file(str(SPECS / f"{name}.model"))
    monkeypatch.setattr(Tree, "fingerprint", lambda self, path: None)
    assert modelc.compile_file(str(SPECS / f"{name}.model")) == fast
