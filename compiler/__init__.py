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

__all__ = ["CompilerBug", "SpecError", "compile_file", "compile_source", "graph", "load", "load_source"]
__version__ = "0.1.0"


def graph(path: str, model: str | None = None, **params):
    """The shape-checked graph IR of one model of a spec file."""
    return _build(path, model, params)
