"""AST -> IR. Entry point: :func:`elaborate`.

Evaluates parameter expressions, expands block calls, sequences and
repetitions, resolves names, and builds the :class:`Graph`, inferring each
node's shape as it is created (so `channels(x)` and in-channel inference work
during elaboration).

One `_Elaborator` holds the state (the program, the graph being built, the
diagnostics collected so far, the constants evaluated so far); its methods come
from one mixin per concept:

- context.py: `Scope`, `Frame`, `Ctx` and `LIMITS`, the state every part shares;
- statements.py: model and block bodies, statement by statement (inputs, shape
  patterns, assignments, outputs), collecting errors per statement;
- expressions.py: `_eval` and the `_e_*` methods, names, constants, cycles;
- steps.py: chain steps, `repeat`, `for`, numbered and unrolled sequences;
- branches.py: `[for ...]` lists, and parallel branches (labelled, a list of modules);
- calls.py: calls of builtins, blocks and ops, and the creation of op nodes;
- defs.py: `def bn = batchnorm(eps=1e-3)` and its uses, the call written out;
- blocks.py: block instantiation and parameters (`check_param`);
- naming.py: labels and automatic names.

The design notes live beside their code: NOTE: [Errors are collected per statement] in
statements.py, [Names in the module tree] in naming.py, [Unrolled sequences] and
[Conditional steps] in steps.py, [Branches] in branches.py, [Shape patterns bind names] in
statements.py, [Defs are calls written out] in defs.py.
"""

from __future__ import annotations

from typing import Any

from modelc import syntax as S
from modelc.diagnostics import Diagnostic, SpecError, error
from modelc.elaborate.blocks import BlocksMixin, check_param
from modelc.elaborate.branches import BranchesMixin
from modelc.elaborate.calls import CallsMixin
from modelc.elaborate.context import LIMITS, Ctx, Frame, Scope
from modelc.elaborate.defs import DefsMixin
from modelc.elaborate.expressions import ExpressionsMixin
from modelc.elaborate.naming import NamingMixin
from modelc.elaborate.statements import StatementsMixin, training_outputs
from modelc.elaborate.steps import StepsMixin
from modelc.ir import Container, Graph
from modelc.load import Program
from modelc.ops.base import suggest

__all__ = ["LIMITS", "elaborate", "check_param"]


def elaborate(
    program: Program,
    model: str | None = None,
    params: dict[str, Any] | None = None,
    inputs: dict[str, tuple[int | str, ...]] | None = None,
) -> Graph:
    """Build the graph of `model` (the file's only model when None).

    `params` override the model's parameters; `inputs` override the declared
    shapes of its inputs (dims are ints or symbol names).
    """
    return _Elaborator(program, inputs or {}).model(_pick_model(program, model), params or {})


def _pick_model(program: Program, name: str | None) -> S.BlockDef:
    if name is not None:
        if name in program.models:
            return program.models[name]
        raise error("E0504", f"no model named '{name}' in {program.path}", None,
                    suggest(name, program.models) or _models_hint(program))  # fmt: skip
    if not program.main_models:
        raise error("E0504", f"{program.path} defines no model", program.span,
                    "a spec needs a `model Name { ... }` section")  # fmt: skip
    if len(program.main_models) > 1:
        raise error("E0504", f"{program.path} defines several models; choose one",
                    None, _models_hint(program))  # fmt: skip
    return program.models[program.main_models[0]]


