"""Block classes shared by instances (for emit.py): which instances of a block definition
share a class, its constructor arguments, and each instance's call.

NOTE: [Sharing a class] in generalize.py says what may differ between the instances of one
class and how each difference gets its expression. Here: instances are grouped greedily,
those with the most submodules first; an instance joins a group when its submodules are the
group's (less optional ones), its `forward` is the group's with those left out, and one fit
of all the group's slots covers it, each of its submodules' constructor lines then reading
as the group's class does. Whatever fails gets a class of its own, named after the
parameters that set it apart (`SwinBlock_shift3`).
"""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field, replace
from typing import Any

from modelc.emit_tree import RESERVED, Tree, unit_input, unit_output
from modelc.generalize import Sym, Unsupported, fit, slot_kind
from modelc.names import Namespace, python_attribute
from modelc.ops.base import OpDef
from modelc.pyformat import CallExpr
from modelc.pyrepr import doc, literal

__all__ = ["Plan", "ShareMixin"]

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass
class Plan:
    """How one shared class is rendered from the instance at `base`."""

    base: tuple[str, ...]
    name: str  # the class name to claim
    syms: dict[tuple, Any] = field(default_factory=dict)  # (relative path, attr or arg index) -> Sym
    params: list[str] = field(default_factory=list)  # constructor arguments, in order
    types: dict[str, str] = field(default_factory=dict)  # argument -> "int" or "float"
    optional: dict[str, str] = field(default_factory=dict)  # submodule -> its flag argument
    where: str = ""

    def overrides(self, node) -> dict[str, Any]:
        rel = (*node.scope[len(self.base):], node.local)
        return {key: sym for (r, key), sym in self.syms.items() if r == rel}

    def signature(self) -> list[str]:
        args = [f"{p}: {self.types.get(p, 'int')}" for p in self.params]
        return args + [f"{f}: bool = False" for f in self.optional.values()]

    def doc(self, c) -> str:
        args = ", ".join([*self.params, *self.optional.values()])
        return f"{doc(c.name)}({doc(args)}), defined at {doc(self.where)}."


@dataclass
class _Instance:
    path: tuple[str, ...]
    units: list  # (kind, ref) in emission order
    locals: list[str]
    slots: dict[tuple, Any]  # (relative path, attr or arg index) -> value
    env: dict[str, Any]  # candidate name -> value: block parameters and input sizes
    forward: list[str]
    args: tuple  # the block parameters' values


@dataclass
class _Group:
    rep: _Instance
    members: list[_Instance]
    plan: Plan
    values: dict[tuple[str, ...], list]  # member path -> its constructor argument values


