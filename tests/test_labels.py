"""Labels as torch names modules: quoted labels that are no Python names (torchvision's RegNet
calls its blocks `block1-0`), keywords as labels, and labels made from values
(`"denseblock{i}"`). The oracles are torch itself (the module tree `add_module` builds,
`get_submodule`, outputs of modules built by hand) and keys written out by hand.
"""

from __future__ import annotations

import subprocess
import sys
from collections import OrderedDict

import modelc
import pytest

torch = pytest.importorskip("torch")
nn = torch.nn


def _load(text: str) -> type:
    return modelc.load_source(text, "labels.model")


def _error(text: str):
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source(text, "labels.model")
    return info.value.diagnostics[0]


def _keys(text: str) -> list[str]:
    return list(_load(text)().state_dict())


# ---- quoted labels that are no Python names ------------------------------------------------
DASHED = """
model M {
    input x: [B, 4]
    y = x -> "block1-0": linear(4) -> "1x1": linear(3)
    output y -> seq: ("a-b": linear(2) -> relu)
}"""


def _dashed_reference() -> nn.Module:
    ref = nn.Module()
    ref.add_module("block1-0", nn.Linear(4, 4))
    ref.add_module("1x1", nn.Linear(4, 3))
    ref.add_module("seq", nn.Sequential(OrderedDict([("a-b", nn.Linear(3, 2)), ("0", nn.ReLU())])))
    return ref


def test_a_quoted_label_is_the_module_name_torch_registers():
    ours, ref = _load(DASHED)(), _dashed_reference()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    assert [n for n, _ in ours.named_modules()] == [n for n, _ in ref.named_modules()]
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = torch.randn(5, 4)
    want = ref.get_submodule("seq")(ref.get_submodule("1x1")(ref.get_submodule("block1-0")(x)))
    torch.testing.assert_close(ours(x), want, rtol=0, atol=0)


def test_a_module_named_no_python_name_is_registered_and_called_by_its_name():
    source = modelc.compile_source(DASHED, "labels.model")
    assert 'self.add_module("block1-0", nn.Linear(4, 4))' in source
    assert 'y = getattr(self, "block1-0")(x)' in source
    assert '("a-b", nn.Linear(3, 2))' in source  # in a sequence it is the item's name


def test_modules_named_no_python_name_trace_and_export():
    model = _load(DASHED)().eval()
    x = torch.randn(2, 4)
    traced = torch.fx.symbolic_trace(model)
    assert {n.target for n in traced.graph.nodes if n.op == "call_module"} >= {"block1-0", "1x1"}
    exported = torch.export.export(model, (x,))
    torch.testing.assert_close(exported.module()(x), model(x))


@pytest.mark.parametrize(("label", "why"), [
    ('"a.b"', "'.' separates the modules of a path"),
    ('""', "it is empty"),
    ('"a b"', "' ' cannot be part of a module name"),
    ('"a/b"', "'/' cannot be part of a module name"),
    ('"caf\\u00e9"', "'\u00e9' cannot be part of a module name"),
    ('"12"', "a number names an unlabelled step of a numbered sequence"),
    ('"a{"', "'{' cannot be part of a module name"),
    ('"a{i"', "'{' cannot be part of a module name"),
    ('"a{}"', "'{' cannot be part of a module name"),
    ('"a{1}"', "'{' cannot be part of a module name"),
    ('"a{i + 1}"', "'{' cannot be part of a module name"),
    ('"a}"', "'}' cannot be part of a module name"),
])  # fmt: skip
def test_a_quoted_label_that_cannot_name_a_module_is_located(label, why):
    text = f"model M {{\n    input x: [B, 4]\n    output x -> {label}: linear(4)\n}}\n"
    d = _error(text)
    assert d.code == "E0207" and d.message == f"label {label} cannot name a module: {why}"
    assert (d.span.line, d.span.col, d.span.end_col) == (3, 17, 17 + len(label)) and d.hint
    # the same in expression position
    d = _error(f"model M {{\n    input x: [B, 4]\n    output {label}: linear(x, 4)\n}}\n")
    assert d.code == "E0207" and (d.span.line, d.span.col) == (3, 12)


