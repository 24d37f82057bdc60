"""The compiler's front door: file -> graph(s) -> source -> module class.

Everything here is torch-free except :func:`load`, which imports the
generated module (and so torch) when called.
"""

from __future__ import annotations

import linecache
import os
import re
import sys
import types
import warnings
from typing import Any

from modelc import lint
from modelc.diagnostics import SpecWarning, error
from modelc.elaborate import elaborate
from modelc.ir import Graph
from modelc.load import Program, load_file, load_text

__all__ = ["build", "build_all", "compile_file", "compile_source", "exec_source", "load", "load_source",
           "require_torch"]

TORCH_HINT = 'pip install "modelc[torch]" (or the torch build for your machine, from pytorch.org)'


def require_torch(what: str, done: str | None = None) -> None:
    """Raise E0607 when torch cannot be imported: running a module needs it, compiling does not.
    `done` says what was produced before torch was needed ("net.py was written"), so the user
    knows that it is not lost."""
    try:
        import torch  # noqa: F401
    except ImportError:
        tail = f"; {done}" if done else ""
        raise error("E0607", f"{what} needs torch, which is not installed{tail}", None, TORCH_HINT) from None


def build(path: str, model: str | None = None, params: dict[str, Any] | None = None,
          program: Program | None = None, inputs: dict[str, tuple] | None = None) -> Graph:  # fmt: skip
    """Parse, elaborate and shape-check one model of a spec file."""
    program = program or load_file(path)
    try:
        graph = elaborate(program, model, params, inputs)
    except RecursionError:
        raise error("E0508", "the spec nests expressions or blocks too deeply", None) from None
    graph.verify()
    graph.warnings = lint.warnings(graph)
    return graph


def build_all(program: Program, model: str | None = None, params: dict[str, Any] | None = None,
              inputs: dict[str, tuple] | None = None, optimize: int = 0, rewrites: tuple[str, ...] = (),
              explain: list | None = None) -> list[Graph]:  # fmt: skip
    """The graphs of `model`, or of every model in the main file when None, optimized at level
    `optimize` (modelc.passes); `explain`, when given, receives each model's (graph as
    written, passes.Optimized) pair."""
    graphs = _build_all(program, model, params or {}, inputs)
    if not optimize and not rewrites:
        return graphs
    from modelc.passes import optimize as run_passes

    out = []
    for g in graphs:
        done = run_passes(g, optimize, tuple(rewrites))
        if explain is not None:
            explain.append((g, done))
        out.append(done.graph)
    return out


def _build_all(program: Program, model: str | None, params: dict[str, Any], inputs) -> list[Graph]:
    if model is not None or len(program.main_models) <= 1:
        return [build(program.path, model, params, program, inputs)]
    declared = {p.name for m in program.main_models for p in program.models[m].params}
    unknown = sorted(set(params) - declared)
    if unknown:
        raise error("E0405", f"no model in {program.path} has a parameter '{unknown[0]}'", None)
    graphs = []
    for name in program.main_models:
        own = {p.name for p in program.models[name].params}
        own_params = {k: v for k, v in params.items() if k in own}
        graphs.append(build(program.path, name, own_params, program, inputs))
    return graphs


def variants(program: Program, graphs: list[Graph], inputs: dict[str, tuple] | None = None, optimize: int = 0,
             rewrites: tuple[str, ...] = ()) -> dict[str, dict[str, list[Graph]]]:  # fmt: skip
    """Per model and numeric parameter, the model built again with the parameter changed: an
    int at the first two of plus one, minus one, doubled and tripled the spec accepts (two
    points, so `D // heads` is not taken for a constant where 4097 // 32 still gives 128 per
    head; tripled where only multiples of 8 are accepted: 64 and 96 heads, so that
    8 * (4096 // heads) is not taken for 32768 // heads, which 64 alone would fit), a
    float doubled (0 -> 1). The emitter makes a parameter an argument of the model class
    where these graphs show that the spec's expressions of it are all the class needs (NOTE:
    [Model arguments] in emit_share.py). A parameter whose changed values the spec refuses
    is left out."""
    from modelc.diagnostics import SpecError

    out: dict[str, dict[str, list[Graph]]] = {}
    for g in graphs:
        out[g.name] = {}
        for name, value in g.params:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if isinstance(value, int):  # sizes: 0 and 1 are degenerate
                tries = [v for v in dict.fromkeys([value + 1, value - 1, value * 2, value * 3, 2, 3]) if v > 1 and v != value]
            else:
                tries = [value * 2 if value else 1.0]
            built: list[Graph] = []
            for other in tries:
                if len(built) == 2:
                    break
                try:
                    built += build_all(program, g.name, {**dict(g.params), name: other}, inputs, optimize, rewrites)
                except (SpecError, RecursionError):
                    continue
            if built:
                out[g.name][name] = built
    return out


def compile_file(path: str, model: str | None = None, *, optimize: int = 0, **params: Any) -> str:
    """PyTorch source for the model(s) of a spec file (optimized at level `optimize`)."""
    program = load_file(path)
    graphs = build_all(program, model, params, optimize=optimize)
    return _emit(program, graphs, path, optimize)


def compile_source(text: str, path: str = "<string>", model: str | None = None, *, optimize: int = 0,
                   **params: Any) -> str:  # fmt: skip
    program = load_text(text, path)
    graphs = build_all(program, model, params, optimize=optimize)
    return _emit(program, graphs, path, optimize)


