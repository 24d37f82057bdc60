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
import re
import textwrap
from collections import Counter

import jinja2

from modelc.codecheck import ENCODING_LINE, check_generated
from modelc.diagnostics import CompilerBug
from modelc.emit_share import Plan, ShareMixin
from modelc.emit_tree import RESERVED, Tree, Vars, last_uses, live_units, unit_input, unit_local, unit_output, unit_reads
from modelc.generalize import Numbers, Sym, Unsupported
from modelc.ir import Container, Graph
from modelc.ops.base import Augmented
from modelc.names import Namespace, python_attribute
from modelc.pyformat import LINE, CallExpr, Repeat, flat, leaves, render
from modelc.pyrepr import comment, doc, literal
from modelc.symbolic import is_known

__all__ = ["NEEDS_RUNTIME", "emit"]

NEEDS_RUNTIME = "Needs: torch and modelc (modelc.runtime), or compile with --standalone"


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


def emit(graphs: list[Graph], source: str, others: dict | None = None) -> str:
    """Python source defining one class per model in `graphs` (and their blocks). `others`:
    per model and parameter, graphs of it with that parameter changed (driver.variants): they decide the
    parameters its class takes (NOTE: [Model arguments] in emit_share.py)."""
    em = _Emitter([g.name for g in graphs])
    for graph in graphs:
        em.model(graph, (others or {}).get(graph.name, {}))
    imports = ["import torch", "from torch import nn"]
    if em.uses_runtime:
        imports.append("from modelc import runtime as rt")
    # NOTE: [Checking bytes, not text] in codecheck.py: lines 1 and 2 are fixed text (Python
    # reads an encoding cookie there), so spec text starts on line 3.
    header = [f"Source: {comment(_basename(source))}"]
    header += [f"Model: {comment(_signature(g.name, g.params))}" for g in graphs]
    header += [_optimized_line(g) for g in graphs if g.optimized != (0, ())]  # -O1, -O2 or --rewrite
    if em.uses_runtime:  # standalone.inline_runtime rewrites this line when it inlines the helpers
        header.append(NEEDS_RUNTIME)
    header = [part for line in header for part in _wrap(line, LINE - 2, "  ")]
    text = _templates().get_template("file.jinja").render(
        encoding=ENCODING_LINE, header=header, imports=imports, classes=em.classes
    )
    text = text.rstrip("\n") + "\n"
    check_generated(text, source)
    return text


