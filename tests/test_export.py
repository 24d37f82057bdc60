"""`modelc export`: the ONNX file runs in onnxruntime, the .pt2 file loads with torch.export.load,
and both compute what the compiled module computes.

The oracle is the module itself: `modelc.load` of the same spec, its weights drawn by
`modelc.bench.randomize` with seed 0 as `export` draws them (so it holds the same weights; the
.pt2 test checks that they are), run in eager
torch on inputs the test draws at other sizes than the export's example. ONNX Runtime's
kernels are not torch's: the tolerance is 2e-6 of the output's scale (the largest absolute
output, at least 1). A .pt2 program runs torch's own kernels: it must match exactly.

Dynamo exports take seconds each: a handful of small models, each exported once.
"""

from __future__ import annotations

import os
import sys

import modelc
import pytest
from modelc.cli import main

from conftest import spec_path

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOL = 2e-6  # of max(1, the largest absolute output)

SMALL_TRANSFORMER = dict(d_model=32, heads=4, encoder_layers=2, decoder_layers=2, ff=64)


def reference(spec: str, optimize: int = 0, **params):
    """The compiled module as export builds it: eval mode, weights from modelc.bench.randomize
    with seed 0."""
    from modelc.bench import randomize

    module = modelc.load(spec, optimize=optimize, **params)().eval()
    randomize(module, torch, 0)
    return module


def run_onnx(path: str, inputs: dict) -> list:
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    return session.run(None, {k: v.numpy() for k, v in inputs.items()})


def assert_close(got, want) -> float:
    got = torch.as_tensor(got)
    assert got.shape == want.shape
    scale = max(1.0, want.abs().max().item())
    diff = (got - want).abs().max().item()
    assert diff <= TOL * scale, f"max abs diff {diff:.3g} at output scale {scale:.3g}"
    return diff


def check_onnx(path: str, module, inputs: dict) -> None:
    with torch.no_grad():
        want = module(*inputs.values())
    wants = want if isinstance(want, (tuple, list)) else [want]
    got = run_onnx(path, inputs)
    assert len(got) == len(wants)
    for g, w in zip(got, wants):
        assert_close(g, w)
        if w.shape[0] > 1:  # the output depends on the input: a constant output would prove nothing
            assert (w[0] - w[1]).abs().max() > 1e-3 * w.abs().max()


# ---- ONNX against torch -----------------------------------------------------------------------
def test_lenet5_onnx_dynamic_batch_runs_at_two_batch_sizes(tmp_path):
    out = str(tmp_path / "lenet5.onnx")
    done = modelc.export(spec_path("lenet5"), "onnx", out, dynamic=["B"])
    assert os.path.getsize(out) == done.size > 4 * 61_706  # the weights are in the file
    assert done.inputs == {"image": ("B", 1, 32, 32)} and done.outputs == ("out",)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    [inp], [outp] = session.get_inputs(), session.get_outputs()
    assert (inp.name, inp.shape) == ("image", ["B", 1, 32, 32])  # named after the spec's symbol
    assert (outp.name, outp.shape) == ("out", ["B", 10])
    module = reference(spec_path("lenet5"))
    for batch in (1, 5):
        check_onnx(out, module, {"image": torch.randn(batch, 1, 32, 32)})


def test_resnet18_o1_onnx_matches_torch_at_its_fixed_shape(tmp_path):
    """-O1 folds BatchNorm into the convolutions; no --dynamic: B is fixed to the example's 2."""
    out = str(tmp_path / "resnet18.onnx")
    done = modelc.export(spec_path("resnet18"), None, out, optimize=1, inputs={"image": ("B", 3, 32, 32)},
                         num_classes=10)  # fmt: skip
    assert done.format == "onnx" and done.inputs == {"image": (2, 3, 32, 32)} and done.dynamic == ()
    module = reference(spec_path("resnet18"), 1, num_classes=10)
    torch.manual_seed(1)
    check_onnx(out, module, {"image": torch.randn(2, 3, 32, 32)})
    with pytest.raises(Exception, match="(?i)dimension|shape|got"):
        run_onnx(out, {"image": torch.randn(3, 3, 32, 32)})