@pytest.mark.parametrize("label", ['"_x-1"', '"_modules"', '"forward"', '"state_dict"', '"NUM_PARAMETERS"'])
def test_a_quoted_label_cannot_take_what_nn_module_owns(label):
    d = _error(f"model M {{\n    input x: [B, 4]\n    output x -> {label}: linear(4)\n}}\n")
    assert d.code == "E0206", d


# ---- keywords as labels ------------------------------------------------------------------------
# Every keyword of the language but the five reserved words, and Python keywords and constants.
BARE = ["block", "repeat", "for", "in", "prefix", "if", "else", "and", "or", "not", "true", "false",
        "class", "lambda", "return", "None", "True"]  # fmt: skip
RESERVED = ["input", "output", "model", "import", "def"]


@pytest.mark.parametrize("label", BARE)
def test_a_keyword_labels_a_step_and_a_call_as_it_is(label):
    step = f"model M {{\n    input x: [B, 4]\n    output x -> {label}: linear(4) -> relu\n}}\n"
    assert _keys(step) == [f"{label}.weight", f"{label}.bias"]
    expr = f"model M {{\n    input x: [B, 4]\n    y = {label}: linear(x, 4)\n    output y -> relu\n}}\n"
    model = _load(expr)()
    assert list(model.state_dict()) == [f"{label}.weight", f"{label}.bias"]
    assert model.get_submodule(label).out_features == 4
    x = torch.randn(2, 4)
    torch.testing.assert_close(model(x), torch.relu(model.get_submodule(label)(x)))


@pytest.mark.parametrize("label", RESERVED)
def test_a_reserved_word_labels_only_quoted(label):
    d = _error(f"model M {{\n    input x: [B, 4]\n    output x -> {label}: linear(4)\n}}\n")
    assert d.code == "E0101" and f'"{label}": ...' in d.hint
    assert _keys(f'model M {{\n    input x: [B, 4]\n    output x -> "{label}": linear(4)\n}}\n') == [
        f"{label}.weight", f"{label}.bias"]  # fmt: skip


def test_an_unfinished_line_is_still_reported_at_the_next_statement():
    d = _error("model M {\n    input x: [B, 4]\n    y = x -> linear(4) ->\n    output y\n}\n")
    assert d.code == "E0101" and (d.span.line, d.span.col) == (4, 5)


# ---- labels made from values ---------------------------------------------------------------
def test_a_label_takes_the_loop_variable():
    text = """
block Layer { input x  output x -> norm: layer_norm -> fc: linear(4) }
block Block(n: int) {
    input x
    output x -> for i in 1..n + 1 { "denselayer{i}": Layer }
}
model M {
    input x: [B, 4]
    output x -> features: (for i in 1..3 { "denseblock{i}": Block(i) -> "transition{i}": linear(4) })
}"""
    keys = [k for k in _keys(text) if k.endswith("fc.weight") or k.endswith("transition1.weight")]
    assert keys == ["features.denseblock1.denselayer1.fc.weight", "features.transition1.weight",
                    "features.denseblock2.denselayer1.fc.weight", "features.denseblock2.denselayer2.fc.weight"]  # fmt: skip


def test_a_label_takes_parameters_constants_and_strings():
    text = """
TAG = "x"
block Stage(index: int, depth: int) {
    input x
    output x -> for i in 0..depth { "block{index}-{i}": linear(4) }
}
model M(kind: str = "head") {
    input x: [B, 4]
    y = x -> trunk: for s in 1..3 { "block{s}": Stage(s, s) }
    z = "{kind}_{TAG}": linear(y, 4)
    output z -> units: for i in 0..2 prefix "unit{TAG}-" { linear(4) }
}"""
    assert [k for k in _keys(text) if k.endswith("weight")] == [
        "trunk.block1.block1-0.weight", "trunk.block2.block2-0.weight", "trunk.block2.block2-1.weight",
        "head_x.weight", "units.unitx-0.weight", "units.unitx-1.weight"]  # fmt: skip


def test_a_label_made_twice_names_the_loop_variable_in_its_hint():
    d = _error('model M {\n    input x: [B, 4]\n    output x -> for i in 0..2 { "fc": linear(4) }\n}\n')
    assert d.code == "E0202" and '"layer{i}"' in d.hint
    d = _error("block B(n: int) {\n    input x\n    output x -> for i in 0..2 { \"fc{n}\": linear(4) }\n}\n"
               "model M {\n    input x: [B, 4]\n    output x -> B(1)\n}\n")  # fmt: skip
    assert d.code == "E0202" and "'fc1' is defined twice" in d.message


