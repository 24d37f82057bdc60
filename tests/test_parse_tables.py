"""The parser tables shipped in modelc.grammar.tables (NOTE: [Parser tables] in parse.py):
current for the grammar, used when they fit, ignored when they do not."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import lark
import pytest
from lark import Lark

from modelc import parse
from modelc.diagnostics import SpecError
from modelc.grammar import tables

ROOT = Path(__file__).resolve().parent.parent
SPECS = sorted((ROOT / "specs").glob("*.model"))
same_lark = pytest.mark.skipif(
    tables.LARK_VERSION != lark.__version__,
    reason=f"tables written by Lark {tables.LARK_VERSION}, Lark {lark.__version__} installed: "
    "run scripts/gen_parser_tables.py",
)


@pytest.fixture
def fresh_parser():
    """`parse._parser` computed anew in the test, and again after it."""
    parse._parser.cache_clear()
    yield
    parse._parser.cache_clear()


def test_tables_are_made_from_this_grammar():
    assert tables.GRAMMAR_KEY == parse.grammar_key(parse.grammar_text()), (
        "grammar/modelc.lark (or the parser's options) changed: run scripts/gen_parser_tables.py"
    )


def test_the_key_covers_the_options(monkeypatch):
    text = parse.grammar_text()
    key = parse.grammar_key(text)
    monkeypatch.setitem(parse._OPTIONS, "maybe_placeholders", False)
    assert parse.grammar_key(text) != key


@same_lark
def test_the_check_script_finds_them_current():
    proc = subprocess.run([sys.executable, str(ROOT / "scripts" / "gen_parser_tables.py"), "--check"],
                          capture_output=True, text=True, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr


@same_lark
def test_the_parser_is_loaded_not_built(monkeypatch, fresh_parser):
    def build(text):
        raise AssertionError("built the parser from the grammar")

    monkeypatch.setattr(parse, "build_parser", build)
    assert parse.stale_tables() is None
    assert parse.parse("model M {\n  input x: [B, 4]\n  output x -> relu\n}\n", "m.model").items


@same_lark
@pytest.mark.parametrize("spec", SPECS, ids=lambda p: p.stem)
def test_loaded_tables_parse_as_the_grammar_does(spec):
    loaded = Lark._load_from_dict(tables.DATA, tables.MEMO)
    built = parse.build_parser(parse.grammar_text())
    text = parse.normalize(spec.read_text(encoding="utf-8"))
    assert loaded.parse(text) == built.parse(text)


@pytest.mark.parametrize(
    "field, value, reason",
    [("GRAMMAR_KEY", "0" * 64, "the grammar or the parser's options changed"),
     ("LARK_VERSION", "0.0.1", "written by Lark 0.0.1")],
)  # fmt: skip
def test_stale_tables_are_not_used(monkeypatch, fresh_parser, field, value, reason):
    def load(*args, **kwargs):
        raise AssertionError("loaded stale tables")

    monkeypatch.setattr(tables, field, value)
    monkeypatch.setattr(Lark, "_load_from_dict", load)
    assert reason in parse.stale_tables()
    module = parse.parse("model M {\n  input x: [B, 4]\n  output x -> relu\n}\n", "m.model")
    assert module.items
    with pytest.raises(SpecError) as exc:  # errors name what was expected, as before
        parse.parse("model M {\n  input x: [B, 4]\n  output x ->\n}\n", "m.model")
    assert "E0101" in exc.value.render()


def test_check_imports_neither_torch_nor_jinja2():
    code = (
        "import contextlib, io, sys\n"
        "from modelc.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        f"    assert main(['check', {str(ROOT / 'specs' / 'resnet50.model')!r}]) == 0\n"
        "print(sorted(m.split('.')[0] for m in sys.modules if m.split('.')[0] in ('torch', 'jinja2')))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