def test_mobilenet_v2_onnx_with_dynamic_image_size(tmp_path):
    out = str(tmp_path / "mobilenet_v2.onnx")
    modelc.export(spec_path("mobilenet_v2"), "onnx", out, inputs={"image": ("B", 3, "H", "W")},
                  dynamic=("B", "H", "W"), num_classes=10)  # fmt: skip
    module = reference(spec_path("mobilenet_v2"), num_classes=10)
    torch.manual_seed(1)
    for shape in ((1, 3, 32, 32), (3, 3, 45, 64)):
        check_onnx(out, module, {"image": torch.randn(*shape)})


@pytest.mark.parametrize("optimize", [pytest.param(0, marks=pytest.mark.slow), 2])
def test_transformer_onnx_with_dynamic_sequences(optimize, tmp_path):
    """-O2 fuses attention to scaled_dot_product_attention (causal in the decoder)."""
    out = str(tmp_path / "transformer.onnx")
    modelc.export(spec_path("transformer"), "onnx", out, optimize=optimize, dynamic=("B", "S", "T"),
                  **SMALL_TRANSFORMER)  # fmt: skip
    module = reference(spec_path("transformer"), optimize, **SMALL_TRANSFORMER)
    session = ort.InferenceSession(out, providers=["CPUExecutionProvider"])
    assert [i.shape for i in session.get_inputs()] == [["B", "S", 32], ["B", "T", 32]]
    torch.manual_seed(1)
    for batch, s, t in ((1, 5, 7), (3, 20, 9)):
        check_onnx(out, module, {"src": torch.randn(batch, s, 32), "tgt": torch.randn(batch, t, 32)})


def test_transformer_o2_really_fused_attention():
    source = modelc.compile_file(spec_path("transformer"), optimize=2, **SMALL_TRANSFORMER)
    assert "rt.SDPAMultiheadAttention" in source and "nn.MultiheadAttention" not in source


# ---- .pt2 --------------------------------------------------------------------------------------
def test_pt2_loads_and_matches_exactly(tmp_path):
    out = str(tmp_path / "transformer.pt2")
    done = modelc.export(spec_path("transformer"), "pt2", out, optimize=2, dynamic=["B", "T"],
                         **SMALL_TRANSFORMER)  # fmt: skip
    assert done.example == {"B": 2, "S": 16, "T": 16}
    assert done.inputs == {"src": ("B", 16, 32), "tgt": ("B", "T", 32)}  # S fixed to the example's
    assert done.limits == {"T": 5000}  # the sinusoidal position table's length
    program = torch.export.load(out)
    module = reference(spec_path("transformer"), 2, **SMALL_TRANSFORMER)
    for key, value in module.state_dict().items():
        assert torch.equal(program.state_dict[key], value), key  # the weights are in the file
    torch.manual_seed(1)
    for batch, t in ((1, 3), (4, 11)):
        src, tgt = torch.randn(batch, 16, 32), torch.randn(batch, t, 32)
        with torch.no_grad():
            assert torch.equal(program.module()(src, tgt), module(src, tgt))


# ---- the command line ---------------------------------------------------------------------------
def test_cli_export_end_to_end(tmp_path, capsys):
    out = tmp_path / "sub" / "lenet5.onnx"
    status = main(["export", spec_path("lenet5"), "--format", "onnx", "-o", str(out), "--dynamic", "B",
                   "--opset", "18", "-O", "1"])  # fmt: skip
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert out.is_file()
    assert "exported LeNet5 to" in captured.out and "opset 18" in captured.out
    assert "image [B, 1, 32, 32]" in captured.out and "61,706 parameters" in captured.out
    assert captured.err == ""  # the exporters' chatter is kept off the output
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    opsets = {o.domain: o.version for o in __import__("onnx").load(str(out)).opset_import}
    assert opsets[""] == 18 and session.get_inputs()[0].shape == ["B", 1, 32, 32]


# ---- errors -------------------------------------------------------------------------------------
def cli_error(argv: list[str], capsys) -> str:
    status = main(argv)
    err = capsys.readouterr().err
    assert status == 1, err
    assert "Traceback" not in err
    return err


def test_unknown_dynamic_symbol_is_located(tmp_path, capsys):
    err = cli_error(["export", spec_path("lenet5"), "-o", str(tmp_path / "x.onnx"), "--dynamic", "B,T"], capsys)
    first = err.splitlines()[0]
    assert first.startswith(f"{spec_path('lenet5')}:5:") and "error[E0606]" in first
    assert "--dynamic T: LeNet5 has no symbolic dimension 'T'" in first
    assert "input image: [B, 1, 32, 32]" in err and "^" in err
    assert "hint: the symbols of its inputs are B" in err
    assert not (tmp_path / "x.onnx").exists()


