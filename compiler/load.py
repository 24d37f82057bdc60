"""Files -> a :class:`Program`: parse a spec and the specs it imports.

Names of blocks, models and constants share one namespace across a file and
its imports; defining one twice, or shadowing a built-in op, is an error.

Only regular files are read (a FIFO such as /dev/stdin would block, a device may
do anything when opened), and a file that is not a spec is never quoted in an
error (NOTE: [Quoting] below): `import "/etc/passwd"` must not print the
password file.
"""

from __future__ import annotations

import builtins
import functools
import keyword
import os
import re
import stat
from dataclasses import dataclass, field

from modelc import ops
from modelc import syntax as S
from modelc.diagnostics import Diagnostic, Note, Span, SpecError, error
from modelc.parse import NOT_SHOWN_HINT, NotASpec, normalize, parse, source_file

__all__ = ["MAX_FILE_BYTES", "Program", "binary_error", "builtin_name", "is_binary", "load_file", "load_parsed", "load_text"]

MAX_FILE_BYTES = 4 * 1024 * 1024


@dataclass
class Program:
    path: str
    blocks: dict[str, S.BlockDef] = field(default_factory=dict)
    models: dict[str, S.BlockDef] = field(default_factory=dict)
    consts: dict[str, S.Const] = field(default_factory=dict)
    defs: dict[str, S.Def] = field(default_factory=dict)  # `def bn = batchnorm(eps=1e-3)`
    main_models: list[str] = field(default_factory=list)  # models of the main file, in order
    imported: set[str] = field(default_factory=set)  # real paths already loaded
    span: Span | None = None  # the start of the main file, for errors about the whole file
    texts: list[tuple[str, str]] = field(default_factory=list)  # (path, text) of every file read, in order

    def definition(self, name: str) -> S.BlockDef | S.Const | S.Def | None:
        return self.blocks.get(name) or self.models.get(name) or self.consts.get(name) or self.defs.get(name)


def load_file(path: str) -> Program:
    program = Program(path)
    _load(program, path, importer=None, stack=())
    return program


def load_text(text: str, path: str = "<string>") -> Program:
    # The same bound as for files: text given to the API may come from anywhere too.
    size = len(text) if len(text) > MAX_FILE_BYTES else len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise error("E0508", f"{path} is {size:,} bytes; specs are limited to {MAX_FILE_BYTES:,}", None)
    return load_parsed(parse(text, path), text, path)


def load_parsed(module: S.Module, text: str, path: str) -> Program:
    """The program of a module parsed already from `text` (the language server keeps a
    buffer's AST for its outline even when its imports or names are wrong); imports are
    read relative to `path`."""
    program = Program(path)
    program.span = Span(source_file(text, path), 1, 1, 1, 1)
    program.texts.append((path, text))
    _add_module(program, module, main=True, stack=(path,))
    return program


def _class_name_ok(name: str) -> bool:
    return not (keyword.iskeyword(name) or keyword.issoftkeyword(name) or name in dir(builtins)
                or name in ("torch", "nn", "rt", "self") or name.startswith("__"))  # fmt: skip


def _load(program: Program, path: str, importer: Span | None, stack: tuple[str, ...]) -> None:
    key = _real_path(path, importer)
    if key in stack:
        chain = " -> ".join(os.path.basename(p) for p in (*stack, key))
        raise error("E0105", f"import cycle: {chain}", importer)
    text = _decode(path, _read(path, importer), importer)
    program.texts.append((key, text))
    shown_from = _shown_from(key, text)
    if importer is None:
        program.span = Span(source_file(text, path, shown_from), 1, 1, 1, 1)
    try:
        module = _parse_import(text, path, shown_from) if importer is not None else parse(text, path, shown_from)
    except NotASpec as exc:
        if importer is None:
            raise
        raise error("E0104", f"{path} is not a modelc spec (line {exc.span.line}, column "
                    f"{exc.span.col} does not parse; its text is not shown)", importer,
                    NOT_SHOWN_HINT) from None  # fmt: skip
    _add_module(program, module, main=importer is None, stack=(*stack, key))


@functools.lru_cache(maxsize=32)
def _parse_import(text: str, path: str, shown_from: int) -> S.Module:
    """An imported file's AST, cached by its text: the AST is immutable, and a long-lived
    process (the language server re-checks a document on every edit) then re-reads its
    imports but parses each only when it changed. Errors are not cached (raised again)."""
    return parse(text, path, shown_from)


def _real_path(path: str, importer: Span | None) -> str:
    if "\0" in path:  # os functions raise ValueError on it
        raise error("E0104", f"cannot read {path}: a file name cannot contain a NUL character", importer)
    return os.path.realpath(path)


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
        key = _real_path(target, item.span)
        if key in program.imported:
            return
        program.imported.add(key)
        _load(program, target, item.span, stack)
        return
    name = item.name
    span = _name_span(item)
    previous = program.definition(name)
    if previous is not None:
        raise error("E0202", f"'{name}' is defined twice", span,
                    notes=(Note("first defined here", _name_span(previous)),))  # fmt: skip
    clash = builtin_name(name, functions=isinstance(item, S.Def))
    if clash:
        what = "def" if isinstance(item, S.Def) else "constant" if isinstance(item, S.Const) else item.kind
        raise error("E0202", f"'{name}' is the name of a {clash}", span, f"choose another name for the {what}")
    if isinstance(item, S.BlockDef) and item.kind == "model" and not _class_name_ok(name):
        raise error("E0206", f"'{name}' cannot name a model: the generated class would clash "
                    "with a Python keyword, builtin or an import", span, f"try '{name}Model'")  # fmt: skip
    if isinstance(item, S.Const):
        program.consts[name] = item
    elif isinstance(item, S.Def):
        program.defs[name] = item
    elif item.kind == "model":
        program.models[name] = item
        if main:
            program.main_models.append(name)
    else:
        program.blocks[name] = item


