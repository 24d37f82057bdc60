"""IR -> PyTorch source. Entry point: :func:`emit`.

One `nn.Module` class per distinct block instance (instances whose generated
code is identical share a class), one class per model, labelled sequences as
`nn.Sequential`. The module tree mirrors the spec's containers, so state_dict
keys are the spec's labels and sequence numbers.

NOTE: [Forward bodies]
A class's `forward` is straight-line code over its *units*: the op nodes that
sit directly in the container and its child containers (each called once).
Units are ordered topologically, ties broken by creation (= source) order.
A value's variable is named after the spec binding it flows into; a name is
reused (`x = self.conv(x)`) only when the value it held has no later use.
"""

from __future__ import annotations

import functools
from collections import defaultdict

import jinja2
import networkx as nx

from modelc.diagnostics import CompilerBug
from modelc.ir import Container, Graph, Ref
from modelc.names import Namespace
from modelc.pyformat import CallExpr, render
from modelc.pyrepr import comment, doc, literal
from modelc.symbolic import is_known

__all__ = ["emit"]

_RESERVED = frozenset({"self", "torch", "nn", "rt"})


@functools.cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("modelc.templates", "."),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
    )


def emit(graphs: list[Graph], source: str) -> str:
    """Python source defining one class per model in `graphs` (and their blocks)."""
    em = _Emitter()
    for graph in graphs:
        em.model(graph)
    imports = ["import torch", "from torch import nn"]
    if em.uses_runtime:
        imports.append("from modelc import runtime as rt")
    header = [f"Model: {comment(_signature(g.name, g.params))}" for g in graphs]
    text = _templates().get_template("file.jinja").render(
        source=comment(_basename(source)), header=header, imports=imports, classes=em.classes
    )
    return text.rstrip("\n") + "\n"


