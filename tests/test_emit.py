"""What the emitter writes computes what the spec says: values passed, classes chosen, names given.

Each test compares the generated module with an oracle independent of the emitter: torch
computing the spec's meaning by hand, the IR's own counts, or Python's compiler.
"""

from __future__ import annotations

import inspect

import pytest

import modelc
from modelc import CompilerBug
from modelc.codecheck import check_generated
from modelc.driver import build_all
from modelc.load import load_text

torch = pytest.importorskip("torch")

DEC = "block Dec { input x  input memory  output x -> fc: linear(8) -> add(memory) }\n"


def _randomize(module) -> None:
    with torch.no_grad():
        for p in module.parameters():
            p.uniform_(-1, 1)


@pytest.mark.parametrize("loop", ["layers: for i in 0..3 { Dec(x) }", "layers: repeat 3 Dec(x)",
                                  "layers: [Dec(x), Dec(x), Dec(x)]", "layers: (Dec(x) -> Dec(x) -> Dec(x))"])  # fmt: skip
def test_items_of_a_sequence_read_the_chains_own_input(loop):
    """Fault 2: every item got the updated value (`self.layers[1](x, x)`), not the chain's input."""
    cls = modelc.load_source(DEC + f"model M {{ input x: [B, 8]  x = x -> {loop}  output x }}", "seq.model")
    model = cls().eval()
    _randomize(model)
    x0 = torch.randn(4, 8)
    want = x0
    for item in model.layers:  # the spec's meaning: y_{i+1} = fc_i(y_i) + x0
        want = item.fc(want) + x0
    torch.testing.assert_close(model(x0), want)


def test_items_read_an_earlier_binding_too():
    text = DEC + "model M { input x: [B, 8]  m = x -> relu  y = m -> layers: repeat 2 Dec(m)  output y }"
    model = modelc.load_source(text, "seq.model")().eval()
    _randomize(model)
    x0 = torch.randn(3, 8)
    m = torch.relu(x0)
    want = model.layers[1].fc(model.layers[0].fc(m) + m) + m
    torch.testing.assert_close(model(x0), want)


def test_a_block_class_never_takes_the_models_name():
    """Fault 4: block classes Layer, Layer_1 and `model Layer_1` made the model `Layer_1_1`,
    and load returned the block."""
    text = ("block Layer(w: int) { input x  output x -> fc: linear(w) }\n"
            "model Layer_1 { input x: [B, 8]  output x -> a: Layer(4) -> b: Layer(8) }")  # fmt: skip
    graph = build_all(load_text(text, "m.model"))[0]
    cls = modelc.load_source(text, "m.model")
    assert cls.__name__ == "Layer_1"
    assert sum(p.numel() for p in cls().parameters()) == graph.num_params() == 8 * 4 + 4 + 4 * 8 + 8
    source = modelc.compile_source(text, "m.model")
    assert source.count("class Layer_1(nn.Module)") == 1


def test_several_models_keep_their_names_whatever_the_blocks():
    text = ("block A(w: int) { input x  output x -> fc: linear(w) }\n"
            "model A_1 { input x: [B, 8]  output x -> A(4) -> A(5) }\n"
            "model A_2 { input x: [B, 8]  output x -> A(6) -> A(7) -> A(9) }")  # fmt: skip
    namespace: dict = {}
    exec(compile(check_generated(modelc.compile_source(text, "m.model")), "m.py", "exec"), namespace)
    assert sum(p.numel() for p in namespace["A_1"]().parameters()) == (8 * 4 + 4) + (4 * 5 + 5)
    assert sum(p.numel() for p in namespace["A_2"]().parameters()) == (8 * 6 + 6) + (6 * 7 + 7) + (7 * 9 + 9)


def test_each_load_has_its_own_source():
    """Fault 5: every load of a path was registered under one name, so inspect and
    torch.jit.script of an earlier class read the later class's code."""
    text = ("model M(act: bool = true) { input x: [B, 4]\n"
            "  y = x -> fc: linear(4)\n  output y -> relu if act else y -> tanh }")  # fmt: skip
    a = modelc.load_source(text, "same.model", act=True)
    b = modelc.load_source(text, "same.model", act=False)
    assert "torch.relu" in inspect.getsource(a.forward) and "torch.tanh" not in inspect.getsource(a.forward)
    assert "torch.tanh" in inspect.getsource(b.forward)
    model = a().eval()
    x = torch.randn(2, 4) * 3
    scripted = torch.jit.script(model)
    torch.testing.assert_close(scripted(x), torch.relu(model.fc(x)))


