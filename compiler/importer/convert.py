"""One traced `forward` (one level deep) as the body of a block: statements of spec text.

NOTE: [One level] The tracer stops at the module's direct children, so each module's own code
becomes one block whose steps are its children, labelled with their attribute names: the
compiled module has the same tree, hence the same `state_dict` keys. A node used once is
written inline (a chain `x -> conv1: conv(64) -> bn1: batchnorm`); a node used more than once,
or whose text is long, gets a binding named after the fx node.
"""

from __future__ import annotations

import operator
import re
from dataclasses import dataclass, field
from typing import Any

from modelc.importer.expr import CHAIN, COND, E, chain, wrap_line
from modelc.importer.funcs import FUNCTIONS, METHODS, Arg, function_name
from modelc.importer.raw import Raw

__all__ = ["Slot", "Traced", "body_lines", "safe_name"]

RESERVED = {"input", "output", "model", "import", "block", "repeat", "for", "in", "prefix", "if", "else",
            "and", "or", "not", "true", "false", "none", "B"}  # fmt: skip
INLINE_LIMIT = 400
_getitem = operator.getitem


def safe_name(name: str) -> str:
    """A binding or input name that is not a keyword and not an op (`mean(...)` would call it)."""
    from modelc.ops import REGISTRY

    name = name.lstrip("_") or "v"
    return name + "_" if name in RESERVED or name in REGISTRY else name


class Unmapped(Exception):
    """A traced function, method or parameter use with no spec form (E0701)."""


@dataclass
class Slot:
    """A call of a child module in the traced graph, and where its holes start."""

    raw: Raw
    label: str
    offset: int
    flag: int | None = None  # the hole of `has_<child>`, for an optional child


@dataclass
class Traced:
    """A traced module: its graph, the children's calls, parameters read with get_attr."""

    graph: Any
    slots: dict[str, Slot] = field(default_factory=dict)  # fx node name -> slot
    params: dict[str, Any] = field(default_factory=dict)  # get_attr target -> tensor
    inputs: list[str] = field(default_factory=list)


@dataclass
class _Param:
    target: str
    shape: tuple


@dataclass
class _Tuple:
    """A module output that torch returns as a tuple (MultiheadAttention): item 0 is the tensor."""

    first: E


def _shape(node) -> tuple | None:
    meta = node.meta.get("tensor_meta") if hasattr(node, "meta") else None
    return tuple(meta.shape) if meta is not None and hasattr(meta, "shape") else None


def body_lines(t: Traced, exprs: list[str], path: str, elide: frozenset = frozenset()) -> list[str]:
    """The statements of the block, each hole given its expression (a literal or a parameter)."""
    vals: dict[str, Any] = {}
    lines: list[str] = []
    live = _live(t.graph)
    order = {n.name: i for i, n in enumerate(t.graph.nodes)}
    bound: dict[str, Any] = {}  # variable -> the fx node it holds now
    for node in t.graph.nodes:
        if node.name not in live:
            continue
        if node.op == "placeholder":
            vals[node.name] = E(safe_name(node.name))
            bound[safe_name(node.name)] = node
            continue
        if node.op == "output":
            lines.append(f"output {_output(node.args[0], vals, path)}")
            continue
        val = _node(node, t, vals, exprs, path, elide)
        if isinstance(val, _Multi):
            if not val.count:
                raise Unmapped(f"{path or '<root>'}: cannot import {node.target} into an unknown number of parts")
            names = [safe_name(f"{node.name}_{i}") for i in range(val.count)]
            lines.append(f"{', '.join(names)} = {val.expr.text}")
            vals[node.name] = _Parts(names)
            continue
        if isinstance(val, E) and node.users and (_uses(node) > 1 or len(val.text) > INLINE_LIMIT
                                                  or _operand(val, next(iter(node.users)))):  # fmt: skip
            name = _binding_name(node, val, bound, order, t)
            bound[name] = node
            lines.append(f"{name} = {val.text}")
            val = E(name)
        vals[node.name] = val
    out = []
    for line in _drop_unused(lines):
        first, *rest = line.split("\n")
        out.extend("    " + piece for piece in wrap_line(first, 96))
        out.extend("            " + piece for piece in rest)
    return out


_COMBINE = {"operator.add", "operator.iadd", "torch.add", "add", "torch.cat", "torch.concat", "operator.matmul",
            "torch.matmul", "matmul", "operator.mul", "mul"}  # fmt: skip


def _operand(val: E, user) -> bool:
    """A long chain that is an operand of `+`, `@` or concat reads better bound to a name."""
    if val.prec > CHAIN or len(val.text) <= 50 or user.op not in ("call_function", "call_method"):
        return False
    return (user.target if user.op == "call_method" else function_name(user.target)) in _COMBINE


