"""Walks an `nn.Module` tree and makes a :class:`Raw` template of every module instance.

Each module is, in this order: a known module (known.py, a fixed block of spec text), a
leaf layer (table.py, one op), a plain `nn.Sequential` (a numbered sequence of its children),
or else traced one level deep with torch.fx (convert.py) into a block. torch is imported
here, so this module is only imported when an import really runs.
"""

from __future__ import annotations

import contextlib
import io
from typing import Any

import torch
from torch import nn
from torch.fx import Tracer
from torch.fx.passes.shape_prop import ShapeProp

from modelc.importer import known
from modelc.importer.convert import Slot, Traced, Unmapped, body_lines, key_exprs
from modelc.importer.errors import import_error
from modelc.importer.raw import Raw, leaf_raw
from modelc.importer.table import NODEFAULT, Unsupported, leaf_for
from modelc.importer.sequence import seq_raw

__all__ = ["Walker"]


class _OneLevel(Tracer):
    """Records calls of the traced module's children without entering them."""

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return m is not self.root


class Walker:
    """Makes the templates; `blocks` lists the block instances in the order they were made
    (children before parents), which is the order their definitions are written."""

    def __init__(self, root: nn.Module, example_inputs: tuple, tick=None) -> None:
        self.root = root
        self.blocks: list[Raw] = []
        self.inputs = _record_inputs(root, example_inputs)
        self.optional = _optional_children(root)
        self.tick = tick or (lambda: None)
        self._cache: dict[int, tuple[nn.Module, Raw]] = {}  # id -> (module kept alive, its template)
        self._donors: dict[tuple[type, str], tuple[nn.Module, str]] = {}
        for path, m in root.named_modules():
            for name, child in m.named_children():
                self._donors.setdefault((type(m), name), (child, f"{path}.{name}" if path else name))

    def raw(self, module: nn.Module, path: str, label: str) -> Raw:
        self.tick()
        entry = known.find(module)
        if entry is not None:
            return self._known(entry, module, path)
        make = leaf_for(module)
        if make is not None:
            return self._leaf(make, module, path, label)
        if type(module).forward is nn.Sequential.forward or type(module) is nn.ModuleList:
            if path == "":
                raise import_error("E0708", "<root>", "the model is an nn.Sequential, whose keys (0.weight, ...) "
                                   "no spec label can name", "wrap it in a module: self.body = the Sequential")  # fmt: skip
            items = [(name, self.raw(child, f"{path}.{name}", name)) for name, child in module.named_children()]
            return seq_raw(items, path)
        return self._block(module, path)

    # ---- the three kinds ---------------------------------------------------------------------
    def _known(self, entry, module: nn.Module, path: str) -> Raw:
        try:
            raw = entry(module, path)
        except Unsupported as exc:
            raise import_error("E0703", path, f"cannot import {type(module).__name__}: {exc}") from None
        self.blocks.append(raw)
        return raw

    def _leaf(self, make, module: nn.Module, path: str, label: str) -> Raw:
        try:
            leaf = make(module)
        except Unsupported as exc:
            raise import_error("E0703", path, f"cannot import {type(module).__name__}: {exc}") from None
        free = not any(True for _ in module.parameters()) and not any(True for _ in module.buffers())
        return leaf_raw(leaf.op, leaf.pos, leaf.kw, label, path, free, NODEFAULT)

    def _block(self, module: nn.Module, path: str) -> Raw:
        missing = [n for n in self.optional.get(type(module), ()) if getattr(module, n, 0) is None]
        traced = self._trace(module, path)
        if missing and not self._stand_in_agrees(module, path, missing, traced):
            missing = []
        if missing:
            traced = self._trace(module, path, stand_ins=missing)
        values, names = self._slots(module, path, traced, missing)
        _check_all_called(module, path, {slot.label for slot in traced.slots.values()} | set(missing))
        key = f"{type(module).__qualname__}|{type(module).__module__}|" + "\n".join(
            self._lines(traced, key_exprs(len(values)), path))
        raw = Raw("block", key, values, names, _call_render, path, body=None, inputs=traced.inputs,
                  block_name=type(module).__name__)  # fmt: skip
        raw.body = lambda exprs, t=traced, p=path: self._lines(t, exprs, p)
        raw.render = lambda exprs, extras, r=raw: _call_render(r, exprs, extras)
        self.blocks.append(raw)
        return raw

    def _slots(self, module: nn.Module, path: str, traced: Traced, missing: list[str]) -> tuple[list, list[str]]:
        """Each child call's template and where its holes start; the block's hole values and
        name hints (an optional child adds a `has_<child>` flag after its own holes)."""
        optional = set(self.optional.get(type(module), ())) if missing or self._has_optional(module) else set()
        values: list = []
        names: list[str] = []
        for node in traced.graph.nodes:
            if node.op != "call_module":
                continue
            label = node.target
            if "." in label:
                raise import_error("E0705", path, f"cannot import a call of {label}, a module inside a child; "
                                   "only direct children are called in a spec block")  # fmt: skip
            child = module.get_submodule(label) if label not in missing else None
            if child is None:
                donor, donor_path = self._donors[(type(module), label)]
                raw = self._cached(donor, donor_path, label).wild()
            else:
                raw = self._cached(child, f"{path}.{label}" if path else label, label)
            if not raw.param_free and raw.path in self._used(traced, label, node.name):
                raise import_error("E0705", f"{path}.{label}" if path else label,
                                   "a module with parameters is called more than once; a spec layer is used once")  # fmt: skip
            slot = Slot(raw, label, len(values))
            values += raw.values
            names += raw.names if raw.kind == "leaf" else [f"{label}_{n}" for n in raw.names]
            if label in optional:
                slot.flag = len(values)
                values.append(child is not None)
                names.append(f"has_{label}")
            traced.slots[node.name] = slot
        return values, names

    # ---- helpers -----------------------------------------------------------------------------
    def _cached(self, module: nn.Module, path: str, label: str) -> Raw:
        """One template per module object (a parameter-free child called twice is one)."""
        if id(module) not in self._cache:
            self._cache[id(module)] = (module, self.raw(module, path, label))
        return self._cache[id(module)][1]

    def _used(self, traced: Traced, label: str, name: str) -> set[str]:
        """Paths of children with parameters already called before node `name` (shared layers)."""
        out = set()
        for node in traced.graph.nodes:
            if node.name == name:
                break
            if node.op == "call_module" and node.target == label and node.name in traced.slots:
                out.add(traced.slots[node.name].raw.path)
        return out

    def _has_optional(self, module: nn.Module) -> bool:
        return any(getattr(module, n, None) is not None for n in self.optional.get(type(module), ()))

    def _lines(self, traced: Traced, exprs: list[str], path: str, elide: frozenset = frozenset()) -> list[str]:
        try:
            return body_lines(traced, exprs, path, elide)
        except Unmapped as exc:
            where, _, message = str(exc).partition(": ")
            raise import_error("E0701", where, message, "see docs/import.md for what is imported") from None

    def _trace(self, module: nn.Module, path: str, stand_ins: list[str] = ()) -> Traced:
        saved = {}
        for name in stand_ins:  # NOTE: [Optional children] traced as if present, then flagged
            saved[name] = module.__dict__.pop(name, None)
            module._modules[name] = self._donors[(type(module), name)][0]
        try:
            graph = _OneLevel().trace(module)
        except Exception as exc:  # noqa: BLE001 - fx raises many kinds; all mean "not traceable"
            raise import_error("E0704", path or "<root>", f"torch.fx cannot trace {type(module).__name__}: "
                               f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                               "add a known module (docs/import.md) or make forward traceable") from None  # fmt: skip
        finally:
            for name in stand_ins:
                del module._modules[name]
                module.__dict__[name] = saved[name]
        _fold_module_lists(module, graph)
        traced = Traced(graph, inputs=[n.name for n in graph.nodes if n.op == "placeholder"])
        traced.params = {n.target: _attr(module, n.target) for n in graph.nodes if n.op == "get_attr"}
        if not stand_ins and id(module) in self.inputs:
            _propagate(module, graph, self.inputs)
        return traced

    def _stand_in_agrees(self, module: nn.Module, path: str, missing: list[str], as_is: Traced) -> bool:
        """Whether tracing with the absent children present, then skipping their calls, gives
        the graph traced as is: then `x -> child if has_child else x` is exact."""
        try:
            with_them = self._trace(module, path, stand_ins=missing)
            for t in (with_them, as_is):
                for node in t.graph.nodes:
                    if node.op == "call_module":
                        t.slots[node.name] = Slot(_Opaque(node.target), node.target, 0)
            a = body_lines(with_them, [], path, frozenset(missing))
            b = body_lines(as_is, [], path)
        except Exception:  # noqa: BLE001 - any failure means: do not unify
            return False
        finally:
            as_is.slots.clear()
        return a == b