class _Emitter:
    def __init__(self) -> None:
        self.class_names = Namespace(_RESERVED)
        self.classes: list[str] = []
        self.by_text: dict[str, str] = {}
        self.uses_runtime = False

    def model(self, graph: Graph) -> None:
        tree = _Tree(graph)
        self._class(tree, (), model=True)

    # ---- classes ---------------------------------------------------------------------
    def _class(self, tree: _Tree, path: tuple[str, ...], model: bool = False) -> str:
        graph, c = tree.graph, tree.graph.containers[path]
        units = tree.ordered_units(path)
        attrs = Namespace(_RESERVED)
        init: list[str] = []
        for unit in units:
            init += self._init_unit(tree, unit, attrs)
        params, forward, n_out = self._forward(tree, c, units)
        returns = " -> torch.Tensor" if n_out == 1 else f" -> tuple[{', '.join(['torch.Tensor'] * n_out)}]"
        signature = render(CallExpr("def forward", ["self", *(f"{p}: torch.Tensor" for p in params)]),
                           4, suffix=returns + ":")  # fmt: skip
        class_attrs = _model_attrs(graph) if model else []
        doc = _doc(graph, c, model)
        body = dict(doc=doc, class_attrs=class_attrs, init=init or ["        pass"],
                    signature="\n".join(signature), forward=forward)  # fmt: skip
        template = _templates().get_template("class.jinja")
        key = template.render(name="@", **body)
        if not model and key in self.by_text:
            return self.by_text[key]
        name = self.class_names.create(c.name)
        self.by_text[key] = name
        self.classes.append(template.render(name=name, **body).rstrip("\n"))
        return name

    def _init_unit(self, tree: _Tree, unit, attrs: Namespace) -> list[str]:
        kind, ref = unit
        if kind == "node":
            node = tree.graph.node(ref)
            ctor = node.opdef.module(dict(node.attrs)) if node.module else None
            if ctor is None:
                return []
            name = attrs.create(node.local)
            return render(_ctor_expr(ctor), 8, f"self.{name} = ", comment=comment(node.span.short))
        child = tree.graph.containers[ref]
        name = attrs.create(child.local)
        return render(self._module_expr(tree, child), 8, f"self.{name} = ", comment=_where(child))

    def _module_expr(self, tree: _Tree, c: Container):
        """The constructor expression of a child container (a class, or a sequence)."""
        if c.kind == "block":
            return f"{self._class(tree, c.path)}()"
        items, names, notes = [], [], []
        for kind, ref in tree.ordered_units(c.path):
            if kind == "node":
                node = tree.graph.node(ref)
                ctor = node.opdef.module(dict(node.attrs))
                if ctor is None:
                    raise CompilerBug(f"{node.op} in sequence {c.local} has no module form")
                items.append(_ctor_expr(ctor))
                names.append(node.local)
                notes.append(comment(node.span.short))
            else:
                child = tree.graph.containers[ref]
                items.append(self._module_expr(tree, child))
                names.append(child.local)
                notes.append(_where(child))
        if names == [str(i) for i in range(len(names))]:
            return CallExpr("nn.Sequential", items, notes)
        self.uses_runtime = True
        pairs = [CallExpr("", [literal(n), item]) for n, item in zip(names, items)]
        return CallExpr("rt.named_sequential", pairs, notes)

    # ---- forward -------------------------------------------------------------------------
    def _forward(self, tree: _Tree, c: Container, units) -> tuple[list[str], list[str], int]:
        graph = tree.graph
        inputs = c.inputs
        uses = _last_uses(tree, c, units)
        vars_ = _Vars(uses)
        params = []
        for name, ref in inputs:
            params.append(vars_.bind(ref, name, -1) if ref not in vars_.env else vars_.fresh(name))
        lines: list[str] = []
        for i, (kind, ref) in enumerate(units):
            if kind == "node":
                lines += self._node_stmt(tree, ref, vars_, i)
            else:
                lines += self._call_stmt(tree, graph.containers[ref], vars_, i)
        outs = [vars_.env[ref] for _, ref in c.outputs]
        lines.append(f"        return {', '.join(outs)}")
        return params, lines, len(outs)

    def _node_stmt(self, tree: _Tree, n: int, vars_: _Vars, i: int) -> list[str]:
        node = tree.graph.node(n)
        args = [vars_.env[r] for r in tree.graph.inputs_of(n)]
        ctor = node.opdef.module(dict(node.attrs)) if node.module else None
        expr = CallExpr(f"self.{node.local}", args) if ctor else node.opdef.call(dict(node.attrs), args)
        if expr is None:
            raise CompilerBug(f"op {node.op} has neither a module nor a call form")
        targets = [vars_.bind((n, k), node.var or node.local, i) for k in range(len(node.types))]
        return render(expr, 8, f"{', '.join(targets)} = ", comment=comment(node.span.short))

    def _call_stmt(self, tree: _Tree, c: Container, vars_: _Vars, i: int) -> list[str]:
        args = [vars_.env[r] for _, r in c.inputs]
        hint = c.var or c.local
        targets = [vars_.bind(r, name if len(c.outputs) > 1 else hint, i) for name, r in c.outputs]
        return render(CallExpr(f"self.{c.local}", args), 8, f"{', '.join(targets)} = ", comment=_where(c))


