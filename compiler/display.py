"""Jupyter display: a graph, or a model class from `modelc.load`, shows as its diagram and summary.

A display is a MIME bundle (what IPython's `_repr_mimebundle_` returns):
- `text/plain`: the summary table, as `modelc summary` prints it;
- `image/svg+xml`: the diagram, as `modelc render` draws it by default (only with Graphviz);
- `text/html`: the diagram with the summary below it, folded in a `<details>` element whose
  title holds the totals (front ends prefer HTML to SVG, so this is what a notebook shows).

The display is attached from outside the IR: `modelc/__init__.py` calls :func:`attach` once,
so `modelc.ir` never imports the renderer, and nothing here imports it (nor IPython) before
a display is asked for.

NOTE: [Class display] IPython never calls a special method on a class (`Foo._repr_mimebundle_`
would be the unbound method of the instances), so the classes `modelc.load` returns cannot
display themselves, and changing their metaclass would change the generated code and what
pickle and `torch.save` see. Instead `modelc.load` puts each class in a weak registry and,
when it runs inside IPython, registers one mimebundle printer for the type `type` (class
objects). The printer answers for registered classes only; for any other class it hands over
to the printer registered before it, if any, else returns None (IPython's usual display).
Instances keep torch's own repr: `print(model)` is unchanged.
"""

from __future__ import annotations

import html
import subprocess
import sys
import weakref
from typing import Any

from modelc.diagnostics import CompilerBug, SpecError
from modelc.ir import Graph

__all__ = ["attach", "class_bundle", "graph_bundle", "register_class"]

Bundle = dict[str, str]

_LOADED: weakref.WeakSet = weakref.WeakSet()  # classes made by modelc.load / load_source
_installed_in: list[Any] = []  # the IPython shell whose formatter holds our printer, if any


def attach() -> None:
    """Give the IR's Graph its Jupyter display (called once, by `modelc/__init__.py`)."""
    Graph._repr_mimebundle_ = _graph_repr_mimebundle_


def _graph_repr_mimebundle_(self: Graph, include=None, exclude=None) -> Bundle:
    return graph_bundle(self, include, exclude)


def graph_bundle(graph: Graph, include=None, exclude=None) -> Bundle:
    """The MIME bundle of a graph: summary text, and the diagram where Graphviz draws it.
    `include`/`exclude` (IPython's) skip the drawing when no front end will show it."""
    summary = _summary(graph)
    bundle = {"text/plain": summary["table"]}
    if _wanted(("image/svg+xml", "text/html"), include, exclude):
        svg = _svg(graph)
        if svg is not None:
            bundle["image/svg+xml"] = svg
        bundle["text/html"] = _html(svg, summary)
    return {k: v for k, v in bundle.items() if _wanted((k,), include, exclude)}


def class_bundle(cls: type) -> Bundle | None:
    """The MIME bundle of a class made by `modelc.load` (its graph's), else None."""
    graph = _graph_of(cls)
    return None if graph is None else graph_bundle(graph)


def _graph_of(cls: type) -> Graph | None:
    """The graph of a class made by `modelc.load`, else None (any other class, even one
    that copied the attribute)."""
    try:
        loaded = cls in _LOADED
    except TypeError:  # not weak-referenceable: not ours
        return None
    return cls.__dict__.get("__modelc_graph__") if loaded else None


def register_class(cls: type) -> None:
    """Remember a class made by `modelc.load`, and make sure IPython (when it is running) can
    display it: see NOTE: [Class display]."""
    _LOADED.add(cls)
    shell = _ipython_shell()
    if getattr(shell, "display_formatter", None) is not None and not any(s is shell for s in _installed_in):
        _install_printer(shell)
        _installed_in.append(shell)


def _ipython_shell():
    """The running IPython shell, or None; IPython is never imported here, only looked up."""
    ipython = sys.modules.get("IPython")
    get = getattr(ipython, "get_ipython", None)
    return get() if callable(get) else None


def _install_printer(shell) -> None:
    """Printers for class objects in the shell's mimebundle and text/plain formatters. The
    text/plain one is needed too: IPython lets a per-MIME printer registered for a type (its
    own pretty-printer of classes) win over a bundle's text/plain."""
    bundles = shell.display_formatter.mimebundle_formatter
    before = bundles.for_type(type, None)  # look up only: for_type(t, None) changes nothing

    def bundle_printer(obj):
        bundle = class_bundle(obj)
        return before(obj) if bundle is None and before is not None else bundle

    texts = shell.display_formatter.formatters["text/plain"]
    text_before = texts.for_type(type, None)

    def text_printer(obj, p, cycle):
        graph = _graph_of(obj)
        if graph is not None:
            p.text(_summary(graph)["table"])
        elif text_before is not None:
            text_before(obj, p, cycle)
        else:
            p.text(repr(obj))

    bundles.for_type(type, bundle_printer)
    texts.for_type(type, text_printer)


# ---- the parts of a bundle ------------------------------------------------------------------
def _wanted(types: tuple[str, ...], include, exclude) -> bool:
    """Whether any of `types` survives IPython's include/exclude lists."""
    return any((not include or t in include) and (not exclude or t not in exclude) for t in types)


def _summary(graph: Graph) -> dict[str, Any]:
    from modelc.summary import format_table, summarize

    source = graph.span.file if graph.span and not graph.span.file.startswith("<") else ""
    s = summarize(graph, source)
    return {**s, "table": format_table(s)}


def _svg(graph: Graph) -> str | None:
    """The default diagram as an `<svg>` element (without the XML prolog and doctype, which
    do not belong inside HTML), or None where it cannot be drawn: no Graphviz, or Graphviz
    failed. A display never raises: the summary is still shown."""
    from modelc.render import to_svg

    try:
        svg = to_svg(graph)
    except (CompilerBug, SpecError, OSError, subprocess.SubprocessError):
        return None
    if svg is None:
        return None
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else None


def _html(svg: str | None, summary: dict[str, Any]) -> str:
    lines = summary["table"].splitlines()
    totals = "; ".join(lines[-2:])  # the parameters and MACs lines
    title = html.escape(f"{summary['model']}: {totals}")
    figure = f"<div>{svg}</div>" if svg is not None else ""
    table = f"<pre>{html.escape(summary['table'])}</pre>"
    return f"<div>{figure}<details><summary>{title}</summary>{table}</details></div>"
