"""`verify_module` and `compile --verify` on valid specs that cannot run as given:
symbolic sizes too small at 16, a batch or a model too large for memory, a batch
that would take minutes. Each is error E0603 (the spec is fine), decided from the
IR before torch allocates anything; a real mismatch stays a CompilerBug."""

from __future__ import annotations

import pytest

import modelc
from modelc import verify
from modelc.cli import main
from modelc.diagnostics import SpecError

torch = pytest.importorskip("torch")

SHRINKING = "model M { input x: [B, 3, H, W]  output x -> conv(8, k=7, s=2) -> conv(8, k=7, s=2) -> conv(8, k=7) }"


def graph_and_class(text: str):
    cls = modelc.load_source(text, "v.model")
    return cls.__modelc_graph__, cls


def e0603(call) -> str:
    with pytest.raises(SpecError) as info:
        call()
    (diag,) = info.value.diagnostics
    assert diag.code == "E0603", diag.render()
    return diag.render()


def test_symbolic_sizes_grow_until_every_layer_has_a_positive_size():
    graph, cls = graph_and_class(SHRINKING)
    # At 16: 5, then 0 (torch would refuse the second conv). At 32: 13, 4, then -2.
    assert verify.plan(graph).env == {"B": 2, "H": 64, "W": 64}
    result = verify.verify_module(cls, graph)
    assert result["env"] == {"B": 2, "H": 64, "W": 64}
    assert result["outputs"]["out"] == (2, 8, 6, 6)  # 64 -> 29 -> 12 -> 6


def test_sizes_stay_at_16_when_they_work():
    graph, _ = graph_and_class("model M { input x: [N, 3, H, W]  output x -> conv(8, k=3) }")
    assert verify.plan(graph).env == {"N": 2, "H": 16, "W": 16}


def test_no_size_fits():
    graph, cls = graph_and_class("model M { input x: [B, 3, T]  output x -> conv(8, k=1100) }")
    text = e0603(lambda: verify.verify_module(cls, graph))
    assert "with the symbolic sizes at B=2, T=1024, 'conv' would have a size of -75" in text
    assert "--input" in text


def test_activation_peak_follows_liveness():
    # A chain frees as it goes: input and output alive at once, never all 50.
    graph, _ = graph_and_class("model M { input x: [B, 1000]  output x -> repeat 50 relu }")
    assert verify._activation_peak(graph, {"B": 2}) == 2 * (2 * 1000 * 4)
    # A skip keeps the input alive across the branch.
    graph, _ = graph_and_class("model M { input x: [B, 1000]  y = x -> repeat 5 relu  output y + x }")
    assert verify._activation_peak(graph, {"B": 2}) == 3 * (2 * 1000 * 4)
    # Integer inputs count 8 bytes an element.
    graph, _ = graph_and_class("model M { input t: int64[B, 10]  output t -> embedding(100, 4) }")
    assert verify._activation_peak(graph, {"B": 2}) == 2 * 10 * 8 + 2 * 10 * 4 * 4


def test_too_large_for_memory_is_refused_before_torch_allocates(monkeypatch):
    graph, cls = graph_and_class("model M { input x: [B, 2, 16, 2147483644]  output x -> relu }")

    def never(*args, **kwargs):
        raise AssertionError("the module must not be built")

    monkeypatch.setattr(verify, "_verify", never)
    monkeypatch.setattr(verify, "_available_memory", lambda device: 16 * 2**30)
    text = e0603(lambda: verify.verify_module(cls, graph))
    assert "it needs about 2048.0 GiB (parameters 0 bytes, activations 2048.0 GiB), and 16.0 GiB" in text
    assert "smaller inputs" in text


def test_model_too_large_for_memory_hints_at_parameters():
    graph, _ = graph_and_class("model M { input x: [B, 4096]  output x -> linear(2**20) -> linear(2**14) }")
    text = e0603(lambda: verify.plan(graph, memory=16 * 2**30))
    assert "parameters 80.0 GiB" in text and "smaller model (--param" in text
    assert verify.plan(graph, memory=100 * 2**30).param_bytes == 4 * (4096 * 2**20 + 2**20 + 2**20 * 2**14 + 2**14)