class _Emitter(ShareMixin):
    def __init__(self, models: list[str]) -> None:
        # Model classes keep their own names (what `modelc.load` returns is looked up by it):
        # they are claimed first, so a block class can never take one (`Layer_1`).
        self.models = set(models)
        self.class_names = Namespace(RESERVED | self.models)
        self.classes: list[str] = []
        self.by_text: dict[str, str] = {}
        self.uses_runtime = False
        self._numbers: Numbers | None = None  # set while a shared class's forward is written
        self._pool([])  # the graphs whose block instances share classes: emit_share.py

    def model(self, graph: Graph, others: dict | None = None) -> None:
        self._class(*self._model_tree(graph, others or {}), model=True)

    # ---- classes ---------------------------------------------------------------------
    def _class(self, tree: Tree, path: tuple[str, ...], plan: Plan | None = None, model: bool = False) -> str:
        """Emit the class of the container at `path` (with `plan`: the class shared by the
        instances of a block, rendered from this one) and return its name."""
        graph, c = tree.graph, tree.graph.containers[path]
        units = tree.ordered_units(path)
        attrs = Namespace(attributes=True)  # the spec's labels, so state_dict keys follow them
        init: list[str] = []
        members: dict = {}  # unit -> its attribute name: `forward` calls what `__init__` assigned
        for unit in units:
            init += self._init_unit(tree, unit, attrs, members, plan)
        if model:
            for layer, owner in graph.ties:  # one weight, two state_dict keys (as Hugging Face ties)
                init.append(f"        {_attr_path(layer)}.weight = {_attr_path(owner)}.weight  # tied")
        if model and graph.load_rules:  # NOTE: [Folding BatchNorm] in passes/batchnorm.py
            self.uses_runtime = True
            init.append("        self.register_load_state_dict_pre_hook(rt.CheckpointRules(self.LOAD_RULES))")
        params, forward, _ = self._class_forward(tree, c, units, members, plan)
        init = [f"        self.{p} = {p}" for p in (plan.forward_args() if plan else [])] + init
        returns = " -> " + _returns(graph, c)
        signature = render(CallExpr("def forward", ["self", *(f"{p}: torch.Tensor" for p in params)]),
                           4, suffix=returns + ":")  # fmt: skip
        ctor_params = plan.signature() if plan else []
        init_signature = render(CallExpr("def __init__", ["self", *ctor_params]), 4, suffix=" -> None:")
        class_attrs = _model_attrs(graph) if model else []
        shared = plan is not None and not model and bool(plan.params or plan.optional)  # else: its values
        doc = _fit_doc(plan.doc(c) if shared else _doc(graph, c, model))
        body = dict(doc=doc, class_attrs=class_attrs, init=init or ["        pass"], init_signature="\n".join(init_signature),
                    signature="\n".join(signature), forward=forward)  # fmt: skip
        template = _templates().get_template("class.jinja")
        key = template.render(name="@", **body)
        if not model and key in self.by_text:
            return self.by_text[key]
        name = c.name if model else self.class_names.create(plan.name if plan else c.name)
        if model and (name not in self.models or name in self.by_text.values()):
            raise CompilerBug(f"model class {name} is not reserved, or emitted twice")
        self.by_text[key] = name
        self.classes.append(template.render(name=name, **body).rstrip("\n"))
        return name

    def _init_unit(self, tree: Tree, unit, attrs: Namespace, members: dict, plan: Plan | None = None) -> list[str]:
        kind, ref = unit
        local = unit_local(tree, unit)
        flag = plan.optional.get(local) if plan else None  # NOTE: [Sharing a class] in generalize.py
        indent = 12 if flag else 8
        if kind == "node":
            node = tree.graph.node(ref)
            ctor = self._ctor_of(node, plan) if node.module else None
            if ctor is None:
                return []
            name = members[unit] = _attribute(attrs, node.local)
            self._note_runtime(ctor.callee)
            lines = _register(name, _ctor_expr(ctor), comment(node.span.short), indent)
        else:
            child = tree.graph.containers[ref]
            name = members[unit] = _attribute(attrs, child.local)
            lines = _register(name, self._module_expr(tree, child, plan), _where(child), indent)
        if not flag:
            return lines
        return [f"        self.{name} = None", f"        if {flag}:", *lines]  # a submodule some instances lack

    def _ctor_of(self, node, plan: Plan | None):
        """The constructor of a node's module, with the plan's symbolic values in it."""
        if plan is None:
            return _module_of(node)
        ctor = _module_of(node, plan.overrides(node))
        if ctor is None and _module_of(node) is not None:  # `nn.Unflatten(1, (1, n))` needs a literal n
            raise Unsupported(f"{node.op}'s module cannot take a symbolic value")
        return ctor

    def _module_expr(self, tree: Tree, c: Container, plan: Plan | None = None):
        """The constructor expression of a child container (a class, or a sequence)."""
        if c.kind == "block":
            return self._block_call(tree, c, plan)
        items, names, notes = [], [], []
        for kind, ref in tree.ordered_units(c.path):
            if kind == "node":
                node = tree.graph.node(ref)
                ctor = self._ctor_of(node, plan)
                if ctor is None:
                    raise CompilerBug(f"{node.op} in sequence {c.local} has no module form")
                self._note_runtime(ctor.callee)
                items.append(_ctor_expr(ctor))
                names.append(node.local)
                notes.append(comment(node.span.short))
            else:
                child = tree.graph.containers[ref]
                items.append(self._module_expr(tree, child, plan))
                names.append(child.local)
                notes.append(_where(child))
        numbered = names == [str(i) for i in range(len(names))]
        if numbered and not c.unrolled:
            items, notes = self._repeats(tree, c, items, notes, plan)
            return CallExpr("nn.Sequential", items, notes)
        self.uses_runtime = True
        if numbered:  # NOTE: [Unrolled sequences] in elaborate/steps.py: called item by item
            return CallExpr("rt.module_list", items, notes)
        pairs = [CallExpr("", [literal(n), item]) for n, item in zip(names, items)]
        return CallExpr("rt.module_dict" if c.unrolled else "rt.named_sequential", pairs, notes)

    def _repeats(self, tree: Tree, c: Container, items: list, notes: list, plan: Plan | None) -> tuple[list, list]:
        """A sequence's items with each run of one block call written once:
        `*[Block(heads) for _ in range(layers)]` (NOTE: [Repeated blocks] in emit_share.py)."""
        out, out_notes, i = [], [], 0
        for k, (start, length) in enumerate(self._runs(tree, c.path)):
            out += items[i:start]
            out_notes += notes[i:start]
            count = plan.syms.get((c.path[len(plan.base):], f"depth{k}")) if plan else None
            out.append(Repeat(items[start], count.text if isinstance(count, Sym) else literal(length)))
            out_notes.append(notes[start])
            i = start + length
        return out + items[i:], out_notes + notes[i:]

    # ---- forward -------------------------------------------------------------------------
    def _forward(self, tree: Tree, c: Container, units, members: dict, plan: Plan | None = None,
                 elide: frozenset = frozenset()) -> tuple[list[str], list[str], int]:  # fmt: skip
        """`forward`'s parameters, lines and number of outputs. `elide`: units left out, each
        output read as the unit's input (how an instance lacking an optional submodule runs)."""
        graph = tree.graph
        units = live_units(tree, c, units)
        train = _training_units(tree, c, units)  # NOTE: [Training-only outputs] in ir.py: run last
        units, split = [u for u in units if u not in train] + train, len(units) - len(train)
        alias = {unit_output(tree, u): unit_input(tree, u) for u in units if u in elide}
        uses = last_uses(tree, c, units, alias)
        vars_ = Vars(uses)
        params = []
        for name, ref in c.inputs:
            params.append(vars_.param(ref, name))
        lines: list[str] = []
        reads = Counter(r for u in units for r in unit_reads(tree, u))
        reads.update(r for _, r in c.outputs)
        for i, unit in enumerate(units):
            lines += _eval_return(graph, c, vars_) if i == split else []
            kind, ref = unit
            if unit in elide:
                vars_.env[unit_output(tree, unit)] = vars_.env[unit_input(tree, unit)]
                continue
            if kind == "node" and (inline := _inlined(tree, units, i, reads, vars_)) is not None:
                vars_.env[(ref, 0)] = inline  # NOTE: [Single-use operands]
                continue
            callee = _member("self", members[unit]) if unit in members else None
            if kind == "node":
                stmt = self._node_stmt(tree, ref, vars_, i, callee)
            elif graph.containers[ref].unrolled:
                stmt = self._unrolled_stmts(tree, graph.containers[ref], vars_, i, callee)
            else:
                stmt = self._call_stmt(tree, graph.containers[ref], vars_, i, callee)
            if plan is not None and unit in members and members[unit] in plan.optional:
                target, source = vars_.env[unit_output(tree, unit)], vars_.env[unit_input(tree, unit)]
                where = comment(graph.node(ref).span.short) if kind == "node" else _where(graph.containers[ref])
                call = self._render(CallExpr(callee, [source]), 12, f"{target} = ", comment=where)
                stmt = [f"        {target} = {source}", f"        if {callee} is not None:", *call]
            lines += stmt
        lines += _eval_return(graph, c, vars_) if split == len(units) else []
        outs = [vars_.env[ref] for _, ref in c.outputs]
        lines.append(f"        return {', '.join(outs)}")
        return params, lines, len(outs)

    def _unrolled_stmts(self, tree: Tree, seq: Container, vars_: Vars, i: int, callee: str) -> list[str]:
        """An nn.ModuleList's items called one by one: `x = self.layers[0](x, memory)` (an
        nn.ModuleDict's when some items are labelled: `self.layers["gate"](x, memory)`)."""
        units = tree.ordered_units(seq.path)
        locals_ = [tree.graph.node(r).local if k == "node" else tree.graph.containers[r].local for k, r in units]
        numbered = locals_ == [str(k) for k in range(len(locals_))]
        lines: list[str] = []
        for (kind, ref), local in zip(units, locals_):
            item = f"{callee}[{local if numbered else literal(local)}]"
            if kind == "node":
                lines += self._node_stmt(tree, ref, vars_, i, item)
            elif tree.graph.containers[ref].unrolled:  # a nested sequence called item by item too
                lines += self._unrolled_stmts(tree, tree.graph.containers[ref], vars_, i, item)
            else:
                lines += self._call_stmt(tree, tree.graph.containers[ref], vars_, i, item)
        return lines

    def _node_stmt(self, tree: Tree, n: int, vars_: Vars, i: int, callee: str | None = None) -> list[str]:
        node = tree.graph.node(n)
        args = [vars_.env[r] for r in tree.inputs[n]]
        attrs = dict(node.attrs)
        ctor = _module_of(node) if node.module else None
        callee = callee or _member("self", node.local)
        if ctor:
            expr = node.opdef.invoke(attrs, callee, args)
        else:
            expr = node.opdef.inplace_call(attrs, args) if node.inplace else node.opdef.call(attrs, args)
        if expr is None:
            raise CompilerBug(f"op {node.op} has neither a module nor a call form")
        hints = node.out_vars or [node.var or node.local] * len(node.types)
        if node.inplace:  # the result is the input's tensor: keep its name (`out += skip`)
            hints = [args[0]]
        targets = [vars_.bind((n, k), hint, i) for k, hint in enumerate(hints)]
        target = node.opdef.targets(attrs, targets)
        where = comment(node.span.short)
        if isinstance(expr, Augmented):  # NOTE: [In place] in passes/inplace.py
            if target == expr.target:
                return self._render(expr.value, 8, f"{target} {expr.operator}= ", comment=where)
            expr = expr.fallback
        self._note_runtime(flat(expr))
        return self._render(expr, 8, f"{target} = ", comment=where)

    def _render(self, e, indent: int, prefix: str = "", comment: str | None = None) -> list[str]:
        """A statement of `forward`: its numbers rewritten under a class's plan (NOTE: [Sizes in
        forward] in generalize.py), then laid out."""
        if self._numbers is not None:
            e = leaves(e, self._numbers.leaf)
        return render(e, indent, prefix, comment=comment)

    def _note_runtime(self, code: str) -> None:
        if _RUNTIME.search(code):
            self.uses_runtime = True

    def _call_stmt(self, tree: Tree, c: Container, vars_: Vars, i: int, callee: str | None = None) -> list[str]:
        args = [vars_.env[r] for _, r in c.inputs]
        hint = c.var or c.local
        # An output that is a value the caller already holds (a block returning its input) or
        # that repeats an earlier output is thrown away (`_`): binding it again would make
        # `y, x = ...` assign one name twice, and the later target would win. (`bind` adds each
        # new output to `vars_.env`, so a repeat of it is seen there too.)
        targets = [
            "_" if r in vars_.env else vars_.bind(r, name if len(c.outputs) > 1 else hint, i)
            for name, r in c.outputs
        ]
        expr = CallExpr(callee or _member("self", c.local), args)
        return self._render(expr, 8, f"{', '.join(targets)} = ", comment=_where(c))


