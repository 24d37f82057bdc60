"""Fuzzing: random valid specs compile, check and run; random bad input ends in a SpecError.

Property tests (hypothesis) over the generators of tests/fuzzgen.py:
- generated specs (chains, residual `+`, `concat`, blocks with parameters, labelled and
  numbered sequences, repeat/for, conditionals, constants, layout steps such as permute,
  reshape and slices, tensor algebra: a - b, a / b, where, math, reductions over several
  dims, topk, one_hot ...) all check, compile to code that
  parses, have the output shapes and parameter count the generator predicted, and compile to
  the same bytes every time; a sample also runs in torch (`verify_module`);
- mutations of the zoo's specs and of generated ones (deleted, duplicated, swapped and replaced
  tokens, byte noise, huge numbers, deep nesting) end in success or a SpecError within a time
  limit: never another exception, a RecursionError or a hang; a mutant of a generated spec
  that compiles also runs in torch as predicted; the CLI returns 0 or 1 and prints no traceback;
- fixed hostile inputs (empty, binary, 10 MB files, deep nesting, huge numbers) likewise.

The regression tests at the end are inputs the fuzzers found; bench/fuzz.py runs the same
checks for hours without hypothesis's shrinking. Locally each run draws new examples; CI draws
the same ones every run (MODELC_HYPOTHESIS=ci, see tests/conftest.py).
"""

from __future__ import annotations

import ast
import contextlib
import io
import random
import signal
import time
from pathlib import Path

import fuzzgen
import modelc
import oracles
import sentinel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from modelc import cli
from modelc.diagnostics import SpecError
from modelc.driver import build_all
from modelc.load import load_text
from modelc.symbolic import subs

# Generated specs leave values unused by design (W0501, tested in test_errors.py).
pytestmark = pytest.mark.filterwarnings("ignore::modelc.SpecWarning")

TIME_LIMIT = 20  # seconds per case; generous for a loaded machine, far below a hang


def fuzz(examples: int) -> settings:
    return settings(max_examples=examples, deadline=None, suppress_health_check=list(HealthCheck),
                    print_blob=True)  # fmt: skip


SEEDS = fuzzgen.seed_texts()
SENTINEL = sentinel.Sentinel()  # one isolated worker process for the session (tests/sentinel.py)


class Hang(BaseException):
    """A case ran past TIME_LIMIT (a BaseException, so no `except Exception` swallows it)."""


@contextlib.contextmanager
def time_limit(seconds: float = TIME_LIMIT):
    def on_alarm(signum, frame):
        raise Hang(f"no result after {seconds} s")

    start = time.monotonic()
    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)
    # The alarm can land in code that swallows it (a gc callback): check the clock as well.
    assert time.monotonic() - start < seconds, f"took {time.monotonic() - start:.0f} s"


def outcome(text: str, path: str = "fuzz.model") -> str:
    """'ok' or the first SpecError code; anything else fails the test."""
    with time_limit():
        try:
            ast.parse(modelc.compile_source(text, path))
            return "ok"
        except SpecError as exc:
            assert exc.diagnostics and exc.render()
            return exc.diagnostics[0].code


def dims(graph, ref, symbols: dict) -> tuple:
    """A type's sizes with the generator's values for symbolic input sizes (the batch stays a name)."""
    return tuple(d if isinstance(d, int) else str(d) for d in (subs(d, symbols) for d in graph.type_of(ref).dims))


def check_generated(spec: fuzzgen.GeneratedSpec, path: str = "gen.model") -> str:
    """Compile a generated spec; compare with the generator's predictions; return the source."""
    with time_limit():
        graphs = build_all(load_text(spec.text, path))
        source = modelc.compile_source(spec.text, path)
    assert len(graphs) == 1
    graph = graphs[0]
    assert graph.name == spec.model
    assert [dims(graph, ref, spec.symbols) for _, ref in graph.outputs] == spec.outputs
    assert graph.num_params() == spec.params
    oracles.check_bytes(source, SENTINEL)  # ASCII, UTF-8 by its cookie, compiles, inert on import
    return source


# ---- generated valid specs ------------------------------------------------------------------
@fuzz(150)
@given(st.randoms(use_true_random=False))
def test_generated_specs_compile_as_predicted(r):
    spec = fuzzgen.generate(r)
    source = check_generated(spec)
    assert modelc.compile_source(spec.text, "gen.model") == source, "compiling twice gave other bytes"


@fuzz(12)
@given(st.randoms(use_true_random=False))
def test_generated_specs_run(r):
    pytest.importorskip("torch")
    spec = fuzzgen.generate(r, size=r.choice([3, 6, 10]))
    assert run_in_torch(spec.text)["params"] == spec.params


