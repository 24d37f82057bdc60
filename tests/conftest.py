"""Shared test helpers: where the specs live, and a cached compile of each."""

from __future__ import annotations

import functools
import os
import zlib
from pathlib import Path
from typing import NamedTuple

import modelc
import pytest
from hypothesis import settings

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


# NOTE: [Slow sample] MODELC_SLOW_SAMPLE="n:seed" keeps one in n of the tests marked slow,
# chosen by a hash of the seed and the test's id, and deselects the others. .ci/run seeds it
# with the commit, so each commit's CI runs its own sample of the slow tests (the same one on
# a rerun) and the commits together run them all; a plain run runs every test.
def _slow_sample(config, items) -> None:
    spec = os.environ.get("MODELC_SLOW_SAMPLE", "")
    if not spec:
        return
    n, _, seed = spec.partition(":")
    keep, drop = [], []
    for item in items:
        chosen = not item.get_closest_marker("slow") or zlib.crc32(f"{seed}:{item.nodeid}".encode()) % int(n) == 0
        (keep if chosen else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config):
    """Under pytest-xdist (scripts/test.sh) the workers share the cores: torch in each takes
    its share of threads. (Set in torch, not in the environment: the processes tests start,
    such as the benchmark's children, run as a user's would.)"""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        try:
            import torch
        except ImportError:
            return
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // workers))


def pytest_collection_modifyitems(config, items):
    _slow_sample(config, items)
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
