"""Source spans, diagnostics and the two exception types of the compiler.

Invariants:
- every user-facing error is a :class:`SpecError` holding one or more
  :class:`Diagnostic` values, each with an error code from :data:`CODES`;
- a :class:`CompilerBug` means modelc itself is wrong (never the spec);
- rendering a diagnostic needs nothing but the diagnostic: a :class:`Span`
  carries its :class:`SourceFile`.
"""

from __future__ import annotations

import bisect
import functools
import unicodedata
from dataclasses import dataclass, field

__all__ = [
    "CODES",
    "CompilerBug",
    "Diagnostic",
    "Note",
    "SourceFile",
    "Span",
    "SpecError",
    "SpecWarning",
    "error",
    "printable",
]

# NOTE: [Error codes]
# One table, grouped by stage. docs/errors.md documents each code with an
# example; tests/test_errors.py checks that every code here is documented and
# that the documented example produces exactly the documented message.
CODES: dict[str, str] = {
    # E01xx: reading and parsing
    "E0101": "syntax error",
    "E0102": "unexpected character",
    "E0103": "invalid string literal",
    "E0104": "cannot read file",
    "E0105": "import cycle",
    "E0106": "binary file",
    # E02xx: names
    "E0201": "undefined name",
    "E0202": "name defined twice",
    "E0203": "unknown op or block",
    "E0204": "name used before its definition",
    "E0205": "cycle between bindings",
    "E0206": "reserved name",
    "E0207": "invalid module name",
    # E03xx: shapes
    "E0301": "shape mismatch",
    "E0302": "incompatible shapes in concat",
    "E0303": "empty output",
    "E0304": "dimension must be known",
    "E0305": "wrong rank",
    "E0306": "view of a tensor that may not be contiguous",
    # E04xx: calls, attributes and arguments
    "E0401": "unknown attribute",
    "E0402": "wrong attribute type",
    "E0403": "missing attribute",
    "E0404": "invalid attribute value",
    "E0405": "wrong number of arguments",
    "E0406": "wrong number of inputs",
    "E0407": "wrong parameter type",
    "E0408": "argument given twice",
    # E05xx: structure of models and blocks
    "E0501": "missing input",
    "E0502": "missing output",
    "E0503": "recursive block",
    "E0504": "model not found",
    "E0505": "model input without a shape",
    "E0506": "type error",
    "E0507": "invalid arithmetic",
    "E0508": "limit exceeded",
    "E0509": "invalid use of a tensor",
    "E0510": "misplaced training-only output",
    # E06xx: command line
    "E0601": "invalid command-line value",
    "E0602": "Graphviz not found",
    "E0603": "cannot verify here",
    "E0604": "cannot write file",
    "E0605": "benchmark refused",
    "E0606": "cannot export",
    "E0607": "torch not installed",
    # E07xx: modelc import (a torch module to a spec); located at the module path, not a spec
    "E0701": "no spec form for a traced operation",
    "E0702": "cannot find the module to import",
    "E0703": "unsupported layer configuration",
    "E0704": "cannot trace a module",
    "E0705": "module called in a way a spec cannot write",
    "E0706": "invalid import argument",
    "E0707": "cannot build or run the module",
    "E0708": "unsupported model root",
    "E0709": "imported spec does not compile",
    # W0xxx: warnings (modelc.lint): the spec compiles, but probably says something unintended
    "W0501": "unused value",
    "W0502": "training needs larger inputs than eval",
}


@dataclass(frozen=True)
class SourceFile:
    """The text of one spec file, shared by all spans into it.

    NOTE: [Lines] `text` has its line breaks normalized to LF (parse.normalize): a line
    ends at LF, CRLF or CR, as in an editor, and the lexer refuses the other characters
    that some programs take for line breaks. So line numbers here are the lexer's.
    NOTE: [Quoting] Lines before `shown_from` are never quoted in an error: the file has
    not shown yet that it is a spec (load.py decides; docs/errors.md, E0104).
    """

    path: str
    text: str = field(repr=False)
    shown_from: int = 1

    def line(self, number: int) -> str:
        starts = self._starts
        if not 0 < number <= len(starts):
            return ""
        end = starts[number] - 1 if number < len(starts) else len(self.text)
        return self.text[starts[number - 1] : end]

    def position(self, offset: int) -> tuple[int, int]:
        """(line, column), 1-based, of a character offset into `text`."""
        line = bisect.bisect_right(self._starts, offset)
        return line, offset - self._starts[line - 1] + 1

    @functools.cached_property
    def _starts(self) -> list[int]:  # offsets where lines start
        out = [0]
        find = self.text.find
        at = find("\n")
        while at >= 0:
            out.append(at + 1)
            at = find("\n", at + 1)
        return out


