"""The project's own Python stays lint-clean (pyflakes and pycodestyle errors)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_ruff_check_is_clean():
    try:
        import ruff  # noqa: F401
    except ImportError:
        pytest.skip("ruff is a dev dependency: pip install -e .[dev]")
    cmd = [sys.executable, "-m", "ruff", "check", "--select", "E,F,W", "--ignore", "E501",
           "--exclude", "tests/golden", "compiler", "runtime", "tests", "bench", "examples"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


MAX_LINES = 600  # small files, one concept each (docs/architecture.md)


def test_no_source_file_is_over_the_line_budget():
    folders = ("compiler", "runtime", "grammar", "templates", "bench", "scripts", "examples")
    long = []
    for folder in folders:
        for path in sorted((ROOT / folder).rglob("*.py")) if (ROOT / folder).is_dir() else ():
            if path.name == "tables.py" and path.parent.name == "grammar":
                continue  # generated parser tables (scripts/gen_parser_tables.py)
            lines = path.read_text(encoding="utf-8").count("\n")
            if lines > MAX_LINES:
                long.append(f"{path.relative_to(ROOT)}: {lines} lines")
    assert not long, f"over {MAX_LINES} lines: " + ", ".join(long)