def _name_span(item: S.BlockDef | S.Const | S.Def) -> Span:
    return item.span if isinstance(item, S.Const) else item.name_span


def builtin_name(name: str, functions: bool = True) -> str | None:
    """What a name of the language already means ("built-in op"), or None: no block, model or
    constant may take an op's name, and no def (called as they are) a compile-time function's."""
    from modelc.builtins import BUILTINS

    if name in ops.REGISTRY:
        return "built-in op"
    return "built-in function" if functions and name in BUILTINS else None


# ---- reading ----------------------------------------------------------------------------------
_KINDS = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a pipe (FIFO)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))  # fmt: skip
# O_NONBLOCK: opening a FIFO that replaced the file since the stat cannot block.
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))  # fmt: skip


def _read(path: str, importer: Span | None) -> bytes:
    """The bytes of a regular file, at most MAX_FILE_BYTES. Anything else (a directory, a
    FIFO such as /dev/stdin on a pipe, a device, a socket) is refused without being opened;
    the open descriptor is checked again, in case the file changed in between."""
    try:
        _regular(path, os.stat(path).st_mode, importer)
        fd = os.open(path, _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            _regular(path, st.st_mode, importer)
            if st.st_size > MAX_FILE_BYTES:
                raise error("E0508", f"{path} is {st.st_size:,} bytes; specs are limited to "
                            f"{MAX_FILE_BYTES:,}", importer)  # fmt: skip
            data = _read_fd(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise error("E0104", f"cannot read {path}: {exc.strerror or exc}", importer) from None
    if len(data) > MAX_FILE_BYTES:  # files in /proc have no size
        raise error("E0508", f"{path} is larger than the limit of {MAX_FILE_BYTES:,} bytes", importer)
    return data


def _regular(path: str, mode: int, importer: Span | None) -> None:
    if stat.S_ISREG(mode):
        return
    kind = next((name for test, name in _KINDS if test(mode)), "a special file")
    raise error("E0104", f"cannot read {path}: it is {kind}, not a regular file", importer,
                "modelc reads specs and imports from regular files only")  # fmt: skip


def _read_fd(fd: int) -> bytes:
    chunks, size = [], 0
    while size <= MAX_FILE_BYTES:
        chunk = os.read(fd, min(1 << 20, MAX_FILE_BYTES + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks)


def is_binary(data: bytes) -> bool:
    """Whether `data` is binary rather than text in some encoding: a NUL byte, or control
    bytes in what is not UTF-8 (a SentencePiece tokenizer.model, /proc/self/environ)."""
    if b"\0" in data:
        return True
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return _CONTROL_BYTES.search(data) is not None
    return False


def binary_error(path: str, importer: Span | None) -> SpecError:
    """E0106 in one line, at line 1, column 1 of the file (or at the import naming it)."""
    if importer is not None:
        return error("E0106", f"{path} is a binary file, not a modelc spec", importer)
    return error("E0106", "binary file, not a modelc spec", _hidden_span(path, 1, 1))


def _decode(path: str, data: bytes, importer: Span | None) -> str:
    """UTF-8 text, or an error that does not quote the file: binary data (E0106, is_binary)
    or text in another encoding (with the position of its first non-UTF-8 byte)."""
    if is_binary(data):
        raise binary_error(path, importer)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        before = normalize(data[: exc.start].decode("utf-8", "replace"))
        line, col = before.count("\n") + 1, len(before) - before.rfind("\n")
        byte = f"byte 0x{data[exc.start]:02x}"
        hint = "modelc reads specs as UTF-8: save the file in that encoding"
        if importer is not None:
            raise error("E0104", f"{path} is not UTF-8 text ({byte} at line {line}, column {col})",
                        importer, hint) from None  # fmt: skip
        raise error("E0104", f"not UTF-8 text ({byte})", _hidden_span(path, line, col), hint) from None


_CONTROL_BYTES = re.compile(rb"[\x01-\x08\x0e-\x1f\x7f]")


def _hidden_span(path: str, line: int, col: int) -> Span:
    """A position in a file whose text is not shown."""
    return Span(source_file("", path, shown_from=line + 1), line, col, line, col + 1)


# NOTE: [Quoting] An error shows a file's text from its first line if the file's name (after
# following links) ends in .model, and otherwise from its first line that starts a model, a
# block or an import: before that, the file may be anything. Binary files are never shown.
_SPEC_LINE = re.compile(r'^[ \t]*(?:(?:model|block)[ \t]+[A-Za-z_]\w*[ \t]*(?:[({]|$)|import[ \t]+")',
                        re.MULTILINE)  # fmt: skip


def _shown_from(real_path: str, text: str) -> int:
    if real_path.endswith(".model"):
        return 1
    text = normalize(text)
    m = _SPEC_LINE.search(text)
    return text.count("\n", 0, m.start()) + 1 if m else text.count("\n") + 2
