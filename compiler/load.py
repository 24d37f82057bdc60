"""Files -> a :class:`Program`: parse a spec and the specs it imports.

Names of blocks, models and constants share one namespace across a file and
its imports; defining one twice, or shadowing a built-in op, is an error.
"""

from __future__ import annotations

import builtins
import keyword
import os
from dataclasses import dataclass, field

from modelc import ops
from modelc import syntax as S
from modelc.diagnostics import Diagnostic, Note, Span, SpecError, error
from modelc.parse import parse

__all__ = ["MAX_FILE_BYTES", "Program", "load_file", "load_text"]

MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass
class Program:
    path: str
    blocks: dict[str, S.BlockDef] = field(default_factory=dict)
    models: dict[str, S.BlockDef] = field(default_factory=dict)
    consts: dict[str, S.Const] = field(default_factory=dict)
    main_models: list[str] = field(default_factory=list)  # models of the main file, in order
    imported: set[str] = field(default_factory=set)  # real paths already loaded

    def definition(self, name: str) -> S.BlockDef | S.Const | None:
        return self.blocks.get(name) or self.models.get(name) or self.consts.get(name)


def load_file(path: str) -> Program:
    program = Program(path)
    _load(program, path, importer=None, stack=())
    return program


def load_text(text: str, path: str = "<string>") -> Program:
    # The same bound as for files: text given to the API may come from anywhere too.
    size = len(text) if len(text) > MAX_FILE_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise error("E0508", f"{path} is {size:,} bytes; specs are limited to {MAX_FILE_BYTES:,}", None)
    program = Program(path)
    _add_module(program, parse(text, path), main=True, stack=(path,))
    return program


def _class_name_ok(name: str) -> bool:
    return not (keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in dir(builtins)
                or name in ("torch", "nn", "rt", "self") or name.startswith("__"))  # fmt: skip


def _read(path: str, importer: Span | None) -> str:
    try:
        size = os.path.getsize(path)
        if size > MAX_FILE_BYTES:
            raise error("E0508", f"{path} is {size:,} bytes; specs are limited to "
                        f"{MAX_FILE_BYTES:,}", importer)  # fmt: skip
        with open(path, "rb") as f:
            data = f.read(MAX_FILE_BYTES + 1)  # bounded: a device such as /dev/zero has no size
        if len(data) > MAX_FILE_BYTES:
            raise error("E0508", f"{path} is larger than the limit of {MAX_FILE_BYTES:,} bytes", importer)
    except OSError as exc:
        raise error("E0104", f"cannot read {path}: {exc.strerror or exc}", importer) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise error("E0104", f"{path} is not UTF-8 text (byte {exc.start})", importer) from None


def _load(program: Program, path: str, importer: Span | None, stack: tuple[str, ...]) -> None:
    key = os.path.realpath(path)
    if key in stack:
        chain = " -> ".join(os.path.basename(p) for p in (*stack, key))
        raise error("E0105", f"import cycle: {chain}", importer)
    module = parse(_read(path, importer), path)
    _add_module(program, module, main=importer is None, stack=(*stack, key))


def _add_module(program: Program, module: S.Module, main: bool, stack: tuple[str, ...]) -> None:
    problems: list[Diagnostic] = []
    for item in module.items:
        try:
            _add_item(program, module, item, main, stack)
        except SpecError as exc:
            problems.extend(exc.diagnostics)
    if problems:
        raise SpecError(problems)


def _add_item(program: Program, module: S.Module, item, main: bool, stack) -> None:
    if isinstance(item, S.Import):
        target = os.path.join(os.path.dirname(module.path), item.path)
        if os.path.realpath(target) in program.imported:
            return
        program.imported.add(os.path.realpath(target))
        _load(program, target, item.span, stack)
        return
    name = item.name
    span = _name_span(item)
    previous = program.definition(name)
    if previous is not None:
        raise error("E0202", f"'{name}' is defined twice", span,
                    notes=(Note("first defined here", _name_span(previous)),))  # fmt: skip
    if name in ops.REGISTRY:
        raise error("E0202", f"'{name}' is the name of a built-in op", span,
                    "choose another name for the block")  # fmt: skip
    if isinstance(item, S.BlockDef) and item.kind == "model" and not _class_name_ok(name):
        raise error("E0206", f"'{name}' cannot name a model: the generated class would clash "
                    "with a Python keyword, builtin or an import", span, f"try '{name}Model'")  # fmt: skip
    if isinstance(item, S.Const):
        program.consts[name] = item
    elif item.kind == "model":
        program.models[name] = item
        if main:
            program.main_models.append(name)
    else:
        program.blocks[name] = item


def _name_span(item: S.BlockDef | S.Const) -> Span:
    return item.name_span if isinstance(item, S.BlockDef) else item.span
