"""The model zoo: every spec in specs/ compiles, checks, runs, and counts right.

Parameter counts and MACs are the published figures of /work/shared/REFERENCE.md
(torchvision's models, the PyTorch tutorial's LeNet-5). Specs with a torchvision
twin must produce its state_dict keys and shapes, load its weights strictly and
compute the same outputs; the MLP and LeNet-5 are compared with hand-written
PyTorch modules.
"""

from __future__ import annotations

import contextlib

import modelc
import pytest
import torch
import torch.nn.functional as F
from conftest import compiled, spec_names, spec_path
from modelc.cli import main as cli
from modelc.summary import summarize
from modelc.verify import verify_module
from torch import nn

# name: (parameters, MACs per forward at batch 1)
REFERENCE = {
    # 784*256+256 + 256*128+128 + 128*10+10; MACs are the weight products
    "mlp": (235_146, 234_752),
    "lenet5": (61_706, 416_520),
    "alexnet": (61_100_840, 714_188_480),
    "vgg16": (138_357_544, 15_470_264_320),
    "resnet18": (11_689_512, 1_814_073_344),
    "resnet50": (25_557_032, 4_089_184_256),
}
SLOW = {"alexnet", "vgg16", "resnet50"}
TWINS = ["alexnet", "vgg16", "resnet18", "resnet50"]  # same names as torchvision.models


def _marked(name: str):
    return pytest.param(name, marks=pytest.mark.slow) if name in SLOW else name


ALL = [_marked(n) for n in REFERENCE]


def _outputs_equal(
    a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5, where=""
) -> None:
    where = f" in {where}" if where else ""
    assert a.shape == b.shape, f"shapes {tuple(a.shape)} and {tuple(b.shape)}{where}"
    diff = (a - b).abs().max().item()
    assert diff <= atol, f"max abs difference {diff:.3g} > {atol:.3g}{where}"


def _state_shapes(m: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    return [(k, tuple(v.shape)) for k, v in m.state_dict().items()]


# ---- every spec ----------------------------------------------------------------------
def test_zoo_is_complete():
    # Other specs in specs/ have their own tests; these are the foundation zoo.
    assert set(REFERENCE) <= set(spec_names())


@pytest.mark.parametrize("name", list(REFERENCE))
def test_compiles(name):
    source = modelc.compile_file(spec_path(name))
    compile(source, f"{name}.py", "exec")
    assert f"class {compiled(name).graph.name}(nn.Module):" in source


@pytest.mark.parametrize("name", list(REFERENCE))
def test_cli_check(name, capsys):
    assert cli(["check", spec_path(name)]) == 0
    out = capsys.readouterr().out
    assert f": ok: {compiled(name).graph.name}: " in out
    assert f" {REFERENCE[name][0]:,} parameters" in out


@pytest.mark.parametrize("name", list(REFERENCE))
def test_parameters_and_macs(name):
    params, macs = REFERENCE[name]
    cls, graph = compiled(name)
    summary = summarize(graph)
    assert (summary["total_params"], summary["macs"]) == (params, macs)
    assert cls.NUM_PARAMETERS == params


@pytest.mark.parametrize("name", ALL)
def test_verify_module(name):
    cls, graph = compiled(name)
    result = verify_module(cls, graph)
    assert result["params"] == REFERENCE[name][0]
    assert result["modules_checked"] > 0


# ---- torchvision twins ---------------------------------------------------------------
def _randomize(model: nn.Module) -> None:
    """Random biases and BatchNorm statistics (torchvision's are all 0 and 1)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.running_mean.normal_(0.0, 0.1, generator=g)
            if getattr(m, "bias", None) is not None:
                m.bias.normal_(0.0, 0.01, generator=g)


@pytest.fixture(scope="module", params=[_marked(n) for n in TWINS])
def twins(request):
    """(the compiled spec, its torchvision model) in eval mode, built once per model."""
    import torchvision

    name = request.param
    torch.manual_seed(0)
    reference = getattr(torchvision.models, name)(weights=None).eval()
    _randomize(reference)
    ours = compiled(name).cls().eval()
    return ours, reference


def test_state_dict_matches_torchvision(twins):
    ours, reference = twins
    assert _state_shapes(ours) == _state_shapes(reference)


def test_torchvision_weights_load_strictly(twins):
    ours, reference = twins
    result = ours.load_state_dict(reference.state_dict(), strict=True)
    assert not result.missing_keys and not result.unexpected_keys


def test_outputs_match_torchvision(twins):
    ours, reference = twins
    ours.load_state_dict(reference.state_dict(), strict=True)
    torch.manual_seed(2)
    x = torch.randn(2, 3, 224, 224)
    got, got_inner = _run_recording(ours, x)
    want, want_inner = _run_recording(reference, x)
    # Every submodule of ours is torchvision's namesake and computes the same thing
    # (checked in execution order, so a failure names the first layer that differs).
    assert set(got_inner) <= set(want_inner)
    for name, value in got_inner.items():
        reference_value = want_inner[name]
        scale = max(
            1.0, reference_value.abs().max().item()
        )  # activations grow with depth
        _outputs_equal(value, reference_value, atol=1e-5 * scale, where=name)
    _outputs_equal(got, want)
    assert (want[0] - want[1]).abs().max() > 1e-4  # the output depends on the input


def _run_recording(model: nn.Module, x: torch.Tensor):
    """The model's output, and the output of each submodule by qualified name."""
    seen: dict[str, torch.Tensor] = {}

    def record(name):
        # A clone: torchvision's in-place ReLUs overwrite the outputs of earlier layers.
        return lambda module, inputs, output: seen.__setitem__(name, output.clone())

    handles = [
        m.register_forward_hook(record(name))
        for name, m in model.named_modules()
        if name
    ]
    try:
        with torch.no_grad():
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, seen


# ---- hand-written references: MLP and LeNet-5 ----------------------------------------
class TutorialLeNet(nn.Module):
    """`Net` of the PyTorch "Neural Networks" tutorial, verbatim."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), (2, 2))
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        x = F.relu(self.fc1(x))
        x = F.relu(self.fc2(x))
        return self.fc3(x)


class ReferenceMLP(nn.Module):
    def __init__(self, hidden=(256, 128), num_classes=10, in_features=784):
        super().__init__()
        layers: list[nn.Module] = []
        for width in hidden:
            layers += [nn.Linear(in_features, width), nn.ReLU()]
            in_features = width
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(in_features, num_classes)

    def forward(self, x):
        return self.head(self.layers(torch.flatten(x, 1)))


def _check_against(ours: nn.Module, reference: nn.Module, x: torch.Tensor) -> None:
    assert _state_shapes(ours) == _state_shapes(reference)
    ours.load_state_dict(reference.state_dict(), strict=True)
    with torch.no_grad():
        _outputs_equal(ours.eval()(x), reference.eval()(x))


def test_lenet5_matches_tutorial():
    torch.manual_seed(0)
    reference = TutorialLeNet()
    assert sum(p.numel() for p in reference.parameters()) == REFERENCE["lenet5"][0]
    _check_against(compiled("lenet5").cls(), reference, torch.randn(4, 1, 32, 32))


@pytest.mark.parametrize(
    "hidden, num_classes", [([256, 128], 10), ([512, 64, 32], 5), ([100], 3)]
)
def test_mlp_matches_reference(hidden, num_classes):
    cls = modelc.load(spec_path("mlp"), hidden=hidden, num_classes=num_classes)
    torch.manual_seed(0)
    reference = ReferenceMLP(hidden, num_classes)
    assert cls.NUM_PARAMETERS == sum(p.numel() for p in reference.parameters())
    _check_against(cls(), reference, torch.randn(4, 1, 28, 28))


# ---- where PyTorch goes: autocast, torch.compile, CUDA -------------------------------
def test_lenet5_under_bf16_autocast():
    torch.manual_seed(0)
    reference = TutorialLeNet().eval()
    ours = compiled("lenet5").cls().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        fp32 = ours(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            got, want = ours(x), reference(x)
    assert got.dtype == torch.bfloat16
    torch.testing.assert_close(got, want)  # the same ops under the same autocast policy
    torch.testing.assert_close(got.float(), fp32, atol=2e-2, rtol=2e-2)


def test_lenet5_under_torch_compile():
    torch.manual_seed(0)
    model = compiled("lenet5").cls().eval()
    x = torch.randn(4, 1, 32, 32)
    torch._dynamo.reset()
    try:
        # The default backend (inductor); fullgraph: the forward has no graph breaks.
        fast = torch.compile(model, fullgraph=True)
        with torch.no_grad():
            got, want = fast(x), model(x)
    finally:
        torch._dynamo.reset()
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["lenet5", "resnet18"])
def test_cuda_matches_cpu(name):
    cls, graph = compiled(name)
    torch.manual_seed(0)
    model = cls().eval()
    _randomize(model)
    shape = [2 if isinstance(d, str) else d for d in cls.INPUT_SHAPES["image"]]
    x = torch.randn(shape)
    with torch.no_grad(), _no_tf32():
        verify_module(cls, graph, device="cuda")
        want = model(x)
        got = model.to("cuda")(x.to("cuda")).cpu()
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)


@contextlib.contextmanager
def _no_tf32():
    """Plain fp32 on the GPU: TF32 would round differently from the CPU."""
    # Saved and restored by hand: these flags live behind __getattr__/__setattr__,
    # which pytest's monkeypatch cannot undo.
    cudnn, matmul = torch.backends.cudnn, torch.backends.cuda.matmul
    saved = cudnn.allow_tf32, matmul.allow_tf32
    cudnn.allow_tf32 = matmul.allow_tf32 = False
    try:
        yield
    finally:
        cudnn.allow_tf32, matmul.allow_tf32 = saved
