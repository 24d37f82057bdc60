"""Chain steps (`x -> a -> b`): calls, groups, `repeat`, `for`, and labelled sequences,
which become containers whose unlabelled steps are numbered (see NOTE: [Names in the
module tree] in naming.py).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from modelc import syntax as S
from modelc.diagnostics import CompilerBug, Span, error
from modelc.elaborate.context import LIMITS, Ctx, Frame, Scope
from modelc.ir import Container
from modelc.values import Poison, Tensor, describe_value


class StepsMixin:
    """Runs chain steps and sequences; part of `_Elaborator` (modelc.elaborate)."""

    def _step(self, ctx: Ctx, step, x: Any, label: str | None = None, label_span: Span | None = None):
        if x is Poison:
            return Poison
        if not isinstance(x, Tensor):
            hint = "pass a list of tensors to an op instead: concat(ys, dim=1)" if isinstance(x, list) else None
            raise error("E0509", f"only a tensor can flow into a step; this is {describe_value(x)}",
                        step.span, hint, ctx.frame.trace)  # fmt: skip
        if isinstance(step, S.Call):
            return self._call(ctx, step, x, label, label_span)
        if isinstance(step, S.Bare):
            call = S.Call(step.name, (), (), step.span, step.span)
            return self._call(ctx, call, x, label, label_span)
        if isinstance(step, S.LabelledStep):
            if isinstance(step.step, (S.Seq, S.Repeat, S.For)):
                return self._sequence(ctx, step, x)
            return self._step(ctx, step.step, x, self._label(ctx, step.label, step.label_span), step.label_span)
        if isinstance(step, S.Seq):
            if step.brackets and ctx.frame.counter is not None:
                return self._sub_sequence(ctx, step, x)
            return self._steps(ctx, step.steps, x)
        if isinstance(step, S.StepIf):
            chosen = self._branch(ctx, step)
            if chosen is Poison:
                return Poison
            return x if chosen is None else self._step(ctx, chosen, x)
        if isinstance(step, S.Repeat):
            count = self._count(ctx, step.count, "repeat count")
            for _ in range(count):
                x = self._step(ctx, step.step, x)
            return x
        if isinstance(step, S.For):
            if step.prefix is not None:
                raise error("E0509", "'prefix' names the items of a labelled 'for'", step.span,
                            f'label it: layers: for {step.var} in ... prefix "{step.prefix}" {{ ... }}')
            items = self._items(ctx, step.iterable)
            if items is Poison:
                return Poison
            for item in items:
                inner = replace(ctx, scope=Scope({step.var: item}, ctx.scope))
                x = self._steps(inner, step.steps, x)
            return x
        raise CompilerBug(f"unknown step {step!r}")

    def _steps(self, ctx: Ctx, steps, x):
        for s in steps:
            x = self._step(ctx, s, x)
        return x

    def _items(self, ctx: Ctx, expr):
        """What a `for` runs over: a list (a range is one)."""
        items = self._eval(ctx, expr)
        if items is not Poison and not isinstance(items, list):
            raise error("E0506", f"'for' needs a list or a range, got {describe_value(items)}", expr.span)
        return items

    def _branch(self, ctx: Ctx, step: S.StepIf):
        """The branch of a conditional step its compile-time condition picks (None: no step).

        NOTE: [Conditional steps] Only the chosen branch is elaborated, in the place of the
        conditional, as if written there: in a numbered sequence it takes the next number(s),
        and a step left out (`se if use_se`, false) takes none, so the steps after it keep the
        numbers torchvision's nn.Sequential gives them when the layer is not appended
        (MobileNetV3's `block.2` is the squeeze-excitation or, without one, the projection).
        `identity` is a layer: nn.Identity in an nn.Sequential has a number, and so does it."""
        cond = self._eval(ctx, step.cond)
        if cond is Poison:
            return Poison
        if not isinstance(cond, bool):
            hint = ("the condition of a step is decided when compiling, from parameters and sizes; "
                    "to choose per element, use where(cond, a, b)") if isinstance(cond, Tensor) else None  # fmt: skip
            raise error("E0506", f"a condition must be true or false, got {describe_value(cond)}",
                        step.cond.span, hint, ctx.frame.trace)  # fmt: skip
        return step.then if cond else step.else_

    def _count(self, ctx: Ctx, expr, what: str) -> int:
        n = self._eval(ctx, expr)
        if n is Poison:
            return 0
        if not isinstance(n, int) or isinstance(n, bool) or n < 0:
            raise error("E0506", f"{what} must be a non-negative integer, got {describe_value(n)}", expr.span)
        if n > LIMITS["repeat"]:
            raise error("E0508", f"{what} {n:,} is over the limit of {LIMITS['repeat']:,}", expr.span)
        return n

    def _sequence(self, ctx: Ctx, step: S.LabelledStep, x: Tensor):
        """A labelled sequence: a container whose unlabelled steps are numbered."""
        parent = ctx.frame
        label = self._label(ctx, step.label, step.label_span)
        self._claim(parent, label, step.label_span)
        origin = {S.Seq: "group", S.Repeat: "repeat", S.For: "for"}[type(step.step)]
        if len(parent.path) >= LIMITS["depth"]:  # generated code nests nn.Sequential(...) as deep
            raise error("E0508", f"modules (blocks and sequences) nested more than {LIMITS['depth']} deep",
                        step.span)  # fmt: skip
        container = Container((*parent.path, label), "seq", "", step.span,
                              inputs=[("x", x.ref)], trace=parent.trace, origin=origin, var=ctx.var)  # fmt: skip
        self.graph.containers[container.path] = container
        frame = Frame(container, parent.stack, parent.trace, counter=[0])
        body = step.step
        if isinstance(body, S.For) and body.prefix is not None:
            frame.prefix = self._label(ctx, body.prefix, body.prefix_span or body.span, "prefix")
            body = replace(body, prefix=None)
            if isinstance(body.iterable, S.Range):  # `for i in 1..5 prefix "denselayer"`: denselayer1, ...
                start = self._eval(ctx, body.iterable.lo)
                if isinstance(start, int) and not isinstance(start, bool) and start >= 0:
                    frame.counter[0] = start
        inner = replace(ctx, frame=frame)
        out = self._steps(inner, body.steps, x) if isinstance(body, S.Seq) else self._step(inner, body, x)
        if isinstance(out, Tensor):
            if out.ref == x.ref:
                raise error("E0509", f"sequence '{label}' is empty", step.span)
            container.outputs = [("out", out.ref)]
        return out

    def _sub_sequence(self, ctx: Ctx, seq: S.Seq, x: Tensor):
        """`[a, b]` inside a numbered sequence: a sequence of its own, named by the next number."""
        number = f"{ctx.frame.prefix}{ctx.frame.counter[0]}"
        ctx.frame.counter[0] += 1
        return self._sequence(ctx, S.LabelledStep(number, seq, seq.span, seq.span), x)

    def _unroll(self, frame: Frame, extra: list[Tensor]) -> None:
        """A numbered sequence whose blocks take more than the previous output.

        NOTE: [Unrolled sequences] nn.Sequential passes one tensor along, so such a
        sequence (`layers: for i in 0..6 { DecoderLayer(memory) }`) becomes an
        nn.ModuleList (an nn.ModuleDict when items have names), called item by item in
        the parent's forward; the keys (`layers.0.self_attn...`) are the same. The
        extra tensors become inputs of the sequence's container, and of every sequence
        it is nested in: a sequence holding one called item by item is itself called
        item by item (nn.Sequential cannot call a ModuleList).
        """
        path = frame.container.path
        while path in self.graph.containers and self.graph.containers[path].kind == "seq":
            c = self.graph.containers[path]
            c.unrolled = True
            for t in extra:
                if t.ref not in [r for _, r in c.inputs]:
                    c.inputs.append((f"in{len(c.inputs)}", t.ref))
            path = path[:-1]