# NOTE: [Single-use operands] `out = torch.relu(out + skip)`, not `add = out + skip` then
# `out = torch.relu(add)`: an arithmetic op (+, -, *, /) of two names whose value the next
# statement alone reads, as the first argument of a call, is written there.
_OPERAND = re.compile(r"[\w.\[\]]+ [-+*/] [\w.\[\]]+")
_FIRST_ARG = re.compile(r"[\w.\[\]\"()]+?\(@[,)]")


def _inlined(tree: Tree, units: list, i: int, reads: Counter, vars_: Vars) -> str | None:
    """The expression unit `i` is written as in the next statement, or None."""
    node = tree.graph.node(units[i][1])
    n = units[i][1]
    if node.module or node.inplace or len(node.types) != 1 or reads[(n, 0)] != 1 or i + 1 >= len(units):
        return None
    kind, m = units[i + 1]
    if kind != "node" or (n, 0) not in tree.inputs[m]:
        return None
    expr = node.opdef.call(dict(node.attrs), [vars_.env[r] for r in tree.inputs[n]])
    consumer = tree.graph.node(m)
    if not isinstance(expr, str) or not _OPERAND.fullmatch(expr) or consumer.inplace:
        return None
    args = ["@" if r == (n, 0) else "_" for r in tree.inputs[m]]
    attrs = dict(consumer.attrs)
    use = (consumer.opdef.invoke(attrs, "self.m", args) if consumer.module and _module_of(consumer)
           else consumer.opdef.call(attrs, args))  # fmt: skip
    if use is None or isinstance(use, Augmented) or not _FIRST_ARG.match(flat(use)) or flat(use).count("@") != 1:
        return None
    return expr


