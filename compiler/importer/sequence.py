"""`nn.Sequential` as a numbered sequence, with runs of one block folded into `for` loops.

A Sequential's children are named `0`, `1`, ... (or with a common prefix, as ViT's
`encoder_layer_0`, or by name, as `heads.head`); in a labelled group `label: (...)` the spec
numbers unlabelled steps in order, so the keys come out the same. Consecutive children that
are instances of one block become one `for i in 0..n { Block(args) }`, each argument written
as the simplest expression of `i` that gives every copy its value: a constant, `a if i == 0
else b` (the first copy differs: ResNet's strided, downsampling block), `[a, b][i % 2]`
(alternating: Swin's shifted windows) or a list indexed by `i`.
"""

from __future__ import annotations

import re

from modelc.importer.raw import Raw

__all__ = ["for_args", "seq_raw"]

LIST_WIDTH = 100


def seq_raw(items: list[tuple[str, Raw]], path: str) -> Raw:
    numbered = [name for name, _ in items] == [str(i) for i in range(len(items))]
    prefix = None if numbered else _prefix([name for name, _ in items])
    labels = [None if numbered or prefix is not None else name for name, _ in items]
    key = "seq[" + ";".join(f"{lab or ''}:{r.key}" for lab, (_, r) in zip(labels, items)) + f"]{prefix or ''}"
    values = [v for _, r in items for v in r.values]
    names = [f"{name}_{n}" if r.kind != "leaf" else n for name, r in items for n in r.names]

    def steps(exprs: list[str]) -> list[str]:
        return _steps(items, labels, prefix, exprs)

    def render(exprs: list[str], extras: list[str]) -> str:
        parts = steps(exprs)
        if len(parts) == 1 and parts[0].startswith(("for ", "repeat ")):
            return parts[0]  # `layer1: repeat 3 Block`: the labelled loop is the sequence
        one = "(" + " -> ".join(parts) + ")"
        if len(one) <= LIST_WIDTH or len(parts) == 1:
            return one
        return "(\n" + "\n-> ".join(parts) + "\n)"

    raw = Raw("seq", key, values, names, render, path, body=steps)
    return raw


def nested(raw: Raw, exprs: list[str]) -> str:
    """A Sequential inside a Sequential: an unlabelled list, which takes one number itself."""
    return "[" + ", ".join(raw.body(exprs)) + "]"


def _prefix(names: list[str]) -> str | None:
    m = re.fullmatch(r"(.*\D)0", names[0]) if names else None
    if m and names == [f"{m.group(1)}{i}" for i in range(len(names))] and re.fullmatch(r"[A-Za-z_]\w*", m.group(1)):
        return m.group(1)
    return None


def _steps(items: list[tuple[str, Raw]], labels: list, prefix: str | None, exprs: list[str]) -> list[str]:
    out, at, i = [], 0, 0
    while i < len(items):
        run = _run(items, labels, i)
        raws = [r for _, r in items[i : i + run]]
        slices = []
        for r in raws:
            slices.append(exprs[at : at + len(r.values)])
            at += len(r.values)
        if run > 1:
            out.append(_loop(raws, slices, prefix))
        else:
            out.append(_item(raws[0], slices[0], labels[i] or (f"{prefix}{i}" if prefix else None)))
        i += run
    return out


def _run(items: list[tuple[str, Raw]], labels: list, i: int) -> int:
    """How many children from i on are unlabelled instances of one block."""
    first = items[i][1]
    if first.kind != "block" or labels[i] is not None:
        return 1
    n = 1
    while i + n < len(items) and items[i + n][1].key == first.key and labels[i + n] is None:
        n += 1
    return n


def _item(raw: Raw, exprs: list[str], label: str | None) -> str:
    text = nested(raw, exprs) if raw.kind == "seq" else raw.call(exprs)
    return f"{label}: {text}" if label else text


def _loop(raws: list[Raw], slices: list[list[str]], prefix: str | None) -> str:
    group = raws[0].group
    if group is None:  # while computing keys
        return "loop(" + " -> ".join(r.call(s) for r, s in zip(raws, slices)) + ")"
    per_copy = [[s[col] for _, _, col in group.params] for s in slices]
    args = for_args(per_copy)
    n = len(raws)
    call = f"{group.name}({', '.join(args)})" if args else group.name
    if all(a == b for a, b in zip(per_copy, per_copy[1:])) and prefix is None:
        return f"repeat {n} {call}"
    tail = f' prefix "{prefix}"' if prefix else ""
    return f"for i in 0..{n}{tail} {{ {call} }}"


def for_args(per_copy: list[list[str]]) -> list[str]:
    """The argument expressions, in `i`, of copies whose arguments are `per_copy[i]`."""
    if not per_copy:
        return []
    return [_in_i([copy[k] for copy in per_copy]) for k in range(len(per_copy[0]))]


def _in_i(values: list[str]) -> str:
    if len(set(values)) == 1:
        return values[0]
    if len(set(values[1:])) == 1:
        if (values[0], values[1]) == ("true", "false"):
            return "i == 0"
        return f"{values[0]} if i == 0 else {values[1]}"
    if len(values) > 3 and all(v == values[k % 2] for k, v in enumerate(values)):
        return f"[{values[0]}, {values[1]}][i % 2]"
    return f"[{', '.join(values)}][i]"
