"""Progress bars (modelc.progress) in the zoo run, `modelc bench` and the fuzz campaign.

A bar is drawn on standard error only on a terminal, or when MODELC_PROGRESS=1 forces it;
MODELC_PROGRESS=0 (and a pipe, as here) leaves standard error without one. What the zoo run
prints on standard output is the same either way, and names the model of every line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from modelc.progress import note

ROOT = Path(__file__).resolve().parent.parent
BAR = re.compile(r"\|[^|\n\r]*\| *\d+/\d+ \[")  # tqdm's "|####      | 2/3 ["


def bar(desc: str, total: int) -> re.Pattern:
    """A tqdm line of that bar, at any point (tqdm redraws at most every 0.1 s, and a bar
    that does not stay is cleared at the end, so the last state may never show)."""
    return re.compile(re.escape(desc) + r": +\d+%\|[^|\n\r]*\| *\d+/" + str(total) + r" \[")


def run(argv: list[str], progress: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "MODELC_PROGRESS": progress}
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False, **kwargs)  # fmt: skip


def test_zoo_names_every_model_and_draws_a_bar_only_when_asked(tmp_path):
    pytest.importorskip("torch")
    specs = ["specs/lenet5.model", "specs/gan.model"]
    shown = run(["scripts/zoo.py", *specs, "--out", str(tmp_path / "a")], "1", timeout=300)
    hidden = run(["scripts/zoo.py", *specs, "--out", str(tmp_path / "b")], "0", timeout=300)
    assert shown.returncode == 0 and hidden.returncode == 0, shown.stderr + hidden.stderr
    assert bar("zoo", 2).search(shown.stderr), shown.stderr
    assert not BAR.search(hidden.stderr) and "\r" not in hidden.stderr
    assert shown.stdout == hidden.stdout.replace(str(tmp_path / "b"), str(tmp_path / "a"))
    lines = hidden.stdout.splitlines()
    # gan.model holds two models: each parameters/MACs line says whose numbers it holds.
    for model in ("LeNet5", "Generator", "Discriminator"):
        assert sum(line.startswith(f"{model}: parameters: ") for line in lines) == 1, hidden.stdout
        assert sum(line.startswith(f"{model}: MACs (batch 1): ") for line in lines) == 1
        assert sum(line.startswith(f"{model}(") for line in lines) == 1
    assert not [line for line in lines if line.startswith(("parameters", "MACs"))]
    assert lines[-1] == "all 2 specs checked, compiled, verified and drawn"
    for name in ("lenet5", "gan"):
        for ext in (".py", ".svg", ".summary.txt"):
            assert (tmp_path / "b" / f"{name}{ext}").stat().st_size > 0
    assert "verified Discriminator" in hidden.stderr


def test_zoo_lists_the_specs_that_fail(tmp_path):
    bad = tmp_path / "bad.model"
    bad.write_text("model Bad {\n    input x: [B, 3]\n    output x -> linear(4) -> nosuchop\n}\n")
    done = run(["scripts/zoo.py", str(bad), "--out", str(tmp_path / "out")], "0", timeout=120)
    assert done.returncode == 1
    assert f"FAILED: {bad}" in done.stderr and "error[E0203]" in done.stderr
    assert "Traceback" not in done.stderr


class _Fake:
    """Stands in for a module in bench's timing loop: counts its calls."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, *args) -> None:
        self.calls += 1


@pytest.mark.parametrize("forced, asked, drawn", [("1", True, True), ("0", True, False), ("1", False, False)])
def test_bench_timing_loop_bar(monkeypatch, capsys, forced, asked, drawn):
    torch = pytest.importorskip("torch")
    from modelc.bench import Options, _time, _Variant

    monkeypatch.setenv("MODELC_PROGRESS", forced)
    ours, ref = _Variant("ours", _Fake()), _Variant("ref", _Fake())
    opts = Options(spec="x.model", reps=3, warmup=2, progress=asked)
    _time([ours, ref], [], opts, torch, "bench Tiny")
    assert ours.module.calls == ref.module.calls == 5 and len(ours.times) == len(ref.times) == 3
    err = capsys.readouterr().err
    assert bool(bar("bench Tiny", 10).search(err)) == drawn, err
    assert drawn or err == ""


def test_fuzz_campaign_bar(tmp_path):
    argv = ["bench/fuzz.py", "--cases", "4", "--seed", "1", "--verify-every", "0", "--progress", "0",
            "--out", str(tmp_path)]  # fmt: skip
    shown = run(argv, "1", timeout=300)
    hidden = run(argv, "0", timeout=300)
    assert shown.returncode == hidden.returncode == 0, shown.stdout + shown.stderr
    assert bar("fuzz", 4).search(shown.stderr), shown.stderr
    assert not BAR.search(hidden.stderr)
    # Without a bar, the campaign prints its own progress lines (every --progress seconds).
    assert "... 1 cases" in hidden.stdout and "... 1 cases" not in shown.stdout


def test_note_prints_plainly_without_a_bar(monkeypatch, capsys):
    monkeypatch.setenv("MODELC_PROGRESS", "0")
    note("one line")
    note("to stderr", file=sys.stderr)
    out, err = capsys.readouterr()
    assert out == "one line\n" and err == "to stderr\n"
