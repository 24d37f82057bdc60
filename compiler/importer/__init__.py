"""`modelc import` and `modelc.from_module`: an existing PyTorch `nn.Module` as a `.model` spec.

    import modelc, torchvision
    text = modelc.from_module(torchvision.models.resnet50(), (torch.randn(1, 3, 64, 64),))

Each module is traced one level deep with torch.fx (its children are leaves), leaf layers map
to ops through a table, traced functions to spec expressions, and instances with one
structure become one parameterized block (docs/import.md). The spec keeps the module tree,
so the compiled module has the same `state_dict` keys. Importing this package does not
import torch; :func:`from_module` does.
"""

from __future__ import annotations

from typing import Any

from modelc.importer.errors import import_error

__all__ = ["from_module"]


def from_module(module: Any, example_inputs: Any, name: str | None = None, source: str | None = None) -> str:
    """The spec text of `module`, traced with `example_inputs` (a tensor or a tuple of them),
    as a model called `name` (default: the class name). `source` is said in the header comment."""
    from modelc.driver import require_torch

    require_torch("modelc import")
    import torch

    inputs = tuple(example_inputs) if isinstance(example_inputs, (tuple, list)) else (example_inputs,)
    if not all(isinstance(t, torch.Tensor) for t in inputs):
        raise import_error("E0706", "<root>", "example_inputs must be a tensor or a tuple of tensors")
    name = name or type(module).__name__
    if not name.isidentifier() or not name.isascii():
        raise import_error("E0706", "<root>", f"the model name {name!r} is not a name", "give --name Net")
    was_training = module.training
    module.eval()  # NOTE: the spec is checked and compared in eval mode (dropout off, BN running stats)
    try:
        return _import(module, inputs, name, source)
    finally:
        module.train(was_training)


def _import(module, inputs: tuple, name: str, source: str | None) -> str:
    from modelc.importer.fingerprint import assign, definition
    from modelc.importer.expr import literal
    from modelc.importer.walk import Walker
    from modelc.progress import progress

    total = sum(1 for _ in module.modules())
    bar = iter(progress(range(total), desc="import", total=total, unit="module"))
    try:
        walker = Walker(module, inputs, tick=lambda: next(bar, None))
    except Exception as exc:  # noqa: BLE001 - the user's module failed on the example input
        raise import_error("E0707", "<root>", f"{type(module).__name__} fails on the example input: "
                           f"{type(exc).__name__}: {_first_line(exc)}") from None  # fmt: skip
    root = walker.raw(module, "", "")
    for _ in bar:  # finish the bar (modules not reached: inside known blocks)
        pass
    if root.kind != "block" or root.fixed is not None or not walker.blocks or walker.blocks[-1] is not root:
        raise import_error("E0708", "<root>", f"the model itself is a {type(module).__name__} layer; "
                           "a spec model names its layers", "wrap it in a module")  # fmt: skip
    from modelc.ops import REGISTRY

    groups = assign(walker.blocks[:-1], taken={name, *REGISTRY})
    body = root.body([literal(v) for v in root.values])
    shapes = [_input_decl(n, t) for n, t in zip(root.inputs, inputs)]
    model = "\n".join([f"model {name} {{", *shapes, *body, "}"])
    header = f"# {name}, imported from {source or type(module).__qualname__} by modelc import."
    text = "\n\n".join([header + "\n" + definition(groups[0]) if groups else header,
                        *[definition(g) for g in groups[1:]], model]) + "\n"  # fmt: skip
    _check(text, name)
    return text


def _input_decl(name: str, tensor) -> str:
    from modelc.importer.convert import safe_name

    dims = ", ".join(["B"] + [str(d) for d in tensor.shape[1:]])
    dtype = str(tensor.dtype).replace("torch.", "")
    prefix = "" if dtype == "float32" else dtype
    return f"    input {safe_name(name)}: {prefix}[{dims}]"


def _check(text: str, name: str) -> None:
    """The imported spec must compile (E0709 names the first error, so a gap is not silent)."""
    from modelc.diagnostics import SpecError
    from modelc.driver import build_all
    from modelc.load import load_text

    try:
        build_all(load_text(text, f"{name}.model"))
    except SpecError as exc:
        first = exc.diagnostics[0]
        raise import_error("E0709", "<root>", f"the imported spec does not compile: {first.render().splitlines()[0]}",
                           "this is a gap in modelc import; please report it with the module") from None  # fmt: skip


def _first_line(exc: Exception) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""
