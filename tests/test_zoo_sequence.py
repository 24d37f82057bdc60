"""The sequence zoo (issue 5): recurrent networks, attention and transformers.

Every spec compiles, runs a checked forward pass (`verify_module`) on the CPU and,
where there is one, on a GPU, and is proven right: against torch's own layers
(nn.RNN, nn.LSTM, nn.GRU, nn.Transformer) or torchvision's models (vit_b_16) given
the same weights, or against a reference written out by hand here. Parameter
counts and MACs are the published figures of /work/shared/REFERENCE.md.
Default-size models are compared at small sizes; the full sizes are `slow`.
"""

from __future__ import annotations

import functools
import math

import modelc
import pytest
import torch
import torch.nn.functional as F
from conftest import spec_path
from modelc.summary import batch_env, summarize
from modelc.symbolic import subs
from modelc.verify import concrete_env, verify_module
from torch import nn

# spec: small parameters for the quick tests (the defaults are full size)
SMALL = {
    "elman_rnn": {},
    "jordan_rnn": {},
    "lstm": {"input_size": 16, "hidden": 24},
    "gru": {"input_size": 16, "hidden": 24},
    "sentiment_lstm": {"vocab": 100, "embed": 16, "hidden": 24},
    "seq2seq_attention": {"src_vocab": 50, "tgt_vocab": 60, "embed": 16, "hidden": 24},
    "transformer": {"d_model": 64, "heads": 4, "encoder_layers": 2, "decoder_layers": 2, "ff": 128},
    "gpt": {"vocab": 100, "block_size": 32, "layers": 2, "heads": 4, "width": 64},
    "vit_b_16": {"image_size": 32, "patch": 8, "layers": 2, "num_heads": 2, "hidden": 32,
                 "mlp_dim": 64, "num_classes": 10},
    "bert": {"vocab": 100, "hidden": 64, "layers": 2, "heads": 4, "ff": 128, "max_len": 32},
    "attention_layer": {},
    "attention_primitives": {},
    "captioning": {"vocab": 50, "embed": 16, "hidden": 24, "image_size": 32},
    "swin_t": {"embed": 16, "depths": [2, 2, 2, 2], "heads": [1, 2, 2, 4], "window": 4, "image_size": 128,
               "num_classes": 10},
    "swinir_light": {"embed": 12, "depths": [2, 2], "heads": 2, "window": 4, "image_size": 16},
}  # fmt: skip
FULL_SLOW = {"gpt", "vit_b_16", "bert", "transformer", "swin_t", "swinir_light", "seq2seq_attention"}  # seconds each


@functools.cache
def _load(name: str, params: tuple) -> type:
    return modelc.load(spec_path(name), **{k: list(v) if isinstance(v, tuple) else v for k, v in params})


def load(name: str, small: bool = True, **params) -> type:
    """The module class of a spec (small, or default size), compiled once per session."""
    merged = {**(SMALL[name] if small else {}), **params}
    return _load(name, tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in merged.items())))


def build(name: str, small: bool = True, seed: int = 0, **params) -> nn.Module:
    torch.manual_seed(seed)
    return load(name, small, **params)().eval()


def close(a: torch.Tensor, b: torch.Tensor, atol: float = 1e-5) -> None:
    assert a.shape == b.shape, f"shapes {tuple(a.shape)} and {tuple(b.shape)}"
    diff = (a - b).abs().max().item()
    assert diff <= atol, f"max abs difference {diff:.3g} > {atol:.3g}"


def _shapes(m: nn.Module) -> dict[str, tuple[int, ...]]:
    return {k: tuple(v.shape) for k, v in m.state_dict().items()}


def tokens(*shape: int, high: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, high, shape, generator=torch.Generator().manual_seed(seed))


def randn(*shape: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


# ---- every spec: compiles, runs, checks --------------------------------------------------------
@pytest.mark.parametrize("name", sorted(SMALL))
def test_verify_small(name):
    cls = load(name)
    result = verify_module(cls, cls.__modelc_graph__)
    assert result["params"] == cls.NUM_PARAMETERS


@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) if n in FULL_SLOW else n
                                  for n in sorted(SMALL)])  # fmt: skip
def test_verify_default_size(name):
    cls = load(name, small=False)
    result = verify_module(cls, cls.__modelc_graph__)
    assert result["params"] == cls.NUM_PARAMETERS


@pytest.mark.cuda
@pytest.mark.parametrize("name", sorted(SMALL))
def test_verify_cuda(name):
    cls = load(name)
    verify_module(cls, cls.__modelc_graph__, device="cuda")


@pytest.mark.cuda
@pytest.mark.parametrize("name", ["lstm", "transformer", "gpt"])
def test_cuda_matches_cpu(name):
    model = build(name)
    graph = load(name).__modelc_graph__
    env = concrete_env(graph)
    args = []
    for n in graph.inputs:
        t = graph.node(n).type.subs(env)
        args.append(tokens(*t.dims, high=32) if t.dtype == "int64" else randn(*t.dims))
    with torch.no_grad():
        want = model(*args)
        got = model.to("cuda")(*[a.to("cuda") for a in args])
    for w, g in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, tuple) else (got,)):
        close(g.cpu(), w, atol=1e-3)


# ---- published figures: parameters and MACs ------------------------------------------------------
def _summary(name: str, **inputs):
    return summarize(modelc.graph(spec_path(name)) if not inputs else _graph_at(name, inputs))


