"""The graph IR: verify() catches broken invariants, replace_uses() rewires every kind of use,
and the topological order is deterministic (creation order breaks ties)."""

from __future__ import annotations

import heapq
import os
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelc import CompilerBug, ops
from modelc.diagnostics import SourceFile, Span
from modelc.driver import build_all
from modelc.infer import infer_node
from modelc.ir import Attrs, Container, Graph, Node
from modelc.load import load_text

SPAN = Span(SourceFile("<test>", "test\n"), 1, 1, 1, 5)

RESIDUAL = """\
block Res(width: int) {
    input x
    y = x -> conv1: conv(width, k=3, p=1) -> relu
    output relu(x + y)
}
model M {
    input image: [B, 8, 16, 16]
    a = image -> stem: conv(8, k=1) -> relu
    b = a -> block: Res(8)
    c = a -> sigmoid
    d = b -> tanh
    output concat(c, d), d
}
"""


def build(text: str = RESIDUAL) -> Graph:
    (graph,) = build_all(load_text(text, "test.model"))
    return graph


def named(graph: Graph) -> dict[str, int]:
    return graph.by_name()


# ---- handmade graphs ------------------------------------------------------------------------
def add_node(g: Graph, op: str, inputs: list, local: str, scope=(), **attrs) -> int:
    a, types, params, macs = infer_node(
        ops.REGISTRY[op], attrs, [g.type_of(r) for r in inputs], SPAN
    )
    return g.add(
        Node(op, a, scope, local, SPAN, types=types, params=params, macs=macs), inputs
    )


def small() -> tuple[Graph, dict[str, int]]:
    """x -> relu -> (sigmoid, tanh) -> add; outputs: the sum and the relu."""
    g = Graph("Small", SPAN)
    x = add_node(g, "input", [], "x", shape=("B", 4), dtype="float32")
    g.inputs.append(x)
    r = add_node(g, "relu", [(x, 0)], "relu")
    s = add_node(g, "sigmoid", [(r, 0)], "sigmoid")
    t = add_node(g, "tanh", [(r, 0)], "tanh")
    a = add_node(g, "add", [(s, 0), (t, 0)], "add")
    g.outputs = [("sum", (a, 0)), ("features", (r, 0))]
    g.verify()
    return g, {"x": x, "relu": r, "sigmoid": s, "tanh": t, "add": a}


# ---- verify ------------------------------------------------------------------------------------
def test_elaborated_graphs_verify():
    build().verify()
    small()[0].verify()


def test_verify_catches_a_cycle():
    g, n = small()
    g.g.add_edge(n["add"], n["relu"], port=1, out=0)
    with pytest.raises(CompilerBug, match="cycle"):
        g.verify()


def test_verify_catches_a_self_loop():
    g, n = small()
    g.g.add_edge(n["tanh"], n["tanh"], port=1, out=0)
    with pytest.raises(CompilerBug, match="cycle"):
        g.verify()


def test_verify_catches_duplicate_names():
    g, n = small()
    g.node(n["tanh"]).local = "sigmoid"
    with pytest.raises(CompilerBug, match="used twice"):
        g.verify()


def test_verify_catches_duplicate_names_in_blocks():
    g = build()
    ids = named(g)
    g.node(ids["block.relu_1"]).local = "relu"
    with pytest.raises(CompilerBug, match="'block.relu' used twice"):
        g.verify()


def test_verify_catches_a_missing_port():
    g, n = small()
    (key,) = [
        k
        for _, _, k, d in g.g.in_edges(n["add"], keys=True, data=True)
        if d["port"] == 0
    ]
    g.g.remove_edge(n["sigmoid"], n["add"], key)
    with pytest.raises(CompilerBug, match=r"input ports \[1\] are not 0..n-1"):
        g.verify()


def test_verify_catches_too_few_and_too_many_inputs():
    g, n = small()
    g.g.remove_edge(n["relu"], n["tanh"])
    with pytest.raises(CompilerBug, match="0 inputs for op tanh"):
        g.verify()
    g, n = small()
    g.g.add_edge(n["x"], n["tanh"], port=1, out=0)
    with pytest.raises(CompilerBug, match="2 inputs for op tanh"):
        g.verify()


def test_verify_catches_an_input_from_a_missing_output():
    g, n = small()
    g.g.remove_edge(n["relu"], n["tanh"])
    g.g.add_edge(n["relu"], n["tanh"], port=0, out=1)
    with pytest.raises(CompilerBug, match="missing output 1"):
        g.verify()


@pytest.mark.parametrize(
    "where", ["model output", "container input", "container output"]
)
def test_verify_catches_dangling_references(where):
    g = build()
    ids = named(g)
    block = g.containers[("block",)]
    if where == "model output":
        g.outputs[1] = ("d", (max(g.nodes()) + 100, 0))
    elif where == "container input":
        block.inputs[0] = ("x", (ids["stem"], 3))
    else:
        block.outputs[0] = ("out", (max(g.nodes()) + 100, 0))
    with pytest.raises(CompilerBug, match="dangling reference"):
        g.verify()