class _Tree:
    """Containers' direct members (units) of one graph, ordered for emission."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.members: dict[tuple[str, ...], list[int]] = defaultdict(list)
        for n in graph.nodes():
            self.members[graph.node(n).scope].append(n)
        self.children: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        for path in graph.containers:
            if path:
                self.children[path[:-1]].append(path)

    def unit_of(self, path: tuple[str, ...], n: int):
        scope = self.graph.node(n).scope
        if scope == path:
            return ("node", n)
        if scope[: len(path)] == path:
            return ("container", scope[: len(path) + 1])
        return None

    @functools.cache
    def ordered_units(self, path: tuple[str, ...]) -> list:
        units = {("node", n): n for n in self.members[path] if self.graph.node(n).op != "input"}
        for child in self.children[path]:
            units[("container", child)] = min(self._subtree_nodes(child), default=0)
        dag = nx.DiGraph()
        dag.add_nodes_from(units)
        for unit in units:
            for n in self._nodes_of(unit):
                for u, _ in self.graph.inputs_of(n):
                    src = self.unit_of(path, u)
                    if src is not None and src != unit and src in units:
                        dag.add_edge(src, unit)
        return list(nx.lexicographical_topological_sort(dag, key=lambda u: units[u]))

    def _nodes_of(self, unit) -> list[int]:
        kind, ref = unit
        return [ref] if kind == "node" else self._subtree_nodes(ref)

    @functools.cache
    def _subtree_nodes(self, path: tuple[str, ...]) -> list[int]:
        out = list(self.members[path])
        for child in self.children[path]:
            out += self._subtree_nodes(child)
        return out

    def __hash__(self) -> int:
        return id(self)


class _Vars:
    """Variable names of one forward: spec binding names, reused once dead."""

    def __init__(self, last_use: dict[Ref, float]):
        self.last_use = last_use
        self.env: dict[Ref, str] = {}
        self.holder: dict[str, Ref] = {}
        self.ns = Namespace(_RESERVED)

    def bind(self, ref: Ref, hint: str, at: int) -> str:
        if ref in self.env:
            return self.env[ref]
        base = self.ns._sanitize(hint)
        name, k = base, 0
        while name in _RESERVED or (name in self.holder and self.last_use.get(self.holder[name], -1) > at):
            k += 1
            name = f"{base}_{k}"
        self.holder[name] = ref
        self.env[ref] = name
        return name

    def fresh(self, hint: str) -> str:
        """A parameter that aliases an earlier one (the same tensor passed twice)."""
        name = self.ns._sanitize(hint)
        while name in self.holder:
            name += "_"
        self.holder[name] = (-1, -1)
        return name


def _last_uses(tree: _Tree, c: Container, units) -> dict[Ref, float]:
    last: dict[Ref, float] = {}
    for i, (kind, ref) in enumerate(units):
        used = tree.graph.inputs_of(ref) if kind == "node" else [r for _, r in tree.graph.containers[ref].inputs]
        for r in used:
            last[r] = i
    for _, r in c.outputs:
        last[r] = float("inf")
    return last


def _ctor_expr(ctor) -> CallExpr:
    args = [literal(a) for a in ctor.args] + [f"{k}={literal(v)}" for k, v in ctor.kwargs]
    return CallExpr(ctor.callee, args)


def _where(c: Container) -> str:
    span = c.trace[0].span if c.kind == "block" and c.trace else c.span
    return comment(span.short)


def _signature(name: str, params) -> str:
    return f"{name}({', '.join(f'{k}={literal(v)}' for k, v in params)})"


def _doc(graph: Graph, c: Container, model: bool) -> str:
    where = doc(c.span.short)
    if not model:
        return f"{doc(_signature(c.name, c.args))}, defined at {where}."
    ins = ", ".join(f"{doc(graph.node(n).local)} {graph.node(n).type}" for n in graph.inputs)
    outs = ", ".join(f"{doc(name)} {graph.type_of(ref)}" for name, ref in graph.outputs)
    total = sum(graph.node(n).params for n in graph.nodes())
    lines = [f"{doc(_signature(graph.name, graph.params))}, defined at {where}.", "",
             f"    Inputs: {ins}.", f"    Outputs: {outs}.", f"    Parameters: {total:,}.", "    "]  # fmt: skip
    return "\n".join(lines)


def _model_attrs(graph: Graph) -> list[str]:
    def shape(t) -> str:
        return literal(tuple(d if is_known(d) else str(d) for d in t.dims))

    ins = ", ".join(f"{literal(graph.node(n).local)}: {shape(graph.node(n).type)}" for n in graph.inputs)
    outs = ", ".join(f"{literal(name)}: {shape(graph.type_of(ref))}" for name, ref in graph.outputs)
    total = sum(graph.node(n).params for n in graph.nodes())
    out = []
    out += render(f"{{{ins}}}", 4, "INPUT_SHAPES = ")
    out += render(f"{{{outs}}}", 4, "OUTPUT_SHAPES = ")
    out += render(literal(total), 4, "NUM_PARAMETERS = ")
    return out


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
