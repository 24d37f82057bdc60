"""`modelc bench`: weights shared, outputs compared before timing, wrong modules refused, and a
report whose numbers come from the runs it made."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from modelc import cli
from modelc.bench import Options, bench, format_report, peak_tflops

MLP = """model MLP(width: int = 32) {
    input x: [B, 16]
    output x -> fc1: linear(width) -> relu -> drop: dropout(0.1) -> fc2: linear(4)
}
"""

CONV = """model Net {
    input image: [B, 3, 16, 16]
    x = image -> conv1: conv(8, k=3, p=1, bias=false) -> bn1: batchnorm -> relu
    output (x -> conv2: conv(8, k=3, p=1)) + x
}
"""

REFERENCE = """
import torch
from torch import nn

class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(16, 32)
        self.fc2 = nn.Linear(32, 4)

    def forward(self, x):
        return self.fc2(torch.{act}(self.fc1(x)))
"""


def _run(*argv) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = cli.main(["bench", *argv])
    return rc, out.getvalue(), err.getvalue()


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "mlp.model").write_text(MLP)
    (tmp_path / "conv.model").write_text(CONV)
    (tmp_path / "ref_ok.py").write_text(REFERENCE.format(act="relu"))
    (tmp_path / "ref_tanh.py").write_text(REFERENCE.format(act="tanh"))
    return tmp_path


def test_against_itself_at_another_level(specs):
    rc, out, _ = _run(str(specs / "conv.model"), "-O1", "--reference", "O0", "--reps", "4",
                      "--warmup", "1", "--batch", "3", "--json")  # fmt: skip
    assert rc == 0
    r = json.loads(out)
    assert r["outputs_compared"] and r["max_relative_difference"] < 1e-5
    assert r["weights"] == "one random checkpoint of the spec"
    assert [v["name"] for v in r["variants"]] == ["modelc -O1", "-O0"]
    assert r["batch"] == 3 and r["sizes"] == {"B": 3}
    ours, ref = r["variants"]
    assert r["ratio"] == pytest.approx(ref["median_ms"] / ours["median_ms"])
    for v in r["variants"]:
        assert v["p10_ms"] <= v["median_ms"] <= v["p90_ms"]
        assert v["samples_per_s"] == pytest.approx(3 / (v["median_ms"] / 1e3))
        assert v["peak_mib"] is not None and v["peak_mib"] >= 0
        assert v["mfu"] is None  # no MFU on a CPU
    # MACs from the IR at B=3: two 3x3 convs, 3 -> 8 and 8 -> 8, over 16 x 16, plus nothing else
    assert r["macs"] == 3 * 16 * 16 * 8 * 9 * (3 + 8)


def test_a_reference_with_the_same_keys_shares_its_weights(specs):
    rc, out, _ = _run(str(specs / "mlp.model"), "--reference", f"module:{specs / 'ref_ok.py'}:MLP",
                      "--reps", "3", "--no-memory", "--json")  # fmt: skip
    r = json.loads(out)
    assert rc == 0 and r["weights"] == "the reference's state_dict" and r["outputs_compared"]
    assert r["variants"][1]["name"] == f"MLP ({specs / 'ref_ok.py'})"
    assert all(v["peak_mib"] is None for v in r["variants"])  # --no-memory


def test_a_reference_that_computes_something_else_is_refused(specs):
    rc, out, err = _run(str(specs / "mlp.model"), "--reference", f"module:{specs / 'ref_tanh.py'}:MLP")
    assert rc == 1 and out == ""
    assert err.startswith("error[E0605]: bench refused: modelc -O0 and MLP") and "compute different outputs" in err


def test_a_reference_that_cannot_take_the_inputs_is_refused(specs):
    (specs / "odd.model").write_text("model Odd { input image: [B, 3, 15, 15]  output image -> conv(8, k=3) }")
    rc, _, err = _run(str(specs / "odd.model"), "--reference", f"module:{specs / 'ref_ok.py'}:MLP", "--no-memory")
    assert rc == 1 and "error[E0605]" in err and "cannot run on the spec's inputs" in err


def test_keys_that_differ_mean_shapes_only(specs, tmp_path):
    (tmp_path / "other.py").write_text(REFERENCE.format(act="relu").replace("self.fc1", "self.first"))
    rc, out, _ = _run(str(specs / "mlp.model"), "--reference", f"module:{tmp_path / 'other.py'}:MLP",
                      "--reps", "2", "--no-memory", "--json")  # fmt: skip
    r = json.loads(out)
    assert rc == 0 and not r["outputs_compared"] and r["weights"].startswith("not shared")
    assert "outputs not compared" in format_report(r)


@pytest.mark.parametrize("argv,message", [
    (["--reference", "torchvision:no_such_net"], "torchvision.models has no model 'no_such_net'"),
    (["--reference", "module:missing.py:X"], "no file missing.py"),
    (["--reference", "nonsense"], "expected torchvision:NAME, module:PATH:CLASS, or O0"),
    (["--batch", "0"], "--batch 0: expected a positive number"),
    (["--reps", "0"], "--reps must be at least 1"),
])  # fmt: skip
def test_bad_options(specs, argv, message):
    if "torchvision" in argv[-1]:
        pytest.importorskip("torchvision")
    rc, _, err = _run(str(specs / "mlp.model"), "--no-memory", *argv)
    assert rc == 1 and "error[E0601]" in err and message in err, err


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_an_error(specs):
    rc, _, err = _run(str(specs / "mlp.model"), "--device", "cuda")
    assert rc == 1 and "torch sees no CUDA device" in err


def test_dtype_and_layout_are_applied_after_the_fp32_comparison(specs):
    r = bench(Options(spec=str(specs / "conv.model"), optimize=2, reference="O0", dtype="bf16",
                      channels_last=True, reps=2, warmup=1, memory=False, progress=False))  # fmt: skip
    assert r["dtype"] == "bf16" and r["channels_last"] and r["outputs_compared"]
    text = format_report(r)
    assert "bf16, channels_last, eager" in text and "ratio: " in text


def test_cpu_memory_grows_with_the_activations(specs):
    """The child process's figure follows the input size: 4x the batch, about 4x the memory."""
    small = bench(Options(spec=str(specs / "conv.model"), inputs={"image": (8, 3, 128, 128)}, reps=1,
                          warmup=0, progress=False))  # fmt: skip
    large = bench(Options(spec=str(specs / "conv.model"), inputs={"image": (32, 3, 128, 128)}, reps=1,
                          warmup=0, progress=False))  # fmt: skip
    a, b = small["variants"][0]["peak_mib"], large["variants"][0]["peak_mib"]
    # one [N, 8, 128, 128] fp32 activation is 4 MiB at N = 8: at least that, and it scales
    assert a >= 4 and 2.5 * a < b < 6 * a, (a, b)


def test_peak_table():
    assert peak_tflops("NVIDIA H200", "bf16") == pytest.approx(989.4)
    assert peak_tflops("NVIDIA H100 80GB HBM3", "fp32") == pytest.approx(66.9)
    assert peak_tflops("Some GPU", "bf16") is None


@pytest.mark.cuda
def test_cuda_reports_memory_and_mfu(specs):
    r = bench(Options(spec=str(specs / "conv.model"), optimize=1, reference="O0", device="cuda",
                      dtype="bf16", batch=64, reps=5, progress=False, peak_tflops=100.0))  # fmt: skip
    assert r["outputs_compared"]
    for v in r["variants"]:
        assert v["peak_mib"] > 0 and 0 < v["mfu"] < 1