def _ties(graph: Graph) -> list[tuple[str, str]]:
    """(layer, owner) for each `linear(..., tie="owner")`: the owner is the state_dict name of an
    embedding or linear (not itself tied) whose weight has the shape this layer's would have."""
    names = graph.by_name()
    out = []
    for n in graph.nodes():
        node = graph.node(n)
        owner = node.attrs.get("tie") if node.op == "linear" else None
        if owner is None:
            continue
        target = names.get(owner)
        if target is None:
            raise error("E0404", f"tie=\"{owner}\": no layer of {graph.name} has that name", node.span,
                        suggest(owner, [k for k, v in names.items() if graph.node(v).params]) or
                        "name the layer by its state_dict prefix, from the model: \"transformer.wte\"")  # fmt: skip
        layer = graph.node(target)
        if layer.op not in ("embedding", "linear") or layer.attrs.get("tie") is not None:
            raise error("E0404", f"tie=\"{owner}\": a {layer.op} has no weight of its own to share",
                        node.span, "tie to an embedding or a linear layer")  # fmt: skip
        want = node.opdef.weight_shape(node.attrs)
        have = (layer.attrs["num"], layer.attrs["dim"]) if layer.op == "embedding" \
            else layer.opdef.weight_shape(layer.attrs)  # fmt: skip
        if tuple(have) != tuple(want):
            raise error("E0404", f"tie=\"{owner}\": its weight is {list(have)}, and this layer's would be "
                        f"{list(want)}", node.span)  # fmt: skip
        out.append((node.name, owner))
    return out


def _models_hint(program: Program) -> str:
    return "models: " + ", ".join(program.main_models or program.models) + " (use --model NAME)"


class _Elaborator(StatementsMixin, ExpressionsMixin, StepsMixin, BranchesMixin, CallsMixin, DefsMixin, BlocksMixin,
                  NamingMixin):
    """One elaboration of a program: the state below, shared by the mixins' methods."""

    def __init__(self, program: Program, input_shapes: dict[str, tuple[int | str, ...]]):
        self.program = program
        self.input_shapes = input_shapes
        self.graph: Graph | None = None
        self.problems: list[Diagnostic] = []
        self.globals = Scope({})
        self._const_stack: list[str] = []
        self._defs: dict[str, Any] = {}  # the file's defs used so far: Configured, or Poison
        self._def_stack: list[str] = []
        self.strided: dict[int, int] = {}  # node -> the node whose output may leave it non-contiguous

    # ---- entry ---------------------------------------------------------------------
    def model(self, mdef: S.BlockDef, overrides: dict[str, Any]) -> Graph:
        unknown = sorted(set(overrides) - {p.name for p in mdef.params})
        if unknown:
            names = ", ".join(p.name for p in mdef.params) or "none"
            raise error("E0405", f"model {mdef.name} has no parameter '{unknown[0]}'", mdef.name_span,
                        suggest(unknown[0], [p.name for p in mdef.params]) or f"parameters: {names}")
        ctx0 = Ctx(Frame(Container((), "model", mdef.name, mdef.span)), self.globals)
        values = self._bind_params(ctx0, mdef, [], [(k, v, None) for k, v in overrides.items()], mdef.span)
        graph = Graph(mdef.name, mdef.span, tuple(values.items()))
        self.graph = graph
        self.strided = {}  # node ids are per graph
        frame = Frame(graph.containers[()])
        ctx = Ctx(frame, Scope(dict(values), self.globals))
        if not any(isinstance(s, S.Input) for s in mdef.body):
            raise error("E0501", f"model {mdef.name} has no input", mdef.name_span,
                        "declare one: input image: [B, 3, 224, 224]")  # fmt: skip
        outputs = self._body(ctx, mdef, inputs=None)
        self._finish(frame)
        self._raise_problems()
        graph.ties = _ties(graph)
        declared = {graph.node(n).local for n in graph.inputs}
        for name in sorted(set(self.input_shapes) - declared):
            raise error("E0601", f"--input {name}: model {mdef.name} has no input '{name}'", None,
                        suggest(name, declared) or f"inputs: {', '.join(sorted(declared)) or 'none'}")
        graph.outputs = [(name, v.ref) for name, v in outputs]
        graph.training_outputs = training_outputs(mdef, outputs)
        graph.containers[()].outputs = list(graph.outputs)
        graph.containers[()].inputs = [(graph.node(n).local, (n, 0)) for n in graph.inputs]
        return graph

    def _raise_problems(self) -> None:
        if self.problems:
            raise SpecError(self.problems)
