"""Modules from modelc.load pickle whole (torch.save(model)), also into a fresh process that
has modelc but not the spec, and their classes show their own source (inspect.getsource)."""

from __future__ import annotations

import copy
import inspect
import pickle
import subprocess
import sys

import modelc
import pytest
from conftest import spec_path

torch = pytest.importorskip("torch")


def test_pickle_and_deepcopy_keep_the_class_and_the_function():
    cls = modelc.load(spec_path("resnet18"), num_classes=7)
    model = cls().eval()
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want = model(x)
        for clone in (pickle.loads(pickle.dumps(model)), copy.deepcopy(model)):
            assert type(clone) is cls and type(clone.layer1[0]) is type(model.layer1[0])
            assert torch.equal(clone.eval()(x), want)


def test_torch_save_of_a_whole_model_loads_in_a_fresh_process(tmp_path):
    spec = tmp_path / "tiny.model"  # the spec is gone when the pickle is loaded
    spec.write_text("model Tiny {\n    input x: [B, 8]\n    output x -> fc: linear(4) -> gelu\n}\n")
    model = modelc.load(str(spec))().eval()
    x = torch.randn(3, 8)
    with torch.no_grad():
        want = model(x)
    torch.save({"model": model, "x": x, "want": want}, tmp_path / "whole.pt")
    spec.unlink()
    code = ("import torch; d = torch.load(r'%s', weights_only=False); m = d['model'].eval()\n"
            "print(type(m).__name__, torch.equal(m(d['x']), d['want']))") % (tmp_path / "whole.pt")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "Tiny True", done.stderr


def test_each_loaded_class_shows_its_own_source():
    cls = modelc.load(spec_path("resnet18"))
    block = type(cls().layer2[0])
    source = inspect.getsource(block)
    assert source.startswith(f"class {block.__name__}(nn.Module):")
    assert "def forward(" in source and source in cls.__modelc_source__
