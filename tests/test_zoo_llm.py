"""Language models of today in the zoo, equal to Hugging Face transformers' implementations
(transformers==5.23.0, built from configs: nothing is downloaded). A tiny config of each is
compared on logits with every weight randomised; the full default config is counted on the
meta device, where nothing is allocated."""

from __future__ import annotations

import modelc
import pytest
from conftest import spec_path

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TINY_LLAMA = dict(vocab=100, d=64, hidden=128, layers=2, heads=4, kv_heads=2)


def llama_config(vocab, d, hidden, layers, heads, kv_heads, theta=500000.0, eps=1e-5):
    return transformers.LlamaConfig(
        vocab_size=vocab, hidden_size=d, intermediate_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, rope_theta=theta, rms_norm_eps=eps,
        max_position_embeddings=8192, tie_word_embeddings=False, attn_implementation="eager",
    )  # fmt: skip


def randomize(state: dict, seed: int = 0) -> None:
    """Norm weights around 1, matrices with std 1 / sqrt(their last dimension): logits far from
    uniform. (modelc.bench.randomize divides by all but the first dimension, which would shrink
    Mixtral's fused [experts, 2 * hidden, d] weights to nearly nothing.)"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in state.values():
            if t.dim() == 1:
                t.copy_(1 + 0.3 * torch.randn(t.shape, generator=g))
            else:
                t.normal_(0.0, t.shape[-1] ** -0.5, generator=g)


def test_llama3_equals_hugging_face_on_logits():
    reference = transformers.LlamaForCausalLM(llama_config(**TINY_LLAMA)).eval()
    randomize(reference.state_dict())
    ours = modelc.load(spec_path("llama3"), **TINY_LLAMA)().eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ids = torch.randint(0, 100, (2, 13), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = reference(ids).logits, ours(ids)
    assert want.std() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_llama3_rotary_layouts_differ_and_the_half_split_is_hugging_faces():
    """The interleaved layout is another model: with it the logits move away from HF's."""
    text = spec_path("llama3")
    source = open(text).read().replace("rotary(theta=theta)", "rotary(theta=theta, interleaved=true)")
    ours = modelc.load_source(source, "llama3_interleaved.model", **TINY_LLAMA)().eval()
    reference = transformers.LlamaForCausalLM(llama_config(**TINY_LLAMA)).eval()
    randomize(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ids = torch.randint(0, 100, (1, 9), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert (ours(ids) - reference(ids).logits).abs().max() > 1e-2


def test_llama3_8b_counts_what_hugging_face_counts():
    cls = modelc.load(spec_path("llama3"))
    assert cls.NUM_PARAMETERS == 8_030_261_248
    with torch.device("meta"):
        ours = cls()
        reference = transformers.LlamaForCausalLM(llama_config(128256, 4096, 14336, 32, 32, 8))
    assert sum(p.numel() for p in ours.parameters()) == 8_030_261_248
    assert sum(p.numel() for p in reference.parameters()) == 8_030_261_248
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}


# ---- GPT-2 --------------------------------------------------------------------------------
TINY_GPT2 = dict(vocab=120, positions=32, layers=2, heads=4, d=64)


def gpt2_config(vocab, positions, layers, heads, d):
    return transformers.GPT2Config(vocab_size=vocab, n_positions=positions, n_layer=layers, n_head=heads,
                                   n_embd=d, bos_token_id=0, eos_token_id=0, attn_implementation="eager")  # fmt: skip


def test_gpt2_equals_hugging_face_with_the_lm_head_tied():
    reference = transformers.GPT2LMHeadModel(gpt2_config(**TINY_GPT2)).eval()
    randomize(reference.state_dict())
    cls = modelc.load(spec_path("gpt2"), **TINY_GPT2)
    ours = cls().eval()
    assert list(ours.state_dict()) == list(reference.state_dict())  # same keys, same order
    ours.load_state_dict(reference.state_dict(), strict=True)
    assert ours.lm_head.weight is ours.transformer.wte.weight  # one matrix, two keys
    n = sum(p.numel() for p in ours.parameters())
    assert n == cls.NUM_PARAMETERS == sum(p.numel() for p in reference.parameters())
    ids = torch.randint(0, 120, (2, 17), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        want, got = reference(ids).logits, ours(ids)
    assert want.std() > 0.1
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # Training moves the shared matrix once, through both uses.
    ours.train()
    ours(ids).logsumexp(-1).mean().backward()
    assert ours.transformer.wte.weight.grad is ours.lm_head.weight.grad


def test_gpt2_small_counts_what_hugging_face_counts():
    cls = modelc.load(spec_path("gpt2"))
    assert cls.NUM_PARAMETERS == 124_439_808
    with torch.device("meta"):
        reference = transformers.GPT2LMHeadModel(gpt2_config(50257, 1024, 12, 12, 768))
    assert sum(p.numel() for p in reference.parameters()) == 124_439_808


# ---- Mixtral ------------------------------------------------------------------------------
TINY_MIXTRAL = dict(vocab=100, d=64, hidden=96, layers=2, heads=4, kv_heads=2, experts=4, top_k=2)


def mixtral_config(vocab, d, hidden, layers, heads, kv_heads, experts, top_k):
    return transformers.MixtralConfig(
        vocab_size=vocab, hidden_size=d, intermediate_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, num_local_experts=experts,
        num_experts_per_tok=top_k, rope_theta=1e6, rms_norm_eps=1e-5, max_position_embeddings=4096,
        tie_word_embeddings=False, attn_implementation="eager", router_jitter_noise=0.0,
    )  # fmt: skip


def test_mixtral_equals_hugging_face_on_logits():
    """Top-2 of 4 experts per token: the routing picks differ between tokens, so a wrong
    pick, weight or renormalisation shows in the logits."""
    reference = transformers.MixtralForCausalLM(mixtral_config(**TINY_MIXTRAL)).eval()
    randomize(reference.state_dict())
    ours = modelc.load(spec_path("mixtral"), **TINY_MIXTRAL)().eval()
    assert set(ours.state_dict()) == set(reference.state_dict())
    ours.load_state_dict(reference.state_dict(), strict=True)
    ids = torch.randint(0, 100, (2, 13), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        want, got = reference(ids).logits, ours(ids)
        gate = reference.model.layers[0].mlp.gate
        picks = torch.topk(gate(reference.model.embed_tokens(ids).reshape(-1, 64))[0], 2).indices
    assert len({tuple(sorted(p)) for p in picks.tolist()}) > 2  # several expert pairs in use
    torch.testing.assert_close(got, want, rtol=1e-5, atol=2e-5)


def test_mixtral_8x7b_counts_what_hugging_face_counts():
    cls = modelc.load(spec_path("mixtral"))
    assert cls.NUM_PARAMETERS == 46_702_792_704
    with torch.device("meta"):
        reference = transformers.MixtralForCausalLM(mixtral_config(32000, 4096, 14336, 32, 32, 8, 8, 2))
        ours = cls()
    assert sum(p.numel() for p in reference.parameters()) == 46_702_792_704
    assert {k: v.shape for k, v in ours.state_dict().items()} == {k: v.shape for k, v in reference.state_dict().items()}
