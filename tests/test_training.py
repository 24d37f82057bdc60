"""Training-only outputs (`output training aux = ...`): a branch that is built, counted and in
the state_dict, but that only training mode computes.

The proof is torchvision's GoogLeNet with its auxiliary classifiers,
`googlenet(weights=None, aux_logits=True, init_weights=False)`: specs/googlenet_aux.model has
its parameters (count, names, order, shapes: a strict load), its eval output, and in
training mode its three outputs, batch statistics and gradients. The rest checks each part of
the compiler (syntax, IR, emission, interpreter, verify, summary, lint, -O1, diagrams, export)
against torch itself or hand-computed values.
"""

from __future__ import annotations

import copy
import functools

import modelc
import pytest
import torch
import torch.nn.functional as F
from conftest import compiled, spec_path
from modelc.codecheck import check_generated
from modelc.diagnostics import CompilerBug, SpecError
from modelc.interpret import run_graph
from modelc.render import render_dot
from modelc.render.view import build_view
from modelc.summary import format_table, summarize
from modelc.verify import _check_eval_mode, verify_module
from torch import nn

torchvision = pytest.importorskip("torchvision")

# GoogLeNet's parameters and MACs (batch 1) without the auxiliary heads (tests/test_zoo_vision.py),
# and each head's MACs by hand: a 1x1 conv from 512 (aux1) or 528 (aux2) to 128 channels at 4x4,
# then linears 2048 -> 1024 -> 1000.
GOOGLENET_MACS = 1_498_376_192
AUX_MACS = (512 * 128 * 16 + 2048 * 1024 + 1024 * 1000) + (528 * 128 * 16 + 2048 * 1024 + 1024 * 1000)


def reference() -> nn.Module:
    return torchvision.models.googlenet(weights=None, aux_logits=True, init_weights=False)


