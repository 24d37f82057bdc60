"""Today's architectures in the zoo, each equal to its reference implementation: the same
parameter count, the same state_dict keys in the same order (strict load), and the same
outputs with every float parameter and buffer randomised first (norm weights and layer
scales too: at their initial 1 and 1e-6 they would hide a wrong wiring)."""

from __future__ import annotations

import functools

import modelc
import pytest
from conftest import spec_path
from modelc.bench import randomize
from modelc.summary import summarize

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")
nn = torch.nn


@functools.cache
def load(spec: str, **params) -> type:
    return modelc.load(spec_path(spec), **params)


def randomize_everything(model: nn.Module, seed: int = 1) -> nn.Module:
    """Every float parameter and buffer redrawn (modelc.bench.randomize: norm weights near 1,
    layer scales and matrices with std 1 / sqrt(fan-in), variances in [0.5, 1.5])."""
    randomize(model, torch, seed)
    return model


def assert_twins(ours: nn.Module, reference: nn.Module, *inputs, atol: float = 1e-4, ordered: bool = True) -> None:
    """The same state_dict keys and shapes (in the same order unless `ordered` is false), a
    strict load, and the same outputs in eval mode."""
    ref_state = reference.state_dict()
    keys = [(k, v.shape) for k, v in ours.state_dict().items()], [(k, v.shape) for k, v in ref_state.items()]
    assert keys[0] == keys[1] if ordered else sorted(keys[0]) == sorted(keys[1])
    ours.load_state_dict(ref_state, strict=True)
    ours.eval(), reference.eval()
    with torch.no_grad():
        got, want = ours(*inputs), reference(*inputs)
    scale = want.abs().max().item()
    assert scale > 1e-2 and want.std().item() > 1e-3  # not degenerate
    diff = (got - want).abs().max().item()
    assert diff <= atol * max(1.0, scale), f"max abs difference {diff:.3g} at output scale {scale:.3g}"


# ---- ConvNeXt ---------------------------------------------------------------------------
def test_convnext_small_equals_torchvision():
    torch.manual_seed(0)
    reference = randomize_everything(torchvision.models.convnext_small(weights=None))
    cls = load("convnext_small")
    ours = cls()
    n = sum(p.numel() for p in ours.parameters())
    assert n == sum(p.numel() for p in reference.parameters()) == cls.NUM_PARAMETERS == 50_223_688
    assert reference.features[3][2].layer_scale.shape == ours.features[3][2].layer_scale.shape == (192, 1, 1)
    # Stochastic depth rises linearly from 0 over the 36 blocks, as torchvision sets it.
    probs = [m.p for m in ours.modules() if type(m).__name__ == "StochasticDepth"]
    assert probs == pytest.approx([m.p for m in reference.modules() if type(m).__name__ == "StochasticDepth"])
    assert probs[0] == 0.0 and probs[-1] == pytest.approx(0.4) and len(probs) == 36
    assert_twins(ours, reference, torch.randn(2, 3, 64, 64))  # any multiple of 32 runs


def test_convnext_small_counts_torchvisions_gflops():
    summary = summarize(load("convnext_small").__modelc_graph__)
    assert summary["total_params"] == 50_223_688
    assert round(summary["macs"] / 1e9, 2) == 8.68  # torchvision's documented "GFLOPS" (MACs)


def test_convnext_trains_with_stochastic_depth():
    """In training the drop path is random; in eval the module is deterministic; every
    parameter gets a gradient. A tiny ConvNeXt keeps this quick."""
    cls = modelc.load(spec_path("convnext_small"), depths=[1, 1, 2, 1], widths=[8, 16, 16, 16],
                      stochastic_depth_prob=0.5, num_classes=4)  # fmt: skip
    model = cls()
    x = torch.randn(64, 3, 32, 32)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
        model.train()
        torch.manual_seed(0)
        a = model(x)
        torch.manual_seed(1)
        b = model(x)
    assert not torch.equal(a, b)
    loss = model(x).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


# ---- EfficientNetV2 ---------------------------------------------------------------------
def test_efficientnet_v2_s_equals_torchvision():
    torch.manual_seed(0)
    reference = randomize_everything(torchvision.models.efficientnet_v2_s(weights=None))
    cls = load("efficientnet_v2_s")
    ours = cls()
    assert sum(p.numel() for p in ours.parameters()) == cls.NUM_PARAMETERS == 21_458_488
    # torchvision gives every block a StochasticDepth and calls those of the residual ones.
    probs = [m.p for m in ours.modules() if type(m).__name__ == "StochasticDepth"]
    residual = [b.stochastic_depth.p for b in reference.modules() if getattr(b, "use_res_connect", False)]
    assert probs == pytest.approx(residual) and len(probs) == 35 and probs[-1] == pytest.approx(0.2 * 39 / 40)
    assert ours.features[4][0].block[2].fc1.out_channels == 16  # squeeze: a quarter of the block's input
    assert_twins(ours, reference, torch.randn(2, 3, 64, 64))
    summary = summarize(cls.__modelc_graph__)
    assert round(summary["macs"] / 1e9, 2) == 8.37  # torchvision's documented "GFLOPS" at 384x384


# ---- Swin Transformer V2 ----------------------------------------------------------------
def _swin_v2_reference(model: nn.Module) -> nn.Module:
    """Randomised, with one head's logit scale above log(100), where the clamp holds it."""
    randomize_everything(model)
    with torch.no_grad():
        model.features[1][0].attn.logit_scale[-1] = 6.0
    return model