# The tensor algebra the generator writes (tests/fuzzgen_algebra.py): the property tests above
# draw few examples, so these two make sure every op comes up, and runs, on fixed seeds.
ALGEBRA_OPS = {"sub", "mul", "div", "pow", "compare", "neg", "where", "arith", "scale", "exp", "log", "sqrt", "rsqrt",
               "sin", "cos", "abs", "clamp", "mean", "sum", "amax", "var", "silu", "mish", "softplus", "glu",
               "rms_norm", "layer_norm", "rotary", "stochastic_depth", "topk", "argmax", "one_hot"}  # fmt: skip


def _algebra_graphs(seeds: range):
    """(spec, graph, the algebra it holds: op names, and forms such as "mean over 2 dims")."""
    for seed in seeds:
        spec = fuzzgen.generate(random.Random(seed), size=6)
        graph = build_all(load_text(spec.text, "gen.model"))[0]
        found = set()
        for node in (graph.node(n) for n in graph.nodes()):
            found |= {node.op} & ALGEBRA_OPS
            if node.op == "layer_norm" and node.attrs["dim"] != -1:
                found.add("layer_norm over another dim")
            if node.op in ("mean", "sum", "amax", "var") and isinstance(node.attrs["dim"], tuple):
                found |= {"reduction over several dims"} if len(node.attrs["dim"]) > 1 else set()
                found |= {"reduction keeping dims"} if node.attrs["keepdim"] else set()
        yield spec, graph, found


def test_generator_draws_every_tensor_algebra_op():
    want = ALGEBRA_OPS | {"layer_norm over another dim", "reduction over several dims", "reduction keeping dims"}
    seen: set = set()
    for _, _, found in _algebra_graphs(range(400)):
        seen |= found
        if seen == want:
            break
    assert seen == want, f"never drawn: {sorted(want - seen)}"


def test_generated_tensor_algebra_runs():
    """Specs rich in it run in torch as predicted, and as the reference interpreter computes."""
    pytest.importorskip("torch")
    ran = 0
    for spec, graph, ops in _algebra_graphs(range(1000, 1400)):
        if len(ops) >= 4 and fuzzgen.runnable(graph):
            assert run_in_torch(spec.text)["params"] == spec.params
            ran += 1
        if ran == 4:
            break
    assert ran == 4


def test_compiling_is_deterministic_across_specs():
    """No state leaks from one compilation into the next: A, B, A gives A's bytes twice."""
    a, b = (fuzzgen.generate(random.Random(seed)) for seed in (11, 12))
    first = modelc.compile_source(a.text, "a.model")
    modelc.compile_source(b.text, "b.model")
    assert modelc.compile_source(a.text, "a.model") == first


# ---- mutations ----------------------------------------------------------------------------------
def _seed(r: random.Random) -> tuple[str, str]:
    if r.random() < 0.3:
        return "gen.model", fuzzgen.generate(r, size=r.choice([3, 6])).text
    name, text = r.choice(SEEDS)
    return name, text


@fuzz(250)
@given(st.randoms(use_true_random=False))
def test_mutated_specs_end_in_spec_errors(r):
    name, text = _seed(r)
    mutant = fuzzgen.mutate(r, text)
    if outcome(mutant, str(fuzzgen.ROOT / "specs" / name)) == "ok" and name == "gen.model":
        run_in_torch(mutant, nonfinite_ok=True)  # accepted, so it must run as the IR says


