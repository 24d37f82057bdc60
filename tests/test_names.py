"""Names in generated modules: labels and automatic names never shadow nn.Module, the names
the IR, summary and diagrams show are the state_dict keys, and generated code stays valid.

The oracle for what nn.Module owns is the installed torch itself, not a list typed by hand.
"""

from __future__ import annotations

import keyword

import pytest

import modelc
from modelc.driver import build_all
from modelc.load import load_text
from modelc.names import GENERATED_ATTRIBUTES, MODULE_API, reserved_attribute
from modelc.summary import summarize

torch = pytest.importorskip("torch")


def module_attributes() -> set[str]:
    """Everything an nn.Module has: its class's attributes and a fresh instance's."""
    return set(dir(torch.nn.Module)) | set(vars(torch.nn.Module()))


def test_the_reserved_names_cover_torchs_nn_module():
    owned = module_attributes()
    assert {n for n in owned if not n.startswith("_")} <= MODULE_API
    assert all(reserved_attribute(n) for n in owned | GENERATED_ATTRIBUTES)


NAMES = sorted(n for n in module_attributes() | GENERATED_ATTRIBUTES if not n.startswith("__")) + [
    "_parameters", "_modules", "_call_impl", "_version", "set_submodule", "_x"]  # fmt: skip


@pytest.mark.parametrize("name", NAMES)
def test_a_label_cannot_take_a_module_attribute(name):
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source(f"model M {{ input x: [B, 4]  output x -> {name}: linear(4) }}", "n.model")
    assert info.value.diagnostics[0].code == "E0206", info.value.render()


def _camel(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in name.split("_") if part) or "Block"


BLOCKS = sorted({_camel(n) for n in NAMES} | {"Forward", "Training", "Train", "Eval", "To", "ZeroGrad",
                                             "StateDict", "Apply", "Float", "If", "Class", "Lambda"})  # fmt: skip


@pytest.mark.parametrize("block", BLOCKS)
def test_automatic_names_avoid_module_attributes_and_keywords(block):
    """Fault 7: `block Forward` became `self.forward = Forward()`; `block If` was `if.fc` in the
    summary and `if_.fc.weight` in the module."""
    if keyword.iskeyword(block) or block in ("torch", "nn", "rt"):
        pytest.skip("not a block name")
    text = (f"block {block} {{ input x  output x -> fc: linear(4) }}\n"
            f"model M {{ input x: [B, 4]  output x -> {block} -> {block} -> relu }}")  # fmt: skip
    graph = build_all(load_text(text, "n.model"))[0]
    cls = modelc.load_source(text, "n.model")
    model = cls()
    keys = set(model.state_dict())
    layers = {row["name"] for row in summarize(graph, "n.model")["layers"] if row["params"]}
    assert {k.rsplit(".", 1)[0] for k in keys} == layers  # the summary names the state_dict keys
    for name, _ in model.named_children():
        assert not reserved_attribute(name), name
    assert model(torch.randn(2, 4)).shape == (2, 4)  # forward still runs (nothing shadowed)
    assert isinstance(model.training, bool) and callable(model.forward)


def test_an_automatic_name_is_not_reported_as_defined_twice_by_the_user():
    text = ("block B { input x  output x -> fc: linear(4) }\n"
            "model M { input x: [B, 4]  output x -> B -> b: relu }")  # fmt: skip
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source(text, "n.model")
    d = info.value.diagnostics[0]
    assert d.code == "E0202" and "modelc gave an unlabelled block" in d.message
    assert d.notes and d.notes[0].span.col == text.splitlines()[1].index("B ->") + 1


@pytest.mark.parametrize("symbol", ["Bé", "Ｂ", "B\u200b", "B; import os", "ß"])
def test_symbol_names_from_the_api_are_ascii_identifiers(symbol):
    """Non-ASCII (or non-identifier) symbol names never reach generated code, even escaped."""
    with pytest.raises(modelc.SpecError) as info:
        build_all(load_text("model M { input x: [B, 8]  output x -> relu }", "s.model"), inputs={"x": (symbol, 8)})
    assert info.value.diagnostics[0].code == "E0404"


def test_summary_escapes_terminal_control_characters(tmp_path):
    """A string parameter (or file name) with ESC never reaches the terminal raw."""
    from modelc import cli

    spec = tmp_path / "esc\x1b[1m.model"
    spec.write_text('model M(s: str = "x") { input x: [B, 8]  output x -> relu }')
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert cli.main(["summary", str(spec), "--param", "s=a\x1b[2Jb\x07"]) == 0
    assert "\x1b" not in buf.getvalue() and "\x07" not in buf.getvalue()
    assert "\\x1b" in buf.getvalue()


def test_quoted_labels_name_modules_with_the_languages_own_words():
    source = modelc.compile_source(
        'model M {\n    input x: [B, 8]\n    output x -> "model": (linear(8) -> "input": relu) -> "output": linear(2)\n}\n',
        "q.model",
    )
    assert "self.model = rt.named_sequential(" in source and "self.output = nn.Linear(8, 2)" in source
    # A quoted label need not be a Python name (tests/test_labels.py), but stays a module name.
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source('model M {\n    input x: [B, 8]\n    output x -> "block1.0": relu\n}\n', "q.model")
    d = info.value.diagnostics[0]
    assert (d.code, str(d.span)) == ("E0207", "q.model:3:17")
    assert 'label "block1.0" cannot name a module' in d.message
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source('model M {\n    input x: [B, 8]\n    output x -> "forward": relu\n}\n', "q.model")
    assert info.value.diagnostics[0].code == "E0206"


def test_a_prefixed_range_numbers_its_items_from_the_range_start():
    text = ("block Layer(w: int) {\n    input x\n    output x -> fc: linear(w)\n}\n"
            "model M {\n    input x: [B, 8]\n"
            '    y = x -> block: for i in 1..4 prefix "denselayer" { Layer(8) }\n'
            '    output y -> more: for w in [8, 8] prefix "unit" { Layer(w) }\n}\n')  # fmt: skip
    graph = build_all(load_text(text, "d.model"))[0]
    names = sorted(graph.node(n).name for n in graph.nodes() if graph.node(n).params)
    assert names == ["block.denselayer1.fc", "block.denselayer2.fc", "block.denselayer3.fc",
                     "more.unit0.fc", "more.unit1.fc"]
