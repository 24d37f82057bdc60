"""Import errors: located at a module path (`features.3.block`), not in a spec file."""

from __future__ import annotations

from modelc.diagnostics import Diagnostic, SpecError

__all__ = ["import_error"]


def import_error(code: str, where: str, message: str, hint: str | None = None) -> SpecError:
    """`where: error[code]: message`: `where` is the module path (`<root>` for the model itself)
    or, before a module exists, what the user named (`torchvision:resnet5`)."""
    return SpecError(Diagnostic(code, message, None, hint, where=where or "<root>"))
