"""Text -> AST. Entry point: :func:`parse`.

The grammar lives in `grammar/modelc.lark` (LALR, positions kept). Lark's
exceptions never escape: they become :class:`SpecError` with a caret.

NOTE: [Lines] A line ends at LF, CRLF or a lone CR, as in every editor: :func:`normalize`
turns the last two into LF before the lexer sees the text, so a `#` comment ends
where the editor's line does. The other characters that Python's `splitlines()` or
some editors take for line breaks (VT, FF, FS, GS, RS, NEL, U+2028, U+2029), the
other control characters, and the bidirectional controls that can make a line
display in another order than it is read (U+202E, ...) are refused anywhere in a
file, comments and strings included (E0102): what modelc reads is what a person sees.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import pkgutil
import re
from dataclasses import replace

import lark
from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedToken, VisitError

from modelc import syntax as S
from modelc.builtins import MAX_INT
from modelc.diagnostics import Diagnostic, SourceFile, Span, SpecError, error
from modelc.names import label_template_problem

__all__ = ["NotASpec", "normalize", "parse", "source_file"]

# Readable names for the grammar's named terminals in "expected ..." lists.
_TERMINAL_NAMES = {
    "NAME": "a name",
    "INT": "an integer",
    "FLOAT": "a number",
    "STRING": "a string",
    "COMPOP": "a comparison",
    "ADDOP": "'+' or '-'",
    "MULOP": "'*', '/', '//', '%' or '@'",
    "DTYPE": "an element type (int64, float32, ...)",
    "$END": "end of file",
}


# NOTE: [Parser tables] Building the LALR tables from the grammar takes about 0.1 s, every
# process. modelc.grammar.tables holds them, written by scripts/gen_parser_tables.py (a
# test fails when they are stale); they are used only when made from this very grammar and
# these options (`grammar_key`) by the installed version of Lark (Lark's serialized form is
# internal to it), and otherwise the parser is built from the grammar: slower, never wrong.
_OPTIONS = dict(parser="lalr", propagate_positions=True, maybe_placeholders=True)


def grammar_text() -> str:
    return pkgutil.get_data("modelc.grammar", "modelc.lark").decode("utf-8")


def grammar_key(text: str) -> str:
    """The SHA-256 of what the tables are made from: the grammar's text and the options."""
    return hashlib.sha256(f"{text}\n{sorted(_OPTIONS.items())!r}".encode()).hexdigest()


def build_parser(text: str) -> Lark:
    """The parser built from the grammar's text (what the shipped tables are made from)."""
    return Lark(text, **_OPTIONS)


def stale_tables() -> str | None:
    """Why modelc.grammar.tables cannot be used here, or None when it can."""
    from modelc.grammar import tables

    if tables.GRAMMAR_KEY != grammar_key(grammar_text()):
        return "the grammar or the parser's options changed since they were written"
    if tables.LARK_VERSION != lark.__version__:
        return f"they were written by Lark {tables.LARK_VERSION}, and Lark {lark.__version__} is installed"
    return None


@functools.cache
def _parser() -> Lark:
    if stale_tables() is None:
        from modelc.grammar import tables

        return Lark._load_from_dict(tables.DATA, tables.MEMO)
    return build_parser(grammar_text())


def normalize(text: str) -> str:
    """The text as the lexer reads it: a leading byte-order mark dropped, CRLF and CR as LF."""
    if text.startswith("\ufeff"):
        text = text[1:]
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def source_file(text: str, path: str, shown_from: int = 1) -> SourceFile:
    return SourceFile(path, normalize(text), shown_from)


class NotASpec(SpecError):
    """A syntax error before the file showed it is a spec (`SourceFile.shown_from`): the
    file may be anything (/etc/passwd), so the error does not quote it."""

    def __init__(self, span: Span):
        self.span = span
        super().__init__(Diagnostic("E0104", "not a modelc spec (it does not parse as one here; "
                                    "its text is not shown)", span, NOT_SHOWN_HINT))  # fmt: skip


NOT_SHOWN_HINT = ("modelc shows the text of a file only if its name ends in .model, or from its "
                  "first line that starts a model, block or import")  # fmt: skip


def parse(text: str, path: str, shown_from: int = 1) -> S.Module:
    """Parse one spec file. Raises SpecError (E0101-E0103) on bad input, and NotASpec
    (E0104) for an error in a line before `shown_from`."""
    source = source_file(text, path, shown_from)
    try:
        return _parse(source)
    except SpecError as exc:
        span = exc.diagnostics[0].span
        if span is not None and span.line < shown_from:
            raise NotASpec(span) from None
        raise


