"""`[for v in items { body }]` (compiler/elaborate/branches.py): lists built per item and, labelled,
parallel branches whose modules are numbered, as a mixture's experts.

The oracle of the mixture is a sparse top-2 mixture of experts written here with torch, as
transformers 4.x writes Mixtral's `block_sparse_moe` (an nn.ModuleList of SwiGLU experts
w1/w2/w3 and a `gate`; each expert runs only on the tokens routed to it, picked with
index_select and added back with index_add_): the spec loads its state_dict strictly and
gives the same outputs.
"""

from __future__ import annotations

import modelc
import pytest
from modelc import verify
from modelc.diagnostics import SpecError

torch = pytest.importorskip("torch")
nn, F = torch.nn, torch.nn.functional

MOE = """
block Expert(hidden: int) {
    input x: [B, T, D]
    output (silu(x -> w1: linear(hidden, bias=false)) * (x -> w3: linear(hidden, bias=false)))
           -> w2: linear(D, bias=false)
}

block SparseMoe(experts: int, top_k: int, hidden: int) {
    input x: [B, T, D]
    weights, chosen = x -> gate: linear(experts, bias=false) -> softmax -> topk(top_k)   # [B, T, k]
    weights = weights / (weights -> sum(-1, keepdim=true))
    y = concat(experts: [for e in 0..experts { x -> Expert(hidden) -> unsqueeze(2) }], dim=2)   # [B, T, E, D]
    picked = gather(y, chosen -> unsqueeze(-1) -> expand([B, T, top_k, D]), 2)   # [B, T, k, D]
    output sum(picked * unsqueeze(weights, -1), 2)
}

model Moe(experts: int = 4, hidden: int = 32) {
    input x: [B, T, 16]
    output x -> block_sparse_moe: SparseMoe(experts, 2, hidden)
}
"""


class SwiGLU(nn.Module):
    """transformers 4.x MixtralBlockSparseTop2MLP: w2(silu(w1 x) * w3 x)."""

    def __init__(self, d: int, hidden: int):
        super().__init__()
        self.w1 = nn.Linear(d, hidden, bias=False)
        self.w2 = nn.Linear(hidden, d, bias=False)
        self.w3 = nn.Linear(d, hidden, bias=False)

    def forward(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))


class SparseMoeReference(nn.Module):
    """transformers 4.x MixtralSparseMoeBlock in eval mode: each expert computes only its tokens."""

    def __init__(self, d: int, hidden: int, experts: int, top_k: int):
        super().__init__()
        self.top_k = top_k
        self.gate = nn.Linear(d, experts, bias=False)
        self.experts = nn.ModuleList(SwiGLU(d, hidden) for _ in range(experts))

    def forward(self, x):
        b, t, d = x.shape
        tokens = x.reshape(-1, d)
        probs = F.softmax(self.gate(tokens), dim=1, dtype=torch.float)
        weights, chosen = torch.topk(probs, self.top_k, dim=-1)
        weights = weights / weights.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(tokens)
        self.routed = []
        for e, expert in enumerate(self.experts):
            token, pick = torch.where(chosen == e)  # the tokens routed to e, and which of their picks it is
            self.routed.append(len(token))
            y = expert(tokens.index_select(0, token)) * weights[token, pick, None]
            out.index_add_(0, token, y)
        return out.reshape(b, t, d)


class Layer(nn.Module):
    def __init__(self, experts: int, hidden: int):
        super().__init__()
        self.block_sparse_moe = SparseMoeReference(16, hidden, experts, 2)

    def forward(self, x):
        return self.block_sparse_moe(x)


@pytest.mark.parametrize("experts, seed", [(4, 0), (8, 1)])
def test_a_sparse_top_2_mixture_of_experts_equals_a_hand_written_sparse_one(experts, seed):
    torch.manual_seed(seed)
    reference = Layer(experts, 32).eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in reference.parameters():
            p.copy_(torch.randn(p.shape, generator=g) / p.shape[-1] ** 0.5)
    ours = modelc.load_source(MOE, "moe.model", experts=experts)().eval()
    ours.load_state_dict(reference.state_dict(), strict=True)  # experts.{i}.w1.weight, gate.weight, ...
    x = torch.randn(3, 7, 16, generator=g)
    with torch.no_grad():
        want, got = reference(x), ours(x)
    routed = reference.block_sparse_moe.routed
    assert sum(routed) == 3 * 7 * 2 and 0 < min(routed) and max(routed) < 3 * 7  # sparse: each expert its share
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    assert set(ours.state_dict()) == set(reference.state_dict())


def test_the_mixture_emits_a_module_list_called_branch_by_branch():
    source = modelc.compile_source(MOE, "moe.model")
    assert "self.experts = rt.module_list(" in source
    for e in range(4):
        assert f"= self.experts[{e}](x)" in source
    cls = modelc.load_source(MOE, "moe.model")
    verify.verify_module(cls, cls.__modelc_graph__)  # the interpreter, module by module


