"""Shared test helpers: where the specs live, and a cached compile of each."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import NamedTuple

import modelc

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
