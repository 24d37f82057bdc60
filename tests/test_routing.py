"""Indexing ops of routing (compiler/ops/routing.py, layout.py): gather, scatter_add, index_select
with ids of any shape, and expand.

Each case is checked against torch called directly (the oracle): the generated module's output,
the reference interpreter's (modelc.interpret), and the IR's shape and element type against what
torch returns. Refusals are located at the call and name the rule torch would break.
"""

from __future__ import annotations

import modelc
import pytest
from modelc import verify
from modelc.diagnostics import SpecError
from modelc.interpret import run_graph
from modelc.symbolic import subs

torch = pytest.importorskip("torch")

INPUTS = """input x: [B, 5, 6]
    input table: [10, 4]
    input ids: int64[B, 5, 3]
    input tok: int64[B, 7]
    input src: [B, 5, 3]
    input n: int64[B, 5, 6]"""


def data(seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    return {
        "x": torch.randn(2, 5, 6, generator=g),
        "table": torch.randn(10, 4, generator=g),
        "ids": torch.randint(0, 5, (2, 5, 3), generator=g),  # below the sizes 5, 6 and 10 they index
        "tok": torch.randint(0, 6, (2, 7), generator=g),  # below 6 and 10
        "src": torch.randn(2, 5, 3, generator=g),
        "n": torch.randint(-9, 10, (2, 5, 6), generator=g),
    }


CASES = [
    ("gather(x, ids, 2)", lambda d: torch.gather(d["x"], 2, d["ids"])),
    ("gather(x, ids, -1)", lambda d: torch.gather(d["x"], -1, d["ids"])),
    ("x -> gather(ids, 1)", lambda d: torch.gather(d["x"], 1, d["ids"])),  # ids smaller than x in dim 2
    ("gather(n, ids, 2)", lambda d: torch.gather(d["n"], 2, d["ids"])),  # int64 data stays int64
    ("gather(x, slice(ids, 1, 0, 2), 1)", lambda d: torch.gather(d["x"], 1, d["ids"][:, :2])),
    ("scatter_add(x, ids, src, 2)", lambda d: torch.scatter_add(d["x"], 2, d["ids"], d["src"])),
    ("scatter_add(x, ids, src, 1)", lambda d: torch.scatter_add(d["x"], 1, d["ids"], d["src"])),  # repeats add
    ("scatter_add(x, slice(ids, 2, 0, 2), src, 1)",  # src larger than the ids: its first entries
     lambda d: torch.scatter_add(d["x"], 1, d["ids"][..., :2], d["src"])),
    ("scatter_add(n, ids, ids, -1)", lambda d: torch.scatter_add(d["n"], -1, d["ids"], d["ids"])),
    ("index_select(table, tok)", lambda d: d["table"][d["tok"]]),  # an embedding lookup: [B, 7, 4]
    ("index_select(table, ids, dim=0)", lambda d: d["table"][d["ids"]]),  # [B, 5, 3, 4]
    ("index_select(x, ids, dim=1)", lambda d: d["x"][:, d["ids"]]),  # [B, B, 5, 3, 6]
    ("index_select(x, tok, dim=-1)", lambda d: d["x"][..., d["tok"]]),  # [B, 5, B, 7]
    ("index_select(x, select(tok, 0, 0), dim=2)", lambda d: d["x"][:, :, d["tok"][0]]),  # 1-d ids
    ("tok -> unsqueeze(-1) -> expand([B, 7, 3])", lambda d: d["tok"].unsqueeze(-1).expand(2, 7, 3)),
    ("src -> expand([4, B, 5, 3])", lambda d: d["src"].expand(4, 2, 5, 3)),
    ("slice(x, 2, 0, 1) -> expand([-1, -1, 9])", lambda d: d["x"][..., :1].expand(-1, -1, 9)),
]


def run(expr: str):
    """(module output, interpreter output, IR type) of `output <expr>` over INPUTS."""
    text = f"model M {{\n    {INPUTS}\n    output {expr}\n}}\n"
    cls = modelc.load_source(text, "t.model")
    graph = cls.__modelc_graph__
    d = data()
    args = [d[graph.node(n).local] for n in graph.inputs]
    with torch.no_grad():
        got = cls()(*args)
    return got, run_graph(graph, {}, args)[0], graph.type_of(graph.outputs[0][1])


@pytest.mark.parametrize("expr, oracle", CASES, ids=[c[0] for c in CASES])
def test_module_and_interpreter_equal_torch(expr, oracle):
    got, interpreted, ir = run(expr)
    want = oracle(data())
    for value in (got, interpreted):
        assert value.dtype == want.dtype and value.shape == want.shape, (value.dtype, value.shape, want.shape)
        assert torch.equal(value, want) if not want.is_floating_point() else torch.allclose(value, want, atol=1e-6)
    assert [subs(d, {"B": 2}) for d in ir.dims] == list(want.shape)
    assert ir.dtype == str(want.dtype).removeprefix("torch.")


@pytest.mark.parametrize("expr, code", [
    ("gather(x, ids, -1)", "torch.gather(x, 2, ids)"),
    ("scatter_add(x, ids, src, 1)", "torch.scatter_add(x, 1, ids, src)"),
    ("index_select(table, select(tok, 0, 0))", "torch.index_select(table, 0, select)"),
    ("index_select(table, tok)", "torch.index_select(table, 0, tok.flatten()).unflatten(0, tok.shape)"),
    ("tok -> unsqueeze(-1) -> expand([B, 7, 3])", "out = out.expand(-1, -1, 3)"),
])  # fmt: skip
def test_emitted_code_reads_as_torch(expr, code):
    source = modelc.compile_source(f"model M {{\n    {INPUTS}\n    output {expr}\n}}\n", "t.model")
    assert code in source


REFUSALS = [
    ("gather(x, tok, 1)", "E0305", "gather needs ids of the rank of x [B, 5, 6] (3), got 2-d ids"),
    ("gather(x, x, 1)", "E0506", "gather needs int64 ids, got a float32 tensor"),
    ("gather(x, short, 1)", "E0506", "gather needs int64 ids, got a int32 tensor"),
    ("gather(x, wide, 1)", "E0301", "the ids [B, 5, 9] are larger than x [B, 5, 6] in dim 2 (9 > 6)"),
    ("gather(x, long, 2)", "E0301", "the ids [B, T, 3] and x [B, 5, 6] differ in dim 1 (T vs 5)"),
    ("gather(x, ids, 3)", "E0404", "gather: dim 3 is out of range for a rank-3 tensor"),
    ("scatter_add(x, ids, ids, 2)", "E0506", "scatter_add adds src to x of the same type"),
    ("scatter_add(x, ids, slice(src, 2, 0, 2), 2)", "E0301", "larger than src [B, 5, 2] in dim 2 (3 > 2)"),
    ("scatter_add(x, ids, src)", "E0403", "scatter_add needs attribute 'dim'"),
    ("scatter_add(x, 1, ids, src)", "E0509", "a tensor cannot be an attribute of scatter_add"),
    ("index_select(x, src, dim=1)", "E0506", "index_select needs int64 or int32 ids, got a float32 tensor"),
    ("index_select(x, select(select(tok, 0, 0), 0, 0))", "E0305", "index_select needs ids of at least one dimension"),
    ("x -> expand([B, 5])", "E0404", "expand: 2 sizes for the 3 dimensions of [B, 5, 6]"),
    ("x -> expand([B, 7, 6])", "E0301", "dimension 1 of [B, 5, 6] is 5, and only a size of 1 expands (to 7)"),
    ("x -> expand([-1, B, 5, 6])", "E0404", "sizes must be positive, or -1 for a dimension of x"),
    ("x -> expand([B, 5, 0])", "E0404", "sizes must be positive"),
    ("slice(x, 2, 0, 1) -> expand([B, 5, T])", "E0304", "expand: size T cannot be computed from the sizes"),
]


@pytest.mark.parametrize("expr, code, message", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_what_torch_refuses_is_refused_here(expr, code, message):
    text = (f"model M {{\n    {INPUTS}\n    input short: int32[B, 5, 3]\n    input wide: int64[B, 5, 9]\n"
            f"    input long: int64[B, T, 3]\n    output {expr}\n}}\n")  # fmt: skip
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, "t.model")
    d = info.value.diagnostics[0]
    assert (d.code, d.span.line) == (code, 11), d.render()
    assert message in d.message, d.render()


def test_ids_smaller_than_a_symbolic_size_are_a_requirement_that_verify_meets():
    """ids [B, 3, 2] may index x [B, T, 6] only where T >= 3: compiled, and --verify picks such a T;
    with T = 2 known, refused."""
    text = "model M {{\n    input x: [B, {t}, 6]\n    input ids: int64[B, 3, 2]\n    output gather(x, ids, 2)\n}}\n"
    cls = modelc.load_source(text.format(t="T"), "t.model")
    graph = cls.__modelc_graph__
    assert verify.sizes(graph, 2)["T"] >= 3
    verify.verify_module(cls, graph)  # ids drawn below 6, the size gather indexes
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text.format(t=2), "t.model")
    d = info.value.diagnostics[0]
    assert d.code == "E0301" and "larger than x [B, 2, 6] in dim 1 (3 > 2)" in d.message and d.span.line == 4


def test_ids_from_a_model_input_are_drawn_in_range_by_verify():
    cls = modelc.load_source(f"model M {{\n    {INPUTS}\n    output gather(x, ids, 1), scatter_add(x, ids, src, 1), "
                             "index_select(table, tok), index_select(x, tok, dim=2)\n}\n", "t.model")  # fmt: skip
    verify.verify_module(cls, cls.__modelc_graph__)


def test_gather_makes_a_new_tensor_from_strided_ids():
    """Expanded (stride 0) or transposed ids: torch.gather's result is contiguous, so a view follows."""
    text = ("model M {\n    input x: [B, 6, 6]\n    input ids: int64[B, 6, 4]\n"
            "    a = gather(x, ids -> slice(2, 0, 1) -> expand([B, 6, 6]), 1) -> view([B, 36])\n"
            "    output a, gather(x, ids -> transpose(1, 2), 2) -> view([B, 24])\n}\n")  # fmt: skip
    cls = modelc.load_source(text, "t.model")
    verify.verify_module(cls, cls.__modelc_graph__)