def test_unlabelled_for_lists_are_plain_lists():
    """Numbers per item (widths of a for step), and tensors per item that ops taking any number of
    tensors read as a list: concat(ys), add(ys); no modules are numbered."""
    text = """model M {
    input x: [B, 4]
    widths = [for i in 0..3 { 8 * 2 ** i }]
    y = x -> stages: for w in widths { linear(w) -> relu }
    parts = [for s in [1.0, 2.0, 3.0] { x * s }]
    output y, concat(parts, dim=1), add(parts), concat(x, parts)
}
"""
    model = modelc.load_source(text, "t.model")()
    assert [model.stages[i].out_features for i in (0, 2, 4)] == [8, 16, 32]
    x = torch.randn(2, 4)
    with torch.no_grad():
        _, cat, total, cat2 = model(x)
    torch.testing.assert_close(cat, torch.cat([x, 2 * x, 3 * x], 1))
    torch.testing.assert_close(total, 6 * x)
    torch.testing.assert_close(cat2, torch.cat([x, x, 2 * x, 3 * x], 1))


BRANCHES = """block Mix(width: int) {{
    input x: [B, D]
    input y: [B, E]
    output concat(x, y) -> proj: linear(width)
}}
model M {{
    input x: [B, 4]
    input y: [B, 3]
    {body}
}}
"""


def test_branches_of_layers_lists_and_blocks_of_two_inputs():
    text = BRANCHES.format(body="""heads = heads: [for i in 0..3 { x -> linear(2 + i) }]
    pairs = pairs: [for w in [5, 6] { x -> [linear(w), relu] }]
    mixes = mix: [for w in [2, 2] { Mix(x, y, w) }]
    x = scaled: [for s in [1, 2] { x * s -> linear(4) }]     # rebinds x: the branches still read the input
    output concat(heads, dim=1), concat(pairs, dim=1), add(mixes), add(x)""")
    model = modelc.load_source(text, "t.model")()
    keys = set(model.state_dict())
    assert {"heads.2.weight", "pairs.1.0.bias", "mix.1.proj.weight", "scaled.1.weight"} <= keys
    x, y = torch.randn(2, 4), torch.randn(2, 3)
    s = model.state_dict()

    def lin(name, v):
        return F.linear(v, s[f"{name}.weight"], s[f"{name}.bias"])

    with torch.no_grad():
        heads, pairs, mixes, scaled = model(x, y)
    torch.testing.assert_close(heads, torch.cat([lin(f"heads.{i}", x) for i in range(3)], 1))
    torch.testing.assert_close(pairs, torch.cat([lin(f"pairs.{i}.0", x).relu() for i in range(2)], 1))
    torch.testing.assert_close(mixes, sum(lin(f"mix.{i}.proj", torch.cat([x, y], 1)) for i in range(2)))
    torch.testing.assert_close(scaled, lin("scaled.0", x) + lin("scaled.1", 2 * x))


@pytest.mark.parametrize("body, message, where", [
    ("ys = experts: [for e in 0..2 { relu(x) }]", "branch 0 of 'experts' makes no module to number", (9, 36)),
    ("ys = experts: [for e in 0..2 { x -> linear(4) -> linear(4) }]",
     "branch 0 of 'experts' makes 2 modules, not one", (9, 36)),
    ("ys = experts: [for e in 0..2 { x -> fc: linear(4) }]",
     "a label in the branches of 'experts' would name every branch's module: 'fc'", (9, 41)),
    ("ys = experts: [for e in 0..2 { x -> chunk(2) }]", "must give one tensor, not a list", (9, 36)),
    ("ys = experts: [for e in 0..2 { e }]", "must give one tensor, not 0", (9, 36)),
    ("ys = experts: [for e in 0..0 { x -> linear(4) }]", "'experts' has no branches", (9, 29)),
    ("ys = experts: [for e in 0..2 { parameter([4]) }]", "parameter cannot be a branch of 'experts'", (9, 36)),
    ("ys = [for e in 3 { x }]", "'for' needs a list or a range, got 3", (9, 20)),
    ("ys = [for e in 0..2 { x -> relu }]\n    z = relu(ys)", "relu takes no list of tensors", (10, 14)),
    ("ys = [for e in 0..2 { x -> relu }]\n    z = ys -> concat", "only a tensor can flow into a step", (10, 15)),
])  # fmt: skip
def test_misuse_is_a_located_error(body, message, where):
    with pytest.raises(SpecError) as info:
        modelc.compile_source(BRANCHES.format(body=body + "\n    output x"), "t.model")
    d = info.value.diagnostics[0]
    assert d.code in ("E0509", "E0506") and message in d.message, d.render()
    assert (d.span.line, d.span.col) == where, d.render()


def test_a_labelled_list_in_a_repeated_body_names_every_copy():
    text = BRANCHES.format(body="output x -> repeat 2 Mix(add(mix: [for e in 0..2 { x -> linear(3) }]), 4)")
    with pytest.raises(SpecError, match="defined twice"):
        modelc.compile_source(text, "t.model")
