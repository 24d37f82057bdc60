"""Nothing in a spec can inject code into generated output.

Every hostile spec below either fails with a SpecError, or compiles to a module
whose AST contains only the statements modelc emits: imports of torch and
modelc.runtime, nn.Module classes with literal class attributes, an __init__
that assigns constructor calls to `self.<name>` (or registers them with
`self.add_module("<module name>", ...)`), and a straight-line forward.
"""

from __future__ import annotations

import ast
import io
import re
import tokenize
from pathlib import Path

import pytest
import sentinel

import modelc
from modelc import CompilerBug
from modelc.codecheck import check_generated as product_check

SPECS = Path(__file__).resolve().parent.parent / "specs"
ALLOWED_IMPORTS = {"torch", "torch.nn", "modelc.runtime"}
FORBIDDEN_NAMES = {"eval", "exec", "__import__", "open", "getattr", "setattr", "compile", "globals",
                   "locals", "vars", "os", "sys", "subprocess", "input", "print", "breakpoint"}  # fmt: skip
CALL_ROOTS = {"torch", "nn", "rt", "self", "super"}
MODULE_NAME = re.compile(r"[A-Za-z0-9-][A-Za-z0-9_-]*")  # no '.', no private `_` name


def _named(node: ast.expr) -> bool:
    """A string constant that names a module (what a quoted label may be)."""
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and bool(MODULE_NAME.fullmatch(node.value))


def _submodule_by_name(node: ast.expr) -> bool:
    """`getattr(<module>, "block1-0")`: a submodule whose name is no Python attribute."""
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "getattr"
            and len(node.args) == 2 and not node.keywords and _named(node.args[1]))  # fmt: skip


def _registration(stmt: ast.stmt) -> bool:
    """`self.add_module("block1-0", nn.Linear(8, 8))`."""
    call = stmt.value if isinstance(stmt, ast.Expr) else None
    return (isinstance(call, ast.Call) and ast.unparse(call.func) == "self.add_module" and len(call.args) == 2
            and not call.keywords and _named(call.args[0]))  # fmt: skip