def _parse(source: SourceFile) -> S.Module:
    text = source.text
    _check_characters(source)
    try:
        tree = _parser().parse(text)
        items = _ToAst(source).transform(tree)
    except VisitError as exc:  # an error raised inside the transformer
        if isinstance(exc.orig_exc, SpecError):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):  # deep nesting the parser itself survived
            raise _too_deep(source) from None
        raise
    except UnexpectedToken as exc:
        raise _unexpected_token(source, exc) from None
    except UnexpectedCharacters as exc:
        span = Span(source, exc.line, exc.column, exc.line, exc.column + 1)
        char = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else "?"
        raise error("E0102", f"unexpected character {char!r}", span, _char_hint(char)) from None
    except UnexpectedEOF as exc:
        raise _eof(source, sorted(exc.expected)) from None
    except RecursionError:
        raise _too_deep(source) from None
    return S.Module(source.path, tuple(items))


# Refused anywhere in a file, see NOTE: [Lines]. (LF is the only line break left after
# normalize; TAB is whitespace.)
_LINE_BREAKS = {"\x0b": "vertical tab", "\x0c": "form feed", "\x1c": "file separator",
                "\x1d": "group separator", "\x1e": "record separator", "\x85": "next line (NEL)",
                "\u2028": "line separator", "\u2029": "paragraph separator"}  # fmt: skip
_BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_REFUSED = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029" + _BIDI + "]")


def _check_characters(source: SourceFile) -> None:
    m = _REFUSED.search(source.text)
    if m is None:
        return
    char = m.group()
    line, col = source.position(m.start())
    span = Span(source, line, col, line, col + 1)
    code = f"U+{ord(char):04X}"
    if char in _LINE_BREAKS:
        raise error("E0102", f"{_LINE_BREAKS[char]} ({code}): modelc does not take it for a line "
                    "break, and other programs do", span,
                    "lines end at LF, CRLF or CR; write a newline (or a space) instead")  # fmt: skip
    if char in _BIDI:
        raise error("E0102", f"bidirectional control character {code}", span,
                    "it can make the line display in another order than modelc reads it; "
                    "remove it")  # fmt: skip
    raise error("E0102", f"control character {code}", span,
                "remove it: a control character can change what a terminal shows")  # fmt: skip


def _too_deep(source: SourceFile) -> SpecError:
    return error("E0508", "the spec nests too deeply to parse", Span(source, 1, 1, 1, 2),
                 "nesting is limited by Python's recursion limit")


def _unexpected_token(source: SourceFile, exc: UnexpectedToken) -> SpecError:
    tok = exc.token
    accepts = _accepts(exc)
    if tok.type == "$END":
        return _eof(source, accepts)
    span = _tok_span(source, tok)
    expected = _describe_expected(accepts)
    hint = _token_hint(source, tok, accepts, exc)
    return error("E0101", f"unexpected {tok.value!r}, expected {expected}", span, hint)


def _token_hint(source: SourceFile, tok: Token, accepts: list[str], exc) -> str | None:
    hint = _reserved_hint(source, tok) or _step_keyword_hint(source, tok) or _training_hint(source, tok)
    if hint:
        return hint
    if tok.type == "IF" or tok.value == "if":
        return "a conditional is an expression: `a if cond else b`"
    if "=>" in source.text[tok.start_pos - 1 : tok.start_pos + 2]:
        return "a chain step is written '->'"
    if tok.value == "=" and "RPAR" in accepts:
        return "keyword arguments are written `name=value` inside a call"
    if accepts == ["COMMA", "EQUAL"]:
        return _dangling_name_hint(exc)
    return None


_RESERVED = ("input", "output", "model", "import", "def")


