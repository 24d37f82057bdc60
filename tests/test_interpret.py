"""The reference interpreter (modelc.interpret) and its use as verify's oracle.

- Every model of every spec in specs/, with every float parameter and buffer randomised
  (default initialisations hide faults: zero biases, unit norm weights, zero running means),
  computes in its generated module what the interpreter computes from the IR.
- Regressions: faults the oracle was built to catch (a `for` of blocks reading the sequence's
  input, scaled_dot_product_attention's bool mask, integer arithmetic) and the checks verify
  adds (values, dtypes, state_dict names).
- Op laws (hypothesis): fused ops equal their composition from modelc's primitives
  (scaled_dot_product_attention with every kind of mask), attention layers equal
  torch.nn.MultiheadAttention with the same weights and a hand-written composition, and the
  interpreter's reference of every op with parameters equals torch's own module, so the oracle
  is independent of the emitter and of itself.
"""

from __future__ import annotations

import math

import modelc
import pytest
from conftest import RUN_PARAMS, spec_names, spec_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelc import ops, verify
from modelc.diagnostics import CompilerBug, SpecError
from modelc.driver import build_all
from modelc.interpret import evaluate, node_weights, run_graph
from modelc.load import load_file, load_text

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

LAWS = settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))


def close(got, want, what: str = "") -> None:
    """got equals want within verify's tolerance (and dtype, shape)."""
    problem = verify.difference(got, want)
    assert problem is None, f"{what} {problem}"


def graph_of(text: str):
    return build_all(load_text(text, "t.model"))[0]


def compiled(text: str):
    cls = modelc.load_source(text, "t.model")
    return cls, cls.__modelc_graph__


def randomize(model: nn.Module, seed: int = 0) -> None:
    """Every float parameter and buffer random at its initial scale: running variances in
    [0.5, 1.5], running means and parameters that start at zero around 0 (std 0.1), those that
    start at one (norm weights) in [0.75, 1.25]. Frozen parameters are constants of the spec
    (a literal kernel) and stay."""
    g = torch.Generator().manual_seed(seed)
    frozen = {name for name, p in model.named_parameters() if not p.requires_grad}
    with torch.no_grad():
        for name, t in model.state_dict(keep_vars=True).items():
            if not t.is_floating_point() or name in frozen:
                continue
            shape = t.shape
            if name.endswith("running_var"):
                t.copy_(torch.rand(shape, generator=g) + 0.5)
            elif t.numel() > 1 and t.std() > 0:
                t.copy_(torch.randn(shape, generator=g) * t.std())
            elif bool((t == 1).all()):
                t.copy_(torch.rand(shape, generator=g) * 0.5 + 0.75)
            else:
                t.copy_(torch.randn(shape, generator=g) * 0.1)


# ---- every spec ----------------------------------------------------------------------------------
SLOW = {"unet", "vgg16", "vgg19", "transformer", "swinir_light", "vit_b_16", "resnet34", "resnet50", "resnet101",
        "resnet152", "gpt", "bert", "alexnet", "alexnet_original", "googlenet", "googlenet_aux", "swin_t", "swin_v2_t", "convnext_small",
        "efficientnet_v2_s", "gpt2", "densenet121"}  # fmt: skip


def _spec_models() -> list:
    cases = []
    for name in spec_names():
        for model in load_file(spec_path(name)).main_models:
            marks = [pytest.mark.slow] if name in SLOW else []
            cases.append(pytest.param(name, model, id=f"{name}:{model}", marks=marks))
    return cases


@pytest.mark.parametrize("name, model", _spec_models())
def test_spec_matches_the_interpreter(name, model):
    cls = modelc.load(spec_path(name), model=model, **RUN_PARAMS.get(name, {}))
    graph = cls.__modelc_graph__
    env = verify.plan(graph).env
    torch.manual_seed(1)
    module = cls().eval()
    randomize(module)
    inputs = [verify._random_input(graph, n, graph.node(n).type.subs(env), "cpu") for n in graph.inputs]
    with torch.no_grad():
        out = module(*[x.clone() for x in inputs])
    outs = out if isinstance(out, tuple) else (out,)
    want = run_graph(graph, module.state_dict(), inputs)
    assert len(outs) == len(want) == len(graph.eval_outputs())  # eval mode: no training-only outputs
    for (output, _), got, ref in zip(graph.eval_outputs(), outs, want):
        assert torch.isfinite(ref).any(), f"{output}: no finite value to compare"
        close(got, ref, f"{name}:{model} output {output!r}")


# ---- regressions -------------------------------------------------------------------------------
DECODER = "block Dec { input x  input memory  output x -> fc: linear(8) -> add(memory) }\n"


