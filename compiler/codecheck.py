"""The last gate before generated source leaves the compiler: its bytes, as Python reads them.

NOTE: [Checking bytes, not text] Python decides how to decode a file from its
first two lines (PEP 263): a `coding:` cookie there, put in by spec text, once
made a generated file decode as UTF-7, and a string parameter then decoded into
a statement that ran on import, while the `str` the emitter held looked
harmless. So :func:`check_generated` works on what a reader gets: the bytes
(pure ASCII), the encoding Python's own tokenizer detects in them (UTF-8,
declared on line 1), `compile()` of those bytes (which also catches what
`ast.parse` lets through, such as a repeated parameter name), and a whitelist
of the statements the emitter writes. Any other shape is a CompilerBug: it
means spec text reached code, or the emitter produced something it never
should, and in both cases the file must not be written.
"""

from __future__ import annotations

import ast
import io
import tokenize

from modelc.diagnostics import CompilerBug
from modelc.names import module_name_problem

__all__ = ["ENCODING_LINE", "check_generated"]

ENCODING_LINE = "# -*- coding: utf-8 -*-"

# Module-level names generated code may use; every other free name is a local
# variable or parameter of the function it appears in.
_IMPORTS = {("torch", None): "torch", ("torch", "nn"): "nn", ("modelc", "runtime"): "rt"}
_CLASS_CONSTANTS = frozenset({"INPUT_SHAPES", "OUTPUT_SHAPES", "NUM_PARAMETERS", "LOAD_RULES", "TRAINING_OUTPUTS"})
# The statements of __init__ that are not assignments.
_INIT_CALLS = frozenset({"super().__init__()", "self.register_load_state_dict_pre_hook(rt.CheckpointRules(self.LOAD_RULES))"})
_METHODS = frozenset({"__init__", "forward"})
_CALLABLE = frozenset({"super", "float", "getattr"})  # the builtins generated code calls (as checked below)
_FORBIDDEN = (ast.Lambda, ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp, ast.Await,
              ast.Yield, ast.YieldFrom, ast.NamedExpr, ast.Starred, ast.JoinedStr, ast.Global,
              ast.Nonlocal, ast.Delete)  # fmt: skip


def check_generated(source: str, filename: str = "<modelc>") -> bytes:
    """The bytes of `source` if they are exactly what modelc emits; CompilerBug otherwise."""
    try:
        data = source.encode("ascii")
    except UnicodeEncodeError as exc:
        raise CompilerBug(f"generated code holds a non-ASCII character at offset {exc.start}") from None
    encoding, first = tokenize.detect_encoding(io.BytesIO(data).readline)
    if encoding != "utf-8" or not first or first[0].decode("ascii").rstrip("\r\n") != ENCODING_LINE:
        raise CompilerBug(f"generated code does not declare UTF-8 on line 1 (Python reads it as {encoding})")
    try:
        compile(data, filename, "exec", dont_inherit=True)
        tree = ast.parse(data, filename)
    except (SyntaxError, ValueError) as exc:
        raise CompilerBug(f"generated code is not valid Python: {exc}") from None
    _Whitelist().module(tree)
    return data