def test_pinned_symbol_cannot_be_dynamic(tmp_path, capsys):
    err = cli_error(["export", spec_path("lenet5"), "-o", str(tmp_path / "x.pt2"), "--input",
                     "image=1,1,32,32", "--dynamic", "B"], capsys)  # fmt: skip
    assert "error[E0606]" in err and "fixed sizes" in err


@pytest.mark.parametrize("argv, message", [
    (["--format", "pt2", "-o", "{tmp}/x.onnx"], "--format pt2, but {tmp}/x.onnx ends in .onnx"),
    (["-o", "{tmp}/x.bin"], "cannot tell the format of {tmp}/x.bin"),
    (["-o", "{tmp}/x.pt2", "--opset", "18"], "--opset 18: only an ONNX export has an opset"),
    (["-o", "{tmp}/x.onnx", "--opset", "13"], "--opset 13: the dynamo exporter writes opset 18 or later"),
    (["-o", "{tmp}/x.onnx", "--opset", "99"], "--opset 99: torch"),
])  # fmt: skip
def test_bad_options(argv, message, tmp_path, capsys):
    argv = [a.format(tmp=tmp_path) for a in argv]
    err = cli_error(["export", spec_path("lenet5"), *argv], capsys)
    assert err.startswith(f"error[E0606]: {message.format(tmp=tmp_path)}")


def test_never_writes_over_a_spec(tmp_path, capsys):
    spec = tmp_path / "net.model"
    text = "model M {\n    input x: [B, 4]\n    output x -> linear(2)\n}\n"
    spec.write_text(text)
    other = tmp_path / "other.model"
    other.write_text(text)
    for target, what in ((spec, "the spec being exported"), (other, "a spec file")):
        err = cli_error(["export", str(spec), "--format", "onnx", "-o", str(target)], capsys)
        assert f"error[E0606]: will not write the export over {target}: it is {what}" in err
    assert spec.read_text() == other.read_text() == text


def test_a_directory_is_refused_before_the_export(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(torch.export, "export", None)  # the export must not be reached
    err = cli_error(["export", spec_path("lenet5"), "--format", "onnx", "-o", str(tmp_path)], capsys)
    assert err.startswith(f"error[E0604]: cannot write {tmp_path}: it is a directory")


def test_missing_onnxscript_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxscript", None)  # `import onnxscript` fails
    err = cli_error(["export", spec_path("lenet5"), "-o", str(tmp_path / "x.onnx")], capsys)
    assert "error[E0606]: --format onnx needs the packages onnx and onnxscript" in err
    assert 'pip install "modelc[export]"' in err


def test_exporter_failure_is_e0606_not_a_traceback(tmp_path, capsys, monkeypatch):
    def refuse(*args, **kwargs):
        raise RuntimeError("Unsupported: something torch.export cannot trace\nmore detail")

    monkeypatch.setattr(torch.export, "export", refuse)
    err = cli_error(["export", spec_path("lenet5"), "-o", str(tmp_path / "x.pt2")], capsys)
    assert err.startswith("error[E0606]: torch.export failed on LeNet5: RuntimeError: Unsupported: "
                          "something torch.export cannot trace / more detail")  # fmt: skip
    assert not (tmp_path / "x.pt2").exists()


def test_several_models_need_one(tmp_path, capsys):
    spec = tmp_path / "two.model"
    spec.write_text("model A {\n  input x: [B, 4]\n  output x -> relu\n}\nmodel C {\n  input x: [B, 4]\n"
                    "  output x -> relu\n}\n")  # fmt: skip
    err = cli_error(["export", str(spec), "-o", str(tmp_path / "x.pt2")], capsys)
    assert "error[E0606]:" in err and "defines 2 models" in err and "--model" in err


def test_without_torch_nothing_is_written(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails
    err = cli_error(["export", spec_path("lenet5"), "-o", str(tmp_path / "x.onnx")], capsys)
    assert err.startswith("error[E0607]: modelc export needs torch, which is not installed")
    assert not (tmp_path / "x.onnx").exists()
