"""A long fuzzing campaign: generated valid specs and mutated ones, plain `random`, no shrinking.

    .venv/bin/python bench/fuzz.py                                  # 20,000 cases
    .venv/bin/python bench/fuzz.py --cases 100000 --seed 7 --minutes 120
    .venv/bin/python bench/fuzz.py --replay /tmp/modelc-fuzz-failures/7-123-mutant.model

Each case is drawn from `random.Random(f"{seed}:{index}")`, so `--seed S --start I --cases 1`
reruns case I alone. Kinds (tests/fuzzgen.py makes them):
- valid   a generated spec: it must check, compile to code that `ast.parse`s, have the output
          shapes and parameter count the generator predicted, and compile to the same bytes
          twice; every --verify-every-th also runs in torch (`modelc.verify.verify_module`);
- mutant  a zoo spec (specs/*.model) or a generated one after 1-5 random edits: success or
          SpecError, nothing else; a mutant of a generated spec that compiles must also run in
          torch as the IR predicts (a run whose output overflows to inf counts as "nonfinite";
          one too large to run, or with a size <= 0 at verify's sizes for symbols, as "not run");
- hostile deep nesting, huge numbers, long lines, odd bytes: success or SpecError;
- cli     a mutant (sometimes with raw bytes, not UTF-8) written to a file and checked with
          `modelc.cli.main(["check", path])`: exit status 0 or 1, no "Traceback".

Cases run in a worker process, one at a time; a case that runs past --timeout seconds is a
hang: the worker is killed and replaced. Every failure (an exception other than SpecError, a
wrong prediction, a hang, a crashed worker) is printed and saved with its traceback under
--out (default /tmp/modelc-fuzz-failures). The summary counts cases by kind and outcome,
SpecError codes, failures by signature, and the speed. Exit status 1 if anything failed.
On a terminal a bar counts the cases (modelc.progress, MODELC_PROGRESS=1/0 forces it on or
off); without one, a progress line is printed every --progress seconds.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import io
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import time
import traceback
from pathlib import Path

from modelc import progress as bars

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

KINDS = {"valid": 0.36, "mutant": 0.42, "hostile": 0.05, "cli": 0.06, "models": 0.04, "reload": 0.03,
         "lines": 0.04}  # fmt: skip


# ---- making cases (in the parent, so a hang's input is known) -----------------------------------
def make_case(seed: int, index: int, verify_every: int) -> dict:
    import fuzzgen

    r = random.Random(f"{seed}:{index}")
    kind = r.choices(list(KINDS), list(KINDS.values()))[0]
    case = {"kind": kind, "index": index, "path": "fuzz.model"}
    if kind == "valid":
        spec = fuzzgen.generate(r)
        case.update(text=spec.text, outputs=spec.outputs, params=spec.params, model=spec.model, symbols=spec.symbols,
                    verify=verify_every > 0 and index % verify_every == 0)  # fmt: skip
    elif kind == "hostile":
        import oracles

        pick = r.random()
        if pick < 0.2:  # imports of files that are not specs: built in the worker, which has the folder
            case.update(text="", name="import", imported=r.randrange(len(oracles.import_cases("/nonexistent"))))
        else:
            family = oracles.growth_texts(r) if pick < 0.4 else fuzzgen.hostile_texts(r.choice([100, 1000, 3000, 10000]))
            name, text = r.choice(family)
            case.update(text=text, name=name)
    elif kind in ("models", "reload"):
        spec = fuzzgen.generate(r, size=r.choice([3, 6, 10]))
        case.update(text=spec.text, model=spec.model, verify=verify_every > 0 and index % verify_every == 0,
                    seed=f"{seed}:{index}:{kind}")  # fmt: skip
    elif kind == "lines":
        import oracles

        variant, reference, line = oracles.line_break_case(r, fuzzgen.generate(r, size=r.choice([3, 6])).text)
        case.update(text=variant, reference=reference, line=line)
    else:
        path, text = _seed_text(r, fuzzgen)
        text = fuzzgen.mutate(r, text)
        case.update(text=text, path=path, verify=path == "gen.model" and kind == "mutant")
        if kind == "cli":
            data = text.encode("utf-8", "surrogatepass")
            if r.random() < 0.3:  # raw bytes: invalid UTF-8, NULs, a BOM
                at = r.randrange(len(data) + 1)
                noise = bytes(r.randrange(256) for _ in range(r.randint(1, 16)))
                data = data[:at] + r.choice([noise, b"\xef\xbb\xbf", b"\x00", b"\xff\xfe"]) + data[at:]
            case["data"] = data
    return case


_SEEDS: list | None = None


def _seed_text(r: random.Random, fuzzgen) -> tuple[str, str]:
    global _SEEDS
    if _SEEDS is None:
        _SEEDS = fuzzgen.seed_texts()
    if r.random() < 0.4:
        return "gen.model", fuzzgen.generate(r, size=r.choice([3, 6, 10])).text
    name, text = r.choice(_SEEDS)
    return str(ROOT / "specs" / name), text  # imports resolve next to the zoo spec


# ---- running cases (in the worker) ----------------------------------------------------------------
def run_case(case: dict, tmp: str) -> tuple[str, str]:
    """(outcome, detail): ok / spec:<code> / fail; detail is a traceback for failures."""
    import modelc
    from modelc.diagnostics import SpecError

    try:
        run = {"valid": _run_valid, "cli": _run_cli, "models": _run_models, "reload": _run_reload,
               "lines": _run_lines}.get(case["kind"])  # fmt: skip
        if run is not None:
            return run(case, tmp)
        if case.get("name") == "import":
            return _run_import(case, tmp)
        try:
            _check_bytes(modelc.compile_source(case["text"], case["path"]))
        except SpecError as exc:
            exc.render()
            return f"spec:{exc.diagnostics[0].code}", ""
        return _run_module(case["text"]) if case.get("verify") else ("ok", "")
    except BaseException as exc:  # noqa: BLE001 - everything else is a finding
        return "fail", _signature(exc) + "\n" + traceback.format_exc()


_SENTINEL = None


def _check_bytes(source: str) -> None:
    """The generated file as Python reads it: ASCII, UTF-8 by its cookie, compiles, and imports
    in the sentinel's process without running anything (tests/sentinel.py)."""
    global _SENTINEL
    import oracles
    import sentinel

    if _SENTINEL is None:
        _SENTINEL = sentinel.Sentinel()
    oracles.check_bytes(source, _SENTINEL)