@pytest.mark.parametrize("spec", [
    "block P { input print  input print_  output print_ -> relu }\n"
    "model M { input x: [B, 8]  input y: [B, 8]  output x -> P(y) }",
    "block P { input a  input self  output a -> relu }\nmodel M { input x: [B, 8]  output P(x, x) }",
    "block P { input a  input a_1  input a_  output a_1 -> relu }\n"
    "model M { input x: [B, 8]  output P(x, x, x) }",
    "block P { input torch  input nn  input rt  output rt + nn + torch }\n"
    "model M { input x: [B, 8]  input y: [B, 8]  output P(x, y, x) }",
])  # fmt: skip
def test_forward_parameters_are_distinct(spec):
    """Fault 8: `def forward(self, print_, print_)` and `def forward(self, a, self)`."""
    source = modelc.compile_source(spec, "p.model")
    compile(source, "p.py", "exec")  # a SyntaxError here is the fault
    cls = modelc.load_source(spec, "p.model")
    graph = build_all(load_text(spec, "p.model"))[0]
    args = [torch.randn(2, 8) for _ in graph.inputs]
    assert cls()(*args).shape == (2, 8)


def test_the_gate_refuses_invalid_python():
    """Every emitted file passes compile() before it is returned or written."""
    good = modelc.compile_source("model M { input x: [B, 3]  output x -> relu }", "g.model")
    with pytest.raises(CompilerBug, match="not valid Python"):
        check_generated(good.replace("def forward(self, x", "def forward(self, x, x"))


def test_a_local_variable_may_share_a_class_name():
    """Found by bench/fuzz.py (seed 102): a label `F` next to a block `F` gave the local
    `F = self.F(x)`, which the product's gate refused; forward never refers to classes."""
    text = "block F { input x  output x -> relu }\nmodel M { input x: [B, 3, 4]  y = x -> F  output concat(y, x -> F: conv(3)) }"
    model = modelc.load_source(text, "f.model")().eval()
    x = torch.randn(2, 3, 4)
    torch.testing.assert_close(model(x), torch.cat([torch.relu(x), model.F(x)], dim=1))


@pytest.mark.parametrize("name", ["torch", "nn", "rt", "self", "float"])
def test_the_gate_refuses_locals_that_shadow_what_generated_code_uses(name):
    good = modelc.compile_source("model M { input x: [B, 3]  output x -> relu }", "g.model")
    with pytest.raises(CompilerBug, match="reserved name"):
        check_generated(good.replace("out = torch.relu(x)", f"{name} = torch.relu(x)\n        out = x"))


def test_a_sequence_holding_one_called_item_by_item_is_called_item_by_item():
    """Found by bench/fuzz.py (seed 15): `mlp3: [act: for ... { Dec(tmp) }, relu6]` put a
    ModuleList inside an nn.Sequential, which cannot call it (NotImplementedError)."""
    text = ("block Dec { input h  input skip  output h -> fc: linear(8) -> add(skip) }\n"
            "model M { input x: [B, 8]  t = x -> relu\n"
            "  output t -> mlp: [act: for i in 0..2 { Dec(t) }, relu6(), last: Dec(t), Dec(t)] }")  # fmt: skip
    model = modelc.load_source(text, "n.model")().eval()
    _randomize(model)
    x = torch.randn(3, 8)
    t = torch.relu(x)
    y = model.mlp["act"][1].fc(model.mlp["act"][0].fc(t) + t) + t
    y = model.mlp["last"].fc(torch.clamp(y, 0, 6)) + t
    y = model.mlp["1"].fc(y) + t
    torch.testing.assert_close(model(x), y)
    assert {k.split(".")[1] for k in model.state_dict()} == {"act", "last", "1"}


def test_items_with_a_prefix_may_take_extra_inputs():
    text = (DEC + "model M { input x: [B, 8]  output x -> layers: for i in 0..2 prefix \"layer\" { Dec(x) } }")
    model = modelc.load_source(text, "p.model")().eval()
    _randomize(model)
    x = torch.randn(2, 8)
    want = model.layers["layer1"].fc(model.layers["layer0"].fc(x) + x) + x
    torch.testing.assert_close(model(x), want)


def test_a_bf16_swin_block_stays_bf16():
    """Found on an H200 (tests/test_cuda.py): the shifted-window mask was made in float32, so
    adding it promoted a bf16 model's scores to float32 and `weights @ v` failed. Constants the
    forward makes take the dtype of the tensor they are made for."""
    text = ("model M { input x: [B, 8, 8, 4]\n"
            "  m = x -> shifted_window_mask(4, 2)\n"
            "  s = x -> window_partition(4) -> reshape([-1, 16, 4])\n"
            "  scores = (s @ transpose(s, -2, -1)) -> reshape([-1, 4, 16, 16])\n"
            "  output softmax(scores + unsqueeze(m, 0)) }")  # fmt: skip
    model = modelc.load_source(text, "w.model")().to(torch.bfloat16)
    out = model(torch.randn(2, 8, 8, 4, dtype=torch.bfloat16))
    assert out.dtype == torch.bfloat16
    want = modelc.load_source(text, "w.model")()(torch.randn(2, 8, 8, 4))
    assert want.dtype == torch.float32
