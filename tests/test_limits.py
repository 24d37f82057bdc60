"""Pathological input ends quickly in a SpecError (E0508 and friends), never a hang,
a RecursionError or exhausted memory."""

from __future__ import annotations

import ast
import time

import pytest

import modelc
from modelc import elaborate
from modelc.diagnostics import SpecError
from modelc.load import MAX_FILE_BYTES


def code_of(text: str, path: str = "limits.model") -> str:
    start = time.perf_counter()
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, path)
    assert time.perf_counter() - start < 10, "a limit must trip fast"
    return info.value.diagnostics[0].code


@pytest.mark.parametrize("text", [
    "model M { input x: [B, 3]  output x -> repeat 1000000000 relu }",
    "model M { input x: [B, 3]  output x -> repeat (10**18) relu }",
    "model M { input x: [B, 3]  output x -> s: for i in 0..10**9 { relu } }",
    "model M { input x: [B, 3]  n = len([0] * 10**8)  output x }",
    "model M { input x: [B, 3]  n = 2 ** 10 ** 9  output x }",
    "model M { input x: [B, 3]  output x -> linear(2**40) -> linear(2**40) }",
    "model M { input x: [B, 3, 2**40]  output x }",
])  # fmt: skip
def test_resource_limits(text):
    assert code_of(text) in ("E0508", "E0404")


def test_nested_blocks_hit_the_depth_limit():
    n = elaborate.LIMITS["depth"] + 2
    blocks = "\n".join(f"block B{i} {{ input x  output x -> B{i + 1} }}" for i in range(n))
    text = blocks + f"\nblock B{n} {{ input x  output x -> relu }}\nmodel M {{ input x: [B, 3]  output x -> B0 }}"
    assert code_of(text) == "E0508"


def test_nested_sequences_hit_the_depth_limit():
    # Each [...] is a numbered sequence inside the last, emitted as nested nn.Sequential(...):
    # past Python's 200 nested parentheses the generated file would not even parse.
    def nested(n: int) -> str:
        return "model M { input x: [B, 3]  output x -> s: " + "[" * n + "relu" + "]" * n + " }"  # n deep

    n = elaborate.LIMITS["depth"]
    ast.parse(modelc.compile_source(nested(n), "deep.model"))
    assert code_of(nested(n + 1)) == "E0508"
    assert code_of(nested(200)) == "E0508"


def test_recursive_block_is_an_error_not_a_hang():
    assert code_of("block A { input x  output x -> A }\nmodel M { input x: [B, 3]  output x -> A }") == "E0503"


@pytest.mark.parametrize("expr", ["(" * 5000 + "1" + ")" * 5000, "-" * 5000 + "1", "[" * 5000 + "]" * 5000])
def test_deep_nesting(expr):
    text = "model M { input x: [B, 3]  n = " + expr + "  output x -> relu }"
    try:
        modelc.compile_source(text, "deep.model")  # parentheses alone add no depth
    except SpecError as exc:
        assert exc.diagnostics[0].code == "E0508"
        assert len(exc.render()) < 1000  # the excerpt of a huge line is cut


def test_node_limit(monkeypatch):
    monkeypatch.setitem(elaborate.LIMITS, "nodes", 50)
    assert code_of("model M { input x: [B, 3]  output x -> repeat 100 relu }") == "E0508"


def test_real_node_limit_trips_in_seconds():
    # 100,000 layers: any spec within the limits elaborates in seconds.
    text = "model M { input x: [B, 3]  output x -> repeat 1000 repeat 1000 relu }"
    assert code_of(text) == "E0508"


@pytest.mark.parametrize("char", ["x", "\u00e9"])  # one byte, two bytes in UTF-8
def test_source_text_has_the_file_limit(char):
    text = "# " + char * (MAX_FILE_BYTES // len(char.encode()) + 1) + "\nmodel M { input x: [B, 3]  output x }"
    assert len(text) < 2 * MAX_FILE_BYTES
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, "big.model")
    (diag,) = info.value.diagnostics
    assert diag.code == "E0508" and f"limited to {MAX_FILE_BYTES:,}" in diag.message
    just_under = "model M { input x: [B, 3]  output x }\n#" + "x" * (MAX_FILE_BYTES - 100)
    assert "class M(nn.Module)" in modelc.compile_source(just_under, "ok.model")