def _run_models(case: dict, tmp: str) -> tuple[str, str]:
    """A copy of the model named like a generated block class: each model is its own class."""
    import modelc
    import oracles

    made = oracles.with_second_model(random.Random(case["seed"]), case["text"], case["model"],
                                     modelc.compile_source(case["text"], "gen.model"))  # fmt: skip
    if made is None:
        return "ok:skipped", ""
    text, names = made
    _check_bytes(modelc.compile_source(text, "gen.model"))
    oracles.check_models(text, names, run=case["verify"])
    return "ok:verified" if case["verify"] else "ok", ""


def _run_reload(case: dict, tmp: str) -> tuple[str, str]:
    """The spec loaded with each model parameter changed: every class keeps its own source."""
    import oracles
    from modelc.load import load_text

    r = random.Random(case["seed"])
    params = load_text(case["text"], "gen.model").models[case["model"]].params
    other = {"int": lambda: r.choice([1, 2, 3, 4, 8]), "bool": lambda: r.random() < 0.5,
             "float": lambda: r.choice([0.0, 0.5]), "str": lambda: r.choice(["none", "tanh"]),
             "list": lambda: [r.choice([4, 8])]}  # fmt: skip
    overrides = [{}] + [{p.name: other[p.type]()} for p in params if p.type in other]
    if len(overrides) == 1:
        return "ok:skipped", ""
    oracles.check_reloads(case["text"], overrides, run=case["verify"])
    return "ok:verified" if case["verify"] else "ok", ""