def _training_units(tree: Tree, c: Container, units) -> list:
    """The model's units that only training-only outputs need, in order: forward runs them
    after it returns in eval mode. A unit whose value a unit of eval mode reads (a block that
    takes it as a second input) runs in both modes, and so do the units it reads."""
    graph = tree.graph
    if c.path or not graph.training_outputs:
        return []
    only = graph.training_only()
    keep = {u for u in units if all(n in only for n in tree._nodes_of(u))}
    for unit in reversed(units):  # readers come first: a unit that stays in eval mode keeps its sources
        if unit not in keep:
            reads = [u for n in tree._nodes_of(unit) for u, _ in tree.inputs[n]]
            reads += [u for _, (u, _) in graph.containers[unit[1]].inputs] if unit[0] == "container" else []
            keep -= {tree.unit_of((), u) for u in reads}
    return [u for u in units if u in keep]


def _eval_return(graph: Graph, c: Container, vars_: Vars) -> list[str]:
    """`if not self.training: return logits`, where a model has training-only outputs."""
    if c.path or not graph.training_outputs:
        return []
    outs = [vars_.env[ref] for _, ref in graph.eval_outputs()]
    return ["        if not self.training:", f"            return {', '.join(outs)}"]


def _returns(graph: Graph, c: Container) -> str:
    """The return annotation: one tensor or a tuple of them. A model with training-only outputs
    returns a tuple in training mode, and in eval mode one tensor or a shorter tuple."""
    n = len(c.outputs)
    if not c.path and graph.training_outputs:
        return "torch.Tensor | tuple[torch.Tensor, ...]" if len(graph.eval_outputs()) == 1 else "tuple[torch.Tensor, ...]"
    return "torch.Tensor" if n == 1 else f"tuple[{', '.join(['torch.Tensor'] * n)}]"