def test_error_flood_is_capped():
    lines = "\n".join(f"  y{i} = undefined{i}" for i in range(500))
    with pytest.raises(SpecError) as info:
        modelc.compile_source(f"model M {{ input x: [B, 3]\n{lines}\n  output x }}", "m.model")
    assert len(info.value.diagnostics) == elaborate.LIMITS["errors"]


def test_file_limits(tmp_path):
    big = tmp_path / "big.model"
    big.write_bytes(b"# " + b"x" * (MAX_FILE_BYTES + 10))
    binary = tmp_path / "binary.model"
    binary.write_bytes(bytes(range(256)) * 10)
    empty = tmp_path / "empty.model"
    empty.write_text("")
    for path, code in ((big, "E0508"), (binary, "E0106"), (empty, "E0504"), (tmp_path / "nope.model", "E0104")):
        with pytest.raises(SpecError) as info:
            modelc.compile_file(str(path))
        assert info.value.diagnostics[0].code == code, info.value.render()


def _squarings(start: str, n: int, op: str = "s * s") -> str:
    lines = "\n".join(f"    s = {op}" for _ in range(n))
    return f"model M {{\n    input x: [B, 8]\n    s = {start}\n{lines}\n    output x\n}}"


@pytest.mark.parametrize("text", [
    _squarings("B + 1", 24),  # (B + 1) ** (2 ** 24): terms double per line
    _squarings("B", 24),  # B ** (2 ** 24): one term, degree doubling
    _squarings("B * 2 + B // 3 + 7", 24),
    _squarings("[1]", 28, "s + s"),  # a list doubling per line: 2 ** 28 items
    _squarings("[[0.0] * 1000]", 28, "s + s"),
    "model M { input x: [B, 1, 8, 8]  r = [0.0] * 1000000  w = [r] * 1000000  "
    "output x -> conv(1, k=3, weight=[[w]]) }",  # a 10**6 x 10**6 literal weight
    "model M { input x: [B, 8]  l = [1]  " + "  ".join(["l = [l, l]"] * 40) + "  output x }",
])  # fmt: skip
def test_growth_of_values_is_bounded(text):
    """Fault 9: tiny specs whose values grow exponentially (18 s and 405 MB for 24 lines;
    3.2 GB for 28) end at once in a located E0508."""
    with pytest.raises(SpecError) as info:
        start = time.perf_counter()
        modelc.compile_source(text, "grow.model")
    assert time.perf_counter() - start < 10
    d = info.value.diagnostics[0]
    assert d.code == "E0508" and d.span is not None, info.value.render()


def test_symbolic_growth_in_shapes_is_bounded():
    """Shape rules meet the same bound: a located E0508, not a slow or huge dimension."""
    steps = "\n".join(["  x = concat(x -> maxpool(2), x -> maxpool(3), dim=2)"] * 16)
    text = f"model M {{\n  input x: [B, C, L]\n{steps}\n  output x\n}}"  # floor(L/2) + floor(L/3), nested
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, "grow.model")
    assert info.value.diagnostics[0].code == "E0508"


def test_values_within_the_bounds_still_work():
    ok = ("model M { input x: [B, 1, 8, 8]  row = [0.5] * 3  k = [row, row, row]\n"
          "  d = (B + 1) * (B + 2) * (B + 3)\n  output x -> conv(1, k=3, weight=[[k]]) }")  # fmt: skip
    assert "Conv2d" in modelc.compile_source(ok, "ok.model")


@pytest.mark.parametrize("op,term", [("+", "1"), ("*", "1"), ("or", "false"), ("and", "true"), ("+", "x")])
def test_a_long_flat_expression_is_not_deep(op, term):
    """`a + b + c + ...` is a flat list, folded in a loop: 20,000 terms are not 'nested too
    deeply' (they were: the parser's tree and the evaluator both recursed per operator)."""
    expr = f" {op} ".join([term] * 20_000)
    text = f"model M {{\n  input x: [B, 8]\n  n = {expr}\n  output x\n}}" if term != "x" else \
        f"model M {{\n  input x: [B, 8]\n  y = {' + '.join(['x'] * 3000)}\n  output y\n}}"
    source = modelc.compile_source(text, "flat.model")
    assert "class M(nn.Module)" in source