def _run_lines(case: dict, tmp: str) -> tuple[str, str]:
    """A comment ended by another line break (or a control character) reads as a person's editor
    shows it: the reference's code exactly, or an error located on that line."""
    import modelc
    from modelc.diagnostics import SpecError

    def outcome(text: str):
        try:
            return modelc.compile_source(text, "gen.model")
        except SpecError as exc:
            exc.render()
            return exc

    got, want = outcome(case["text"]), outcome(case["reference"])
    if isinstance(got, str):
        _check_bytes(got)
        if got != want:
            return "fail", "lines: the spec compiled to other code than the one a person reads"
        return "ok", ""
    d = got.diagnostics[0]
    if not isinstance(want, SpecError) and (d.span is None or d.span.line != case["line"]):
        return "fail", f"lines: refused away from the line break (line {case['line']}): {got.render()[:300]}"
    return f"spec:{d.code}", ""


def _run_import(case: dict, tmp: str) -> tuple[str, str]:
    """A spec importing a FIFO, a device, a folder or a file that is not a spec: a SpecError,
    quickly (a hang is caught by the timeout), that echoes none of the file's contents."""
    import modelc
    import oracles
    from modelc.diagnostics import SpecError

    name, text, secrets = oracles.import_cases(tmp)[case["imported"]]
    try:
        modelc.compile_source(text, os.path.join(tmp, "imports.model"))
    except SpecError as exc:
        shown = exc.render()
        leaked = [s for s in secrets if s in shown]
        if leaked:
            return "fail", f"import {name}: the error echoes the imported file: {leaked[0][:40]!r}"
        return f"spec:{exc.diagnostics[0].code}", ""
    return "fail", f"import {name}: compiled"


def _run_valid(case: dict, tmp: str = "") -> tuple[str, str]:
    import modelc
    from modelc.driver import build_all
    from modelc.load import load_text
    from modelc.symbolic import subs

    text, path = case["text"], "gen.model"
    graph = build_all(load_text(text, path))[0]
    source = modelc.compile_source(text, path)
    _check_bytes(source)
    symbols = case["symbols"]
    outs = [tuple(d if isinstance(d, int) else str(d) for d in (subs(d, symbols) for d in graph.type_of(r).dims))
            for _, r in graph.outputs]  # fmt: skip
    params = graph.num_params()
    if outs != [tuple(o) for o in case["outputs"]] or params != case["params"]:
        return "fail", f"prediction: outputs {outs} params {params}, expected {case['outputs']} {case['params']}"
    if modelc.compile_source(text, path) != source:
        return "fail", "nondeterministic: two compilations gave other bytes"
    return _run_module(text) if case.get("verify") else ("ok", "")


def _run_module(text: str) -> tuple[str, str]:
    """A spec that compiled must also run in torch as predicted (small shapes only)."""
    import warnings

    import fuzzgen
    import modelc
    from modelc.driver import build_all
    from modelc.load import load_text
    from modelc.verify import verify_module

    graph = build_all(load_text(text, "gen.model"))[0]
    if graph.num_params() > 10_000_000 or not fuzzgen.runnable(graph):
        return "ok:skipped", ""  # too large to run here, or too small at verify's sizes
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            result = verify_module(modelc.load_source(text, "gen.model"), graph)
        except modelc.SpecError as exc:  # E0603: valid, but more work than verify runs here
            if exc.diagnostics[0].code != "E0603":
                raise
            return "ok:skipped", ""
    if result.get("nonfinite"):  # a spec may overflow (scale(1e308)); not the compiler's fault
        return "ok:nonfinite", ""
    return "ok:verified", ""


def _run_cli(case: dict, tmp: str) -> tuple[str, str]:
    from modelc import cli

    path = os.path.join(tmp, os.path.basename(case["path"]))
    with open(path, "wb") as f:
        f.write(case["data"])
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        rc = cli.main(["check", path])
    out = buf.getvalue()
    if rc not in (0, 1) or "Traceback" in out:
        return "fail", f"cli: exit status {rc}\n{out[-4000:]}"
    return ("ok" if rc == 0 else "spec:" + _code(out)), ""


