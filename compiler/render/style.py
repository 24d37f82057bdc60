"""How diagrams look: colours, fonts, number formats and the HTML-like labels.

NOTE: [Colours]
Fills come from Paul Tol's "light" scheme, made for labelled cells and safe for
the common colour-vision deficiencies; one colour per op family (at most 8, see
`ops.FAMILIES`). Everything a colour says is also said another way: skips are
dashed, diff states carry a +/-/~ mark and a line style, folded runs an `x N`.
Labels are Graphviz HTML-like tables rendered from `templates/diagram_*.jinja`.
"""

from __future__ import annotations

import functools

import jinja2

from modelc.symbolic import Dim, Sym

__all__ = [
    "DIFF", "FAMILY_COLORS", "FONT", "SIZES", "SKIP_COLOR",
    "count", "html", "macs_text", "short",
]  # fmt: skip

FONT = "Helvetica"
SIZES = {"title": 16, "name": 11, "small": 10, "edge": 10, "cluster": 11, "legend": 10}
INK = "#222222"
MUTED = "#444444"
EDGE_COLOR = "#555555"
SKIP_COLOR = "#0077BB"
FAMILY_COLORS = {
    "conv": "#77AADD",  # light blue
    "norm": "#EEDD88",  # light yellow
    "activation": "#EE8866",  # orange
    "pool": "#44BB99",  # mint
    "linear": "#FFAABB",  # pink
    "recurrent": "#BBCC33",  # pear
    "attention": "#99DDFF",  # light cyan
    "tensor": "#DDDDDD",  # pale grey
}
# Diff states: (colour, line style, mark); Tol's "vibrant" scheme.
DIFF = {
    "added": ("#009988", "bold", "+"),
    "removed": ("#CC3311", "dashed", "\u2212"),
    "changed": ("#EE7733", "bold", "~"),
}


@functools.cache
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("modelc.templates", "."),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        autoescape=True,
    )
    env.globals.update(sizes=SIZES, colors=FAMILY_COLORS, ink=INK, muted=MUTED, skip_color=SKIP_COLOR)
    return env


@functools.cache
def _template(name: str) -> jinja2.Template:
    """Loaded once: `get_template` checks the file on disk at every call (a `stat` per box)."""
    return _env().get_template(f"diagram_{name}.jinja")


def html(template: str, **context) -> str:
    """A Graphviz HTML-like label, `<...>`, from `templates/diagram_<template>.jinja`."""
    text = _template(template).render(**context)
    return "<" + "".join(line.strip() for line in text.splitlines()) + ">"


def count(n: int) -> str:
    """`25,557,032`."""
    return f"{n:,}"


def short(n: float) -> str:
    """`25.6M`, `4.09G`, `9.4k`: three significant digits."""
    for div, unit in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            v = n / div
            return f"{v:.3g}{unit}"
    return str(n)


def macs_text(macs: Dim) -> str:
    """`4.09G MACs`; symbolic counts term by term: `22M·S + 6.14k·S² + ... MACs`."""
    return f"{short(macs)} MACs" if isinstance(macs, int) else f"{_polynomial(macs)} MACs"


def _polynomial(d: Sym) -> str:
    terms = []
    for monomial, c in sorted(d.terms.items(), key=lambda mc: (len(mc[0]) == 0, mc[0])):
        powers = {a.key: sum(1 for b in monomial if b.key == a.key) for a in monomial}
        body = "\u00b7".join(k + (_SUPERSCRIPT.get(n, f"^{n}") if n > 1 else "") for k, n in powers.items())
        coeff = short(abs(c))
        text = body if coeff == "1" and body else "\u00b7".join(t for t in (coeff, body) if t)
        terms.append(("\u2212 " if c < 0 else "+ ") + text)
    return " ".join(terms).removeprefix("+ ")


_SUPERSCRIPT = {2: "\u00b2", 3: "\u00b3"}
