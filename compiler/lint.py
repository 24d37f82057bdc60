"""Warnings: specs that compile, but probably do not say what was meant.

A warning is a `Diagnostic` whose code starts with W (`warning[W0501]` when printed); it
never stops a compile. `build` stores a graph's warnings in `Graph.warnings`; the command
line prints them to standard error, the language server shows them in the editor.

    W0501  a value no output depends on: its layers are built, counted and run, for nothing
    W0502  with symbolic sizes, training mode needs larger inputs than eval mode (its
           training-only branch fails at sizes where eval mode runs)
"""

from __future__ import annotations

from modelc.diagnostics import Diagnostic, Note, Span
from modelc.ir import Graph
from modelc.verify import SIZES, concrete_env, env_text, size_problem  # torch only when a module runs

__all__ = ["training_sizes", "unused_values", "warnings"]


def warnings(graph: Graph) -> list[Diagnostic]:
    """Every warning about a checked graph, in source order."""
    return unused_values(graph) + training_sizes(graph)


def training_sizes(graph: Graph) -> list[Diagnostic]:
    """W0502: NOTE: [Training-only outputs] in ir.py. With symbolic input sizes, the branch of
    the training-only outputs is checked only when the sizes are known; it warns when, at the
    first sizes `compile --verify` would try where eval mode runs (every symbol but the batch
    set to 16, 32, ...), a layer of the branch would fail (Inception v3's auxiliary head at
    224x224: eval mode runs from 75x75)."""
    branch = graph.training_only()
    if not branch or concrete_env(graph, 1, SIZES[0]) == concrete_env(graph, 1, SIZES[1]):
        return []  # no branch, or no size to choose: concrete sizes are checked as the graph is built
    order = graph.topo()
    for size in SIZES:
        env = concrete_env(graph, 1, size)
        if any(size_problem(graph, n, env) for n in order if n not in branch):
            continue  # eval mode does not run here either
        failing = next(((n, p) for n in order if n in branch and (p := size_problem(graph, n, env))), None)
        if failing is None:
            return []
        node = graph.node(failing[0])
        needs = [name for name, ref in graph.outputs if name in graph.training_outputs
                 and failing[0] in _ancestors(graph, ref[0])]  # fmt: skip
        sizes = env_text({k: v for k, v in env.items() if v == size})  # the batch (1) goes without saying
        return [Diagnostic("W0502", f"training mode needs larger inputs than eval mode: at {sizes} "
                           f"eval mode runs, but {failing[1]}", node.span,
                           "train with larger inputs, or make the branch fit any size (adaptive_avgpool "
                           "before its kernels)", (Note(f"training-only output '{needs[0]}' needs it"),
                                                   *node.trace))]  # fmt: skip
    return []


def _ancestors(graph: Graph, n: int) -> set[int]:
    """`n` and every node it depends on."""
    seen: set[int] = set()
    stack = [n]
    while stack:
        m = stack.pop()
        if m not in seen:
            seen.add(m)
            stack.extend(u for u, _ in graph.inputs_of(m))
    return seen


def unused_values(graph: Graph) -> list[Diagnostic]:
    """W0501 for each value that no model output depends on (`aux = x -> head: conv(...)`
    never used). As written (-O0) such a branch is still built and run, so its parameters are
    in the `state_dict` and the module computes what the spec states; `-O1` removes it.
    One warning per place in the spec: a block's unused value warns once, however many
    instances the block has. A block output that its caller leaves unused (`y, _ = x ->
    Block`) is the caller's choice: no warning, unless the caller uses none of its outputs."""
    live = graph.live()
    dead = {n for n in graph.nodes() if n not in live and graph.node(n).op != "input"}
    if not dead:
        return []
    blocks = [c for c in graph.containers.values() if c.kind == "block" and c.outputs]
    unused_blocks = [c for c in blocks if all(ref[0] in dead for _, ref in c.outputs)]
    unused_paths = {c.path for c in unused_blocks}
    unused_blocks = [c for c in unused_blocks if not any(c.path[:i] in unused_paths for i in range(len(c.path)))]
    boundary = {ref[0] for c in blocks for _, ref in c.outputs}
    places: dict[tuple, tuple[Span, str, list[int], tuple]] = {}

    def add(span: Span, what: str, ends: list[int], trace: tuple) -> None:
        key = (span.file, span.line, span.col, span.end_line, span.end_col)
        places.setdefault(key, (span, what, [], trace))[2].extend(ends)

    for c in unused_blocks:  # a whole block instance nobody uses: said where it is instantiated
        where, trace = (c.trace[0].span, c.trace[1:]) if c.trace and c.trace[0].span else (c.span, c.trace)
        add(where, f"'{c.var}'" if c.var else f"block {c.name}", [ref[0] for _, ref in c.outputs], trace)
    for n in sorted(dead):
        node = graph.node(n)
        if n in boundary or any(v in dead for v, _, _ in graph.users(n)):
            continue  # a block's output, or not the end of the unused chain
        if any(node.scope[:i] in unused_paths for i in range(1, len(node.scope) + 1)):
            continue  # inside a block instance reported as a whole
        add(node.span, f"'{node.var}'" if node.var else f"the value of {node.op}", [n], node.trace)
    return [_unused(graph, span, what, ends, dead, trace) for span, what, ends, trace in places.values()]


def _unused(graph: Graph, span: Span, what: str, ends: list[int], dead: set[int], trace: tuple) -> Diagnostic:
    # The layers that exist only for these values: the dead ancestors of the ends.
    only: set[int] = set()
    stack = list(ends)
    while stack:
        n = stack.pop()
        if n in dead and n not in only:
            only.add(n)
            stack.extend(u for u, _ in graph.inputs_of(n))
    layers = sorted({graph.node(n).name for n in only if graph.node(n).params})
    params = sum(graph.node(n).params for n in only)
    notes = []
    if params:
        shown = ", ".join(layers[:3]) + (f" and {len(layers) - 3} more" if len(layers) > 3 else "")
        notes.append(Note(f"its layers ({shown}) hold {params:,} parameters, which are built, counted "
                          "and run in forward"))  # fmt: skip
    instances = len({graph.node(n).scope for n in ends})
    if instances > 1:
        notes.append(Note(f"once in each of {instances} block instances"))
    return Diagnostic("W0501", f"{what} is computed but never used: no output depends on it", span,
                      "use it in an output (`output training` where only training needs it) or delete it "
                      "(-O1 removes it)", (*notes, *trace))  # fmt: skip