# Emitted sources by what they are made of: the texts read, the path shown, and each model's
# name and parameter values at an optimization level. Emission builds every model again per
# numeric parameter (`variants`), so a process that compiles one spec often (tests, a
# notebook reloading a model) pays for that once. Bounded: the oldest entry goes first.
_EMITTED: dict[tuple, str] = {}
_EMITTED_MAX = 64  # 0: nothing is kept


def forget_emitted() -> None:
    """Empty the cache of emitted sources (for tests that patch the compiler)."""
    _EMITTED.clear()


def _emit(program: Program, graphs: list[Graph], path: str, optimize: int) -> str:
    from modelc.emit import emit  # and jinja2: imported when needed, not by `check`

    for text in dict.fromkeys(w.render() for g in graphs for w in g.warnings):
        warnings.warn(SpecWarning(text), stacklevel=_caller_level())
    key = (tuple(program.texts), path, optimize, tuple((g.name, repr(g.params)) for g in graphs))
    if key in _EMITTED:
        return _EMITTED[key]
    source = emit(graphs, path, variants(program, graphs, optimize=optimize))
    if _EMITTED_MAX:
        while len(_EMITTED) >= _EMITTED_MAX:
            del _EMITTED[next(iter(_EMITTED))]
        _EMITTED[key] = source
    return source


def _caller_level() -> int:
    """The `stacklevel` that attributes a warning to the first caller outside modelc."""
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_globals.get("__name__", "").startswith("modelc"):
        frame, level = frame.f_back, level + 1
    return level


def load(path: str, model: str | None = None, *, optimize: int = 0, **params: Any) -> type:
    """Compile a spec and import the result in memory; returns the model's nn.Module class.
    At `optimize` 1 or 2 it is an inference module that loads the unoptimized checkpoints."""
    require_torch("modelc.load")
    program = load_file(path)
    return _import(program, model, params, optimize)


def load_source(text: str, path: str = "<string>", model: str | None = None, *, optimize: int = 0,
                **params: Any) -> type:  # fmt: skip
    require_torch("modelc.load_source")
    return _import(load_text(text, path), model, params, optimize)


_counter = 0


def exec_source(source: str, path: str) -> types.ModuleType:
    """Import generated source as a fresh in-memory module."""
    global _counter
    _counter += 1
    stem = re.sub(r"\W", "_", os.path.basename(path))
    name = f"modelc_generated.{stem}_{_counter}"
    # One source name per load: two loads of one path with other parameters are other code,
    # and inspect, tracebacks and torch.jit read each class's source by this name.
    filename = f"<modelc:{path}#{_counter}>"
    # Registered in linecache and sys.modules so tracebacks, inspect and
    # torch.compile can read the generated source.
    linecache.cache[filename] = (len(source), None, source.splitlines(True), filename)
    module = types.ModuleType(name)
    module.__file__ = filename
    sys.modules[name] = module
    exec(compile(source, filename, "exec"), module.__dict__)  # our own generated code, not spec text
    _make_picklable(module, source, path)
    return module


# NOTE: [Pickling loaded modules] A class made by `load` lives in a module that exists only in
# this process, so pickle (torch.save of a whole model) cannot find it by name. Each generated
# nn.Module class pickles its instances as "the class named Q of this generated source" plus
# the instance's state: `_rebuild` runs that source again where it is unpickled (a fresh
# process with modelc and torch), once per source, and in the process that made it finds the
# same module, so `copy.deepcopy` keeps the class. The spec file is not needed to unpickle.
_BY_SOURCE: dict[str, types.ModuleType] = {}


def _source_key(source: str) -> str:
    import hashlib

    return hashlib.sha256(source.encode("utf-8")).hexdigest()


def _make_picklable(module: types.ModuleType, source: str, path: str) -> None:
    _BY_SOURCE.setdefault(_source_key(source), module)
    module.__modelc_source__, module.__modelc_path__ = source, path
    nn_module = getattr(module, "nn", None)
    for value in list(vars(module).values()):
        if isinstance(value, type) and value.__module__ == module.__name__ and nn_module is not None \
                and issubclass(value, nn_module.Module):  # fmt: skip
            value.__reduce_ex__ = _reduce_ex


def _reduce_ex(self, protocol: int):
    module = sys.modules[type(self).__module__]
    return _rebuild, (module.__modelc_source__, module.__modelc_path__, type(self).__qualname__), self.__dict__.copy()


def _rebuild(source: str, path: str, qualname: str):
    """An empty instance of generated class `qualname` (pickle then restores its state)."""
    module = _BY_SOURCE.get(_source_key(source))
    if module is None:
        module = exec_source(source, path)
    cls = getattr(module, qualname)
    return cls.__new__(cls)


def _import(program: Program, model: str | None, params: dict[str, Any], optimize: int = 0) -> type:
    graphs = build_all(program, model, params, optimize=optimize)
    if len(graphs) != 1:
        names = ", ".join(g.name for g in graphs)
        raise error("E0504", f"{program.path} defines several models ({names}); pass model=...", None)
    source = _emit(program, graphs, program.path, optimize)
    cls = getattr(exec_source(source, program.path), graphs[0].name)
    cls.__modelc_source__ = source
    cls.__modelc_graph__ = graphs[0]
    from modelc.display import register_class  # in Jupyter: the class shows its diagram

    register_class(cls)
    return cls