class _Whitelist:
    """The statements modelc emits, and nothing else."""

    def __init__(self) -> None:
        self.globals: set[str] = set()

    def module(self, tree: ast.Module) -> None:
        classes = [n.name for n in tree.body if isinstance(n, ast.ClassDef)]
        self.globals = set(classes)
        for node in tree.body:
            if isinstance(node, ast.Import):
                self._import(node, [(a.name, None, a.asname) for a in node.names])
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                self._import(node, [(node.module, a.name, a.asname) for a in node.names])
            elif isinstance(node, ast.ClassDef):
                self._class(node)
            else:
                _refuse(node, "a module-level statement")

    def _import(self, node: ast.stmt, names) -> None:
        for module, name, asname in names:
            bound = _IMPORTS.get((module, name))
            if bound is None or (asname or name or module) != bound:
                _refuse(node, "an import")
            self.globals.add(bound)

    def _class(self, cls: ast.ClassDef) -> None:
        if [ast.unparse(b) for b in cls.bases] != ["nn.Module"] or cls.keywords or cls.decorator_list:
            _refuse(cls, "a class header")
        body = list(cls.body)
        if not (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
                and isinstance(body[0].value.value, str)):  # fmt: skip
            _refuse(cls, "a class without its docstring")
        for stmt in body[1:]:
            if isinstance(stmt, ast.Assign) and [ast.unparse(t) for t in stmt.targets] in [[c] for c in _CLASS_CONSTANTS]:
                _literal(stmt.value)
            elif isinstance(stmt, ast.FunctionDef) and stmt.name in _METHODS and not stmt.decorator_list:
                self._method(stmt)
            else:
                _refuse(stmt, "a class member")

    def _method(self, fn: ast.FunctionDef) -> None:
        args = fn.args
        if args.vararg or args.kwarg or args.kwonlyargs or args.posonlyargs or args.kw_defaults:
            _refuse(fn, "a method signature")
        names = [a.arg for a in args.args]
        if names[:1] != ["self"]:
            _refuse(fn, "a method signature")
        # NOTE: [Sharing a class] in generalize.py: constructor arguments are sizes (int) and
        # numbers (int, float) and flags of optional submodules (bool, default False, last).
        # A model's arguments take the spec's values as defaults (NOTE: [Model arguments]).
        defaults = dict(zip([a.arg for a in args.args[len(args.args) - len(args.defaults):]], args.defaults))
        if defaults and fn.name != "__init__":
            _refuse(fn, "a method signature")
        for a in args.args:
            if a.annotation is not None:
                _annotation(a.annotation, sizes=fn.name == "__init__", default=defaults.get(a.arg))
            elif a.arg in defaults:
                _refuse(fn, "a method signature")
        if fn.returns is not None:
            _annotation(fn.returns)
        local = set(names)
        for stmt in fn.body:
            local |= self._statement(stmt, local)

    def _statement(self, stmt: ast.stmt, local: set[str]) -> set[str]:
        """Check one statement of a method body; returns the names it binds."""
        if isinstance(stmt, ast.Pass):
            return set()
        if isinstance(stmt, ast.Expr):
            if _add_module(stmt.value):  # self.add_module("block1-0", ...): NOTE: [Module names]
                self._expr(stmt.value.args[1], local)
            elif ast.unparse(stmt) not in _INIT_CALLS:
                _refuse(stmt, "an expression statement")
            return set()
        if isinstance(stmt, ast.AugAssign):  # NOTE: [In place]: out += skip
            if not (isinstance(stmt.op, ast.Add) and isinstance(stmt.target, ast.Name)) or stmt.target.id not in local:
                _refuse(stmt, "an augmented assignment")
            self._expr(stmt.value, local)
            return set()
        if isinstance(stmt, ast.Return):
            self._expr(stmt.value, local)
            return set()
        if isinstance(stmt, ast.If) and ast.unparse(stmt.test) == "not self.training":
            # `if not self.training: return logits` (training-only outputs)
            if stmt.orelse or len(stmt.body) != 1 or not isinstance(stmt.body[0], ast.Return):
                _refuse(stmt, "a conditional")
            self._expr(stmt.body[0].value, local)
            return set()
        if isinstance(stmt, ast.If):  # `if downsample:` in __init__, `if self.downsample is not None:`
            if stmt.orelse or not (_flag_test(stmt.test, local)):
                _refuse(stmt, "a conditional")
            bound: set[str] = set()
            for inner in stmt.body:
                bound |= self._statement(inner, local | bound)
            return bound
        if not isinstance(stmt, ast.Assign) or len(stmt.targets) != 1:
            _refuse(stmt, "a statement")
        self._expr(stmt.value, local)
        target = stmt.targets[0]
        if isinstance(target, ast.Attribute):  # self.conv1 = nn.Conv2d(...)
            if _submodule_weight(target) and _submodule_weight(stmt.value):  # a tie (linear's tie=)
                return set()
            if not (isinstance(target.value, ast.Name) and target.value.id == "self") or _dunder(target.attr):
                _refuse(stmt, "an attribute assignment")
            return set()
        bound = _target_names(target)
        if bound is None:
            _refuse(stmt, "an assignment target")
        # A local may share a class's name (forward never refers to classes), never an import's.
        if bound & (set(_IMPORTS.values()) | {"self", "super", "float"}):
            _refuse(stmt, "an assignment to a reserved name")
        return bound

    def _expr(self, expr: ast.expr | None, local: set[str]) -> None:
        if expr is None:
            return
        called = {id(node.func) for node in ast.walk(expr) if isinstance(node, ast.Call)}
        repeats = {id(part) for node in ast.walk(expr) for part in _repeat_parts(node)}
        for node in ast.walk(expr):
            if id(node) in repeats:
                continue
            if isinstance(node, _FORBIDDEN):
                _refuse(node, "an expression")
            if isinstance(node, ast.Name) and not (node.id in local or node.id in self.globals or node.id in _CALLABLE):
                _refuse(node, f"a reference to '{node.id}'")
            if isinstance(node, ast.Attribute) and _dunder(node.attr):
                _refuse(node, "a dunder attribute")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                if node.func.id == "super" and (node.args or node.keywords):
                    _refuse(node, "a call of super")
                if node.func.id == "float" and not _float_literal(node):
                    _refuse(node, "a call of float")
                if node.func.id == "getattr" and not _get_submodule(node):
                    _refuse(node, "a call of getattr")
            if isinstance(node, ast.Name) and node.id in _CALLABLE and id(node) not in called:
                _refuse(node, f"a reference to '{node.id}'")


