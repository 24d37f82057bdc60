"""Issue 4's zoo: convolutional, encoder-decoder and generative specs.

Every model of every spec below compiles and runs (`verify_module`: parameter
count and every submodule's output shape against the IR). Each spec also carries
its proof: torchvision twins load torchvision's weights strictly and compute the
same outputs; the rest are compared with hand-written PyTorch modules
(tests/vision_references.py, written from the papers independently of the compiler
and of `modelc.runtime`), or with published figures and textbook results.
"""

from __future__ import annotations

import functools
import math

import modelc
import pytest
import torch
import torch.nn.functional as F
from conftest import spec_path
from modelc import runtime as rt
from modelc.cli import main as cli
from modelc.summary import summarize
from modelc.verify import verify_module
from torch import nn
from vision_references import (
    DCGANDiscriminator,
    DCGANGenerator,
    RefCGANDiscriminator,
    RefCGANGenerator,
    RefContextDiscriminator,
    RefContextEncoder,
    RefGANDiscriminator,
    RefMLPAE,
    RefUNet,
    RefVAE,
    denoising_reference,
    mlp,
    reference_ae,
)

torchvision = pytest.importorskip("torchvision")


@functools.cache
def load(spec: str, model: str | None = None, **params) -> type:
    """A spec's module class (one model of the file), compiled once per session."""
    return modelc.load(spec_path(spec), model=model, **params)


def graph_of(cls: type):
    return cls.__modelc_graph__


def build(spec: str, model: str | None = None, seed: int = 0, **params) -> nn.Module:
    torch.manual_seed(seed)
    return load(spec, model, **params)().eval()


