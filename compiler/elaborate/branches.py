"""`[for v in items { body }]`: a list built by running an expression once per item, and,
labelled, parallel branches: the modules of a mixture's experts.

NOTE: [Branches]
`experts: [for e in 0..8 { x -> Expert(64) }]` evaluates the body once per item, each on
the inputs it names, and gives the list of the body's values. The label names an
`nn.ModuleList` (a sequence container, unrolled: see [Unrolled sequences] in steps.py)
whose item i is the one module branch i makes, numbered i: a block instance, a layer with
parameters or a module of its own, or a bracketed list `[a, b]` (a numbered sequence of its
own). So the keys are `experts.0.w1.weight`, ... as in Hugging Face's Mixtral. The body's
other ops (`relu`, `unsqueeze`, `*`: no module) stay in the enclosing forward, as they
would outside the list (calls.py sends them to the enclosing frame). Forward calls the
items one by one, `ys = self.experts[0](x)`, and every branch reads its inputs as they
were before the list (the emitter keeps them alive until the last branch has run).
A branch that makes no module, or several, or labels one, is an error: its module is
named by its number, and a label would name every branch's.
"""

from __future__ import annotations

from dataclasses import replace

from modelc import syntax as S
from modelc.builtins import check_list
from modelc.diagnostics import error
from modelc.elaborate.context import LIMITS, Ctx, Frame, Scope
from modelc.ir import Container
from modelc.values import Poison, Tensor, describe_value


class BranchesMixin:
    """Builds lists with `[for ...]` and parallel branches; part of `_Elaborator` (modelc.elaborate)."""

    def _e_ForList(self, ctx: Ctx, e: S.ForList):
        items = self._items(ctx, e.iterable)
        if items is Poison:
            return Poison
        if e.label is not None:
            return self._branches(ctx, e, items)
        values = [self._eval(replace(ctx, scope=Scope({e.var: item}, ctx.scope)), e.body) for item in items]
        return Poison if any(v is Poison for v in values) else check_list(values)

    def _branches(self, ctx: Ctx, e: S.ForList, items: list):
        parent = ctx.frame
        self._claim(parent, e.label, e.label_span)
        if len(parent.path) >= LIMITS["depth"]:
            raise error("E0508", f"modules (blocks and sequences) nested more than {LIMITS['depth']} deep",
                        e.span)  # fmt: skip
        if not items:
            raise error("E0509", f"'{e.label}' has no branches: the list it runs over is empty", e.iterable.span)
        container = Container((*parent.path, e.label), "seq", "", e.span, trace=parent.trace,
                              origin="branches", unrolled=True, var=ctx.var)  # fmt: skip
        self.graph.containers[container.path] = container
        frame = Frame(container, parent.stack, parent.trace, counter=[0], branches=parent)
        inner = replace(ctx, frame=frame, var=ctx.var or e.label)  # outputs named after the list: experts_1
        outs = []
        for i, item in enumerate(items):
            frame.counter[0], before = i, set(frame.used)
            value = self._eval(replace(inner, scope=Scope({e.var: item}, ctx.scope)), e.body)
            if value is Poison:
                return Poison
            labels = {n for n in set(frame.used) - before if not n.isdigit()}  # `[a, b]` claims its number
            self._check_branch(e, frame, i, value, labels)
            outs.append(value)
        container.outputs = [(str(i), v.ref) for i, v in enumerate(outs)]
        self._unroll(frame, self._branch_inputs(container.path))
        return outs

    def _check_branch(self, e: S.ForList, frame: Frame, i: int, value, labels: set[str]) -> None:
        """Branch i gave one tensor and made one module, numbered i (NOTE: [Branches])."""
        where = f"branch {i} of '{e.label}'"
        if not isinstance(value, Tensor):
            raise error("E0509", f"{where} must give one tensor, not {describe_value(value)}", e.body.span,
                        "unpack several outputs and keep one: a, _ = ...", frame.trace)  # fmt: skip
        if labels:
            label = min(labels)
            raise error("E0509", f"a label in the branches of '{e.label}' would name every branch's module: "
                        f"'{label}'", frame.used[label], f"the branches' modules are numbered {e.label}.0, "
                        f"{e.label}.1, ...; to name layers in one, put them in a block", frame.trace)  # fmt: skip
        made = frame.counter[0] - i
        if made != 1:
            what = "no module to number" if not made else f"{made} modules, not one"
            raise error("E0509", f"{where} makes {what}", e.body.span,
                        "a labelled [for ...] numbers one module per branch: a block, a layer with parameters, "
                        "or a list [a, b] (one numbered sequence); without the label, [for ...] is a plain list",
                        frame.trace)  # fmt: skip

    def _branch_inputs(self, path: tuple[str, ...]) -> list[Tensor]:
        """What the branches' modules read from outside them (their nodes, and the blocks among
        them, which may pass an input through untouched), in order, once each."""
        graph, refs = self.graph, {}
        inside = {n for n in graph.nodes() if graph.node(n).scope[: len(path)] == path}
        for n in sorted(inside):
            refs.update(dict.fromkeys(graph.inputs_of(n)))
        for p, c in graph.containers.items():
            if p[: len(path)] == path:
                refs.update(dict.fromkeys(ref for _, ref in c.inputs))
        return [Tensor(*ref, graph.type_of(ref)) for ref in refs if ref[0] not in inside]