def _check_all_called(module: nn.Module, path: str, called: set[str]) -> None:
    """A child with weights that forward (in eval mode) never calls would have no place in the
    spec, and its keys would be missing from the compiled module: refused, not dropped."""
    for name, child in module.named_children():
        if name in called or not any(True for _ in child.parameters()) and not any(True for _ in child.buffers()):
            continue
        where = f"{path}.{name}" if path else name
        raise import_error("E0705", where, f"{type(child).__name__} is never called by forward in eval mode, so "
                           "its weights would have no place in the spec",
                           "build the module without it (a training-only branch: torchvision's "
                           "aux_logits=False)")  # fmt: skip


def _fold_module_lists(module: nn.Module, graph) -> None:
    """`for layer in self.layers: x = layer(x)` traces as calls of layers.0, layers.1, ...; when
    they chain every item of an nn.ModuleList in order, they become one call of `layers`,
    written as a numbered sequence (the keys stay layers.0...)."""
    for name, child in module.named_children():
        if type(child) is not nn.ModuleList or not len(child):
            continue
        calls = [n for n in graph.nodes if n.op == "call_module" and n.target.startswith(name + ".")]
        targets = [f"{name}.{i}" for i in range(len(child))]
        if [n.target for n in calls] != targets or any(len(n.args) != 1 or n.kwargs for n in calls):
            continue
        if any(b.args[0] is not a or len(a.users) != 1 for a, b in zip(calls, calls[1:])):
            continue
        with graph.inserting_after(calls[-1]):
            folded = graph.call_module(name, (calls[0].args[0],))
        calls[-1].replace_all_uses_with(folded)
        for n in reversed(calls):
            graph.erase_node(n)