def test_swin_v2_t_equals_torchvision():
    torch.manual_seed(0)
    reference = torchvision.models.swin_v2_t(weights=None)
    ends = ("relative_coords_table", "relative_position_index")  # buffers torchvision keeps, persistent
    constant = {k: v.clone() for k, v in reference.state_dict().items() if k.endswith(ends)}
    _swin_v2_reference(reference)
    cls = load("swin_v2_t", image_size=64)  # 16x16 patches: the last two stages pad to a window
    ours = cls()
    assert sum(p.numel() for p in ours.parameters()) == cls.NUM_PARAMETERS == 28_351_570
    assert load("swin_v2_t").NUM_PARAMETERS == 28_351_570  # at its default 256x256 too
    state = ours.state_dict()  # the constant buffers agree before loading, to the bit
    assert len(constant) == 24 and all(torch.equal(state[k], v) for k, v in constant.items())
    assert not ours.features[1][0].attn.qkv.bias[96:192].any()  # the key bias starts at zero, as there
    # Stochastic depth rises linearly from 0 to 0.2 over the 12 blocks, as torchvision sets it.
    probs = [m.p for m in ours.modules() if type(m).__name__ == "StochasticDepth"]  # two per block
    per_block = [b.stochastic_depth.p for b in reference.modules() if hasattr(b, "stochastic_depth")]
    assert probs[::2] == pytest.approx(per_block) and probs[1::2] == pytest.approx(per_block)
    assert len(per_block) == 12 and per_block[-1] == pytest.approx(0.2)
    # Our modules are made in forward's order: a block's attn before its norm1 (post-norm), an
    # attention's cpb_mlp before its proj. The keys are the same; their order is not.
    assert_twins(ours, reference, torch.randn(2, 3, 64, 64), ordered=False)


def test_swin_v2_small_pads_odd_maps_like_torchvision():
    """Window 4 at 80x80: maps of 20, 10, 5 and 3, so windows padded and shifted at once (10 ->
    12, 5 -> 8) and an odd map merged (5 -> 6 -> 3)."""
    from torchvision.models.swin_transformer import PatchMergingV2, SwinTransformer, SwinTransformerBlockV2

    torch.manual_seed(0)
    tiny = SwinTransformer([4, 4], 16, [2, 2, 2, 2], [1, 2, 2, 4], [4, 4], num_classes=10,
                           block=SwinTransformerBlockV2, downsample_layer=PatchMergingV2)  # fmt: skip
    reference = _swin_v2_reference(tiny)
    ours = modelc.load(spec_path("swin_v2_t"), embed=16, depths=[2, 2, 2, 2], heads=[1, 2, 2, 4], window=4,
                       image_size=80, num_classes=10)()  # fmt: skip
    assert_twins(ours, reference, torch.randn(2, 3, 80, 80), ordered=False)


def test_swin_v2_t_counts_torchvisions_gflops():
    summary = summarize(load("swin_v2_t").__modelc_graph__)
    assert summary["total_params"] == 28_351_570
    # torchvision's documented "GFLOPS" (MACs) at 256x256, continuous position bias MLPs included
    # (18,662,400 MACs, the same at any batch size: without them, 5.92).
    assert summary["macs"] == 5_939_690_496 and round(summary["macs"] / 1e9, 2) == 5.94


# ---- DenseNet ------------------------------------------------------------------------------
def test_densenet121_equals_torchvision():
    """Blocks and transitions named from the loop variable ("denseblock{i}"), dense layers by
    concat(x, new) one layer at a time: torchvision concatenates the whole list each time."""
    torch.manual_seed(0)
    reference = randomize_everything(torchvision.models.densenet121(weights=None))
    cls = load("densenet121")
    ours = cls()
    assert sum(p.numel() for p in ours.parameters()) == cls.NUM_PARAMETERS == 7_978_856
    keys = list(ours.state_dict())
    assert "features.denseblock1.denselayer1.norm1.weight" in keys and "features.transition1.conv.weight" in keys
    assert "features.denseblock4.denselayer16.conv2.weight" in keys and "features.transition4.conv.weight" not in keys
    assert_twins(ours, reference, torch.randn(2, 3, 64, 64))
    summary = summarize(cls.__modelc_graph__)
    assert round(summary["macs"] / 1e9, 2) == 2.83  # torchvision's documented "GFLOPS" (MACs)


# ---- RegNet --------------------------------------------------------------------------------
def test_regnet_y_400mf_equals_torchvision():
    """Blocks named `block1-0` ... by quoted labels with the stage and block numbers put in,
    group convolutions, squeeze-and-excitation, a projection where the shape changes."""
    torch.manual_seed(0)
    reference = randomize_everything(torchvision.models.regnet_y_400mf(weights=None))
    cls = load("regnet_y_400mf")
    ours = cls()
    assert sum(p.numel() for p in ours.parameters()) == cls.NUM_PARAMETERS == 4_344_144
    assert [n for n, _ in ours.trunk_output.block2.named_children()] == ["block2-0", "block2-1", "block2-2"]
    block = ours.trunk_output.get_submodule("block3.block3-1")
    assert block.f.b[0].groups == 26 and block.f.se.fc1.out_channels == 52 and getattr(block, "proj", None) is None
    assert_twins(ours, reference, torch.randn(2, 3, 64, 64))
    summary = summarize(cls.__modelc_graph__)
    assert round(summary["macs"] / 1e9, 1) == 0.4  # torchvision's documented "GFLOPS" (MACs)
