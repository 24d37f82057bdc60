"""`parameter`'s initialisers: what each one starts at, what it refuses, and that modules
holding them still build on the meta device (FSDP2 and large-model construction)."""

from __future__ import annotations

import modelc
import pytest
from modelc.diagnostics import SpecError

torch = pytest.importorskip("torch")


def initial(args: str, shape: str = "[64, 64]"):
    op = "@" if "," in shape else "+"  # a [64, 64] matrix multiplies, a [64] vector adds
    text = f"model M {{\n    input x: [B, 64]\n    output x {op} p: parameter({shape}{args})\n}}\n"
    cls = modelc.load_source(text, "t.model")
    torch.manual_seed(0)
    return cls().p.detach(), cls.__modelc_source__


@pytest.mark.parametrize("args, check", [
    ("", lambda p: abs(p.std().item() - 0.02) < 0.002 and abs(p.mean().item()) < 0.002),
    (", std=0.5", lambda p: abs(p.std().item() - 0.5) < 0.05),
    (", std=0", lambda p: torch.equal(p, torch.zeros(64, 64))),
    (', init="trunc_normal", std=1.0', lambda p: p.abs().max().item() <= 2.0 and 0.7 < p.std().item() < 1.0),
    (', init="uniform", low=-0.1, high=0.3', lambda p: -0.1 <= p.min().item() and p.max().item() <= 0.3
     and abs(p.mean().item() - 0.1) < 0.01),
    (', init="zeros"', lambda p: torch.equal(p, torch.zeros(64, 64))),
    (', init="ones"', lambda p: torch.equal(p, torch.ones(64, 64))),
    (', init="constant", value=1e-6', lambda p: torch.equal(p, torch.full((64, 64), 1e-6))),
])  # fmt: skip
def test_each_initialiser_starts_where_it_says(args, check):
    p, _ = initial(args)
    assert check(p), (args, p.mean().item(), p.std().item())


def test_the_default_keeps_its_emitted_form():
    _, source = initial("")
    assert "self.p = rt.parameter(64, 64, std=0.02)" in source
    _, source = initial(', init="ones"', "[64]")
    assert "self.p = rt.parameter(64, init=\"ones\")" in source


@pytest.mark.parametrize("args, message", [
    (', init="constant"', 'value goes with init="constant"'),
    (", value=1.0", 'value goes with init="constant"'),
    (', init="uniform", low=1.0, high=1.0', "uniform needs low < high"),
    (', init="ones", std=0.1', 'std does not apply to init="ones"'),
    (', init="xavier"', 'must be one of'),
])  # fmt: skip
def test_inconsistent_initialisers_are_refused(args, message):
    with pytest.raises(SpecError) as info:
        initial(args)
    assert message in info.value.diagnostics[0].message


def test_meta_device_construction_then_materialise():
    text = ('model M {\n    input x: [B, 8]\n    g = gamma: parameter([8], init="constant", value=0.5)\n'
            '    output x * g + beta: parameter([8], init="zeros")\n}\n')  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    with torch.device("meta"):
        m = cls()
    assert m.gamma.is_meta
    m.to_empty(device="cpu")
    m.load_state_dict(cls().state_dict())
    assert torch.equal(m(torch.ones(2, 8)), torch.full((2, 8), 0.5))
