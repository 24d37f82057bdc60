"""The state of elaboration: scopes of names, frames (containers under construction),
the context each expression is evaluated in, and the limits on what a spec may build.

`Ctx` is immutable and replaced (`dataclasses.replace`) to change the variable-name hint or
the running statement; `Scope` and `Frame` are mutated in place as names are bound and taken.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modelc.diagnostics import Note, Span
from modelc.ir import Container

__all__ = ["LIMITS", "Ctx", "Frame", "Scope"]


LIMITS = {
    "nodes": 100_000,  # graph size
    "dim": 2**31 - 1,  # one tensor dimension
    "params": 2**40,  # parameters of one layer
    "repeat": 100_000,  # one repetition or loop
    "depth": 64,  # nested block instantiations
    "errors": 50,  # diagnostics kept before stopping
}


@dataclass
class Scope:
    vars: dict[str, Any]
    parent: Scope | None = None

    def lookup(self, name: str) -> Any:
        scope: Scope | None = self
        while scope is not None:
            if name in scope.vars:
                return scope.vars[name]
            scope = scope.parent
        return _MISSING

    def visible(self) -> set[str]:
        out: set[str] = set()
        scope: Scope | None = self
        while scope is not None:
            out |= set(scope.vars)
            scope = scope.parent
        return out


_MISSING = object()  # what Scope.lookup returns for a name bound in no scope


@dataclass
class Frame:
    """A container under construction."""

    container: Container
    stack: tuple[str, ...] = ()  # block names being instantiated (recursion check)
    trace: tuple[Note, ...] = ()
    used: dict[str, Span] = field(default_factory=dict)
    automatic: set[str] = field(default_factory=set)  # names of `used` that modelc chose
    suffix: dict[str, int] = field(default_factory=dict)  # next _N to try per base name
    unnamed: list[int] = field(default_factory=list)
    counter: list[int] | None = None  # set in a numbered sequence
    prefix: str = ""  # of the numbers in it: `for ... prefix "layer_"` names items layer_0, ...
    branches: Frame | None = None  # in a labelled `[for ...]`: the enclosing frame (NOTE: [Branches])

    @property
    def path(self) -> tuple[str, ...]:
        return self.container.path


@dataclass(frozen=True)
class Ctx:
    frame: Frame
    scope: Scope
    var: str | None = None  # variable-name hint for nodes made now
    symbols: bool = False  # unknown names become symbolic dims (input shapes)
    body: tuple[Any, int] | None = None  # (statements, index of the running one); see expressions._later
    current: tuple[str, ...] = ()  # names the running statement assigns
