"""`modelc export`: one model of a spec as a self-contained ONNX or torch.export (`.pt2`) file.

    modelc export specs/resnet18.model --format onnx -o resnet18.onnx --dynamic B
    modelc export specs/transformer.model -O2 --format pt2 -o transformer.pt2 --dynamic B,S,T

The model is compiled (at the -O level asked for), built with a seeded random initialisation
in eval mode, and traced once by `torch.export` on example inputs: the spec's input shapes with
its symbols at the sizes `--verify` uses (the batch 2, others the first of 16, 32, ... at which
every layer has a positive size), or as pinned by `--input`. Symbols named in `--dynamic` stay
dynamic in the file; every other dimension is fixed to the example's size. The one exported
program is then saved (`torch.export.save`) or translated to ONNX by torch's dynamo exporter
(`torch.onnx.export(..., dynamo=True)`, which needs onnx and onnxscript); the dynamic
dimensions of the ONNX graph are renamed after the spec's symbols (`B`, not `s77`). The
weights are in the file either way.

Errors are E0606 (cannot export): located at the model's input where a `--dynamic` name is not
one of its symbols, unlocated for a missing package, a bad option or the exporter's own
failure (summarised, never a traceback). torch, onnx and onnxscript are imported only here,
and only when an export runs: `import modelc` stays light.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

from modelc.diagnostics import SpecError, error
from modelc.ir import Graph
from modelc.symbolic import Sym

__all__ = ["FORMATS", "MIN_OPSET", "Exported", "export", "export_graph"]

FORMATS = {"onnx": ".onnx", "pt2": ".pt2"}  # format -> the usual file suffix
MIN_OPSET = 18  # the dynamo exporter translates to opset 18 and converts upward only
EXPORT_HINT = 'pip install "modelc[export]" (onnx and onnxscript, for the dynamo exporter)'
_MAX_ONNX_BYTES = 2**31 - 1  # protobuf's limit on one serialized message


@dataclass(frozen=True)
class Exported:
    """What `export` wrote: enough for the one-line report and for a caller's checks."""

    path: str
    format: str
    model: str
    params: int  # parameters in the file (buffers, such as BatchNorm statistics, are in it too)
    size: int  # bytes written
    example: dict[str, int]  # the symbols' sizes in the example inputs
    dynamic: tuple[str, ...]  # the symbols left dynamic
    inputs: dict[str, tuple] = field(default_factory=dict)  # name -> shape in the file
    outputs: tuple[str, ...] = ()
    opset: int | None = None  # ONNX only
    limits: dict[str, int] = field(default_factory=dict)  # dynamic symbol -> the largest size it may take

    def describe(self, spec: str) -> str:
        what = f"ONNX, opset {self.opset}" if self.format == "onnx" else "torch.export program"
        shapes = ", ".join(f"{name} [{', '.join(str(d) for d in dims)}]" for name, dims in self.inputs.items())
        example = ", ".join(f"{k}={v}" for k, v in self.example.items())
        traced = f"; traced at {example}" if example else ""
        limits = ", ".join(f"{k} <= {v}" for k, v in self.limits.items())
        return (f"{spec}: exported {self.model} to {self.path} ({what}, {_size(self.size)}, "
                f"{self.params:,} parameters included): inputs {shapes}{f' ({limits})' if limits else ''}"
                f"{traced}")  # fmt: skip


def export(path: str, fmt: str | None, out: str, model: str | None = None, *, optimize: int = 0,
           inputs: dict[str, tuple] | None = None, dynamic: tuple[str, ...] | list[str] = (),
           opset: int | None = None, rewrites: tuple[str, ...] = (), seed: int = 0,
           **params: Any) -> Exported:  # fmt: skip
    """Export one model of the spec file `path` to `out` as `fmt` ("onnx" or "pt2"; None: from
    the suffix of `out`). `inputs` pins input shapes as `--input` does (name -> dims),
    `dynamic` names the symbols that stay dynamic, other keyword arguments are model
    parameters. Returns what was written; errors raise modelc.SpecError (E0606)."""
    from modelc.driver import build_all
    from modelc.load import load_file

    program = load_file(path)
    graphs = build_all(program, model, params, dict(inputs or {}), optimize, tuple(rewrites))
    if len(graphs) != 1:
        names = ", ".join(g.name for g in graphs)
        raise error("E0606", f"{path} defines several models ({names}); a file holds one", None,
                    "pick one with model=... (--model NAME)")  # fmt: skip
    loaded = [program.path, *sorted(program.imported)]
    return export_graph(graphs[0], path, fmt, out, dynamic=tuple(dynamic), opset=opset, loaded=loaded,
                        seed=seed)  # fmt: skip


