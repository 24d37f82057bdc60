"""Units of code generation: identifiers (names.Namespace), literals (pyrepr) and line
layout (pyformat.render, which must produce what `ruff format` would)."""

from __future__ import annotations

import ast
import builtins
import keyword
import math
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from modelc import CompilerBug
from modelc.names import Namespace
from modelc.pyformat import LINE, CallExpr, flat, render
from modelc.pyrepr import comment, doc, literal
from modelc.symbolic import sym

RESERVED = frozenset({"self", "torch", "nn", "rt"})


# ---- names.Namespace ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("hint", "name"),
    [
        ("conv1", "conv1"),
        ("layer-1", "layer_1"),
        ("a b.c", "a_b_c"),
        ("1x1", "_1x1"),
        ("0", "_0"),
        ("class", "class_"),
        ("lambda", "lambda_"),
        ("None", "None_"),
        ("match", "match_"),  # soft keywords too
        ("type", "type_"),
        ("list", "list_"),  # builtins
        ("print", "print_"),
        ("__init__", "init_"),  # no dunders
        ("__call__", "call_"),
        ("", "v"),
        ("   ", "v"),
        ("café", "caf_"),  # ASCII identifiers only
        ("self", "self_1"),  # reserved names are taken from the start
        ("torch", "torch_1"),
    ],
)
def test_namespace_sanitizes(hint, name):
    assert Namespace(RESERVED).create(hint) == name


def test_namespace_makes_names_unique():
    ns = Namespace(RESERVED)
    assert [ns.create(h) for h in ["x", "x", "x", "x_1", "x-1", "X"]] == [
        "x",
        "x_1",
        "x_2",
        "x_1_1",
        "x_1_2",
        "X",
    ]
    assert ns.taken("x_2") and ns.taken("self") and not ns.taken("x_3")


def test_namespace_skips_suffixes_already_taken():
    ns = Namespace({"relu_1"})
    assert [ns.create("relu") for _ in range(3)] == ["relu", "relu_2", "relu_3"]


def test_attribute_namespace_keeps_labels():
    # `self.list`, `self.torch` and `self.match` are fine attributes: the spec's labels stay
    ns = Namespace(attributes=True)
    assert [ns.create(h) for h in ["list", "torch", "match", "print", "conv"]] == [
        "list",
        "torch",
        "match",
        "print",
        "conv",
    ]
    assert ns.create("class") == "class_"
    assert ns.create("__init__") == "init_"


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(max_size=12), min_size=1, max_size=20), st.booleans())
def test_namespace_names_are_valid_and_distinct(hints, attributes):
    ns = Namespace(RESERVED, attributes=attributes)
    names = [ns.create(h) for h in hints]
    assert len(set(names)) == len(names)
    for name in names:
        assert name.isidentifier() and name.isascii()
        assert not keyword.iskeyword(name)
        assert name not in RESERVED
        assert not (name.startswith("__") and name.endswith("__"))
        if not attributes:
            assert name not in dir(builtins)
            assert not keyword.issoftkeyword(name) or name == "_"
        ast.parse(f"{name} = 1\nself.{name} = {name}")


# ---- pyrepr.literal / comment / doc ---------------------------------------------------------
@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        2**63,
        -(2**100),
        1.5,
        -0.0,
        1e-300,
        1e300,
        5e-324,
        0.1,
        True,
        False,
        None,
        "",
        'say "hi"',
        "it's",
        '"\'"',
        "back\\slash",
        "tab\there",
        "new\nline",
        "nul\x00",
        "\r\n",
        "é",
        "名前",
        "😀",
        "\u2028",
        "\ud800",
        (),
        (1,),
        (1, 2.5, "x"),
        ((1, 2), (3,)),
        [1, [2, "3"]],
    ],
)
def test_literal_round_trips(value):
    text = literal(value)
    assert text.isascii() and "\n" not in text and "\r" not in text
    back = ast.literal_eval(text)
    assert back == value and type(back) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, back) == math.copysign(1, value)


def test_literal_of_non_finite_floats():
    assert literal(float("inf")) == 'float("inf")'
    assert literal(float("-inf")) == 'float("-inf")'
    assert literal(float("nan")) == 'float("nan")'
    assert eval(literal(float("-inf"))) == float("-inf")
    assert math.isnan(eval(literal(float("nan"))))
    assert literal((float("inf"), 1)) == '(float("inf"), 1)'