def randomized(module: nn.Module, seed: int = 1) -> nn.Module:
    """Random biases and batchnorm statistics, so a wrong wiring cannot hide behind 0s and 1s."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.running_mean.normal_(0.0, 0.1, generator=g)
            if isinstance(getattr(m, "bias", None), nn.Parameter):
                m.bias.normal_(0.0, 0.01, generator=g)
    return module


@functools.cache
def _twins() -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    ours = randomized(compiled("googlenet_aux").cls())
    ref = reference()
    ref.load_state_dict(ours.state_dict(), strict=True)
    return ours, ref


def twins() -> tuple[nn.Module, nn.Module]:
    """specs/googlenet_aux.model's module and torchvision's, with the same random weights (fresh
    copies: training mode updates batchnorm statistics)."""
    return copy.deepcopy(_twins())


def no_dropout(*modules: nn.Module) -> None:
    """Dropout draws differently in the two (torchvision's aux1 draws before the main head's
    dropout, ours after it), so training outputs are compared with every dropout at p=0."""
    for module in modules:
        for m in module.modules():
            if isinstance(m, nn.Dropout):
                m.p = 0.0


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-4) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    assert (a - b).abs().max().item() <= atol * max(1.0, b.abs().max().item())


# ---- the proof: torchvision's GoogLeNet with aux_logits=True ---------------------------------
def test_googlenet_aux_has_torchvisions_parameters_and_state_dict():
    ours, ref = twins()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters()) == 13_004_888
    assert compiled("googlenet_aux").cls.NUM_PARAMETERS == 13_004_888
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    assert any(k.startswith("aux1.") for k in ours.state_dict()) and "aux2.fc2.weight" in ours.state_dict()


def test_googlenet_aux_in_eval_mode_returns_the_logits_only():
    ours, ref = twins()
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        got, want = ours.eval()(x), ref.eval()(x)
    assert isinstance(got, torch.Tensor) and isinstance(want, torch.Tensor)
    close(got, want)


def test_googlenet_aux_in_training_mode_returns_logits_aux2_aux1_and_batch_statistics():
    ours, ref = twins()
    no_dropout(ours, ref)
    x = torch.randn(2, 3, 64, 64)  # training mode (batch statistics): small images keep it fast
    got, want = ours.train()(x), ref.train()(x)
    assert isinstance(got, tuple) and len(got) == len(want) == 3  # GoogLeNetOutputs(logits, aux2, aux1)
    for a, b in zip(got, want):
        close(a, b)
    for (_, a), (_, b) in zip(ours.state_dict().items(), ref.state_dict().items()):
        close(a.float(), b.float(), 1e-5)  # batch statistics: the heads' batchnorms ran in training mode


def test_googlenet_aux_training_step_has_torchvisions_gradients():
    ours, ref = twins()
    no_dropout(ours, ref)
    x = torch.randn(2, 3, 64, 64)
    weights = [torch.randn(2, 1000) for _ in range(3)]
    for model in (ours.train(), ref.train()):
        sum((o * w).sum() for o, w in zip(model(x), weights)).backward()
    theirs = dict(ref.named_parameters())
    for name, p in ours.named_parameters():
        assert p.grad is not None, name  # every parameter, the heads' too, takes part in training
        close(p.grad, theirs[name].grad, atol=1e-4)


def test_googlenet_aux_root_in_training_mode_with_layers_in_eval_mode():
    """What `verify` and the interpreter's `training_outputs` compute: the root's mode picks the
    outputs, each layer keeps its own (batchnorm running statistics, no dropout)."""
    ours, ref = twins()
    cls, graph = compiled("googlenet_aux")
    x = torch.randn(1, 3, 224, 224)
    ours.eval().training = True
    ref.eval().training = True
    with torch.no_grad():
        got, want = ours(x), ref(x)
    interpreted = run_graph(graph, ours.state_dict(), [x], training_outputs=True)
    for a, b, c in zip(got, want, interpreted):
        close(a, b)
        close(c, b)


def test_googlenet_aux_at_o1_loads_torchvisions_checkpoint():
    """-O1 is an inference module: no training-only outputs or their heads, and a checkpoint of
    the whole model (aux heads included) loads strictly, its heads' keys skipped."""
    torch.manual_seed(0)
    ref = randomized(reference()).eval()
    cls = modelc.load(spec_path("googlenet_aux"), optimize=1)
    assert list(cls.OUTPUT_SHAPES) == ["logits"] and not hasattr(cls, "TRAINING_OUTPUTS")
    ours = cls().eval()
    ours.load_state_dict(ref.state_dict(), strict=True)
    assert not any(k.startswith("aux") for k in ours.state_dict())
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        close(ours(x), ref(x))
    applied = cls.__modelc_graph__.optimized[1]
    assert applied[0] == "drop-training" and "dead-code" in applied


def test_googlenet_aux_summary_counts_both_modes():
    s = summarize(compiled("googlenet_aux").graph)
    assert s["total_params"] == 13_004_888
    assert s["macs"] == GOOGLENET_MACS  # eval mode: the network without its heads
    assert s["training_macs"] == GOOGLENET_MACS + AUX_MACS
    assert s["training_outputs"] == ["aux2", "aux1"] and list(s["outputs"]) == ["logits", "aux2", "aux1"]
    marked = {row["name"] for row in s["layers"] if row.get("training")}
    assert marked == {row["name"] for row in s["layers"] if row["name"].startswith(("aux1.", "aux2."))}
    table = format_table(s)
    assert "linear 2048->1024 (training)" in table
    assert f"MACs (batch 1) in training mode, with aux2, aux1: {GOOGLENET_MACS + AUX_MACS:,}" in table


def test_googlenet_aux_diagram_draws_the_heads_dashed():
    graph = compiled("googlenet_aux").graph
    view = build_view(graph, "stage")
    training = {item.key for item in view.items if item.training}
    assert training == {"aux1", "aux2", "output/aux1", "output/aux2"}
    assert {(e.src, e.dst) for e in view.edges if e.training} == {
        ("inception4a", "aux1"), ("inception4d", "aux2"), ("aux1", "output/aux1"), ("aux2", "output/aux2")}
    dot = render_dot(graph).dot
    node = next(line for line in dot.splitlines() if line.strip().startswith("aux1 ["))
    assert "dashed" in node and "training only" in dot and "training output" in dot
    assert view.total_macs == GOOGLENET_MACS  # the title's MACs are eval mode's


