"""-O2's attention passes: fuse-attention, sdpa-layers and merge-qkv, against the unoptimized module.

The oracle is the spec compiled without -O, with the same random weights (its checkpoint
loaded through LOAD_RULES), in eval mode, fp32: atol 2e-5 times the output's magnitude,
rtol 1e-5. Where the unoptimized module gives NaN (a query whose every key is masked), the
fused one gives 0 (NOTE: [Fully masked rows] in compiler/passes/attention.py): those rows
are compared apart. Every optimization runs with check=True (the IR verified after each pass).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from passes_util import ATOL, RTOL, applied, randomize, refusals

import modelc
from modelc.driver import build_all, exec_source
from modelc.emit import emit
from modelc.load import load_text
from modelc.passes import LEVELS, PASSES, optimize
from modelc.passes.explain import explain
from modelc.verify import concrete_env

torch = pytest.importorskip("torch")


def examples(n: int) -> settings:
    return settings(max_examples=n, deadline=None, suppress_health_check=list(HealthCheck))


# ---- helpers ------------------------------------------------------------------------------------
def modules(text: str, level: int, params: dict | None = None, model: str | None = None, seed: int = 0):
    """(unoptimized, optimized, graph): one checkpoint, eval mode."""
    params = params or {}
    base = modelc.load_source(text, "att.model", model, **params)()
    randomize(base, seed)
    opt = modelc.load_source(text, "att.model", model, optimize=level, **params)()
    opt.load_state_dict(base.state_dict())  # through LOAD_RULES, strictly
    graph = build_all(load_text(text, "att.model"), model, params)[0]
    return base.eval(), opt.eval(), graph


def feed(graph, seed: int = 1) -> list:
    """Random inputs: floats normal, ids 0/1, bool masks true (hidden) a quarter of the time."""
    env = concrete_env(graph, 2, 8)
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in graph.inputs:
        t = graph.node(n).type.subs(env)
        if t.dtype == "bool":
            out.append(torch.rand(tuple(t.dims), generator=g) < 0.25)
        elif t.dtype.startswith("int"):
            out.append(torch.randint(0, 2, tuple(t.dims), generator=g))
        else:
            out.append(torch.randn(*t.dims, generator=g))
    return out


def run(module, args) -> list:
    with torch.no_grad():
        out = module(*[a.clone() for a in args])
    return list(out) if isinstance(out, tuple) else [out]


def same(want, got, fused: bool = True) -> None:
    """Equal where the unoptimized output is finite (tolerance scaled by its magnitude); where
    it is not, the fused module's is finite (a fully masked row: 0), an unfused one's the same."""
    if not want.is_floating_point():
        assert torch.equal(got, want)
        return
    finite = torch.isfinite(want)
    if fused:
        assert torch.isfinite(got).all(), "the optimized module gave NaN or inf"
    else:
        torch.testing.assert_close(got[~finite], want[~finite], equal_nan=True)
    if not finite.any():
        return
    scale = max(1.0, want[finite].abs().max().item())
    torch.testing.assert_close(got[finite], want[finite], atol=ATOL * scale, rtol=RTOL)


def check_same(text: str, level: int = 2, params: dict | None = None, model: str | None = None, seed: int = 0,
               fused: bool = True):  # fmt: skip
    base, opt, graph = modules(text, level, params, model, seed)
    args = feed(graph, seed + 1)
    for want, got in zip(run(base, args), run(opt, args)):
        same(want, got, fused)
    return opt


def ops_of(text: str, level: int = 2, params: dict | None = None) -> list[str]:
    graph = build_all(load_text(text, "att.model"), None, params or {})[0]
    done = optimize(graph, level, check=True)
    return [done.graph.node(n).op for n in done.graph.nodes()]


# ---- random specs: every form of the pattern ----------------------------------------------------
SCALES = ["none", "mul", "div", "q", "k", "kt", "both"]
MASKS = ["none", "causal", "bool", "pad", "float", "float_heads", "float_first", "causal+pad", "float+bool",
         "scale_after_bias", "regrouped"]  # fmt: skip


@st.composite
def attention_specs(draw):
    heads = draw(st.integers(1, 4))
    d = draw(st.sampled_from([4, 8]))
    gqa = draw(st.sampled_from([None, "repeat", "broadcast"])) if heads in (2, 4) else None
    cross = draw(st.booleans())
    t = draw(st.sampled_from([1, 3, 6]))
    s = draw(st.sampled_from([2, 5, 6])) if cross else t
    c = draw(st.sampled_from([d**-0.5, 0.5, 0.3]))
    mask = draw(st.sampled_from(MASKS))
    if mask == "regrouped" and (heads % 2 or gqa == "broadcast"):
        mask = "float"
    spec = dict(heads=heads, d=d, gqa=gqa, kv=heads // 2 if gqa else heads, cross=cross, t=t, s=s, c=c,
                scale=draw(st.sampled_from(SCALES)), mask=mask,
                layout=draw(st.sampled_from(["transpose", "permute"])),
                kt=draw(st.sampled_from(["transpose", "direct"])) if not gqa else "transpose",
                dropout=draw(st.booleans()))  # fmt: skip
    return build_spec(**spec), spec


def build_spec(heads, d, gqa, kv, cross, t, s, c, scale, mask, layout, kt, dropout) -> str:
    width = heads * d
    five = gqa == "broadcast"
    lines = ["model A {", f"  input x: [B, {t}, {width}]"]
    src = "x"
    if cross:
        lines.append(f"  input mem: [B, {s}, {width}]")
        src = "mem"
    lines += _mask_inputs(mask, heads, kv, t, s, five)
    lines += _projections(src, heads, d, gqa, kv, t, s, layout, kt, five)
    lines += _scores(scale, c, kt)
    lines += _masked(mask, heads, t, s)
    lines.append("  w = scores -> softmax" + (" -> dropout(0.1)" if dropout else ""))
    back = "permute([0, 3, 1, 2, 4])" if five else "transpose(1, 2)"
    lines.append(f"  output w @ v -> {back} -> reshape([B, {t}, {width}]) -> out: linear({width})")
    return "\n".join(lines + ["}"]) + "\n"


def _mask_inputs(mask, heads, kv, t, s, five) -> list[str]:
    ones = "1, 1, 1" if five else "1, 1"
    per_head = f"{kv}, {heads // kv}" if five else f"{heads}"
    out = []
    if mask in ("bool", "float+bool"):
        out.append(f"  input m: bool[{t}, {s}]")
    if mask in ("pad", "causal+pad"):
        out.append(f"  input pm: bool[B, {ones}, {s}]")
    if mask in ("float", "float_first", "float+bool", "scale_after_bias", "regrouped"):
        out.append(f"  input fm: [{t}, {s}]")
    if mask == "regrouped":
        out.append(f"  input gm: [2, {t}, {s}]")
    if mask == "float_heads":
        out.append(f"  input fm: [{per_head}, {t}, {s}]")
    return out


def _projections(src, heads, d, gqa, kv, t, s, layout, kt, five) -> list[str]:
    width = heads * d
    split = "permute([0, 2, 1, 3])" if layout == "permute" else "transpose(1, 2)"
    if five:  # broadcast over the query heads of a group: [B, kv, g, L, d] and [B, kv, 1, L, d]
        return [f"  q = x -> wq: linear({width}) -> reshape([B, {t}, {kv}, {heads // kv}, {d}]) -> permute([0, 2, 3, 1, 4])",
                f"  k = {src} -> wk: linear({kv * d}) -> reshape([B, {s}, {kv}, 1, {d}]) -> permute([0, 2, 3, 1, 4])",
                f"  v = {src} -> wv: linear({kv * d}) -> reshape([B, {s}, {kv}, 1, {d}]) -> permute([0, 2, 3, 1, 4])"]  # fmt: skip
    lines = [f"  q = x -> wq: linear({width}) -> reshape([B, {t}, {heads}, {d}]) -> {split}"]
    if kt == "direct":  # k^T straight from the projection: [B, heads, d, S]
        lines.append(f"  k = {src} -> wk: linear({width}) -> reshape([B, {s}, {heads}, {d}]) -> permute([0, 2, 3, 1])")
    else:
        lines.append(f"  k = {src} -> wk: linear({kv * d}) -> reshape([B, {s}, {kv}, {d}]) -> {split}")
    lines.append(f"  v = {src} -> wv: linear({kv * d}) -> reshape([B, {s}, {kv}, {d}]) -> {split}")
    if gqa == "repeat":  # repeat_kv: each key/value head serves heads / kv query heads in a row
        copies = ", ".join(["k1"] * (heads // kv))
        lines += ["  k1 = k -> unsqueeze(2)", f"  k = concat({copies}, dim=2) -> reshape([B, {heads}, {s}, {d}])",
                  "  v1 = v -> unsqueeze(2)",
                  f"  v = concat({copies.replace('k1', 'v1')}, dim=2) -> reshape([B, {heads}, {s}, {d}])"]  # fmt: skip
    return lines


def _scores(scale, c, kt) -> list[str]:
    k = "k" if kt == "direct" else "transpose(k, -2, -1)"
    k_scaled = f"(k * {c!r})" if kt == "direct" else f"transpose(k * {c!r}, -2, -1)"
    root = c**0.5
    k_root = f"(k * {root!r})" if kt == "direct" else f"transpose(k * {root!r}, -2, -1)"
    return [{
        "none": f"  scores = q @ {k}",
        "mul": f"  scores = q @ {k} * {c!r}",
        "div": f"  scores = q @ {k} / {1 / c!r}",
        "q": f"  scores = q * {c!r} @ {k}",
        "k": f"  scores = q @ {k_scaled}",
        "kt": f"  scores = q @ ({k} * {c!r})",
        "both": f"  scores = q * {root!r} @ {k_root}",
    }[scale]]  # fmt: skip


def _masked(mask, heads, t, s) -> list[str]:
    regrouped = f"(scores + fm -> reshape([B, {heads // 2}, 2, {t}, {s}])) + gm -> reshape([B, {heads}, {t}, {s}])"
    return {
        "none": [],
        "causal": ["  scores = masked_fill(scores, causal_mask(scores))"],
        "bool": ["  scores = masked_fill(scores, m)"],
        "pad": ["  scores = masked_fill(scores, pm)"],
        "float": ["  scores = scores + fm"],
        "float_heads": ["  scores = scores + fm"],
        "float_first": ["  scores = fm + scores"],
        "causal+pad": ["  scores = masked_fill(scores, causal_mask(scores))", "  scores = masked_fill(scores, pm)"],
        "float+bool": ["  scores = scores + fm", "  scores = masked_fill(scores, m)"],
        "scale_after_bias": ["  scores = (scores + fm) * 0.5"],
        "regrouped": [f"  scores = {regrouped}"],  # NOTE: [Regrouped scores]
    }[mask]  # fmt: skip


@examples(60)
@given(attention_specs())
def test_random_attention_fuses_and_computes_the_same(case):
    text, spec = case
    assert applied(text, 2)["fuse-attention"] == 1, text
    left = ops_of(text)
    assert "softmax" not in left and "matmul" not in left, (left, text)
    if spec["mask"] == "causal":
        assert "causal_mask" not in left  # is_causal: no mask tensor
    if spec["gqa"] == "repeat" and spec["mask"] != "regrouped":
        assert "concat" not in left  # enable_gqa: k and v unrepeated (regrouped: k, v as they are)
    check_same(text)


@examples(15)
@given(attention_specs())
def test_fuse_attention_alone_keeps_the_dropout_out_of_eval(case):
    """Run on its own (before drop-eval), the pass drops the weights' dropout: -O2 modules are
    inference modules (graph.inference_only says why)."""
    text, spec = case
    graph = build_all(load_text(text, "att.model"))[0]
    result = PASSES["fuse-attention"].run(graph)
    assert len(result.changes) == 1 and len(result.graph) < len(graph)
    if spec["dropout"]:
        assert "with dropout" in result.changes[0].what
        assert any("dropout" in why for why in result.graph.inference_only)
    result.graph.verify()
    base = modelc.load_source(text, "att.model")()
    randomize(base)
    fused = getattr(exec_source(emit([result.graph], "att.model"), "att.model"), "A")()
    fused.load_state_dict(base.state_dict())
    args = feed(graph)
    same(run(base.eval(), args)[0], run(fused.eval(), args)[0])


# ---- fully masked rows ----------------------------------------------------------------------------
FULLY_MASKED = """model A {
  input q: [B, 2, 4, 8]
  input m: bool[B, 1, 4, 4]
  w = masked_fill(q @ transpose(q, -2, -1) / 8 ** 0.5, m) -> softmax
  output w @ q
}
"""


def test_a_fully_masked_row_is_zero_where_the_written_form_is_nan():
    """The decision of NOTE: [Fully masked rows]: SDPA's 0, not the written form's 0/0."""
    base, opt, graph = modules(FULLY_MASKED, 2)
    q = torch.randn(2, 2, 4, 8)
    m = torch.rand(2, 1, 4, 4) < 0.3
    m[0, 0, 1] = True  # batch 0, query 1: every key hidden
    m[1, 0, 1] = False
    want, got = run(base, [q, m])[0], run(opt, [q, m])[0]
    assert torch.isnan(want[0, :, 1]).all() and (got[0, :, 1] == 0).all()
    same(want, got)


# ---- refusals: the pass does not fire ------------------------------------------------------------
HEAD = """model A {
  input x: [B, 2, 6, 8]
  input m: bool[6, 6]
  q = x -> tanh
  k = x -> sigmoid
  v = x -> relu
"""


@pytest.mark.parametrize("body,why", [
    ("  s = q @ transpose(k, -2, -1) * 0.25\n  output softmax(s) @ v, s", "scores (scale `scale`) are also a model output"),
    ("  s = q @ transpose(k, -2, -1) * 0.25\n  output softmax(s) @ v, s -> gelu", "scores (scale `scale`) are also read by `gelu`"),
    ("  w = q @ transpose(k, -2, -1) -> softmax\n  output w @ v, w", "the weights (softmax `softmax`) are also a model output"),
    ("  w = q @ transpose(k, -2, -1) -> softmax\n  output w @ v, w -> gelu", "the weights (softmax `softmax`) have 2 readers"),
    ("  w = q @ transpose(k, -2, -1) -> softmax(dim=2)\n  output w @ v", "over dim -2, not the last one"),
    ("  w = q @ transpose(k, -2, -1) -> linear(6, bias=false) -> softmax\n  output w @ v",
     "the softmax reads linear `linear`, not q @ k^T"),
    ("  w = masked_fill(q @ transpose(k, -2, -1), m, -1e9) -> softmax\n  output w @ v", "fills with -1e+09, not -inf"),
    ("  w = masked_fill(q @ transpose(k, -2, -1), m) * -1.0 -> softmax\n  output w @ v", "a scale of -1 after masked_fill"),
    ("  w = q @ transpose(k, -2, -1) -> softmax\n  output transpose(v, -2, -1) @ transpose(w, -2, -1)",
     "the weights go to transpose `transpose_2`, not to weights @ v"),
    ("  c = causal_mask(q @ transpose(k, -2, -1))\n  w = masked_fill(q @ transpose(k, -2, -1), c) -> softmax\n"
     "  output w @ v, c", "causal_mask `causal_mask` of the scores is also used otherwise"),
])  # fmt: skip
def test_refusals(body, why):
    text = HEAD + body + "\n}\n"
    assert applied(text, 2)["fuse-attention"] == 0
    found = refusals(text, 2, "fuse-attention")
    assert any(why in r for r in found), found
    check_same(text, fused=False)


def test_the_pattern_across_blocks_is_refused():
    text = ("block Scores { input q  input k  output q @ transpose(k, -2, -1) }\n"
            "model A { input x: [B, 6, 8]\n  output (Scores(x, x) -> softmax) @ x }\n")  # fmt: skip
    assert applied(text, 2)["fuse-attention"] == 0
    assert any("also a model output or a block's value" in r for r in refusals(text, 2, "fuse-attention"))
    check_same(text)


@pytest.mark.parametrize("body,why", [
    ("  s = (q @ transpose(k, -2, -1) + h -> reshape([B, 2, 1, 6, 6])) + g -> reshape([B, 2, 6, 6])\n"
     "  output softmax(s) @ v", "the mask `h` broadcasts differently over the regrouped scores"),
    ("  s = (q @ transpose(k, -2, -1) -> reshape([B, 2, 1, 6, 6])) + g -> softmax\n"
     "  output s @ (v -> reshape([B, 2, 1, 6, 8]))", "regrouped to [B, 2, 1, T, S] and not back"),
])  # fmt: skip
def test_regrouped_scores_refusals(body, why):
    text = HEAD.replace("  q = x", "  input h: [2, 6, 6]\n  input g: [2, 1, 6, 6]\n  q = x") + body + "\n}\n"
    assert applied(text, 2)["fuse-attention"] == 0
    found = refusals(text, 2, "fuse-attention")
    assert any(why in r for r in found), found
    check_same(text, fused=False)


def test_values_broadcast_over_more_batch_dimensions_are_refused():
    """SDPA's batch dimensions are q's and k's: a v with more would change the output's shape."""
    text = "model A { input q: [6, 8]  input v: [B, 6, 4]\n  w = q @ transpose(q, -2, -1) -> softmax\n  output w @ v }"
    assert applied(text, 2)["fuse-attention"] == 0
    assert any("it would give [6, 4], the matmul `matmul_1` gives [B, 6, 4]" in r
               for r in refusals(text, 2, "fuse-attention"))  # fmt: skip
    check_same(text, fused=False)


def test_log_softmax_is_no_candidate():
    text = HEAD + "  output (q @ transpose(k, -2, -1) -> log_softmax) @ v\n}\n"
    assert applied(text, 2)["fuse-attention"] == 0 and not refusals(text, 2, "fuse-attention")


# ---- the zoo ---------------------------------------------------------------------------------------
ZOO = [
    ("attention_primitives", {}, {"fuse-attention": 1}),
    ("gpt", dict(vocab=64, block_size=32, layers=2, heads=4, width=32), {"fuse-attention": 2}),
    ("bert", dict(vocab=64, hidden=32, layers=2, heads=4, ff=64, max_len=32), {"fuse-attention": 2, "merge-qkv": 2}),
    ("swin_t", dict(num_classes=10, embed=24, depths=[2, 2, 2, 2], heads=[3, 6, 12, 24]), {"fuse-attention": 8}),
    ("vit_b_16", dict(num_classes=10, image_size=32, layers=2, num_heads=4, hidden=32, mlp_dim=64), {"sdpa-layers": 2}),
    ("transformer", dict(d_model=32, heads=4, encoder_layers=2, decoder_layers=2, ff=64), {"sdpa-layers": 6}),
    ("attention_layer", {}, {"sdpa-layers": 1}),
]  # fmt: skip


@pytest.mark.parametrize("name,params,fired", ZOO, ids=[z[0] for z in ZOO])
def test_zoo_at_o2_computes_what_o0_computes(name, params, fired):
    path = f"specs/{name}.model"
    text = open(path).read()
    graph = build_all(load_text(text, path), None, params)[0]
    done = optimize(graph, 2, check=True)
    counts = {r.name: len(r.changes) for r in done.results}
    assert {k: counts[k] for k in fired} == fired
    check_same(text, 2, params, seed=3)


def test_explain_says_what_matched_where_and_what_it_became():
    path = "specs/attention_primitives.model"
    graph = build_all(load_text(open(path).read(), path))[0]
    text = explain(graph, optimize(graph, 2, check=True))
    assert ("attention_primitives.model:13  attention softmax(q @ k^T * 0.25, masked causally) @ v (7 nodes) -> "
            "scaled_dot_product_attention `attention` (scale=0.25, is_causal=True)  (nodes -6)") in text
    source = modelc.compile_file(path, optimize=2)
    assert "is_causal=True, scale=0.25" in source and "softmax" not in source and "causal_mask" not in source


def test_optimizing_attention_leaves_its_input_alone():
    path = "specs/gpt.model"
    graph = build_all(load_text(open(path).read(), path), None, dict(layers=2, width=32, heads=4))[0]
    before = sorted(graph.node(n).name for n in graph.nodes())
    optimize(graph, 2, check=True)
    assert sorted(graph.node(n).name for n in graph.nodes()) == before


def test_the_attention_passes_run_before_inplace():
    assert LEVELS[2][-1] == "inplace"
    assert {"fuse-attention", "sdpa-layers", "merge-qkv"} <= set(LEVELS[2]) - set(LEVELS[1])
    assert LEVELS[2].index("drop-eval") < LEVELS[2].index("fuse-attention")


# ---- sdpa-layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("body", [
    "  output x -> attn: self_attention(4, causal=true)",
    "  output x -> attn: self_attention(4)",
    "  output x -> attn: self_attention(2, bias=false, dropout=0.1)",
    "  output attn: cross_attention(x, mem, 4)",
    "  output attn: cross_attention(x, mem, 4, causal=true)",
    "  output attn: multihead_attention(x, mem, mem -> relu, 4)",
    "  output attn: self_attention(x, m, 4)",
    "  output attn: self_attention(x, f, 4)",
])  # fmt: skip
def test_attention_layers_through_sdpa(body):
    text = ("model A {\n  input x: [B, 6, 16]\n  input mem: [B, 9, 16]\n  input m: bool[6, 6]\n  input f: [6, 6]\n"
            f"{body}\n}}\n")  # fmt: skip
    assert applied(text, 2)["sdpa-layers"] == 1
    opt = check_same(text)
    base = modelc.load_source(text, "att.model")()
    assert list(opt.state_dict()) == list(base.state_dict())  # nn.MultiheadAttention's keys
    source = modelc.compile_source(text, "att.model", optimize=2)
    assert "rt.SDPAMultiheadAttention" in source and "causal_mask" not in source and "need_weights" not in source


def test_a_fully_masked_row_of_an_attention_layer_is_zero():
    """nn.MultiheadAttention (-O0) gives 0 there too, in eval mode (its fast path is SDPA)."""
    text = "model A { input x: [B, 4, 8]  input m: bool[4, 4]  output attn: self_attention(x, m, 2, bias=false) }"
    base, opt, _ = modules(text, 2)
    x, m = torch.randn(2, 4, 8), torch.zeros(4, 4, dtype=torch.bool)
    m[2] = True
    want, got = run(base, [x, m])[0], run(opt, [x, m])[0]
    assert (got[:, 2] == 0).all()
    same(want, got)


# ---- merge-qkv ----------------------------------------------------------------------------------------
def test_bert_projections_merge_and_both_checkpoints_load():
    path, params = "specs/bert.model", dict(vocab=64, hidden=32, layers=2, heads=4, ff=64, max_len=32)
    text = open(path).read()
    base, opt, graph = modules(text, 2, params)
    keys = set(opt.state_dict())
    assert "encoder.0.query_key_value.weight" in keys and "encoder.0.query.weight" not in keys
    again = modelc.load_source(text, "att.model", optimize=2, **params)().eval()
    again.load_state_dict(opt.state_dict())  # the optimized model's own checkpoint
    args = feed(graph)
    for want, got in zip(run(base, args), run(again, args)):
        same(want, got)


@pytest.mark.parametrize("body,merged", [
    ("  a = x -> p: linear(8)\n  b = x -> q: linear(8)\n  output a, b", "p_q"),
    ("  a = x -> p: linear(8)\n  b = x -> q: linear(3)\n  c = x -> r: linear(5)\n  output a + (b -> linear(8)), c", "p_q_r"),
    ("  a = x -> p: linear(8, bias=false)\n  b = x -> q: linear(8, bias=false)\n  output a + b", "p_q"),
    ("  a = x -> p: linear(8)\n  b = x -> q: linear(8)\n  c = x -> p_q: relu\n  output a + b + c", "p_q_1"),
])  # fmt: skip
def test_linears_of_one_input_merge(body, merged):
    text = f"model A {{\n  input x: [B, 6, 8]\n{body}\n}}\n"
    assert applied(text, 2)["merge-qkv"] == 1
    opt = check_same(text)
    assert f"{merged}.weight" in opt.state_dict()


@pytest.mark.parametrize("text,why", [
    ("block P { input x  output x -> a: linear(4) }\nmodel A { input x: [B, 8]  output (x -> P) + (x -> b: linear(4)) }",
     "in different blocks"),
    ("model A { input x: [B, 8]  output (x -> f: [linear(4), relu]) + (x -> b: linear(4)) }",
     "step of the numbered sequence `f`"),
    ("model A { input x: [B, 8]  output (x -> a: linear(4) -> view([B, 2, 2])) + (x -> b: linear(4) -> reshape([B, 2, 2])) }",
     "reaches view `view`"),
])  # fmt: skip
def test_merge_refusals(text, why):
    assert applied(text, 2)["merge-qkv"] == 0
    found = refusals(text, 2, "merge-qkv")
    assert any(why in r for r in found), found
    check_same(text)


def test_linears_with_and_without_bias_do_not_merge():
    text = "model A { input x: [B, 8]  output (x -> a: linear(4)) + (x -> b: linear(4, bias=false)) }"
    assert applied(text, 2)["merge-qkv"] == 0


# ---- the scaled_dot_product_attention op's additions: a mask with causal=true, enable_gqa ------------
@pytest.mark.parametrize("inputs,call", [
    ("input k: [B, 4, 7, 8]  input m: bool[5, 7]", "(q, k, k, m, causal=true)"),
    ("input k: [B, 4, 7, 8]  input f: [B, 1, 5, 7]", "(q, k, k, f, causal=true, scale=0.3)"),
    ("input kv: [B, 2, 7, 8]", "(q, kv, kv, enable_gqa=true)"),
    ("input kv: [B, 1, 7, 8]  input m: bool[B, 1, 1, 7]", "(q, kv, kv, m, causal=true, enable_gqa=true)"),
])  # fmt: skip
def test_sdpa_op_takes_a_mask_with_causal_and_grouped_heads(inputs, call):
    """The module (torch's kernel) against the interpreter (the op's reference), as --verify does."""
    from modelc.verify import verify_module

    text = f"model A {{ input q: [B, 4, 5, 8]  {inputs}  output scaled_dot_product_attention{call} }}"
    cls = modelc.load_source(text, "att.model")
    verify_module(cls, cls.__modelc_graph__)
    graph = cls.__modelc_graph__
    done = optimize(graph, 2, check=True)
    assert all(not r.changes for r in done.results)