@pytest.mark.parametrize("loop", ["for i in 0..3 { Dec(x) }", "repeat 3 Dec(x)"])
def test_sequence_items_read_the_sequence_input(loop):
    """Each item of `layers` reads the `x` the sequence started from as its memory, not the
    previous item's output (the emitter passed the updated value: `self.layers[1](x, x)`)."""
    cls, graph = compiled(DECODER + f"model M {{ input x: [B, 8]  x = x -> layers: {loop}  output x }}")
    module = cls().eval()
    randomize(module)
    x = torch.randn(3, 8)
    with torch.no_grad():
        got = module(x)
    w = module.state_dict()
    h = x
    for i in range(3):  # by hand: h = fc_i(h) + x
        h = h @ w[f"layers.{i}.fc.weight"].T + w[f"layers.{i}.fc.bias"] + x
    close(run_graph(graph, w, [x])[0], h, "interpreter")
    close(got, h, "module")
    verify.verify_module(cls, graph)


def test_sdpa_bool_mask_hides_where_true():
    """modelc's bool masks are true where a score is hidden; torch's SDPA reads them the other
    way round, so the call must invert them."""
    cls, graph = compiled("model M { input q: [B, 2, T, 8]  input m: bool[T, T]\n"
                          "  output scaled_dot_product_attention(q, q, q, m) }")  # fmt: skip
    assert "attn_mask=~m" in cls.__modelc_source__
    q = torch.randn(2, 2, 5, 8)
    mask = torch.ones(5, 5, dtype=torch.bool).triu(1)  # hide the future
    with torch.no_grad():
        got = cls()(q, mask)
    want = F.scaled_dot_product_attention(q, q, q, is_causal=True)
    close(got, want, "module")
    close(run_graph(graph, {}, [q, mask])[0], want, "interpreter")
    verify.verify_module(cls, graph)


@pytest.mark.parametrize("expr, dtype, code", [
    ("t * 2", "int64", "t * 2"), ("2 * t", "int64", "t * 2"), ("t * 0.5", "float32", "t * 0.5"),
    ("t / 2", "float32", "t * 0.5"), ("t -> scale(3)", "int64", "t * 3"),
])  # fmt: skip
def test_integer_scaling_follows_torch(expr, dtype, code):
    cls, graph = compiled(f"model M {{ input t: int64[B, 8]\n  output {expr} }}")
    assert graph.type_of(graph.outputs[0][1]).dtype == dtype
    assert f" = {code}  #" in cls.__modelc_source__
    t = torch.randint(0, 5, (2, 8))
    with torch.no_grad():
        got = cls()(t)
    assert str(got.dtype) == f"torch.{dtype}"
    verify.verify_module(cls, graph)


def test_integer_scaling_feeds_an_embedding():
    cls, graph = compiled("model M { input t: int64[B, 8]\n  output t * 2 -> embedding(20, 4) }")
    result = verify.verify_module(cls, graph)
    assert result["outputs"]["out"] == (2, 8, 4)


def test_float_scaling_keeps_its_form():
    """On a float tensor `x * 2` is `x * 2.0`: one IR, the same code as before integer factors."""
    _, graph = compiled("model M { input x: [B, 8]  output x * 2 }")
    (node,) = [graph.node(n) for n in graph.nodes() if graph.node(n).op == "scale"]
    assert node.attrs["factor"] == 2.0 and isinstance(node.attrs["factor"], float)


@pytest.mark.parametrize("text, types", [
    ("model M { input a: int64[B, 4]  input b: [B, 4]  output a + b }", ["float32"]),
    ("model M { input a: int32[B, 4]  input b: int64[B, 4]  output concat(a, b) }", ["int64"]),
    ("model M { input a: float16[B, 4]  input b: bfloat16[B, 4]  output a + b }", ["float32"]),
    ("model M { input a: int32[B, 4]  input b: float64[4]  output a + select(b, 0, 0) }", ["float64"]),
    ("model M { input a: float16[B, 4]  input b: float64[4]  output a + select(b, 0, 0) }", ["float16"]),
])  # fmt: skip
def test_element_types_promote_as_in_torch(text, types):
    cls, graph = compiled(text)
    assert [graph.type_of(r).dtype for _, r in graph.outputs] == types
    verify.verify_module(cls, graph)


@pytest.mark.parametrize("text", [
    "model M { input x: int64[B, 4]  output x -> softmax }",
    "model M { input x: int64[B, 4]  output x -> sigmoid }",
    "model M { input x: bool[B, 4]  output x -> relu }",
    "model M { input x: float64[B, 4]  output x -> linear(2) }",
    "model M { input x: float16[B, 3, 8, 8]  output x -> conv(4) }",
    "model M { input x: int64[B, 3, 8, 8]  output x -> maxpool(2) }",
    "model M { input x: int64[B, 3, 8]  output x -> mean(1) }",
    "model M { input x: float64[B, 4, 8]  output x -> lstm(4) }",
    "model M { input x: int64[B, 4, 8]  input y: [B, 4, 8]  output x @ y }",
    "model M { input x: int64[B, 4]  input m: bool[B, 4]  output masked_fill(x, m) }",
    "model M { input x: [B, 4, 8]  input m: int64[4, 4]  output scaled_dot_product_attention(x, x, x, m) }",
    "model M { input x: [B, 4, 8]  input m: bool[4]  output scaled_dot_product_attention(x, x, x, m) }",
    "model M { input x: [B, 4, 8]  input m: bool[1, 4]  output multihead_attention(x, x, x, m, heads=2) }",
    "model M { input x: [B, 8, 8, 4]  output x -> shifted_window_mask(4, 4) }",
])  # fmt: skip
def test_element_types_torch_cannot_compute_are_refused(text):
    """Accepted, these failed in torch (or, for sigmoid, gave float32 where the IR said int64)."""
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, "t.model")
    assert info.value.diagnostics[0].code in ("E0506", "E0305", "E0301", "E0404")