def _code(out: str) -> str:
    at = out.find("error[E")
    return out[at + 6 : at + 11] if at >= 0 else "E????"


def _signature(exc: BaseException) -> str:
    """`KeyError at compiler/emit.py:196`: the innermost frame in modelc's own code."""
    where = "?"
    for frame in traceback.extract_tb(exc.__traceback__):
        if "/compiler/" in frame.filename or "/runtime/" in frame.filename:
            where = f"{Path(frame.filename).parent.name}/{Path(frame.filename).name}:{frame.lineno}"
    return f"{type(exc).__name__} at {where}: {str(exc)[:160]}"


def worker(conn) -> None:
    import modelc  # noqa: F401 - import once, before the first case's clock starts

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops it
    signal.signal(signal.SIGTERM, signal.SIG_DFL)

    with tempfile.TemporaryDirectory(prefix="modelc-fuzz-") as tmp:
        while True:
            case = conn.recv()
            if case is None:
                return
            conn.send(run_case(case, tmp))


# ---- the campaign ----------------------------------------------------------------------------------
class Campaign:
    def __init__(self, args):
        self.args = args
        self.out = Path(args.out)
        self.counts: collections.Counter = collections.Counter()
        self.codes: collections.Counter = collections.Counter()
        self.failures: collections.Counter = collections.Counter()
        self.examples: dict[str, str] = {}
        self.ctx = mp.get_context("fork")
        self.proc = self.conn = None

    def start_worker(self) -> None:
        self.conn, child = self.ctx.Pipe()
        self.proc = self.ctx.Process(target=worker, args=(child,), daemon=True)
        self.proc.start()

    def stop_worker(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join()
        self.proc = None

    def run(self) -> int:
        args = self.args
        deadline = time.monotonic() + args.minutes * 60 if args.minutes else float("inf")
        start = time.monotonic()
        last = start
        self.start_worker()
        done = 0
        indices = range(args.start, args.start + args.cases)
        # A bar on a terminal (modelc.progress); in a log, a line every --progress seconds.
        lines = not bars.enabled()
        try:
            for index in bars.progress(indices, desc="fuzz", total=len(indices), unit="case"):
                if time.monotonic() > deadline:
                    break
                try:
                    case = make_case(args.seed, index, args.verify_every)
                except Exception as exc:  # noqa: BLE001 - a bug in tests/fuzzgen.py, not in modelc
                    case = {"kind": "valid", "index": index, "path": "-", "text": ""}
                    outcome, detail = "fail", f"generator: {_signature(exc)}\n{traceback.format_exc()}"
                else:
                    outcome, detail = self.one(case)
                self.record(case, outcome, detail)
                done += 1
                if lines and time.monotonic() - last > args.progress:
                    last = time.monotonic()
                    self.progress(done, last - start)
        except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the case in flight is dropped, not counted
            print("interrupted", flush=True)
        self.stop_worker()
        self.summary(done, time.monotonic() - start)
        return 1 if self.failures else 0

    def one(self, case: dict) -> tuple[str, str]:
        if self.proc is None or not self.proc.is_alive():
            self.start_worker()
        limit = self.args.timeout * (3 if case.get("verify") else 1)
        try:
            self.conn.send(case)
            if self.conn.poll(limit):
                return self.conn.recv()
            self.stop_worker()
            return "fail", f"hang: no result after {limit} s"
        except (EOFError, OSError, BrokenPipeError):
            code = self.proc.exitcode if self.proc else None
            self.stop_worker()
            return "fail", f"worker died (exit code {code}): a crash or exhausted memory"

    def record(self, case: dict, outcome: str, detail: str) -> None:
        kind = case["kind"]
        self.counts[(kind, outcome.split(":")[0])] += 1
        if outcome in ("ok:verified", "ok:nonfinite", "ok:skipped"):
            self.counts[(kind, outcome[3:])] += 1
        if outcome.startswith("spec:"):
            self.codes[outcome[5:]] += 1
        if outcome != "fail":
            return
        signature = detail.splitlines()[0][:200]
        self.failures[signature] += 1
        self.out.mkdir(parents=True, exist_ok=True)
        stem = self.out / f"{self.args.seed}-{case['index']}-{kind}"
        data = case.get("data") or case["text"].encode("utf-8", "surrogatepass")
        stem.with_suffix(".model").write_bytes(data)
        stem.with_suffix(".txt").write_text(f"seed {self.args.seed} case {case['index']} kind {kind} "
                                            f"path {case['path']}\n\n{detail}\n", encoding="utf-8")  # fmt: skip
        self.examples.setdefault(signature, str(stem.with_suffix(".model")))
        if self.failures[signature] == 1:
            bars.note(f"FAIL case {case['index']} ({kind}): {signature}\n  saved {stem}.model")  # above the bar

    def progress(self, done: int, elapsed: float) -> None:
        fails = sum(self.failures.values())
        print(f"... {done:,} cases, {fails} failures, {done / elapsed:.1f} cases/s", flush=True)

    def summary(self, done: int, elapsed: float) -> None:
        a = self.args
        print(f"\nmodelc fuzz: seed {a.seed}, cases {a.start:,}..{a.start + done - 1:,}, "
              f"{elapsed / 60:.1f} min, {done / max(elapsed, 1e-9):.1f} cases/s")  # fmt: skip
        print(f"{'kind':<8} {'cases':>8} {'ok':>8} {'SpecError':>10} {'failed':>7} {'ran':>7} {'nonfinite':>9} "
              f"{'not run':>7}")  # fmt: skip
        for kind in KINDS:
            c = {o: self.counts[(kind, o)] for o in ("ok", "spec", "fail", "verified", "nonfinite", "skipped")}
            total = c["ok"] + c["spec"] + c["fail"]
            print(f"{kind:<8} {total:>8,} {c['ok']:>8,} {c['spec']:>10,} {c['fail']:>7,} {c['verified']:>7,} "
                  f"{c['nonfinite']:>9,} {c['skipped']:>7,}")  # fmt: skip
        print("SpecError by code: " + (", ".join(f"{k} {v:,}" for k, v in sorted(self.codes.items())) or "none"))
        if not self.failures:
            print("failures: none")
            return
        print(f"failures: {sum(self.failures.values())} in {len(self.failures)} signature(s)")
        for sig, n in self.failures.most_common():
            print(f"  {n:>5}  {sig}\n         e.g. {self.examples[sig]}")


def replay(path: str, spec_path: str) -> int:
    """Run one saved input through compile_source, torch (when it compiles) and the CLI, with
    full tracebacks."""
    import modelc
    from modelc import cli

    data = Path(path).read_bytes()
    try:
        text = data.decode("utf-8")
        modelc.compile_source(text, spec_path)
        print("compile_source: ok; running it in torch:", _run_module(text)[0])
    except modelc.SpecError as exc:
        print(f"compile_source: SpecError\n{exc.render()}")
    except UnicodeDecodeError:
        print("compile_source: not UTF-8 (the CLI path below reads bytes)")
    return cli.main(["check", path, "--traceback"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cases", type=int, default=20_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0, help="index of the first case")
    p.add_argument("--minutes", type=float, default=0, help="stop after this long (0: no limit)")
    p.add_argument("--timeout", type=float, default=60, help="seconds per case before it is a hang")
    p.add_argument("--verify-every", type=int, default=5, help="run every N-th valid case in torch (0: never)")
    p.add_argument("--progress", type=float, default=60, help="seconds between progress lines (when no bar is drawn: not a terminal)")
    p.add_argument("--out", default=os.path.join(tempfile.gettempdir(), "modelc-fuzz-failures"))
    p.add_argument("--replay", metavar="FILE", help="rerun one saved input and exit")
    p.add_argument("--replay-path", default="fuzz.model", help="the spec path to compile a replay under")
    args = p.parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill PID` still prints the summary
    if args.replay:
        return replay(args.replay, args.replay_path)
    return Campaign(args).run()


if __name__ == "__main__":
    sys.exit(main())
