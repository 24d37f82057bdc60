"""Source spans, diagnostics and the two exception types of the compiler.

Invariants:
- every user-facing error is a :class:`SpecError` holding one or more
  :class:`Diagnostic` values, each with an error code from :data:`CODES`;
- a :class:`CompilerBug` means modelc itself is wrong (never the spec);
- rendering a diagnostic needs nothing but the diagnostic: a :class:`Span`
  carries its :class:`SourceFile`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "CODES",
    "CompilerBug",
    "Diagnostic",
    "Note",
    "SourceFile",
    "Span",
    "SpecError",
    "error",
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
    # E02xx: names
    "E0201": "undefined name",
    "E0202": "name defined twice",
    "E0203": "unknown op or block",
    "E0204": "name used before its definition",
    "E0205": "cycle between bindings",
    "E0206": "reserved name",
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
    # E06xx: command line
    "E0601": "invalid command-line value",
    "E0602": "Graphviz not found",
    "E0603": "cannot verify here",
}


@dataclass(frozen=True)
class SourceFile:
    """The text of one spec file, shared by all spans into it."""

    path: str
    text: str = field(repr=False)

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 0 < number <= len(lines) else ""


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

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise CompilerBug(f"unknown diagnostic code {self.code}")

    def render(self) -> str:
        where = f"{self.span}: " if self.span else ""
        out = [f"{where}error[{self.code}]: {self.message}"]
        if self.span:
            out.extend(_excerpt(self.span))
        for note in self.notes:
            loc = f" at {note.span.file}:{note.span.line}:{note.span.col}" if note.span else ""
            out.append(f"  = note: {note.message}{loc}")
        if self.hint:
            out.append(f"  = hint: {self.hint}")
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
    text = span.source.line(span.line)
    if not text:
        return []
    num = str(span.line)
    pad = " " * len(num)
    end = span.end_col if span.end_line == span.line else len(text) + 1
    width = max(1, end - span.col)
    # Tabs keep their width under the caret so it lines up in a terminal.
    col = span.col
    if len(text) > _MAX_EXCERPT:  # a window around the caret, not a megabyte line
        start = max(0, min(col - 1 - _MAX_EXCERPT // 3, len(text) - _MAX_EXCERPT))
        tail = "..." if start + _MAX_EXCERPT < len(text) else ""
        text = ("..." if start else "") + text[start : start + _MAX_EXCERPT] + tail
        col = col - start + (3 if start else 0)
        width = min(width, _MAX_EXCERPT)
    lead = "".join("\t" if ch == "\t" else " " for ch in text[: col - 1])
    return [f" {pad} |", f" {num} | {text}", f" {pad} | {lead}{'^' * width}"]


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
