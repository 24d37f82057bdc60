"""Block classes shared by instances (for emit.py): which instances of a block definition
share a class, its constructor arguments, and each instance's call.

NOTE: [Sharing a class] in generalize.py says what may differ between the instances of one
class and how each difference gets its expression. Here: instances are grouped greedily,
those with the most submodules first; an instance joins a group when its submodules are the
group's (less optional ones), its `forward` is the group's with those left out but for
its numbers (NOTE: [Sizes in forward]), and one fit of all the group's slots (those numbers
included) covers it, each of its submodules' constructor lines then reading as the group's
class does. Whatever fails gets a class of its own, named after the
parameters that set it apart (`SwinBlock_shift3`).
"""

from __future__ import annotations

import copy
import keyword
import re
from dataclasses import dataclass, field, replace
from typing import Any

from modelc.emit_tree import RESERVED, Tree, unit_input, unit_local, unit_output
from modelc.generalize import Numbers, Sym, Unsupported, class_name, fit, number_targets, on_self, skeleton, slot_kind
from modelc.names import Namespace, python_attribute, reserved_attribute
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
    defaults: dict[str, Any] = field(default_factory=dict)  # a model's arguments: the spec's values

    def overrides(self, node) -> dict[str, Any]:
        rel = (*node.scope[len(self.base):], node.local)
        return {key: sym for (r, key), sym in self.syms.items() if r == rel}

    def signature(self) -> list[str]:
        args = [f"{p}: {self.types.get(p, 'int')}" + (f" = {literal(self.defaults[p])}" if p in self.defaults else "")
                for p in self.params]  # fmt: skip
        return args + [f"{f}: bool = False" for f in self.optional.values()]

    def forward_subs(self) -> dict[int, str]:
        """Number i of forward -> the expression it is written as (NOTE: [Sizes in forward])."""
        names = set(self.params)
        return {int(k[1:]): on_self(s.text, names) for (r, k), s in self.syms.items()
                if not r and isinstance(k, str) and k.startswith("#") and isinstance(s, Sym)}  # fmt: skip

    def forward_args(self) -> list[str]:
        """The constructor arguments forward reads: kept as attributes (`self.heads = heads`)."""
        used = {w for t in self.forward_subs().values() for w in re.findall(r"self\.(\w+)", t)}
        return [p for p in self.params if p in used]

    def doc(self, c) -> str:
        args = ", ".join([*self.params, *self.optional.values()])
        return f"{doc(c.name)}({doc(args)}), defined at {doc(self.where)}."


@dataclass
class _Instance:
    tree: Tree
    path: tuple[str, ...]
    units: list  # (kind, ref) in emission order
    locals: list[str]
    slots: dict[tuple, Any]  # (relative path, attr or arg index) -> value
    env: dict[str, Any]  # candidate name -> value: block parameters and input sizes
    forward: list[str]
    args: tuple  # the block parameters' values
    skeleton: tuple = ()  # forward but for its numbers (generalize.skeleton)
    hints: dict = field(default_factory=dict)  # slot -> a name for the argument it may need
    alike: str = ""  # what no two instances that `_share` treats as one differ in

    @property
    def key(self) -> tuple:
        return (id(self.tree), self.path)


@dataclass
class _Group:
    rep: _Instance
    members: list[_Instance]
    plan: Plan
    values: dict[tuple, list]  # member key -> its constructor argument values


