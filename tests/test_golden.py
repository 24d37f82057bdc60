"""Golden files: tests/golden/<spec>.py is exactly what
`modelc compile specs/<spec>.model` prints. A change in the emitted code fails here
with a unified diff; when the change is intended, regenerate the goldens and review
them in the commit:

    MODELC_UPDATE_GOLDEN=1 .venv/bin/python -m pytest tests/test_golden.py

The goldens are also checked for hygiene: `ruff format` and `ruff check` clean, the
same bytes under any PYTHONHASHSEED, and importing nothing but torch and modelc.runtime.
"""

from __future__ import annotations

import ast
import difflib
import os
import subprocess
import sys

import modelc
import pytest
from conftest import GOLDEN, ROOT, spec_names, spec_path
from modelc.cli import main as cli

UPDATE = os.environ.get("MODELC_UPDATE_GOLDEN") == "1"
RUFF = [sys.executable, "-m", "ruff"]
NAMES = spec_names()


def _golden(name: str):
    return GOLDEN / f"{name}.py"


@pytest.mark.parametrize("name", NAMES)
def test_matches_golden(name):
    source = modelc.compile_file(spec_path(name))
    path = _golden(name)
    if UPDATE:
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(source.encode("utf-8"))
        return
    if not path.exists():
        hint = "create it with MODELC_UPDATE_GOLDEN=1"
        pytest.fail(f"no golden file {path.relative_to(ROOT)}; {hint}", pytrace=False)
    expected = path.read_bytes().decode("utf-8")
    if source != expected:
        diff = difflib.unified_diff(
            expected.splitlines(True),
            source.splitlines(True),
            f"tests/golden/{name}.py",
            f"modelc compile specs/{name}.model",
        )
        message = (
            "the generated code differs from the golden file; if that is intended, "
        )
        message += "regenerate with MODELC_UPDATE_GOLDEN=1\n"
        pytest.fail(message + "".join(diff), pytrace=False)


@pytest.mark.parametrize("name", NAMES)
def test_cli_prints_the_same_code(name, capsys):
    assert cli(["compile", spec_path(name)]) == 0
    assert capsys.readouterr().out == modelc.compile_file(spec_path(name))


def test_no_stale_goldens():
    # (A spec without a golden fails test_matches_golden.)
    assert sorted({p.stem for p in GOLDEN.glob("*.py")} - set(NAMES)) == []


def _ruff(*args: str) -> subprocess.CompletedProcess:
    # Files are named explicitly: pyproject's extend-exclude keeps tests/golden out of
    # `ruff check .`; ruff ignores it for explicit paths (unless --force-exclude).
    files = [str(p) for p in sorted(GOLDEN.glob("*.py"))]
    assert files
    command = [*RUFF, *args, "--no-cache", *files]
    return subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, check=False
    )


def test_goldens_are_ruff_formatted():
    result = _ruff("format", "--check", "--diff")
    assert result.returncode == 0, result.stdout + result.stderr


def test_goldens_pass_ruff_check():
    result = _ruff("check", "--select", "E,F,W")
    assert result.returncode == 0, result.stdout + result.stderr


def test_output_does_not_depend_on_hash_seed():
    script = "import sys, modelc\nfor p in sys.argv[1:]: print(modelc.compile_file(p))"
    paths = [spec_path(n) for n in NAMES]
    runs = [  # the two seeds at once: each process is single-threaded
        subprocess.Popen([sys.executable, "-c", script, *paths], env={**os.environ, "PYTHONHASHSEED": seed},
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for seed in ("1", "2")
    ]  # fmt: skip
    outputs = []
    for run in runs:
        out, err = run.communicate()
        assert run.returncode == 0, err.decode("utf-8", "replace")
        outputs.append(out)
    assert outputs[0] == outputs[1]
    assert outputs[0].decode("utf-8") == "".join(
        modelc.compile_file(p) + "\n" for p in paths
    )


# ---- imports -------------------------------------------------------------------------
# A sequence mixing labelled and numbered steps: its code needs modelc.runtime.
_NAMED_SEQUENCE = """
model Tiny {
    input x: [B, 8]
    output x -> head: (fc: linear(4) -> relu)
}
"""


def _imports(source: str) -> list[str]:
    """Every module a piece of code imports, `from a import b` counted as `a.b`."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            out += [
                f"{'.' * node.level}{node.module or ''}.{a.name}" for a in node.names
            ]
        elif isinstance(node, ast.Name) and node.id in ("__import__", "exec", "eval"):
            out.append(node.id)  # a dynamic import would hide from the checks above
    return out


def _allowed(module: str) -> bool:
    return (
        module == "torch" or module.startswith("torch.") or module == "modelc.runtime"
    )


@pytest.mark.parametrize("name", [*NAMES, "named_sequence"])
def test_imports_only_torch_and_runtime(name):
    if name == "named_sequence":
        source = modelc.compile_source(_NAMED_SEQUENCE)
        assert "from modelc import runtime as rt" in source
    else:
        source = modelc.compile_file(spec_path(name))
    imports = _imports(source)
    assert "torch" in imports
    assert [m for m in imports if not _allowed(m)] == []