@pytest.mark.parametrize(("field", "code", "text"), [
    ("{j}", "E0201", "undefined name 'j'"),
    ("{w}", "E0506", "{w} in a label must be an integer or a string, got 0.5"),
    ("{flag}", "E0506", "{flag} in a label must be an integer or a string, got true"),
    ("{dotted}", "E0207", 'label "x{dotted}" is "xa.b" here, which cannot name a module'),
    ("{empty}", "E0207", 'label "{empty}" is "" here, which cannot name a module: it is empty'),
    ("{i}", "E0207", 'label "{i}" is "0" here, which cannot name a module: a number'),
])  # fmt: skip
def test_a_label_field_that_cannot_be_put_in_is_located(field, code, text):
    label = field if field in ("{empty}", "{i}") else f"x{field}"
    spec = (f'model M(w: float = 0.5, flag: bool = true, dotted: str = "a.b", empty: str = "") {{\n'
            f"    input x: [B, 4]\n    output x -> for i in 0..2 {{ \"{label}\": linear(4) }}\n}}\n")  # fmt: skip
    d = _error(spec)
    assert d.code == code and text in d.message, d
    assert (d.span.line, d.span.col) == (3, 33)


def test_a_prefix_is_a_module_name_with_values():
    text = """
model M {
    input x: [B, 4]
    output x -> trunk: for s in 1..3 { "block{s}": for i in 0..2 prefix "block{s}-" { linear(4) } }
}"""
    assert [k for k in _keys(text) if k.endswith("weight")] == [
        "trunk.block1.block1-0.weight", "trunk.block1.block1-1.weight",
        "trunk.block2.block2-0.weight", "trunk.block2.block2-1.weight"]  # fmt: skip
    d = _error('model M {\n    input x: [B, 4]\n    output x -> s: for i in 0..2 prefix "a.b" { linear(4) }\n}\n')
    assert d.code == "E0207" and d.message.startswith('prefix "a.b" cannot name a module')
    assert (d.span.line, d.span.col, d.span.end_col) == (3, 41, 46)
    d = _error('model M(p: str = "a b") {\n    input x: [B, 4]\n'
               '    output x -> s: for i in 0..2 prefix "{p}" { linear(4) }\n}\n')  # fmt: skip
    assert d.code == "E0207" and d.message.startswith('prefix "{p}" is "a b" here') and d.span.col == 41


# ---- generated code ------------------------------------------------------------------------
def test_registered_modules_are_ruff_formatted(tmp_path):
    """`self.add_module(...)` lines split as ruff splits them, however long the constructor."""
    text = """
model M {
    input x: [B, 3, 32, 32]
    y = x -> "a-rather-long-module-name-0": conv(16, k=3, s=1, p=1, d=1, groups=1, bias=false)
    y = y -> "stage-with-a-long-name-1": (conv(16, k=3, p=1, bias=false) -> batchnorm -> relu
                                         -> conv(16, k=3, p=1, bias=false) -> batchnorm -> relu)
    output y -> for: relu -> class: conv(4, k=1)
}"""
    source = modelc.compile_source(text, "labels.model")
    path = tmp_path / "gen.py"
    path.write_text(source)
    result = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", "--diff", str(path)],
                            capture_output=True, text=True)  # fmt: skip
    if "No module named ruff" in result.stderr:
        pytest.skip("ruff is not installed")
    assert result.returncode == 0, result.stdout + result.stderr
    model = _load(text)()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 4, 32, 32)


def test_a_weight_tied_to_a_module_named_no_python_name():
    text = """
model M {
    input tokens: int64[B, T]
    h = tokens -> "wte-0": embedding(10, 8)
    output h -> "lm-head": linear(10, bias=false, tie="wte-0")
}"""
    source = modelc.compile_source(text, "labels.model")
    assert 'getattr(self, "lm-head").weight = getattr(self, "wte-0").weight  # tied' in source
    model = _load(text)()
    assert model.get_submodule("lm-head").weight is model.get_submodule("wte-0").weight
