"""One namespace per scope of generated code: every emitted identifier goes through here.

`Namespace.create("layer-1")` returns a valid, unused Python identifier:
invalid characters become `_`, a leading digit gets `_`, keywords, builtins
and reserved names get a trailing `_`, and repeats get `_1`, `_2`, ...
A namespace of attribute names (`self.<name>`) keeps builtins and soft keywords
as they are: `self.list` is fine, and the forward refers to the spec's label.
"""

from __future__ import annotations

import builtins
import keyword
import re

__all__ = ["Namespace"]

_BUILTINS = frozenset(dir(builtins))


class Namespace:
    def __init__(self, reserved: frozenset[str] | set[str] = frozenset(), attributes: bool = False):
        self._used: set[str] = set(reserved)
        self._reserved = frozenset(reserved)
        self._attributes = attributes

    def create(self, hint: str) -> str:
        base = self._sanitize(hint)
        name, i = base, 0
        while name in self._used:
            i += 1
            name = f"{base}_{i}"
        self._used.add(name)
        return name

    def taken(self, name: str) -> bool:
        return name in self._used

    def _sanitize(self, hint: str) -> str:
        name = re.sub(r"\W", "_", hint.strip(), flags=re.ASCII) or "v"
        shadows = not self._attributes and (keyword.issoftkeyword(name) or name in _BUILTINS)
        if keyword.iskeyword(name) or shadows:
            name += "_"
        if name.startswith("__") and name.endswith("__"):
            name = name.strip("_") + "_"
        if name[0].isdigit():  # last: stripping a dunder can leave a digit in front (`__0__`)
            name = "_" + name
        return name
