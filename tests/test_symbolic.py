"""Symbolic dimensions (modelc.symbolic): canonical forms, subs(), and arithmetic that
agrees with Python's ints once every symbol has a value."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from modelc.ops.conv import conv_out
from modelc.symbolic import Sym, dim_str, is_known, subs, sym

B, H, W = sym("B"), sym("H"), sym("W")
NAMES = ("B", "H", "W")


# ---- canonical forms ------------------------------------------------------------------
def test_same_padding_conv_is_the_identity():
    assert (H + 2 - 2 - 1) // 1 + 1 == H
    assert conv_out(H, 3, 1, 1, 1) == H
    assert conv_out(H, 5, 1, 2, 1) == H
    assert conv_out(H, 3, 1, 2, 2) == H  # dilated 3x3 with padding 2
    assert conv_out(H, 1, 1, 0, 1) == H


def test_constants_come_back_as_ints():
    for d in (H - H, (H + 1) - H, H * 0, (2 * H) - H - H + 7, Sym.make({(): 4})):
        assert type(d) is int
    assert H - H == 0 and (H + 1) - H == 1
    assert is_known(3) and not is_known(H)


def test_terms_are_ordered_and_merged():
    assert H + W == W + H
    assert H * W == W * H
    assert 2 * H + 3 * H == 5 * H
    assert (H + 1) * (H - 1) == H * H - 1
    assert hash((H + 1) * (H - 1)) == hash(H * H - 1)
    assert H != W and H != 1 and H + 1 != H


@pytest.mark.parametrize(
    ("dim", "text"),
    [
        (H, "H"),
        (H - 1, "H - 1"),
        (-H, "-H"),
        (2 * H - 3 * W + 1, "2*H - 3*W + 1"),
        (H * W * 3, "3*H*W"),
        (conv_out(H, 3, 2, 1, 1), "floor((H + 1)/2)"),
        (conv_out(H, 7, 2, 3, 1), "floor((H + 1)/2)"),
        (conv_out(H, 2, 2, 0, 1), "floor((H)/2)"),
        ((H - 3) // 2, "floor((H + 1)/2) - 2"),
    ],
)
def test_text(dim, text):
    assert str(dim) == dim_str(dim) == text


def test_exact_division():
    assert (2 * H + 4) // 2 == H + 2
    assert (6 * H * W) // 3 == 2 * H * W
    assert (2 * H + 1) // 2 == H  # 0 <= 1 < 2: the remainder vanishes
    assert (4 * H - 1) // 4 == H - 1
    assert H // 1 is H


def test_strides_compose():
    # two stride-2 steps and one stride-4 step give one form (branches that meet in an add)
    two = conv_out(conv_out(H, 1, 2, 0, 1), 1, 2, 0, 1)
    four = conv_out(H, 1, 4, 0, 1)
    assert two == four
    assert H // 2 // 3 == H // 6
    assert conv_out(conv_out(H, 3, 2, 1, 1), 3, 2, 1, 1) == conv_out(H, 3, 4, 1, 1)
    # downsample path and main path of a ResNet block agree at any H
    assert conv_out(H, 3, 2, 1, 1) == conv_out(H, 1, 2, 0, 1)


def test_different_floors_stay_different():
    assert H // 2 != H // 3
    assert H // 2 != (H + 1) // 2
    assert 2 * (H // 2) != H  # only equal for even H


def test_symbols():
    assert (H * W + B).symbols == {"B", "H", "W"}
    assert ((H + W) // 2).symbols == {"H", "W"}


def test_subs():
    d = conv_out(H, 3, 2, 1, 1)
    assert subs(d, {"H": 224}) == 112
    assert subs(d, {"H": 7}) == 4
    assert subs(d, {}) == d
    assert subs(H * W, {"H": 3}) == 3 * W
    assert subs((H + W) // 2, {"H": 3}) == (W + 3) // 2
    assert str(subs((H + W) // 2, {"H": 3})) == "floor((W + 1)/2) + 1"
    assert subs(5, {"H": 1}) == 5
    assert type(subs(H * W, {"H": 2, "W": 3})) is int


def test_floordiv_rejects_non_positive_and_non_int():
    for bad in (0, -2, 2.0, H):
        with pytest.raises(TypeError):
            H // bad


# ---- properties: expression trees evaluated symbolically and with ints -------------------
leaves = st.one_of(st.integers(-6, 6), st.sampled_from(NAMES))


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(["+", "-", "*"]), children, children),
        st.tuples(st.just("//"), children, st.integers(1, 6)),
        st.tuples(st.just("neg"), children),
    )


trees = st.recursive(leaves, _extend, max_leaves=10)
envs = st.fixed_dictionaries({n: st.integers(-50, 50) for n in NAMES})


def build(tree, env):
    """Evaluate an expression tree with symbols bound by env (to Syms or to ints)."""
    if isinstance(tree, int):
        return tree
    if isinstance(tree, str):
        return env[tree]
    op, *args = tree
    if op == "neg":
        return -build(args[0], env)
    a = build(args[0], env)
    if op == "//":
        return a // args[1]
    b = build(args[1], env)
    return {"+": a + b, "-": a - b, "*": a * b}[op]


SYMS = {n: sym(n) for n in NAMES}


@settings(max_examples=300, deadline=None)
@given(trees, envs)
def test_substitution_agrees_with_python_ints(tree, env):
    # soundness of every canonical form, floors included (Python's // floors too)
    assert subs(build(tree, SYMS), env) == build(tree, env)


@settings(max_examples=150, deadline=None)
@given(trees, trees, trees)
def test_ring_laws(a, b, c):
    x, y, z = (build(t, SYMS) for t in (a, b, c))
    assert x + y == y + x
    assert x * y == y * x
    assert (x + y) + z == x + (y + z)
    assert (x * y) * z == x * (y * z)
    assert x * (y + z) == x * y + x * z
    assert x - x == 0 and x + 0 == x and x * 1 == x and x * 0 == 0
    neg = -x
    assert -neg == x
    assert hash((x + y) * z) == hash(z * x + y * z)


@settings(max_examples=150, deadline=None)
@given(trees, st.integers(1, 6), st.integers(-20, 20), envs)
def test_floordiv_pulls_out_constants(tree, den, k, env):
    x = build(tree, SYMS)
    assert (x + k * den) // den == x // den + k
    assert subs((x + k) // den, env) == (build(tree, env) + k) // den


@settings(max_examples=150, deadline=None)
@given(trees, trees, envs)
def test_equal_forms_are_equal_values(a, b, env):
    x, y = build(a, SYMS), build(b, SYMS)
    if x == y:
        assert build(a, env) == build(b, env)


@settings(max_examples=100, deadline=None)
@given(
    st.integers(1, 7),  # kernel
    st.integers(1, 4),  # stride
    st.integers(0, 3),  # padding
    st.integers(1, 3),  # dilation
    st.integers(1, 300),  # input size
)
def test_conv_out_matches_the_formula(k, s, p, d, size):
    expected = (size + 2 * p - d * (k - 1) - 1) // s + 1
    assert conv_out(size, k, s, p, d) == expected
    assert subs(conv_out(H, k, s, p, d), {"H": size}) == expected
