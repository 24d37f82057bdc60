"""`modelc compile --standalone`: the modelc.runtime helpers a module uses are copied into its
file, which then runs where modelc cannot be imported and computes what the module that
imports modelc.runtime computes (also -O1's checkpoint rules, which load an unoptimized
checkpoint). One subprocess runs every case, with `modelc` blocked in sys.modules."""

from __future__ import annotations

import re
import subprocess
import sys

import modelc
import pytest
from conftest import RUN_PARAMS, spec_path
from modelc.standalone import inline_runtime
from modelc.verify import _random_input, plan

torch = pytest.importorskip("torch")

CASES = [  # (spec, model, parameters, -O level)
    ("vae", None, {}, 0),
    ("filters", None, {}, 0),
    ("jordan_rnn", None, {}, 0),
    ("autoencoders", "DenoisingAE", {}, 0),
    ("transformer", None, {"d_model": 32, "heads": 4, "encoder_layers": 1, "decoder_layers": 1, "ff": 64}, 0),
    ("swin_t", None, {"embed": 16, "depths": [2, 2, 2, 2], "heads": [1, 2, 2, 4], "window": 4,
                      "image_size": 128, "num_classes": 10}, 0),  # fmt: skip
    ("swin_v2_t", None, {"embed": 16, "depths": [2, 2, 2, 2], "heads": [1, 2, 2, 4], "window": 4,
                         "image_size": 80, "num_classes": 10}, 0),  # fmt: skip
    ("llama3", None, RUN_PARAMS["llama3"], 0),
    ("convnext_small", None, {"depths": [1, 1, 1, 1], "widths": [8, 16, 16, 16], "num_classes": 4}, 0),
    ("resnet18", None, {"num_classes": 10}, 1),  # rt.CheckpointRules: BatchNorm folded on load
]

RUNNER = """
import sys
sys.modules["modelc"] = None  # the files must not need it
import importlib.util, torch
torch.set_num_threads({THREADS})  # as the test's process: the same sums in the same order
for i, name in enumerate(sys.argv[1:]):
    spec = importlib.util.spec_from_file_location(f"standalone_{i}", f"{DIR}/{i}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    case = torch.load(f"{DIR}/{i}.pt")
    model = getattr(mod, name)().eval()
    model.load_state_dict(case["state"])
    with torch.no_grad():
        got = model(*case["inputs"])
    got = got if isinstance(got, tuple) else (got,)
    print(name, all(torch.equal(a, b) for a, b in zip(got, case["want"])))
"""


def test_standalone_files_run_without_modelc(tmp_path):
    names = []
    for i, (spec, model, params, level) in enumerate(CASES):
        source = modelc.compile_file(spec_path(spec), model, optimize=level, **params)
        assert "from modelc import runtime as rt" in source
        assert "# Needs: torch and modelc (modelc.runtime), or compile with --standalone" in source
        standalone = inline_runtime(source)
        assert "from modelc" not in standalone and "import modelc" not in standalone
        assert re.search(r"(?<![\w.])rt\.", standalone) is None
        assert "# Needs: torch only" in standalone
        compile(standalone, f"{spec}.py", "exec")
        (tmp_path / f"{i}.py").write_text(standalone)
        base = modelc.load(spec_path(spec), model, **params)  # the unoptimized module's checkpoint
        cls = modelc.load(spec_path(spec), model, optimize=level, **params)
        graph = cls.__modelc_graph__
        torch.manual_seed(i)
        state = base().state_dict()
        reference = cls().eval()
        reference.load_state_dict(state)
        env = plan(graph).env
        inputs = [_random_input(graph, n, graph.node(n).type.subs(env), "cpu") for n in graph.inputs]
        with torch.no_grad():
            want = reference(*inputs)
        want = want if isinstance(want, tuple) else (want,)
        torch.save({"state": state, "inputs": inputs, "want": want}, tmp_path / f"{i}.pt")
        names.append(graph.name)
    runner = RUNNER.replace("{DIR}", str(tmp_path)).replace("{THREADS}", str(torch.get_num_threads()))
    done = subprocess.run([sys.executable, "-c", runner, *names], capture_output=True, text=True, timeout=600)
    assert done.stdout.split("\n")[:-1] == [f"{n} True" for n in names], done.stderr[-2000:]


def test_a_file_without_runtime_helpers_is_unchanged():
    source = modelc.compile_file(spec_path("lenet5"))
    assert "modelc.runtime" not in source and inline_runtime(source) == source


def test_a_helper_named_like_a_class_of_the_file_is_renamed():
    text = ("block Permute {\n    input x\n    output x -> relu\n}\n"
            "model M {\n    input x: [B, 4, 6]\n    output x -> p: permute([0, 2, 1]) -> Permute\n}\n")  # fmt: skip
    source = inline_runtime(modelc.compile_source(text, "clash.model"))
    assert "class Permute_rt(nn.Module):" in source and "self.p = Permute_rt((0, 2, 1))" in source
    assert "class Permute(nn.Module):" in source
    namespace: dict = {}
    exec(compile(source, "clash.py", "exec"), namespace)  # noqa: S102 - our own generated code
    x = torch.randn(2, 4, 6)
    assert torch.equal(namespace["M"]()(x), torch.relu(x.permute(0, 2, 1)))