# ---- a small model, checked piece by piece -------------------------------------------------------
SMALL = """\
model Small {
    input x: [B, 8]
    h = x -> stem: linear(16) -> relu
    aux = h -> aux_fc: linear(3)
    output logits = h -> fc: linear(4)
    output training aux
}
"""


def small():
    torch.manual_seed(0)
    cls = modelc.load_source(SMALL, "small.model")
    return cls, cls()


def test_small_model_graph_and_source():
    cls, _ = small()
    graph = cls.__modelc_graph__
    assert [name for name, _ in graph.outputs] == ["logits", "aux"] and graph.training_outputs == {"aux"}
    assert [name for name, _ in graph.eval_outputs()] == ["logits"]
    assert {graph.node(n).name for n in graph.training_only()} == {"aux_fc"}
    source = cls.__modelc_source__
    assert "-> torch.Tensor | tuple[torch.Tensor, ...]:" in source
    assert "        if not self.training:\n            return logits\n        aux = self.aux_fc(h)" in source
    assert 'TRAINING_OUTPUTS = ("aux",)' in source and cls.OUTPUT_SHAPES == {"logits": ("B", 4), "aux": ("B", 3)}


def test_small_model_computes_what_torch_computes_in_each_mode():
    _, model = small()
    x = torch.randn(5, 8)
    w = model.state_dict()
    h = F.relu(F.linear(x, w["stem.weight"], w["stem.bias"]))
    logits, aux = F.linear(h, w["fc.weight"], w["fc.bias"]), F.linear(h, w["aux_fc.weight"], w["aux_fc.bias"])
    close(model.eval()(x), logits, 1e-6)
    got = model.train()(x)
    assert isinstance(got, tuple) and len(got) == 2
    close(got[0], logits, 1e-6)
    close(got[1], aux, 1e-6)
    graph = type(model).__modelc_graph__
    [only] = run_graph(graph, w, [x])  # the interpreter: eval mode's outputs
    close(only, logits, 1e-6)
    assert verify_module(type(model), graph)["outputs"] == {"logits": (2, 4), "aux": (2, 3)}


def test_torch_compile_and_export_see_the_mode():
    _, model = small()
    x = torch.randn(3, 8)
    torch._dynamo.reset()
    try:
        fast = torch.compile(model, backend="aot_eager", fullgraph=True)  # no graph break at the branch
        with torch.no_grad():
            close(fast.eval()(x), model.eval()(x), 1e-6)
            assert len(fast.train()(x)) == 2
    finally:
        torch._dynamo.reset()
    exported = torch.export.export(model.eval(), (x,))
    assert len(exported.graph_signature.user_outputs) == 1
    close(exported.module()(x), model(x), 1e-6)
    assert len(torch.export.export(model.train(), (x,)).graph_signature.user_outputs) == 2


def test_modelc_export_writes_eval_mode(tmp_path):
    (tmp_path / "small.model").write_text(SMALL)
    done = modelc.export(str(tmp_path / "small.model"), "pt2", str(tmp_path / "small.pt2"))
    assert done.outputs == ("logits",)
    program = torch.export.load(str(tmp_path / "small.pt2"))
    assert len(program.graph_signature.user_outputs) == 1


def test_a_block_that_eval_mode_runs_may_read_the_branch():
    """A training-only value that a block also reads (its second output is training-only) runs in
    both modes, before the block: the branch is counted in modules."""
    text = """\
block Two {
    input x
    input side
    output x -> relu, side -> probe: linear(2)
}
model M {
    input x: [B, 4]
    side = x -> side_fc: linear(6)
    y, p = Two(x, side)
    output y -> fc: linear(3)
    output training p
}
"""
    cls = modelc.load_source(text, "two.model")
    graph = cls.__modelc_graph__
    assert {graph.node(n).name for n in graph.training_only()} == {"side_fc", "two.probe"}
    source = cls.__modelc_source__
    assert source.index("self.side_fc(x)") < source.index("self.two(x, side)") < source.index("if not self.training")
    result = verify_module(cls, graph)
    assert list(result["outputs"]) == ["out0", "p"]