def check_generated(source: str | bytes) -> None:
    """Fail unless `source` has exactly the shape of modelc's output, read as Python reads the
    file: from its bytes, in the encoding its first two lines declare (PEP 263)."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    assert encoding == "utf-8", f"Python would read this file as {encoding}"
    tree = ast.parse(data.decode(encoding))
    classes = {n.name for n in tree.body if isinstance(n, ast.ClassDef)}
    for node in tree.body:
        if isinstance(node, ast.Import):
            assert [a.name for a in node.names] == ["torch"]
        elif isinstance(node, ast.ImportFrom):
            assert f"{node.module}.{node.names[0].name}" in ALLOWED_IMPORTS, ast.dump(node)
        else:
            assert isinstance(node, ast.ClassDef), ast.dump(node)
            _check_class(node, classes)


def _check_class(cls: ast.ClassDef, classes: set[str]) -> None:
    assert [ast.unparse(b) for b in cls.bases] == ["nn.Module"]
    body = list(cls.body)
    doc = body.pop(0)
    assert isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant)
    for stmt in body:
        if isinstance(stmt, ast.Assign):  # INPUT_SHAPES = {...}: literals only
            assert [t.id for t in stmt.targets] in (["INPUT_SHAPES"], ["OUTPUT_SHAPES"], ["NUM_PARAMETERS"])
            ast.literal_eval(stmt.value)
            continue
        assert isinstance(stmt, ast.FunctionDef) and stmt.name in ("__init__", "forward"), ast.dump(stmt)
        assert not stmt.decorator_list
        for inner in stmt.body:
            _check_statement(inner, classes)


def _check_statement(stmt: ast.stmt, classes: set[str]) -> None:
    if isinstance(stmt, ast.Pass):
        return
    if isinstance(stmt, ast.Expr) and not _registration(stmt):  # super().__init__()
        assert ast.unparse(stmt) == "super().__init__()", ast.unparse(stmt)
        return
    assert isinstance(stmt, (ast.Assign, ast.Return, ast.Expr)), ast.unparse(stmt)
    by_name = {id(n.func) for n in ast.walk(stmt) if _submodule_by_name(n)}
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES or id(node) in by_name, ast.unparse(stmt)
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__") or node.attr == "__init__", ast.unparse(stmt)
        if isinstance(node, ast.Call):
            root = node.func
            while isinstance(root, (ast.Attribute, ast.Subscript)) or _submodule_by_name(root):
                root = root.args[0] if isinstance(root, ast.Call) else root.value
            ok = isinstance(root, ast.Name) and (root.id in CALL_ROOTS or root.id in classes)
            ok = ok or (_submodule_by_name(node) and ast.unparse(node.args[0]).startswith("self"))
            ok = ok or (isinstance(root, ast.Call) and ast.unparse(root) == "super()")
            assert ok, f"unexpected call {ast.unparse(node)}"
        if isinstance(node, (ast.Lambda, ast.ListComp, ast.GeneratorExp, ast.DictComp, ast.Await)):
            raise AssertionError(f"unexpected construct in {ast.unparse(stmt)}")


HOSTILE_OK = {
    "string with triple quotes and newline": '''
        block B(name: str = "x\\"\\"\\"; import os; os.system('rm -rf /') #\\n") {
            input x
            output x -> relu
        }
        model M(s: str = "\\"\\"\\"\\n import os\\n\\"\\"\\"") {
            input x: [B, 3]
            y = x -> B(s)
            output y -> dropout(0.1)
        }''',
    "jinja delimiters in strings": '''
        model M(s: str = "{{ 7 * 7 }} {% raw %} {# c #}") {
            input x: [B, 3]
            output x -> relu
        }''',
    "backslashes": '''
        model M(s: str = "\\\\\\\\ \\\\u0041 \\\\n") {
            input x: [B, 3]
            output x -> relu
        }''',
    "binding names that are Python keywords or builtins": '''
        model M {
            input x: [B, 3]
            exec = x -> relu
            print = exec -> relu
            self = print -> linear(4)
            torch = self -> relu
            output torch
        }''',
    "block named like a module alias": '''
        block nn(c: int) { input x  output x -> linear(c) }
        block rt(c: int) { input x  output x -> linear(c) }
        model M { input x: [B, 3]  output x -> nn(4) -> rt(5) }''',
    "huge float parameter used only in a docstring": '''
        block B(f: float = 1e308) { input x  output x -> relu }
        model M { input x: [B, 3]  output x -> B() }''',
    "labels that shadow builtins": '''
        model M { input x: [B, 3]  output x -> exec: linear(3) -> print: relu -> open: linear(2) }''',
    "labels that are no Python names": '''
        model M(tag: str = "os-system") {
            input x: [B, 3]
            y = x -> "a-b": linear(3) -> lambda: relu -> "import": linear(3) -> "{tag}": relu
            output y -> for i in 0..2 { "os-{i}": linear(3) } -> seq: ("x-__import__": relu)
        }''',
}

HOSTILE_REJECTED = {
    "call syntax in a name": ("model M { input x: [B, 3]  output __import__('os').system('x') }", None),
    "statement separator": ("model M { input x: [B, 3]; import os\n output x }", "E0102"),
    "unicode look-alike": ("model M { input x: [B, 3]  output x -> c\u043env(3) }", "E0102"),
    "dunder label": ("model M { input x: [B, 3]  output x -> __class__: relu }", "E0206"),
    "nn.Module API label": ("model M { input x: [B, 3]  output x -> forward: relu }", "E0206"),
    "quoted label with code": ('model M { input x: [B, 3]  output x -> "a\\"); import os; (\\"": relu }', "E0207"),
    "dotted label": ('model M { input x: [B, 3]  output x -> "a.b": relu }', "E0207"),
    "dunder quoted label": ('model M { input x: [B, 3]  output x -> "__class__": relu }', "E0206"),
    "label field with code": ('model M { input x: [B, 3]  output x -> "x{__import__(0)}": relu }', "E0207"),
    "label field naming a dunder": ('model M { input x: [B, 3]  output x -> "x{__class__}": relu }', "E0201"),
    "keyword model name": ("model class { input x: [B, 3]  output x }", "E0206"),
    "model named torch": ("model torch { input x: [B, 3]  output x }", "E0206"),
    "nan attribute": ("model M { input x: [B, 3]  output x -> dropout(0.0 * 1e999) }", None),
    "inf attribute": ("model M { input x: [B, 3]  output x -> leaky_relu(1e999) }", "E0508"),
    "inf from arithmetic": ("model M { input x: [B, 3]  output x -> leaky_relu(1e308 * 10) }", "E0507"),
    "inf parameter default": ("block B(f: float = 1e999) { input x  output x }\n"
                              "model M { input x: [B, 3]  output x -> B() }", "E0508"),
    "huge integer literal": ("model M { input x: [B, 3]  output x -> linear(99999999999999999999999) }", "E0508"),
    "string choice with code": ('model M { input x: [B, 3]  output x -> gelu(approximate="tanh\\"); import os") }', "E0404"),
    "string where a number goes": ('model M { input x: [B, 3]  output x -> linear("3); import os; (") }', "E0402"),
    "escape that JSON does not allow": ('model M(s: str = "\\x41") { input x: [B, 3]  output x }', "E0103"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_OK))
def test_hostile_spec_compiles_to_expected_statements_only(name):
    source = modelc.compile_source(HOSTILE_OK[name], "hostile.model")
    check_generated(source)
    assert "7 * 7" not in source or "49" not in source  # Jinja never evaluates spec text
    # Spec text survives only inside comments and string literals, never as code tokens.
    names = {t.string for t in tokenize.generate_tokens(io.StringIO(source).readline) if t.type == tokenize.NAME}
    assert not names & {"os", "system", "__import__"}


@pytest.mark.parametrize("name", sorted(HOSTILE_REJECTED))
def test_hostile_spec_is_rejected_with_a_spec_error(name):
    text, code = HOSTILE_REJECTED[name]
    with pytest.raises(modelc.SpecError) as info:
        modelc.compile_source(text, "hostile.model")
    if code:
        assert info.value.diagnostics[0].code == code, info.value.render()


def test_hostile_sources_really_run():
    """The generated code of the hostile-but-valid specs imports and runs."""
    torch = pytest.importorskip("torch")
    cls = modelc.load_source(HOSTILE_OK["binding names that are Python keywords or builtins"], "h.model")
    assert cls()(torch.randn(2, 3)).shape == (2, 4)


def test_checker_rejects_injected_code():
    """The AST checker itself catches what an injection would look like."""
    good = modelc.compile_source(HOSTILE_OK["labels that shadow builtins"], "h.model")
    check_generated(good)
    bad = good.replace("return out", "__import__('os').system('true')\n        return out")
    with pytest.raises(AssertionError):
        check_generated(bad)
    bad = good.replace("import torch\n", "import torch\nimport os\n")
    with pytest.raises(AssertionError):
        check_generated(bad)


# ---- the file's bytes, as Python reads them ------------------------------------------------------
UTF7 = """
model M(a: str = "coding:utf-7", b: str = "+AAo-open(+ACI-PWNED+ACI-,+ACI-w+ACI-).write(+ACI-owned+ACI-)+AAo-+ACM-") {
    input x: [B, 3]
    output x -> relu
}"""

# The text of a spec string literal (escapes as the spec writes them).
COOKIES = ["coding:utf-7", "coding=utf_7", "-*- coding: latin-1 -*-", "vim: set fileencoding=utf-16 :",
           r"coding:utf-7\n", r"\ncoding:utf-7", r"\r# coding:utf-7", r"\u2028coding:utf-7"]  # fmt: skip


@pytest.mark.parametrize("cookie", COOKIES)
def test_spec_text_never_sets_the_encoding(cookie):
    """A string parameter that is an encoding cookie once decoded the file as UTF-7 (fault 1)."""
    source = modelc.compile_source(UTF7.replace("coding:utf-7", cookie), f"{cookie[:12]}.model")
    data = source.encode("ascii")  # generated files are pure ASCII
    lines = data.split(b"\n")
    assert lines[0] == b"# -*- coding: utf-8 -*-"
    assert lines[1] == b"# Generated by modelc. Do not edit: edit the spec and recompile."
    assert tokenize.detect_encoding(io.BytesIO(data).readline)[0] == "utf-8"
    check_generated(data)


def test_utf7_payload_does_not_run_on_import(tmp_path):
    """The reviewer's exploit: compile, then import the file in another process under the
    sentinel (any file opened, module imported or process run at import fails)."""
    source = modelc.compile_source(UTF7, "u7.model")
    path = tmp_path / "gen_u7.py"
    path.write_bytes(source.encode("ascii"))
    with sentinel.Sentinel() as s:
        assert s.check(path) == []
    assert not (tmp_path / "PWNED").exists()


def test_sentinel_catches_code_on_import():
    """The oracle itself: the exploit's old output (cookie on line 2) is caught and blocked."""
    old = ('# Generated by modelc from u7.model.\n# Model: M(a="coding:utf-7",\n'
           '#   b="+AAo-open(+ACI-PWNED+ACI-,+ACI-w+ACI-).write(+ACI-owned+ACI-)+AAo-+ACM-")\n'
           "import torch\n")
    found = sentinel.check_import(old)
    assert found and found[0][0] == "open", found
    assert [e[0] for e in sentinel.check_import("import os\n")][:1] == ["import"]
    assert sentinel.check_import(modelc.compile_file(str(SPECS / "resnet18.model"))) == []