def _binding_name(node, val: E, bound: dict[str, Any], order: dict[str, int], t: Traced) -> str:
    """`x = x -> ...` when the chain starts at a variable read for the last time (the zoo's
    style); else the fx node's name, or for `attn(...)[0]` the module's."""
    head = val.text.split(" -> ", 1)[0]
    held = bound.get(head)
    if held is not None and val.prec == CHAIN and all(order[u.name] <= order[node.name] for u in held.users):
        return head
    if node.op == "call_function" and node.target is _getitem and getattr(node.args[0], "op", "") == "call_module":
        return safe_name(node.args[0].name)
    slot = t.slots.get(node.name)
    if slot is not None and slot.raw.param_free and slot.raw.key == "identity()":  # written as nothing
        return safe_name(node.args[0].name)
    return safe_name(node.name)


def _uses(node) -> int:
    """How many times the node is read: `f(m, m)` reads m twice, though fx counts one user."""
    def count(a) -> int:
        if isinstance(a, (list, tuple)):
            return sum(count(x) for x in a)
        if isinstance(a, dict):
            return sum(count(x) for x in a.values())
        return 1 if a is node else 0

    def once(u) -> bool:  # attn(x, x, x) is written `x -> self_attention`: one read
        return u.op == "call_module" and all(a is node for a in u.args)

    return sum(1 if once(u) else count(u.args) + count(u.kwargs) for u in node.users)


def _drop_unused(lines: list[str]) -> list[str]:
    """Bindings nothing reads (sizes that a reshape read before it became `flatten`)."""
    lines = list(lines)
    changed = True
    while changed:
        changed = False
        for i in range(len(lines) - 1, -1, -1):
            name, sep, _ = lines[i].partition(" = ")
            if sep and re.fullmatch(r"\w+", name) and not any(re.search(rf"\b{name}\b", later)
                                                             for later in lines[i + 1 :]):  # fmt: skip
                del lines[i]
                changed = True
    return lines


def _live(graph) -> set[str]:
    out_node = next(n for n in graph.nodes if n.op == "output")
    seen, todo = set(), [out_node]
    while todo:
        n = todo.pop()
        if n.name in seen:
            continue
        seen.add(n.name)
        todo.extend(n.all_input_nodes)
    return seen


def _output(arg, vals: dict, path: str) -> str:
    if isinstance(arg, (tuple, list)):
        return ", ".join(_tensor(a, vals, path).text for a in arg)
    return _tensor(arg, vals, path).text


def _tensor(node, vals: dict, path: str) -> E:
    val = vals.get(getattr(node, "name", None))
    if isinstance(val, _Tuple):
        return val.first
    if not isinstance(val, E):
        raise Unmapped(f"{path or '<root>'}: cannot import a use of {getattr(node, 'target', node)}")
    return val


def _node(node, t: Traced, vals: dict, exprs: list[str], path: str, elide: frozenset) -> Any:
    if node.op == "get_attr":
        tensor = t.params.get(node.target)
        return _Param(node.target, tuple(tensor.shape) if tensor is not None else ())
    if node.op == "call_module":
        return _module_call(node, t, vals, exprs, path, elide)
    name = node.target if node.op == "call_method" else function_name(node.target)
    return _function(node, name, vals, path)


def _module_call(node, t: Traced, vals: dict, exprs: list[str], path: str, elide: frozenset) -> Any:
    slot = t.slots[node.name]
    tensors = [_tensor(a, vals, path) for a in node.args if hasattr(a, "name")]
    if not tensors:
        raise Unmapped(f"{path or '<root>'}: cannot import a call of {slot.label} without tensor inputs")
    src, extras = tensors[0], [x.text for x in tensors[1:]]
    if slot.label in elide:
        return src
    raw = slot.raw
    holes = exprs[slot.offset : slot.offset + len(raw.values)]
    if raw.kind == "leaf" and raw.key.startswith("multihead_attention"):
        same = len({a.name for a in node.args if hasattr(a, "name")}) == 1
        step = raw.call(holes, [] if same else extras)
        step = step.replace("multihead_attention", "self_attention", 1) if same else step
        return _Tuple(chain(src, f"{slot.label}: {step}"))
    step = raw.call(holes, extras)
    if raw.param_free and step == "identity" and not extras:
        return src  # Identity, and StochasticDepth in eval mode: nothing to write
    step = step if raw.param_free else f"{slot.label}: {step}"
    out = chain(src, step)
    if slot.flag is not None and exprs[slot.flag] in ("true", "false"):
        return out if exprs[slot.flag] == "true" else src
    if slot.flag is not None:
        return E(f"{out.text} if {exprs[slot.flag]} else {src.at_least(CHAIN)}", COND)
    return out