# ---- checks and diagnostics -----------------------------------------------------------------------
def test_verify_refuses_a_module_whose_eval_mode_returns_every_output():
    class Both(nn.Module):
        def forward(self, x):
            return x, x

    graph = small()[0].__modelc_graph__
    x = torch.randn(2, 8)
    with pytest.raises(CompilerBug, match="in eval mode forward returned 2 values, expected 1"):
        _check_eval_mode(graph, Both(), [x], (x, x))


def test_the_gate_takes_only_the_eval_return():
    source = small()[0].__modelc_source__
    check_generated(source)
    for bad in ("if self.training:", "if not self.training or True:"):
        with pytest.raises(CompilerBug, match="a conditional"):
            check_generated(source.replace("if not self.training:", bad))
    with pytest.raises(CompilerBug, match="a conditional"):
        check_generated(source.replace("            return logits\n",
                                       "            return logits\n        else:\n            pass\n"))


SYMBOLIC = """\
model Net {
    input image: [B, 3, H, W]
    x = image -> stem: conv(16, k=3, s=2, p=1) -> relu
    output logits = x -> adaptive_avgpool(1) -> flatten -> fc: linear(10)
    output training aux = x -> avgpool(5, s=3) -> aux_conv: conv(8, k=5)
                            -> adaptive_avgpool(1) -> flatten -> aux_fc: linear(10)
}
"""


def test_with_symbolic_sizes_training_may_need_larger_inputs():
    """Inception v3's case: at 16x16 eval mode runs, the head's 5x5 kernels do not fit (W0502);
    the interpreter and the module run eval mode there all the same, and training mode fails
    there as torch says."""
    with pytest.warns(modelc.SpecWarning, match="W0502"):
        cls = modelc.load_source(SYMBOLIC, "net.model")
    graph = cls.__modelc_graph__
    [warning] = graph.warnings
    assert warning.code == "W0502" and (warning.span.line, warning.span.col) == (5, 61)
    assert "at H=16, W=16 eval mode runs, but 'aux_conv' would have a size of -2" in warning.message
    torch.manual_seed(0)
    model = cls().eval()
    x = torch.randn(2, 3, 16, 16)
    with torch.no_grad():
        close(run_graph(graph, model.state_dict(), [x])[0], model(x), 1e-5)
        with pytest.raises(RuntimeError):
            model.train()(x)
    assert verify_module(cls, graph)["env"] == {"B": 2, "H": 64, "W": 64}  # verify runs both modes


def test_no_warning_where_the_branch_fits_every_size_eval_mode_takes():
    text = SYMBOLIC.replace("avgpool(5, s=3) -> aux_conv: conv(8, k=5)", "adaptive_avgpool(4) -> aux_conv: conv(8, k=1)")
    assert modelc.load_source(text, "net.model").__modelc_graph__.warnings == []


def test_at_concrete_sizes_a_branch_that_does_not_fit_is_an_error_that_says_so():
    text = SYMBOLIC.replace("[B, 3, H, W]", "[B, 3, 16, 16]")
    with pytest.raises(SpecError) as info:
        modelc.load_source(text, "net.model")
    [d] = info.value.diagnostics
    assert d.code == "E0303" and (d.span.line, d.span.col) == (5, 61)
    [note] = d.notes
    assert "branch of a training-only output, which eval mode never runs" in note.message
    assert note.span.line == 5


def test_training_is_a_name_elsewhere():
    text = """\
model M {
    input training: [B, 4]
    output training training -> head: linear(2)
    output training
}
"""
    with pytest.raises(SpecError) as info:  # after `output`, `training` is the keyword
        modelc.load_source(text, "m.model")
    assert "marks a training-only output" in info.value.diagnostics[0].hint
    graph = modelc.load_source(text.replace("    output training\n", "    output x = training\n"),
                               "m.model").__modelc_graph__  # fmt: skip
    assert [name for name, _ in graph.outputs] == ["out0", "x"] and graph.training_outputs == {"out0"}