def _reserved_hint(source: SourceFile, tok: Token) -> str | None:
    """`-> model: linear(8)`, `input = ...`: a reserved word used as a label or a name."""
    text = source.text
    word, label = None, False
    if tok.value in _RESERVED and re.match(r"[ \t]*(?::|=(?!=))", text[tok.end_pos :]):
        word = tok.value  # the parser stopped at the word
        label = re.match(r"[ \t]*:", text[tok.end_pos :]) is not None
    elif tok.value in (":", "="):  # ... or after it, where a name had to follow
        m = re.search(r"\b(input|output|model|import|def)[ \t]*$", text[: tok.start_pos])
        word, label = (m.group(1) if m else None), tok.value == ":"
    if word is None:
        return None
    if label:  # a module may take the word: quoted (Hugging Face's `model.layers.0`)
        return (f"'{word}' is a reserved word; to name a module '{word}', quote the label: "
                f'"{word}": ...')  # fmt: skip
    return (f"'{word}' is a reserved word (input, output, model, import and def are never names); "
            f"choose another name, such as '{word}_'")  # fmt: skip


def _step_keyword_hint(source: SourceFile, tok: Token) -> str | None:
    """`ys = for e in 0..4 { ... }`: `for` and `repeat` are steps, they need a tensor."""
    line = source.line(tok.line)[: tok.column - 1]
    m = re.search(r"(?:^|=|,|\boutput)[ \t]*(for|repeat)\b[ \t]*(?:[A-Za-z_]\w*[ \t]*)?$", line)
    if m is None:
        return None
    example = "x -> for i in 0..4 { ... }" if m.group(1) == "for" else "x -> repeat 3 relu"
    return (f"'{m.group(1)}' is a step: it applies to the tensor before it, as in "
            f"`y = {example}`")  # fmt: skip


def _training_hint(source: SourceFile, tok: Token) -> str | None:
    """`output training` alone: after `output`, `training` is the keyword, not a value."""
    if not re.search(r"\boutput[ \t]+training[ \t]*$", source.text[: tok.start_pos]):
        return None
    return ("after 'output', 'training' marks a training-only output (`output training aux = ...`); "
            "to output a value named training, rename it")  # fmt: skip


def _accepts(exc: UnexpectedToken) -> list[str]:
    """The terminals the parser can take where it stopped.

    NOTE: [Expected terminals] Lark's `exc.expected` is the lexer's view when the
    contextual lexer fails (keywords folded into NAME, so 'for' and 'model'
    go missing) and a not-yet-reduced LALR state's otherwise (too many, e.g.
    ')' outside any call). The interactive parser's `accepts()` is exact.
    """
    parser = getattr(exc, "interactive_parser", None)
    return sorted(parser.accepts() if parser is not None else exc.expected)


def _dangling_name_hint(exc: UnexpectedToken) -> str | None:
    # Only a statement's target list (`a, b =`) accepts exactly ',' and '='.
    stack = getattr(getattr(exc, "state", None), "value_stack", None) or [None]
    last = stack[-1]
    if not isinstance(last, Token) or last.type != "NAME":
        return None
    return (f"'{last}' starts a new statement; to continue the chain on the line before, "
            f"write '-> {last}'")  # fmt: skip


def _eof(source: SourceFile, expected: list[str]) -> SpecError:
    lines = source.text.rstrip().split("\n")  # point at the last line with text
    line = len(lines)
    col = len(lines[-1]) + 1
    span = Span(source, line, max(col - 1, 1), line, col)
    msg = f"unexpected end of file, expected {_describe_expected(expected)}"
    return error("E0101", msg, span, "is a closing '}' or ')' missing?")


# Where all of these can come, "an expression" says it better than eleven tokens.
_EXPRESSION_START = frozenset(
    {"FALSE", "FLOAT", "INT", "LPAR", "LSQB", "MINUS", "NAME", "PLUS", "STRING", "TRUE"}
)


def _describe_expected(names) -> str:
    parser = _parser()
    names = set(names)
    words = set()
    if _EXPRESSION_START <= names:
        names -= _EXPRESSION_START | {"NOT"}
        words.add("an expression")
    for name in names:
        if name == "STRING" and "REPEAT" in names:  # where a step starts, a string is a label
            words.add('a quoted label ("model": ...)')
            continue
        if name in _TERMINAL_NAMES:
            words.add(_TERMINAL_NAMES[name])
            continue
        try:
            pattern = parser.get_terminal(name).pattern
        except KeyError:
            words.add(name.lower())
            continue
        words.add(f"'{pattern.value}'" if pattern.type == "str" else name.lower())
    ordered = sorted(words)
    if len(ordered) > 8:
        ordered = ordered[:8] + ["..."]
    return "one of " + ", ".join(ordered) if len(ordered) > 1 else ordered[0]