def _graph_at(name: str, inputs: dict):
    from modelc.driver import build as build_graph

    return build_graph(spec_path(name), inputs=inputs)


@pytest.mark.parametrize(("name", "params"), [
    ("lstm", 4_202_496),              # torch.nn.LSTM(512, 512, num_layers=2)
    ("transformer", 44_140_544),      # torch.nn.Transformer()
    ("vit_b_16", 86_567_656),         # torchvision vit_b_16
    ("bert", 109_482_240),            # BERT-base, vocabulary 30,522, with pooler
    ("swin_t", 28_288_354),           # torchvision swin_t
    ("swinir_light", 910_152),        # SwinIR lightweight x2: the paper's "0.9 M"
])  # fmt: skip
def test_published_parameter_counts(name, params):
    assert _summary(name)["total_params"] == params
    assert load(name, small=False).NUM_PARAMETERS == params


def test_lstm_macs_at_256_steps():
    assert _summary("lstm", x=(1, 256, 512))["macs"] == 1_073_741_824


def test_transformer_macs_at_32_tokens():
    s = _graph_at("transformer", {"src": (1, 32, 512), "tgt": (1, 32, 512)})
    assert summarize(s)["macs"] == 1_428_160_512
    assert _attention_macs(s) == 18_874_368


def test_vit_b_16_macs():
    graph = modelc.graph(spec_path("vit_b_16"))
    assert summarize(graph)["macs"] == 17_563_828_224
    assert _attention_macs(graph) == 715_327_488


def test_swin_t_macs():
    graph = modelc.graph(spec_path("swin_t"))
    assert summarize(graph)["macs"] == 4_490_566_656
    # the attention products are the matmuls inside the window attention blocks
    attention = sum(graph.node(n).macs for n in graph.nodes() if graph.node(n).op == "matmul")
    assert subs(attention, batch_env(graph)) == 140_141_568


def test_symbolic_length_survives():
    """MACs of a sequence model stay a polynomial in T until T is pinned."""
    s = _summary("lstm")
    assert s["macs"] is None and s["macs_expr"] == "4194304*T"
    graph = modelc.graph(spec_path("gpt"))
    assert str(graph.type_of(graph.outputs[0][1])) == "[B, T, 50257]"


def _attention_macs(graph) -> int:
    """The Q K^T and A V products of every attention layer, at batch 1."""
    total = 0
    for n in graph.nodes():
        node = graph.node(n)
        if hasattr(node.opdef, "attention_macs"):
            macs = node.opdef.attention_macs(dict(node.attrs), graph.input_types(n), list(node.types))
            total += subs(macs, batch_env(graph))
    return total


# ---- Elman RNN ------------------------------------------------------------------------------------
class ElmanReference(nn.Module):
    def __init__(self, input_size=32, hidden=64, output_size=10):
        super().__init__()
        self.rnn = nn.RNN(input_size, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, output_size)

    def forward(self, x, many_to_one=False):
        h, _ = self.rnn(x)
        return self.fc(h[:, -1] if many_to_one else h)


@pytest.mark.parametrize("many_to_one", [False, True])
def test_elman_equals_torch_rnn(many_to_one):
    ours = build("elman_rnn", many_to_one=many_to_one)
    ref = ElmanReference().eval()
    ref.load_state_dict(ours.state_dict())
    x = randn(3, 7, 32)
    with torch.no_grad():
        got = ours(x)
        close(got, ref(x, many_to_one))
    # ... and the equations of the spec's comment, step by step
    w = dict(ours.named_parameters())
    h = torch.zeros(3, 64)
    ys = []
    for t in range(7):
        h = torch.tanh(x[:, t] @ w["rnn.weight_ih_l0"].T + w["rnn.bias_ih_l0"]
                       + h @ w["rnn.weight_hh_l0"].T + w["rnn.bias_hh_l0"])  # fmt: skip
        ys.append(h @ w["fc.weight"].T + w["fc.bias"])
    want = ys[-1] if many_to_one else torch.stack(ys, 1)
    close(got, want.detach(), atol=1e-5)


# ---- Jordan RNN ------------------------------------------------------------------------------------
def test_jordan_rnn_step_by_step():
    ours = build("jordan_rnn")
    p = {k: v.detach() for k, v in ours.named_parameters()}
    assert sorted(p) == ["jordan.U.bias", "jordan.U.weight", "jordan.V.bias", "jordan.V.weight",
                         "jordan.W.weight"]  # fmt: skip
    x = randn(2, 6, 16)
    y = torch.zeros(2, 4)  # y_0 = 0: the output, not the hidden state, is fed back
    want = []
    for t in range(6):
        h = torch.tanh(x[:, t] @ p["jordan.U.weight"].T + p["jordan.U.bias"] + y @ p["jordan.W.weight"].T)
        y = torch.sigmoid(h @ p["jordan.V.weight"].T + p["jordan.V.bias"])
        want.append(y)
    with torch.no_grad():
        close(ours(x), torch.stack(want, 1))


