"""`modelc compile --standalone`: the generated file with the `modelc.runtime` helpers it uses
copied in, so that it needs only torch.

The runtime's modules are read as text and parsed (nothing here imports them, nor torch): the
helpers the file names (`rt.Transpose`, `rt.window_partition`), the helpers those use in
turn, and the imports they need are copied in their order in the runtime, and `rt.NAME`
becomes `NAME`. A helper whose name a class of the file already has is copied as `NAME_rt`.
The copied code is modelc's own, never text from a spec; the generated part was checked by
`codecheck` before.
"""

from __future__ import annotations

import ast
import pkgutil
import re
from dataclasses import dataclass

__all__ = ["inline_runtime"]

_MODULES = ("weights", "layers", "sequence", "vision", "checkpoint")  # modelc.runtime's, and its __init__
_RT = re.compile(r"(?<![\w.])rt\.(\w+)")
_IMPORT_LINE = "from modelc import runtime as rt"


@dataclass
class _Def:
    name: str
    text: str
    uses: set[str]  # the names it reads
    order: int


def inline_runtime(source: str) -> str:
    """`source` (a generated file) with its `modelc.runtime` helpers inlined; unchanged when it
    uses none."""
    if _IMPORT_LINE not in source:
        return source
    defs, imports = _runtime()
    wanted: list[str] = []
    stack = sorted(set(_RT.findall(source)))
    while stack:
        name = stack.pop()
        if name in wanted:
            continue
        wanted.append(name)
        stack.extend(sorted(n for n in defs[name].uses if n in defs and n not in wanted))
    chosen = sorted((defs[n] for n in wanted), key=lambda d: d.order)
    taken = set(re.findall(r"^class (\w+)", source, re.MULTILINE))
    renamed = {d.name: f"{d.name}_rt" for d in chosen if d.name in taken}
    body = "\n\n\n".join(_rename(d.text, renamed) for d in chosen)
    used = set().union(*(d.uses for d in chosen))
    needed = [stmt for stmt, names in imports if names & used and f"\n{stmt}\n" not in source]
    section = ("# ---- modelc.runtime's helpers that this file uses, inlined (--standalone) ----\n"
               + "\n".join(dict.fromkeys(needed)) + "\n\n\n" + body + "\n")  # fmt: skip
    from modelc.emit import NEEDS_RUNTIME

    source = source.replace(f"# {NEEDS_RUNTIME}\n", "# Needs: torch only (modelc.runtime's helpers are copied in below)\n")
    head, _, rest = source.partition(_IMPORT_LINE + "\n")
    rest = _RT.sub(lambda m: renamed.get(m.group(1), m.group(1)), rest)
    return head + "\n" + section + rest


def _rename(text: str, renamed: dict[str, str]) -> str:
    for old, new in renamed.items():
        text = re.sub(rf"(?<![\w.]){old}\b", new, text)
    return text


def _runtime() -> tuple[dict[str, _Def], list[tuple[str, set[str]]]]:
    """The runtime's top-level definitions by name, and its import statements with the names
    each binds."""
    defs: dict[str, _Def] = {}
    imports: list[tuple[str, set[str]]] = []
    order = 0
    for module in ("__init__", *_MODULES):
        text = pkgutil.get_data("modelc.runtime", f"{module}.py").decode("utf-8")
        lines = text.splitlines()
        for node in ast.parse(text).body:
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(("modelc", "__future__")):
                    continue
                names = {(a.asname or a.name).split(".")[0] for a in node.names}
                imports.append((ast.unparse(node), names))
                continue
            name = _defined(node)
            if name is None or name.startswith("__"):
                continue
            first = min([node.lineno, *(d.lineno for d in getattr(node, "decorator_list", []))])
            body = "\n".join(lines[first - 1 : node.end_lineno])
            uses = {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}
            defs[name] = _Def(name, body, uses, order)
            order += 1
    return defs, imports


def _defined(node: ast.stmt) -> str | None:
    if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
        return node.name
    if isinstance(node, (ast.Assign, ast.AnnAssign)):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        if len(targets) == 1 and isinstance(targets[0], ast.Name):
            return targets[0].id
    return None
