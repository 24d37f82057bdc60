"""The depthwise-pointwise passes: the `separable` report (-O1), merge-depthwise-pointwise
(-O2, exact, by a measured cost model) and `--rewrite separable` (not exact: a new
architecture).

The merge is checked as every exact pass is: the optimized module, given the unoptimized
module's checkpoint through its LOAD_RULES, computes what the unoptimized one does (fp32,
eval mode, random weights and BatchNorm statistics). Its cost model is overridden here with
tables that make it fire (or refuse) everywhere (`costs.using`), and the measured CPU table
is checked on the two ends it must tell apart: tiny channel counts (merge) and MobileNet's
sizes (refuse).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from passes_util import applied, outputs, pair, refusals

import modelc
from modelc import cli
from modelc.driver import build_all, exec_source
from modelc.emit import emit
from modelc.load import load_text
from modelc.passes import LEVELS, PASSES, REWRITES, costs, optimize
from modelc.passes.costs import CostTable, OpCost

torch = pytest.importorskip("torch")
# torch's note that `padding="same"` with an even kernel pads a copy of the input: expected here
pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel lengths")

MERGE = "merge-depthwise-pointwise"
# Tables that decide every case one way: a call of a depthwise or pointwise conv costs a
# second, a dense conv nothing (and the reverse).
FAVOUR_MERGE = CostTable("test-merge", (("depthwise", OpCost(1e6, 0.0)), ("pointwise", OpCost(1e6, 0.0)),
                                        ("dense", OpCost(0.0, 0.0))))  # fmt: skip
FAVOUR_PAIR = CostTable("test-pair", (("depthwise", OpCost(0.0, 0.0)), ("pointwise", OpCost(0.0, 0.0)),
                                      ("dense", OpCost(1e6, 0.0))))  # fmt: skip


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


def lower(b: bool) -> str:
    return str(b).lower()


def assert_close_scaled(text: str, level: int, path: str = "sep.model") -> None:
    """Optimized == unoptimized within fp32 atol 2e-5 x max(1, |output|) and rtol 1e-5."""
    base, opt, args = pair(text, level, path)
    for a, b in zip(outputs(base, args), outputs(opt, args)):
        scale = max(1.0, a.abs().max().item())
        torch.testing.assert_close(b, a, atol=2e-5 * scale, rtol=1e-5)


def merged(text: str, table: CostTable = FAVOUR_MERGE) -> int:
    with costs.using(table):
        return applied(text, 2)[MERGE]


def merge_refusals(text: str, table: CostTable = FAVOUR_MERGE) -> list[str]:
    with costs.using(table):
        return refusals(text, 2, MERGE)


# ---- merge: depthwise -> pointwise ------------------------------------------------------------------
@examples(60)
@given(k=st.sampled_from([1, 2, 3, 5]), s=st.sampled_from([1, 2]), p=st.sampled_from([0, 1, 2, "same"]),
       d=st.sampled_from([1, 2]), m=st.sampled_from([1, 2, 3]), c=st.sampled_from([2, 3, 4]),
       n=st.sampled_from([1, 3, 8]), dw_bias=st.booleans(), pw_bias=st.booleans(),
       bn=st.sampled_from(["", "dw", "pw", "both"]), rank=st.sampled_from([3, 4]))  # fmt: skip
def test_depthwise_then_pointwise_merges_exactly(k, s, p, d, m, c, n, dw_bias, pw_bias, bn, rank):
    if p == "same":
        s = 1
    shape = f"[B, {c}, 11, 11]" if rank == 4 else f"[B, {c}, 13]"
    pad = '"same"' if p == "same" else p
    dw_bn = " -> batchnorm" if bn in ("dw", "both") else ""
    pw_bn = " -> batchnorm" if bn in ("pw", "both") else ""
    text = (f"model M {{ input x: {shape}\n  output x -> dw: conv({c * m}, k={k}, s={s}, p={pad}, d={d}, "
            f"groups={c}, bias={lower(dw_bias)}){dw_bn} -> pw: conv({n}, k=1, bias={lower(pw_bias)}){pw_bn} }}")  # fmt: skip
    assert merged(text) == 1
    with costs.using(FAVOUR_MERGE):
        assert_close_scaled(text, 2)


@examples(40)
@given(k=st.sampled_from([1, 3, 5]), s=st.sampled_from([1, 2]), p=st.sampled_from([0, 1, 2]),
       d=st.sampled_from([1, 2]), m=st.sampled_from([1, 2]), c=st.sampled_from([1, 3, 4]),
       mid=st.sampled_from([2, 4, 6]), pw_bias=st.booleans(), dw_bias=st.booleans(), bn=st.booleans(),
       rank=st.sampled_from([3, 4]))  # fmt: skip
def test_pointwise_then_depthwise_merges_where_exact(k, s, p, d, m, c, mid, pw_bias, dw_bias, bn, rank):
    """A pointwise bias (its own, or a folded BatchNorm's) needs a depthwise without padding."""
    if pw_bias or bn:
        p = 0
    shape = f"[B, {c}, 11, 11]" if rank == 4 else f"[B, {c}, 13]"
    between = " -> batchnorm" if bn else ""
    text = (f"model M {{ input x: {shape}\n  output x -> pw: conv({mid}, k=1, bias={lower(pw_bias)}){between} "
            f"-> dw: conv({mid * m}, k={k}, s={s}, p={p}, d={d}, groups={mid}, bias={lower(dw_bias)}) }}")  # fmt: skip
    assert merged(text) == 1
    with costs.using(FAVOUR_MERGE):
        assert_close_scaled(text, 2)


@pytest.mark.parametrize("text", [
    # the depthwise conv is a block's output, the pointwise conv outside it (the block keeps a relu)
    "model M { input x: [B, 4, 9, 9]  output x -> Dw() -> pw: conv(6, k=1) }\n"
    "block Dw { input x  output x -> relu -> dw: conv(4, k=3, p=1, groups=4) }",
    # a block holding only the depthwise conv: it disappears
    "model M { input x: [B, 4, 9, 9]  output x -> Dw() -> pw: conv(6, k=1) }\n"
    "block Dw { input x  output x -> dw: conv(8, k=3, p=1, groups=4) }",
    # a numbered sequence loses its item 0 and keeps the key `seq.1`
    "model M { input x: [B, 4, 9, 9]  output x -> seq: [conv(4, k=3, s=2, groups=4), conv(6, k=1), relu] }",
    # pointwise in one block, depthwise in the next
    "model M { input x: [B, 4, 9, 9]  output x -> Pw() -> Dw() }\n"
    "block Pw { input x  output x -> pw: conv(6, k=1, bias=false) }\n"
    "block Dw { input x  output x -> dw: conv(6, k=3, p=1, groups=6) -> relu }",
])  # fmt: skip
def test_merges_across_blocks_and_sequences(text):
    assert merged(text) == 1
    with costs.using(FAVOUR_MERGE):
        assert_close_scaled(text, 2)


def test_merged_module_loads_its_own_checkpoint_too():
    text = ("model M { input x: [B, 4, 9, 9]\n  output x -> dw: conv(8, k=3, p=1, groups=4) -> batchnorm "
            "-> pw: conv(5, k=1) -> relu }")  # fmt: skip
    with costs.using(FAVOUR_MERGE):
        base, opt, args = pair(text, 2)
        again = modelc.load_source(text, "sep.model", optimize=2)().eval()
    assert set(opt.state_dict()) == {"pw.weight", "pw.bias"}
    assert opt.state_dict()["pw.weight"].shape == (5, 4, 3, 3)
    again.load_state_dict(opt.state_dict())
    torch.testing.assert_close(outputs(again, args)[0], outputs(opt, args)[0])
    torch.testing.assert_close(outputs(opt, args)[0], outputs(base, args)[0], atol=2e-5, rtol=1e-5)


def test_merge_reports_both_costs_and_the_change():
    text = "model M { input x: [B, 4, 8, 8]  output x -> dw: conv(4, k=3, p=1, groups=4) -> pw: conv(4, k=1) }"
    graph = build_all(load_text(text, "sep.model"))[0]
    with costs.using(FAVOUR_MERGE):
        done = optimize(graph, 2, check=True)
    result = next(r for r in done.results if r.name == MERGE)
    (change,) = result.changes
    assert "depthwise `dw` and pointwise `pw`" in change.what and "us merged" in change.what
    assert change.params == (4 * 4 * 9 + 4) - (4 * 9 + 4 + 4 * 4 + 4) and change.count == -1
    assert done.graph.load_rules[-1].kind == "merge_depthwise_pointwise"


# ---- merge: refusals ----------------------------------------------------------------------------------
@pytest.mark.parametrize("text,why", [
    ("model M { input x: [B, 8, 10, 10]  output x -> conv(8, k=3, p=1, groups=8) -> relu -> conv(16, k=1) }",
     "not linear"),
    ("model M { input x: [B, 8, 10, 10]  output x -> conv(8, k=1) -> relu6 -> conv(8, k=3, groups=8) }",
     "not linear"),
    ("model M { input x: [B, 8, 10, 10]  y = x -> conv(8, k=3, p=1, groups=8)  output (y -> conv(8, k=1)) + y }",
     "other readers"),
    ("model M { input x: [B, 8, 10, 10]  y = x -> conv(8, k=3, p=1, groups=8)  output y -> conv(8, k=1), y }",
     "model output"),
    ("model M { input x: [B, 8, 10, 10]  y = x -> conv(8, k=1)  output y -> conv(8, k=3, groups=8), y }",
     "other readers"),
    ("model M { input x: [B, 8, 10, 10]  output x -> conv(8, k=1) -> conv(8, k=3, p=1, groups=8) }",
     "would see as 0"),
    ("model M { input x: [B, 8, 10, 10]  output x -> conv(8, k=1, bias=false) -> batchnorm "
     "-> conv(8, k=3, p=1, groups=8) }", "would see as 0"),  # the folded BatchNorm's bias
    ("model M { input x: [B, 8, 10, 10]  output x -> conv(8, k=3, p=1, groups=8) "
     "-> batchnorm(track_running_stats=false) -> conv(16, k=1) }", "batchnorm not folded"),
])  # fmt: skip
def test_merge_refusals(text, why):
    assert merged(text) == 0
    found = merge_refusals(text)
    assert any(why in r for r in found), found
    with costs.using(FAVOUR_MERGE):
        assert_close_scaled(text, 2)


def test_merge_refuses_where_the_cost_model_says_slower():
    text = "model M { input x: [B, 4, 8, 8]  output x -> dw: conv(4, k=3, p=1, groups=4) -> pw: conv(4, k=1) }"
    assert merged(text, FAVOUR_PAIR) == 0
    (why,) = merge_refusals(text, FAVOUR_PAIR)
    assert "cost model says merging with pointwise `pw` is slower" in why
    assert "0.0 us as depthwise + pointwise, 1,000,000.0 us merged (test-pair, batch 1)" in why


# ---- the measured tables: tiny channel counts merge, MobileNet's sizes do not -----------------------------
TINY = "model M { input x: [B, 4, 8, 8]  output x -> conv(4, k=3, p=1, groups=4) -> conv(4, k=1) }"
MOBILENET = ("model M { input x: [B, 512, 14, 14]  output x -> conv(512, k=3, p=1, groups=512, bias=false) "
             "-> batchnorm -> conv(512, k=1, bias=false) -> batchnorm }")  # fmt: skip
STEM = ("model M { input x: [B, 32, 112, 112]  output x -> conv(32, k=3, p=1, groups=32, bias=false) "
        "-> batchnorm -> conv(64, k=1, bias=false) -> batchnorm }")  # fmt: skip


@pytest.mark.parametrize("target", ["cpu", "cuda"])
def test_measured_tables_merge_tiny_convs(target):
    assert merged(TINY, costs.TABLES[target]) == 1
    with costs.using(target):
        assert_close_scaled(TINY, 2)


@pytest.mark.parametrize("target,text", [("cpu", MOBILENET), ("cpu", STEM), ("cuda", MOBILENET)],
                         ids=["cpu-512x14x14", "cpu-32-64x112x112", "cuda-512x14x14"])  # fmt: skip
def test_measured_tables_refuse_mobilenet_sizes(target, text):
    assert merged(text, costs.TABLES[target]) == 0
    (why,) = merge_refusals(text, costs.TABLES[target])
    assert "is slower" in why and f"({target}, batch 1)" in why


def test_cpu_is_the_default_table():
    assert costs.active() is costs.CPU
    with costs.using("cuda"):
        assert costs.active() is costs.CUDA
    assert costs.active() is costs.CPU


# ---- the zoo ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("spec", ["specs/mobilenet_v1.model", "specs/mobilenet_v2.model"])
@pytest.mark.parametrize("level", [1, 2])
def test_mobilenets_compute_the_same_at_every_level(spec, level):
    text = open(spec).read()
    graph = build_all(load_text(text, spec))[0]
    optimize(graph, level, check=True)
    assert_close_scaled(text, level, spec)


def test_mobilenets_merge_nothing_with_relu_between():
    text = open("specs/mobilenet_v1.model").read()
    graph = build_all(load_text(text, "specs/mobilenet_v1.model"))[0]
    with costs.using(FAVOUR_MERGE):
        done = optimize(graph, 2, check=True)
    result = next(r for r in done.results if r.name == MERGE)
    assert not result.changes and len(result.refusals) == 13 + 12  # after each depthwise, and before all but the first
    assert all("relu" in r.why and "not linear" in r.why for r in result.refusals)


# ---- separable (the report) -------------------------------------------------------------------------------
def test_separable_is_a_report_at_both_levels():
    assert LEVELS[1].index("separable") == LEVELS[1].index("inplace") - 1
    assert LEVELS[1].index("fold-batchnorm") < LEVELS[1].index("separable")
    assert "separable" in LEVELS[2] and MERGE in LEVELS[2] and MERGE not in LEVELS[1]


def test_separable_reports_mobilenet_v1_after_batchnorm_folding():
    graph = build_all(load_text(open("specs/mobilenet_v1.model").read(), "specs/mobilenet_v1.model"))[0]
    done = optimize(graph, 1, check=True)
    result = next(r for r in done.results if r.name == "separable")
    assert not result.changes and not result.refusals
    *pairs, total = result.notes
    assert len(pairs) == 13
    # blocks.0: 32 -> 64 channels at 112 x 112: 1/64 + 1/9 of the dense conv's MACs
    dw, pw, dense = 32 * 112 * 112 * 9, 64 * 32 * 112 * 112, 64 * 32 * 9 * 112 * 112
    assert pairs[0].startswith("blocks.0: depthwise 3x3 `blocks.0.dw` + pointwise `blocks.0.pw`, 32 -> 64")
    assert f"{dw + pw:,} MACs at batch 1, {(dw + pw) / dense:.3f} of a dense 3x3 conv's {dense:,}" in pairs[0]
    assert "(1/64 + 1/9)" in pairs[0]
    assert total.startswith("13 depthwise and 13 pointwise convolutions, 13 depthwise+pointwise pairs")


def test_separable_names_the_block_and_the_multiplier():
    text = ("model M { input x: [B, 4, 8, 8]  output x -> Sep() }\n"
            "block Sep { input x  output x -> dw: conv(8, k=5, p=2, groups=4) -> relu -> pw: conv(6, k=1) }")  # fmt: skip
    graph = build_all(load_text(text, "sep.model"))[0]
    result = PASSES["separable"].run(graph)
    assert result.graph is graph and not result.changes
    assert result.notes[0].startswith("sep: depthwise 5x5 `sep.dw` + pointwise `sep.pw`, 4 -> 6 channels")
    assert "(2 x (1/6 + 1/25))" in result.notes[0]


def test_separable_says_nothing_without_depthwise_or_pointwise_convs():
    text = "model M { input x: [B, 4, 8, 8]  output x -> conv(8, k=3) -> relu }"
    graph = build_all(load_text(text, "sep.model"))[0]
    assert PASSES["separable"].run(graph).notes == []


# ---- --rewrite separable ------------------------------------------------------------------------------
CONVS = [  # (in, out, k, stride, padding, dilation, bias)
    (3, 16, 3, 1, 1, 1, True), (16, 24, 5, 2, 2, 1, False), (24, 24, 3, 1, 2, 2, True), (24, 40, 1, 1, 0, 1, True),
]  # fmt: skip
REWRITE_SPEC = "model M { input x: [B, 3, 20, 20]\n  output x" + "".join(
    f" -> c{i}: conv({n}, k={k}, s={s}, p={p}, d={d}, bias={lower(b)}) -> relu"
    for i, (_, n, k, s, p, d, b) in enumerate(CONVS)
) + " }"


def rewritten(text: str, level: int = 0, path: str = "sep.model"):
    """The spec's graph after --rewrite separable (at `level`) and its module class."""
    (graph,) = build_all(load_text(text, path), rewrites=("separable",), optimize=level)
    module = exec_source(emit([graph], path), path)
    return graph, getattr(module, graph.name)


def test_rewrite_shapes_and_parameters_are_as_predicted():
    graph, cls = rewritten(REWRITE_SPEC)
    model = cls()
    sd = model.state_dict()
    expected = 0
    for i, (c, n, k, _, _, _, b) in enumerate(CONVS):
        if k == 1:  # already pointwise: left alone
            assert sd[f"c{i}.weight"].shape == (n, c, 1, 1)
            expected += n * c + (n if b else 0)
            continue
        assert sd[f"c{i}.depthwise.weight"].shape == (c, 1, k, k) and f"c{i}.depthwise.bias" not in sd
        assert sd[f"c{i}.pointwise.weight"].shape == (n, c, 1, 1)
        assert (f"c{i}.pointwise.bias" in sd) == b
        expected += c * k * k + n * c + (n if b else 0)
    assert graph.num_params() == expected == sum(p.numel() for p in model.parameters())
    original = modelc.load_source(REWRITE_SPEC, "sep.model")().eval()
    x = torch.randn(2, 3, 20, 20)
    with torch.no_grad():
        assert model.eval()(x).shape == original(x).shape == (2, 40, 10, 10)


def test_rewrite_never_runs_unless_named():
    assert "rewrite-separable" not in {name for level in LEVELS.values() for name in level}
    assert REWRITES["separable"] == "rewrite-separable"
    for level in (1, 2):
        assert "depthwise" not in modelc.compile_file("specs/resnet18.model", optimize=level)


def test_rewrite_leaves_fixed_kernels_alone():
    text = "model M { input x: [B, 1, 8, 8]  output x -> conv(1, k=3, weight=[[0, 1, 0], [1, -4, 1], [0, 1, 0]]) }"
    done = optimize(build_all(load_text(text, "sep.model"))[0], 0, ("separable",), check=True)
    assert not done.results[0].changes and "fixed" in done.results[0].refusals[0].why


def test_rewrite_on_resnet18_reports_the_savings():
    tv = pytest.importorskip("torchvision")
    ref = tv.models.resnet18()
    expected = sum(p.numel() for p in ref.parameters())
    for m in ref.modules():
        if isinstance(m, torch.nn.Conv2d) and m.kernel_size != (1, 1):
            c, n, k = m.in_channels, m.out_channels, m.kernel_size[0]
            expected += (c * k * k + n * c) - n * c * k * k
    graph = build_all(load_text(open("specs/resnet18.model").read(), "specs/resnet18.model"))[0]
    done = optimize(graph, 0, ("separable",), check=True)
    (result,) = done.results
    assert result.name == "rewrite-separable" and len(result.changes) == 17
    assert done.graph.num_params() == expected == 1_946_107
    assert result.notes[0] == (f"17 standard convolutions split: parameters 11,689,512 -> {expected:,} "
                               f"({expected - 11_689_512:+,}), MACs 1814073344*B -> 223042560*B")  # fmt: skip
    first = result.changes[0]
    assert first.nodes == ("conv1",) and "params 9,408 -> 339" in first.what  # 3*49 + 64*3
    assert first.params == 339 - 9408 and first.count == 1
    assert "no load rules" in result.notes[1] and not done.graph.load_rules


def test_rewrite_runs_and_its_checkpoints_load_when_optimized():
    graph, cls = rewritten(open("specs/resnet18.model").read(), 0, "specs/resnet18.model")
    _, opt_cls = rewritten(open("specs/resnet18.model").read(), 1, "specs/resnet18.model")
    base = cls().eval()
    from passes_util import randomize

    randomize(base)
    opt = opt_cls().eval()
    opt.load_state_dict(base.state_dict())  # fold-batchnorm's rules, on the rewritten keys
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        want, got = base(x), opt(x)
    torch.testing.assert_close(got, want, atol=2e-5 * max(1.0, want.abs().max().item()), rtol=1e-5)


def test_rewrite_from_the_command_line(tmp_path, capsys):
    out = tmp_path / "r18.py"
    rc = cli.main(["compile", "specs/resnet18.model", "--rewrite", "separable", "--explain", "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 0
    assert "rewrite-separable: 17 rewrites" in err and "17 standard convolutions split" in err
    source = out.read_text()
    assert "# Optimized: -O0 (rewrite-separable)" in source
    # in the one BasicBlock class, its sizes constructor arguments (NOTE: [Sharing a class])
    assert '"depthwise",' in source and "groups=in_channels," in source


def test_unknown_rewrite_lists_the_known_ones(capsys):
    rc = cli.main(["compile", "specs/resnet18.model", "--rewrite", "bogus"])
    assert rc != 0 and "rewrites: separable" in capsys.readouterr().err