def export_graph(graph: Graph, spec: str, fmt: str | None, out: str, *, dynamic: tuple[str, ...] = (),
                 opset: int | None = None, loaded: list[str] | tuple[str, ...] = (),
                 seed: int = 0) -> Exported:  # fmt: skip
    """Export a checked graph (`spec` is its file, for messages and the generated code's
    comments). Everything that can be refused without torch is refused first."""
    fmt = _format(fmt, out)
    _check_output(out, loaded)
    dynamic = _check_dynamic(graph, dynamic)
    opset = _check_opset(fmt, opset)
    torch = _require(fmt)
    _check_max_opset(opset, torch)
    from modelc.verify import sizes

    env = sizes(graph, 2, "modelc export", training=False)  # an export is of eval mode
    module, args = _build(graph, spec, env, seed, torch)
    program = _trace(graph, module, args, dynamic, torch)
    names = _dim_names(graph, program, dynamic)
    if fmt == "onnx":
        data, opset = _onnx_bytes(graph, program, args, opset, names, torch)
    else:
        data = _pt2_bytes(program, torch)
    from modelc.fileio import write_file

    write_file(out, data, loaded)
    return Exported(out, fmt, graph.name, sum(p.numel() for p in module.parameters()), len(data), env,
                    dynamic, _file_shapes(graph, env, dynamic), tuple(name for name, _ in graph.eval_outputs()),
                    opset, _upper_bounds(program, names))  # fmt: skip


# ---- checks before any work -----------------------------------------------------------------
def _format(fmt: str | None, out: str) -> str:
    """The format asked for, or the one the output's suffix names; a suffix that names the
    other format is refused (a .pt2 file holding ONNX would mislead every tool)."""
    suffix = os.path.splitext(out)[1].lower()
    named = next((f for f, s in FORMATS.items() if s == suffix), None)
    if fmt is None:
        if named is None:
            raise error("E0606", f"cannot tell the format of {out}", None,
                        "give --format onnx or --format pt2, or name the file .onnx or .pt2")  # fmt: skip
        return named
    if fmt not in FORMATS:
        raise error("E0606", f"unknown export format '{fmt}'", None, "the formats are onnx and pt2")
    if named is not None and named != fmt:
        raise error("E0606", f"--format {fmt}, but {out} ends in {suffix}", None,
                    f"name it {os.path.splitext(out)[0]}{FORMATS[fmt]}, or give --format {named}")  # fmt: skip
    return fmt


def _check_output(out: str, loaded) -> None:
    """Never write an export over a spec: the spec being exported, one of its imports (also
    through a link), or any existing .model file (a mistyped `-o net.model`). A directory is
    refused here too, before the slow part."""
    if not os.path.lexists(out):
        return
    if os.path.isdir(out):  # refused now, not after a trace of many seconds (write_file would)
        raise error("E0604", f"cannot write {out}: it is a directory", None,
                    "name a file in it, e.g. " + os.path.join(out, "model.onnx"))  # fmt: skip
    same = any(_same_file(out, spec) for spec in loaded)
    if same or os.path.realpath(out).endswith(".model"):
        which = "the spec being exported" if same else "a spec file"
        raise error("E0606", f"will not write the export over {out}: it is {which}", None,
                    "name the output .onnx or .pt2")  # fmt: skip


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except (OSError, ValueError):
        return False


def _symbols(graph: Graph) -> dict[str, int]:
    """The symbols of the model's inputs, each with the input node that first has it."""
    out: dict[str, int] = {}
    for n in graph.inputs:
        for d in graph.node(n).type.dims:
            if isinstance(d, Sym) and _SYMBOL.fullmatch(str(d)):
                out.setdefault(str(d), n)
    return out


_SYMBOL = re.compile(r"[A-Za-z_]\w*")


def _check_dynamic(graph: Graph, dynamic: tuple[str, ...]) -> tuple[str, ...]:
    """The `--dynamic` names, each a symbol of the model's inputs; otherwise E0606 at the
    model's first input, naming the symbols there are."""
    names = tuple(dict.fromkeys(d.strip() for d in dynamic if d.strip()))
    symbols = _symbols(graph)
    for name in names:
        if name in symbols:
            continue
        first = graph.node(graph.inputs[0]) if graph.inputs else None
        have = ", ".join(symbols)
        hint = (f"the symbols of its inputs are {have}" if symbols else
                "its inputs have fixed sizes (or --input pinned them): nothing can stay dynamic")
        raise error("E0606", f"--dynamic {name}: {graph.name} has no symbolic dimension '{name}' "
                    "in its inputs", first.span if first else None, hint)  # fmt: skip
    return names