def same(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    assert a.shape == b.shape, (a.shape, b.shape)
    diff = (a - b).abs().max().item()
    assert diff <= atol, f"max abs difference {diff:.3g} > {atol}"


def randomize(model: nn.Module, seed: int = 1) -> nn.Module:
    """Random biases and batchnorm statistics, so that a wrong wiring cannot hide behind 0s and 1s."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.affine:
                m.weight.copy_(torch.rand(m.weight.shape, generator=g) * 0.5 + 0.5)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
                m.running_mean.normal_(0.0, 0.1, generator=g)
            bias = getattr(m, "bias", None)
            if isinstance(bias, torch.Tensor) and bias.requires_grad:
                bias.normal_(0.0, 0.01, generator=g)
    return model


def twin(ours: nn.Module, reference: nn.Module) -> None:
    """Same state_dict keys and shapes; load ours into the reference by name, strictly."""
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()
    ]
    reference.load_state_dict(randomize(ours).state_dict(), strict=True)
    reference.eval()


def params_of(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# ---- every model runs -------------------------------------------------------------------
# (spec, model, parameters): small widths where the default would be slow on a CPU.
MODELS = [
    ("alexnet_original", None, {}),
    ("googlenet", None, {}),
    ("googlenet_aux", None, {}),  # training-only heads: verify runs both modes
    ("mobilenet_v1", None, {}),
    ("mobilenet_v2", None, {}),
    ("mobilenet_v3_small", None, {}),
    ("resnet34", None, {}),
    ("unet", None, {"base": 8}),
    ("unet", None, {"base": 8, "p": 1, "size": 256}),
    ("autoencoders", "UndercompleteAE", {}),
    ("autoencoders", "OvercompleteAE", {}),
    ("autoencoders", "ConvAE", {}),
    ("autoencoders", "DenoisingAE", {}),
    ("autoencoders", "DenoisingAE", {"noise": "masking"}),
    ("autoencoders", "SparseAE", {}),
    ("autoencoders", "StackedAE", {}),
    ("vae", None, {}),
    ("context_encoder", "ContextEncoder", {}),
    ("context_encoder", "Discriminator", {}),
    ("gan", "Generator", {}),
    ("gan", "Discriminator", {}),
    ("dcgan", "Generator", {}),
    ("dcgan", "Discriminator", {}),
    ("cgan", "Generator", {}),
    ("cgan", "Discriminator", {}),
    ("filters", None, {}),
    pytest.param("vgg19", None, {}, marks=pytest.mark.slow),
    pytest.param("resnet101", None, {}, marks=pytest.mark.slow),
    pytest.param("resnet152", None, {}, marks=pytest.mark.slow),
]
SPECS = ["alexnet_original", "autoencoders", "cgan", "context_encoder", "dcgan", "filters", "gan", "googlenet",
         "googlenet_aux", "mobilenet_v1", "mobilenet_v2", "mobilenet_v3_small", "resnet101", "resnet152", "resnet34", "unet", "vae", "vgg19"]  # fmt: skip


def _id(spec, model, params) -> str:
    return "-".join(
        [spec, *([model] if model else []), *(f"{k}={v}" for k, v in params.items())]
    )


def _case(m):
    values, marks = (m.values, m.marks) if hasattr(m, "marks") else (m, ())
    return pytest.param(*values, id=_id(*values), marks=marks)


@pytest.mark.parametrize("spec, model, params", [_case(m) for m in MODELS])
def test_compiles_and_runs(spec, model, params):
    cls = load(spec, model, **params)
    result = verify_module(cls, graph_of(cls))
    assert result["params"] == cls.NUM_PARAMETERS
    assert result["modules_checked"] > 0


@pytest.mark.parametrize("spec", SPECS)
def test_cli_compile_and_check(spec, capsys):
    source = modelc.compile_file(spec_path(spec))
    compile(source, f"{spec}.py", "exec")
    assert cli(["check", spec_path(spec)]) == 0
    assert ": ok: " in capsys.readouterr().out


# ---- torchvision twins ------------------------------------------------------------------
# name: (parameters, MACs at batch 1), from /work/shared/REFERENCE.md
TORCHVISION = {
    "googlenet": (6_624_904, 1_498_376_192),
    "mobilenet_v2": (3_504_872, 300_774_272),
    "resnet34": (21_797_672, 3_663_761_408),
    "vgg19": (143_667_240, 19_632_062_464),
    "resnet101": (44_549_160, 7_801_405_440),
    "resnet152": (60_192_808, 11_513_626_624),
}
SLOW_TWINS = {"vgg19", "resnet101", "resnet152"}


def _twin_case(name):
    return pytest.param(name, marks=pytest.mark.slow) if name in SLOW_TWINS else name


@pytest.mark.parametrize("name", list(TORCHVISION))
def test_parameters_and_macs_match_torchvision(name):
    summary = summarize(graph_of(load(name)))
    assert (summary["total_params"], summary["macs"]) == TORCHVISION[name]


@pytest.mark.parametrize("name", [_twin_case(n) for n in TORCHVISION])
def test_torchvision_twin(name):
    """Same parameter count, state_dict keys and shapes, and outputs on torchvision's weights."""
    kwargs = {"aux_logits": False, "init_weights": False} if name == "googlenet" else {}
    torch.manual_seed(0)
    reference = randomize(
        getattr(torchvision.models, name)(weights=None, **kwargs)
    ).eval()
    if name == "googlenet":
        assert (
            reference.transform_input is False
        )  # torchvision's default without weights
    ours = build(name)
    assert params_of(ours) == params_of(reference) == TORCHVISION[name][0]
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [
        (k, v.shape) for k, v in reference.state_dict().items()
    ]
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        same(ours(x), reference(x), atol=1e-4)


def test_mobilenet_v2_nests_conv_norm_activation_like_torchvision():
    keys = list(build("mobilenet_v2").state_dict())
    assert keys[:2] == ["features.0.0.weight", "features.0.1.weight"]
    assert "features.1.conv.0.0.weight" in keys  # t = 1: depthwise first, no expansion
    assert "features.2.conv.0.0.weight" in keys and "features.2.conv.1.0.weight" in keys
    assert "features.18.0.weight" in keys and keys[-2:] == [
        "classifier.1.weight",
        "classifier.1.bias",
    ]


def test_mobilenet_v3_small_is_torchvisions():
    """Conditional steps number as torchvision's appended layers: a block without expansion or
    squeeze-and-excitation has its projection at block.2 (block.3 with both); hard-swish or relu
    is chosen per block. Same keys, outputs on torchvision's weights, and its published cost."""
    torch.manual_seed(0)
    reference = randomize(torchvision.models.mobilenet_v3_small(weights=None)).eval()
    ours = build("mobilenet_v3_small")
    twin_keys = [(k, v.shape) for k, v in ours.state_dict().items()]
    assert twin_keys == [(k, v.shape) for k, v in reference.state_dict().items()]
    assert params_of(ours) == params_of(reference) == 2_542_856
    keys = list(ours.state_dict())
    assert "features.1.block.1.fc1.weight" in keys and "features.1.block.2.0.weight" in keys  # no expansion
    assert "features.2.block.2.0.weight" in keys and "features.2.block.3.0.weight" not in keys  # no SE
    assert "features.4.block.3.0.weight" in keys  # expansion, depthwise, SE, projection
    acts = [type(ours.features[i].block[0][2]).__name__ for i in (1, 3, 4)]
    assert acts == ["ReLU", "ReLU", "Hardswish"]
    bn = ours.features[0][1]
    assert (bn.eps, bn.momentum) == (0.001, 0.01)  # the def, written out
    ours.load_state_dict(reference.state_dict(), strict=True)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        same(ours(x), reference(x), atol=1e-4)
    meta = torchvision.models.MobileNet_V3_Small_Weights.IMAGENET1K_V1.meta
    macs = summarize(graph_of(load("mobilenet_v3_small")))["macs"]
    assert round(macs / 1e9, 3) == meta["_ops"]  # 0.057 G


def test_googlenet_paper_kernel_is_a_parameter():
    # torchvision's "5x5" branch uses 3x3 kernels; k5=5 builds the paper's network.
    assert graph_of(load("googlenet", k5=5)).node(0).type.dims[1] == 3
    summary = summarize(graph_of(load("googlenet", k5=5)))
    assert summary["total_params"] > TORCHVISION["googlenet"][0]
    assert summary["outputs"]["out"] == ["B", 1000]


# ---- AlexNet, original form -------------------------------------------------------------------
def test_alexnet_original_per_layer_parameters_in_summary(capsys):
    assert cli(["summary", spec_path("alexnet_original")]) == 0
    rows = {
        line.split()[0]: line
        for line in capsys.readouterr().out.splitlines()
        if line.strip()
    }
    assert "[B, 3, 227, 227]" in rows["image"]
    expected = {"conv1": "34,944", "conv2": "614,656", "conv3": "885,120", "conv4": "1,327,488",
                "conv5": "884,992", "fc6": "37,752,832", "fc7": "16,781,312", "fc8": "4,097,000"}  # fmt: skip
    for layer, count in expected.items():
        assert f" {count} " in rows[layer] + " ", rows[layer]
    assert "[B, 96, 55, 55]" in rows["conv1"] and "[B, 256, 6, 6]" in rows["pool5"]
    assert "LRN 5" in rows["norm1"] and "LRN 5" in rows["norm2"]
    assert "parameters: 62,378,344" in rows["parameters:"]


def test_alexnet_original_split_over_two_gpus():
    # groups=2 on conv2, conv4, conv5: the paper's 60,965,224 parameters.
    assert (
        summarize(graph_of(load("alexnet_original", groups=2)))["total_params"]
        == 60_965_224
    )


def test_alexnet_lrn_is_the_papers_formula():
    """b = a / (k + alpha * sum over 5 neighbouring channels of a^2)^beta, k=2, alpha=1e-4."""
    norm = build("alexnet_original").norm1
    a = torch.randn(2, 96, 5, 5) * 30
    sq = F.pad(a.pow(2), (0, 0, 0, 0, 2, 2))  # channels padded by n // 2 on each side
    window = sum(sq[:, i : i + 96] for i in range(5))
    same(norm(a), a / (2 + 1e-4 * window) ** 0.75)


# ---- MobileNet v1 ----------------------------------------------------------------------------
def test_mobilenet_v1_size_and_cost():
    s = summarize(graph_of(load("mobilenet_v1")))
    assert s["total_params"] == 4_231_976  # "4.2 million" (Howard et al., Table 8)
    assert s["macs"] == 568_740_352  # "569 million mult-adds"
    small = summarize(graph_of(load("mobilenet_v1", alpha=0.5, resolution=160)))
    assert (small["total_params"], small["macs"]) == (
        1_331_592,
        76_524_800,
    )  # Table 7: 1.32 M, 76 M


def test_mobilenet_v1_depthwise_blocks_are_grouped():
    model = build("mobilenet_v1")
    for block in model.blocks:
        assert block.dw.groups == block.dw.in_channels == block.dw.out_channels
        assert block.pw.kernel_size == (1, 1)


def test_mobilenet_v1_separable_blocks_save_8_to_9x():
    """Per block, MACs of depthwise + pointwise vs one standard 3x3 conv (separable=false)."""
    sep = {r["name"]: r for r in summarize(graph_of(load("mobilenet_v1")))["layers"]}
    std = {
        r["name"]: r
        for r in summarize(graph_of(load("mobilenet_v1", separable=False)))["layers"]
    }
    ratios = []
    for i in range(13):
        dw, pw, conv = (
            sep[f"blocks.{i}.dw"],
            sep[f"blocks.{i}.pw"],
            std[f"blocks.{i}.conv"],
        )
        ratio = conv["macs"] / (dw["macs"] + pw["macs"])
        c_out = pw["output_shape"][1]
        assert ratio == pytest.approx(
            1 / (1 / c_out + 1 / 9)
        )  # REFERENCE.md: 1/C_out + 1/K^2
        ratios.append(ratio)
    assert 7.8 < min(ratios) and max(ratios) < 9  # 7.9x for 64 outputs, 8.9x for 1024


# ---- U-Net -----------------------------------------------------------------------------------


def test_unet_shapes_original_and_padded():
    valid = graph_of(load("unet"))
    assert valid.node(valid.inputs[0]).type.dims[1:] == (1, 572, 572)
    assert [str(d) for d in valid.type_of(valid.outputs[0][1]).dims] == [
        "B",
        "2",
        "388",
        "388",
    ]
    sizes = {r["name"]: r["output_shape"][2] for r in summarize(valid)["layers"]}
    assert [sizes[f"enc{i}.conv2"] for i in (1, 2, 3, 4)] == [568, 280, 136, 64]
    assert [sizes[f"dec{i}.center_crop"] for i in (4, 3, 2, 1)] == [
        56,
        104,
        200,
        392,
    ]  # the crops
    padded = graph_of(load("unet", p=1, size=256))
    assert [str(d) for d in padded.type_of(padded.outputs[0][1]).dims] == [
        "B",
        "2",
        "256",
        "256",
    ]
    assert not any(padded.node(n).op == "center_crop" for n in padded.nodes())
    assert (
        summarize(valid)["total_params"]
        == summarize(padded)["total_params"]
        == 31_030_658
    )
    assert params_of(RefUNet(64, 0)) == 31_030_658


@pytest.mark.parametrize("p, size", [(0, 572), (1, 256)])
def test_unet_matches_hand_written(p, size):
    ours = build("unet", base=8, p=p, size=size)
    reference = RefUNet(8, p)
    twin(ours, reference)
    x = torch.randn(1, 1, size, size)
    with torch.no_grad():
        same(ours(x), reference(x))


# ---- autoencoders ----------------------------------------------------------------------------


AE_INPUTS = {"ConvAE": (4, 1, 28, 28)}


@pytest.mark.parametrize(
    "model", ["UndercompleteAE", "OvercompleteAE", "ConvAE", "StackedAE"]
)
def test_autoencoder_matches_hand_written(model):
    ours, reference = build("autoencoders", model), reference_ae(model)
    twin(ours, reference)
    x = torch.rand(*AE_INPUTS.get(model, (4, 784)))
    with torch.no_grad():
        same(ours(x), reference(x))
    code = dict(reference.named_children())["encoder"](x)
    if model == "UndercompleteAE":
        assert code.shape[1] < 784
    if model == "OvercompleteAE":
        assert code.shape[1] > 784
    if model == "ConvAE":
        assert code.shape[1:] == (64, 1, 1)


@pytest.mark.parametrize("noise", ["gaussian", "multiplicative", "masking"])
def test_denoising_autoencoder_noise_only_in_training(noise):
    ours = build("autoencoders", "DenoisingAE", noise=noise)
    reference = denoising_reference()
    twin(ours, reference)
    x = torch.rand(64, 784) + 0.5
    with torch.no_grad():
        same(ours(x), reference(x))  # eval: the noise layer is the identity
        same(ours.corrupt(x), x, atol=0)
        ours.train()
        corrupted = ours.corrupt(x)
        assert not torch.equal(corrupted, x)
        assert not torch.equal(ours(x), reference(x))
    if noise == "gaussian":
        assert (corrupted - x).std().item() == pytest.approx(0.3, rel=0.05)
        assert (corrupted - x).mean().abs().item() < 0.01
    elif noise == "multiplicative":
        assert (corrupted / x - 1).std().item() == pytest.approx(0.3, rel=0.05)
    else:  # a fraction 0.3 of the inputs zeroed, the rest untouched (no rescaling)
        zeroed = corrupted == 0
        assert zeroed.float().mean().item() == pytest.approx(0.3, abs=0.02)
        assert torch.equal(corrupted[~zeroed], x[~zeroed])


def test_sparse_autoencoder_exposes_its_code():
    ours = build("autoencoders", "SparseAE")
    reference = RefMLPAE(
        mlp(nn.Linear(784, 196), nn.Sigmoid()), mlp(nn.Linear(196, 784), nn.Sigmoid())
    )
    twin(ours, reference)
    x = torch.rand(8, 784)
    recon, code = ours(x)
    same(recon, reference(x))
    same(code, reference.encoder(x))
    # The penalties the code exists for: KL(rho || mean activation) and L1; both differentiable.
    rho, rho_hat = 0.05, code.mean(0)
    kl = (
        rho * torch.log(rho / rho_hat)
        + (1 - rho) * torch.log((1 - rho) / (1 - rho_hat))
    ).sum()
    (F.mse_loss(recon, x) + 3 * kl + 1e-3 * code.abs().sum()).backward()
    assert ours.encoder[0].weight.grad is not None


# ---- variational autoencoder --------------------------------------------------------------------


def test_vae_matches_hand_written():
    ours, reference = build("vae"), RefVAE()
    twin(ours, reference)
    x = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        for got, want in zip(ours(x), reference(x)):
            same(got, want)
        ours.train()
        reference.train()
        torch.manual_seed(5)
        sampled = ours(x)
        torch.manual_seed(5)
        for got, want in zip(sampled, reference(x)):
            same(got, want)  # the same noise: the same sample
        assert not torch.equal(sampled[0], ours(x)[0])  # fresh noise each call


def test_reparameterization_samples_from_the_posterior():
    layer = rt.Reparameterize()
    mean = torch.tensor([1.0, -2.0]).expand(20000, 2)
    log_var = torch.tensor([0.0, math.log(0.25)]).expand(20000, 2)
    assert torch.equal(layer.eval()(mean, log_var), mean)
    z = layer.train()(mean, log_var)
    assert z.mean(0).tolist() == pytest.approx([1.0, -2.0], abs=0.03)
    assert z.std(0).tolist() == pytest.approx([1.0, 0.5], rel=0.03)


# ---- context encoder --------------------------------------------------------------------------


def test_context_encoder_matches_hand_written():
    ours, reference = build("context_encoder", "ContextEncoder"), RefContextEncoder()
    twin(ours, reference)
    x = torch.randn(2, 3, 128, 128)
    with torch.no_grad():
        out = ours(x)
        same(out, reference(x))
    assert out.shape == (2, 3, 64, 64)  # the missing centre
    fc = ours.bottleneck[0]
    assert fc.weight.shape == (
        512,
        16,
        16,
    )  # 512 separate 4x4 -> 4x4 maps, not 8192 x 8192
    s = summarize(graph_of(load("context_encoder", "ContextEncoder")))
    assert {r["name"]: r["params"] for r in s["layers"]}[
        "bottleneck.0"
    ] == 512 * 16 * 16 + 512 * 16


def test_context_encoder_channels_do_not_mix_in_the_channel_wise_layer():
    fc = build("context_encoder", "ContextEncoder").bottleneck[0]
    x = torch.randn(1, 512, 4, 4, requires_grad=True)
    fc(x)[0, 7].sum().backward()
    touched = x.grad[0].abs().sum((1, 2)) > 0
    assert touched.nonzero().flatten().tolist() == [7]


def test_context_encoder_discriminator_matches_hand_written():
    ours, reference = (
        build("context_encoder", "Discriminator"),
        RefContextDiscriminator(),
    )
    twin(ours, reference)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        same(ours(x), reference(x))
    assert ours(x).shape == (2, 1, 1, 1)


# ---- GANs ----------------------------------------------------------------------------------------


def test_gan_generator_matches_hand_written():
    ours = build("gan", "Generator")
    reference = nn.Sequential()
    reference.hidden = mlp(
        nn.Linear(100, 1200), nn.ReLU(), nn.Linear(1200, 1200), nn.ReLU()
    )
    reference.out = mlp(nn.Linear(1200, 784), nn.Tanh())
    twin(ours, reference)
    z = torch.rand(16, 100) * 2 - 1  # U(-1, 1) noise
    with torch.no_grad():
        image = ours(z)
        same(image, reference(z))
    assert image.shape == (16, 784) and image.abs().max() <= 1


def test_gan_discriminator_matches_hand_written():
    ours = build("gan", "Discriminator")
    state = ours.state_dict()
    reference = RefGANDiscriminator()
    reference.load_state_dict({"hidden.0.weight": state["hidden.0.weight"], "hidden.0.bias": state["hidden.0.bias"],
                               "hidden.1.weight": state["hidden.3.weight"], "hidden.1.bias": state["hidden.3.bias"],
                               "out.weight": state["out.0.weight"], "out.bias": state["out.0.bias"]})  # fmt: skip
    x = torch.rand(16, 784)
    with torch.no_grad():
        p = ours(x)
        same(p, reference(x))
    assert p.shape == (16, 1) and ((p > 0) & (p < 1)).all()


@pytest.mark.parametrize("model, reference, shape, params",
                         [("Generator", DCGANGenerator, (2, 100, 1, 1), 3_576_704),
                          ("Discriminator", DCGANDiscriminator, (2, 3, 64, 64), 2_765_568)])  # fmt: skip
def test_dcgan_matches_the_papers_layout(model, reference, shape, params):
    ours, ref = build("dcgan", model), reference()
    assert params_of(ours) == params_of(ref) == params
    twin(ours, ref)
    x = torch.randn(*shape)
    with torch.no_grad():
        out = ours(x)
        same(out, ref(x))
    assert out.shape == ((2, 3, 64, 64) if model == "Generator" else (2, 1, 1, 1))
    if (
        model == "Generator"
    ):  # fractionally-strided convs double the size: 4, 8, 16, 32, 64
        sizes = [r["output_shape"][2] for r in summarize(graph_of(load("dcgan", model)))["layers"]
                 if r["op"] == "conv_transpose"]  # fmt: skip
        assert sizes == [4, 8, 16, 32, 64]


def test_conditional_gan_matches_hand_written():
    labels = torch.arange(10)
    gen, ref_gen = build("cgan", "Generator"), RefCGANGenerator()
    twin(gen, ref_gen)
    z = torch.randn(10, 100)
    with torch.no_grad():
        images = gen(z, labels)
        same(images, ref_gen(z, labels))
        assert images.shape == (10, 1, 28, 28)
        assert not torch.equal(
            gen(z, labels), gen(z, labels.roll(1))
        )  # the label matters
    disc, ref_disc = build("cgan", "Discriminator"), RefCGANDiscriminator()
    twin(disc, ref_disc)
    with torch.no_grad():
        same(disc(images, labels), ref_disc(images, labels))
    graph = graph_of(load("cgan", "Generator"))
    assert [graph.node(n).type.dtype for n in graph.inputs] == ["float32", "int64"]


# ---- classical filters ----------------------------------------------------------------------------
def _filters(pad: int = 1) -> nn.Module:
    return build("filters", pad=pad)


def test_filters_are_fixed_and_not_trainable():
    model = _filters()
    assert all(not p.requires_grad for p in model.parameters())
    s = summarize(graph_of(load("filters")))
    assert (s["total_params"], s["trainable_params"]) == (3 + 9 + 9 + 9 + 27, 0)
    torch.manual_seed(
        123
    )  # weights come from the spec, not from the random initialisation
    again = load("filters")().eval()
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def _gray(image: torch.Tensor) -> torch.Tensor:
    """A [H, W] gray image as the model's RGB input with R = G = B (luma = the value)."""
    return image.expand(1, 3, *image.shape).clone()


def test_sobel_on_a_ramp_and_a_step():
    ramp = torch.arange(8.0).expand(8, 8)  # intensity rises by 1 per column
    _, gx, gy, _, _ = _filters(pad=0)(_gray(ramp))
    same(gx, torch.full((1, 1, 6, 6), 8.0), atol=1e-4)  # (1 + 2 + 1) * 2 steps
    same(gy, torch.zeros(1, 1, 6, 6), atol=1e-4)
    step = torch.zeros(6, 6)
    step[:, 3:] = 1  # a vertical edge between columns 2 and 3
    _, gx, gy, _, _ = _filters(pad=0)(_gray(step))
    same(gx[0, 0], torch.tensor([[0.0, 4.0, 4.0, 0.0]]).expand(4, 4), atol=1e-5)
    same(gy, torch.zeros(1, 1, 4, 4), atol=1e-5)
    _, _, gy, _, _ = _filters(pad=0)(_gray(step.T.contiguous()))  # the horizontal edge
    same(gy[0, 0], torch.tensor([[0.0], [4.0], [4.0], [0.0]]).expand(4, 4), atol=1e-5)


def test_mean_and_gaussian_spread_an_impulse_into_their_kernels():
    impulse = torch.zeros(5, 5)
    impulse[2, 2] = 1
    _, _, _, box, blur = _filters()(_gray(impulse))
    mean = torch.zeros(5, 5)
    mean[1:4, 1:4] = 1 / 9
    same(box[0, 0], mean, atol=1e-6)
    gauss = torch.zeros(5, 5)
    gauss[1:4, 1:4] = torch.tensor([[1.0, 2, 1], [2, 4, 2], [1, 2, 1]]) / 16
    for channel in range(3):  # depthwise: each colour channel blurred on its own
        same(blur[0, channel], gauss, atol=1e-6)
    flat = torch.full((6, 6), 0.7)
    _, gx, _, box, blur = _filters(pad=0)(_gray(flat))
    same(box, torch.full_like(box, 0.7), atol=1e-6)  # smoothing keeps a constant image
    same(blur, torch.full_like(blur, 0.7), atol=1e-6)
    same(gx, torch.zeros_like(gx), atol=1e-5)


def test_luma_of_pure_colours():
    colours = (
        torch.eye(3).view(3, 3, 1, 1).expand(3, 3, 4, 4)
    )  # red, green, blue images
    gray = _filters()(colours)[0]
    assert gray[:, 0, 0, 0].tolist() == pytest.approx([0.299, 0.587, 0.114])


def test_filters_take_any_image_size():
    outs = _filters()(torch.rand(2, 3, 13, 21))
    assert [tuple(o.shape) for o in outs] == [(2, 1, 13, 21)] * 4 + [(2, 3, 13, 21)]


# ---- the new ops against torch --------------------------------------------------------------------
def _one_op(body: str, shape: str) -> tuple[nn.Module, object]:
    cls = modelc.load_source(
        f"model M {{\n input x: {shape}\n output x -> {body}\n}}\n"
    )
    return cls().eval(), cls.__modelc_graph__


@pytest.mark.parametrize("body, shape", [
    ("conv_transpose(8, k=3, s=2, p=1, output_padding=1)", "[2, 4, 7, 9]"),
    ("conv_transpose(6, k=[3, 5], s=[1, 2], d=2, groups=2)", "[2, 4, 5, 6]"),
    ("conv_transpose(3, k=4, s=2)", "[2, 5, 11]"),
    ("upsample(2)", "[2, 3, 5, 7]"),
    ("upsample(1.5, mode=\"bilinear\", align_corners=false)", "[2, 3, 5, 7]"),
    ("upsample(size=[9, 4], mode=\"bicubic\")", "[2, 3, 5, 7]"),
    ("pad([1, 2])", "[2, 3, 5, 7]"),
    ("pad([0, 1, 2, 3], mode=\"reflect\")", "[2, 3, 5, 7]"),
    ("pad(-1)", "[2, 3, 5, 7]"),
    ("center_crop([3, 4])", "[2, 3, 6, 9]"),
    ("maxout(3)", "[2, 12, 5]"),
    ("channel_fc([2, 3])", "[2, 4, 5, 6]"),
    ("local_response_norm(3)", "[2, 8, 4, 4]"),
    ("instance_norm(affine=true)", "[2, 8, 4, 4]"),
    ("group_norm(4)", "[2, 8, 4, 4]"),
    ("relu6 -> hardswish -> hardsigmoid", "[2, 8]"),
    ("batchnorm(affine=false) -> batchnorm(track_running_stats=false)", "[2, 8, 4, 4]"),
    # module forms: every step of a numbered sequence is a module
    ("s: (upsample(2) -> pad([1, 2]) -> center_crop([5, 6]) -> maxout(2) -> relu6)", "[2, 4, 4, 5]"),
    ('s: (pad(1, mode="replicate") -> upsample(size=[3, 3]) -> center_crop(2))', "[2, 4, 4, 5]"),
    ("gaussian_noise(0.5) -> masking_noise(0.5)", "[2, 8]"),
])  # fmt: skip
def test_op_shapes_and_parameters_match_torch(body, shape):
    model, graph = _one_op(body, shape)
    result = verify_module(
        type(model), graph
    )  # shapes of every module and of the output
    assert result["params"] == params_of(model)


def test_conv_transpose_counts_like_torch():
    from torch.utils.flop_counter import FlopCounterMode

    model, graph = _one_op(
        "conv_transpose(8, k=3, s=2, p=1, output_padding=1, groups=2)", "[1, 4, 7, 9]"
    )
    x = torch.randn(1, 4, 7, 9)
    with FlopCounterMode(display=False) as counter:
        out = model(x)
    assert out.shape == (1, 8, 14, 18)  # (7 - 1) * 2 - 2 + 3 + 1
    node = graph.node(graph.outputs[0][1][0])
    assert node.macs * 2 == counter.get_total_flops()
    assert node.params == 4 * (8 // 2) * 9 + 8


def test_center_crop_to_a_second_input_as_a_module():
    spec = "model M {\n input x: [B, 3, 9, 9]\n input y: [B, 5, 4, 6]\n output crop: center_crop(x, y)\n}\n"
    cls = modelc.load_source(spec)
    verify_module(cls, cls.__modelc_graph__)
    x = torch.randn(1, 3, 9, 9)
    assert torch.equal(cls()(x, torch.zeros(1, 5, 4, 6)), x[:, :, 2:6, 1:7])


def test_interpolate_and_crop_match_torch_functions():
    model, _ = _one_op(
        'upsample(2, mode="bilinear") -> center_crop([5, 6])', "[1, 2, 4, 5]"
    )
    x = torch.randn(1, 2, 4, 5)
    up = F.interpolate(x, scale_factor=2.0, mode="bilinear")
    same(model(x), up[:, :, 1:6, 2:8], atol=1e-6)
    model, _ = _one_op("pad([1, 2, 3, 4], value=-1.0)", "[1, 1, 2, 2]")
    same(
        model(torch.zeros(1, 1, 2, 2)),
        F.pad(torch.zeros(1, 1, 2, 2), (1, 2, 3, 4), value=-1.0),
    )


@pytest.mark.parametrize(
    "body, shape, code, words",
    [
        (
            "conv(1, k=3, weight=[[1, 2], [3, 4]])",
            "[1, 1, 8, 8]",
            "E0404",
            "literal weight has shape [2, 2]",
        ),
        ("conv(1, k=2, weight=[[1, 2], [3]])", "[1, 1, 8, 8]", "E0402", "rectangular"),
        (
            "conv(4, scale=0.5)",
            "[1, 1, 8, 8]",
            "E0404",
            "'scale' applies to a literal weight",
        ),
        (
            "conv_transpose(4, k=3, s=2, output_padding=2)",
            "[1, 1, 8, 8]",
            "E0404",
            "output_padding 2",
        ),
        (
            "conv_transpose(3, k=2, groups=2)",
            "[1, 4, 8, 8]",
            "E0404",
            "divisible by groups",
        ),
        ("maxout(3)", "[1, 8]", "E0404", "divisible by k"),
        (
            "upsample(2, size=[4, 4])",
            "[1, 1, 8, 8]",
            "E0404",
            "exactly one of 'scale' and 'size'",
        ),
        ('upsample(2, mode="bilinear")', "[1, 2, 8]", "E0404", "rank-3"),
        ("upsample(1.5)", "[B, 2, H, 8]", "E0304", "needs known sizes"),
        ("center_crop([9, 9])", "[1, 1, 8, 8]", "E0303", "does not fit"),
        ('pad(3, mode="reflect")', "[1, 1, 2, 2]", "E0404", "reflect padding 3"),
        ("pad([1, 2, 3])", "[1, 1, 4, 4]", "E0404", "1, 2 or 4 values"),
        ("group_norm(3)", "[1, 8, 4, 4]", "E0404", "divisible by groups"),
        ("masking_noise(1)", "[1, 8]", "E0404", "below 1"),
        ("channel_fc", "[1, 4, H, 4]", "E0304", "spatial size"),
        ("local_response_norm(5)", "[1, 8]", "E0305", "spatial dimensions"),
    ],
)
def test_op_errors(body, shape, code, words):
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source(
            f"model M {{\n input x: {shape}\n output x -> {body}\n}}\n"
        )
    diagnostic = info.value.diagnostics[0]
    assert diagnostic.code == code and words in diagnostic.message, diagnostic.message
    assert diagnostic.span.line == 3


def test_reparameterize_needs_matching_shapes():
    spec = "model M {\n input x: [B, 4]\n input y: [B, 3]\n output reparameterize(x, y)\n}\n"
    with pytest.raises(modelc.SpecError, match="reparameterize: mean"):
        modelc.compile_source(spec)


# ---- runtime layers -------------------------------------------------------------------------------
def test_runtime_layers_build_on_meta_and_initialise_after():
    model = load("filters")
    with torch.device("meta"):
        meta = model()
    meta.to_empty(device="cpu")
    for m in meta.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    for a, b in zip(meta.state_dict().values(), build("filters").state_dict().values()):
        assert torch.equal(
            a, b
        )  # the literal kernels come back after sharding-style init
    with torch.device("meta"):
        fc = rt.ChannelFC(4, (3, 3), (2, 2))
    fc.to_empty(device="cpu")
    fc.reset_parameters()
    assert fc.weight.abs().max() <= 1 / 3 and fc.bias.abs().max() <= 1 / 3


def test_runtime_layers_are_deterministic_in_eval_and_use_every_parameter():
    x = torch.randn(4, 6, 3, 3)
    layers = [rt.GaussianNoise(1.0), rt.GaussianNoise(0.5, multiplicative=True), rt.MaskingNoise(0.5),
              rt.Maxout(2), rt.ChannelFC(6, (3, 3), (2, 2)), rt.CenterCrop(2), rt.CenterCrop((1, 3))]  # fmt: skip
    for layer in layers:
        layer.eval()
        assert torch.equal(layer(x), layer(x))
        layer(x).sum().backward() if list(layer.parameters()) else None
        assert all(p.grad is not None for p in layer.parameters())
    assert torch.equal(rt.Maxout(2)(x), x.view(4, 3, 2, 3, 3).amax(2))
    same(rt.CenterCrop(2)(x), x[:, :, :2, :2])  # 3 -> 2 keeps the first rows (offset 0)


def test_generated_modules_export():
    model = build("vae")
    exported = torch.export.export(model, (torch.rand(2, 1, 28, 28),))
    x = torch.rand(2, 1, 28, 28)
    for got, want in zip(exported.module()(x), model(x)):
        same(got, want)


# ---- CUDA, one model per family (skipped without a GPU) ---------------------------------------------
CUDA_FAMILIES = [
    ("mobilenet_v2", None, {}),  # classification, depthwise convs, nested sequences
    ("unet", None, {"base": 8, "p": 0, "size": 572}),  # encoder-decoder, copy and crop
    ("autoencoders", "ConvAE", {}),  # conv_transpose with output_padding
    ("vae", None, {}),  # sampling layer
    ("context_encoder", "ContextEncoder", {}),  # channel-wise fc
    ("dcgan", "Generator", {}),  # transposed convs
    ("cgan", "Generator", {}),  # integer labels, embedding
    ("gan", "Discriminator", {}),  # maxout
    ("filters", None, {}),  # literal weights
]


@pytest.mark.cuda
@pytest.mark.parametrize(
    "spec, model, params", [pytest.param(*m, id=_id(*m)) for m in CUDA_FAMILIES]
)
def test_cuda_matches_cpu(spec, model, params):
    cls = load(spec, model, **params)
    verify_module(cls, graph_of(cls), device="cuda")
    cpu = randomize(build(spec, model, **params))
    gpu = build(spec, model, **params).cuda()
    gpu.load_state_dict(cpu.state_dict())
    graph = graph_of(cls)
    torch.manual_seed(0)
    args = []
    for n in graph.inputs:
        dims = [d if isinstance(d, int) else 2 for d in graph.node(n).type.dims]
        dtype = graph.node(n).type.dtype
        args.append(
            torch.randint(0, 10, dims) if dtype == "int64" else torch.randn(*dims)
        )
    matmul, cudnn = (
        torch.backends.cuda.matmul.allow_tf32,
        torch.backends.cudnn.allow_tf32,
    )
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with torch.no_grad():
            want, got = cpu(*args), gpu(*(a.cuda() for a in args))
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (
            matmul,
            cudnn,
        )
    for w, g in zip(
        want if isinstance(want, tuple) else (want,),
        got if isinstance(got, tuple) else (got,),
    ):
        same(g.cpu(), w, atol=1e-3)