def _char_hint(char: str) -> str | None:
    if char in "'`":
        return 'strings use double quotes: "same"'
    if char == ";":
        return "statements need no separator; start the next one on a new line"
    if char == '"':
        return 'a string ends with " on the line where it starts (\\n in it is a line break)'
    return None


def _tok_span(source: SourceFile, tok: Token) -> Span:
    end_line = tok.end_line or tok.line
    end_col = tok.end_column or tok.column + len(tok.value)
    return Span(source, tok.line, tok.column, end_line, end_col)


def _fold(operands, make):
    """`a op b op c` as ((a op b) op c), without recursion; each node spans its operands."""
    out = operands[0]
    for right in operands[1:]:
        span = replace(out.span, end_line=right.span.end_line, end_col=right.span.end_col)
        out = make(out, right, span)
    return out


def _one_step(steps):
    """A branch of a conditional step: the steps of `a -> b` as one (an unlabelled group)."""
    if not isinstance(steps, tuple):
        return steps
    if len(steps) == 1:
        return steps[0]
    first, last = steps[0].span, steps[-1].span
    return S.Seq(steps, replace(first, end_line=last.end_line, end_col=last.end_col))


@v_args(meta=True)
class _ToAst(Transformer):
    """Builds syntax.* nodes; every node gets the span of its tree node."""

    def __init__(self, source: SourceFile):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span:
        if getattr(meta, "empty", True):
            return Span(self.source, 1, 1, 1, 1)
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _tspan(self, tok: Token) -> Span:
        return _tok_span(self.source, tok)

    # ---- items
    def start(self, meta, items):
        return items

    def import_decl(self, meta, c):
        return S.Import(self._string(c[0]), self._span(meta))

    def const_def(self, meta, c):
        return S.Const(str(c[0]), c[1], self._span(meta))

    def layer_def(self, meta, c):
        return S.Def(str(c[0]), c[1], self._span(meta), self._tspan(c[0]))

    def block_def(self, meta, c):
        return self._def("block", meta, c)

    def model_def(self, meta, c):
        return self._def("model", meta, c)

    def _def(self, kind, meta, c):
        name, params, body = c
        return S.BlockDef(kind, str(name), params, body, self._span(meta), self._tspan(name))

    def params(self, meta, c):
        return tuple(p for p in c if p is not None)

    def param(self, meta, c):
        name, types, default = c
        return S.Param(str(name), tuple(str(t) for t in types), default, self._span(meta),
                       tuple(self._tspan(t) for t in types))  # fmt: skip

    def param_type(self, meta, c):
        return c

    def body(self, meta, c):
        return tuple(c)

    # ---- statements
    def input_stmt(self, meta, c):
        name, dtype, shape = c
        return S.Input(str(name), shape, self._span(meta), None if dtype is None else str(dtype))

    def output_named(self, meta, c):
        training, name, value = c
        return S.Output(str(name), (value,), self._span(meta), self._tspan(training) if training else None)

    def output_exprs(self, meta, c):
        return S.Output(None, tuple(c[1:]), self._span(meta), self._tspan(c[0]) if c[0] else None)

    def assign(self, meta, c):
        return S.Assign(tuple(str(n) for n in c[:-1]), c[-1], self._span(meta))

    # ---- expressions
    def ifelse(self, meta, c):
        return S.IfElse(c[0], c[1], c[2], self._span(meta))

    def chain(self, meta, c):
        return S.Chain(c[0], tuple(c[1:]), self._span(meta))

    def or_(self, meta, c):
        return _fold(c, lambda a, b, span: S.BoolOp("or", a, b, span))

    def and_(self, meta, c):
        return _fold(c, lambda a, b, span: S.BoolOp("and", a, b, span))

    def not_(self, meta, c):
        return S.Not(c[0], self._span(meta))

    def compare(self, meta, c):
        return S.Compare(tuple(str(t) for t in c[1::2]), tuple(c[0::2]), self._span(meta))

    def range(self, meta, c):
        return S.Range(c[0], c[1], self._span(meta))

    def binop(self, meta, c):
        # [a, op, b, op, c, ...]: operators and operands alternate.
        ops = iter(c[1::2])
        return _fold(c[0::2], lambda a, b, span: S.BinOp(str(next(ops)), a, b, span))

    def neg(self, meta, c):
        return S.Neg(c[0], self._span(meta))

    def factor(self, meta, c):  # unary plus
        return c[0]

    def pow(self, meta, c):
        return S.BinOp("**", c[0], c[1], self._span(meta))

    def index(self, meta, c):
        return S.Index(c[0], c[1], self._span(meta))

    def int_(self, meta, c):
        try:
            value = int(c[0])
        except ValueError:  # more digits than Python converts (4,300)
            raise error("E0508", f"number too large ({len(c[0])} digits)", self._tspan(c[0]),
                        f"numbers are limited to {MAX_INT}") from None  # fmt: skip
        return S.Literal(value, self._span(meta))

    def float_(self, meta, c):
        value = float(c[0])
        if not math.isfinite(value):  # 1e999: an infinity would flow into sizes and attributes
            text = c[0] if len(c[0]) <= 20 else c[0][:17] + "..."
            raise error("E0508", f"number {text} is too large", self._tspan(c[0]),
                        "numbers with a fraction or exponent are limited to about 1.8e308")  # fmt: skip
        return S.Literal(value, self._span(meta))

    def string(self, meta, c):
        return S.Literal(self._string(c[0]), self._span(meta))

    def true(self, meta, c):
        return S.Literal(True, self._span(meta))

    def false(self, meta, c):
        return S.Literal(False, self._span(meta))

    def name(self, meta, c):
        return S.Name(str(c[0]), self._span(meta))

    def list_(self, meta, c):
        return S.List(tuple(x for x in c if x is not None), self._span(meta))

    def call(self, meta, c):
        name, *args = c
        args = [a for a in args if a is not None]
        pos = tuple(a for a in args if not isinstance(a, S.Kwarg))
        kws = tuple(a for a in args if isinstance(a, S.Kwarg))
        return S.Call(str(name), pos, kws, self._span(meta), self._tspan(name))

    def kwarg(self, meta, c):
        return S.Kwarg(str(c[0]), c[1], self._span(meta))

    def labelled(self, meta, c):
        return S.Labelled(self._label(c[0]), c[1], self._span(meta), self._tspan(c[0]))

    def for_list(self, meta, c):
        return S.ForList(str(c[0]), c[1], c[2], self._span(meta))

    def labelled_list(self, meta, c):
        return replace(c[1], label=self._label(c[0]), label_span=self._tspan(c[0]), span=self._span(meta))

    # ---- steps
    def labelled_step(self, meta, c):
        return S.LabelledStep(self._label(c[0]), c[1], self._span(meta), self._tspan(c[0]))

    def _label(self, tok: Token) -> str:
        """A label: a name, a keyword (`for:`), or a quoted module name (`"model"`, `"block1-0"`,
        `"denseblock{i}"`: the elaborator puts in the values); NOTE: [Module names] in names.py."""
        if tok.type != "STRING":
            return str(tok)
        return self._module_name(tok, "label")

    def _module_name(self, tok: Token, what: str) -> str:
        text = self._string(tok)
        problem = label_template_problem(text)
        if problem:
            raise error("E0207", f"{what} {tok} cannot name a module: {problem[0]}", self._tspan(tok), problem[1])
        return text

    def bare(self, meta, c):
        return S.Bare(str(c[0]), self._span(meta))

    def repeat(self, meta, c):
        return S.Repeat(c[0], c[1], self._span(meta))

    def for_(self, meta, c):
        prefix = self._module_name(c[2], "prefix") if c[2] is not None else None
        span = self._tspan(c[2]) if c[2] is not None else None
        return S.For(str(c[0]), c[1], c[3], self._span(meta), prefix, span)

    def group(self, meta, c):
        return S.Seq(c[0] if isinstance(c[0], tuple) else (c[0],), self._span(meta))

    def step_if(self, meta, c):
        then, cond, else_ = c
        return S.StepIf(_one_step(then), cond, None if else_ is None else _one_step(else_), self._span(meta))

    def seq_list(self, meta, c):
        return S.Seq(tuple(x for x in c if x is not None), self._span(meta), brackets=True)

    def steps(self, meta, c):
        return tuple(c)

    def _string(self, tok: Token) -> str:
        # NOTE: [String literals] JSON escapes are a strict subset of what the
        # grammar admits; anything else (\q, \x41) is rejected, never evaluated.
        try:
            value = json.loads(str(tok))
        except ValueError:
            raise error("E0103", f"invalid string literal {tok}", self._tspan(tok),
                        'allowed escapes: \\" \\\\ \\n \\t \\uXXXX') from None
        if not isinstance(value, str):
            raise error("E0103", f"invalid string literal {tok}", self._tspan(tok))
        return value
