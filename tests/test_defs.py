"""Defs: `def bn = batchnorm(eps=1e-3, momentum=0.01)` names an op or block call with some of its
arguments (NOTE: [Defs are calls written out] in compiler/elaborate/defs.py).

A use is the call written out: the generated code must be byte for byte the same as that of
the spec with every call written out (the lines are kept in place, so even the `# file:line`
comments agree), and the modules are torch's own with the configured arguments.
"""

from __future__ import annotations

import modelc
import pytest
from modelc.diagnostics import SpecError

torch = pytest.importorskip("torch")
nn = torch.nn

WRITTEN_OUT = """\
block Stem(w: int, k: int = 3) {
    input x
    output x -> conv: conv(w, k=k, p=k // 2, bias=false) -> bn: batchnorm(eps=0.001, momentum=0.01) -> relu
}
model M {
    input x: [B, 3, 16, 16]
    y = x -> Stem(8, k=1) -> Stem(8, k=1) -> stem2: Stem(16, k=5)
    y = y -> conv(16, k=3, p=1, bias=false) -> bn1: batchnorm(eps=0.001, momentum=0.01) -> relu
    y = batchnorm(y, eps=0.001, momentum=0.01, affine=false)
    output y -> f: [conv(16, k=3, p=1, bias=false), batchnorm(eps=0.001, momentum=0.01), hardswish]
}
"""

WITH_DEFS = """\
block Stem(w: int, k: int = 3) {
    input x
    output x -> conv: conv(w, k=k, p=k // 2, bias=false) -> bn: bn -> relu
}
model M {
    input x: [B, 3, 16, 16]
    y = x -> stem1 -> stem1 -> stem2: Stem(16, k=5)
    y = y -> c3(16) -> bn1: bn -> relu
    y = bn(y, affine=false)
    output y -> f: [c3(16), bn, hardswish]
}
def bn = batchnorm(eps=0.001, momentum=0.01)
def c3 = conv(k=3, p=1, bias=false)
def stem = Stem(k=1)
def stem1 = stem(8)
"""


def test_a_use_is_the_call_written_out():
    assert modelc.compile_source(WITH_DEFS, "t.model") == modelc.compile_source(WRITTEN_OUT, "t.model")


def test_a_def_in_a_body_sees_the_parameters():
    """On the line of the input, so that the lines of the two specs stay the same."""
    written = "model M(e: float = 0.01) {\n    input x: [B, 4]\n    output x -> batchnorm(eps=e) -> n: batchnorm(eps=e)\n}\n"
    defined = written.replace("input x: [B, 4]", "input x: [B, 4]  def norm = batchnorm(eps=e)")
    defined = defined.replace("-> batchnorm(eps=e) -> n: batchnorm(eps=e)", "-> norm -> n: norm")
    assert modelc.compile_source(defined, "t.model", e=0.5) == modelc.compile_source(written, "t.model", e=0.5)


def test_the_modules_are_torchs_with_the_configuration():
    model = modelc.load_source(WITH_DEFS, "t.model")()
    assert type(model.bn1) is nn.BatchNorm2d and (model.bn1.eps, model.bn1.momentum) == (0.001, 0.01)
    assert type(model.f[1]) is nn.BatchNorm2d and model.f[1].momentum == 0.01
    assert [type(m).__name__ for m in model.stem.modules()] == ["Stem", "Conv2d", "BatchNorm2d"]
    assert model.stem2.conv.kernel_size == (5, 5) and model.stem.conv.kernel_size == (1, 1)
    assert "bn1.running_var" in model.state_dict() and not any(".0.bn1" in k for k in model.state_dict())


def test_an_imported_def(tmp_path):
    (tmp_path / "layers.model").write_text("def bn = batchnorm(eps=0.001)\n")
    (tmp_path / "net.model").write_text('import "layers.model"\nmodel M { input x: [B, 4]\n output x -> bn }\n')
    model = modelc.load(str(tmp_path / "net.model"))()
    assert model.batchnorm.eps == 0.001


def _error(spec: str) -> str:
    with pytest.raises(SpecError) as info:
        modelc.compile_source(spec, "t.model")
    return info.value.render()


