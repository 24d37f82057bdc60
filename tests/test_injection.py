"""Nothing in a spec can inject code into generated output.

Every hostile spec below either fails with a SpecError, or compiles to a module
whose AST contains only the statements modelc emits: imports of torch and
modelc.runtime, nn.Module classes with literal class attributes, an __init__
that assigns constructor calls to `self.<name>`, and a straight-line forward.
"""

from __future__ import annotations

import ast
import io
import tokenize

import pytest

import modelc

ALLOWED_IMPORTS = {"torch", "torch.nn", "modelc.runtime"}
FORBIDDEN_NAMES = {"eval", "exec", "__import__", "open", "getattr", "setattr", "compile", "globals",
                   "locals", "vars", "os", "sys", "subprocess", "input", "print", "breakpoint"}  # fmt: skip
CALL_ROOTS = {"torch", "nn", "rt", "self", "super"}


def check_generated(source: str) -> None:
    """Fail unless `source` has exactly the shape of modelc's output."""
    tree = ast.parse(source)
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
    if isinstance(stmt, ast.Expr):  # super().__init__()
        assert ast.unparse(stmt) == "super().__init__()", ast.unparse(stmt)
        return
    assert isinstance(stmt, (ast.Assign, ast.Return)), ast.unparse(stmt)
    for node in ast.walk(stmt):
        if isinstance(node, ast.Name):
            assert node.id not in FORBIDDEN_NAMES, ast.unparse(stmt)
        if isinstance(node, ast.Attribute):
            assert not node.attr.startswith("__") or node.attr == "__init__", ast.unparse(stmt)
        if isinstance(node, ast.Call):
            root = node.func
            while isinstance(root, (ast.Attribute, ast.Subscript)):
                root = root.value
            ok = isinstance(root, ast.Name) and (root.id in CALL_ROOTS or root.id in classes)
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
}

HOSTILE_REJECTED = {
    "call syntax in a name": ("model M { input x: [B, 3]  output __import__('os').system('x') }", None),
    "statement separator": ("model M { input x: [B, 3]; import os\n output x }", "E0102"),
    "unicode look-alike": ("model M { input x: [B, 3]  output x -> c\u043env(3) }", "E0102"),
    "dunder label": ("model M { input x: [B, 3]  output x -> __class__: relu }", "E0206"),
    "nn.Module API label": ("model M { input x: [B, 3]  output x -> forward: relu }", "E0206"),
    "keyword label": ("model M { input x: [B, 3]  output x -> lambda: relu }", "E0206"),
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
