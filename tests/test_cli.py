"""The `modelc` command line: exit codes, output formats, options, and that the commands that
do not run a module never import torch."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import spec_path
from modelc import cli

ROOT = Path(__file__).resolve().parent.parent

MLP = """\
# a small network with parameters and a symbolic batch
model Net(hidden: int = 32, num_classes: int = 10, scale: float = 1.0, deep: bool = false) {
    input image: [B, 1, 28, 28]
    x = image -> conv1: conv(8, k=3, p=1) -> relu -> maxpool(2) -> flatten
    x = x -> fc1: linear(hidden) -> relu
    x = x -> extra: linear(hidden) if deep else x
    output x -> head: linear(num_classes)
}
"""

BROKEN = """\
model Broken {
    input x: [B, 3, 8, 8]
    y = x -> conv(4, k=3)
    output x + y
}
"""


@pytest.fixture
def net(tmp_path) -> str:
    path = tmp_path / "net.model"
    path.write_text(MLP)
    return str(path)


@pytest.fixture
def broken(tmp_path) -> str:
    path = tmp_path / "broken.model"
    path.write_text(BROKEN)
    return str(path)


@pytest.fixture
def resnet50() -> str:
    return spec_path("resnet50")


def run(*argv: str) -> subprocess.CompletedProcess:
    """`python -m modelc.cli ARGV` in a fresh process."""
    proc = subprocess.run(
        [sys.executable, "-m", "modelc.cli", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def call(capsys, *argv: str) -> tuple[int, str, str]:
    """`modelc.cli.main(ARGV)` in this process: (exit status, stdout, stderr)."""
    try:
        rc = cli.main(list(argv))
    except SystemExit as exc:  # argparse
        rc = exc.code
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err, err
    return rc, out, err


# ---- exit codes ---------------------------------------------------------------------------------
def test_exit_codes_in_a_process(net, broken, tmp_path):
    assert run("check", net).returncode == 0
    bad = run("check", broken)
    assert bad.returncode == 1
    assert "error[E0301]" in bad.stderr and "broken.model:4" in bad.stderr
    assert run("check").returncode == 2  # no spec
    assert run("frobnicate", net).returncode == 2
    assert run("check", net, "--no-such-flag").returncode == 2
    missing = run("check", str(tmp_path / "missing.model"))
    assert missing.returncode == 1 and "error[E0104]" in missing.stderr


def test_exit_code_3_on_an_internal_error(net, capsys, monkeypatch):
    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(cli, "build_all", explode)
    rc, _, err = call(capsys, "check", net)
    assert rc == 3
    assert "internal error (RuntimeError): boom" in err and "--traceback" in err
    # --traceback is for reporting the bug: then (and only then) the traceback shows
    cli.main(["check", net, "--traceback"])
    assert "Traceback" in capsys.readouterr().err


def test_syntax_error_is_a_spec_error(tmp_path, capsys):
    path = tmp_path / "syntax.model"
    path.write_text("model M {\n    input x: [B, 4]\n    output x -> -> relu\n}\n")
    rc, _, err = call(capsys, "check", str(path))
    assert rc == 1
    assert err.startswith(f"{path}:3:") and "error[E0101]" in err and "^" in err


# ---- output -------------------------------------------------------------------------------------
def test_check_reports_nodes_and_parameters(net, capsys):
    rc, out, _ = call(capsys, "check", net)
    assert rc == 0
    assert out.startswith(f"{net}: ok: Net:") and "parameters" in out


def test_summary_table(net, capsys):
    rc, out, _ = call(capsys, "summary", net)
    assert rc == 0
    assert "conv1" in out and "fc1" in out and "head" in out
    assert "MACs" in out and "parameters:" in out


def test_summary_json(net, capsys):
    rc, out, _ = call(capsys, "summary", net, "--json")
    assert rc == 0
    s = json.loads(out)
    assert {
        "model",
        "total_params",
        "trainable_params",
        "flops",
        "macs",
        "layers",
    } <= set(s)
    assert s["model"] == "Net"
    for layer in s["layers"]:
        assert {"name", "op", "output_shape", "params", "flops"} <= set(layer)
    by_name = {layer["name"]: layer for layer in s["layers"]}
    assert by_name["conv1"]["op"] == "conv"
    assert by_name["conv1"]["output_shape"] == ["B", 8, 28, 28]
    assert by_name["conv1"]["params"] == 8 * 9 + 8
    # batch 1: 9 MACs per output value of the conv; FLOPs are twice the MACs
    assert by_name["conv1"]["macs"] == 9 * 8 * 28 * 28
    assert by_name["conv1"]["flops"] == 2 * by_name["conv1"]["macs"]
    assert by_name["head"]["output_shape"] == ["B", 10]
    assert s["total_params"] == sum(layer["params"] for layer in s["layers"])
    assert s["trainable_params"] == s["total_params"]
    assert s["flops"] == 2 * s["macs"] == sum(layer["flops"] for layer in s["layers"])


def test_summary_json_resnet50(resnet50, capsys):
    rc, out, _ = call(capsys, "summary", resnet50, "--json")
    assert rc == 0
    s = json.loads(out)
    assert s["total_params"] == 25_557_032  # REFERENCE.md
    assert s["macs"] == 4_089_184_256
    assert s["flops"] == 2 * 4_089_184_256


def test_param(net, capsys):
    rc, out, _ = call(
        capsys,
        "summary",
        net,
        "--json",
        "--param",
        "num_classes=3",
        "--param",
        "hidden=16",
        "--param",
        "deep=true",
        "--param",
        "scale=0.5",
    )
    assert rc == 0
    s = json.loads(out)
    by_name = {layer["name"]: layer for layer in s["layers"]}
    assert by_name["head"]["output_shape"] == ["B", 3]
    assert by_name["fc1"]["output_shape"] == ["B", 16]
    assert "extra" in by_name  # deep=true


@pytest.mark.parametrize(
    "value",
    [
        "num_classes=ten",
        "num_classes",
        "=3",
        "nope=1",
        "deep=maybe",
        "scale=fast",
        "hidden=1.5",
        "scale=nan",
        "scale=inf",
        "hidden=\u0663",  # int() would take an Arabic-Indic 3
    ],
)
def test_bad_param(net, capsys, value):
    rc, out, err = call(capsys, "check", net, "--param", value)
    assert rc == 1  # a diagnostic, like a spec error
    assert "error[E0601]" in err and out == ""


def test_input(net, capsys):
    rc, out, _ = call(capsys, "summary", net, "--json", "--input", "image=4,1,16,16")
    assert rc == 0
    s = json.loads(out)
    by_name = {layer["name"]: layer for layer in s["layers"]}
    assert by_name["conv1"]["output_shape"] == [4, 8, 16, 16]
    assert (
        by_name["conv1"]["macs"] == 4 * 9 * 8 * 16 * 16
    )  # a concrete batch counts in full
    rc, out, _ = call(capsys, "summary", net, "--json", "--input", "image=N,1,28,28")
    assert rc == 0 and json.loads(out)["layers"][-1]["output_shape"] == ["N", 10]


@pytest.mark.parametrize(
    "value",
    [
        "image",
        "image=",
        "image=1,x-y,3",
        "image=0,1,28,28",
        "image=-1,1,28,28",
        "nope=1,1,28,28",
        "=1,2",
        "image=\u00b2,1,28,28",  # '²'.isdigit() is true
    ],
)
def test_bad_input(net, capsys, value):
    rc, out, err = call(capsys, "check", net, "--input", value)
    assert rc == 1
    assert "error[E0601]" in err and out == ""


def test_input_shapes_are_checked_like_declared_ones(net, capsys):
    rc, _, err = call(capsys, "check", net, "--input", "image=1,3,28,28")
    assert rc == 0  # conv in-channels follow the input
    rc, _, err = call(capsys, "check", net, "--input", "image=1,1,1,1")
    assert rc == 1 and "error[E0303]" in err  # maxpool(2) of a 1x1 map is empty


def test_compile_writes_a_file(net, tmp_path, capsys):
    out_path = tmp_path / "deep" / "er" / "net.py"
    rc, out, _ = call(capsys, "compile", net, "-o", str(out_path))
    assert rc == 0 and out == ""
    source = out_path.read_text()
    assert "class Net(nn.Module):" in source
    compile(source, str(out_path), "exec")
    rc, out, _ = call(capsys, "compile", net)
    assert rc == 0 and out == source  # the same text on standard output


def test_compile_verify(net, tmp_path):
    proc = run("compile", net, "-o", str(tmp_path / "net.py"), "--verify")
    assert proc.returncode == 0, proc.stderr
    assert f"{net}: verified Net at B=2:" in proc.stderr
    assert "match the IR" in proc.stderr


def test_ops_lists_the_registry(capsys):
    rc, out, _ = call(capsys, "ops")
    assert rc == 0 and "conv(" in out and "linear(" in out
    rc, out, _ = call(capsys, "ops", "--json")
    data = json.loads(out)
    assert "conv" in data and "input" not in data
    assert {"family", "doc", "attrs"} <= set(data["conv"])


def test_version():
    proc = run("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("modelc ")


# ---- no torch -----------------------------------------------------------------------------------
_NO_TORCH = """\
import sys
from modelc.cli import main
rc = main(sys.argv[1:])
loaded = sorted(m for m in sys.modules if m == "torch" or m.startswith("torch."))
assert not loaded, f"modelc {sys.argv[1]} imported {loaded[:5]}"
sys.exit(rc)
"""


@pytest.mark.parametrize("command", ["check", "summary", "summary --json", "compile"])
def test_commands_do_not_import_torch(command, resnet50, tmp_path):
    argv = [*command.split(), resnet50]
    if command == "compile":
        argv += ["-o", str(tmp_path / "resnet50.py")]
    proc = subprocess.run(
        [sys.executable, "-c", _NO_TORCH, *argv],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
