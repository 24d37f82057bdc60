"""The pygls wiring of `modelc lsp`: documents in, diagnostics, hovers and the rest out.

NOTE: [Re-checks] A change after a pause is checked at once; a change that follows
another within MODELC_LSP_DEBOUNCE_MS (default 20 ms) is checked after that pause, and a
further change within it replaces the scheduled check, so a burst of keystrokes costs one
or two checks while a single edit is not delayed. A request (hover, ...) on a document
whose check is still pending runs it at once, so answers always match the text the
client sent. The collector is tuned once warm (gc.freeze, a larger first generation):
a check allocates many small objects, and the default thresholds collect every few
hundred of them, which costs a large share of a check of ResNet-152. The last analysis without errors is kept per document: hover, definition
and completion use it while the buffer does not build.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os

from lsprotocol import types as T
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path

from modelc import __version__
from modelc.lsp.analysis import Analysis, Problem, Region, analyze
from modelc.lsp.navigate import definition, hover
from modelc.lsp.outline import Symbol, complete, symbols

__all__ = ["ModelcServer", "serve"]

log = logging.getLogger(__name__)


def _milliseconds(text: str, default: int) -> int:
    try:
        return max(0, int(text))
    except ValueError:
        return default


def _path_of(uri: str, filename: str | None) -> str:
    """The document's file (imports are read relative to it); an untitled buffer is taken to
    be in the working directory."""
    try:
        path = to_fs_path(uri)
    except Exception:  # noqa: BLE001 - a URI scheme pygls does not know
        path = None
    return os.path.abspath(path or filename or "untitled.model")


class ModelcServer(LanguageServer):
    """A LanguageServer that remembers, per document URI, its latest and last good analyses."""

    def __init__(self) -> None:
        super().__init__("modelc", __version__, text_document_sync_kind=T.TextDocumentSyncKind.Incremental)
        self.latest: dict[str, Analysis] = {}
        self.good: dict[str, Analysis] = {}
        self.pending: dict[str, asyncio.Task] = {}
        self.changed: dict[str, float] = {}  # when each document last changed (loop time)
        self.debounce = _milliseconds(os.environ.get("MODELC_LSP_DEBOUNCE_MS", ""), 20) / 1000

    def schedule(self, uri: str, delay: float) -> None:
        old = self.pending.pop(uri, None)
        if old is not None:
            old.cancel()
        self.pending[uri] = asyncio.get_running_loop().create_task(self._later(uri, delay))

    async def _later(self, uri: str, delay: float) -> None:
        await asyncio.sleep(delay)
        self.pending.pop(uri, None)
        self.check(uri)

    def check(self, uri: str) -> Analysis:
        doc = self.workspace.get_text_document(uri)
        path = _path_of(uri, doc.filename)
        try:
            a = analyze(doc.source, path, doc.version)
        except Exception:  # noqa: BLE001 - a bug in modelc must not take the editor's server down
            log.exception("modelc: checking %s failed", uri)
            a = Analysis(path, doc.source, doc.version)
            a.problems.append(Problem("", "internal error in modelc while checking this file "
                                      "(a bug in modelc, not in the spec; see the server's log)", (1, 1, 1, 1)))  # fmt: skip
        self.latest[uri] = a
        if a.ok:
            self.good[uri] = a
        self.text_document_publish_diagnostics(
            T.PublishDiagnosticsParams(uri=uri, version=doc.version, diagnostics=[_diagnostic(p, a) for p in [*a.problems, *a.warnings]]))
        return a

    def current(self, uri: str) -> Analysis:
        """The analysis of the text the client sent last (checked now if still pending)."""
        task = self.pending.pop(uri, None)
        if task is not None:
            task.cancel()
        a = self.latest.get(uri)
        doc = self.workspace.get_text_document(uri)
        if task is not None or a is None or a.version != doc.version:
            a = self.check(uri)
        return a

    def usable(self, uri: str) -> Analysis:
        """The current analysis when it built; else the current text with the last good
        program, AST and graphs (positions may be a little off while the user types)."""
        a = self.current(uri)
        good = self.good.get(uri)
        if a.ok or good is None:
            return a
        return dataclasses.replace(a, module=a.module or good.module, program=a.program or good.program,
                                   graphs=a.graphs or good.graphs)  # fmt: skip


server = ModelcServer()


# ---- documents -----------------------------------------------------------------------------------
@server.feature(T.TEXT_DOCUMENT_DID_OPEN)
async def did_open(ls: ModelcServer, params: T.DidOpenTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)


@server.feature(T.TEXT_DOCUMENT_DID_CHANGE)
async def did_change(ls: ModelcServer, params: T.DidChangeTextDocumentParams) -> None:
    uri, now = params.text_document.uri, asyncio.get_running_loop().time()
    burst = now - ls.changed.get(uri, float("-inf")) < ls.debounce
    ls.changed[uri] = now
    ls.schedule(uri, ls.debounce if burst else 0)


@server.feature(T.TEXT_DOCUMENT_DID_SAVE)
async def did_save(ls: ModelcServer, params: T.DidSaveTextDocumentParams) -> None:
    ls.schedule(params.text_document.uri, 0)  # files it imports may have changed on disk


@server.feature(T.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: ModelcServer, params: T.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    task = ls.pending.pop(uri, None)
    if task is not None:
        task.cancel()
    ls.latest.pop(uri, None)
    ls.good.pop(uri, None)
    ls.changed.pop(uri, None)
    ls.text_document_publish_diagnostics(T.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


# ---- requests ------------------------------------------------------------------------------------
@server.feature(T.TEXT_DOCUMENT_HOVER)
def on_hover(ls: ModelcServer, params: T.HoverParams) -> T.Hover | None:
    a = ls.usable(params.text_document.uri)
    line, col = _from_position(a, params.position)
    text = hover(a, line, col)
    if text is None:
        return None
    return T.Hover(contents=T.MarkupContent(kind=T.MarkupKind.Markdown, value=text))


@server.feature(T.TEXT_DOCUMENT_DEFINITION)
def on_definition(ls: ModelcServer, params: T.DefinitionParams) -> T.Location | None:
    a = ls.usable(params.text_document.uri)
    line, col = _from_position(a, params.position)
    target = definition(a, line, col)
    if target is None:
        return None
    lines = a.lines if target.path == a.path else _file_lines(target.path)
    return T.Location(uri=from_fs_path(target.path), range=_range(lines, target.region))


@server.feature(T.TEXT_DOCUMENT_COMPLETION, T.CompletionOptions(trigger_characters=[">", "(", ",", ":"]))
def on_completion(ls: ModelcServer, params: T.CompletionParams) -> T.CompletionList:
    a = ls.usable(params.text_document.uri)
    line, col = _from_position(a, params.position)
    items = [T.CompletionItem(label=c.label, kind=_COMPLETION_KINDS[c.kind], detail=c.detail or None,
                              documentation=c.doc or None, insert_text=c.insert)
             for c in complete(a, line, col)]  # fmt: skip
    return T.CompletionList(is_incomplete=False, items=items)


@server.feature(T.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
def on_symbols(ls: ModelcServer, params: T.DocumentSymbolParams) -> list[T.DocumentSymbol]:
    a = ls.usable(params.text_document.uri)
    return [_symbol(a, s) for s in symbols(a)]


_COMPLETION_KINDS = {"op": T.CompletionItemKind.Function, "block": T.CompletionItemKind.Class,
                     "attr": T.CompletionItemKind.Property, "param": T.CompletionItemKind.Variable,
                     "binding": T.CompletionItemKind.Variable, "const": T.CompletionItemKind.Constant,
                     "keyword": T.CompletionItemKind.Keyword}  # fmt: skip
_SYMBOL_KINDS = {"model": T.SymbolKind.Class, "block": T.SymbolKind.Class, "const": T.SymbolKind.Constant,
                 "def": T.SymbolKind.Function,
                 "import": T.SymbolKind.Module, "param": T.SymbolKind.TypeParameter,
                 "input": T.SymbolKind.Field, "binding": T.SymbolKind.Variable,
                 "output": T.SymbolKind.Event}  # fmt: skip


def _symbol(a: Analysis, s: Symbol) -> T.DocumentSymbol:
    return T.DocumentSymbol(name=s.name, kind=_SYMBOL_KINDS[s.kind], detail=s.detail,
                            range=_range(a.lines, s.region), selection_range=_range(a.lines, s.selection),
                            children=[_symbol(a, c) for c in s.children] or None)  # fmt: skip


# ---- positions: the compiler's 1-based characters <-> the protocol's 0-based code units -----------
def _units(text: str) -> int:
    """`text`'s length in the position encoding agreed with the client (UTF-16 unless the
    client offered UTF-8 or UTF-32 first; pygls chooses at initialisation)."""
    return server.workspace.position_codec.client_num_units(text)


def _position(lines: list[str], line: int, col: int) -> T.Position:
    text = lines[line - 1] if 0 < line <= len(lines) else ""
    return T.Position(line=max(0, line - 1), character=_units(text[: col - 1]))


def _range(lines: list[str], region: Region) -> T.Range:
    line, col, end_line, end_col = region
    return T.Range(start=_position(lines, line, col), end=_position(lines, end_line, end_col))


def _from_position(a: Analysis, pos: T.Position) -> tuple[int, int]:
    text = a.lines[pos.line] if pos.line < len(a.lines) else ""
    if text.isascii():
        return pos.line + 1, min(pos.character, len(text)) + 1
    units = col = 0
    while col < len(text) and units < pos.character:
        units += _units(text[col])
        col += 1
    return pos.line + 1, col + 1


def _file_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read(1 << 22).split("\n")
    except OSError:
        return []


def _diagnostic(p: Problem, a: Analysis) -> T.Diagnostic:
    related = [T.DiagnosticRelatedInformation(
        location=T.Location(uri=from_fs_path(r.path), range=_range(a.lines if r.path == a.path else _file_lines(r.path), r.region)),
        message=r.message) for r in p.related if r.region is not None]  # fmt: skip
    severity = T.DiagnosticSeverity.Warning if p.code.startswith("W") else T.DiagnosticSeverity.Error
    return T.Diagnostic(range=_range(a.lines, p.region), message=p.message, severity=severity,
                        code=p.code or None, source="modelc", related_information=related or None)  # fmt: skip


def serve() -> int:
    """Serve on standard input and output (the client starts `modelc lsp`)."""
    _warm_up()
    server.start_io()
    return 0


def _warm_up() -> None:
    """Build the parser tables and import the compiler before the first document arrives,
    then keep what is loaded out of the collector's way (NOTE: [Re-checks])."""
    analyze("model M {\n    input x: [B, 3]\n    output x -> linear(2)\n}\n", os.path.abspath("warm-up.model"))
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
