"""`modelc lsp`, driven over stdio by pytest-lsp's client: the real server in a subprocess.

One server serves the module (starting one costs about a second); each test opens its own
documents, in its own folder. Expected ranges are computed from the text (where a word
is), expected counts from the layer formulas, not from modelc.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import sys
from pathlib import Path

import pytest
import pytest_lsp
from lsprotocol import types as T
from pytest_lsp import ClientServerConfig, LanguageClient, client_capabilities

from modelc.cli import main

SPEC = """\
block Stem(width: int) {
    input x
    y = x -> conv1: conv(width, k=3) -> relu
    output y
}

model Net {
    input image: [B, 3, 32, 32]
    x = image -> stem: Stem(16)
    output x -> flatten -> fc: linear(10)
}
"""


@pytest_lsp.fixture(scope="module", config=ClientServerConfig(server_command=[sys.executable, "-m", "modelc.cli", "lsp"],
                                              server_env={"MODELC_LSP_DEBOUNCE_MS": "5"}))  # fmt: skip
async def client(lsp_client: LanguageClient):
    await lsp_client.initialize_session(T.InitializeParams(capabilities=client_capabilities("visual-studio-code")))
    yield
    await lsp_client.shutdown_session()


def open_doc(client: LanguageClient, path: Path, text: str, version: int = 1) -> str:
    path.write_text(text, encoding="utf-8")  # what is on disk differs below: the buffer wins
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(T.DidOpenTextDocumentParams(
        T.TextDocumentItem(uri=uri, language_id="modelc", version=version, text=text)))  # fmt: skip
    return uri


def change(client: LanguageClient, uri: str, text: str, version: int) -> None:
    client.diagnostics.pop(uri, None)
    client.text_document_did_change(T.DidChangeTextDocumentParams(
        T.VersionedTextDocumentIdentifier(uri=uri, version=version),
        [T.TextDocumentContentChangeWholeDocument(text=text)]))  # fmt: skip


async def diagnostics(client: LanguageClient, uri: str, timeout: float = 10) -> list[T.Diagnostic]:
    """The next diagnostics published for the document (`open_doc` and `change` forget the
    previous ones first)."""
    for _ in range(int(timeout / 0.01)):
        if uri in client.diagnostics:
            return list(client.diagnostics[uri])
        await asyncio.sleep(0.01)
    raise AssertionError(f"no diagnostics for {uri}")


def where(text: str, word: str, nth: int = 0) -> tuple[int, int]:
    """0-based line and character of the nth occurrence of `word`."""
    at = -1
    for _ in range(nth + 1):
        at = text.index(word, at + 1)
    line = text.count("\n", 0, at)
    return line, at - (text.rfind("\n", 0, at) + 1)


def position(text: str, word: str, nth: int = 0, offset: int = 0) -> T.Position:
    line, char = where(text, word, nth)
    return T.Position(line=line, character=char + offset)


# ---- diagnostics ------------------------------------------------------------------------------
@pytest.mark.asyncio(loop_scope="module")
async def test_an_error_has_its_code_and_exact_range_and_clears_when_fixed(client, tmp_path):
    bad = SPEC.replace("-> relu", "-> relux")
    uri = open_doc(client, tmp_path / "net.model", bad)
    [d] = await diagnostics(client, uri)
    line, char = where(bad, "relux")
    assert d.code == "E0203" and d.severity == T.DiagnosticSeverity.Error and d.source == "modelc"
    assert (d.range.start.line, d.range.start.character, d.range.end.line, d.range.end.character) == (
        line, char, line, char + len("relux"))
    assert "relux" in d.message and "did you mean 'relu'" in d.message
    client.diagnostics.pop(uri)
    client.text_document_did_change(T.DidChangeTextDocumentParams(  # an incremental edit: relux -> relu
        T.VersionedTextDocumentIdentifier(version=2, uri=uri),
        [T.TextDocumentContentChangePartial(range=d.range, text="relu")]))  # fmt: skip
    assert await diagnostics(client, uri) == []


@pytest.mark.asyncio(loop_scope="module")
async def test_several_errors_at_once(client, tmp_path):
    text = SPEC + "\nmodel Other {\n    input x: [B, 4]\n    output x -> linaer(3)\n}\n"
    text = text.replace("linear(10)", "linear(10, bias=maybe)")
    uri = open_doc(client, tmp_path / "two.model", text)
    found = await diagnostics(client, uri)
    assert sorted(d.code for d in found) == ["E0201", "E0203"]
    assert {d.range.start.line for d in found} == {where(text, "maybe")[0], where(text, "linaer")[0]}


@pytest.mark.asyncio(loop_scope="module")
async def test_an_unused_value_is_a_warning(client, tmp_path):
    text = "model M {\n    input x: [B, 8]\n    aux = x -> head: linear(2)\n    output x -> relu\n}\n"
    uri = open_doc(client, tmp_path / "warn.model", text)
    [d] = await diagnostics(client, uri)
    assert d.code == "W0501" and d.severity == T.DiagnosticSeverity.Warning
    assert "'aux' is computed but never used" in d.message
    assert (d.range.start.line, d.range.start.character) == where(text, "linear(2)")


@pytest.mark.asyncio(loop_scope="module")
async def test_ranges_count_utf16_code_units(client, tmp_path):
    text = 'model M {\n    input x: [B, 4]\n    output x -> gelu(approximate="\U0001f600")\n}\n'
    uri = open_doc(client, tmp_path / "emoji.model", text)
    [d] = await diagnostics(client, uri)
    line, char = where(text, "approximate=")
    assert d.code == "E0404" and d.range.start == T.Position(line=line, character=char)
    # The emoji is one character but two UTF-16 code units (the protocol's default).
    assert d.range.end == T.Position(line=line, character=char + len('approximate="') + 2 + 1)


@pytest.mark.asyncio(loop_scope="module")
async def test_an_error_in_an_imported_block_is_shown_at_its_use(client, tmp_path):
    (tmp_path / "layers.model").write_text("block Head {\n    input x\n    output x -> lienar(3)\n}\n")
    text = 'import "layers.model"\n\nmodel M {\n    input x: [B, 4]\n    output x -> Head\n}\n'
    uri = open_doc(client, tmp_path / "main.model", text)
    [d] = await diagnostics(client, uri)
    assert d.code == "E0203" and d.range.start.line == where(text, "Head")[0]
    assert d.related_information and d.related_information[0].location.uri == (tmp_path / "layers.model").as_uri()
    assert d.related_information[0].location.range.start == T.Position(line=2, character=16)


@pytest.mark.asyncio(loop_scope="module")
async def test_a_binary_file_is_one_diagnostic_at_the_start(client, tmp_path):
    data = b"\x0a\x05\x0a\x03<s>\x15\x00\x00\x00\x00\x18\x02" * 20  # a SentencePiece model starts so
    path = tmp_path / "tokenizer.model"
    path.write_bytes(data)
    uri = path.as_uri()
    client.diagnostics.pop(uri, None)
    client.text_document_did_open(T.DidOpenTextDocumentParams(
        T.TextDocumentItem(uri=uri, language_id="modelc", version=1, text=data.decode("latin-1"))))  # fmt: skip
    [d] = await diagnostics(client, uri)
    assert d.code == "E0106" and d.range.start == T.Position(line=0, character=0)
    assert "binary file" in d.message
    assert await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), T.Position(0, 3))) is None
    ok = open_doc(client, tmp_path / "ok.model", SPEC)  # the server is still there
    assert await diagnostics(client, ok) == []


def test_the_cli_refuses_a_binary_file_in_one_line(tmp_path, monkeypatch):
    (tmp_path / "tokenizer.model").write_bytes(b"\x0a\x05\x0a\x03<s>\x15\x00\x00\x00\x00\x18\x02")
    monkeypatch.chdir(tmp_path)
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert main(["check", "tokenizer.model"]) == 1
    assert err.getvalue() == "tokenizer.model:1:1: error[E0106]: binary file, not a modelc spec\n"


# ---- hover ----------------------------------------------------------------------------------------
async def hover_text(client, uri: str, pos: T.Position) -> str:
    result = await client.text_document_hover_async(T.HoverParams(T.TextDocumentIdentifier(uri), pos))
    assert result is not None
    return result.contents.value


@pytest.mark.asyncio(loop_scope="module")
async def test_hover_shows_shape_parameters_and_macs(client, tmp_path):
    uri = open_doc(client, tmp_path / "net.model", SPEC)
    await diagnostics(client, uri)
    conv = await hover_text(client, uri, position(SPEC, "conv(", offset=1))
    params = 16 * 3 * 3 * 3 + 16  # weights + bias of a 3x3 conv, 3 -> 16 channels
    macs = 16 * 30 * 30 * 3 * 3 * 3  # one per weight per output pixel, batch 1
    assert "[B, 16, 30, 30]" in conv and f"parameters: {params:,}" in conv and f"{macs:,}" in conv
    assert "`stem.conv1`" in conv and "out_channels" in conv  # the instance, and the op's doc
    label = await hover_text(client, uri, position(SPEC, "fc:"))
    assert "[B, 10]" in label and f"parameters: {16 * 30 * 30 * 10 + 10:,}" in label
    binding = await hover_text(client, uri, position(SPEC, "x ->", nth=1))  # `x` in the model
    assert "[B, 16, 30, 30]" in binding
    op = await hover_text(client, uri, position(SPEC, "flatten"))
    assert "flatten" in op and "start" in op
    # While the buffer does not parse, the last good analysis still answers.
    broken = SPEC.replace("output x -> flatten", "output x -> flatten ->")
    change(client, uri, broken, 2)
    assert (await diagnostics(client, uri))[0].code == "E0101"
    assert "[B, 10]" in await hover_text(client, uri, position(broken, "fc:"))


# ---- definition -----------------------------------------------------------------------------------
@pytest.mark.asyncio(loop_scope="module")
async def test_definition_of_a_block_a_binding_and_an_import(client, tmp_path):
    (tmp_path / "layers.model").write_text("block Head {\n    input x\n    output x -> linear(3)\n}\n")
    text = 'import "layers.model"\n\n' + SPEC.replace("flatten -> fc: linear(10)", "flatten -> Head")
    uri = open_doc(client, tmp_path / "main.model", text)
    assert await diagnostics(client, uri) == []

    async def goto(pos: T.Position) -> T.Location:
        result = await client.text_document_definition_async(T.DefinitionParams(T.TextDocumentIdentifier(uri), pos))
        return result[0] if isinstance(result, list) else result

    stem = await goto(position(text, "Stem(16)", offset=2))
    line, char = where(text, "Stem")
    assert stem.uri == uri and (stem.range.start.line, stem.range.start.character) == (line, char)
    assert stem.range.end.character == char + len("Stem")
    head = await goto(position(text, "Head"))
    assert head.uri == (tmp_path / "layers.model").as_uri() and head.range.start == T.Position(0, 6)
    imported = await goto(position(text, "layers.model"))
    assert imported.uri == (tmp_path / "layers.model").as_uri()
    binding = await goto(position(text, "x ->", nth=1))  # `output x` in the model: its binding
    assert binding.uri == uri and binding.range.start == T.Position(*where(text, "x = image"))


# ---- completion and symbols -----------------------------------------------------------------------
async def labels(client, uri: str, pos: T.Position) -> list[str]:
    result = await client.text_document_completion_async(T.CompletionParams(T.TextDocumentIdentifier(uri), pos))
    items = result.items if isinstance(result, T.CompletionList) else result
    return [item.label for item in items]


@pytest.mark.asyncio(loop_scope="module")
async def test_completion_of_steps_and_attributes(client, tmp_path):
    uri = open_doc(client, tmp_path / "net.model", SPEC)
    await diagnostics(client, uri)
    typing = SPEC.replace("-> relu\n", "-> \n")
    change(client, uri, typing, 2)
    await diagnostics(client, uri)
    steps = await labels(client, uri, position(typing, "-> \n", offset=3))
    assert {"conv", "relu", "batchnorm", "linear", "Stem"} <= set(steps)
    typing = SPEC.replace("conv(width, k=3)", "conv(width, k=3, ")
    change(client, uri, typing, 3)
    await diagnostics(client, uri)
    attrs = await labels(client, uri, position(typing, "k=3, ", offset=5))
    assert {"s", "p", "groups", "bias"} <= set(attrs) and "k" not in attrs and "relu" not in attrs


@pytest.mark.asyncio(loop_scope="module")
async def test_document_symbols(client, tmp_path):
    uri = open_doc(client, tmp_path / "net.model", SPEC)
    result = await client.text_document_document_symbol_async(T.DocumentSymbolParams(T.TextDocumentIdentifier(uri)))
    assert [(s.name, s.kind) for s in result] == [("Stem", T.SymbolKind.Class), ("Net", T.SymbolKind.Class)]
    stem, net = result
    assert [c.name for c in stem.children] == ["width", "x", "y", "output"]
    assert [c.name for c in net.children] == ["image", "x", "output"]
    assert net.selection_range.start == T.Position(*where(SPEC, "Net"))


@pytest.mark.asyncio(loop_scope="module")
async def test_resnet152_stage_hover_and_recheck(client, tmp_path):
    spec = Path(__file__).resolve().parent.parent / "specs" / "resnet152.model"
    text = spec.read_text(encoding="utf-8")
    uri = open_doc(client, tmp_path / "resnet152.model", text)
    assert await diagnostics(client, uri) == []

    def bottleneck(cin: int, width: int, down: bool) -> int:
        """Parameters of a torchvision Bottleneck: three convs, three BatchNorms, a projection."""
        convs = cin * width + width * width * 9 + width * 4 * width
        norms = 2 * (width + width + 4 * width)
        return convs + norms + ((cin * 4 * width + 2 * 4 * width) if down else 0)

    layer4 = await hover_text(client, uri, position(text, "layer4:"))
    expected = bottleneck(1024, 512, True) + 2 * bottleneck(2048, 512, False)
    assert "[B, 2048, 7, 7]" in layer4 and f"parameters: {expected:,}" in layer4
    change(client, uri, text.replace("bn3: batchnorm", "bn3: batchnrom", 1), 2)
    [d] = await diagnostics(client, uri)
    assert d.code == "E0203"


def test_without_pygls_the_command_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pygls", None)  # `import pygls` fails
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        assert main(["lsp"]) == 1
    assert err.getvalue() == 'error[E0601]: modelc lsp needs pygls\n  = hint: pip install "modelc[lsp]"\n'