def _attr_path(name: str) -> str:
    """`transformer.h.0.attn` -> `self.transformer.h[0].attn`: a submodule by its state_dict name."""
    out = "self"
    for part in name.split("."):
        out = f"{out}[{part}]" if part.isdigit() else _member(out, part)
    return out


def _member(owner: str, name: str) -> str:
    """Submodule `name` of `owner`: `self.conv1`, or `getattr(self, "block1-0")` where the
    name is no Python attribute (a quoted label, a keyword: NOTE: [Module names] in names.py)."""
    return f"{owner}.{name}" if python_attribute(name) else f"getattr({owner}, {literal(name)})"


def _register(name: str, expr, where: str, indent: int = 8) -> list[str]:
    """`self.conv1 = nn.Conv2d(...)`, or `self.add_module("block1-0", ...)` (see `_member`)."""
    if python_attribute(name):
        return render(expr, indent, f"self.{name} = ", comment=where)
    return render(CallExpr("self.add_module", [literal(name), expr]), indent, comment=where)


def _attribute(attrs: Namespace, local: str) -> str:
    """The attribute of a submodule: its IR name exactly, so state_dict keys are the names
    the summary and diagrams show (the elaborator gives only valid, unreserved names)."""
    if not python_attribute(local):  # registered by name: `_register`
        return local
    name = attrs.create(local)
    if name != local:
        raise CompilerBug(f"submodule '{local}' would be emitted as '{name}'")
    return name


_RUNTIME = re.compile(r"(?<![\w.])rt\.")  # generated code that uses modelc.runtime


def _module_of(node, overrides: dict | None = None):
    """The constructor of a node's module: its in-place form when a pass chose one."""
    a = dict(node.attrs)
    if overrides:
        a.update(overrides)
    ctor = node.opdef.inplace_module(a) if node.inplace else None
    return ctor or node.opdef.module(a)