def run_in_torch(text: str, nonfinite_ok: bool = False) -> dict | None:
    """verify_module on a spec's class; None when torch is missing or, for a mutant, when it
    cannot run here or its output overflows to inf, as a spec may (scale(1e308))."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return None
    from modelc.verify import verify_module

    with time_limit():
        graph = build_all(load_text(text, "gen.model"))[0]
        if nonfinite_ok and not fuzzgen.runnable(graph):  # a mutant too large, or too small at H=16
            return None
        result = verify_module(modelc.load_source(text, "gen.model"), graph)
        if result["nonfinite"] and not nonfinite_ok:
            raise AssertionError(f"non-finite outputs {result['nonfinite']} for:\n{text}")
        return None if result["nonfinite"] else result


@fuzz(20)
@given(r=st.randoms(use_true_random=False))
def test_cli_check_never_prints_a_traceback(tmp_path_factory, r):
    name, text = _seed(r)
    path = tmp_path_factory.mktemp("cli") / name
    path.write_text(fuzzgen.mutate(r, text), encoding="utf-8")
    rc, out = run_cli(["check", str(path)])
    assert rc in (0, 1), out
    assert "Traceback" not in out and "internal error" not in out, out


def run_cli(argv: list[str]) -> tuple[int, str]:
    buf = io.StringIO()
    with time_limit(), contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = cli.main(argv)
    return rc, buf.getvalue()


# ---- fixed hostile input --------------------------------------------------------------------------
@pytest.mark.parametrize("name,text", fuzzgen.hostile_texts(3000), ids=lambda v: str(v)[:20])
def test_hostile_text(name, text, tmp_path):
    path = tmp_path / "fuzz.model"  # written, so that `import "fuzz.model"` is a real cycle
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    outcome(text, str(path))


@pytest.mark.parametrize("kind", ["empty", "binary", "latin1", "10MB", "10MB of layers", "directory"])
def test_hostile_files_through_the_cli(kind, tmp_path):
    path = tmp_path / "spec.model"
    data = {
        "empty": b"",
        "binary": bytes(random.Random(1).randrange(256) for _ in range(4096)),
        "latin1": "model M { input x: [B, 3]  output x } # caf\xe9".encode("latin-1"),
        "10MB": b"# " + b"x" * (10 * 1024 * 1024),
        "10MB of layers": b"model M { input x: [B, 3]  output x" + b" -> relu" * (10 * 1024 * 1024 // 8) + b" }",
    }.get(kind)
    if data is None:
        path.mkdir()
    else:
        path.write_bytes(data)
    rc, out = run_cli(["check", str(path)])
    assert rc == 1, out
    assert "Traceback" not in out and "error[E" in out, out


# ---- every attribute of every op at extreme values ---------------------------------------------------
OPS = sorted(name for name, op in modelc.ops.REGISTRY.items() if not op.internal)


def _base_call(op: str) -> str | None:
    for text in fuzzgen.op_base_calls(op):
        with contextlib.suppress(SpecError):
            modelc.compile_source(text, "attrs.model")
            return text
    return None


# Ops whose inputs the generic one-input call cannot supply (two tensors of related shapes, an
# index tensor, no input at all): the zoo and tests/test_shapes.py cover their attributes.
NO_GENERIC_CALL = {"bahdanau_decoder", "masked_fill", "parameter", "relative_coords_table",
                   "relative_position_index"}


@pytest.mark.parametrize("op", OPS)
def test_attributes_at_extreme_values(op):
    """0, -1, 2**31, 2**63 - 1, 1e308, 1e-300, strings, lists ... for each attribute in turn:
    a SpecError or a module; and a module that compiles with a small value runs in torch (a huge
    one may legitimately need more memory than there is: max_len=2**31 - 1)."""
    base = _base_call(op)
    if op in NO_GENERIC_CALL:  # kept honest: if a generic call starts to work, fuzz it
        assert base is None, f"{op} now compiles from a generic call: drop it from NO_GENERIC_CALL"
        return
    assert base is not None, f"no simple call of {op} compiles; fix fuzzgen.op_base_calls"
    ran = 0
    for value, text in fuzzgen.op_attr_variants(op, base):
        accepted = outcome(text, "attrs.model") == "ok"
        if accepted and value in fuzzgen.SMALL_EXTREMES and ran < 2:  # two runs an op keep it quick
            ran += run_in_torch(text, nonfinite_ok=True) is not None


# ---- regressions: inputs the fuzzers found ------------------------------------------------------
@pytest.mark.parametrize("text", [
    # emit.py ordered a block call before the layer computing its input when the block
    # passes that input through (no node inside it reads it): KeyError in _call_stmt.
    "block P { input x  output x }\nmodel M { input x: [B, 3]  output x -> relu -> P }",
    "block P { input x  output x, x }\nmodel M { input x: [B, 3]\n  a, b = P(x -> relu)\n  output b }",
    "block Q { input x  input y  output x -> relu }\nmodel M { input x: [B, 3]\n  output Q(x, x -> tanh) }",
    ("block C(f: bool) { input x  output x if f else x -> relu }\n"
     "model M { input x: [B, 3, 4]  output x -> conv(4) -> C(true) }"),
])  # fmt: skip
def test_regression_passthrough_blocks_compile(text):
    assert outcome(text) == "ok"


@pytest.mark.parametrize("text,code", [
    # Accepted, then failed in torch: circular padding wider than the input wraps twice.
    ('model M { input x: [B, 3, 4, 4]  output x -> pad(5, mode="circular") }', "E0404"),
    # Accepted, then failed in torch: an upsampled size of 0.
    ("model M { input x: [B, 3, 4, 4]  output x -> upsample(0.1) }", "E0303"),
    # Accepted, then failed in torch: batch norm with a negative eps (or 0, in training).
    ("model M { input x: [B, 3, 4]  output x -> batchnorm(eps=-0.001) }", "E0404"),
    # Accepted, then failed in torch: instance norm over a single spatial element.
    ("model M { input x: [B, 4, 1]  output x -> instance_norm }", "E0301"),
    # Wrong shapes: with ceil=true torch drops a last window that starts in the padding, which
    # depends on the size (here its parity); a symbolic size was given floor(H/2) + 1 (9 at 16; torch: 8).
    ("model M { input x: [B, 3, H, W]  output x -> maxpool(1, s=2, ceil=true) }", "E0304"),
    ("model M { input x: [B, 3, T]  output x -> avgpool(2, s=2, p=1, ceil=true) }", "E0304"),
    # VisitError (a RecursionError in the parse tree's transformer) instead of a SpecError.
    ("model M { input x: [B, 3]  output x -> " + "repeat 1 " * 3000 + "relu }", "E0508"),
    ("model M { input x: [B, 3]  output " + "x if true else " * 3000 + "x }", "E0508"),
    # OverflowError: int() of an infinite upsampled size (1e308, now refused as beyond float32).
    ("model M { input x: [B, 3, 4, 4]  output x -> upsample(1e38) }", "E0508"),
    # MemoryError (or minutes of swapping): a split into as many outputs as the size says.
    ("model M { input x: [B, 2000000000]  a = x -> unbind(1)  output x }", "E0508"),
    ("model M { input x: [B, 2000000000]  a = x -> split(1)  output x }", "E0508"),
    ("model M { input x: [B, 2000000000]  a = x -> chunk(1000000000)  output x }", "E0508"),
    # Accepted, then failed in torch: integer attributes beyond 32 bits, float32 overflow,
    # a recurrent dropout over 1.
    ("model M { input x: [B, 4, 8, 8]  output x -> maxpool(2, s=2147483648) }", "E0508"),
    ("model M { input x: [B, 4, 8, 8]  output x -> slice(1, 0, 2, step=9223372036854775807) }", "E0508"),
    ("model M { input x: [B, 4, 8, 8]  output x -> elu(alpha=1e308) }", "E0404"),
    ("model M { input x: [B, 4, 8, 8]  output x -> pad(2, value=-1e39) }", "E0404"),
    ("model M { input x: [B, 4, 8]  output x -> lstm(2, layers=2, dropout=2) }", "E0404"),
    # TypeError: an integer divided by a symbol (`3 // H`: int has no // for Sym).
    ("model M { input x: [B, 3 // H, 16]  output x }", "E0506"),
    # MemoryError: the parameter count of stacked recurrent layers built a list of `layers` items.
    ("model M { input x: [B, 5, 8]  output x -> lstm(16, layers=4294967296) }", "E0508"),
    # OverflowError: int() of an infinite float literal.
    ("model M { input x: [B, 3, int(1e999)]  output x }", "E0508"),
    # VisitError (ValueError: int() refuses 4,300 digits or more) instead of a SpecError.
    ("model M { input x: [B, 3]  output x -> linear(" + "9" * 5000 + ") }", "E0508"),
])  # fmt: skip
def test_regression_rejected_before_torch_fails(text, code):
    assert outcome(text) == code


@pytest.mark.parametrize("text", [
    # A spec variable named `_` (or `__`) took the name emit gives the outputs it discards:
    # `_, _ = self.self_attention(...)` left None in it (AttributeError in forward).
    "model M { input x: [B, 4, 8]\n  _ = x -> self_attention(2) -> log_softmax(1)\n  output _ }",
    "model M { input _: [B, 4, 8]\n  y = _ -> lstm(8)\n  output y + (_ -> linear(8)) }",
    "model M { input x: [B, 4, 8]\n  __ = x -> gru(8, state=true)\n  output __[0] }",
    # A symbolic size with ceil=true where the last-window rule cannot apply keeps its floor form.
    "model M { input x: [B, 3, H, W]  output x -> maxpool(3, s=2, ceil=true) -> maxpool(3, s=2, p=1, ceil=true) }",
    # unsqueeze in a numbered sequence was emitted as nn.Unflatten(1, (1,)), which torch rejects.
    "model M { input x: [B, 8, 6, 6]  output x -> s: (unsqueeze(1) -> relu) }",
    "model M { input x: [B, 8, 6, 6]  output x -> s: (unsqueeze(-1) -> relu) }",
    "model M { input x: [B, 8, 6]  output x -> s: (unsqueeze(2) -> relu) }",
    # A block returning its input as a second output: `out0, out0 = self.p(out0)` (the first
    # output reused the dead input's name, the second is that input), so out0 was the input.
    "block P { input x  output x -> linear(5), x }\nmodel M { input x: [B, 3]\n  out0 = x -> relu\n"
    "  a, b = P(out0)\n  output a }",
    "block P { input x  output x, x -> linear(5), x }\nmodel M { input x: [B, 3]\n  out1 = x -> relu\n"
    "  a, b, c = P(out1)\n  output b }",
    # Valid for L >= 11 only; verify ran it at L=16, where the pad's input is 4 (RuntimeError:
    # padding wraps around more than once). Ops now state such run-time requirements.
    'model M { input x: [B, 8, L]  output x -> conv(4, k=3, s=2, p=1) -> conv(4, k=3, s=2, p=1) -> pad(11, mode="circular") }',
])  # fmt: skip
def test_regression_modules_run(text):
    pytest.importorskip("torch")
    run_in_torch(text)


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_regression_endless_file_is_refused():
    # `import "/dev/zero"` read without end (the file reports size 0): MemoryError or a hang.
    # Once bounded (E0508); now a device is not read at all: only regular files are specs.
    text = 'import "/dev/zero"\nmodel M { input x: [B, 3]  output x }'
    assert outcome(text, "/tmp/m.model") == "E0104"
    rc, out = run_cli(["check", "/dev/zero"])
    assert rc == 1 and "E0104" in out, out


# ---- the oracles of tests/oracles.py on generated cases (bench/fuzz.py runs them at length) ------
@fuzz(15)
@given(st.randoms(use_true_random=False))
def test_several_models_in_one_file_keep_their_classes(r):
    """A copy of the model named like a generated block class (`Unit_1`): each model loads as
    its own class with its own parameters (fault 4)."""
    spec = fuzzgen.generate(r, size=r.choice([3, 6]))
    made = oracles.with_second_model(r, spec.text, spec.model, modelc.compile_source(spec.text, "gen.model"))
    if made is not None:
        text, names = made
        oracles.check_bytes(modelc.compile_source(text, "gen.model"), SENTINEL)
        oracles.check_models(text, names, run=r.random() < 0.3)


@fuzz(10)
@given(st.randoms(use_true_random=False))
def test_repeated_loads_keep_their_own_source(r):
    """Loads of one path with other parameters: each class's source is its own (fault 5)."""
    pytest.importorskip("torch")
    text = ("model M(act: bool = true, w: int = 4) {\n  input x: [B, 8]\n"
            "  y = x -> fc: linear(w)\n  output y -> relu if act else y -> tanh\n}")  # fmt: skip
    overrides = [{"act": r.random() < 0.5, "w": r.choice([2, 4, 8])} for _ in range(3)] + [{}]
    assert oracles.check_reloads(text, overrides, run=True) == 4


