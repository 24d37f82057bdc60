"""Memory layout (NOTE: [Memory layout] in ops/base.py): `view` of a tensor that may not be
contiguous is E0306 at compile time, not a RuntimeError when the model runs.

The claims that matter are the ones that let a view through: an op said to return a new
contiguous tensor must really do so when its input is strided (checked in torch below),
and a part along the first dimension must keep a contiguous input contiguous."""

from __future__ import annotations

import pytest

import modelc
from modelc import ops
from modelc.diagnostics import SpecError
from modelc.verify import verify_module


def code_of(text: str) -> str | None:
    try:
        modelc.compile_source(text, "layout.model")
    except SpecError as exc:
        return exc.diagnostics[0].code
    return None


# A strided input (transposed), then an op that returns a new tensor, then a view.
NEW = {
    "linear": "model M { input x: [B, 4, 6]  output x -> transpose(1, 2) -> linear(5) -> view([B, 30]) }",
    "matmul": "model M { input x: [B, 4, 6]\n  a = x -> transpose(1, 2)\n  output (a @ x) -> view([B, 36]) }",
    "layer_norm": "model M { input x: [B, 4, 6]  output x -> transpose(1, 2) -> layer_norm -> view([B, 24]) }",
    "embedding": ("model M { input t: int64[B, 4, 6]  output t -> transpose(1, 2) -> embedding(10, 3) "
                  "-> view([B, 72]) }"),
    "mean": "model M { input x: [B, 4, 6, 5]  output x -> permute([0, 2, 1, 3]) -> mean(2) -> view([B, 30]) }",
    "sum": "model M { input x: [B, 4, 6, 5]  output x -> permute([0, 2, 1, 3]) -> sum(2) -> view([B, 30]) }",
    "amax": "model M { input x: [B, 4, 6, 5]  output x -> permute([0, 2, 1, 3]) -> amax([1, 2]) -> view([B, 5]) }",
    "var": "model M { input x: [B, 4, 6, 5]  output x -> permute([0, 2, 1, 3]) -> var(2) -> view([B, 30]) }",
    "rms_norm": "model M { input x: [B, 4, 6]  output x -> transpose(1, 2) -> rms_norm -> view([B, 24]) }",
    "topk": "model M { input x: [B, 4, 6]\n  v, i = x -> transpose(1, 2) -> topk(2)\n  output v -> view([B, 12]) }",
    "argmax": "model M { input x: [B, 4, 6, 5]  output x -> permute([0, 2, 1, 3]) -> argmax(3) -> view([B, 24]) }",
    "one_hot": "model M { input t: int64[B, 4, 6]  output t -> transpose(1, 2) -> one_hot(5) -> view([B, 120]) }",
    "gather": ("model M { input x: [B, 4, 6]  input i: int64[B, 6, 2]\n  output gather(transpose(x, 1, 2), i, 2) "
               "-> view([B, 12]) }"),
    "timestep_embedding": "model M { input x: [B, 4]  output x -> select(1, 0) -> timestep_embedding(6) -> view([B, 2, 3]) }",
    "window_partition": ("model M { input x: [B, 8, 4, 4]  output x -> permute([0, 2, 3, 1]) "
                         "-> window_partition(2) -> view([B, 128]) }"),
    "window_reverse": "model M { input x: [4, 8, 3]  output x -> transpose(0, 1) -> window_reverse(2, 4, 4) -> view([2, 48]) }",
}


def test_every_new_layout_op_is_tested():
    claimed = {name for name, op in ops.REGISTRY.items() if op.layout({"dim": -1}) == "new"}
    assert claimed - {"index_select"} == set(NEW)  # index_select: torch allocates its output


@pytest.mark.parametrize("op", sorted(NEW))
def test_new_tensors_can_be_viewed(op):
    pytest.importorskip("torch")
    cls = modelc.load_source(NEW[op], "layout.model")
    verify_module(cls, cls.__modelc_graph__)  # torch's view would raise on a strided input


@pytest.mark.parametrize("text, source", [
    ("model M { input x: [B, 4, 6]  output x -> permute([0, 2, 1]) -> view([B, 24]) }", "permute"),
    ("model M { input x: [B, 4, 6]  output x -> transpose(1, 2) -> relu -> dropout(0.1) -> view([B, 24]) }",
     "transpose"),
    ("model M { input x: [B, 4, 6]\n  a = x -> transpose(1, 2)\n  output (a + a) * 2 -> view([B, 24]) }", "transpose"),
    ("model M { input x: [B, 4, 6]  output x -> slice(2, 0, 3) -> view([B, 12]) }", "slice"),
    ("model M { input x: [B, 4, 6]\n  a, b = x -> chunk(2, dim=1)\n  output a -> view([B, 12]) }", "chunk"),
    ("model M { input x: [B, 4, 6]  output x -> self_attention(2) -> view([B, 24]) }", "self_attention"),
    ("model M { input x: [B, 4, 6]  output x -> lstm(6) -> view([B, 24]) }", "lstm"),
])  # fmt: skip
def test_view_of_a_possibly_strided_tensor_is_e0306(text, source):
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, "layout.model")
    (diag,) = info.value.diagnostics
    assert diag.code == "E0306" and f"{source} changes its layout" in diag.message
    assert diag.notes[0].message == f"the {source} is here"


@pytest.mark.parametrize("text", [
    "model M { input x: [B, 4, 6]  output x -> relu -> view([B, 24]) }",
    "model M { input x: [4, 6, 5]\n  a, b = x -> chunk(2, dim=0)\n  output a -> view([60]) }",
    "model M { input x: [4, 6, 5]  output x -> slice(0, 1, 3) -> view([60]) }",
])  # fmt: skip
def test_contiguous_views_compile_and_run(text):
    assert code_of(text) is None
    pytest.importorskip("torch")
    cls = modelc.load_source(text, "layout.model")
    verify_module(cls, cls.__modelc_graph__)