def _ctor_expr(ctor) -> CallExpr:
    args = [_value_expr("", a) for a in ctor.args] + [_value_expr(f"{k}=", v) for k, v in ctor.kwargs]
    return CallExpr(ctor.callee, args)


def _value_expr(prefix: str, v):
    """A literal; a tuple of several items as a collection that splits like ruff's (long weights);
    a symbolic value (generalize.Sym) as its expression."""
    if isinstance(v, tuple) and len(v) > 1:
        return CallExpr(prefix, [_value_expr("", x) for x in v], collection=True)
    if isinstance(v, tuple) and v and isinstance(v[0], Sym):
        return f"{prefix}({v[0].text},)"
    return prefix + (v.text if isinstance(v, Sym) else literal(v))


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
    outs = ", ".join(f"{doc(name)} {graph.type_of(ref)}" + (" (training only)" if name in graph.training_outputs else "")
                     for name, ref in graph.outputs)  # fmt: skip
    total = graph.num_params()
    lines = [f"{doc(_signature(graph.name, graph.params))}, defined at {where}.", "",
             f"    Inputs: {ins}.", f"    Outputs: {outs}.", f"    Parameters: {total:,}."]  # fmt: skip
    if graph.inference_only:
        lines += ["", f"    An inference module (-O{graph.optimized[0]}): {doc('; '.join(graph.inference_only))}."
                  " Use eval() mode; to train, compile without -O."]  # fmt: skip
    if graph.load_rules:
        lines += ["    load_state_dict() takes checkpoints of this model and of the unoptimized one",
                  "    (LOAD_RULES say how their parameters map onto these)."]  # fmt: skip
    return "\n".join([*lines, "    "])


def _optimized_line(graph: Graph) -> str:
    level, applied = graph.optimized
    return f"Optimized: -O{level}" + (f" ({', '.join(applied)})" if applied else " (no pass applied)")


def _wrap(line: str, width: int, indent: str) -> list[str]:
    """A line of prose in lines of at most `width` characters (long words stay whole)."""
    if len(line) <= width:
        return [line]
    return textwrap.wrap(line, width, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False)


def _fit_doc(text: str) -> str:
    """Docstring lines within the line length: the first follows `    \"\"\"`, the rest are
    indented 4; a one-line docstring that must wrap gets its closing quotes on a line of
    their own (as ruff formats it)."""
    lines = text.split("\n")
    first = _wrap(lines[0], LINE - 7 - (3 if len(lines) == 1 else 0), "    ")
    if len(first) > 1 and len(lines) == 1:
        first.append("    ")
    rest = [part for line in lines[1:] for part in _wrap(line, LINE, "    ")]
    return "\n".join(first + rest)


def _model_attrs(graph: Graph) -> list[str]:
    def shape(t) -> str:
        return literal(tuple(d if is_known(d) else str(d) for d in t.dims))

    ins = [f"{literal(graph.node(n).local)}: {shape(graph.node(n).type)}" for n in graph.inputs]
    outs = [f"{literal(name)}: {shape(graph.type_of(ref))}" for name, ref in graph.outputs]
    total = graph.num_params()
    out = []
    out += render(CallExpr("", ins, collection=True, brackets="{}"), 4, "INPUT_SHAPES = ")
    out += render(CallExpr("", outs, collection=True, brackets="{}"), 4, "OUTPUT_SHAPES = ")
    out += render(literal(total), 4, "NUM_PARAMETERS = ")
    if graph.training_outputs:  # NOTE: [Training-only outputs] in ir.py
        names = tuple(name for name, _ in graph.outputs if name in graph.training_outputs)
        out += render(literal(names), 4, "TRAINING_OUTPUTS = ")
    if graph.load_rules:
        rules = [CallExpr("", [literal(r.kind), _value_expr("", r.args) if len(r.args) > 1 else literal(r.args)],
                          collection=True) for r in graph.load_rules]  # fmt: skip
        out += render(CallExpr("", rules, collection=True), 4, "LOAD_RULES = ")
    return out


def _basename(path: str) -> str:
    return path.replace("\\", "/").rsplit("/", 1)[-1]