def test_verify_names_the_first_module_that_differs(monkeypatch):
    """An emitter fault (leaky_relu's slope dropped) is a CompilerBug naming output and module."""
    text = "model M { input x: [B, 8]  output x -> fc: linear(8) -> act: leaky_relu(0.5) -> head: linear(2) }"
    cls, graph = compiled(text)
    verify.verify_module(cls, graph)  # as emitted: right
    monkeypatch.setattr(type(ops.REGISTRY["leaky_relu"]), "_kwargs", lambda self, a: ())
    cls, graph = compiled(text)
    assert "nn.LeakyReLU()" in cls.__modelc_source__
    with pytest.raises(CompilerBug, match=r"output 'out' differs .*the first module to differ is 'act'"):
        verify.verify_module(cls, graph)


def test_verify_catches_an_uninverted_mask(monkeypatch):
    """The SDPA call as it was: the mask handed to torch as it is."""
    def old_call(self, a, args):
        return f"nn.functional.scaled_dot_product_attention({', '.join(args[:3])}, attn_mask={args[3]})"

    monkeypatch.setattr(type(ops.REGISTRY["scaled_dot_product_attention"]), "call", old_call)
    cls, graph = compiled("model M { input q: [B, 2, T, 8]  input m: bool[T, T]\n"
                          "  output scaled_dot_product_attention(q, q, q, m) }")  # fmt: skip
    with pytest.raises(CompilerBug, match="output 'out' differs"):
        verify.verify_module(cls, graph)


def test_verify_checks_state_dict_names():
    graph = graph_of("model M { input x: [B, 8]  output x -> fc: linear(4) }")
    w = {"fc.weight": torch.zeros(4, 8), "fc.bias": torch.zeros(4)}
    verify._check_weights(graph, w)
    with pytest.raises(CompilerBug, match="'fc_.weight' belongs to no node"):
        verify._check_weights(graph, {"fc_.weight": w["fc.weight"], "fc_.bias": w["fc.bias"]})
    with pytest.raises(CompilerBug, match="node 'fc' has 36 parameters"):
        verify._check_weights(graph, {})


def test_node_weights_are_relative_to_the_node():
    w = {"layers.0.fc.weight": 1, "layers.0.fc.bias": 2, "layers.0.fc2.weight": 3, "class_token": 4,
         "layers.0.attn.out_proj.weight": 5}  # fmt: skip
    assert node_weights(w, "layers.0.fc") == {"weight": 1, "bias": 2}
    assert node_weights(w, "class_token") == {"": 4}
    assert node_weights(w, "layers.0.attn") == {"out_proj.weight": 5}


def test_nodes_in_sequences_and_blocks_own_their_state_dict_entries():
    """A node's name is its module path, in numbered sequences, ModuleLists and blocks alike."""
    text = (DECODER + "block Res { input x  output x + (x -> conv(4, k=3, p=1) -> bn: batchnorm) }\n"
            "model M { input x: [B, 4, 8, 8]  input m: [B, 8]\n"
            "  y = x -> stem: [conv(4, k=1), relu, batchnorm] -> body: repeat 2 Res\n"
            "  z = m -> layers: for i in 0..2 { Dec(m) }\n"
            "  output y, z }")  # fmt: skip
    cls, graph = compiled(text)
    state = cls().state_dict()
    owned = set()
    for n in graph.nodes():
        node = graph.node(n)
        mine = {k for k in state if k.startswith(node.name + ".")}
        assert bool(mine) == (node.params > 0 or node.op == "batchnorm"), node.name
        owned |= mine
    assert owned == set(state)
    assert {"stem.0.weight", "stem.2.running_mean", "body.1.bn.weight", "layers.1.fc.bias"} <= owned


def test_interpreter_checks_the_ir_types(monkeypatch):
    graph = graph_of("model M { input x: [B, 8]  output x -> relu }")
    x = torch.randn(2, 8)
    close(run_graph(graph, {}, [x])[0], x.clamp(min=0))
    monkeypatch.setattr(type(ops.REGISTRY["relu"]), "reference", lambda self, a, ins, w: [ins[0].double()])
    with pytest.raises(CompilerBug, match=r"'relu' \(relu\) is float64 \[2, 8\] by the op's reference"):
        run_graph(graph, {}, [x])
    with pytest.raises(CompilerBug, match="input 'x' is float32"):
        run_graph(graph, {}, [torch.zeros(2, 8, dtype=torch.int64)])


