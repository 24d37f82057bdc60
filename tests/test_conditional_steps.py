"""Conditional steps: `x -> (hardswish if hs else relu)` in a chain and `[conv, bn, relu if act]`
in a numbered list (NOTE: [Conditional steps] in compiler/elaborate/steps.py).

The oracle for numbering is torchvision: `Conv2dNormActivation` appends its norm and activation
only when given, so a layer left out takes no index and the ones after it move up; an
`nn.Identity` in an `nn.Sequential` takes one. Values are checked against torch's functions.
"""

from __future__ import annotations

import modelc
import pytest
from modelc.diagnostics import SpecError
from modelc.verify import verify_module

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn, F = torch.nn, torch.nn.functional
Conv2dNormActivation = torchvision.ops.Conv2dNormActivation


def load(body: str, **params):
    text = f"model M(hs: bool = true, act: bool = true, norm: bool = true) {{\n    input x: [B, 3, 8, 8]\n{body}\n}}\n"
    cls = modelc.load_source(text, "t.model", **params)
    verify_module(cls, cls.__modelc_graph__)
    return cls


def keys_and_types(module: nn.Module) -> list[tuple[str, str]]:
    """(name, class) of each submodule; torchvision's Sequential subclasses count as Sequential."""
    return [(name, "Sequential" if isinstance(m, nn.Sequential) else type(m).__name__)
            for name, m in module.named_modules() if name]  # fmt: skip


def twin(ours: nn.Module, reference: nn.Module) -> None:
    """Same module tree (names and types) and state_dict; the same function on the same weights."""
    assert keys_and_types(ours) == keys_and_types(reference)
    reference.load_state_dict(ours.state_dict(), strict=True)
    ours.eval(), reference.eval()
    x = torch.randn(2, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), reference(x))


@pytest.mark.parametrize("hs", [True, False])
def test_a_numbered_list_chooses_its_activation_like_conv2d_norm_activation(hs):
    cls = load("    output x -> f: [conv(16, k=3, p=1, bias=false), batchnorm, hardswish if hs else relu]", hs=hs)
    torch.manual_seed(0)
    reference = nn.Sequential()
    reference.f = Conv2dNormActivation(3, 16, 3, activation_layer=nn.Hardswish if hs else nn.ReLU)
    twin(cls(), reference)


@pytest.mark.parametrize("act, norm", [(False, True), (True, False), (False, False)])
def test_a_step_left_out_takes_no_number(act, norm):
    """No activation: conv and norm are f.0, f.1; no norm: the activation is f.1, as torchvision's."""
    cls = load("    output x -> f: [conv(16, k=3, p=1, bias=not norm), batchnorm if norm, relu if act]",
               act=act, norm=norm)  # fmt: skip
    reference = nn.Sequential()
    reference.f = Conv2dNormActivation(3, 16, 3, norm_layer=nn.BatchNorm2d if norm else None,
                                       activation_layer=nn.ReLU if act else None)  # fmt: skip
    twin(cls(), reference)
    assert len(cls().f) == 1 + act + norm


def test_identity_takes_a_number_as_nn_identity_does():
    cls = load("    output x -> f: [conv(16, k=1), identity if act else relu, batchnorm]")
    reference = nn.Sequential()
    reference.f = nn.Sequential(nn.Conv2d(3, 16, 1), nn.Identity(), nn.BatchNorm2d(16))
    twin(cls(), reference)
    assert "f.2.weight" in cls().state_dict()


@pytest.mark.parametrize("hs", [True, False])
def test_in_a_chain(hs):
    cls = load("    output x -> conv(16, k=3) -> batchnorm -> (hardswish if hs else relu)", hs=hs)
    model = cls().eval()
    x = torch.randn(2, 3, 8, 8)
    y = F.batch_norm(F.conv2d(x, model.conv.weight, model.conv.bias), model.batchnorm.running_mean,
                     model.batchnorm.running_var, model.batchnorm.weight, model.batchnorm.bias)  # fmt: skip
    with torch.no_grad():
        torch.testing.assert_close(model(x), F.hardswish(y) if hs else F.relu(y))
    assert ("hardswish" in cls.__modelc_source__) == hs and ("relu" in cls.__modelc_source__) != hs


def test_the_condition_is_looser_than_the_chain_and_branches_continue_the_numbering():
    """`(a -> b if c else d)` is `(a -> b) if c else d`; an unlabelled branch flattens into the
    numbered sequence around it, and only the chosen branch is built."""
    body = "    output x -> f: (conv(8, k=1) -> (relu -> conv(4, k=1) if act else conv(99, k=K)) -> batchnorm)"
    taken = load(body.replace("K", "9"), act=True)().f  # a 9x9 kernel on 8x8: an error, were it built
    other = load(body.replace("K", "3"), act=False)().f
    assert keys_and_types(taken) == [("0", "Conv2d"), ("1", "ReLU"), ("2", "Conv2d"), ("3", "BatchNorm2d")]
    assert keys_and_types(other) == [("0", "Conv2d"), ("1", "Conv2d"), ("2", "BatchNorm2d")]
    assert (taken[2].out_channels, other[1].out_channels) == (4, 99)


def test_a_loop_variable_in_the_condition():
    cls = load("    output x -> f: for i in 0..3 { conv(8, k=1) -> (relu if i < 2) }")
    numbered = [(k, t) for k, t in keys_and_types(cls().f)]
    assert numbered == [("0", "Conv2d"), ("1", "ReLU"), ("2", "Conv2d"), ("3", "ReLU"), ("4", "Conv2d")]


def _error(body: str) -> str:
    with pytest.raises(SpecError) as info:
        load(body)
    return info.value.render()


def test_errors():
    text = _error("    output x -> (relu if x else sigmoid)")
    assert "error[E0506]: a condition must be true or false, got a tensor [B, 3, 8, 8]" in text
    assert "use where(cond, a, b)" in text and "t.model:3:26" in text
    assert "error[E0506]: a condition must be true or false, got 1" in _error("    output x -> [relu if 1]")
    assert "error[E0509]: sequence 'f' is empty" in _error("    output x -> f: (relu if false)")
    assert "error[E0101]: unexpected '->', expected one of ')', 'else'" in _error(
        "    output x -> (relu if act -> sigmoid)")