@dataclass(frozen=True)
class Span:
    """A 1-based, end-exclusive region of a source file."""

    source: SourceFile = field(compare=False, repr=False)
    line: int
    col: int
    end_line: int
    end_col: int

    @property
    def file(self) -> str:
        return self.source.path

    @property
    def short(self) -> str:
        """`resnet50.model:14`, the form used in generated-code comments."""
        return f"{_basename(self.file)}:{self.line}"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None
    hint: str | None = None
    notes: tuple[Note, ...] = ()
    where: str | None = None  # a location outside any spec (an imported module's path), without a span

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise CompilerBug(f"unknown diagnostic code {self.code}")

    @property
    def severity(self) -> str:
        """`warning` for the W codes (modelc.lint), which never stop a compile; else `error`."""
        return "warning" if self.code.startswith("W") else "error"

    def render(self) -> str:
        """The text a terminal shows: user text in it (names, strings, paths, source lines)
        has its control, bidirectional and other invisible characters escaped."""
        where = f"{printable(str(self.span))}: " if self.span else ""
        if not self.span and self.where:
            where = f"{printable(self.where)}: "
        out = [f"{where}{self.severity}[{self.code}]: {printable(self.message)}"]
        if self.span:
            out.extend(_excerpt(self.span))
        for note in self.notes:
            loc = f" at {note.span.file}:{note.span.line}:{note.span.col}" if note.span else ""
            out.append(f"  = note: {printable(note.message + loc)}")
        if self.hint:
            out.append(f"  = hint: {printable(self.hint)}")
        return "\n".join(out)


class SpecError(Exception):
    """One or more problems in the user's spec (or command line)."""

    def __init__(self, diagnostics: list[Diagnostic] | Diagnostic):
        if isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = _dedupe(diagnostics)
        super().__init__(self.render())

    def render(self) -> str:
        body = "\n\n".join(d.render() for d in self.diagnostics)
        n = len(self.diagnostics)
        tail = f"\n\n{n} errors" if n > 1 else ""
        return body + tail


class SpecWarning(UserWarning):
    """A warning about a spec (the W codes of modelc.lint), as the Python API issues it; its
    text is the rendered diagnostic. The command line prints the same text to stderr."""


class CompilerBug(Exception):
    """modelc itself is wrong; raised instead of `assert` so `python -O` keeps it."""


def error(
    code: str,
    message: str,
    span: Span | None,
    hint: str | None = None,
    notes: tuple[Note, ...] = (),
) -> SpecError:
    """Shorthand: `raise error("E0201", "undefined name 'x'", span)`."""
    return SpecError(Diagnostic(code, message, span, hint, notes))


def _excerpt(span: Span) -> list[str]:
    if span.line < span.source.shown_from:
        return []
    if (span.end_line, span.end_col) == (span.line, span.col):  # no text: the whole file
        return []
    text = span.source.line(span.line)
    if not text:
        return []
    num = str(span.line)
    pad = " " * len(num)
    end = span.end_col if span.end_line == span.line else len(text) + 1
    width = max(1, end - span.col)
    col = span.col
    if len(text) > _MAX_EXCERPT:  # a window around the caret, not a megabyte line
        start = max(0, min(col - 1 - _MAX_EXCERPT // 3, len(text) - _MAX_EXCERPT))
        tail = "..." if start + _MAX_EXCERPT < len(text) else ""
        text = ("..." if start else "") + text[start : start + _MAX_EXCERPT] + tail
        col = col - start + (3 if start else 0)
        width = min(width, _MAX_EXCERPT)
    cells = [ch if ch == "\t" else printable(ch) for ch in text]
    # The caret lines up in a terminal: tabs stay tabs, an escaped character is as wide as
    # its escape, a wide (CJK) character two columns, a combining mark none.
    lead = "".join("\t" if c == "\t" else " " * _width(c) for c in cells[: col - 1])
    carets = sum(_width(cells[i]) if i < len(cells) else 1 for i in range(col - 1, col - 1 + width))
    return [f" {pad} |", f" {num} | {''.join(cells)}", f" {pad} | {lead}{'^' * max(1, carets)}"]


def _width(cell: str) -> int:
    if len(cell) != 1:
        return len(cell)  # an escape
    if unicodedata.combining(cell):
        return 0
    return 2 if unicodedata.east_asian_width(cell) in ("W", "F") else 1


def printable(text: str) -> str:
    """`text` safe to print on a terminal: every character that str.isprintable() rejects
    (controls such as ESC and BEL, bidirectional overrides such as U+202E, line and
    paragraph separators, non-ASCII spaces, lone surrogates) becomes a Python-style escape
    (`\\x1b`, `\\u202e`); the rest is kept."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else _escape(ch) for ch in text)


def _escape(ch: str) -> str:
    n = ord(ch)
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if n < 0x100:
        return f"\\x{n:02x}"
    return f"\\u{n:04x}" if n < 0x10000 else f"\\U{n:08x}"


_SHORT_ESCAPES = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


_MAX_EXCERPT = 160


def _dedupe(diagnostics: list[Diagnostic]) -> list[Diagnostic]:
    seen: set[tuple] = set()
    out = []
    for d in diagnostics:
        key = (d.code, d.message, d.span)
        if key not in seen:
            seen.add(key)
            out.append(d)
    return out


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