@fuzz(40)
@given(st.randoms(use_true_random=False))
def test_line_breaks_in_comments_read_as_a_person_reads_them(r):
    """Every Unicode line break and control character after a comment: the code of the text a
    person's editor shows, or an error on that line (fault 6)."""
    variant, reference, line = oracles.line_break_case(r, fuzzgen.generate(r, size=r.choice([3, 6])).text)
    try:
        got = modelc.compile_source(variant, "gen.model")
    except SpecError as exc:
        try:
            modelc.compile_source(reference, "gen.model")
        except SpecError:
            return
        assert exc.diagnostics[0].span is not None and exc.diagnostics[0].span.line == line, exc.render()
        return
    assert got == modelc.compile_source(reference, "gen.model")


@pytest.mark.parametrize("name,text", oracles.growth_texts(random.Random(3)), ids=lambda v: str(v)[:20])
def test_growth_ends_in_a_limit_error(name, text):
    assert outcome(text, "grow.model") == "E0508"


@pytest.mark.parametrize("index", range(len(oracles.import_cases("/nonexistent"))))
def test_imports_of_files_that_are_not_specs(index, tmp_path):
    """FIFOs, devices, folders and system files: a quick SpecError that echoes none of them."""
    name, text, secrets = oracles.import_cases(str(tmp_path))[index]
    with time_limit(10), pytest.raises(SpecError) as info:
        modelc.compile_source(text, str(tmp_path / "imports.model"))
    shown = info.value.render()
    assert not [s for s in secrets if s in shown], f"{name}: the error echoes the file"