# ---- LSTM and GRU ---------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize(("layers", "bidirectional"), [(1, False), (3, False), (2, True)])
def test_recurrent_equals_torch(kind, layers, bidirectional):
    ours = build(kind, layers=layers, bidirectional=bidirectional)
    torch_class = nn.LSTM if kind == "lstm" else nn.GRU
    ref = torch_class(16, 24, num_layers=layers, bidirectional=bidirectional, batch_first=True).eval()
    assert sum(p.numel() for p in ours.parameters()) == sum(p.numel() for p in ref.parameters())
    ref.load_state_dict({k.removeprefix(f"{kind}."): v for k, v in ours.state_dict().items()})
    x = randn(3, 5, 16)
    with torch.no_grad():
        got, want = ours(x), ref(x)
    want = (want[0], *want[1]) if kind == "lstm" else want
    assert len(got) == len(want)
    for g, w in zip(got, want):
        close(g, w)


def test_lstm_512_parameters_match_torch():
    assert load("lstm", small=False).NUM_PARAMETERS == sum(p.numel() for p in nn.LSTM(512, 512, 2).parameters())


# ---- sentiment classifier ---------------------------------------------------------------------------
class SentimentReference(nn.Module):
    def __init__(self, vocab=100, embed=16, hidden=24, classes=2):
        super().__init__()
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(2 * hidden, classes)

    def forward(self, ids, pooling="last"):
        y, (h, _) = self.lstm(self.embedding(ids))
        feature = torch.cat([h[0], h[1]], dim=1) if pooling == "last" else y.mean(1)
        return self.fc(self.dropout(feature))


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_sentiment_classifier(pooling):
    ours = build("sentiment_lstm", pooling=pooling)
    ref = SentimentReference().eval()
    ref.load_state_dict(ours.state_dict())
    ids = tokens(4, 9, high=100)
    with torch.no_grad():
        close(ours(ids), ref(ids, pooling))
        # "last": the forward direction's last step and the backward direction's first
        y, (h, _) = ref.lstm(ref.embedding(ids))
        close(h[0], y[:, -1, :24])
        close(h[1], y[:, 0, 24:])


# ---- seq2seq with Bahdanau attention ----------------------------------------------------------------
def _lstm_cell(x, h, c, w_ih, w_hh, b_ih, b_hh):
    i, f, g, o = (x @ w_ih.T + b_ih + h @ w_hh.T + b_hh).chunk(4, dim=1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c), c


def test_seq2seq_bahdanau_teacher_forced():
    ours = build("seq2seq_attention")
    p = {k: v.detach() for k, v in ours.state_dict().items()}
    src, tgt = tokens(2, 7, high=50), tokens(2, 5, high=60, seed=2)
    # encoder: torch's bidirectional LSTM with the spec's weights
    encoder = nn.LSTM(16, 24, batch_first=True, bidirectional=True)
    encoder.load_state_dict({k.removeprefix("encoder."): v for k, v in p.items() if k.startswith("encoder.")})
    with torch.no_grad():
        enc, (h, _) = encoder(F.embedding(src, p["src_embedding.weight"]))
    s = torch.tanh(h[1] @ p["init.weight"].T + p["init.bias"])  # from the backward final state
    c = torch.zeros_like(s)
    y = F.embedding(tgt, p["tgt_embedding.weight"])
    logits = []
    for t in range(5):  # one target word at a time
        # e_j = v_a . tanh(W_a s + U_a h_j) for every source position j
        e = torch.tanh((s @ p["decoder.W_a.weight"].T)[:, None]
                       + enc @ p["decoder.U_a.weight"].T + p["decoder.U_a.bias"])  # fmt: skip
        scores = e @ p["decoder.v_a.weight"].T  # [B, S, 1]
        a = torch.softmax(scores.squeeze(2), dim=1)  # [B, S]: weights over source positions
        context = (a[:, :, None] * enc).sum(1)
        s, c = _lstm_cell(torch.cat([y[:, t], context], 1), s, c, p["decoder.cell.weight_ih"],
                          p["decoder.cell.weight_hh"], p["decoder.cell.bias_ih"], p["decoder.cell.bias_hh"])  # fmt: skip
        logits.append(torch.cat([s, context, y[:, t]], 1) @ p["out.weight"].T + p["out.bias"])
    with torch.no_grad():
        close(ours(src, tgt), torch.stack(logits, 1))


# ---- Transformer ------------------------------------------------------------------------------------
def test_transformer_equals_torch():
    from modelc.runtime import SinusoidalPositionalEncoding

    ours = build("transformer")
    ref = nn.Transformer(64, 4, 2, 2, 128, batch_first=True).eval()
    assert _shapes(ours) == _shapes(ref)  # torch's names
    ref.load_state_dict(ours.state_dict())
    src, tgt = randn(2, 7, 64), randn(2, 5, 64, seed=2)
    pe = SinusoidalPositionalEncoding(64)
    with torch.no_grad():
        want = ref(pe(src), pe(tgt), tgt_mask=nn.Transformer.generate_square_subsequent_mask(5))
        close(ours(src, tgt), want)


def test_sinusoidal_encoding_is_the_papers():
    from modelc.runtime import SinusoidalPositionalEncoding

    pe = SinusoidalPositionalEncoding(8)(torch.zeros(1, 50, 8))[0]
    pos, i = 37, 3
    assert math.isclose(pe[pos, 2 * i].item(), math.sin(pos / 10000 ** (2 * i / 8)), abs_tol=1e-5)
    assert math.isclose(pe[pos, 2 * i + 1].item(), math.cos(pos / 10000 ** (2 * i / 8)), abs_tol=1e-5)