def _repeat_parts(node: ast.AST) -> list[ast.AST]:
    """The nodes of `*[<item> for _ in range(<count>)]` as an argument of `nn.Sequential` (NOTE:
    [Repeated blocks] in emit_share.py) other than `item` and `count`, which are checked as
    any expression; [] for any other node."""
    if not (isinstance(node, ast.Call) and ast.unparse(node.func) == "nn.Sequential"):
        return []
    out: list[ast.AST] = []
    for arg in node.args:
        if not (isinstance(arg, ast.Starred) and isinstance(arg.value, ast.ListComp)):
            continue
        comp = arg.value
        if len(comp.generators) != 1:
            continue
        gen = comp.generators[0]
        ok = (isinstance(gen.target, ast.Name) and gen.target.id == "_" and not gen.ifs and not gen.is_async
              and isinstance(gen.iter, ast.Call) and isinstance(gen.iter.func, ast.Name) and gen.iter.func.id == "range"
              and len(gen.iter.args) == 1 and not gen.iter.keywords)  # fmt: skip
        if ok and "_" not in {n.id for n in ast.walk(comp.elt) if isinstance(n, ast.Name)}:
            out += [arg, comp, gen, gen.target, gen.iter, gen.iter.func]
    return out


def _submodule_weight(node: ast.expr) -> bool:
    """`self.lm_head.weight`, `self.transformer.h[0].attn.weight`: the weight of a submodule,
    reached by attribute names and integer indices only (how emit writes a tied weight)."""
    if not (isinstance(node, ast.Attribute) and node.attr == "weight"):
        return False
    node, depth = node.value, 0
    while not (isinstance(node, ast.Name) and node.id == "self"):
        if isinstance(node, ast.Attribute) and not _dunder(node.attr):
            node = node.value
        elif isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant) and type(node.slice.value) is int:
            node = node.value
        elif _get_submodule(node):
            node = node.args[0]
        else:
            return False
        depth += 1
    return depth > 0


def _module_name(node: ast.expr) -> bool:
    """A string constant that names a module: no '.', no private `_` name (names.py)."""
    return (isinstance(node, ast.Constant) and type(node.value) is str and not node.value.startswith("_")
            and module_name_problem(node.value) is None)  # fmt: skip


def _add_module(node: ast.expr) -> bool:
    """`self.add_module("block1-0", <expr>)`: how emit registers a module named no attribute."""
    return (isinstance(node, ast.Call) and ast.unparse(node.func) == "self.add_module" and not node.keywords
            and len(node.args) == 2 and _module_name(node.args[0]))  # fmt: skip


def _get_submodule(node: ast.expr) -> bool:
    """`getattr(<module>, "block1-0")`: how emit reaches such a module."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and not node.keywords and len(node.args) == 2 and _module_name(node.args[1]))  # fmt: skip


def _target_names(target: ast.expr) -> set[str] | None:
    """The names a target binds: a name, or (nested) tuples of names (`y, (h, c) = ...`)."""
    if isinstance(target, ast.Name):
        return {target.id}
    if not isinstance(target, ast.Tuple):
        return None
    out: set[str] = set()
    for e in target.elts:
        inner = _target_names(e)
        if inner is None:
            return None
        out |= inner
    return out


def _float_literal(call: ast.Call) -> bool:
    """`float("inf")`, `float("-inf")`, `float("nan")`: how pyrepr writes non-finite numbers."""
    return (not call.keywords and len(call.args) == 1 and isinstance(call.args[0], ast.Constant)
            and call.args[0].value in ("inf", "-inf", "nan"))  # fmt: skip


def _annotation(node: ast.expr, sizes: bool = False, default: ast.expr | None = None) -> None:
    if not sizes and isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):  # eval | training outputs
        _annotation(node.left)
        _annotation(node.right)
        return
    text = ast.unparse(node)
    if sizes:  # a constructor argument: a size, a rate, a flag; a default of its type
        value = default.value if isinstance(default, ast.Constant) else None
        allowed = {"int": int, "float": (int, float), "bool": bool}.get(text)
        if allowed is None or (default is not None and (
                not isinstance(default, ast.Constant) or not isinstance(value, allowed)
                or (text == "bool") != isinstance(value, bool) or (text == "bool" and value is not False))):  # fmt: skip
            _refuse(node, "an annotation")
        return
    if text != "None" and not (text == "torch.Tensor" or text.startswith("tuple[")):
        _refuse(node, "an annotation")
    for inner in ast.walk(node):
        if isinstance(inner, ast.Name) and inner.id not in ("torch", "tuple", "None"):
            _refuse(node, "an annotation")


def _flag_test(test: ast.expr, local: set[str]) -> bool:
    """`downsample` (a constructor flag) or `self.downsample is not None`."""
    if isinstance(test, ast.Name):
        return test.id in local
    return (isinstance(test, ast.Compare) and len(test.ops) == 1 and isinstance(test.ops[0], ast.IsNot)
            and isinstance(test.left, ast.Attribute) and isinstance(test.left.value, ast.Name)
            and test.left.value.id == "self" and not _dunder(test.left.attr)
            and isinstance(test.comparators[0], ast.Constant) and test.comparators[0].value is None)  # fmt: skip


def _literal(node: ast.expr) -> None:
    try:
        ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        _refuse(node, "a class constant")


def _dunder(name: str) -> bool:
    return name.startswith("__") and name != "__init__"


def _refuse(node: ast.AST, what: str) -> None:
    line = getattr(node, "lineno", "?")
    raise CompilerBug(f"generated code has {what} modelc never emits (line {line}): "
                      f"{ast.unparse(node)[:120]!r}")  # fmt: skip