def _check_opset(fmt: str, opset: int | None) -> int | None:
    if opset is None:
        return None
    if fmt != "onnx":
        raise error("E0606", f"--opset {opset}: only an ONNX export has an opset", None,
                    "drop --opset, or give --format onnx")  # fmt: skip
    if opset < MIN_OPSET:
        raise error("E0606", f"--opset {opset}: the dynamo exporter writes opset {MIN_OPSET} or later",
                    None, f"give --opset {MIN_OPSET} or more (or none: torch's default)")  # fmt: skip
    return opset


def _require(fmt: str):
    """torch (E0607 without it), and for ONNX onnx and onnxscript (E0606 without them)."""
    from modelc.driver import require_torch

    require_torch("modelc export")
    import torch

    if fmt == "onnx":
        try:
            import onnx  # noqa: F401
            import onnxscript  # noqa: F401
        except ImportError as exc:
            raise error("E0606", f"--format onnx needs the packages onnx and onnxscript ({exc.name} "
                        "is not installed)", None, EXPORT_HINT) from None  # fmt: skip
    return torch


def _check_max_opset(opset: int | None, torch) -> None:
    """This torch's newest opset (`torch.onnx._constants`, private: skipped where it moved)."""
    limit = getattr(getattr(torch.onnx, "_constants", None), "ONNX_MAX_OPSET", None)
    if opset is not None and isinstance(limit, int) and opset > limit:
        raise error("E0606", f"--opset {opset}: torch {torch.__version__} writes opsets up to {limit}", None,
                    f"give --opset {limit} or less (or none: torch's default)")  # fmt: skip


def _file_shapes(graph: Graph, env: dict[str, int], dynamic: tuple[str, ...]) -> dict[str, tuple]:
    """Each input's shape in the file: its dynamic symbols by name, every other size fixed."""
    from modelc.symbolic import subs

    return {graph.node(n).name: tuple(str(d) if isinstance(d, Sym) and str(d) in dynamic else int(subs(d, env))
                                      for d in graph.node(n).type.dims) for n in graph.inputs}  # fmt: skip


# ---- the module, its example and the trace ----------------------------------------------------
def _build(graph: Graph, spec: str, env: dict[str, int], seed: int, torch) -> tuple[Any, tuple]:
    """The generated module in eval mode, every weight and statistic drawn from `seed` as
    `modelc bench` draws them (scaled by fan-in; torch's default initialisation, with
    BatchNorm's unit statistics, lets a deep CNN's output barely depend on its input, which
    would hide a wrong export), and example inputs at `env`."""
    from modelc.bench import randomize
    from modelc.driver import exec_source
    from modelc.emit import emit
    from modelc.verify import _random_input

    cls = getattr(exec_source(emit([graph], spec), spec), graph.name)
    torch.manual_seed(seed)
    module = cls().eval()
    randomize(module, torch, seed)
    torch.manual_seed(seed)
    args = tuple(_random_input(graph, n, graph.node(n).type.subs(env), "cpu") for n in graph.inputs)
    return module, args


def _trace(graph: Graph, module, args: tuple, dynamic: tuple[str, ...], torch):
    """`torch.export.export` of the module; each dimension whose symbol is in `dynamic` is
    `Dim.DYNAMIC` (torch infers its range, and refuses if the model fixes it), the others
    are fixed to the example's sizes."""
    shapes = tuple({i: torch.export.Dim.DYNAMIC for i, d in enumerate(graph.node(n).type.dims)
                    if isinstance(d, Sym) and str(d) in dynamic} or None for n in graph.inputs)  # fmt: skip
    with _quiet(), torch.no_grad():
        try:
            return torch.export.export(module, args, dynamic_shapes=shapes if dynamic else None, strict=False)
        except Exception as exc:  # noqa: BLE001 - torch's many exception types: all "cannot export"
            raise _failed(graph, "torch.export", exc, dynamic) from None


