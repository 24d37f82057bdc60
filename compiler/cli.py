"""The `modelc` command line.

    modelc check SPEC                   parse, elaborate, infer shapes
    modelc summary SPEC [--json]        per-layer table: shapes, parameters, MACs
    modelc compile SPEC [-o OUT.py]     emit a PyTorch module (--verify runs it)
    modelc render SPEC -o OUT.svg       draw it (.svg/.png/.pdf/.dot; --level, --diff B.model)
    modelc bench SPEC [--reference R]   time the module against a reference, in one run (torch)
    modelc export SPEC -o OUT.onnx      the model with its weights as ONNX or .pt2 (--dynamic B,T)
    modelc ops                          list the ops and their attributes
    modelc lsp                          the language server, on stdio (docs/editors.md)
    modelc import MODULE -o NET.model   a spec of a PyTorch module (torchvision:resnet50, file.py:Net)

Exit status: 0 success, 1 errors in the spec (or in an option's value), 2 bad command
line, 3 internal error (a bug in modelc), 130 interrupted (Ctrl-C). Errors print as
`file:line:col: error[CODE]: message` with the source line and a caret, never as a
Python traceback (unless --traceback is given).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import traceback
from typing import Any

from modelc import ops
from modelc.builtins import MAX_INT
from modelc.diagnostics import CompilerBug, SpecError, error, printable
from modelc.driver import build_all
from modelc.load import Program, load_file

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    args.loaded = []  # the spec files read, which an output must not overwrite
    try:
        return args.run(args)
    except SpecError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # Ctrl-C: what was being written is left as it was (fileio)
        print("modelc: interrupted", file=sys.stderr)
        return 130  # what a shell reports for a program killed by SIGINT (128 + 2)
    except BrokenPipeError:  # `modelc summary ... | head` stopped reading: not a bug
        # Python flushes stdout again at exit; send that to devnull so it cannot fail.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141  # what a shell reports for a writer killed by SIGPIPE (128 + 13)
    except (CompilerBug, Exception) as exc:  # noqa: BLE001 - the last line of defence
        if getattr(args, "traceback", False):
            traceback.print_exc()
        kind = "compiler bug" if isinstance(exc, CompilerBug) else f"{type(exc).__name__}"
        print(f"modelc: internal error ({kind}): {printable(str(exc))}", file=sys.stderr)
        print("modelc: this is a bug in modelc, not in your spec; rerun with --traceback and report it",
              file=sys.stderr)  # fmt: skip
        return 3


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="modelc", description="Compile .model specs to checked graphs and PyTorch modules.",
        epilog="`modelc COMMAND --help` lists a command's options; the commands that read a spec take "
               "--traceback, which prints Python's traceback on an internal error (for a bug report). "
               "Exit status: 0 success, 1 errors in the spec or an option's value, 2 bad command line, "
               "3 internal error, 130 interrupted. Documentation: docs/cli.md.")  # fmt: skip
    p.add_argument("--version", action="version", version=f"modelc {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def spec_command(name: str, help: str, run) -> argparse.ArgumentParser:
        c = sub.add_parser(name, help=help, description=help)
        c.add_argument("spec", help="a .model file")
        c.add_argument("--model", help="which model, when the file defines several")
        c.add_argument("--param", action="append", default=[], metavar="K=V",
                       help="set a model parameter (repeatable), e.g. --param num_classes=10")
        c.add_argument("--input", action="append", default=[], metavar="NAME=D1,D2,...",
                       help="override an input shape, e.g. --input image=1,3,32,32 (symbols allowed)")
        c.add_argument("-O", dest="optimize", type=int, choices=(0, 1, 2), default=0, metavar="LEVEL",
                       help="optimize: -O1 exact rewrites, an inference module (BatchNorm folded, "
                            "dropout dropped, activations in place); -O2 also fused attention; default -O0")
        c.add_argument("--explain", action="store_true",
                       help="with -O: print what each pass rewrote or refused, and why, to standard error")
        c.add_argument("--rewrite", action="append", default=[], metavar="NAME",
                       help="apply a rewrite that changes the function, e.g. separable (docs/optimizer.md)")
        c.add_argument("--traceback", action="store_true",
                       help="on an internal error, print Python's traceback (for a bug report)")
        c.set_defaults(run=run)
        return c

    spec_command("check", "Parse, elaborate and shape-check a spec.", _check)
    s = spec_command("summary", "Print per-layer shapes, parameters and MACs.", _summary)
    s.add_argument("--json", action="store_true", help="print a JSON object instead of a table")
    c = spec_command("compile", "Emit a PyTorch nn.Module.", _compile)
    c.add_argument("-o", "--output", help="write here instead of standard output")
    c.add_argument("--verify", action="store_true",
                   help="import the result, run a random batch, check shapes and parameter count")
    c.add_argument("--standalone", action="store_true",
                   help="copy the modelc.runtime helpers the module uses into the file: it needs only torch")
    r = spec_command("render", "Draw the architecture with Graphviz: .svg, .png, .pdf or .dot.", _render)
    r.add_argument("other", nargs="?", metavar="SPEC_B", help="with --diff: the spec to compare with")
    r.add_argument("-o", "--output", help="FILE.svg, .png, .pdf or .dot (default: DOT on standard output)")
    zoom = r.add_mutually_exclusive_group()
    zoom.add_argument("--level", choices=("model", "stage", "block", "op"),
                      help="zoom level, following the spec's structure (default: stage)")
    zoom.add_argument("--depth", type=int, metavar="N", help="open containers up to N levels deep")
    r.add_argument("--direction", choices=("TB", "LR"), default="TB", help="top-to-bottom or left-to-right")
    r.add_argument("--no-fold", action="store_true", help="draw every copy of a repeated block")
    r.add_argument("--diff", action="store_true",
                   help="draw SPEC and SPEC_B (or SPEC under --param-b) side by side, differences marked")
    r.add_argument("--param-b", action="append", default=[], metavar="K=V",
                   help="with --diff: a parameter of the B side (repeatable)")
    b = spec_command("bench", "Time the compiled module against a reference, side by side in one run "
                     "(needs torch).", _bench)  # fmt: skip
    b.add_argument("--reference", metavar="REF",
                   help="torchvision:NAME, module:PATH:CLASS (a .py file or a module; built with no "
                        "arguments), or O0/O1/O2 (the spec at that level); weights are shared and "
                        "outputs compared first")
    b.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
    b.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32")
    b.add_argument("--batch", type=int, metavar="N", help="the batch size (default 2; --input pins others)")
    b.add_argument("--compile", action="store_true", help="torch.compile both modules (inductor)")
    b.add_argument("--channels-last", action="store_true", help="both modules and 4-D inputs in channels_last")
    b.add_argument("--reps", type=int, default=10, metavar="N", help="timed runs of each module (default 10)")
    b.add_argument("--warmup", type=int, default=3, metavar="N", help="untimed runs first (default 3)")
    b.add_argument("--threads", type=int, metavar="N", help="torch.set_num_threads(N) on the CPU")
    b.add_argument("--no-memory", action="store_true",
                   help="skip the peak-memory measurement (on the CPU a child process per module)")
    b.add_argument("--peak-tflops", type=float, metavar="X",
                   help="the device's dense peak for the dtype, for MFU (default: a table of known GPUs)")
    b.add_argument("--json", action="store_true", help="print the report as JSON")
    e = spec_command("export", "Export the model, weights included, as ONNX (the dynamo exporter) or a "
                     "torch.export .pt2 file (needs torch; ONNX also onnx and onnxscript).", _export)  # fmt: skip
    e.add_argument("--format", choices=("onnx", "pt2"), help="default: from the suffix of -o (.onnx or .pt2)")
    e.add_argument("-o", "--output", required=True, metavar="FILE", help="the file to write")
    e.add_argument("--dynamic", default="", metavar="B,T",
                   help="symbols of the inputs that stay dynamic (others are fixed to the example's sizes)")
    e.add_argument("--opset", type=int, metavar="N", help="ONNX opset (18 or later; default: torch's)")
    o = sub.add_parser("ops", help="List the ops with their attributes.",
                       description="List the ops a spec can use: each op's attributes with their "
                       "defaults, its diagram family and what it computes (docs/language.md).")
    o.add_argument("--json", action="store_true",
                   help="print a JSON object: op name -> family, doc, inputs and attributes")
    o.set_defaults(run=_ops)
    lsp = sub.add_parser("lsp", help="Run the language server on standard input and output.",
                         description="The Language Server Protocol server for .model files, for an "
                         "editor to start (docs/editors.md); needs the lsp extra (pygls).")  # fmt: skip
    lsp.set_defaults(run=_lsp)
    im = sub.add_parser("import", help="Write a .model spec of an existing PyTorch nn.Module (torch).",
                        description="Trace a PyTorch module and write it as a .model spec whose compiled "
                        "module has the same state_dict keys (docs/import.md).")  # fmt: skip
    im.add_argument("module", metavar="MODULE", help="torchvision:NAME, package.module:Class or file.py:Class")
    im.add_argument("-o", "--output", help="write here instead of standard output")
    im.add_argument("--input", action="append", default=[], metavar="NAME=D1,D2,...",
                    help="an example input's shape (repeatable; default for torchvision: x=1,3,224,224)")
    im.add_argument("--name", help="the model's name (default: the class name)")
    im.add_argument("--arg", action="append", default=[], metavar="K=V",
                    help="a constructor keyword, a Python literal (repeatable), e.g. --arg num_classes=10")
    im.add_argument("--traceback", action="store_true", help="on an internal error, print Python's traceback")
    im.set_defaults(run=_import)
    return p


# ---- commands -----------------------------------------------------------------------------
def _graphs(args) -> tuple[Program, list]:
    program = load_file(args.spec)
    args.loaded.extend([program.path, *sorted(program.imported)])
    params = _params(program, args)
    inputs = dict(_input(text) for text in args.input)
    explained: list = []
    graphs = build_all(program, args.model, params, inputs, getattr(args, "optimize", 0),
                       tuple(getattr(args, "rewrite", ())), explained)  # fmt: skip
    if getattr(args, "explain", False):
        from modelc.passes.explain import explain

        if not explained:
            print("modelc: note: --explain: no pass ran (give -O1, -O2 or --rewrite)", file=sys.stderr)
        for before, done in explained:
            print(explain(before, done), file=sys.stderr)
    if not hasattr(args, "warned"):
        args.warned = set()  # shared by the copies of args that render --diff builds B with
    for text in dict.fromkeys(w.render() for g in graphs for w in g.warnings):
        if text not in args.warned:
            args.warned.add(text)
            print(text, file=sys.stderr)
    return program, graphs


def _check(args) -> int:
    _, graphs = _graphs(args)
    for g in graphs:
        total = g.num_params()
        print(f"{printable(args.spec)}: ok: {g.name}: {len(g)} nodes, {total:,} parameters")
    return 0


def _summary(args) -> int:
    from modelc.summary import format_table, summarize

    _, graphs = _graphs(args)
    summaries = [summarize(g, args.spec) for g in graphs]
    if args.json:
        out = summaries[0] if len(summaries) == 1 else {"models": summaries}
        print(json.dumps(out, indent=2))
    else:
        print("\n\n".join(format_table(s) for s in summaries))
    return 0


def _compile(args) -> int:
    from modelc.emit import emit

    _, graphs = _graphs(args)
    source = emit(graphs, args.spec)
    if args.standalone:
        from modelc.standalone import inline_runtime

        source = inline_runtime(source)
    if args.output:
        from modelc.fileio import write_file

        write_file(args.output, source, args.loaded)
    else:
        sys.stdout.write(source)
    if args.verify:
        _verify(graphs, source, args)
    return 0


def _verify(graphs, source: str, args) -> None:
    from modelc.driver import exec_source, require_torch
    from modelc.verify import env_text, verify_module

    require_torch("--verify", f"{printable(args.output)} was written" if args.output
                  else "the module was written to standard output")  # fmt: skip
    module = exec_source(source, args.spec)
    for g in graphs:
        result = verify_module(getattr(module, g.name), g)
        print(f"{printable(args.spec)}: verified {g.name} at {env_text(result['env']) or 'its fixed sizes'}: "
              f"{result['params']:,} parameters, {result['modules_checked']} module outputs and "
              f"{len(result['outputs'])} model output(s) match the IR", file=sys.stderr)  # fmt: skip
        for name in result["nonfinite"]:
            print(f"{printable(args.spec)}: warning: output '{name}' of {g.name} is not finite on a random batch; "
                  "check the attributes (a negative alpha, a zero eps, ...)", file=sys.stderr)  # fmt: skip


def _render(args) -> int:
    from modelc.render import diff_dot, link_for, output_format, render_dot, write

    if args.depth is not None and args.depth < 0:
        raise error("E0601", f"--depth {args.depth}: expected a number >= 0", None)
    if args.output:
        output_format(args.output)  # a bad file name fails before any work
    _, graphs = _graphs(args)
    opts = {"level": args.level, "depth": args.depth, "direction": args.direction,
            "link": link_for(args.output)}  # fmt: skip
    if args.diff or args.other:
        a, b, names = _diff_pair(args, graphs)
        rendered = diff_dot(a, b, names=names, **opts)
    else:
        rendered = render_dot(graphs, fold=False if args.no_fold else None, **opts)
    notes = list(rendered.notes)
    if args.output:
        notes += write(rendered, args.output, args.loaded)
    else:
        sys.stdout.write(rendered.dot)
    for note in notes:
        print(f"modelc: note: {printable(note)}", file=sys.stderr)
    return 0


def _bench(args) -> int:
    from modelc.driver import require_torch

    require_torch("modelc bench")
    from modelc.bench import Options, bench, format_report

    if args.batch is not None and args.batch < 1:
        raise error("E0601", f"--batch {args.batch}: expected a positive number", None)
    program, _ = _graphs(args)  # checks the spec and the options first, and prints --explain
    opts = Options(spec=args.spec, model=args.model, params=_params(program, args),
                   inputs=dict(_input(text) for text in args.input), optimize=args.optimize,
                   rewrites=tuple(args.rewrite), reference=args.reference, device=args.device,
                   dtype=args.dtype, batch=args.batch, compile=args.compile,
                   channels_last=args.channels_last, reps=args.reps, warmup=args.warmup,
                   memory=not args.no_memory, threads=args.threads, progress=not args.json,
                   peak_tflops=args.peak_tflops)  # fmt: skip
    report = bench(opts)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def _export(args) -> int:
    from modelc.export import export_graph

    _, graphs = _graphs(args)  # checks the spec and the options first, and prints --explain
    if len(graphs) != 1:
        raise error("E0606", f"{args.spec} defines {len(graphs)} models: a file holds one", None,
                    "pick one with --model NAME")  # fmt: skip
    done = export_graph(graphs[0], args.spec, args.format, args.output, dynamic=tuple(args.dynamic.split(",")),
                        opset=args.opset, loaded=args.loaded)  # fmt: skip
    print(printable(done.describe(args.spec)))
    return 0


def _diff_pair(args, graphs: list) -> tuple:
    """The A and B graphs of `render --diff`: SPEC against SPEC_B, or SPEC under --param-b, or
    (with -O1/-O2 and neither) SPEC as written against SPEC optimized."""
    if not args.diff:
        raise error("E0601", f"two specs given ({args.spec}, {args.other})", None,
                    "add --diff to compare them")  # fmt: skip
    if not args.other and not args.param_b and (args.optimize or args.rewrite):
        _, written = _graphs(argparse.Namespace(**{**vars(args), "optimize": 0, "rewrite": [], "explain": False}))
        if len(graphs) != 1:
            raise error("E0601", "--diff compares one model with another", None, "pick one with --model")
        return written[0], graphs[0], ("-O0", f"-O{args.optimize}" if args.optimize else "rewritten")
    if not args.other and not args.param_b:
        raise error("E0601", "--diff needs a second spec, --param-b K=V, or -O1/-O2", None)
    params = ([] if args.other else args.param) + args.param_b
    _, graphs_b = _graphs(argparse.Namespace(**{**vars(args), "spec": args.other or args.spec,
                                                "param": params}))  # fmt: skip
    if len(graphs) != 1 or len(graphs_b) != 1:
        raise error("E0601", "--diff compares one model with another", None, "pick one with --model")
    return graphs[0], graphs_b[0], ("A", "B")


def _lsp(args) -> int:
    try:
        import pygls  # noqa: F401
    except ImportError:
        raise error("E0601", "modelc lsp needs pygls", None, 'pip install "modelc[lsp]"') from None
    from modelc.lsp import serve

    return serve()


def _ops(args) -> int:
    entries = {name: op for name, op in sorted(ops.REGISTRY.items()) if not op.internal}
    if args.json:
        data = {name: {"family": op.family, "doc": op.doc, "inputs": op.inputs,
                       "attrs": [{"name": a.name, "kind": a.kind, "aliases": list(a.aliases),
                                  "default": None if a.default is ops.base.REQUIRED else a.default}
                                 for a in op.attrs]}
                for name, op in entries.items()}  # fmt: skip
        print(json.dumps(data, indent=2, default=str))
        return 0
    for name, op in entries.items():
        attrs = ", ".join(a.name + ("" if a.default is ops.base.REQUIRED else f"={_show(a.default)}")
                          for a in op.attrs)  # fmt: skip
        print(f"{name}({attrs})  [{op.family}]\n    {op.doc}")
    return 0


def _import(args) -> int:
    from modelc.importer.command import run

    return run(args)


# ---- command-line values ----------------------------------------------------------------------
def _params(program: Program, args) -> dict[str, Any]:
    decls = {}
    names = [args.model] if args.model else program.main_models
    for m in names:
        if m in program.models:
            decls.update({p.name: p for p in program.models[m].params})
    out = {}
    for text in args.param:
        key, sep, value = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise error("E0601", f"--param {text!r}: expected NAME=VALUE", None)
        if key not in decls:
            from modelc.ops.base import suggest

            raise error("E0601", f"--param {key}: no such model parameter", None,
                        suggest(key, decls) or f"parameters: {', '.join(decls) or 'none'}")  # fmt: skip
        out[key] = _value(key, value.strip(), decls[key].types)
    return out


# Numbers on the command line are ASCII, as in a spec: Python's int() and float() would also
# take '²', '٣', '1_000', 'nan' and 'inf'.
_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_SYMBOL = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _value(key: str, text: str, types: tuple[str, ...]) -> Any:
    """The value of `--param key=text` for a parameter of `types` (several for a union, tried
    as int, float, bool, list, then str: `3` is an int and `3,5` a list for `int | list`)."""
    shown = text if len(text) <= 40 else text[:37] + "..."
    if "int" in types and _INT.fullmatch(text):
        return _int(key, text, shown)
    if "float" in types and _FLOAT.fullmatch(text):
        value = float(text)
        if not math.isfinite(value):
            raise error("E0601", f"--param {key}={shown}: expected a finite number", None)
        return value
    if "bool" in types and text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "list" in types and all(_INT.fullmatch(x.strip()) for x in text.split(",") if x.strip()):
        return [_int(key, x.strip(), shown) for x in text.split(",") if x.strip()]
    if "str" in types or not set(types) <= {"int", "float", "bool", "list"}:  # (an unknown type is the spec's error)
        return text
    if types == ("float",):
        raise error("E0601", f"--param {key}={shown}: expected a finite number (a float)", None)
    raise error("E0601", f"--param {key}={shown}: expected a value of type {' | '.join(types)}", None)


def _int(key: str, text: str, shown: str) -> int:
    if len(text.lstrip("+-")) > 19 or abs(int(text)) > MAX_INT:
        raise error("E0601", f"--param {key}={shown}: integers are limited to {MAX_INT}", None)
    return int(text)


def _input(text: str) -> tuple[str, tuple]:
    name, sep, dims = text.partition("=")
    if not sep or not name.strip() or not dims.strip():
        raise error("E0601", f"--input {text!r}: expected NAME=D1,D2,... e.g. image=1,3,224,224", None)
    out: list[int | str] = []
    for d in dims.split(","):
        d = d.strip()
        if re.fullmatch(r"[0-9]{1,19}", d) and int(d) > 0:
            out.append(int(d))
        elif _SYMBOL.fullmatch(d):
            out.append(d)
        else:
            raise error("E0601", f"--input {text!r}: {d!r} is not a positive integer or a symbol", None)
    return name.strip(), tuple(out)


def _show(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return f'"{v}"'
    return str(v)


def _version() -> str:
    from modelc import __version__

    return __version__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