def _arg(a, vals: dict, path: str, node) -> Arg:
    if hasattr(a, "name") and hasattr(a, "op"):
        val = vals.get(a.name)
        if not isinstance(val, E):  # a parameter, a tuple, an expanded parameter
            return Arg(None, val)
        return Arg(val, None, _shape(a))
    if isinstance(a, (list, tuple)) and any(hasattr(x, "op") for x in a):
        return Arg(None, [_arg(x, vals, path, node) for x in a])
    return Arg(None, a)


@dataclass
class _Multi:
    """An op with several outputs (chunk, unbind, split), bound as `a, b = ...`."""

    expr: E
    count: int


@dataclass
class _Parts:
    names: list[str]


_SPLITS = {"chunk", "torch.chunk", "unbind", "torch.unbind", "split", "torch.split"}


def _split(name: str, args: list[Arg], kwargs: dict, node) -> _Multi:
    meta = node.meta.get("tensor_meta")
    count = len(meta) if isinstance(meta, (tuple, list)) else None
    short = name.rsplit(".", 1)[-1]
    rest = [a.value for a in args[1:]]
    if short == "unbind":
        dim = rest[0] if rest else kwargs.get("dim", 0)
        return _Multi(chain(args[0].expr, f"unbind({dim})"), count or 0)
    dim = rest[1] if len(rest) > 1 else kwargs.get("dim", 0)
    if short == "chunk":
        n = rest[0] if rest else kwargs.get("chunks")
        return _Multi(chain(args[0].expr, f"chunk({n}, dim={dim})"), count or n)
    if count is None:
        raise Unmapped(f"split of unknown sizes ({name})")
    sizes = [m.shape[dim] for m in meta]
    return _Multi(chain(args[0].expr, f"split({sizes}, dim={dim})"), count)


def _function(node, name: str, vals: dict, path: str) -> Any:
    args = [_arg(a, vals, path, node) for a in node.args]
    kwargs = {k: (_arg(v, vals, path, node).value if not hasattr(v, "op") else _arg(v, vals, path, node))
              for k, v in node.kwargs.items()}  # fmt: skip
    special = _pattern(name, args, kwargs, node)
    if special is not None:
        return special
    if isinstance(args[0].value if args else None, _Parts) and name == "operator.getitem":
        return E(args[0].value.names[args[1].value])
    if name in _SPLITS and args and args[0].is_expr:
        return _split(name, args, kwargs, node)
    if name in ("operator.getitem",) and isinstance(args[0].value, _Tuple) and args[1].value == 0:
        return args[0].value.first
    table = METHODS if node.op == "call_method" else FUNCTIONS
    handler = table.get(name)
    shown = f"Tensor.{name}" if node.op == "call_method" else name
    if handler is None or any(isinstance(a.value, (_Param, _Tuple)) or _is_expand(a.value) for a in args):
        raise Unmapped(f"{path or '<root>'}: cannot import {shown}")
    kwargs["__out__"] = _shape(node)
    try:
        out = handler(args, kwargs)
    except (TypeError, IndexError, AttributeError):
        out = None
    if out is None:
        raise Unmapped(f"{path or '<root>'}: cannot import {shown} with these arguments")
    return out


def _pattern(name: str, args: list[Arg], kwargs: dict, node) -> Any:
    """Learned tensors read with get_attr that the spec has ops for: `x + self.pos_embedding`
    (learned_position) and `cat([self.class_token.expand(n, -1, -1), x], dim=1)` (cls_token)."""
    if name in ("operator.add", "torch.add") and len(args) == 2:
        x, p = (args[0], args[1]) if isinstance(args[1].value, _Param) else (args[1], args[0])
        if isinstance(p.value, _Param) and x.is_tensor and len(p.value.shape) == 3 and p.value.shape[0] == 1 \
                and tuple(p.value.shape[1:]) == tuple(x.shape[1:]) and "." not in p.value.target:  # fmt: skip
            return chain(x.expr, f"{p.value.target}: learned_position")
    if name == "expand" and isinstance(args[0].value, _Param):
        return ("expand", args[0].value)
    if name in ("torch.cat", "torch.concat") and args and isinstance(args[0].value, list):
        items = args[0].value
        dim = args[1].value if len(args) > 1 else kwargs.get("dim", 0)
        if len(items) == 2 and isinstance(items[0].value, tuple) and items[0].value[0] == "expand" \
                and items[1].is_tensor and dim == 1 and len(items[1].shape) == 3:  # fmt: skip
            param = items[0].value[1]
            if param.shape[:2] == (1, 1) and "." not in param.target:
                return chain(items[1].expr, f"{param.target}: cls_token")
    return None


def _is_expand(value: Any) -> bool:
    return isinstance(value, tuple) and len(value) == 2 and value[0] == "expand"


def key_exprs(n: int) -> list[str]:
    """Placeholder expressions for computing a structural key: never equal to a default."""
    return [f"\u27e8{i}\u27e9" for i in range(n)]

