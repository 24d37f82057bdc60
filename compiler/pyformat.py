"""Line layout for generated code, matching `ruff format` (line length 88).

A statement is a prefix (`x = `), an expression, and an optional trailing
comment (the spec location). It stays on one line when it fits; otherwise the
comment moves to its own line above, and a call that still does not fit is
split: its arguments on one indented line if they fit, else one per line with a
trailing comma (ruff's "magic trailing comma" keeps that layout stable). A tuple or
dict literal that does not fit goes straight to one item per line, as ruff splits
collections.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

__all__ = ["LINE", "CallExpr", "Repeat", "flat", "leaves", "render"]

LINE = 88


@dataclass
class CallExpr:
    callee: str
    args: list = field(default_factory=list)  # str | CallExpr
    comments: list[str | None] | None = None  # per argument; forces one per line
    split: bool = False  # always one argument per line
    collection: bool = False  # a tuple or dict literal: when split, always one item per line
    brackets: str = "()"  # "{}" for a dict literal


@dataclass
class Repeat:
    """`*[item for _ in range(count)]`: an item of a call's arguments, built `count` times."""

    item: object  # str | CallExpr
    count: str


def flat(e) -> str:
    if isinstance(e, str):
        return e
    if isinstance(e, Repeat):
        return f"*[{flat(e.item)} for _ in range({e.count})]"
    one = "," if e.collection and e.brackets == "()" and not e.callee and len(e.args) == 1 else ""  # (x,)
    return f"{e.callee}{e.brackets[0]}{', '.join(flat(a) for a in e.args)}{one}{e.brackets[1]}"


def leaves(e, f):
    """`e` with `f` applied to each text it is made of, in the order `flat` writes them."""
    if isinstance(e, str):
        return f(e)
    if isinstance(e, Repeat):
        item = leaves(e.item, f)
        return Repeat(item, f(e.count))
    callee = f(e.callee)
    return replace(e, callee=callee, args=[leaves(a, f) for a in e.args])


def render(e, indent: int, prefix: str = "", suffix: str = "", comment: str | None = None) -> list[str]:
    pad = " " * indent
    lines: list[str] = []
    forced = isinstance(e, CallExpr) and (e.split or e.comments)
    one = pad + prefix + flat(e) + suffix
    if not forced:
        if comment and len(one) + 4 + len(comment) <= LINE:
            return [f"{one}  # {comment}"]
        if comment:
            lines.append(f"{pad}# {comment}")
        if len(one) <= LINE or not isinstance(e, (CallExpr, Repeat)):
            return lines + [one]
    elif comment:
        lines.append(f"{pad}# {comment}")
    if isinstance(e, Repeat):  # as ruff splits a comprehension
        item = render(e.item, indent + 4, "", "")
        return lines + [f"{pad}{prefix}*[", *item, f"{pad}    for _ in range({e.count})", f"{pad}]{suffix}"]
    head = f"{pad}{prefix}{e.callee}{e.brackets[0]}"
    tail = f"{pad}{e.brackets[1]}{suffix}"
    if not forced and not e.collection:
        middle = " " * (indent + 4) + ", ".join(flat(a) for a in e.args)
        if len(middle) <= LINE:
            return lines + [head, middle, tail]
    comments = e.comments or [None] * len(e.args)
    body: list[str] = []
    for arg, note in zip(e.args, comments):
        body += render(arg, indent + 4, "", ",", note)
    return lines + [head, *body, tail]