def test_interpreter_drops_dead_values():
    graph = graph_of("model M { input x: [B, 8]  y = x -> relu -> tanh  output y }")
    x = torch.randn(2, 8)
    assert len(evaluate(graph, {}, [x])) == 1  # only the output survives
    assert len(evaluate(graph, {}, [x], keep_all=True)) == 3


def test_difference_ignores_undefined_values():
    want = torch.tensor([1.0, float("nan"), 3.0])
    assert verify.difference(torch.tensor([1.0, 0.0, 3.0]), want) is None
    assert verify.difference(torch.tensor([1.0, 0.0, float("inf")]), want) is not None
    assert verify.difference(torch.tensor([1.0, 0.0, 3.01]), want) is not None
    assert verify.difference(torch.tensor([1, 2]), torch.tensor([1, 3])) == "differs in 1 of 2 elements"


# ---- op laws: fused attention = its composition from primitives -----------------------------------
MASKS = ["none", "bool", "padding", "causal_mask", "causal", "float"]


@LAWS
@given(st.data())
def test_sdpa_equals_its_composition(data):
    b, h = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 3))
    t, s, e, ev = (data.draw(st.integers(1, 6)) for _ in range(4))
    kind = data.draw(st.sampled_from(MASKS))
    scale = data.draw(st.one_of(st.none(), st.floats(0.05, 2.0)))
    factor = 1 / math.sqrt(e) if scale is None else scale
    inputs = {"q": [b, h, t, e], "k": [b, h, s, e], "v": [b, h, s, ev]}
    decl = {"bool": f"bool[{t}, {s}]", "padding": f"bool[{b}, 1, 1, {s}]", "float": f"[{t}, {s}]"}
    lines = [f"input {n}: {shape}" for n, shape in inputs.items()]
    lines += [f"input m: {decl[kind]}"] if kind in decl else []
    lines.append(f"scores = q @ transpose(k, -2, -1) * {factor!r}")
    args, kw = "q, k, v", "" if scale is None else f", scale={scale!r}"
    if kind in ("bool", "padding", "causal_mask"):
        lines += ["m = causal_mask(scores)"] if kind == "causal_mask" else []
        lines.append("scores = masked_fill(scores, m)")
        args += ", m"
    elif kind == "causal":
        lines.append("scores = masked_fill(scores, causal_mask(scores))")
        kw += ", causal=true"
    elif kind == "float":
        lines.append("scores = scores + m")
        args += ", m"
    lines += [f"output fused = scaled_dot_product_attention({args}{kw})", "output composed = softmax(scores) @ v"]
    cls, graph = compiled("model M {\n  " + "\n  ".join(lines) + "\n}")
    feed = [torch.randn(*shape) for shape in inputs.values()]
    if kind in ("bool", "padding"):
        mask = torch.rand(*([t, s] if kind == "bool" else [b, 1, 1, s])) < 0.5
        mask[..., 0] = False  # every query sees a key: no row of -inf
        feed.append(mask)
    elif kind == "float":
        feed.append(torch.randn(t, s))
    with torch.no_grad():
        fused, composed = cls()(*feed)
    close(fused, composed, f"{kind}: fused vs composed")
    for got, want in zip((fused, composed), run_graph(graph, {}, feed)):
        close(got, want, f"{kind}: module vs interpreter")