def test_verify_catches_a_removed_output_node():
    g, n = small()
    g.outputs = [("sum", (n["add"], 0))]
    g.remove(n["add"])
    with pytest.raises(CompilerBug, match="dangling reference"):
        g.verify()


def test_verify_catches_unknown_ops_scopes_types_and_no_outputs():
    g, n = small()
    g.node(n["tanh"]).op = "no_such_op"
    with pytest.raises(CompilerBug, match="unknown op 'no_such_op'"):
        g.verify()
    g, n = small()
    g.node(n["tanh"]).scope = ("nowhere",)
    with pytest.raises(CompilerBug, match="no container 'nowhere'"):
        g.verify()
    g, n = small()
    g.node(n["tanh"]).types = ()
    with pytest.raises(CompilerBug, match="no inferred type"):
        g.verify()
    g, _ = small()
    g.outputs = []
    with pytest.raises(CompilerBug, match="no outputs"):
        g.verify()


def test_verify_survives_python_O():
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]); import test_ir; from modelc import CompilerBug\n"
        "g, n = test_ir.small(); g.node(n['tanh']).local = 'sigmoid'\n"
        "try:\n    g.verify()\nexcept CompilerBug:\n    print('caught')\n"
    )
    proc = subprocess.run(
        [sys.executable, "-O", "-c", code, os.path.dirname(__file__)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.stdout.strip() == "caught", proc.stderr


def test_remove_refuses_a_node_with_users():
    g, n = small()
    with pytest.raises(CompilerBug, match="still has users"):
        g.remove(n["relu"])


# ---- replace_uses --------------------------------------------------------------------------------
def test_replace_uses_rewires_edges_and_outputs():
    g, n = small()
    new = add_node(g, "identity", [(n["x"], 0)], "identity")
    g.replace_uses((n["relu"], 0), (new, 0))
    assert g.inputs_of(n["sigmoid"]) == [(new, 0)]
    assert g.inputs_of(n["tanh"]) == [(new, 0)]
    assert g.outputs == [("sum", (n["add"], 0)), ("features", (new, 0))]
    assert g.users(n["relu"]) == []
    g.remove(n["relu"])
    g.verify()


def test_replace_uses_keeps_ports_and_parallel_edges():
    g = Graph("Twice", SPAN)
    x = add_node(g, "input", [], "x", shape=("B", 4), dtype="float32")
    g.inputs.append(x)
    r = add_node(g, "relu", [(x, 0)], "relu")
    t = add_node(g, "tanh", [(x, 0)], "tanh")
    a = add_node(g, "add", [(r, 0), (t, 0), (r, 0)], "add")  # r used at ports 0 and 2
    g.outputs = [("out", (a, 0))]
    g.verify()
    s = add_node(g, "sigmoid", [(x, 0)], "sigmoid")
    g.replace_uses((r, 0), (s, 0))
    assert g.inputs_of(a) == [(s, 0), (t, 0), (s, 0)]
    assert g.users(s) == [(a, 0, 0), (a, 2, 0)]
    g.remove(r)
    g.verify()


def test_replace_uses_moves_only_the_given_output_port():
    g = Graph("Ports", SPAN)
    src = g.add(Node("identity", Attrs(), (), "src", SPAN), [])
    u0 = g.add(Node("identity", Attrs(), (), "u0", SPAN), [(src, 0)])
    u1 = g.add(Node("identity", Attrs(), (), "u1", SPAN), [(src, 1)])
    new = g.add(Node("identity", Attrs(), (), "new", SPAN), [])
    g.outputs = [("a", (src, 0)), ("b", (src, 1))]
    g.replace_uses((src, 1), (new, 0))
    assert g.inputs_of(u0) == [(src, 0)]
    assert g.inputs_of(u1) == [(new, 0)]
    assert g.outputs == [("a", (src, 0)), ("b", (new, 0))]


def test_replace_uses_rewires_container_boundaries():
    g = build()
    ids = named(g)
    block = g.containers[("block",)]
    stem_relu = block.inputs[0][1]
    assert g.node(stem_relu[0]).name == "relu"  # the stem's relu feeds the block
    inner_out = block.outputs[0][1]
    assert g.node(inner_out[0]).name == "block.relu_1"

    # the stem's relu replaced by an identity of the conv before it
    new = add_node(g, "identity", [(ids["stem"], 0)], "identity")
    g.replace_uses(stem_relu, (new, 0))
    assert block.inputs == [("x", (new, 0))]
    assert g.inputs_of(ids["block.conv1"]) == [(new, 0)]
    assert g.inputs_of(ids["sigmoid"]) == [(new, 0)]

    # the block's last relu replaced by an identity of the sum before it
    (sum_ref,) = g.inputs_of(inner_out[0])
    new_out = add_node(g, "identity", [sum_ref], "identity", scope=("block",))
    g.replace_uses(inner_out, (new_out, 0))
    assert block.outputs == [("out", (new_out, 0))]
    assert g.inputs_of(ids["tanh"]) == [(new_out, 0)]  # the user outside the block too
    g.remove(inner_out[0])
    g.remove(stem_relu[0])
    g.verify()


def test_replace_uses_keeps_the_new_nodes_own_use():
    # Insert-after: the replacement reads the old value; that edge must stay, not loop.
    g, n = small()
    new = add_node(g, "identity", [(n["relu"], 0)], "identity")
    g.replace_uses((n["relu"], 0), (new, 0))
    assert g.inputs_of(new) == [(n["relu"], 0)]
    g.verify()


def test_replace_then_verify_after_a_pass_like_rewrite():
    # the usual pass shape: make the replacement from the old node's inputs, rewire, remove
    g = build()
    ids = named(g)
    tanh = ids["tanh"]
    (src,) = g.inputs_of(tanh)
    new = add_node(g, "sigmoid", [src], "sigmoid_new")
    g.replace_uses((tanh, 0), (new, 0))
    g.remove(tanh)
    g.verify()
    assert g.outputs[1] == ("d", (new, 0))
    concat = next(n for n in g.nodes() if g.node(n).op == "concat")
    assert g.inputs_of(concat)[1] == (new, 0)


# ---- topological order ---------------------------------------------------------------------------
def test_topo_is_creation_order_for_elaborated_graphs():
    g = build()
    assert g.topo() == sorted(g.nodes())
    assert [g.node(n).name for n in g.topo()] == [
        g.node(n).name for n in build().topo()
    ]


def test_topo_is_the_same_in_every_process():
    code = (
        "from modelc.driver import build_all; from modelc.load import load_text; import sys\n"
        "(g,) = build_all(load_text(sys.stdin.read(), 'test.model'))\n"
        "print(' '.join(g.node(n).name for n in g.topo()))\n"
    )
    outs = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        proc = subprocess.run(
            [sys.executable, "-c", code],
            input=RESIDUAL,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        outs.add(proc.stdout)
    assert len(outs) == 1


def test_topo_puts_a_node_added_later_before_its_users():
    g, n = small()
    new = add_node(g, "identity", [(n["x"], 0)], "identity")
    g.replace_uses((n["relu"], 0), (new, 0))
    order = g.topo()
    assert order.index(new) < order.index(n["sigmoid"]) < order.index(n["tanh"])
    assert order.index(n["relu"]) < order.index(n["sigmoid"])  # ties: lower id first


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 12).flatmap(
        lambda k: st.tuples(
            st.permutations(range(k)),
            st.lists(
                st.tuples(st.integers(0, k - 1), st.integers(0, k - 1)), max_size=3 * k
            ),
        )
    )
)
def test_topo_is_the_smallest_order_by_id(case):
    # random DAG: edges follow a random permutation, so ids are not in topological order
    rank, pairs = case
    k = len(rank)
    g = Graph("Random", SPAN)
    ids = [g.add(Node("identity", Attrs(), (), f"n{i}", SPAN), []) for i in range(k)]
    edges = {(a, b) if rank[a] < rank[b] else (b, a) for a, b in pairs if a != b}
    for port, (a, b) in enumerate(sorted(edges)):
        g.g.add_edge(ids[a], ids[b], port=port, out=0)
    order = g.topo()
    assert sorted(order) == sorted(ids)
    pos = {n: i for i, n in enumerate(order)}
    assert all(pos[ids[a]] < pos[ids[b]] for a, b in edges)
    # Kahn's algorithm taking the smallest ready id each time
    indeg = {n: g.g.in_degree(n) for n in ids}
    ready = [n for n in ids if indeg[n] == 0]
    heapq.heapify(ready)
    expected = []
    while ready:
        n = heapq.heappop(ready)
        expected.append(n)
        for _, v in g.g.out_edges(n):
            indeg[v] -= 1
            if indeg[v] == 0:
                heapq.heappush(ready, v)
    assert order == expected
    assert g.topo() == order


def test_container_records():
    g = build()
    assert set(g.containers) == {(), ("block",)}
    model = g.containers[()]
    assert model.kind == "model" and model.name == "M"
    assert [name for name, _ in model.outputs] == [name for name, _ in g.outputs]
    block = g.containers[("block",)]
    assert (
        isinstance(block, Container) and block.kind == "block" and block.name == "Res"
    )
    assert dict(block.args) == {"width": 8}
