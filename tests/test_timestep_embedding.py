"""timestep_embedding: diffusion models' sinusoidal embedding of timesteps [B] -> [B, dim].

The oracle is diffusers' `get_timestep_embedding` (diffusers is not installed here), written
below element by element with Python's math from its documented formula:

    half = dim // 2
    exponent_i = -ln(max_period) * i / (half - downscale_freq_shift),  i = 0 .. half - 1
    emb = [sin(scale * t * e^exponent_i) for i] + [cos(same) for i]
    flip_sin_to_cos: the cosines first; an odd dim: a zero column last.

and checked once against values computed by hand.
"""

from __future__ import annotations

import math

import modelc
import pytest
from modelc.diagnostics import SpecError
from modelc.interpret import run_graph

torch = pytest.importorskip("torch")


def diffusers_formula(ts, dim, flip_sin_to_cos=False, downscale_freq_shift=1.0, scale=1.0, max_period=10000.0):
    half = dim // 2
    rows = []
    for t in ts:
        angles = [scale * float(t) * math.exp(-math.log(max_period) * i / (half - downscale_freq_shift))
                  for i in range(half)]  # fmt: skip
        sin, cos = [math.sin(a) for a in angles], [math.cos(a) for a in angles]
        rows.append((cos + sin if flip_sin_to_cos else sin + cos) + [0.0] * (dim % 2))
    return torch.tensor(rows, dtype=torch.float32)


def embed(args: str, t: torch.Tensor, dtype: str = "int64"):
    """(module output, interpreter output, IR type, source) of timestep_embedding(args) on t."""
    text = f"model M {{\n    input t: {dtype}[B]\n    output t -> timestep_embedding({args})\n}}\n"
    cls = modelc.load_source(text, "t.model")
    with torch.no_grad():
        got = cls()(t)
    graph = cls.__modelc_graph__
    return got, run_graph(graph, {}, [t])[0], graph.type_of(graph.outputs[0][1]), cls.__modelc_source__


T_INT = torch.tensor([0, 1, 10, 999, 500, 3])


@pytest.mark.parametrize("args, options", [
    ("8", {}),
    ("7", {}),  # odd: a zero column
    ("320, flip_sin_to_cos=true, downscale_freq_shift=0", {"flip_sin_to_cos": True, "downscale_freq_shift": 0.0}),
    ("64, scale=1000, max_period=100", {"scale": 1000.0, "max_period": 100.0}),
    ("16, downscale_freq_shift=0.5, flip_sin_to_cos=true", {"downscale_freq_shift": 0.5, "flip_sin_to_cos": True}),
])  # fmt: skip
def test_equals_diffusers_formula(args, options):
    dim = int(args.split(",")[0])
    t = T_INT if "scale" not in options else torch.tensor([0, 1, 2, 5])  # scale * t up to 5000
    want = diffusers_formula(t.tolist(), dim, **options)
    got, interpreted, ir_type, _ = embed(args, t)
    atol = 4e-7 * max(1.0, options.get("scale", 1.0) * float(t.max()))  # float32 angles: ~2 ulp of the largest
    for value in (got, interpreted):
        assert value.dtype == torch.float32 and value.shape == want.shape
        torch.testing.assert_close(value, want, rtol=0, atol=atol)
    assert ir_type.dtype == "float32" and ir_type.dims[1] == dim


def test_float_timesteps():
    t = torch.tensor([0.25, 17.5, 999.0])
    got, interpreted, _, _ = embed("10, flip_sin_to_cos=true", t, "float32")
    want = diffusers_formula(t.tolist(), 10, flip_sin_to_cos=True)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-4)
    torch.testing.assert_close(interpreted, want, rtol=0, atol=1e-4)


def test_hand_computed_values():
    """dim 4, t = 1, shift 1: frequencies 10000^0 = 1 and 10000^-1 = 1e-4, so
    [sin 1, sin 1e-4, cos 1, cos 1e-4]; flipped, the cosines first."""
    got, _, _, _ = embed("4", torch.tensor([1]))
    want = torch.tensor([[0.8414709848, 9.9999999833e-05, 0.5403023059, 0.9999999950]])
    torch.testing.assert_close(got, want, rtol=0, atol=1e-7)
    got, _, _, _ = embed("5, flip_sin_to_cos=true", torch.tensor([1]))
    torch.testing.assert_close(got, torch.tensor([[0.5403023059, 0.9999999950, 0.8414709848, 9.9999999833e-05, 0.0]]),
                               rtol=0, atol=1e-7)  # fmt: skip
    got, _, _, _ = embed("2, downscale_freq_shift=0", torch.tensor([0, 2]))  # one frequency, 1
    torch.testing.assert_close(got, torch.tensor([[0.0, 1.0], [math.sin(2), math.cos(2)]]), rtol=0, atol=1e-7)


def test_emitted_call_has_no_module():
    _, _, _, source = embed("320, flip_sin_to_cos=true, downscale_freq_shift=0", T_INT)
    assert "rt.timestep_embedding(t, 320, flip_sin_to_cos=True, downscale_freq_shift=0.0)" in source
    _, _, _, source = embed("8", T_INT)
    assert "rt.timestep_embedding(t, 8)  #" in source
    cls = modelc.load_source("model M {\n    input t: [B]\n    output t -> temb: timestep_embedding(8)\n}\n")
    assert dict(cls().state_dict()) == {}


@pytest.mark.parametrize("text, code, message", [
    ("input t: [B, 4]\n    output t -> timestep_embedding(8)", "E0305", "expects a rank-1 input"),
    ("input t: bool[B]\n    output t -> timestep_embedding(8)", "E0506", "got a bool tensor"),
    ("input t: [B]\n    output t -> timestep_embedding(3)", "E0404", "division by zero"),
    ("input t: [B]\n    output t -> timestep_embedding(8, max_period=0)", "E0404", "max_period must be positive"),
    ("input t: [B]\n    output t -> timestep_embedding(0)", "E0404", "must be at least 1"),
])  # fmt: skip
def test_refusals_are_located(text, code, message):
    with pytest.raises(SpecError) as info:
        modelc.compile_source(f"model M {{\n    {text}\n}}\n", "t.model")
    d = info.value.diagnostics[0]
    assert d.code == code and message in d.message, d.render()
    assert d.span.line == 3