def _hand_attention(q, k, v, w, heads, mask, bias):
    """Multi-head attention written out: per-head projections, scores, softmax, output."""
    d = q.shape[-1]
    wq, wk, wv = w["in_proj_weight"].chunk(3)
    bq, bk, bv = w["in_proj_bias"].chunk(3) if bias else (torch.zeros(d),) * 3
    split = lambda x: x.unflatten(-1, (heads, d // heads)).transpose(1, 2)  # noqa: E731
    qh, kh, vh = split(q @ wq.T + bq), split(k @ wk.T + bk), split(v @ wv.T + bv)
    scores = torch.einsum("bhtd,bhsd->bhts", qh, kh) / math.sqrt(d // heads)
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    out = torch.einsum("bhts,bhsd->bhtd", scores.softmax(-1), vh).transpose(1, 2).flatten(2)
    return out @ w["out_proj.weight"].T + (w["out_proj.bias"] if bias else 0)


@LAWS
@given(st.data())
def test_attention_layers_equal_torch_and_their_composition(data):
    op = data.draw(st.sampled_from(["multihead_attention", "self_attention", "cross_attention"]))
    heads, b = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2))
    d = heads * data.draw(st.integers(1, 4))
    t = data.draw(st.integers(1, 5))
    s = t if op == "self_attention" else data.draw(st.integers(1, 5))
    bias = data.draw(st.booleans())
    kind = data.draw(st.sampled_from(["none", "causal", "mask"]))
    names = {"multihead_attention": ["q", "k", "v"], "self_attention": ["x"], "cross_attention": ["x", "mem"]}[op]
    shapes = {"q": [b, t, d], "x": [b, t, d], "k": [b, s, d], "v": [b, s, d], "mem": [b, s, d]}
    lines = [f"input {n}: [{', '.join(map(str, shapes[n]))}]" for n in names]
    args = list(names)
    if kind == "mask":
        lines.append(f"input m: bool[{t}, {s}]")
        args.append("m")
    kw = f"heads={heads}, bias={'true' if bias else 'false'}" + (", causal=true" if kind == "causal" else "")
    lines.append(f"output y = attn: {op}({', '.join(args)}, {kw})")
    cls, graph = compiled("model M {\n  " + "\n  ".join(lines) + "\n}")
    module = cls().eval()
    randomize(module, seed=data.draw(st.integers(0, 100)))
    feed = [torch.randn(*shapes[n]) for n in names]
    mask = None
    if kind == "mask":
        mask = torch.rand(t, s) < 0.5
        mask[:, 0] = False
        feed.append(mask)
    elif kind == "causal":
        mask = torch.ones(t, s, dtype=torch.bool).triu(1)
    q, k, v = [feed[i] for i in {"multihead_attention": (0, 1, 2), "self_attention": (0, 0, 0),
                                 "cross_attention": (0, 1, 1)}[op]]  # fmt: skip
    w = node_weights(module.state_dict(), "attn")
    reference = nn.MultiheadAttention(d, heads, bias=bias, batch_first=True).eval()
    reference.load_state_dict(w, strict=True)
    with torch.no_grad():
        want = reference(q, k, v, attn_mask=mask, need_weights=False)[0]
        got = module(*feed)
        hand = _hand_attention(q, k, v, w, heads, mask, bias)
    close(hand, want, "hand-written vs nn.MultiheadAttention")
    close(run_graph(graph, module.state_dict(), feed)[0], want, "interpreter vs nn.MultiheadAttention")
    close(got, want, "module vs nn.MultiheadAttention")


# ---- the interpreter against torch's own modules -----------------------------------------------------
def reference_of(spec_line: str, inputs: dict, weights: dict, feed: list):
    """The interpreter's outputs for a one-op spec whose op is labelled `op`."""
    decl = "  ".join(f"input {n}: {t}" for n, t in inputs.items())
    graph = graph_of(f"model M {{ {decl}\n  {spec_line} }}")
    return run_graph(graph, {f"op.{k}" if k else "op": v for k, v in weights.items()}, feed)


def _random_state(module: nn.Module, seed: int) -> nn.Module:
    randomize(module, seed)
    return module.eval()


@LAWS
@given(st.data())
def test_conv_reference_equals_torch(data):
    nd = data.draw(st.sampled_from([1, 2]))
    groups = data.draw(st.sampled_from([1, 2]))
    cin, cout = groups * data.draw(st.integers(1, 3)), groups * data.draw(st.integers(1, 3))
    k, s, d = data.draw(st.integers(1, 3)), data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    p = data.draw(st.sampled_from([0, 1, "same"])) if s == 1 else data.draw(st.integers(0, 1))
    bias = data.draw(st.booleans())
    size = [data.draw(st.integers(d * (k - 1) + 1, 9)) for _ in range(nd)]
    transpose = data.draw(st.booleans()) and p != "same"
    if transpose:  # out = (in - 1)*s - 2p + d*(k - 1) + 1 must be positive
        p = min(p, min(((n - 1) * s + d * (k - 1)) // 2 for n in size))
    conv = (nn.ConvTranspose1d, nn.ConvTranspose2d) if transpose else (nn.Conv1d, nn.Conv2d)
    torch_module = conv[nd - 1](cin, cout, k, s, p, **({"output_padding": 0} if transpose else {}),
                                groups=groups, bias=bias, dilation=d)  # fmt: skip
    _random_state(torch_module, data.draw(st.integers(0, 100)))
    x = torch.randn(2, cin, *size)
    pad = f'"{p}"' if isinstance(p, str) else p
    op = "conv_transpose" if transpose else "conv"
    line = f"output op: {op}(x, {cout}, k={k}, s={s}, p={pad}, d={d}, groups={groups}, bias={str(bias).lower()})"
    (got,) = reference_of(line, {"x": f"[2, {cin}, {', '.join(map(str, size))}]"}, torch_module.state_dict(), [x])
    with torch.no_grad():
        close(got, torch_module(x), line)


def test_fixed_conv_reference_is_the_literal_kernel():
    x = torch.randn(1, 1, 6, 6)
    sobel = [[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]]
    (got,) = reference_of(f"output op: conv(x, 1, k=3, weight={sobel}, scale=0.5, trainable=false)",
                          {"x": "[1, 1, 6, 6]"}, {"weight": torch.zeros(1, 1, 3, 3), "bias": torch.ones(1)}, [x])
    close(got, F.conv2d(x, torch.tensor(sobel, dtype=torch.float32)[None, None] * 0.5))


NORMS = [
    ("batchnorm", lambda c, **kw: nn.BatchNorm2d(c, **kw), ["affine", "track_running_stats"]),
    ("batchnorm", lambda c, **kw: nn.BatchNorm1d(c, **kw), ["affine", "track_running_stats"]),
    ("instance_norm", lambda c, **kw: nn.InstanceNorm2d(c, **kw), ["affine", "track_running_stats"]),
    ("group_norm", lambda c, **kw: nn.GroupNorm(2, c, **kw), ["affine"]),
    ("layer_norm", lambda c, **kw: nn.LayerNorm(c, elementwise_affine=kw.get("affine", True)), ["affine"]),
]


@pytest.mark.parametrize("op, make, flags", NORMS)
@pytest.mark.parametrize("on", [True, False])
def test_norm_reference_equals_torch(op, make, flags, on):
    c = 4
    shape = [3, c, 5] if "1d" in make(c).__class__.__name__ else [3, 5, c] if op == "layer_norm" else [3, c, 5, 5]
    kw = {f: on for f in flags}
    torch_module = _random_state(make(c, **kw), seed=3)
    x = torch.randn(*shape) * 2 + 0.5
    args = ", ".join(f"{f}={str(on).lower()}" for f in flags)
    extra = "2, " if op == "group_norm" else ""
    (got,) = reference_of(f"output op: {op}(x, {extra}{args}, eps=0.001)", {"x": str(shape)},
                          torch_module.state_dict(), [x])  # fmt: skip
    torch_module.eps = 0.001
    with torch.no_grad():
        close(got, torch_module(x), op)


@pytest.mark.parametrize("op, kind, cls", [("rnn", "RNN", nn.RNN), ("lstm", "LSTM", nn.LSTM), ("gru", "GRU", nn.GRU)])
@pytest.mark.parametrize("layers, bidirectional, bias, initial", [
    (1, False, True, False), (2, True, True, True), (2, False, False, True), (3, True, False, False),
])  # fmt: skip
def test_recurrent_reference_equals_torch(op, kind, cls, layers, bidirectional, bias, initial):
    b, t, i, h = 2, 5, 3, 4
    dirs = 2 if bidirectional else 1
    torch_module = _random_state(cls(i, h, layers, bias=bias, batch_first=True, bidirectional=bidirectional), 5)
    x = torch.randn(b, t, i)
    states = [torch.randn(layers * dirs, b, h) for _ in range(2 if op == "lstm" else 1)] if initial else []
    names = ["x", "h0", "c0"][: 1 + len(states)]
    decl = {"x": f"[{b}, {t}, {i}]", **{n: f"[{layers * dirs}, {b}, {h}]" for n in names[1:]}}
    targets = "y, h, c" if op == "lstm" else "y, h"
    flags = f"layers={layers}, bidirectional={str(bidirectional).lower()}, bias={str(bias).lower()}"
    line = f"{targets} = op: {op}({', '.join(names)}, hidden={h}, {flags}, state=true)\n  output {targets}"
    got = reference_of(line, decl, torch_module.state_dict(), [x, *states])
    with torch.no_grad():
        y, final = torch_module(x, (tuple(states) if op == "lstm" else states[0]) if states else None)
    want = [y, *(final if op == "lstm" else (final,))]
    for k, (g, w) in enumerate(zip(got, want)):
        close(g, w, f"{op} output {k}")


@pytest.mark.parametrize("spec_line, inputs, make, run", [
    ("output op: linear(x, 3)", {"x": "[2, 4, 5]"}, lambda: nn.Linear(5, 3), None),
    ("output op: linear(x, 3, bias=false)", {"x": "[2, 5]"}, lambda: nn.Linear(5, 3, bias=False), None),
    ("output op: embedding(x, 7, 3)", {"x": "int64[2, 5]"}, lambda: nn.Embedding(7, 3), None),
    ("output op: position_embedding(x, 9)", {"x": "[2, 5, 3]"}, lambda: nn.Embedding(9, 3),
     lambda m, x: x + m(torch.arange(x.shape[1]))),
    ("output op: patch_embed(x, 6, 2)", {"x": "[2, 3, 4, 6]"}, lambda: nn.ModuleDict({"proj": nn.Conv2d(3, 6, 2, 2)}),
     lambda m, x: m["proj"](x).flatten(2).transpose(1, 2)),
])  # fmt: skip
def test_layer_reference_equals_torch(spec_line, inputs, make, run):
    torch_module = _random_state(make(), seed=7)
    decl = inputs["x"]
    dims = [int(v) for v in decl[decl.index("[") + 1 : -1].split(",")]
    x = torch.randint(0, 7, dims) if decl.startswith("int64") else torch.randn(*dims)
    (got,) = reference_of(spec_line, inputs, torch_module.state_dict(), [x])
    with torch.no_grad():
        close(got, (run or (lambda m, v: m(v)))(torch_module, x), spec_line)


def test_learned_tensors_reference():
    x, p = torch.randn(2, 5, 3), torch.randn(1, 5, 3)
    (got,) = reference_of("output op: learned_position(x)", {"x": "[2, 5, 3]"}, {"": p}, [x])
    close(got, x + p)
    token = torch.randn(1, 1, 3)
    (got,) = reference_of("output op: cls_token(x)", {"x": "[2, 5, 3]"}, {"": token}, [x])
    close(got, torch.cat([token.expand(2, 1, 3), x], 1))
    table = torch.randn(4, 3)
    (got,) = reference_of("output x + op: parameter([4, 3])", {"x": "[2, 4, 3]"}, {"": table}, [torch.zeros(2, 4, 3)])
    close(got, table.expand(2, 4, 3))


def test_channel_fc_reference_equals_per_channel_linear_layers():
    c, size_in, size_out = 3, (2, 3), (4, 2)
    x = torch.randn(2, c, *size_in)
    layers = [_random_state(nn.Linear(6, 8), seed=i) for i in range(c)]
    weight = torch.stack([m.weight.T for m in layers])  # [C, in, out]
    bias = torch.stack([m.bias for m in layers])
    (got,) = reference_of("output op: channel_fc(x, [4, 2])", {"x": "[2, 3, 2, 3]"},
                          {"weight": weight, "bias": bias}, [x])  # fmt: skip
    with torch.no_grad():
        want = torch.stack([layers[i](x[:, i].flatten(1)) for i in range(c)], 1).unflatten(2, size_out)
    close(got, want)


def test_jordan_rnn_reference_equals_a_loop_of_linear_layers():
    u, w, v = (_random_state(m, seed=i) for i, m in enumerate([nn.Linear(3, 4), nn.Linear(2, 4, bias=False),
                                                                nn.Linear(4, 2)]))  # fmt: skip
    x = torch.randn(2, 5, 3)
    weights = {f"{n}.{k}": t for n, m in (("U", u), ("W", w), ("V", v)) for k, t in m.state_dict().items()}
    (got,) = reference_of("output op: jordan_rnn(x, 4, 2, activation=\"relu\")", {"x": "[2, 5, 3]"}, weights, [x])
    y, outs = torch.zeros(2, 2), []
    with torch.no_grad():
        for step in range(5):
            y = torch.sigmoid(v(torch.relu(u(x[:, step]) + w(y))))
            outs.append(y)
    close(got, torch.stack(outs, 1))


def test_bahdanau_reference_equals_a_loop_of_torch_modules():
    e, k, h, a = 3, 5, 4, 6
    parts = {"W_a": nn.Linear(h, a, bias=False), "U_a": nn.Linear(k, a), "v_a": nn.Linear(a, 1, bias=False),
             "cell": nn.LSTMCell(e + k, h)}  # fmt: skip
    for i, m in enumerate(parts.values()):
        _random_state(m, seed=i)
    weights = {f"{n}.{key}": t for n, m in parts.items() for key, t in m.state_dict().items()}
    y, enc, s0 = torch.randn(2, 4, e), torch.randn(2, 7, k), torch.randn(2, h)
    states, contexts = reference_of(f"s, c = op: bahdanau_decoder(y, enc, s0, {h}, attention={a})\n  output s, c",
                                    {"y": "[2, 4, 3]", "enc": "[2, 7, 5]", "s0": "[2, 4]"}, weights, [y, enc, s0])
    hs, c, want_s, want_c = s0, torch.zeros(2, h), [], []
    with torch.no_grad():
        for t in range(4):
            weights_t = parts["v_a"](torch.tanh(parts["U_a"](enc) + parts["W_a"](hs)[:, None])).softmax(1)
            context = (weights_t * enc).sum(1)
            hs, c = parts["cell"](torch.cat([y[:, t], context], 1), (hs, c))
            want_s.append(hs)
            want_c.append(context)
    close(states, torch.stack(want_s, 1))
    close(contexts, torch.stack(want_c, 1))


@pytest.mark.parametrize("spec_line, make", [
    ("output op: relu(x)", nn.ReLU), ("output op: sigmoid(x)", nn.Sigmoid), ("output op: tanh(x)", nn.Tanh),
    ("output op: leaky_relu(x, 0.2)", lambda: nn.LeakyReLU(0.2)), ("output op: elu(x, 0.7)", lambda: nn.ELU(0.7)),
    ("output op: gelu(x)", nn.GELU), ('output op: gelu(x, approximate="tanh")', lambda: nn.GELU("tanh")),
    ("output op: softmax(x, 1)", lambda: nn.Softmax(1)), ("output op: log_softmax(x)", lambda: nn.LogSoftmax(-1)),
    ("output op: relu6(x)", nn.ReLU6), ("output op: hardswish(x)", nn.Hardswish),
    ("output op: hardsigmoid(x)", nn.Hardsigmoid),
    ("output op: local_response_norm(x, 3, alpha=0.5, beta=0.6, k=1.5)",
     lambda: nn.LocalResponseNorm(3, alpha=0.5, beta=0.6, k=1.5)),
    ("output op: local_response_norm(x, 4)", lambda: nn.LocalResponseNorm(4)),
    ("output op: maxpool(x, 3, s=2, p=1, ceil=true)", lambda: nn.MaxPool2d(3, 2, 1, ceil_mode=True)),
    ("output op: avgpool(x, 3, s=2, p=1, count_include_pad=false)",
     lambda: nn.AvgPool2d(3, 2, 1, count_include_pad=False)),
    ("output op: adaptive_avgpool(x, [2, 3])", lambda: nn.AdaptiveAvgPool2d((2, 3))),
    ("output op: upsample(x, 2, mode=\"bilinear\", align_corners=true)",
     lambda: nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)),
    ("output op: pad(x, [1, 2], mode=\"reflect\")", lambda: nn.ReflectionPad2d((2, 2, 1, 1))),
    ("output op: pixel_shuffle(x, 2)", lambda: nn.PixelShuffle(2)),
    ("output op: flatten(x, 2)", lambda: nn.Flatten(2)),
])  # fmt: skip
def test_parameter_free_reference_equals_torch(spec_line, make):
    x = torch.randn(2, 8, 5, 6) * 3
    (got,) = reference_of(spec_line, {"x": "[2, 8, 5, 6]"}, {}, [x])
    with torch.no_grad():
        close(got, make()(x), spec_line)


def test_layout_references_equal_their_definitions():
    x = torch.randn(2, 4, 6, 3)
    defs = {
        "roll(x, [1, -2], [1, 2])": torch.roll(x, (1, -2), (1, 2)),
        "slice(x, 2, 1, 5, step=2)": x[:, :, 1:5:2],
        "slice(x, 1, -3)": x[:, -3:],
        "select(x, 2, -1)": x[:, :, -1],
        "mean(x, 2, keepdim=true)": x.mean(2, keepdim=True),
        "center_crop(x, [2, 1])": x[:, :, 2:4, 1:2],
        "transpose(x, 1, 3)": x.transpose(1, 3),
    }
    for expr, want in defs.items():
        (got,) = reference_of(f"output {expr}", {"x": "[2, 4, 6, 3]"}, {}, [x])
        close(got, want, expr)


def _windows_by_loops(x, w):
    b, h, wd, c = x.shape
    out = []
    for n in range(b):
        for i in range(h // w):
            for j in range(wd // w):
                out.append(torch.stack([x[n, i * w + r, j * w + q] for r in range(w) for q in range(w)]))
    return torch.stack(out)


def test_window_references_equal_loops():
    x = torch.randn(2, 6, 4, 3)
    (parts,) = reference_of("output window_partition(x, 2)", {"x": "[2, 6, 4, 3]"}, {}, [x])
    close(parts, _windows_by_loops(x, 2))
    (back,) = reference_of("output window_reverse(x, 2, 6, 4)", {"x": "[12, 4, 3]"}, {}, [parts])
    close(back, x)
    (index,) = reference_of("output relative_position_index(3)", {"x": "[1]"}, {}, [torch.zeros(1)])
    pos = [(r, c) for r in range(3) for c in range(3)]
    close(index, torch.tensor([(a[0] - b[0] + 2) * 5 + a[1] - b[1] + 2 for a in pos for b in pos]))


@pytest.mark.parametrize("h, w, window, shift", [(8, 8, 4, 2), (8, 12, 4, 1), (4, 4, 2, 1), (6, 6, 3, 2)])
def test_shifted_window_mask_reference_equals_swins_regions(h, w, window, shift):
    """The regions as the Swin paper draws them: rows (and columns) 0..H-window, H-window..H-shift,
    H-shift..H of the rolled map; -100 between two positions of a window from different ones."""
    def region(i, size):
        return 0 if i < size - window else 1 if i < size - shift else 2

    ids = torch.tensor([[region(i, h) * 3 + region(j, w) for j in range(w)] for i in range(h)], dtype=torch.float32)
    windows = _windows_by_loops(ids[None, :, :, None], window)[..., 0]
    want = (windows[:, :, None] != windows[:, None, :]).float() * -100.0
    (got,) = reference_of(f"output shifted_window_mask(x, {window}, {shift})", {"x": f"[1, {h}, {w}, 2]"}, {},
                          [torch.zeros(1, h, w, 2)])  # fmt: skip
    close(got, want)


def test_sinusoidal_position_reference_equals_the_formula():
    x = torch.randn(2, 5, 6)
    (got,) = reference_of("output sinusoidal_position(x)", {"x": "[2, 5, 6]"}, {}, [x])
    pe = torch.tensor([[math.sin(p / 10000 ** (i / 6)) if i % 2 == 0 else math.cos(p / 10000 ** ((i - 1) / 6))
                        for i in range(6)] for p in range(5)])  # fmt: skip
    close(got, x + pe)


def test_eval_mode_ops_are_deterministic():
    """dropout, the noise layers and reparameterize are the identity (or the mean) in eval mode:
    the reference draws nothing, and neither does the module."""
    text = ("model M { input x: [B, 8]  input lv: [B, 8]\n"
            "  output x -> dropout(0.9) -> gaussian_noise(5.0) -> masking_noise(0.9), reparameterize(x, lv) }")  # fmt: skip
    cls, graph = compiled(text)
    x, lv = torch.randn(2, 8), torch.randn(2, 8)
    for got in run_graph(graph, {}, [x, lv]):
        close(got, x)
    with torch.no_grad():
        for got in cls().eval()(x, lv):
            close(got, x)
