"""modelc: a compiler for neural-network architectures.

    import modelc
    source = modelc.compile_file("specs/resnet50.model")        # PyTorch source
    ResNet50 = modelc.load("specs/resnet50.model", num_classes=10)  # nn.Module class
    graph = modelc.graph("specs/resnet50.model")                 # the checked IR

Importing modelc does not import torch; only `load` does (through the
generated module).
"""

from modelc.diagnostics import CompilerBug, SpecError
from modelc.driver import compile_file, compile_source, load, load_source
from modelc.driver import build as _build
from modelc.ir import Graph as _Graph

__all__ = ["CompilerBug", "SpecError", "compile_file", "compile_source", "graph", "load", "load_source"]
__version__ = "0.1.0"


def _repr_svg_(graph) -> str | None:
    """Jupyter shows a graph as its diagram (None, i.e. text, without Graphviz). Attached to
    the IR from here, so the IR never imports the renderer."""
    from modelc.render import to_svg

    return to_svg(graph)


_Graph._repr_svg_ = _repr_svg_


def graph(path: str, model: str | None = None, *, optimize: int = 0, **params):
    """The shape-checked graph IR of one model of a spec file (optimized at level `optimize`:
    the graph `-O1`/`-O2` would emit)."""
    g = _build(path, model, params)
    if optimize:
        from modelc.passes import optimize as _optimize

        g = _optimize(g, optimize).graph
    return g