class ShareMixin:
    """Part of emit._Emitter: `_block_call` gives a block instance's constructor call."""

    shared: dict

    def _block_call(self, tree: Tree, c, plan: Plan | None) -> CallExpr:
        if c.path not in self.shared:
            self._share(tree, (c.name, c.span))
        name, values, flags = self.shared[c.path]
        if plan is not None:  # inside a shared class: the child's arguments are the parent's slots
            rel = c.path[len(plan.base):]
            values = [plan.syms.get((rel, i), v) for i, v in enumerate(values)]
        args = [v.text if isinstance(v, Sym) else literal(v) for v in values]
        return CallExpr(name, args + [f"{f}=True" for f in flags])

    def _share(self, tree: Tree, key) -> None:
        graph = tree.graph
        paths = [p for p, c in graph.containers.items() if c.kind == "block" and (c.name, c.span) == key]
        for p in paths:  # children first: their calls are slots of these classes
            for q in _child_blocks(tree, p):
                if q not in self.shared:
                    self._share(tree, (graph.containers[q].name, graph.containers[q].span))
        insts = sorted((self._describe(tree, p) for p in paths), key=lambda i: -len(i.units))
        groups: list[_Group] = []
        for inst in insts:
            if not any(self._join(tree, g, inst) for g in groups):
                groups.append(self._group(tree, [inst]))
        for g in groups:
            g.plan.name = _class_name(key[0], g, groups)
            name = self._class(tree, g.rep.path, plan=g.plan)
            for m in g.members:
                flags = [f for local, f in g.plan.optional.items() if local in m.locals]
                self.shared[m.path] = (name, g.values[m.path], flags)

    def _describe(self, tree: Tree, path) -> _Instance:
        graph, c = tree.graph, tree.graph.containers[path]
        units = tree.ordered_units(path)
        slots: dict[tuple, Any] = {}
        for n in _own_nodes(tree, path):
            node = graph.node(n)
            if node.module:
                rel = (*node.scope[len(path):], node.local)
                slots.update({(rel, k): v for k, v in node.attrs.items()})
        for q in _child_blocks(tree, path):
            name, values, flags = self.shared[q]
            slots[(q[len(path):], "class")] = (name, tuple(flags))
            slots.update({(q[len(path):], i): v for i, v in enumerate(values)})
        env = _inputs_env(graph, c)
        env.update({k: v for k, v in c.args})
        forward = self._forward_text(tree, path, frozenset())
        local = [graph.node(r).local if k == "node" else r[-1] for k, r in units]
        return _Instance(path, units, local, slots, env, forward, c.args)

    def _forward_text(self, tree: Tree, path, elide: frozenset) -> list[str]:
        units = tree.ordered_units(path)
        members = {}
        for kind, ref in units:
            if kind == "container" or (tree.graph.node(ref).module and self._ctor_of(tree.graph.node(ref), None)):
                members[(kind, ref)] = ref[-1] if kind == "container" else tree.graph.node(ref).local
        params, lines, _ = self._forward(tree, tree.graph.containers[path], units, members, None, elide)
        return [*params, *lines]

    def _join(self, tree: Tree, g: _Group, inst: _Instance) -> bool:
        rep = g.rep
        if not set(inst.locals) <= set(rep.locals):
            return False
        missing = frozenset(u for u, local in zip(rep.units, rep.locals) if local not in inst.locals)
        if not all(_optional_ok(tree, u) for u in missing):
            return False
        if missing and self._forward_text(tree, rep.path, missing) != inst.forward:
            return False
        if not missing and rep.forward != inst.forward:
            return False
        trial = self._group(tree, [*g.members, inst])
        if trial.plan is None:
            return False
        g.members, g.plan, g.values = trial.members, trial.plan, trial.values
        return True

    def _group(self, tree: Tree, members: list[_Instance]) -> _Group:
        rep = members[0]
        c = tree.graph.containers[rep.path]
        fitted = _fit_all(members)
        if fitted is None:
            return _Group(rep, members, None, {}) if len(members) > 1 else self._alone(tree, rep)
        syms, params, values = fitted
        optional = {}
        for local in rep.locals:
            if any(local not in m.locals for m in members):
                optional[local] = local
        types = {p: "float" if any(isinstance(v[i], float) for v in values.values()) else "int"
                 for i, p in enumerate(params)}  # fmt: skip
        plan = Plan(rep.path, c.name, syms, params, types, optional, c.span.short)
        if len(members) > 1 and not self._same_inits(tree, members, plan):
            return _Group(rep, members, None, {})
        return _Group(rep, members, plan, values)

    def _alone(self, tree: Tree, rep: _Instance) -> _Group:
        c = tree.graph.containers[rep.path]
        return _Group(rep, [rep], Plan(rep.path, c.name, where=c.span.short), {rep.path: []})

    def _same_inits(self, tree: Tree, members: list[_Instance], plan: Plan) -> bool:
        """Every member's submodules construct as the representative's do, under the plan."""
        want = self._init_lines(tree, members[0], plan)
        for m in members[1:]:
            got = self._init_lines(tree, m, replace(plan, base=m.path))
            if got is None or want is None or any(want.get(k) != v for k, v in got.items()):
                return False
        return True

    def _init_lines(self, tree: Tree, inst: _Instance, plan: Plan) -> dict | None:
        attrs = Namespace(attributes=True)
        out = {}
        try:
            for unit, local in zip(inst.units, inst.locals):
                out[local] = self._init_unit(tree, unit, attrs, {}, replace(plan, optional={}))
        except Unsupported:
            return None
        return out


