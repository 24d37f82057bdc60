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

__all__ = ["GENERATED_ATTRIBUTES", "MODULE_API", "Namespace", "reserved_attribute"]

_BUILTINS = frozenset(dir(builtins))

# NOTE: [Names a module attribute cannot take] A label or an automatic name becomes an
# attribute of an nn.Module (`self.<name>`). It must not shadow nn.Module's own attributes:
# the public ones below (torch 2.14's `dir(nn.Module)` and an instance's `vars`, checked
# against the installed torch by tests/test_names.py), every name starting with `_` (torch
# keeps its private state there: `_parameters`, `_modules`, `_call_impl`, `_version`, and
# future versions add more), and the class attributes generated models define.
MODULE_API = frozenset("""
T_destination add_module apply bfloat16 buffers call_super_init children compile cpu cuda
double dump_patches eval extra_repr float forward get_buffer get_extra_state get_parameter
get_submodule half ipu load_state_dict modules mtia named_buffers named_children
named_modules named_parameters parameters register_backward_hook register_buffer
register_forward_hook register_forward_pre_hook register_full_backward_hook
register_full_backward_pre_hook register_load_state_dict_post_hook
register_load_state_dict_pre_hook register_module register_parameter
register_state_dict_post_hook register_state_dict_pre_hook requires_grad_ set_extra_state
set_submodule share_memory state_dict to to_empty train training type xpu zero_grad
""".split())  # fmt: skip
GENERATED_ATTRIBUTES = frozenset({"INPUT_SHAPES", "OUTPUT_SHAPES", "NUM_PARAMETERS", "LOAD_RULES"})


def reserved_attribute(name: str) -> bool:
    """True if `name` cannot be an attribute of a generated module (see the NOTE above)."""
    return (keyword.iskeyword(name) or name.startswith("_") or name in MODULE_API
            or name in GENERATED_ATTRIBUTES)  # fmt: skip


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
