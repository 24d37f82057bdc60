"""examples/train_distributed.py: generated modules under PyTorch's data-parallel engines.

DistributedDataParallel and FSDP2 (`fully_shard`, built on the meta device), run by
torchrun as two CPU processes over gloo, must train a generated module to the parameters
that one process reaches on the same global batches. The oracle is that single process:
plain PyTorch, no engine. Tolerance 1e-6 (absolute): the engines average the ranks'
gradients with an all-reduce / reduce-scatter, so the sums are taken in another order than
in one process's backward; measured differences are below 1.2e-7.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist

import modelc

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "train_distributed.py"
SPECS = ROOT / "specs"
TOLERANCE = 1e-6
STEPS, LR = 3, {"sgd": 0.05, "adamw": 1e-3}
GPT = {"vocab": 64, "block_size": 16, "layers": 2, "heads": 2, "width": 32}  # the script's preset

pytestmark = pytest.mark.skipif(
    not (dist.is_available() and dist.is_gloo_available()), reason="torch built without gloo"
)


def train(engine: str, model: str, optim: str, where: Path) -> tuple[dict, list[float]]:
    """The final state dict and the per-step losses of one run of the example."""
    out = where / f"{model}-{optim}-{engine}.pt"
    launcher = [] if engine == "single" else ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    args = ["--engine", engine, "--model", model, "--optim", optim, "--lr", str(LR[optim]),
            "--steps", str(STEPS), "--batch", "8", "--backend", "gloo", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, *launcher, str(SCRIPT), *args], cwd=where, env=env,
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    losses = [float(x) for x in re.findall(r"^step \d+: loss (\S+)$", done.stdout, re.MULTILINE)]
    assert len(losses) == STEPS, done.stdout  # rank 0 alone reports
    return torch.load(out), losses


def initial(model: str) -> dict:
    """The weights every engine starts from: the module built after torch.manual_seed(0)."""
    params = GPT if model == "gpt" else {}
    cls = modelc.load(str(SPECS / f"{model}.model"), **params)
    torch.manual_seed(0)
    return cls().state_dict()


def differences(a: dict, b: dict) -> dict[str, float]:
    assert a.keys() == b.keys()
    return {k: (a[k].double() - b[k].double()).abs().max().item() for k in a}


@pytest.mark.parametrize("model, optim", [("lenet5", "adamw"), ("gpt", "sgd")])
def test_ddp_and_fsdp2_train_as_one_process(model, optim, tmp_path):
    single, single_losses = train("single", model, optim, tmp_path)
    moved = differences(single, initial(model))
    assert min(moved.values()) > 1e-4, moved  # every parameter trained, far beyond the tolerance
    for engine in ("ddp", "fsdp2"):
        state, losses = train(engine, model, optim, tmp_path)
        diff = differences(state, single)
        worst = max(diff, key=diff.get)
        assert diff[worst] <= TOLERANCE, f"{engine}: {worst} differs by {diff[worst]:.3g}"
        assert losses == pytest.approx(single_losses, abs=1e-5)


def test_gpt_key_bias_gets_no_gradient():
    """Why AdamW on GPT needs more than 1e-6 (test below): adding a constant to a key adds
    q.b to every score of a row, which softmax ignores, so the true gradient of the key
    bias is 0 and what backward computes is rounding noise. Adam divides a gradient by
    its own size, so the noise becomes steps of ~lr, different on each engine."""
    torch.manual_seed(0)
    net = modelc.load(str(SPECS / "gpt.model"), **GPT)()
    idx = torch.randint(GPT["vocab"], (4, 8))
    net(idx).square().mean().backward()
    width = GPT["width"]
    for block in net.transformer.h:
        grad = block.attn.c_attn.bias.grad
        assert grad[width:2 * width].abs().max() < 1e-6 * grad[:width].abs().max()


@pytest.mark.slow
def test_adamw_on_gpt_matches_but_for_the_key_bias(tmp_path):
    single, _ = train("single", "gpt", "adamw", tmp_path)
    state, _ = train("ddp", "gpt", "adamw", tmp_path)
    width = GPT["width"]
    for name, value in state.items():
        diff = (value - single[name]).abs()
        if name.endswith("attn.c_attn.bias"):
            key = diff[width:2 * width]
            assert key.max() <= 2 * LR["adamw"] * STEPS  # at most ~lr per step apart
            diff = torch.cat([diff[:width], diff[2 * width:]])
        assert diff.max() <= TOLERANCE, name