@pytest.mark.parametrize("name", sorted(HOSTILE_OK))
def test_hostile_sources_do_nothing_on_import(name):
    assert sentinel.check_import(modelc.compile_source(HOSTILE_OK[name], "hostile.model")) == []


def test_product_check_refuses_what_modelc_never_emits():
    """modelc's own gate (compiler/codecheck.py) runs on every emitted file: the bytes, the
    encoding Python detects, compile(), and a whitelist of statements."""
    good = modelc.compile_source(HOSTILE_OK["labels that shadow builtins"], "h.model")
    product_check(good)
    bad = [
        good.replace("# -*- coding: utf-8 -*-", "# -*- coding: utf-7 -*-"),
        good.replace("# -*- coding: utf-8 -*-\n", ""),
        good.replace("return out", "open('x', 'w')\n        return out"),
        good.replace("return out", "x = __import__('os')\n        return out"),
        good.replace("import torch\n", "import torch\nimport os\n"),
        good.replace("from torch import nn", "from torch import nn as torch_nn"),
        good.replace("class M(nn.Module):", "@staticmethod\nclass M(nn.Module):"),
        good.replace("def forward(self, x", "def forward(self, x, x"),
        good.replace("return out", "return [y for y in out]"),
        good.replace("super().__init__()", "super().__init__()\n        print(1)"),
        good + "print('import time')\n",
        good.replace("Generated", "Gen\u00e9rated"),
    ]
    for text in bad:
        assert text != good
        with pytest.raises(CompilerBug):
            product_check(text)


