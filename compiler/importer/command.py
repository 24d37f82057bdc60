"""`modelc import MODULE -o net.model`: finds the module, builds it, writes the spec.

MODULE is `torchvision:NAME` (built with `weights=None`), `package.module:Class` or
`path/to/file.py:Class`; `--arg K=V` (repeatable) are constructor keywords, read as Python
literals (`num_classes=10`, `dims=[64, 128]`, `name=tiny`: a string when not a literal).
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import os
import sys
from typing import Any

from modelc.importer.errors import import_error

__all__ = ["run"]

TORCHVISION_INPUT = (1, 3, 224, 224)


def run(args) -> int:
    from modelc.driver import require_torch

    require_torch("modelc import")
    import torch

    from modelc.importer import from_module

    kwargs = dict(_arg(text) for text in args.arg)
    module = _build(args.module, kwargs)
    shapes = [_shape(text) for text in args.input]
    if not shapes and args.module.startswith("torchvision:"):
        shapes = [("x", TORCHVISION_INPUT)]
    if not shapes:
        raise import_error("E0706", args.module, "no example input", "give its shape: --input x=1,3,32,32")
    generator = torch.Generator().manual_seed(0)
    inputs = tuple(torch.randn(shape, generator=generator) for _, shape in shapes)
    text = from_module(module, inputs, name=args.name, source=args.module)
    if args.output:
        from modelc.fileio import write_file

        write_file(args.output, text, [])
        print(f"modelc: wrote {args.output} ({len(text.splitlines())} lines)", file=sys.stderr)
    else:
        sys.stdout.write(text)
    return 0


def _build(target: str, kwargs: dict[str, Any]):
    where, sep, name = target.rpartition(":")
    if not sep or not where or not name:
        raise import_error("E0702", target, "expected torchvision:NAME, package.module:Class or file.py:Class")
    if where == "torchvision":
        import torchvision

        try:
            factory = torchvision.models.get_model_builder(name)
        except ValueError:
            raise import_error("E0702", target, f"torchvision has no model '{name}'",
                               "see torchvision.models.list_models()") from None  # fmt: skip
        kwargs = {"weights": None, **kwargs}
    else:
        factory = getattr(_load(where, target), name, None)
        if factory is None:
            raise import_error("E0702", target, f"{where} has no attribute '{name}'")
    try:
        return factory(**kwargs)
    except Exception as exc:  # noqa: BLE001 - the user's constructor
        raise import_error("E0707", target, f"cannot build it: {type(exc).__name__}: {exc}") from None


def _load(where: str, target: str):
    if where.endswith(".py"):
        if not os.path.isfile(where):
            raise import_error("E0702", target, f"cannot read {where}: no such file")
        name = f"modelc_import_{abs(hash(os.path.abspath(where)))}"
        spec = importlib.util.spec_from_file_location(name, where)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look the module up by name
        try:
            spec.loader.exec_module(module)
        except Exception as exc:  # noqa: BLE001 - the user's file
            raise import_error("E0707", target, f"cannot run {where}: {type(exc).__name__}: {exc}") from None
        return module
    try:
        return importlib.import_module(where)
    except ImportError as exc:
        raise import_error("E0702", target, f"cannot import {where}: {exc}") from None


def _arg(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip().isidentifier():
        raise import_error("E0706", f"--arg {text}", "expected K=V, e.g. --arg num_classes=10")
    try:
        return key.strip(), ast.literal_eval(value.strip())
    except (ValueError, SyntaxError):
        return key.strip(), value.strip()


def _shape(text: str) -> tuple[str, tuple[int, ...]]:
    name, sep, dims = text.partition("=")
    try:
        shape = tuple(int(d) for d in dims.split(","))
    except ValueError:
        shape = ()
    if not sep or not name.strip() or not shape or min(shape) < 1:
        raise import_error("E0706", f"--input {text}", "expected NAME=D1,D2,... with positive sizes, "
                           "e.g. --input x=1,3,224,224")  # fmt: skip
    return name.strip(), shape