def test_too_much_work_for_the_cpu():
    graph, _ = graph_and_class("model M { input x: [B, 512, 256, 256]  output x -> repeat 4 conv(512, k=3, p=1) }")
    text = e0603(lambda: verify.plan(graph))
    assert f"one batch is {4 * 2 * 512 * 512 * 9 * 256 * 256:,} multiply-accumulates" in text
    assert verify.plan(graph, device="cuda:0", memory=2**40).macs > verify.MAX_MACS  # no work limit on a GPU


def test_allocation_failure_at_run_time_is_e0603(monkeypatch):
    graph, cls = graph_and_class("model M { input x: [B, 8]  output x -> relu }")

    def fail(*args):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(verify, "_verify", fail)
    assert "ran out of memory running M at B=2" in e0603(lambda: verify.verify_module(cls, graph))

    def bug(*args):
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    monkeypatch.setattr(verify, "_verify", bug)
    with pytest.raises(RuntimeError, match="mat1"):  # anything else is not a memory problem
        verify.verify_module(cls, graph)


def test_cli_refuses_cleanly_and_still_writes_the_module(tmp_path, capsys, monkeypatch):
    spec = tmp_path / "big.model"
    spec.write_text("model M {\n    input x: [B, 2, 16, 2147483644]\n    output x -> relu\n}\n")
    out = tmp_path / "big.py"
    monkeypatch.setattr(verify, "_available_memory", lambda device: 16 * 2**30)
    assert main(["compile", str(spec), "-o", str(out), "--verify"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error[E0603]: --verify cannot run M at B=2") and "Traceback" not in err
    assert "class M(nn.Module)" in out.read_text()


def test_cli_names_the_sizes_it_verified_at(tmp_path, capsys):
    spec = tmp_path / "shrink.model"
    spec.write_text(SHRINKING + "\n")
    assert main(["compile", str(spec), "-o", str(tmp_path / "s.py"), "--verify"]) == 0
    assert f"{spec}: verified M at B=2, H=64, W=64: " in capsys.readouterr().err


def test_sizes_meet_the_ops_run_time_requirements():
    # Circular padding of 11 wraps more than once around a size below 11; every size stays
    # positive at 16 (16 -> 8 -> 4 + 22), so only the pad's own requirement moves L to 64.
    graph, cls = graph_and_class("model M { input x: [B, 8, L]  output x -> conv(4, k=3, s=2, p=1) "
                                 '-> conv(4, k=3, s=2, p=1) -> pad(11, mode="circular") }')
    assert verify.plan(graph).env == {"B": 2, "L": 64}
    assert verify.verify_module(cls, graph)["outputs"]["out"] == (2, 4, 16 + 22)
    graph, cls = graph_and_class("model M { input x: [B, 4, H, W]  output x -> pad(40, mode=\"reflect\") }")
    assert verify.plan(graph).env == {"B": 2, "H": 64, "W": 64}
    verify.verify_module(cls, graph)


def test_requirement_no_size_meets():
    graph, _ = graph_and_class('model M { input x: [B, 4, L]  output x -> pad(2000, mode="reflect") }')
    text = e0603(lambda: verify.plan(graph))
    assert "'pad' fails: pad: reflect padding 2000 needs an input larger than that, got 1024" in text


def test_known_sizes_check_requirements_when_compiling():
    with pytest.raises(SpecError) as info:
        modelc.compile_source('model M { input x: [B, 4, 8]  output x -> pad(9, mode="circular") }', "r.model")
    assert "circular padding 9 would wrap around an input of size 8 more than once" in info.value.render()
    with pytest.raises(SpecError) as info:
        modelc.compile_source("model M { input x: [B, 4, 1, 1]  output x -> instance_norm }", "r.model")
    assert info.value.diagnostics[0].code == "E0301"


def test_plan_counts_attentions_scores():
    """Found by bench/fuzz.py (seed 15): self_attention over T = 100,000 passed the plan (the
    IR has no value for the T x T scores) and then ran for minutes."""
    from modelc.driver import build_all
    from modelc.load import load_text

    graph = build_all(load_text("model M { input x: [N, 100000, 12]  output x -> self_attention(3) }",
                                "a.model"))[0]  # fmt: skip
    with pytest.raises(SpecError) as info:
        verify.plan(graph, memory=64 * 2**30)
    assert info.value.diagnostics[0].code == "E0603" and "GiB" in info.value.diagnostics[0].message
