"""Check one buffer's text and position the compiler's diagnostics for an editor.

An :class:`Analysis` is what the server keeps per open document: the AST of the buffer
(when it parses), the program and checked graphs (when they build), and the problems
found. Every model of the file is built on its own, so an error in one model does not
hide the errors of another; imports are read from disk, relative to the document.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from modelc import lint
from modelc import syntax as S
from modelc.diagnostics import Diagnostic, Span, SpecError
from modelc.elaborate import elaborate
from modelc.ir import Graph
from modelc.load import Program, load_parsed
from modelc.parse import parse

__all__ = ["Analysis", "Problem", "Related", "analyze", "binary_text"]

Region = tuple[int, int, int, int]  # line, col, end_line, end_col: 1-based, end-exclusive


@dataclass(frozen=True)
class Related:
    """Another place that matters to a problem (a note, or the error's own place in an
    imported file); `region` is None when the note has no place."""

    path: str
    region: Region | None
    message: str


@dataclass(frozen=True)
class Problem:
    """One compiler diagnostic, placed in the analysed document."""

    code: str
    message: str
    region: Region
    related: tuple[Related, ...] = ()


@dataclass
class Analysis:
    path: str
    text: str
    version: int | None = None
    module: S.Module | None = None  # None: the text does not parse
    program: Program | None = None  # None: the file-level names or imports are wrong
    graphs: list[Graph] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[Problem] = field(default_factory=list)  # modelc.lint's (W codes): it still built
    lines: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Whether everything built: hover and definition can trust it."""
        return not self.problems and self.module is not None


def analyze(text: str, path: str, version: int | None = None) -> Analysis:
    """Check `text` as if it were the file at `path` (an absolute path)."""
    a = Analysis(path, text, version, lines=_lines(text))
    if binary_text(text):
        a.problems.append(Problem("E0106", "binary file, not a modelc spec", (1, 1, 1, 1)))
        return a
    try:
        a.module = parse(text, path)
        a.program = load_parsed(a.module, text, path)
    except SpecError as exc:
        a.problems.extend(_place(d, a) for d in exc.diagnostics)
        return a
    except RecursionError:
        a.problems.append(Problem("E0508", "the spec nests expressions too deeply", (1, 1, 1, 1)))
        return a
    for name in a.program.main_models:
        try:  # driver.build without Graph.verify: that checks modelc, not the spec
            a.graphs.append(elaborate(a.program, name, {}, None))
            a.warnings.extend(w for w in map(lambda d: _place(d, a), lint.warnings(a.graphs[-1]))
                              if w not in a.warnings)  # a block's warning once, not once per model
        except SpecError as exc:
            a.problems.extend(_place(d, a) for d in exc.diagnostics)
        except RecursionError:
            a.problems.append(Problem("E0508", "the spec nests expressions or blocks too deeply", (1, 1, 1, 1)))
    return a


# NOTE: [Binary buffers] An editor that opens a binary file hands over text decoded as it
# could: NUL characters, and U+FFFD for bytes that are not UTF-8. Both in the first KiB
# (with control characters beside the U+FFFD, as load.is_binary asks of bytes) mark it.
_CONTROL = re.compile(r"[\x01-\x08\x0e-\x1f\x7f]")


def binary_text(text: str) -> bool:
    head = text[:1024]
    return "\0" in head or ("\ufffd" in head and _CONTROL.search(head) is not None)


def _lines(text: str) -> list[str]:
    from modelc.parse import normalize

    return normalize(text).split("\n")


def _region(span: Span) -> Region:
    return (span.line, span.col, span.end_line, span.end_col)


def _same_file(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def _place(d: Diagnostic, a: Analysis) -> Problem:
    """The diagnostic at its span when that is in this document; else at the first note
    (block instantiation) that is, else at the import that brought the other file in."""
    message = d.message + (f"\nhint: {d.hint}" if d.hint else "")
    related = tuple(Related(n.span.file, _region(n.span), n.message) if n.span
                    else Related(a.path, None, n.message) for n in d.notes)  # fmt: skip
    related = tuple(r for r in related if r.region is not None)
    if d.span is None:
        return Problem(d.code, message, (1, 1, 1, 1), related)
    if _same_file(d.span.file, a.path):
        return Problem(d.code, message, _region(d.span), related)
    here = Related(d.span.file, _region(d.span), d.message)
    for note in d.notes:
        if note.span is not None and _same_file(note.span.file, a.path):
            return Problem(d.code, f"{os.path.basename(d.span.file)}:{d.span.line}: {message}",
                           _region(note.span), (here, *related))  # fmt: skip
    return Problem(d.code, f"{os.path.basename(d.span.file)}:{d.span.line}: {message}",
                   _import_region(a, d.span.file), (here, *related))  # fmt: skip


def _import_region(a: Analysis, path: str) -> Region:
    """The import of `path` in this document, else its first import, else line 1."""
    imports = [item for item in (a.module.items if a.module else ()) if isinstance(item, S.Import)]
    for item in imports:
        target = os.path.join(os.path.dirname(a.path), item.path)
        if _same_file(target, path):
            return _region(item.span)
    return _region(imports[0].span) if imports else (1, 1, 1, 1)