@pytest.mark.slow
def test_transformer_default_equals_torch():
    from modelc.runtime import SinusoidalPositionalEncoding

    ours = build("transformer", small=False)
    ref = nn.Transformer(batch_first=True).eval()
    assert _shapes(ours) == _shapes(ref)
    ref.load_state_dict(ours.state_dict())
    src, tgt = randn(2, 12, 512), randn(2, 9, 512, seed=2)
    pe = SinusoidalPositionalEncoding(512)
    with torch.no_grad():
        want = ref(pe(src), pe(tgt), tgt_mask=nn.Transformer.generate_square_subsequent_mask(9))
        close(ours(src, tgt), want, atol=1e-4)


# ---- GPT ----------------------------------------------------------------------------------------------
class GPTReference(nn.Module):
    """nanoGPT's model, condensed; attention through torch's fused causal kernel."""

    def __init__(self, vocab=100, block_size=32, layers=2, heads=4, width=64):
        super().__init__()
        self.heads = heads
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(vocab, width), "wpe": nn.Embedding(block_size, width), "drop": nn.Dropout(0.0),
            "h": nn.ModuleList(nn.ModuleDict({
                "ln_1": nn.LayerNorm(width),
                "attn": nn.ModuleDict({"c_attn": nn.Linear(width, 3 * width), "c_proj": nn.Linear(width, width)}),
                "ln_2": nn.LayerNorm(width),
                "mlp": nn.ModuleDict({"c_fc": nn.Linear(width, 4 * width), "c_proj": nn.Linear(4 * width, width)}),
            }) for _ in range(layers)),
            "ln_f": nn.LayerNorm(width)})  # fmt: skip
        self.lm_head = nn.Linear(width, vocab, bias=False)

    def forward(self, idx):
        b, t = idx.shape
        tr = self.transformer
        x = tr.wte(idx) + tr.wpe(torch.arange(t))
        for block in tr.h:
            q, k, v = block.attn.c_attn(block.ln_1(x)).split(x.shape[2], dim=2)
            q, k, v = (z.view(b, t, self.heads, -1).transpose(1, 2) for z in (q, k, v))
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
            x = x + block.attn.c_proj(y.transpose(1, 2).reshape(b, t, -1))
            x = x + block.mlp.c_proj(F.gelu(block.mlp.c_fc(block.ln_2(x))))
        return self.lm_head(tr.ln_f(x))


def test_gpt_equals_reference():
    ours = build("gpt")
    ref = GPTReference().eval()
    ref.load_state_dict(ours.state_dict())  # nanoGPT's names
    idx = tokens(2, 11, high=100)
    with torch.no_grad():
        close(ours(idx), ref(idx))


def test_gpt_is_causal():
    ours = build("gpt")
    idx = tokens(1, 10, high=100)
    changed = idx.clone()
    changed[0, 6:] = (changed[0, 6:] + 1) % 100
    with torch.no_grad():
        close(ours(idx)[:, :6], ours(changed)[:, :6])  # the past does not see the future


# ---- ViT-B/16 -------------------------------------------------------------------------------------
def test_vit_small_equals_torchvision():
    from torchvision.models.vision_transformer import VisionTransformer

    ours = build("vit_b_16")
    ref = VisionTransformer(32, 8, 2, 2, 32, 64, num_classes=10).eval()
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    ref.load_state_dict(ours.state_dict(), strict=True)
    x = randn(2, 3, 32, 32)
    with torch.no_grad():
        close(ours(x), ref(x))


@pytest.mark.slow
def test_vit_b_16_equals_torchvision():
    from torchvision.models import vit_b_16

    torch.manual_seed(0)
    ref = vit_b_16(weights=None).eval()
    with torch.no_grad():  # torchvision's heads and class token start at zero
        for p in (ref.heads.head.weight, ref.heads.head.bias, ref.class_token):
            p.normal_(0, 0.02)
    ours = build("vit_b_16", small=False)
    assert sum(p.numel() for p in ref.parameters()) == 86_567_656
    assert [(k, v.shape) for k, v in ours.state_dict().items()] == [(k, v.shape) for k, v in ref.state_dict().items()]
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = randn(2, 3, 224, 224)
    with torch.no_grad():
        want = ref(x)
        close(ours(x), want, atol=1e-4)
    assert (want[0] - want[1]).abs().max() > 1e-3


# ---- the two forms of attention --------------------------------------------------------------------
def test_attention_layer_equals_primitives():
    layer, primitives = build("attention_layer"), build("attention_primitives")
    w = layer.state_dict()
    primitives.load_state_dict({
        "in_proj.weight": w["attn.in_proj_weight"], "in_proj.bias": w["attn.in_proj_bias"],
        "out_proj.weight": w["attn.out_proj.weight"], "out_proj.bias": w["attn.out_proj.bias"],
    })  # fmt: skip
    x = randn(3, 9, 64)
    with torch.no_grad():
        close(layer(x), primitives(x))
    sizes = [summarize(m.__modelc_graph__) for m in (load("attention_layer"), load("attention_primitives"))]
    assert sizes[0]["total_params"] == sizes[1]["total_params"]
    assert sizes[0]["macs_expr"] == sizes[1]["macs_expr"] == "16384*T + 128*T*T"


def test_fused_attention_primitive_equals_textbook():
    source = """
    model M(fused: bool = false) {
        input q: [B, H, T, 16]
        input k: [B, H, S, 16]
        input v: [B, H, S, 8]
        y = scaled_dot_product_attention(q, k, v, causal=true) if fused
            else masked_fill(q @ transpose(k, -2, -1) / 4, causal_mask(q @ transpose(k, -2, -1))) -> softmax
        output y if fused else y @ v
    }
    """
    q, k, v = randn(2, 3, 5, 16), randn(2, 3, 5, 16, seed=2), randn(2, 3, 5, 8, seed=3)
    fused, textbook = (modelc.load_source(source, fused=f)() for f in (True, False))
    close(fused(q, k, v), textbook(q, k, v))


# ---- BERT ---------------------------------------------------------------------------------------------
def bert_reference(p: dict, ids, segments, layers=2, heads=4, eps=1e-12):
    """BERT's forward, written out from the paper and Hugging Face's BertModel."""
    t = ids.shape[1]
    x = p["embeddings.word_embeddings.weight"][ids] + p["embeddings.token_type_embeddings.weight"][segments]
    x = x + p["embeddings.position_embeddings.weight"][:t]
    x = F.layer_norm(x, x.shape[-1:], p["embeddings.norm.weight"], p["embeddings.norm.bias"], eps)

    def lin(i, name, z):
        return z @ p[f"encoder.{i}.{name}.weight"].T + p[f"encoder.{i}.{name}.bias"]

    def norm(i, name, z):
        return F.layer_norm(z, z.shape[-1:], p[f"encoder.{i}.{name}.weight"], p[f"encoder.{i}.{name}.bias"], eps)

    for i in range(layers):
        b, _, d = x.shape
        q, k, v = (lin(i, n, x).view(b, t, heads, -1).transpose(1, 2) for n in ("query", "key", "value"))
        a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // heads), -1) @ v
        x = norm(i, "attention_norm", x + lin(i, "dense", a.transpose(1, 2).reshape(b, t, d)))
        x = norm(i, "ffn_norm", x + lin(i, "ffn_output", F.gelu(lin(i, "intermediate", x))))
    pooled = torch.tanh(x[:, 0] @ p["pooler.weight"].T + p["pooler.bias"])
    return x, pooled


def test_bert_equals_reference():
    ours = build("bert")
    p = {k: v.detach() for k, v in ours.state_dict().items()}
    ids, segments = tokens(2, 10, high=100), tokens(2, 10, high=2, seed=3)
    with torch.no_grad():
        got = ours(ids, segments)
    for g, w in zip(got, bert_reference(p, ids, segments)):
        close(g, w)


# ---- image captioning -------------------------------------------------------------------------------
class CaptionerReference(nn.Module):
    def __init__(self, vocab=50, embed=16, hidden=24):
        super().__init__()
        convs = []
        for c_in, c_out in ((3, 32), (32, 64), (64, 128), (128, 256)):
            convs += [nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]
        self.encoder = nn.Module()
        self.encoder.features = nn.Sequential(*convs)
        self.encoder.fc = nn.Linear(256, embed)
        self.embedding = nn.Embedding(vocab, embed)
        self.lstm = nn.LSTM(embed, hidden, batch_first=True)
        self.fc = nn.Linear(hidden, vocab)

    def forward(self, image, captions):
        feature = self.encoder.fc(self.encoder.features(image).mean((2, 3)))
        x = torch.cat([feature[:, None], self.embedding(captions)], dim=1)  # the image first
        return self.fc(self.lstm(x)[0])


def test_captioning_equals_reference():
    ours = build("captioning")
    ref = CaptionerReference().eval()
    ref.load_state_dict(ours.state_dict())
    image, captions = randn(2, 3, 32, 32), tokens(2, 6, high=50)
    with torch.no_grad():
        out = ours(image, captions)
        close(out, ref(image, captions))
    assert out.shape == (2, 7, 50)  # one prediction per input: the image, then each word


# ---- Swin-T -------------------------------------------------------------------------------------------
def _perturbed(model: nn.Module) -> nn.Module:
    """Random weights everywhere (torchvision's biases start at zero)."""
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def test_swin_small_equals_torchvision():
    from torchvision.models.swin_transformer import SwinTransformer

    ours = build("swin_t")
    ref = _perturbed(SwinTransformer([4, 4], 16, [2, 2, 2, 2], [1, 2, 2, 4], [4, 4], num_classes=10).eval())
    assert _shapes(ours) == _shapes(ref)  # relative_position_index buffers included
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = randn(2, 3, 128, 128)
    with torch.no_grad():
        close(ours(x), ref(x))


@pytest.mark.slow
def test_swin_t_equals_torchvision():
    from torchvision.models import swin_t

    torch.manual_seed(0)
    ref = _perturbed(swin_t(weights=None).eval())
    assert sum(p.numel() for p in ref.parameters()) == 28_288_354
    ours = build("swin_t", small=False)
    assert _shapes(ours) == _shapes(ref)
    for key, value in ours.state_dict().items():  # the constant buffers agree before loading
        if key.endswith("relative_position_index"):
            assert torch.equal(value, ref.state_dict()[key])
    ours.load_state_dict(ref.state_dict(), strict=True)
    x = randn(2, 3, 224, 224)
    with torch.no_grad():
        want = ref(x)
        close(ours(x), want, atol=1e-4)
    assert (want[0] - want[1]).abs().max() > 1e-3


# ---- SwinIR -------------------------------------------------------------------------------------------
def swinir_reference(p: dict, x, depths=(2, 2), heads=2, ws=4, scale=2):
    """SwinIR's forward after the official implementation (tokens [B, L, C], masks from
    image slices), with the spec's weights."""

    def lin(name, z):
        return F.linear(z, p[f"{name}.weight"], p.get(f"{name}.bias"))

    def ln(name, z):
        return F.layer_norm(z, z.shape[-1:], p[f"{name}.weight"], p[f"{name}.bias"])

    def partition(z):  # [B, H, W, C] -> [B * nW, ws * ws, C]
        b, h, w, c = z.shape
        z = z.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).contiguous()
        return z.view(-1, ws * ws, c)

    def reverse(z, h, w):
        b = int(z.shape[0] / (h * w / ws / ws))
        z = z.view(b, h // ws, w // ws, ws, ws, -1).permute(0, 1, 3, 2, 4, 5).contiguous()
        return z.view(b, h, w, -1)

    def mask(h, w, s):
        img = torch.zeros((1, h, w, 1))
        cnt = 0
        for hs in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
            for wsl in (slice(0, -ws), slice(-ws, -s), slice(-s, None)):
                img[:, hs, wsl, :] = cnt
                cnt += 1
        m = partition(img).squeeze(-1)
        m = m.unsqueeze(1) - m.unsqueeze(2)
        return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0)

    def relative_index():
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0).contiguous()
        rel[:, :, 0] += ws - 1
        rel[:, :, 1] += ws - 1
        rel[:, :, 0] *= 2 * ws - 1
        return rel.sum(-1)

    def block(name, z, h, w, s):
        b, _, c = z.shape
        shortcut = z
        z = ln(f"{name}.norm1", z).view(b, h, w, c)
        if s:
            z = torch.roll(z, (-s, -s), (1, 2))
        win = partition(z)
        n = win.shape[1]
        qkv = lin(f"{name}.attn.qkv", win).reshape(-1, n, 3, heads, c // heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0] * (c // heads) ** -0.5, qkv[1], qkv[2]
        attn = q @ k.transpose(-2, -1)
        table = p[f"{name}.attn.relative_position_bias_table"]
        attn = attn + table[relative_index().view(-1)].view(n, n, -1).permute(2, 0, 1).unsqueeze(0)
        if s:
            m = mask(h, w, s)
            attn = attn.view(-1, m.shape[0], heads, n, n) + m.unsqueeze(1).unsqueeze(0)
            attn = attn.view(-1, heads, n, n)
        win = lin(f"{name}.attn.proj", (attn.softmax(-1) @ v).transpose(1, 2).reshape(-1, n, c))
        z = reverse(win, h, w)
        if s:
            z = torch.roll(z, (s, s), (1, 2))
        z = shortcut + z.reshape(b, h * w, c)
        return z + lin(f"{name}.mlp.3", F.gelu(lin(f"{name}.mlp.0", ln(f"{name}.norm2", z))))

    def conv(name, z):
        return F.conv2d(z, p[f"{name}.weight"], p[f"{name}.bias"], padding=1)

    x = conv("conv_first", x)
    b, c, h, w = x.shape
    t = ln("patch_norm", x.flatten(2).transpose(1, 2))  # patch_embed: tokens [B, L, C], normed
    for i, depth in enumerate(depths):
        y = t
        for j in range(depth):
            y = block(f"layers.{i}.residual_group.{j}", y, h, w, 0 if j % 2 == 0 or ws >= h else ws // 2)
        y = conv(f"layers.{i}.conv", y.transpose(1, 2).view(b, c, h, w))  # patch_unembed, conv
        t = y.flatten(2).transpose(1, 2) + t  # patch_embed, residual
    f = ln("norm", t).transpose(1, 2).view(b, c, h, w)
    x = conv("conv_after_body", f) + x
    return F.pixel_shuffle(conv("upsample.0", x), scale)


def test_swinir_equals_reference():
    ours = _perturbed(build("swinir_light"))
    p = {k: v.detach() for k, v in ours.state_dict().items()}
    x = randn(2, 3, 16, 16)
    with torch.no_grad():
        out = ours(x)
        close(out, swinir_reference(p, x))
    assert out.shape == (2, 3, 32, 32)  # x2 super-resolution


# ---- the language pieces these specs use ------------------------------------------------------------
def _compile(text: str, **params):
    cls = modelc.load_source(text, "t.model", **params)
    return cls, cls.__modelc_source__


def _error(text: str) -> str:
    with pytest.raises(modelc.SpecError) as info:
        modelc.load_source(text, "t.model")
    return info.value.render()


def test_integer_inputs_and_their_bounds():
    cls, _ = _compile("""
    model M {
        input ids: int64[B, T]
        output ids -> e: embedding(3, 4)
    }""")
    graph = cls.__modelc_graph__
    assert graph.node(graph.inputs[0]).type.dtype == "int64"
    for seed in range(5):  # verify feeds ids below the vocabulary of 3
        verify_module(cls, graph, seed=seed)
    assert "error[E0506]: embedding takes integer ids, got a float32 tensor" in _error(
        "model M { input x: [B, T]\n output x -> embedding(3, 4) }")
    assert "input 'ids' expects int64 elements, got a float32 tensor" in _error("""
    block E { input ids: int64[B, T]
              output ids -> embedding(3, 4) }
    model M { input x: [B, T]
              output E(x) }""")


def test_shape_patterns_bind_dimension_names():
    cls, source = _compile("""
    block Heads(heads: int) {
        input x: [B, T, D]
        output x -> reshape([B, T, heads, D // heads]) -> transpose(1, 2)
    }
    model M {
        input x: [B, T, 8]
        y = x -> Heads(2)
        output y -> reshape([B * 2, T, 4])
    }""")
    assert "x.reshape(x.shape[0], x.shape[1], 2, 4)" in source
    assert "y.reshape(2 * y.shape[0], y.shape[2], 4)" in source  # sizes from the input's, never baked in
    graph = cls.__modelc_graph__
    assert str(graph.type_of(graph.outputs[0][1])) == "[2*B, T, 4]"
    verify_module(cls, graph)
    assert "input 'k' expects shape [B, S, 8], got [B, S, 6]" in _error("""
    block Attend { input q: [B, T, D]
                   input k: [B, S, D]
                   output q }
    model M { input q: [B, T, 8]
              input k: [B, S, 6]
              output Attend(q, k) }""")
    assert "dimension N is 4 here but 3 before" in _error("""
    block Square { input x: [N, N]
                   output x }
    model M { input x: [3, 4]
              output Square(x) }""")


def test_for_prefix_names_the_items():
    cls, _ = _compile("""
    model M {
        input x: [B, 4]
        output x -> layers: for i in 0..2 prefix "layer_" { linear(4) -> relu }
    }""")
    assert list(cls().state_dict()) == ["layers.layer_0.weight", "layers.layer_0.bias", "layers.layer_2.weight",
                                        "layers.layer_2.bias"]  # fmt: skip
    assert "error[E0509]: 'prefix' names the items of a labelled 'for'" in _error(
        'model M { input x: [B, 4]\n output x -> for i in 0..2 prefix "l" { linear(4) } }')
    assert "error[E0207]: prefix \"1.\" cannot name a module" in _error(
        'model M { input x: [B, 4]\n output x -> s: for i in 0..2 prefix "1." { linear(4) } }')


def test_sequence_items_with_extra_inputs_are_unrolled():
    text = """
    block Mix { input x: [B, D]
                input m: [B, D]
                output x + m -> fc: linear(D) }
    model M { input x: [B, 4]
              input m: [B, 4]
              output x -> layers: repeat 3 Mix(SRC) }"""
    cls, source = _compile(text.replace("SRC", "m"))
    assert "self.layers = rt.module_list(" in source
    assert "out = self.layers[1](out, m)" in source
    model = cls().eval()
    x, m = randn(2, 4), randn(2, 4, seed=2)
    want = x
    for layer in model.layers:
        want = layer.fc(want + m)
    close(model(x, m), want.detach())
    # the piped tensor as the extra input too: it must survive the first item
    cls, _ = _compile(text.replace("SRC", "x"))
    model = cls().eval()
    want = x
    for layer in model.layers:
        want = layer.fc(want + x)
    close(model(x, m), want.detach())
    assert "each step takes only the previous step's output" in _error(
        "model M { input x: [B, 4]\n input m: [B, 4]\n output x -> s: (concat(m)) }")


def test_non_sequential_ops_stay_out_of_numbered_sequences():
    assert "error[E0509]: lstm cannot be a step of the numbered sequence 's'" in _error(
        "model M { input x: [B, T, 4]\n output x -> s: (lstm(8) -> relu) }")


def test_tensor_arithmetic():
    cls, source = _compile("""
    model M {
        input a: [B, H, N, N]
        input b: [H, N, N]
        y = (a + b) * 2 / 4 @ a
        output 3 * y
    }""")
    assert "y = a + b" in source and "y * 2.0" in source and "y * 0.25" in source and "y @ a" in source
    a, b = randn(2, 3, 5, 5), randn(3, 5, 5, seed=2)
    close(cls()(a, b), 3 * ((a + b) * 2 / 4 @ a))
    assert "error[E0301]: cannot add tensors of shapes [B, H, N, N] and [H, 4, N]" in _error(
        "model M { input a: [B, H, N, N]\n input b: [H, 4, N]\n output a + b }")
    assert "error[E0506]: '@' is the matrix product of two tensors" in _error(
        "model M { input a: [B, 4]\n output a -> linear(2 @ 3) }")


def test_recurrent_initial_state():
    cls, source = _compile("""
    model M {
        input x: [B, T, 4]
        input h0: [2, B, 8]
        input c0: [2, B, 8]
        y, h, c = lstm: lstm(x, h0, c0, hidden=8, layers=2, state=true)
        output y, h, c
    }""")
    assert "y, (h, c) = self.lstm(x, (h0, c0))" in source
    model = cls().eval()
    ref = nn.LSTM(4, 8, 2, batch_first=True)
    ref.load_state_dict({k.removeprefix("lstm."): v for k, v in model.state_dict().items()})
    x, h0, c0 = randn(3, 5, 4), randn(2, 3, 8, seed=2), randn(2, 3, 8, seed=3)
    with torch.no_grad():
        got, (want, (hn, cn)) = model(x, h0, c0), ref(x, (h0, c0))
    for g, w in zip(got, (want, hn, cn)):
        close(g, w)
    assert "an initial state must be [2, B, 8]" in _error("""
    model M { input x: [B, T, 4]
              input h0: [1, B, 8]
              output gru(x, h0, hidden=8, layers=2) }""")


def test_symbolic_positions_are_checked():
    assert "error[E0304]: select: index 2 of dimension T" in _error(
        "model M { input x: [B, T, 4]\n output x -> select(1, 2) }")
    assert "error[E0304]: slice 1: of dimension T" in _error(
        "model M { input x: [B, T, 4]\n output x -> slice(1, 1) }")
    assert "error[E0301]: reshape: cannot infer the -1" in _error(
        "model M { input x: [B, T, 6]\n output x -> reshape([B, T, 4, -1]) }")


@pytest.mark.parametrize("name", sorted(SMALL))
def test_reinference_is_a_fixed_point(name):
    """Re-running the shape rules on a finished graph (as passes will) changes nothing."""
    from modelc.infer import infer_graph

    graph = modelc.graph(spec_path(name), **{k: v for k, v in SMALL[name].items()})
    before = {n: (graph.node(n).attrs, graph.node(n).types, graph.node(n).params, graph.node(n).macs)
              for n in graph.nodes()}  # fmt: skip
    infer_graph(graph)
    after = {n: (graph.node(n).attrs, graph.node(n).types, graph.node(n).params, graph.node(n).macs)
             for n in graph.nodes()}  # fmt: skip
    assert after == before


def test_layout_ops_agree_with_torch():
    cls, _ = _compile("""
    model M {
        input x: [B, 8, 8, 4]
        input ids: int64[6]
        a, b = x -> split([3, 5], dim=1)
        c, d = x -> chunk(2, dim=3)
        r0, r1, r2, r3 = x -> slice(3, 0, 4) -> unbind(3)
        w = x -> roll([-2, -2], [1, 2]) -> window_partition(4) -> window_reverse(4, 8, 8)
        p = x -> permute([0, 3, 1, 2]) -> pixel_shuffle(2)
        output a -> select(1, -1), d -> mean(2), r2 -> slice(1, 1, step=3), w -> view([B, 64, 4]),
               p -> unsqueeze(1), index_select(x, ids, dim=1)
    }""")
    x = randn(2, 8, 8, 4)
    ids = torch.tensor([0, 7, 3, 3, 1, 2])
    want = (x[:, 2], x[..., 2:].mean(2), x[..., 2][:, 1::3], torch.roll(x, (-2, -2), (1, 2)).reshape(2, 64, 4),
            F.pixel_shuffle(x.permute(0, 3, 1, 2), 2).unsqueeze(1), x[:, ids])  # fmt: skip
    for got, w in zip(cls()(x, ids), want):
        close(got, w)
    verify_module(cls, cls.__modelc_graph__)


def test_multihead_attention_with_a_mask_and_patch_embed():
    cls, source = _compile("""
    model M {
        input q: [B, T, 16]
        input kv: [B, S, 16]
        input mask: bool[T, S]
        input image: [B, 3, 8, 8]
        a = mha: multihead_attention(q, kv, kv, mask, heads=4)
        output a, image -> patches: patch_embed(16, 4)
    }""")
    assert "a, _ = self.mha(q, kv, kv, attn_mask=mask, need_weights=False)" in source
    model = cls().eval()
    q, kv, image = randn(2, 5, 16), randn(2, 7, 16, seed=2), randn(2, 3, 8, 8, seed=3)
    mask = torch.rand(5, 7, generator=torch.Generator().manual_seed(4)) < 0.3
    with torch.no_grad():
        a, tokens_ = model(q, kv, mask, image)
        close(a, model.mha(q, kv, kv, attn_mask=mask)[0])
        close(tokens_, model.patches.proj(image).flatten(2).transpose(1, 2))
    assert tokens_.shape == (2, 4, 16)


def test_transformer_builds_on_meta_and_materialises():
    """FSDP2's recipe: build on the meta device, to_empty, reset_parameters, load the
    checkpoint. The sinusoidal table is in no state_dict: reset_parameters refills it."""
    cls = load("transformer")
    torch.manual_seed(0)
    reference = cls().eval()
    with torch.device("meta"):
        model = cls()
    model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    model.load_state_dict(reference.state_dict())
    model.eval()
    src, tgt = torch.randn(2, 5, 64), torch.randn(2, 4, 64)  # the small configuration: d_model 64
    with torch.no_grad():
        assert torch.equal(model(src, tgt), reference(src, tgt))


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:FutureWarning")
def test_swin_t_scripts_with_torch_jit():
    """torch.jit.script reads modelc.runtime's helpers too: shifted_window_mask is typed."""
    model = build("swin_t")
    scripted = torch.jit.script(model)
    x = randn(1, 3, 128, 128)
    with torch.no_grad():
        assert torch.equal(scripted(x), model(x))


@pytest.mark.parametrize("h, w, window, shift", [(8, 8, 4, 2), (56, 56, 7, 3), (14, 28, 7, 3)])
def test_shifted_window_mask_marks_the_regions_the_roll_brought_together(h, w, window, shift):
    """Against Swin's definition: 3 x 3 regions of the map filled by slices, then compared."""
    from modelc.runtime import shifted_window_mask
    from modelc.runtime.sequence import window_partition

    region = torch.zeros(h, w)
    bounds = ((0, -window), (-window, -shift), (-shift, None))
    for i, (r0, r1) in enumerate(bounds):
        for j, (c0, c1) in enumerate(bounds):
            region[r0:r1, c0:c1] = 3 * i + j
    ids = window_partition(region[None, :, :, None], window).squeeze(2)
    want = torch.zeros(ids.shape[0], window * window, window * window)
    want[ids[:, None, :] != ids[:, :, None]] = -100.0
    assert torch.equal(shifted_window_mask(h, w, window, shift), want)
