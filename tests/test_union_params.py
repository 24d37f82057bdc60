"""Union parameter types: `block B(k: int | list = 3)` takes a value of any of its types; a
default or an argument of another type is E0407, located, with the accepted types listed."""

from __future__ import annotations

import modelc
import pytest
from modelc.cli import main as cli
from modelc.diagnostics import SpecError

torch = pytest.importorskip("torch")

SPEC = """\
block Conv(k: int | list = 3, scale: float | list = 1) {
    input x
    output x -> conv: conv(8, k=k) -> scale(scale if scale != [] else 1.0)
}
model M(k: int | list = 3) {
    input x: [B, 3, 16, 16]
    output x -> a: Conv -> b: Conv(k=[3, 5]) -> c: Conv(k, scale=[])
}
"""


def test_each_type_of_the_union_is_taken():
    model = modelc.load_source(SPEC, "t.model")()
    reference = [torch.nn.Conv2d(3, 8, 3), torch.nn.Conv2d(8, 8, (3, 5)), torch.nn.Conv2d(8, 8, 3)]
    assert [m.conv.kernel_size for m in (model.a, model.b, model.c)] == [r.kernel_size for r in reference]
    assert modelc.load_source(SPEC, "t.model", k=[1, 3])().c.conv.kernel_size == (1, 3)


def test_an_integer_stays_one_where_int_is_accepted_and_becomes_a_float_where_only_float_is():
    spec = "model M(a: int | float = 2, b: float | list = 2) {\n input x: [B, 4]\n output x * a * b\n}\n"
    graph = modelc.load_source(spec, "t.model").__modelc_graph__
    assert dict(graph.params) == {"a": 2, "b": 2.0}
    assert [type(v) for _, v in graph.params] == [int, float]


@pytest.mark.parametrize("value, expected", [("5", "(5, 5)"), ("3,5", "(3, 5)")])
def test_the_command_line_reads_a_value_of_the_union(tmp_path, capsys, value, expected):
    path = tmp_path / "m.model"
    path.write_text(SPEC)
    assert cli(["compile", str(path), "--param", f"k={value}"]) == 0
    assert f"nn.Conv2d(8, 8, {expected.replace('(5, 5)', '5')})" in capsys.readouterr().out


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as info:
        modelc.compile_source(spec, "t.model")
    return info.value.render()


MODEL = "model M {\n    input x: [B, 3, 16, 16]\n    output x -> B(K)\n}\n"


@pytest.mark.parametrize("block, call, words", [
    ("block B(k: int | list = 2.5) { input x\n output x }\n", "", [
        "t.model:1:25: error[E0407]: parameter 'k' of block B is int | list, got 2.5 (float)",
        "= hint: 'k' accepts int or list"]),
    ("block B(k: int | list = 3) { input x\n output x }\n", "k=\"x\"", [
        "t.model:5:19: error[E0407]: parameter 'k' of block B is int | list, got \"x\" (str)"]),
    ("block B(k: int | lst = 3) { input x\n output x }\n", "", [
        "t.model:1:18: error[E0407]: unknown parameter type 'lst'", "did you mean 'list'?"]),
    ("block B(k: int | str | int = 3) { input x\n output x }\n", "", [
        "t.model:1:24: error[E0407]: type 'int' is listed twice for parameter 'k'"]),
    ("block B(k: bool | float | str = []) { input x\n output x }\n", "", ["'k' accepts bool, float or str"]),
])  # fmt: skip
def test_errors(block, call, words):
    text = _error(block + MODEL.replace("K", call))
    for w in words:
        assert w in text, text


def test_a_command_line_value_of_none_of_the_types(tmp_path, capsys):
    path = tmp_path / "m.model"
    path.write_text("model M(k: int | bool = 3) {\n input x: [B, 4]\n output x }\n")
    assert cli(["check", str(path), "--param", "k=abc"]) == 1
    assert "--param k=abc: expected a value of type int | bool" in capsys.readouterr().err
