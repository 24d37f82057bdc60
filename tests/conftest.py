"""Shared test helpers: where the specs live, and a cached compile of each."""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import NamedTuple

import modelc
from hypothesis import settings

# NOTE: [Hypothesis in CI] Locally every run draws new examples (and keeps failures in
# .hypothesis/). .ci/run sets MODELC_HYPOTHESIS=ci: the same examples on every run, so a
# submission cannot fail on a case it did not touch; bench/fuzz.py explores at length.
settings.register_profile("ci", derandomize=True, database=None)
settings.load_profile(os.environ.get("MODELC_HYPOTHESIS", "default"))

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT / "specs"
GOLDEN = Path(__file__).resolve().parent / "golden"


def spec_names() -> list[str]:
    """Every spec in specs/, by stem (`resnet50`), sorted."""
    return sorted(p.stem for p in SPECS.glob("*.model"))


def spec_path(name: str) -> str:
    return str(SPECS / f"{name}.model")


class Compiled(NamedTuple):
    cls: type  # the generated nn.Module class
    graph: object  # the checked IR it was generated from


@functools.cache
def compiled(name: str) -> Compiled:
    """A spec's module class and graph at its default parameters (compiled once)."""
    cls = modelc.load(spec_path(name))
    return Compiled(cls, cls.__modelc_graph__)