class ShareMixin:
    """Part of emit._Emitter: `_block_call` gives a block instance's constructor call."""

    trees: list[Tree]

    def _block_call(self, tree: Tree, c, plan: Plan | None) -> CallExpr:
        if c.path not in tree.shared:
            self._share(_key(tree, c.path))
        name, values, flags, params, defaults = tree.shared[c.path]
        if plan is not None:  # inside a shared class: the child's arguments are the parent's slots
            rel = c.path[len(plan.base):]
            values = [plan.syms.get((rel, i), v) for i, v in enumerate(values)]
        args = []
        for p, v in zip(params, values):
            text = v.text if isinstance(v, Sym) else literal(v)
            if p not in defaults:
                args.append(text)
            elif isinstance(v, Sym) or v != defaults[p]:  # a default the call keeps is left out
                args.append(f"{p}={text}")
        return CallExpr(name, args + [f"{f}=True" for f in flags])

    def _share(self, key) -> None:
        """Classes for the instances of the block definition `key` in all of `self.trees`: the
        graph emitted and those built with a parameter changed (NOTE: [Model arguments])."""
        insts = []
        for tree in self.trees:
            paths = [p for p, c in tree.graph.containers.items() if c.kind == "block" and (c.name, c.span) == key]
            for p in paths:  # children first: their calls are slots of these classes
                for q in _child_blocks(tree, p):
                    if q not in tree.shared:
                        self._share(_key(tree, q))
            insts += [self._describe_alike(tree, p) for p in paths]
        insts.sort(key=lambda i: (-len(i.units), i.tree.variant))  # the emitted graph's first
        alike: dict[str, list[_Instance]] = {}  # instances no slot, size or forward tells apart
        for inst in insts:
            inst.alike = repr((inst.locals, inst.forward, sorted(inst.slots.items(), key=repr), sorted(inst.env.items())))
            alike.setdefault(inst.alike, []).append(inst)
        groups: list[_Group] = []
        for first, *rest in alike.values():
            g = next((g for g in groups if self._join(g, first)), None)
            if g is None:
                groups.append(g := self._group([first]))
            g.members += rest  # join as `first` did, with its argument values
            g.values.update({m.key: g.values[first.key] for m in rest})
        real = [g for g in groups if any(not m.tree.variant for m in g.members)]
        for g in groups:
            g.plan.name = class_name(key[0], g, real)
            # A class only other graphs need is not written: no call of the emitted graph matches it.
            name = self._class(g.rep.tree, g.rep.path, plan=g.plan) if g in real else "?"
            for m in g.members:
                flags = [f for local, f in g.plan.optional.items() if local in m.locals]
                m.tree.shared[m.path] = (name, g.values[m.key], flags, g.plan.params, g.plan.defaults)

    # NOTE: [Model arguments] The model class takes a spec parameter (`ResNet50(num_classes=10)`,
    # `GPT(vocab, block_size, layers)`) when the graph built with it changed (driver.variants)
    # differs from the graph at hand only in values its model-level layers and block calls
    # take, each the same expression of the parameters in every graph (as a block class's
    # slots, with no new argument). The block instances of those graphs join the instances of
    # the graph at hand when classes are shared, so a block class takes what the change reaches
    # inside it (`Encoder(in_features, n, heads, ff, p)`, a repeat count `n` included) and a
    # change no class can take (another `forward`, a new submodule) makes a class of its own,
    # which is not written, and leaves the parameter a compile-time value (`--param` sets it).
    # The class constants (INPUT_SHAPES, NUM_PARAMETERS) are the defaults'.
    def _model_tree(self, graph, others: dict) -> tuple[Tree, tuple, Plan | None]:
        """The tree of the model `graph` for emission and the plan of its class. A first trial
        (its classes thrown away) finds the parameters the class can take; the block classes
        are then planned over the graphs of those alone, so no class takes an argument that
        only a parameter the model cannot take would need."""
        tree = Tree(graph)
        self._pool([tree])
        if not others:
            return tree, (), None
        trial = self._scratch()
        changed = {k: [Tree(g) for g in gs] for k, gs in others.items()}
        plan = trial._model_plan(tree, changed)
        keep = plan.params if plan else []
        if len(keep) == len(others):  # every parameter: the trial's classes are the ones
            self.classes += trial.classes
            self.class_names, self.by_text = trial.class_names, trial.by_text
            self.uses_runtime |= trial.uses_runtime
            self._pool(trial.trees)
            return tree, (), plan
        for t in (tree, *(t for ts in changed.values() for t in ts)):  # planned again: keep only the memos
            t.shared = {}
        plan = self._model_plan(tree, {k: changed[k] for k in keep}) if keep else None
        if plan is None or not plan.params:  # the class takes no argument: the graph alone
            tree.shared = {}
            self._pool([tree])
            plan = None
        return tree, (), plan

    def _model_plan(self, tree: Tree, others: dict[str, list[Tree]]) -> Plan | None:
        """The plan of the model class at `tree`, over the graphs of each parameter changed."""
        for t in (t for ts in others.values() for t in ts):
            t.variant = True
        self._pool([tree, *(t for ts in others.values() for t in ts)])
        base = self._root(tree, others, dict(tree.graph.params))
        alone = []  # per parameter that can be an argument alone: its graphs' instances
        for name, trees in others.items():
            insts = []
            for other in trees:
                locals_ = [unit_local(other, u) for u in other.ordered_units(())]
                if locals_ != base.locals or self._forward_text(other, (), frozenset()) != base.forward:
                    break  # another structure: no argument can give it
                insts.append((self._root(other, others, dict(other.graph.params), name), other))
            else:
                if self._model_fit(tree, base, insts) is not None:
                    alone.append(insts)
        plan, chosen = None, []  # in the spec's order, each parameter that still fits with those before
        for insts in alone:
            trial = self._model_fit(tree, base, [*chosen, *insts])
            if trial is not None:
                plan, chosen = trial, [*chosen, *insts]
        return plan

    def _root(self, tree: Tree, others: dict, params: dict, name: str = "") -> _Instance:
        for q in _child_blocks(tree, ()):
            if q not in tree.shared:
                self._share(_key(tree, q))
        inst = self._describe(tree, ())
        inst.path, inst.env = ("#", name), {k: params[k] for k in others}
        return inst

    def _model_fit(self, tree: Tree, base: _Instance, others: list) -> Plan | None:
        fitted = _fit_all([base, *(inst for inst, _ in others)], allow_new=False)
        if fitted is None:
            return None
        syms, params, _, _ = fitted
        defaults = {p: base.env[p] for p in params}
        types = {p: "float" if isinstance(v, float) else "int" for p, v in defaults.items()}
        plan = Plan((), tree.graph.name, syms, params, types, {}, "", defaults)
        want = self._init_lines(tree, base, plan)
        if want is None or any(self._init_lines(t, inst, plan) != want for inst, t in others):
            return None
        return plan

    # NOTE: [Repeated blocks] A run of two or more consecutive items of an nn.Sequential that
    # are calls of one block class with the same arguments is written once,
    # `*[Block(heads) for _ in range(layers)]`, as a person builds torchvision's layers. The
    # runs come from the instances themselves (same class, arguments and flags), so a class or
    # model that shares them sees each run's length as a slot (`depth0`, `depth1`, ... per
    # sequence): fitted like any size, and plus or minus a constant (`layers - 1`, after a
    # first block that differs). The calls after a run's first have the same values, so they
    # are no slots of their own: the run is written as its first call.
    def _runs(self, tree: Tree, path) -> list[tuple[int, int]]:
        """(start, length) of each run of equal block calls in the numbered sequence at `path`."""
        c = tree.graph.containers[path]
        units = tree.ordered_units(path)
        if c.kind == "block" or c.unrolled or not path or [unit_local(tree, u) for u in units] != [str(i) for i in range(len(units))]:
            return []
        keys = []
        for kind, ref in units:
            block = kind == "container" and tree.graph.containers[ref].kind == "block"
            if block and ref not in tree.shared:
                self._share(_key(tree, ref))
            keys.append(repr(tree.shared[ref][:3]) if block else None)
        runs, i = [], 0
        while i < len(keys):
            j = i
            while j + 1 < len(keys) and keys[i] is not None and keys[j + 1] == keys[i]:
                j += 1
            if j > i:
                runs.append((i, j - i + 1))
            i = j + 1
        return runs

    def _scratch(self):
        """An emitter for another graph of the same file: its classes are named as ours where
        their text is the same, and are thrown away."""
        em = type(self)(sorted(self.models))
        em.class_names, em.by_text = copy.deepcopy(self.class_names), dict(self.by_text)
        return em

    def _pool(self, trees: list[Tree]) -> None:
        """Share classes among the instances of `trees` from now on."""
        self.trees = trees
        self.described: dict = {}  # Tree.fingerprint -> an instance described with it

    def _describe_alike(self, tree: Tree, path) -> _Instance:
        """`_describe`, done once per fingerprint: an instance made of what one described
        already is made of is described as it was (its children have the same classes and
        arguments, being alike too)."""
        key = tree.fingerprint(path)
        if key is None:
            return self._describe(tree, path)
        if key not in self.described:
            self.described[key] = self._describe(tree, path)
        return replace(self.described[key], tree=tree, path=path, units=tree.ordered_units(path))

    def _describe(self, tree: Tree, path) -> _Instance:
        graph, c = tree.graph, tree.graph.containers[path]
        units = tree.ordered_units(path)
        slots: dict[tuple, Any] = {}
        for n in _own_nodes(tree, path):
            node = graph.node(n)
            if node.module:
                rel = (*node.scope[len(path):], node.local)
                slots.update({(rel, k): v for k, v in node.attrs.items()})
        hints: dict[tuple, str] = {}
        repeated = set()  # the calls of a run after its first: written as the first is
        for q in _own_sequences(tree, path):
            items = tree.ordered_units(q)
            for k, (start, n) in enumerate(self._runs(tree, q)):
                slots[(q[len(path):], f"depth{k}")] = n
                repeated |= {ref for _, ref in items[start + 1:start + n]}
        for q in _child_blocks(tree, path):
            if q in repeated:
                continue
            name, values, flags, params, _ = tree.shared[q]
            slots[(q[len(path):], "class")] = (name, tuple(flags))
            slots.update({(q[len(path):], i): v for i, v in enumerate(values)})
            hints.update({(q[len(path):], i): p for i, p in enumerate(params)})  # `attn_heads`
        env = _inputs_env(graph, c)
        env.update({k: v for k, v in c.args})
        forward = self._forward_text(tree, path, frozenset())
        shape, numbers = skeleton(forward)  # NOTE: [Sizes in forward] in generalize.py
        for i, (v, target) in enumerate(zip(numbers, number_targets(forward))):
            slots[((), f"#{i}")] = v
            hints[((), f"#{i}")] = f"{target}_size"
        local = [unit_local(tree, u) for u in units]
        return _Instance(tree, path, units, local, slots, env, forward, c.args, shape, hints)

    def _forward_text(self, tree: Tree, path, elide: frozenset) -> list[str]:
        """The lines of the instance's `forward`, for comparison: they depend on the graph
        alone, so the tree keeps them for a second plan."""
        if (path, elide) not in tree.forwards:
            tree.forwards[(path, elide)] = self._forward_lines(tree, path, elide)
        return tree.forwards[(path, elide)]

    def _forward_lines(self, tree: Tree, path, elide: frozenset) -> list[str]:
        units = tree.ordered_units(path)
        params, lines, _ = self._forward(tree, tree.graph.containers[path], units, self._members(tree, units), None, elide)
        return [*params, *lines]

    def _members(self, tree: Tree, units) -> dict:
        """unit -> its attribute, for the units that are submodules."""
        members = {}
        for kind, ref in units:
            if kind == "container" or (tree.graph.node(ref).module and self._ctor_of(tree.graph.node(ref), None)):
                members[(kind, ref)] = ref[-1] if kind == "container" else tree.graph.node(ref).local
        return members

    def _class_forward(self, tree: Tree, c, units, members: dict, plan: Plan | None):
        """`_forward` of a class; under a plan that gives numbers of forward expressions, with
        them written in (NOTE: [Sizes in forward] in generalize.py). Unsupported where forward
        does not show the representative's numbers where its description did."""
        subs = plan.forward_subs() if plan else {}
        if not subs:
            return self._forward(tree, c, units, members, plan)
        if any(reserved_attribute(p) or p in members.values() for p in plan.forward_args()):
            raise Unsupported("an argument forward reads would shadow an attribute")
        _, values = skeleton(self._forward_text(tree, c.path, frozenset()))
        outer, self._numbers = self._numbers, Numbers(subs, values)
        try:
            out = self._forward(tree, c, units, members, plan)
            done = self._numbers.done
        finally:
            self._numbers = outer
        if not done:
            raise Unsupported("forward's numbers are not where its description had them")
        return out

    def _join(self, g: _Group, inst: _Instance) -> bool:
        rep, tree = g.rep, g.rep.tree
        if not set(inst.locals) <= set(rep.locals):
            return False
        missing = frozenset(u for u, local in zip(rep.units, rep.locals) if local not in inst.locals)
        if not all(_optional_ok(tree, u) for u in missing):
            return False
        shape = rep.skeleton
        if missing:  # the elided forward's numbers must be the class's, in place
            shape, numbers = skeleton(self._forward_text(tree, rep.path, missing))
            if numbers != _forward_numbers(rep):
                return False
        if shape != inst.skeleton:
            return False
        trial = self._group([*g.members, inst], g.plan)
        if trial.plan is None:
            return False
        g.members, g.plan, g.values = trial.members, trial.plan, trial.values
        return True

    def _group(self, members: list[_Instance], before: Plan | None = None) -> _Group:
        """`members` as one group, or a group without a plan where they cannot be. `before`:
        the plan all but the last member were checked under."""
        rep = members[0]
        tree = rep.tree
        c = tree.graph.containers[rep.path]
        fitted = _fit_all(members)
        if fitted is None:
            return _Group(rep, members, None, {}) if len(members) > 1 else self._alone(rep)
        syms, params, values, by_name = fitted
        # Parameters the spec gives a literal default keep it, after the others (`stride: int = 1`).
        spec_defaults = dict(tree.graph.containers[rep.path].defaults)
        defaults = {p: spec_defaults[by_name[p]] for p in params if by_name.get(p) in spec_defaults}
        order = [i for i, p in enumerate(params) if p not in defaults] + [i for i, p in enumerate(params) if p in defaults]
        params = [params[i] for i in order]
        values = {k: [v[i] for i in order] for k, v in values.items()}
        optional = {}
        for local in rep.locals:
            if any(local not in m.locals for m in members):
                optional[local] = local
        types = {p: "float" if any(isinstance(v[i], float) for v in values.values()) else "int"
                 for i, p in enumerate(params)}  # fmt: skip
        plan = Plan(rep.path, c.name, syms, params, types, optional, c.span.short, defaults)
        # Under the same symbols, the members checked before need no second look.
        same = before is not None and (before.syms, before.params, before.optional) == (syms, params, optional)
        if len(members) > 1 and not self._same_inits([rep, *members[-1:]] if same else members, plan):
            return _Group(rep, members, None, {})
        if plan.forward_subs() and not same:
            try:
                self._class_forward(tree, c, rep.units, self._members(tree, rep.units), plan)
            except Unsupported:
                return _Group(rep, members, None, {})
        return _Group(rep, members, plan, values)

    def _alone(self, rep: _Instance) -> _Group:
        c = rep.tree.graph.containers[rep.path]
        return _Group(rep, [rep], Plan(rep.path, c.name, where=c.span.short), {rep.key: []})

    def _same_inits(self, members: list[_Instance], plan: Plan) -> bool:
        """Every member's submodules construct as the representative's do, under the plan."""
        want = self._init_lines(members[0].tree, members[0], plan)
        seen = {members[0].alike}
        for m in members[1:]:
            if m.alike and m.alike in seen:  # described alike: constructed alike
                continue
            seen.add(m.alike)
            got = self._init_lines(m.tree, m, replace(plan, base=m.path))
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


