"""Shared test helpers: where the specs live, and a cached compile of each."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

# Under pytest-xdist (scripts/test.sh) the workers share the cores: torch in each takes its
# share of threads, set before anything imports torch.
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
if _WORKERS > 1:
    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, len(os.sched_getaffinity(0)) // _WORKERS)))

import modelc  # noqa: E402
import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# NOTE: [Hypothesis in CI] Locally every run draws new examples (and keeps failures in
# .hypothesis/). .ci/run sets MODELC_HYPOTHESIS=ci: the same examples on every run, so a
# submission cannot fail on a case it did not touch; bench/fuzz.py explores at length.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("MODELC_HYPOTHESIS", "default"))

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"


# NOTE: [CUDA tests] One marker, `@pytest.mark.cuda`, and one skip reason for every test that
# needs a GPU: CI and most machines have none, and `pytest -ra` then lists them once, alike.
NO_CUDA = "needs a CUDA device (torch.cuda.is_available() is False here)"


def pytest_collection_modifyitems(config, items):
    marked = [item for item in items if item.get_closest_marker("cuda")]
    if not marked:
        return
    import torch

    if not torch.cuda.is_available():
        for item in marked:
            item.add_marker(pytest.mark.skip(reason=NO_CUDA))


def _run_params() -> dict[str, dict]:
    """scripts/zoo.py's RUN_PARAMS: the small configuration at which a spec too large to run
    here (Llama 3 8B) is run, by the zoo and by the tests that run every spec.
    tests/test_zoo_llm.py counts the full configuration on the meta device."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("modelc_zoo_script", ROOT / "scripts" / "zoo.py")
    zoo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(zoo)
    return zoo.RUN_PARAMS


RUN_PARAMS = _run_params()


def spec_names() -> list[str]:
    """Every spec in specs/, by stem (`resnet50`), sorted."""
    return sorted(p.stem for p in SPECS.glob("*.model"))


def spec_path(name: str) -> str:
    return str(SPECS / f"{name}.model")


class Compiled(NamedTuple):
    cls: type  # the generated nn.Module class
    graph: object  # the checked IR it was generated from


@pytest.fixture(autouse=True)
def _fresh_compiles_when_patched(request):
    """A test that may patch the compiler (it takes monkeypatch) compiles afresh and keeps
    nothing: modelc.driver caches emitted sources by their spec text."""
    from modelc import driver

    patched = "monkeypatch" in request.fixturenames
    if patched:
        driver.forget_emitted()
        request.getfixturevalue("monkeypatch").setattr(driver, "_EMITTED_MAX", 0)
    yield


@functools.cache
def compiled(name: str) -> Compiled:
    """A spec's module class and graph at its default parameters (compiled once)."""
    cls = modelc.load(spec_path(name))
    return Compiled(cls, cls.__modelc_graph__)