@pytest.mark.parametrize(
    "value",
    [
        {"a": 1},
        {1, 2},
        b"bytes",
        1j,
        object(),
        sym("B"),
        (1, object()),
        [{"x": 1}],
        print,
    ],
)
def test_literal_rejects_other_types(value):
    with pytest.raises(CompilerBug):
        literal(value)


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.lists(inner, max_size=4).map(tuple)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(values)
def test_literal_round_trips_any_value(value):
    text = literal(value)
    assert text.isascii() and "\n" not in text
    assert ast.literal_eval(text) == value


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_comment_and_doc_are_one_printable_line(text):
    for out in (comment(text), doc(text)):
        assert all(32 <= ord(ch) < 127 for ch in out)
    assert '"' not in doc(text)
    # the text survives after `#` and inside a docstring
    assert ast.parse(f'x = 1  # {comment(text)}\ndef f():\n    """{doc(text)}."""\n')


# ---- pyformat.render: the same layout as `ruff format` ---------------------------------------
def _ruff() -> list[str] | None:
    exe = Path(sys.executable).with_name("ruff")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("ruff")
    return [found] if found else None


RUFF = _ruff()
needs_ruff = pytest.mark.skipif(RUFF is None, reason="ruff is not installed")

identifiers = st.from_regex(r"[a-z][a-z0-9_]{0,18}", fullmatch=True).filter(
    lambda s: not keyword.iskeyword(s)
)
callees = st.one_of(
    identifiers,
    st.builds(
        lambda a, b: f"{a}.{b}",
        st.sampled_from(["nn", "torch", "self", "rt"]),
        identifiers,
    ),
)
atom_values = st.one_of(
    st.integers(-(10**6), 10**12),
    st.floats(-1e6, 1e6, allow_nan=False),
    st.booleans(),
    st.text(max_size=30),
)
atoms = st.one_of(
    identifiers,
    atom_values.map(literal),
    st.builds(lambda k, v: f"{k}={literal(v)}", identifiers, atom_values),
)
notes = (
    st.from_regex(r"[A-Za-z0-9_.:<>() -]{0,60}", fullmatch=True)
    .map(str.strip)
    .filter(bool)
)


def tuple_expr(prefix: str, items: list) -> CallExpr:
    """A tuple literal of 2+ items, as the emitter builds them (`stride=(2, 1)`, long weights)."""
    return CallExpr(prefix, [literal(x) for x in items], collection=True)


tuples = st.builds(
    tuple_expr,
    st.one_of(st.just(""), identifiers.map(lambda k: f"{k}=")),
    st.lists(
        st.one_of(st.integers(-999, 99999), st.floats(-10, 10, allow_nan=False)),
        min_size=2,
        max_size=30,
    ),
)


def _keyword(arg) -> str | None:
    m = re.match(r"([a-z_][a-z0-9_]*)=", arg if isinstance(arg, str) else arg.callee)
    return m.group(1) if m else None


def make_call(callee: str, items: list, forced: bool = False) -> CallExpr:
    """A valid call: positional arguments first, each keyword once; items are (arg, note) pairs
    when `forced` (a comment per argument, as on the emitter's sequences)."""
    items = items if forced else [(a, None) for a in items]
    seen: set[str] = set()
    positional, keywords = [], []
    for arg, note in items:
        key = _keyword(arg)
        if key is None:
            positional.append((arg, note))
        elif key not in seen:
            seen.add(key)
            keywords.append((arg, note))
    ordered = positional + keywords
    notes_ = [n for _, n in ordered] if forced and ordered else None
    return CallExpr(callee, [a for a, _ in ordered], notes_)


# Calls whose arguments carry comments sit only at the top or inside other such calls, as the
# emitter nests them (sequences inside sequences); `flat` would drop comments anywhere else.
plain_calls = st.recursive(
    atoms,
    lambda children: st.builds(
        make_call, callees, st.lists(st.one_of(children, tuples), max_size=6)
    ),
    max_leaves=16,
)
forced_calls = st.recursive(
    plain_calls,
    lambda children: st.builds(
        make_call,
        callees,
        st.lists(
            st.tuples(st.one_of(children, tuples), st.one_of(st.none(), notes)),
            min_size=1,
            max_size=4,
        ),
        st.just(True),
    ),
    max_leaves=6,
)


modules = plain_calls.filter(lambda e: isinstance(e, CallExpr))
pairs = st.builds(
    lambda name, e: CallExpr("", [literal(name), e]), identifiers, modules
)
prefixes = st.sampled_from(
    ["x = ", "self.conv1 = ", "out, h = ", "self.layer_with_a_rather_long_name = ", ""]
)


