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
           "--exclude", "tests/golden", "compiler", "runtime", "tests", "bench"]  # fmt: skip
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr
