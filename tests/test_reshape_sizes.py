"""reshape and view to sizes their input no longer has: after `flatten(0, 1)` has merged
[B, T, C] into [B*T, C], `reshape([B, T, C])` reads B and T from the block's or model's input
that binds them (NOTE: [Sizes from other tensors] in compiler/ops/layout.py).

The generated code must take the run's sizes (`x.shape[0]`), never the sizes of an example:
each module is run at two batch sizes and sequence lengths, and compared with torch's
functions applied token by token, which need no reshaping at all.
"""

from __future__ import annotations

import modelc
import pytest
from modelc.diagnostics import SpecError
from modelc.interpret import run_graph
from modelc.verify import verify_module

torch = pytest.importorskip("torch")
F = torch.nn.functional

SIZES = [(2, 5), (3, 7)]


def load(text: str, optimize: int = 0):
    cls = modelc.load_source(text, "t.model", optimize=optimize)
    if not optimize:
        verify_module(cls, cls.__modelc_graph__)
    return cls


def check_types(cls, inputs, outputs) -> None:
    """The IR's output shapes, with the run's sizes for B and T, are torch's."""
    graph = cls.__modelc_graph__
    b, t = inputs[0].shape[:2]
    for (_, ref), out in zip(graph.outputs, outputs):
        dims = [{"B": b, "T": t}.get(str(d), d) for d in graph.type_of(ref).dims]
        assert dims == list(out.shape) and graph.type_of(ref).dtype == str(out.dtype).removeprefix("torch.")


@pytest.mark.parametrize("optimize", [0, 2])
def test_a_merged_dimension_split_by_the_models_symbols(optimize):
    cls = load("""
    model M {
        input x: [B, T, 16]
        h = x -> flatten(0, 1) -> fc: linear(8)                 # [B*T, 8]
        output h -> reshape([B, T, 8]), h -> view([B, -1, 8])
    }""", optimize)
    source = cls.__modelc_source__
    assert "h.reshape(x.shape[0], x.shape[1], 8)" in source and "view(x.shape[0], -1, 8)" in source
    model = cls().eval()
    for b, t in SIZES:
        x = torch.randn(b, t, 16)
        with torch.no_grad():
            a, v = model(x)
        want = F.linear(x, model.fc.weight, model.fc.bias)
        torch.testing.assert_close(a, want)
        torch.testing.assert_close(v, want)
        check_types(cls, [x], [a, v])
        if not optimize:
            torch.testing.assert_close(run_graph(cls.__modelc_graph__, model.state_dict(), [x])[0], want)


def test_in_a_block_the_sizes_come_from_its_input():
    cls = load("""
    block PerToken(width: int) {
        input x: [B, T, C]
        output x -> flatten(0, 1) -> fc: linear(width) -> relu -> reshape([B, T, width])
    }
    model M {
        input x: [B, T, 16]
        output x -> tok: PerToken(4)
    }""")
    assert "reshape(x.shape[0], x.shape[1], 4)" in cls.__modelc_source__
    model = cls().eval()
    for b, t in SIZES:
        x = torch.randn(b, t, 16)
        with torch.no_grad():
            got = model(x)
        torch.testing.assert_close(got, F.relu(F.linear(x, model.tok.fc.weight, model.tok.fc.bias)))
        check_types(cls, [x], [got])


def test_sizes_from_two_inputs():
    """B from x, T from y: every (b, t) pair, summed and regrouped."""
    cls = load("""
    model M {
        input x: [B, 8]
        input y: [T, 8]
        pairs = (x -> unsqueeze(1)) + (y -> unsqueeze(0)) -> flatten(0, 1)   # [B*T, 8]
        output pairs -> fc: linear(4) -> reshape([B, T, 4])
    }""")
    assert "reshape(x.shape[0], y.shape[0], 4)" in cls.__modelc_source__
    model = cls().eval()
    for b, t in SIZES:
        x, y = torch.randn(b, 8), torch.randn(t, 8)
        with torch.no_grad():
            got = model(x, y)
        torch.testing.assert_close(got, F.linear(x[:, None] + y[None], model.fc.weight, model.fc.bias))


def test_a_numbered_sequence_cannot_read_other_inputs():
    with pytest.raises(SpecError) as info:
        modelc.compile_source("""model M {
    input x: [B, T, 16]
    output x -> f: (flatten(0, 1) -> linear(8) -> reshape([B, T, 8]))
}""", "t.model")
    text = info.value.render()
    assert "t.model:3:51: error[E0304]: reshape: sizes [B, T, 8] cannot all be computed from the sizes [B*T, 8]" in text
    assert "name the sizes in a block input's shape (input x: [B, T, C])" in text