def _fit_all(members: list[_Instance], allow_new: bool = True):
    """Symbols for the slots that differ between members, the constructor arguments they use,
    and each member's values of those; None when a differing slot is not a size (or, unless
    `allow_new`, no expression of the members' `env` gives it)."""
    everyone = members  # those described alike fit alike: each is fitted once
    firsts = {m.alike or id(m): m for m in reversed(members)}
    members = [firsts[m.alike or id(m)] for m in members if firsts[m.alike or id(m)] is m]
    keys: dict[tuple, None] = {}
    for m in members:
        keys.update(dict.fromkeys(m.slots))
    names = Namespace(RESERVED | set(keyword.kwlist))
    env_names = {k: names.create(k) for k in dict.fromkeys(k for m in members for k in m.env)}
    earlier: list[tuple[str, dict]] = []  # expression -> member path -> value
    syms: dict[tuple, Any] = {}
    new_args: dict[str, dict] = {}
    previous = (-2, "")  # the last number of forward fitted, and its expression
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
            cands = [(t, [vals.get(m.key) for m in ms]) for t, vals in earlier]
            cands += [(env_names[k], [m.env.get(k) for m in ms]) for k in env_names]
            if key[1] == f"#{previous[0] + 1}":  # next to another number: another name where one is as good
                cands.sort(key=lambda c: c[0] == previous[1])  # (window_reverse(y, 7, H, W), not H, H)
            cands.sort(key=lambda c: c[0] != ms[0].hints.get(key))  # a child's W from our W, where as good
            text = fit(elem, [(t, v) for t, v in cands if None not in v], offsets=str(key[1]).startswith("depth"))
            if text is None and not allow_new:
                return None
            if text is None:
                hint = ms[0].hints.get(key)  # a child's parameter (`attn_heads`), a number of forward
                words = [*key[0], hint or str(key[1])]
                if hint and key[0] and hint.startswith(f"{key[0][-1]}_"):  # `attn_size`, not `attn_attn_size`
                    words = [*key[0][:-1], hint]
                text = names.create("_".join([*words, *([str(i)] if kind == "tuple" else [])]))
                new_args[text] = {m.key: e for m, e in zip(ms, elem)}
            earlier.append((text, {m.key: e for m, e in zip(ms, elem)}))
            fitted.append(Sym(text))
            if str(key[1]).startswith("#"):
                previous = (int(key[1][1:]), text)
        syms[key] = tuple(fitted) if kind == "tuple" else fitted[0]
    texts = [x.text for s in syms.values() for x in (s if isinstance(s, tuple) else (s,)) if isinstance(x, Sym)]
    used = {w for t in texts for w in _WORD.findall(t)}
    params = [env_names[k] for k in env_names if env_names[k] in used] + [a for a in new_args if a in used]
    by_name = {v: k for k, v in env_names.items()}
    values = {m.key: [m.env[by_name[p]] if p in by_name else new_args[p].get(m.key, 0) for p in params]
              for m in members}  # fmt: skip
    values.update({m.key: values[firsts[m.alike or id(m)].key] for m in everyone})
    if any(p in by_name and any(by_name[p] not in m.env for m in members) for p in params):
        return None
    return syms, params, values, by_name


