"""Names of the module tree: labels taken in a frame, numbers in sequences, automatic names.

NOTE: [Names in the module tree]
A labelled step is named by its label. Inside a labelled sequence
(`features: (...)`, `layer1: repeat 3 B(64)`, `layer2: for i in 0..4 {...}`)
unlabelled steps are numbered 0, 1, ... in order, and unlabelled sequences
nested in it continue the numbering (they flatten), which is how
`nn.Sequential` numbers torchvision's `features.0`, `layer2.3`; a bracketed
list `[a, b]` nested in it instead takes the next number itself and numbers
its own steps (`features.0.0`: torchvision's Conv2dNormActivation). Elsewhere an
unlabelled op gets the name of its op (`relu`, `relu_1`) once the enclosing
container is complete, so that a later label can never collide with it; an
unlabelled block instance is named at once (`bottleneck`, `bottleneck_1`)
because its contents need the path.
"""

from __future__ import annotations

from modelc import syntax as S
from modelc.diagnostics import Note, Span, error
from modelc.elaborate.context import Ctx, Frame
from modelc.names import LABEL_FIELD, module_name_problem, reserved_attribute, reserved_label
from modelc.values import Poison, describe_value


class NamingMixin:
    """Names layers and block instances; part of `_Elaborator` (modelc.elaborate)."""

    def _instance_name(self, frame: Frame, block: str, label: str | None, span: Span) -> str:
        if label:
            self._claim(frame, label, span)
            return label
        if frame.counter is not None:
            frame.counter[0] += 1
            return f"{frame.prefix}{frame.counter[0] - 1}"
        return _unique(frame, _snake(block), span)

    def _label(self, ctx: Ctx, text: str, span: Span, what: str = "label") -> str:
        """A label with the values of its `{name}`s put in: `"denseblock{i}"` is `denseblock1`
        where i is 1 (NOTE: [Module names] in names.py; the parser checked the text around)."""
        if "{" not in text:
            return text

        def value(m) -> str:
            v = self._eval(ctx, S.Name(m.group(1), span))
            if v is Poison:
                return m.group()
            if isinstance(v, bool) or not isinstance(v, (int, str)):
                raise error("E0506", f"{{{m.group(1)}}} in a {what} must be an integer or a string, got "
                            f"{describe_value(v)}", span, notes=ctx.frame.trace)  # fmt: skip
            return str(v)

        name = LABEL_FIELD.sub(value, text)
        problem = module_name_problem(name) if "{" not in name else None
        if problem:
            raise error("E0207", f"{what} \"{text}\" is \"{name}\" here, which cannot name a module: "
                        f"{problem[0]}", span, problem[1], ctx.frame.trace)  # fmt: skip
        return name

    def _claim(self, frame: Frame, name: str, span: Span, attribute: bool = True) -> None:
        """Take `name` in the frame: unique, and where it names a module, not reserved."""
        if attribute and reserved_label(name):
            alt = name.lstrip("_") or "layer"
            while reserved_attribute(alt):
                alt += "_"
            why = "names starting with '_' belong to nn.Module" if name.startswith("_") else \
                "it is an attribute of nn.Module or of generated models"
            raise error("E0206", f"'{name}' cannot name a layer: {why}", span, f"try '{alt}'")
        if name in frame.used:
            where = ".".join(frame.path) or "the model"
            if name in frame.automatic:
                raise error("E0202", f"'{name}' is already the name modelc gave an unlabelled block "
                            f"instance in {where}", span, "label that instance, or choose another label",
                            (Note("the unlabelled instance", frame.used[name]),))  # fmt: skip
            if frame.used[name] == span:  # the same label again: a step that repeat or for copies
                raise error("E0202", f"'{name}' is defined twice in {where}: a label inside "
                            "repeat or for names every copy", span,
                            "label the repeat or for instead (`layer1: repeat 3 ...` numbers the copies), "
                            "put the loop variable in the label (`\"layer{i}\": ...`), "
                            "or put the labelled steps in a block")  # fmt: skip
            raise error("E0202", f"'{name}' is defined twice in {where}", span,
                        "labels name modules and must be unique in their block",
                        (Note("first defined here", frame.used[name]),))  # fmt: skip
        frame.used[name] = span

    def _finish(self, frame: Frame) -> None:
        """Give unlabelled ops of a finished container unique names: relu, relu_1, ..."""
        for n in frame.unnamed:
            node = self.graph.node(n)
            node.local = _unique(frame, node.local, node.span)


def _unique(frame: Frame, base: str, span: Span) -> str:
    """An automatic name: `base` made a valid attribute (`If` -> `if_`, `Forward` ->
    `forward_`, no leading `_`), else the first free `base_N`; claims it in the frame."""
    base = base.lstrip("_") or "layer"
    if reserved_attribute(base):
        base += "_"
    name, i = base, frame.suffix.get(base, 0)
    while name in frame.used:
        i += 1
        name = f"{base}_{i}"
    frame.suffix[base] = i
    frame.used[name] = span
    frame.automatic.add(name)
    return name


def _snake(name: str) -> str:
    out = []
    for i, ch in enumerate(name):
        if ch.isupper() and i and (not name[i - 1].isupper() or (i + 1 < len(name) and name[i + 1].islower())):
            out.append("_")
        out.append(ch.lower())
    return "".join(out)