@pytest.mark.parametrize("spec, words", [
    ("def bn = batchnrom(eps=1)\nmodel M { input x: [B, 3]\n output x -> bn }",
     ["t.model:1:10: error[E0203]: unknown op or block 'batchnrom'", "did you mean 'batchnorm'?"]),
    ("def a = b(eps=1)\ndef b = a()\nmodel M { input x: [B, 3]\n output x -> a }",
     ["t.model:1:9: error[E0205]: def 'a' is defined in terms of itself (a -> b -> a)"]),
    ("def a = a(eps=1)\nmodel M { input x: [B, 3]\n output x -> a }", ["def 'a' is defined in terms of itself (a -> a)"]),
    ("def a = batchnorm(eps=1)\nmodel M { input x: [B, 3]\n output x -> a(eps=2) }",
     ["t.model:3:16: error[E0408]: attribute 'eps' of batchnorm is given by def a already",
      "note: given here at t.model:1:19"]),
    ("def a = conv(8, kernel_size=3)\nmodel M { input x: [B, 3, 8, 8]\n output x -> a(k=1) }",
     ["error[E0408]: attribute 'k' of conv is given by def a already"]),
    ("def a = conv(k=3)\nmodel M { input x: [B, 3, 8, 8]\n output x -> a(8, 5) }",
     ["t.model:3:19: error[E0408]: attribute 'k' of conv is given by def a already"]),
    ("def a = batchnorm(eps=1)\ndef b = a(eps=2)\nmodel M { input x: [B, 3]\n output x -> b }",
     ["t.model:2:11: error[E0408]: attribute 'eps' of batchnorm is given by def a already"]),
    ("block S(w: int) { input x\n output x }\ndef s = S(w=1)\nmodel M { input x: [B, 3]\n output x -> s(2) }",
     ["error[E0408]: argument 'w' of block S is given by def s already"]),
    ("model M { input x: [B, 3]\n def a = add(x)\n output x -> a }",
     ["t.model:2:14: error[E0509]: a def cannot take a tensor"]),
    ("def m = min(1, 2)\nmodel M { input x: [B, 3]\n output x -> m }", ["error[E0509]: min() is a compile-time function"]),
    ("def a = batchnorm(eps=1)\nmodel M { input x: [B, 3]\n y = a\n output x }",
     ["error[E0506]: 'a' is a def, a layer with some of its attributes, not a value", "apply it: x -> a"]),
    ("model M { input x: [B, 3]\n def a = batchnorm(eps=1)\n a = x -> relu\n output a }",
     ["t.model:3:2: error[E0202]: 'a' is a def of this body (line 2); a binding cannot take its name"]),
    ("def relu = leaky_relu(0.2)\nmodel M { input x: [B, 3]\n output x -> relu }",
     ["t.model:1:5: error[E0202]: 'relu' is the name of a built-in op"]),
    ("def len = leaky_relu(0.2)\nmodel M { input x: [B, 3]\n output x }", ["'len' is the name of a built-in function"]),
    ("def bn = batchnorm(eps=1)\ndef bn = batchnorm(eps=2)\nmodel M { input x: [B, 3]\n output x }",
     ["t.model:2:5: error[E0202]: 'bn' is defined twice"]),
    ("model M(k: int = 2) { input x: [B, 3]\n def k = leaky_relu(0.2)\n output x -> k }",
     ["t.model:2:6: error[E0202]: 'k' is already defined in M"]),
    ("model M { input x: [B, 3]\n def = x -> relu\n output x }",
     ["error[E0101]", "'def' is a reserved word"]),
])  # fmt: skip
def test_errors(spec, words):
    text = _error(spec)
    for w in words:
        assert w in text, text


def test_an_error_in_a_used_def_is_reported_once():
    text = _error("def bn = batchnorm(epz=1)\nmodel M { input x: [B, 3]\n output x -> bn -> bn -> bn }")
    assert text.count("error[E0401]: batchnorm has no attribute 'epz'") == 1


def test_the_language_server_outlines_and_finds_defs(tmp_path):
    from modelc.lsp.analysis import analyze
    from modelc.lsp.navigate import definition
    from modelc.lsp.outline import complete, symbols

    path = str(tmp_path / "net.model")
    a = analyze(WITH_DEFS, path)
    assert not a.problems
    outline = [(s.name, s.kind, s.detail) for s in symbols(a)]
    assert ("bn", "def", "def: batchnorm") in outline and ("stem1", "def", "def: stem") in outline
    line = WITH_DEFS.splitlines().index("    y = y -> c3(16) -> bn1: bn -> relu") + 1
    target = definition(a, line, WITH_DEFS.splitlines()[line - 1].index("c3") + 1)
    assert target.region[0] == WITH_DEFS.splitlines().index("def c3 = conv(k=3, p=1, bias=false)") + 1
    body = "model M { input x: [B, 4]\n def n = batchnorm(eps=0.5)\n output x -> n }\n"
    (model,) = symbols(analyze(body, path))
    assert [(c.name, c.kind) for c in model.children] == [("x", "input"), ("n", "def"), ("output", "output")]
    line = WITH_DEFS.splitlines().index("    y = y -> c3(16) -> bn1: bn -> relu") + 1
    col = len("    y = y -> c3(16) -> ") + 1
    assert {"bn", "c3", "stem1", "conv"} <= {c.label for c in complete(a, line, col)}