def test_product_check_takes_only_module_names_by_string():
    """`self.add_module("a-b", ...)` and `getattr(self, "a-b")` pass the gate only with a literal
    module name: no dunder, no private `_` name, no '.', no computed name, getattr only called."""
    good = modelc.compile_source(HOSTILE_OK["labels that are no Python names"], "h.model")
    product_check(good)
    assert 'self.add_module("a-b", nn.Linear(3, 3))' in good and 'getattr(self, "a-b")(x)' in good
    bad = [
        good.replace('self.add_module("a-b",', 'self.add_module("__class__",'),
        good.replace('self.add_module("a-b",', 'self.add_module("_modules",'),
        good.replace('self.add_module("a-b",', 'self.add_module("a.b",'),
        good.replace('self.add_module("a-b",', 'self.register_module("a-b",'),
        good.replace('self.add_module("a-b",', 'self.add_module(str(1),'),
        good.replace('getattr(self, "a-b")(x)', 'getattr(self, "__dict__")(x)'),
        good.replace('getattr(self, "a-b")(x)', 'getattr(self, "a b")(x)'),
        good.replace('getattr(self, "a-b")(x)', "getattr(self, x)(x)"),
        good.replace('getattr(self, "a-b")(x)', 'getattr(self, "a-b", x)(x)'),
        good.replace("return out", "g = getattr\n        return out"),
    ]
    for text in bad:
        assert text != good
        with pytest.raises(CompilerBug):
            product_check(text)
