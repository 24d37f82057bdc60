"""modelc: a compiler for neural-network architectures.

    import modelc
    source = modelc.compile_file("specs/resnet50.model")        # PyTorch source
    ResNet50 = modelc.load("specs/resnet50.model", num_classes=10)  # nn.Module class
    graph = modelc.graph("specs/resnet50.model")                 # the checked IR

Importing modelc does not import torch; only `load` does (through the
generated module).
"""

from modelc.diagnostics import CompilerBug, SpecError, SpecWarning
from modelc.driver import compile_file, compile_source, load, load_source
from modelc.driver import build as _build
# The function, bound over the submodule of the same name: `import modelc` has imported
# modelc.export by then, so a later `import modelc.export` does not rebind the attribute.
# (The module imports torch and the exporters only when an export runs.)
from modelc.export import export
from modelc.importer import from_module  # torch is imported when an import runs
from modelc.display import attach as _attach_display

__all__ = ["CompilerBug", "SpecError", "SpecWarning", "compile_file", "compile_source", "export", "from_module", "graph", "load",
           "load_source"]
__version__ = "0.1.0"


# Jupyter shows a graph as its diagram and summary (modelc.display). Attached from here,
# so the IR never imports the renderer.
_attach_display()


def graph(path: str, model: str | None = None, *, optimize: int = 0, **params):
    """The shape-checked graph IR of one model of a spec file (optimized at level `optimize`:
    the graph `-O1`/`-O2` would emit)."""
    g = _build(path, model, params)
    if optimize:
        from modelc.passes import optimize as _optimize

        g = _optimize(g, optimize).graph
    return g
