"""The user documentation says what modelc does.

- docs/errors.md documents every code in `CODES`; each section's example,
  run as shown, prints exactly the documented text.
- Every ```model example in docs/language.md and docs/cli.md is a valid spec;
  examples that contain a model pass `modelc check`.
- Every `$ modelc ...` transcript in docs/cli.md prints what it shows, and every
  ```python example runs and prints what its `# prints: ...` lines say.
- The op table in docs/language.md is the op registry's.

Conventions of the markdown: a ```model block is written to `example.model`,
or to the file its first line names (`# file: layers.model`), in a fresh
directory per `## ` section (files named before the first `## ` are in every
section's directory); a ```text or ```console block that starts with
`$ modelc ...` is run there and shows stdout then stderr.

With MODELC_REGEN_DOCS=1 the transcripts and the op table are rewritten from
what modelc prints (review the diff before committing it).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import sys
import shlex
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from modelc import ops
from modelc.cli import main
from modelc.diagnostics import CODES
from modelc.load import load_text

DOCS = Path(__file__).resolve().parent.parent / "docs"
REGEN = bool(os.environ.get("MODELC_REGEN_DOCS"))
FENCE = re.compile(r"^```(\w*)\n(.*?)^```$", re.MULTILINE | re.DOTALL)
FILE_LINE = re.compile(r"# file: (\S+)\n")


@dataclass
class Block:
    lang: str
    text: str
    start: int  # offsets of `text` in the document
    end: int
    line: int  # of the opening fence

    @property
    def file(self) -> str:
        m = FILE_LINE.match(self.text)
        return m.group(1) if m else "example.model"

    @property
    def command(self) -> str | None:
        first = self.text.split("\n", 1)[0]
        return (
            first[2:]
            if self.lang in ("text", "console") and first.startswith("$ modelc")
            else None
        )


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)

    @property
    def models(self) -> list[Block]:
        return [b for b in self.blocks if b.lang == "model"]

    @property
    def transcripts(self) -> list[Block]:
        return [b for b in self.blocks if b.command]


def sections(doc: str) -> list[Section]:
    text = (DOCS / doc).read_text(encoding="utf-8")
    heads = [
        (m.start(), m.group(1)) for m in re.finditer(r"^## (.*)$", text, re.MULTILINE)
    ]
    out = [Section("")] + [Section(title) for _, title in heads]
    starts = [0] + [pos for pos, _ in heads]
    for m in FENCE.finditer(text):
        i = max(i for i, s in enumerate(starts) if s <= m.start())
        line = text.count("\n", 0, m.start()) + 1
        out[i].blocks.append(Block(m.group(1), m.group(2), m.start(2), m.end(2), line))
    return out


def run_modelc(command: str) -> str:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        main(shlex.split(command)[1:])
    return out.getvalue() + err.getvalue()


def write_models(section: Section, where: Path, doc: str | None = None) -> None:
    """The section's ```model files, after those of the document's preamble (shared)."""
    shared = sections(doc)[0].models if doc else []
    for b in shared + section.models:
        (where / b.file).write_text(b.text, encoding="utf-8")


def transcript(block: Block, where: Path, monkeypatch) -> tuple[str, str]:
    """(documented output, actual output) of a `$ modelc ...` block run in `where`."""
    monkeypatch.chdir(where)
    documented = block.text.split("\n", 1)[1] if "\n" in block.text else ""
    return documented, run_modelc(block.command)


_rewrites: dict[str, list[tuple[int, int, str]]] = {}


def check_or_regen(doc: str, block: Block, documented: str, actual: str) -> None:
    if REGEN and documented != actual:
        _rewrites.setdefault(doc, []).append(
            (block.start, block.end, f"$ {block.command}\n{actual}")
        )
        return
    assert actual == documented


@pytest.fixture(scope="module", autouse=True)
def apply_rewrites():
    yield
    for doc, edits in _rewrites.items():
        path = DOCS / doc
        text = path.read_text(encoding="utf-8")
        for start, end, new in sorted(edits, reverse=True):
            text = text[:start] + new + text[end:]
        path.write_text(text, encoding="utf-8")
    _rewrites.clear()


# ---- docs/errors.md ---------------------------------------------------------------------------
ERROR_SECTIONS = {
    s.title.split(":")[0]: s
    for s in sections("errors.md")
    if re.match(r"[EW]\d{4}:", s.title)
}


def test_every_code_is_documented_in_order():
    assert list(ERROR_SECTIONS) == sorted(CODES)
    for code, section in ERROR_SECTIONS.items():
        assert section.title == f"{code}: {CODES[code]}"


# Examples that need a particular machine, and how the test makes one.
ENVIRONMENT = {
    "E0602": lambda mp: mp.setattr(
        "modelc.render.dot_binary", lambda: None
    ),  # no Graphviz
    "E0603": lambda mp: mp.setattr(
        "modelc.verify._available_memory", lambda device: 16 * 2**30
    ),  # 16 GiB free
    "E0607": lambda mp: mp.setitem(sys.modules, "torch", None),  # no torch: `import torch` fails
}


# Files an example needs that markdown cannot show (binary data), written beside its specs.
BINARY_FILES = {
    "E0106": {"tokenizer.model": b"\x0a\x05\x0a\x03<s>\x15\x00\x00\x00\x00\x18\x02"},
}


@pytest.mark.parametrize("code", sorted(ERROR_SECTIONS))
def test_error_example(code, tmp_path, monkeypatch):
    section = ERROR_SECTIONS[code]
    if code in ENVIRONMENT:
        ENVIRONMENT[code](monkeypatch)
    assert section.models, f"{code} has no ```model example"
    [block] = section.transcripts
    write_models(section, tmp_path)
    for name, data in BINARY_FILES.get(code, {}).items():
        (tmp_path / name).write_bytes(data)
    documented, actual = transcript(block, tmp_path, monkeypatch)
    first = actual.split("\n", 1)[0]
    kind = "warning" if code.startswith("W") else "error"
    assert f"{kind}[{code}]" in first, f"the example of {code} gives {first!r}"
    check_or_regen("errors.md", block, documented, actual)


# ---- docs/language.md and docs/cli.md: specs ------------------------------------------------
def spec_examples(doc: str) -> list[tuple[str, int, Block]]:
    return [(doc, i, b) for i, s in enumerate(sections(doc)) for b in s.models]


SPEC_EXAMPLES = spec_examples("language.md") + spec_examples("cli.md")


@pytest.mark.parametrize(
    "doc, index, block",
    SPEC_EXAMPLES,
    ids=[f"{d}:{b.line}" for d, _, b in SPEC_EXAMPLES],
)
def test_spec_example(doc, index, block, tmp_path, monkeypatch):
    """Parses; with a model, passes `modelc check` (beside the section's other files)."""
    write_models(sections(doc)[index], tmp_path, doc)
    (tmp_path / block.file).write_text(block.text, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    if not re.search(r"^model ", block.text, re.MULTILINE):
        load_text(block.text, block.file)
        return
    out = run_modelc(f"modelc check {block.file}")
    assert "error[" not in out, out
    assert re.fullmatch(rf"({re.escape(block.file)}: ok: \w+: .*\n)+", out), out


def test_language_examples_cover_the_language():
    text = "\n".join(b.text for _, _, b in spec_examples("language.md"))
    for construct in ("import ", "block ", "model ", "repeat ", "for ", " if ", " else ", "->",
                      "output ", "input ", "#", "..", "channels(", "prefix "):  # fmt: skip
        assert construct in text, f"no example uses {construct!r}"


# ---- docs/cli.md: transcripts -------------------------------------------------------------------
CLI_TRANSCRIPTS = [
    (i, b) for i, s in enumerate(sections("cli.md")) for b in s.transcripts
]


@pytest.mark.parametrize(
    "index, block",
    CLI_TRANSCRIPTS,
    ids=[f"cli.md:{b.line}" for _, b in CLI_TRANSCRIPTS],
)
def test_cli_transcript(index, block, tmp_path, monkeypatch):
    if "--verify" in block.command:
        pytest.importorskip("torch")
    write_models(sections("cli.md")[index], tmp_path, "cli.md")
    documented, actual = transcript(block, tmp_path, monkeypatch)
    check_or_regen("cli.md", block, documented, actual)


PYTHON_EXAMPLES = [
    b for s in sections("cli.md") for b in s.blocks if b.lang == "python"
]


@pytest.mark.parametrize(
    "block", PYTHON_EXAMPLES, ids=[f"cli.md:{b.line}" for b in PYTHON_EXAMPLES]
)
def test_python_example(block, tmp_path, monkeypatch):
    if "load" in block.text:
        pytest.importorskip("torch")
    write_models(sections("cli.md")[0], tmp_path)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    code = compile(block.text, f"cli.md:{block.line}", "exec")
    with contextlib.redirect_stdout(out):
        exec(code, {})  # noqa: S102 - the documentation's own example
    expected = [
        ln[len("# prints: ") :]
        for ln in block.text.splitlines()
        if ln.startswith("# prints: ")
    ]
    assert out.getvalue().splitlines() == expected


# ---- docs/language.md: the op table -------------------------------------------------------------
def op_table() -> str:
    """The op reference: one row per op of the registry, as language.md shows it."""
    rows = [
        "| op | attributes (default) | positional | inputs | what it does |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name, op in sorted(ops.REGISTRY.items()):
        if op.internal:
            continue
        attrs = ", ".join(_attr(a) for a in op.attrs) or "none"
        positional = ", ".join(a.name for a in op.attrs if a.positional) or "none"
        inputs = str(op.inputs) if op.inputs is not None else f"{op.min_inputs} or more"
        doc = op.doc.replace("|", "\\|")
        rows.append(f"| `{name}` | {attrs} | {positional} | {inputs} | {doc} |")
    return "\n".join(rows) + "\n"


def _attr(a) -> str:
    text = f"`{a.name}`"
    if a.default is not ops.base.REQUIRED:
        text += f"=`{_show(a.default)}`"
    if a.aliases:
        text += " (" + ", ".join(f"`{x}`" for x in a.aliases) + ")"
    return text


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if v is None:
        return "none"
    if isinstance(v, str):
        return f'"{v}"'
    if isinstance(v, tuple):
        return "[" + ", ".join(_show(x) for x in v) + "]"
    return str(v)


def test_op_table_is_the_registry():
    path = DOCS / "language.md"
    text = path.read_text(encoding="utf-8")
    begin, end = (
        "<!-- ops: begin (generated; see tests/test_docs.py) -->\n",
        "<!-- ops: end -->",
    )
    assert begin in text and end in text
    head, rest = text.split(begin)
    table, tail = rest.split(end)
    if REGEN and table != op_table():
        path.write_text(head + begin + op_table() + end + tail, encoding="utf-8")
        return
    assert table == op_table()