@st.composite
def statements(draw):
    # A call, or a name. (render leaves a long expression that is not a CallExpr as it is,
    # where ruff would wrap it in parentheses: the emitter gives every long form as a CallExpr.)
    e = draw(
        st.one_of(forced_calls.filter(lambda e: isinstance(e, CallExpr)), identifiers)
    )
    if (
        isinstance(e, CallExpr) and e.comments and draw(st.booleans())
    ):  # a named sequential
        e = CallExpr("rt.named_sequential", [draw(pairs) for _ in e.args], e.comments)
    return draw(prefixes), e, draw(st.one_of(st.none(), notes))


@st.composite
def signatures(draw):
    params = draw(st.lists(identifiers, max_size=8, unique=True))
    returns = draw(st.integers(1, 4))
    suffix = (
        " -> torch.Tensor:"
        if returns == 1
        else f" -> tuple[{', '.join(['torch.Tensor'] * returns)}]:"
    )
    return CallExpr(
        "def forward", ["self", *(f"{p}: torch.Tensor" for p in params)]
    ), suffix


def _source(signature, stmts) -> str:
    sig, suffix = signature
    lines = ["class M(nn.Module):", *render(sig, 4, suffix=suffix)]
    for prefix, e, note in stmts:
        lines += render(e, 8, prefix, comment=note)
    return "\n".join(lines) + "\n"


@needs_ruff
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(signatures(), st.lists(statements(), min_size=1, max_size=6))
def test_render_is_ruff_format_stable(tmp_path_factory, signature, stmts):
    source = _source(signature, stmts)
    event(
        "some lines split" if source.count("\n") > len(stmts) + 2 else "no line split"
    )
    path = tmp_path_factory.mktemp("fmt") / "generated.py"
    path.write_text(source)
    proc = subprocess.run(
        [
            *RUFF,
            "format",
            "--isolated",
            "--line-length",
            str(LINE),
            "--diff",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, (
        f"ruff format would change:\n{source}\n{proc.stdout}{proc.stderr}"
    )
    ast.parse(source)


def test_render_keeps_everything_and_fits():
    e = CallExpr(
        "nn.Conv2d",
        ["256", "512", "kernel_size=3", "stride=2", "padding=1", "bias=False"],
    )
    assert render(e, 8, "self.conv = ") == ["        self.conv = " + flat(e)]
    lines = render(
        e, 8, "self.conv = ", comment="resnet50.model:14 in a very long comment"
    )
    assert lines == [
        "        # resnet50.model:14 in a very long comment",
        "        self.conv = " + flat(e),
    ]
    long = CallExpr("nn.Sequential", [e, e, e])
    lines = render(long, 8, "self.seq = ")
    assert lines[0] == "        self.seq = nn.Sequential(" and lines[-1] == "        )"
    assert all(line.endswith(",") for line in lines[1:-1]) and len(lines) == 5
    assert all(len(line) <= LINE for line in lines)


def test_render_collections_split_one_item_per_line():
    e = CallExpr("nn.Foo", [tuple_expr("weight=", list(range(40)))])
    lines = render(e, 8, "self.foo = ")
    assert lines[1] == "            weight=("
    assert lines[2:-2] == [f"                {i}," for i in range(40)]
    assert textwrap.dedent("\n".join(lines)).startswith("self.foo = nn.Foo(")


# ---- regressions, end to end ---------------------------------------------------------------------
EDGE_NAMES = """\
model Edge {
    input x: [B, 4]
    __0__ = x -> list: linear(8) -> torch: relu
    branch_number_one_with_a_long_name = __0__ -> match: linear(8)
    branch_number_two_with_a_long_name = __0__ -> nn: linear(8)
    branch_number_three_with_a_long_name = __0__ -> print: linear(8)
    output concat(branch_number_one_with_a_long_name, branch_number_two_with_a_long_name,
                  branch_number_three_with_a_long_name, dim=1)
}
"""


def test_generated_names_and_layout_end_to_end(tmp_path):
    # labels that are builtins, soft keywords or module globals name their modules as written
    # (they were renamed in __init__ but not in forward); a binding `__0__` gave `0_ = ...`; a
    # long concat was one line over the limit
    torch = pytest.importorskip("torch")
    import modelc
    from modelc.verify import verify_module

    cls = modelc.load_source(EDGE_NAMES, "edge.model")
    verify_module(cls, cls.__modelc_graph__)
    keys = set(cls().state_dict())
    assert {"list.weight", "match.weight", "nn.weight", "print.weight"} <= keys
    assert cls()(torch.randn(2, 4)).shape == (2, 24)
    source = cls.__modelc_source__
    assert all(len(line) <= LINE for line in source.splitlines())
    if RUFF is not None:
        path = tmp_path / "edge.py"
        path.write_text(source)
        proc = subprocess.run(
            [
                *RUFF,
                "format",
                "--isolated",
                "--line-length",
                str(LINE),
                "--diff",
                str(path),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout
