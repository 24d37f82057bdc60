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

__all__ = [
    "GENERATED_ATTRIBUTES", "LABEL_FIELD", "MODULE_API", "Namespace", "label_template_problem",
    "module_name_problem", "python_attribute", "reserved_attribute", "reserved_label",
]  # fmt: skip

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


def reserved_label(name: str) -> bool:
    """True if a label cannot name a module: it would shadow nn.Module's state or API, or a
    generated class attribute. Python keywords are allowed: the emitter registers such a
    module with `add_module` and calls it through `getattr` (see :func:`python_attribute`)."""
    return name.startswith("_") or name in MODULE_API or name in GENERATED_ATTRIBUTES


def python_attribute(name: str) -> bool:
    """True if `self.<name>` is valid Python: an ASCII identifier that is not a keyword."""
    return name.isidentifier() and name.isascii() and not keyword.iskeyword(name)


# NOTE: [Module names] A label is a module name: torch refuses '.' (it separates the names
# of a path: `layer1.0.conv1`) and the empty name. modelc takes ASCII letters, digits, '_'
# and '-' (torchvision's RegNet names its blocks `block1-0`), and no name made of digits
# only, which numbered sequences give their unlabelled steps. A quoted label may put the
# value of a name in it, `"denseblock{i}"` (LABEL_FIELD); the text around must follow the
# same rules, and so must the name it makes.
_MODULE_NAME = re.compile(r"[A-Za-z0-9_-]+")
LABEL_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


def module_name_problem(name: str) -> tuple[str, str] | None:
    """(why `name` cannot name a module, a hint), or None when it can."""
    if not name:
        return "it is empty", "give the module a name"
    if "." in name:
        return ("'.' separates the modules of a path",
                "nest labelled steps to make a path: `a: (b: conv(8))` names `a.b`")  # fmt: skip
    if _MODULE_NAME.fullmatch(name) is None:
        bad = next(ch for ch in name if _MODULE_NAME.fullmatch(ch) is None)
        hint = "module names use ASCII letters, digits, '_' and '-'"
        if bad in "{}":
            hint += "; {name} puts the value of a name in a quoted label: \"denseblock{i}\""
        return f"{bad!r} cannot be part of a module name", hint
    if name.isdigit():
        return ("a number names an unlabelled step of a numbered sequence",
                "leave the step unlabelled: it takes the next number")  # fmt: skip
    return None


def label_template_problem(text: str) -> tuple[str, str] | None:
    """module_name_problem of a quoted label's text, each `{name}` in it taken for a letter."""
    return module_name_problem(LABEL_FIELD.sub("x", text))


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