def _call_render(raw: Raw, exprs: list[str], extras: list[str]) -> str:
    """`Name(args)`: the block's parameters, each the expression of its column here."""
    group = raw.group
    if group is None:  # while computing keys: the structure of the child, all its holes
        return f"{raw.block_name}#{hash(raw.key) & 0xFFFFFFFF:x}({', '.join(list(extras) + exprs)})"
    args = list(extras) + [exprs[col] for _, _, col in group.params]
    return f"{group.name}({', '.join(args)})" if args else group.name


class _Opaque(Raw):
    """A child stand-in for comparing two traces: its call is its label."""

    def __init__(self, label: str) -> None:
        super().__init__("leaf", label, [], [], lambda e, x, lab=label: f"{lab}({', '.join(x)})", label, False)


def _attr(module: nn.Module, target: str) -> Any:
    obj: Any = module
    for part in target.split("."):
        obj = getattr(obj, part)
    return obj


def _record_inputs(root: nn.Module, example_inputs: tuple) -> dict[int, tuple]:
    """By module id: the positional inputs of its first call, and its output when it is called
    exactly once (ShapeProp then replays it instead of running the child again), from one
    forward in eval mode."""
    seen: dict[int, tuple] = {}
    hooks = []
    for m in root.modules():
        def pre(mod, args, _seen=seen):
            if id(mod) in _seen:
                _seen[id(mod)] = (_seen[id(mod)][0], None, False)
            else:
                _seen[id(mod)] = (tuple(a.detach() if isinstance(a, torch.Tensor) else a for a in args), None, True)

        def post(mod, args, out, _seen=seen):
            ins, _, once = _seen[id(mod)]
            _seen[id(mod)] = (ins, out if once else None, once)
        hooks += [m.register_forward_pre_hook(pre), m.register_forward_hook(post)]
    try:
        with torch.no_grad():
            root(*example_inputs)
    finally:
        for h in hooks:
            h.remove()
    return seen


class _Replay(ShapeProp):
    """ShapeProp that takes a child's output from the recorded forward when it has one."""

    def __init__(self, gm, recorded: dict[int, tuple]) -> None:
        super().__init__(gm)
        self.recorded = recorded

    def call_module(self, target, args, kwargs):
        sub = self.fetch_attr(target)
        if type(sub) is nn.ModuleList:  # folded by _fold_module_lists: the items in a chain
            out = args[0]
            for item in sub:
                out = item(out)
            return out
        _, out, once = self.recorded.get(id(sub), ((), None, False))
        return out if once and out is not None else super().call_module(target, args, kwargs)


def _propagate(module: nn.Module, graph, recorded: dict[int, tuple]) -> None:
    """ShapeProp over the one-level graph: shapes for reshape and the learned-tensor patterns."""
    try:
        gm = torch.fx.GraphModule(module, graph)
        with torch.no_grad(), contextlib.redirect_stderr(io.StringIO()):  # ShapeProp prints its failures
            _Replay(gm, recorded).propagate(*recorded[id(module)][0])
    except Exception:  # noqa: BLE001 - shapes are a help; without them some ops report E0701
        pass


def _optional_children(root: nn.Module) -> dict[type, list[str]]:
    """Per class, the children that some instances have and others set to None (ResNet's
    downsample): such a child becomes `x -> child if has_child else x`."""
    present: dict[type, set[str]] = {}
    absent: dict[type, set[str]] = {}
    for m in root.modules():
        present.setdefault(type(m), set()).update(n for n, c in m._modules.items() if c is not None)
        absent.setdefault(type(m), set()).update(n for n, v in vars(m).items() if v is None and not n.startswith("_"))
        absent[type(m)].update(n for n, c in m._modules.items() if c is None)
    return {cls: sorted(present[cls] & absent[cls]) for cls in present if present[cls] & absent[cls]}

