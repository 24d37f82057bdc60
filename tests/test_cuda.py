"""Every model of the zoo on CUDA, in fp32 and bf16, at -O0 and -O2, against the CPU in fp32.

One checkpoint (random weights and BatchNorm statistics, the -O0 module's, loaded into -O2
through its LOAD_RULES) and one random batch per model. fp32 runs with TF32 off and must match
within 1e-3 of the output's scale; bf16 (8 bits of mantissa, rounding at every layer) must stay
within 5% in relative L2 norm, and give the same shapes and finite values where fp32 does.
Skipped without a GPU; MODELC_CUDA_REPORT=FILE writes the measured errors as JSON lines.
"""

from __future__ import annotations

import json
import os
import pathlib

import pytest
import torch
from passes_util import randomize

import modelc
from conftest import RUN_PARAMS
from modelc.bench import flat_outputs, no_tf32
from modelc.driver import build_all
from modelc.load import load_file
from modelc.verify import _random_input, sizes

pytestmark = pytest.mark.cuda

SPECS = pathlib.Path(__file__).resolve().parent.parent / "specs"


def _models():
    out = []
    for path in sorted(SPECS.glob("*.model")):
        for name in load_file(str(path)).main_models:
            out.append(pytest.param(str(path), name, id=f"{path.stem}.{name}"))
    return out


def _run(module, args, device, dtype):
    module = module.to(device=device).eval()
    if dtype is not torch.float32:
        module = module.to(dtype)
    cast = [a.to(device=device, dtype=dtype) if a.is_floating_point() else a.to(device) for a in args]
    with torch.no_grad(), no_tf32(torch):
        return [t.float().cpu() if t.is_floating_point() else t.cpu() for t in flat_outputs(module(*cast))]


@pytest.mark.parametrize("path,model", _models())
def test_zoo_on_cuda(path, model):
    params = RUN_PARAMS.get(pathlib.Path(path).stem, {})
    graph = build_all(load_file(path), model, params)[0]
    env = sizes(graph, 2, "test")
    torch.manual_seed(0)
    args = [_random_input(graph, n, graph.node(n).type.subs(env), "cpu") for n in graph.inputs]
    base = modelc.load(path, model, **params)()
    randomize(base)
    state = base.state_dict()
    want = _run(base, args, "cpu", torch.float32)
    failures, report = [], []
    for level in (0, 2):
        for dtype in (torch.float32, torch.bfloat16):
            m = modelc.load(path, model, optimize=level, **params)()
            m.load_state_dict(state)
            got = _run(m, args, "cuda", dtype)
            what = f"-O{level} {str(dtype).removeprefix('torch.')}"
            for i, (g, w) in enumerate(zip(got, want)):
                if g.shape != w.shape:
                    failures.append(f"{what} output {i}: shape {list(g.shape)}, CPU {list(w.shape)}")
                    continue
                if not w.is_floating_point():
                    if dtype is torch.float32 and not torch.equal(g, w):
                        failures.append(f"{what} output {i}: integer outputs differ")
                    continue
                ok = torch.isfinite(w)
                if not torch.isfinite(g[ok]).all():
                    failures.append(f"{what} output {i}: not finite where the CPU's is")
                    continue
                g, w = g[ok], w[ok]
                scale = max(1.0, w.abs().max().item()) if w.numel() else 1.0
                worst = (g - w).abs().max().item() / scale if w.numel() else 0.0
                rel = ((g - w).norm() / w.norm().clamp_min(1e-12)).item() if w.numel() else 0.0
                report.append({"model": f"{pathlib.Path(path).stem}.{model}", "variant": what, "output": i,
                               "max_abs_over_scale": worst, "relative_l2": rel})  # fmt: skip
                if dtype is torch.float32 and worst > 1e-3:
                    failures.append(f"{what} output {i}: differs by {worst:.3g} of its scale")
                if dtype is torch.bfloat16 and rel > 5e-2:
                    failures.append(f"{what} output {i}: relative L2 error {rel:.3g}")
    if os.environ.get("MODELC_CUDA_REPORT"):
        with open(os.environ["MODELC_CUDA_REPORT"], "a") as f:
            for row in report:
                f.write(json.dumps(row) + "\n")
    assert not failures, "\n".join(failures)