def _dim_names(graph: Graph, program, dynamic: tuple[str, ...]) -> dict[str, str]:
    """torch's symbol (`s77`) -> the spec's (`B`) for every dynamic dimension. Two of the
    spec's symbols that the model forces equal (a residual over S and T) cannot both stay
    free: E0606 says so."""
    placeholders = [n for n in program.graph.nodes if n.op == "placeholder"]
    user = [p for p, spec in zip(placeholders, program.graph_signature.input_specs)
            if spec.kind.name == "USER_INPUT"]  # fmt: skip
    names: dict[str, str] = {}
    for n, p in zip(graph.inputs, user):
        for d, got in zip(graph.node(n).type.dims, p.meta["val"].shape):
            if not (isinstance(d, Sym) and str(d) in dynamic):
                continue
            key = str(got)
            if not re.fullmatch(r"s\d+", key):  # the trace fixed it: Dim.DYNAMIC refuses first
                raise error("E0606", f"--dynamic {d}: {graph.name} fixes it to {key}", None,
                            "drop it from --dynamic")  # fmt: skip
            if names.setdefault(key, str(d)) != str(d):
                raise error("E0606", f"--dynamic {names[key]},{d}: {graph.name} needs {names[key]} == {d}, so "
                            "they cannot vary apart", None, "pin one of them with --input, or give the "
                            "inputs one symbol")  # fmt: skip
    return names


def _upper_bounds(program, names: dict[str, str]) -> dict[str, int]:
    """The finite upper bounds the trace found for dynamic symbols (a sinusoidal position table
    of 5000 rows bounds the sequence length), by the spec's names. The lower bounds are left
    out: torch assumes a size of at least 2 while tracing, yet the files run at 1."""
    out: dict[str, int] = {}
    for symbol, bounds in program.range_constraints.items():
        name, upper = names.get(str(symbol)), str(bounds.upper)  # an integer, or int_oo
        if name is not None and upper.isdigit():
            out[name] = min(int(upper), out.get(name, int(upper)))
    return dict(sorted(out.items()))


def _onnx_bytes(graph: Graph, program, args: tuple, opset: int | None, names: dict[str, str],
                torch) -> tuple[bytes, int]:  # fmt: skip
    """The dynamo exporter's translation of the traced program, weights inside, its inputs and
    outputs named after the spec's and its dynamic dimensions after the spec's symbols; and
    the file's opset."""
    input_names = [graph.node(n).name for n in graph.inputs]
    output_names = [name for name, _ in graph.eval_outputs()]  # an export is of eval mode
    with _quiet():
        try:
            onnx_program = torch.onnx.export(program, args, dynamo=True, external_data=False,
                                             opset_version=opset, input_names=input_names,
                                             output_names=output_names, verbose=False)  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - as in _trace
            raise _failed(graph, "the ONNX exporter", exc, ()) from None
    proto = onnx_program.model_proto
    _rename_dims(proto, names)
    if proto.ByteSize() > _MAX_ONNX_BYTES:
        raise error("E0606", f"{graph.name} is {_size(proto.ByteSize())} as ONNX, over protobuf's limit of 2 GiB "
                    "for one file", None, "export it as --format pt2")  # fmt: skip
    default = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), opset)
    return proto.SerializeToString(), default


def _rename_dims(proto, names: dict[str, str]) -> None:
    """Rename torch's symbols in every shape of the graph (inputs, outputs, intermediate values,
    whose dimensions may be expressions such as `s77*2`)."""
    if not names:
        return
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, names)) + r")\b")
    g = proto.graph
    for info in (*g.input, *g.output, *g.value_info):
        for dim in info.type.tensor_type.shape.dim:
            if dim.HasField("dim_param"):
                dim.dim_param = pattern.sub(lambda m: names[m.group(1)], dim.dim_param)


def _pt2_bytes(program, torch) -> bytes:
    buffer = io.BytesIO()
    torch.export.save(program, buffer)
    return buffer.getvalue()


@contextlib.contextmanager
def _quiet():
    """The exporters' progress lines, warnings and log records (onnxscript's optimizer logs
    each constant it does not fold) are noise on modelc's output: kept off it."""
    import logging

    loggers = [logging.getLogger(name) for name in ("onnxscript", "torch.onnx", "torch.export", "torch._dynamo")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _failed(graph: Graph, who: str, exc: Exception, dynamic: tuple[str, ...]) -> SpecError:
    """E0606 with the first lines of the exporter's message (its tracebacks and its advice
    about torch internals are left out)."""
    lines = [line.rstrip() for line in str(exc).strip().splitlines() if line.strip()]
    text = " / ".join(lines[:3])[:600] or type(exc).__name__
    hint = ("a dimension in --dynamic may be constrained by the model: export it with fewer "
            "dynamic symbols, or pin sizes with --input" if dynamic else
            "the generated module may use something the exporter does not support; "
            "`modelc compile` shows its code")  # fmt: skip
    return error("E0606", f"{who} failed on {graph.name}: {type(exc).__name__}: {text}", None, hint)


def _size(n: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"