def _forward_numbers(inst: _Instance) -> list:
    """The numbers of the instance's forward, in order (its slots `#i ...`)."""
    return [v for (r, k), v in inst.slots.items() if not r and isinstance(k, str) and k.startswith("#")]


def _optional_ok(tree: Tree, unit) -> bool:
    """A unit an instance may lack: a submodule with one input and one output, called as
    `self.name(x)`, where `name` is a Python attribute name (its flag argument is that name)."""
    if unit_input(tree, unit) is None or unit_output(tree, unit) is None:
        return False
    if not python_attribute(unit[1][-1] if unit[0] == "container" else tree.graph.node(unit[1]).local):
        return False  # `self.name = None` and `if self.name is not None` need an attribute name
    if unit[0] == "container":
        return True
    node = tree.graph.node(unit[1])  # a submodule: a step computed in forward cannot be left out
    return node.module and node.opdef.module(dict(node.attrs)) is not None and type(node.opdef).invoke is OpDef.invoke


def _inputs_env(graph, c) -> dict[str, Any]:
    """Sizes of a block's inputs a class may take: those its shape patterns name, then
    dimension 1 (`in_channels`) and the last (`in_features`), prefixed with the input's name
    when the block has several inputs."""
    env: dict[str, Any] = dict(c.dims)  # the spec's names first: `input x: [B, H, W, C]`
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
    blocks = set(_child_blocks(tree, path))
    out = []
    for n in tree._subtree_nodes(path):
        scope = tree.graph.node(n).scope
        if not any(scope[:i] in blocks for i in range(len(path) + 1, len(scope) + 1)):
            out.append(n)
    return out


def _key(tree: Tree, path) -> tuple:
    """The block definition of the instance at `path`: its name and where it is defined."""
    c = tree.graph.containers[path]
    return (c.name, c.span)


def _own_sequences(tree: Tree, path) -> list[tuple[str, ...]]:
    """Sequences inside the container at `path` that no child block holds."""
    out = []
    for q in tree.children[path]:
        if tree.graph.containers[q].kind != "block":
            out += [q, *_own_sequences(tree, q)]
    return out


def _child_blocks(tree: Tree, path) -> list[tuple[str, ...]]:
    """Block instances directly inside the one at `path` (through sequences, not blocks)."""
    out = []
    for q in tree.children[path]:
        if tree.graph.containers[q].kind == "block":
            out.append(q)
        else:
            out += _child_blocks(tree, q)
    return out