def _fit_all(members: list[_Instance]):
    """Symbols for the slots that differ between members, the constructor arguments they use,
    and each member's values of those; None when a differing slot is not a size."""
    keys: dict[tuple, None] = {}
    for m in members:
        keys.update(dict.fromkeys(m.slots))
    names = Namespace(RESERVED | set(keyword.kwlist))
    env_names = {k: names.create(k) for k in dict.fromkeys(k for m in members for k in m.env)}
    earlier: list[tuple[str, dict]] = []  # expression -> member path -> value
    syms: dict[tuple, Any] = {}
    new_args: dict[str, dict] = {}
    for key in keys:
        ms = [m for m in members if key in m.slots]
        values = [m.slots[key] for m in ms]
        kind = slot_kind(values)
        if kind == "same":
            continue
        if kind is None or key[1] == "class":
            return None
        parts = [[v[i] for v in values] for i in range(len(values[0]))] if kind == "tuple" else [values]
        fitted = []
        for i, elem in enumerate(parts):
            if slot_kind(elem) == "same":
                fitted.append(elem[0])
                continue
            cands = [(t, [vals.get(m.path) for m in ms]) for t, vals in earlier]
            cands += [(env_names[k], [m.env.get(k) for m in ms]) for k in env_names]
            text = fit(elem, [(t, v) for t, v in cands if None not in v])
            if text is None:
                text = names.create("_".join([*key[0], str(key[1]), *([str(i)] if kind == "tuple" else [])]))
                new_args[text] = {m.path: e for m, e in zip(ms, elem)}
            earlier.append((text, {m.path: e for m, e in zip(ms, elem)}))
            fitted.append(Sym(text))
        syms[key] = tuple(fitted) if kind == "tuple" else fitted[0]
    texts = [x.text for s in syms.values() for x in (s if isinstance(s, tuple) else (s,)) if isinstance(x, Sym)]
    used = {w for t in texts for w in _WORD.findall(t)}
    params = [env_names[k] for k in env_names if env_names[k] in used] + [a for a in new_args if a in used]
    by_name = {v: k for k, v in env_names.items()}
    values = {m.path: [m.env[by_name[p]] if p in by_name else new_args[p].get(m.path, 0) for p in params]
              for m in members}  # fmt: skip
    if any(p in by_name and any(by_name[p] not in m.env for m in members) for p in params):
        return None
    return syms, params, values


def _optional_ok(tree: Tree, unit) -> bool:
    """A unit an instance may lack: one input, one output, called as `self.name(x)`, where
    `name` is a Python attribute name (its flag argument is that name)."""
    if unit_input(tree, unit) is None or unit_output(tree, unit) is None:
        return False
    if not python_attribute(unit[1][-1] if unit[0] == "container" else tree.graph.node(unit[1]).local):
        return False  # `self.name = None` and `if self.name is not None` need an attribute name
    return unit[0] == "container" or type(tree.graph.node(unit[1]).opdef).invoke is OpDef.invoke


def _inputs_env(graph, c) -> dict[str, Any]:
    """Sizes of a block's inputs a class may take: dimension 1 (`in_channels`) and the last
    (`in_features`), prefixed with the input's name when the block has several inputs."""
    env: dict[str, Any] = {}
    for name, ref in c.inputs:
        dims = graph.type_of(ref).dims
        prefix = "in" if len(c.inputs) == 1 else name
        if len(dims) >= 3 and isinstance(dims[1], int):
            env[f"{prefix}_channels"] = dims[1]
        if 2 <= len(dims) <= 3 and isinstance(dims[-1], int):  # [B, D], [B, T, D]
            env[f"{prefix}_features"] = dims[-1]
    return env


def _own_nodes(tree: Tree, path) -> list[int]:
    """Nodes of the instance at `path` that no child block owns."""
    blocks = [q for q in _child_blocks(tree, path)]
    return [n for n in tree._subtree_nodes(path)
            if not any(tree.graph.node(n).scope[:len(q)] == q for q in blocks)]  # fmt: skip


def _child_blocks(tree: Tree, path) -> list[tuple[str, ...]]:
    """Block instances directly inside the one at `path` (through sequences, not blocks)."""
    out = []
    for q in tree.children[path]:
        if tree.graph.containers[q].kind == "block":
            out.append(q)
        else:
            out += _child_blocks(tree, q)
    return out


def _class_name(base: str, g: _Group, groups: list[_Group]) -> str:
    """The block's name; with several classes, each also named after the parameters whose
    values set its instances apart (`SwinBlock_shift3`)."""
    if len(groups) == 1:
        return base
    own = _constant_args(g)
    others = [_constant_args(h) for h in groups if h is not g]
    parts = [f"{k}{v}" for k, v in own.items()
             if isinstance(v, (int, str)) and not isinstance(v, bool) and all(o.get(k) != v for o in others)]  # fmt: skip
    if not parts:
        parts = [f"{k}{v}" for k, v in own.items() if isinstance(v, int) and any(o.get(k) != v for o in others)]
    name = "_".join([base, *parts[:2]])
    return name if name.isidentifier() and len(parts) > 0 else base


def _constant_args(g: _Group) -> dict[str, Any]:
    """The block parameters (not input sizes) every member of `g` sets alike."""
    c_args = dict(g.rep.args)
    return {k: v for k, v in c_args.items() if all(dict(m.args).get(k) == v for m in g.members)}
