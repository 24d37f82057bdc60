"""Python literals for generated code.

NOTE: [No code injection] Values from a spec reach generated source only
through :func:`literal` (numbers, booleans, strings, tuples of those) and
:func:`modelc.names.Namespace` (identifiers). Anything else is a CompilerBug.
"""

from __future__ import annotations

import math

from modelc.diagnostics import CompilerBug

__all__ = ["comment", "doc", "literal"]


def literal(v) -> str:
    if v is None or isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return repr(v)
    if isinstance(v, float):
        if math.isnan(v):
            return 'float("nan")'
        if math.isinf(v):
            return 'float("inf")' if v > 0 else 'float("-inf")'
        return repr(v)
    if isinstance(v, str):
        # ruff's choice: double quotes, unless the text holds more of them than single quotes
        return _string(v, "'" if v.count('"') > v.count("'") else '"')
    if isinstance(v, tuple):
        inner = ", ".join(literal(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(literal(x) for x in v) + "]"
    raise CompilerBug(f"cannot emit a literal of type {type(v).__name__}")


def _string(s: str, quote: str = '"') -> str:
    # Every non-printable or non-ASCII character escaped.
    if s.isascii() and s.isprintable() and quote not in s and "\\" not in s:
        return quote + s + quote  # nothing to escape (the common case, and much faster)
    out = [quote]
    for ch in s:
        if ch == quote:
            out.append("\\" + quote)
        elif ch == "\\":
            out.append("\\\\")
        elif 32 <= ord(ch) < 127:
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    out.append(quote)
    return "".join(out)


def comment(text: str) -> str:
    """Text safe after `#`: one line of printable ASCII (escapes for the rest)."""
    return _string(text)[1:-1].replace('\\"', '"')


def doc(text: str) -> str:
    """Text safe inside a triple-double-quoted docstring: as `comment`, with
    double quotes shown as single quotes so nothing can close the string."""
    return comment(text).replace('"', "'")
