"""Fingerprinting: block instances with one structure become one parameterized block.

Instances of a class whose templates have the same key (the traced graph, the children's
structure and every hyper-parameter left as a hole) share a block. A hole whose value is the
same in every instance stays a literal; the others become parameters, one per distinct
column of values (columns equal in every instance, such as ResNet's conv1 and conv2 widths,
are one parameter). Instances of one class with different structures get `Name`, `Name_1`, ...
"""

from __future__ import annotations

from modelc.importer.expr import literal
from modelc.importer.raw import WILD, Group, Raw

__all__ = ["assign", "definition"]


def assign(blocks: list[Raw], taken: set[str]) -> list[Group]:
    """Groups the block instances (in order) and names them; returns the groups in order."""
    groups: dict[str, Group] = {}
    per_class: dict[str, int] = {}
    fixed: dict[str, Group] = {}
    for raw in blocks:
        if raw.fixed is not None:  # a known module: its own parameters, its own text
            g = fixed.setdefault(raw.block_name, Group(raw.block_name, raw.key, text=raw.fixed))
            g.instances.append(raw)
            g.params = [(n, "", i) for i, n in enumerate(raw.names)]
            raw.group = g
            continue
        g = groups.get(raw.key)
        if g is None:
            g = Group(_name(raw.block_name, per_class, taken), raw.key)
            groups[raw.key] = g
        g.instances.append(raw)
        raw.group = g
    for g in groups.values():
        _parameters(g)
    out: list[Group] = []
    for raw in blocks:
        if raw.group not in out:
            out.append(raw.group)
    return out


def _name(base: str, per_class: dict[str, int], taken: set[str]) -> str:
    while True:
        n = per_class.get(base, 0)
        per_class[base] = n + 1
        name = base if n == 0 else f"{base}_{n}"
        if name not in taken:
            taken.add(name)
            return name


def _parameters(g: Group) -> None:
    """Constant columns become literals, varying ones parameters (equal columns merged)."""
    insts = g.instances
    ncols = len(insts[0].values)
    exprs: list[str] = [""] * ncols
    params: list[tuple[str, str, int]] = []
    for col in range(ncols):
        known = [r.values[col] for r in insts if r.values[col] is not WILD]
        if not known:
            exprs[col] = "false"
            continue
        if all(_same(v, known[0]) for v in known):
            exprs[col] = literal(known[0])
            continue
        for name, _, other in params:
            if _mergeable(insts, col, other):
                exprs[col] = name
                break
        else:
            params.append((f"\x00{col}", _type(known), col))
            exprs[col] = f"\x00{col}"
    names = _short_names([insts[0].names[col] for _, _, col in params])
    rename = {old: new for (old, _, _), new in zip(params, names)}
    g.params = [(rename[old], typ, col) for old, typ, col in params]
    g.exprs = [rename.get(e, e) for e in exprs]


def _same(a, b) -> bool:
    return type(a) is type(b) and a == b


def _mergeable(insts: list[Raw], a: int, b: int) -> bool:
    for r in insts:
        x, y = r.values[a], r.values[b]
        if x is not WILD and y is not WILD and not _same(x, y):
            return False
    return True


def _type(values: list) -> str:
    if all(isinstance(v, bool) for v in values):
        return "bool"
    if all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        return "int"
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return "float"
    if all(isinstance(v, (list, tuple)) for v in values):
        return "list"
    return "str"


def _short_names(hints: list[str]) -> list[str]:
    """The shortest trailing part of each hint (`layer1_0_conv2_stride` -> `stride`) that no
    other parameter of the block shares and that is a valid name."""
    parts = [h.split("_") for h in hints]
    out = []
    for i, p in enumerate(parts):
        if "has" in p:  # a flag keeps its `has_`: has_downsample
            p = parts[i] = p[: p.index("has")] + ["_".join(p[p.index("has"):])]
        for k in range(len(p) - 1, -1, -1):
            cand = "_".join(p[k:])
            if not cand or cand[0].isdigit() or cand in out or cand in _RESERVED:
                continue
            clash = any("_".join(q[max(0, len(q) - (len(p) - k)):]) == cand for j, q in enumerate(parts) if j != i)
            if not clash:
                out.append(cand)
                break
        else:
            out.append(f"p{i}_{hints[i]}" if hints[i] else f"p{i}")
    return out


_RESERVED = {"input", "output", "model", "import", "block", "repeat", "for", "in", "prefix", "if", "else",
             "and", "or", "not", "true", "false", "i", "B"}  # fmt: skip


def definition(g: Group) -> str:
    """The block's text: header, inputs, body with the group's expressions."""
    if g.text:
        return g.text
    rep = g.instances[0]
    params = ", ".join(f"{name}: {typ}" for name, typ, _ in g.params)
    head = f"block {g.name}({params}) {{" if params else f"block {g.name} {{"
    inputs = [f"    input {_input_name(n)}" for n in rep.inputs]
    return "\n".join([head, *inputs, *rep.body(g.exprs), "}"])


def _input_name(name: str) -> str:
    from modelc.importer.convert import safe_name

    return safe_name(name)
