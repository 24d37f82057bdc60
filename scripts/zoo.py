"""The zoo run (scripts/zoo.sh): check, summarise, compile, verify and draw every spec.

    .venv/bin/python scripts/zoo.py                            # specs/*.model into build/zoo/
    .venv/bin/python scripts/zoo.py specs/gan.model --out /tmp/zoo

Each spec goes through the `modelc` command line, in this process (torch is imported once,
not once per spec): `summary` into NAME.summary.txt, `compile --verify` into NAME.py (the
module is run on a random batch), `render` into NAME.svg. Then one line per model says its
name and arguments, and two more its parameters and MACs, each starting with the model's
name: a file with several models (gan, cgan, autoencoders) shows which numbers are whose.

On a terminal a bar counts the specs (modelc.progress; MODELC_PROGRESS=1/0 forces it on or
off); what each spec prints goes above the bar, and is the same with or without it.
Exit status: 0 when every spec passed, 1 when some failed (listed at the end), 130 on Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import sys
from pathlib import Path

from modelc import cli
from modelc.progress import note, progress

ROOT = Path(__file__).resolve().parent.parent

# Specs whose default configuration is too large to run here (Llama 3 8B: 32 GB of float32
# weights; Mixtral 8x7B: 187 GB) are compiled at it, and verified at a small configuration of the same
# architecture (NAME.run.py). The tests that run every spec use these sizes too
# (tests/conftest.py reads this table).
RUN_PARAMS: dict[str, dict] = {
    "llama3": {"vocab": 512, "d": 128, "hidden": 256, "layers": 2, "heads": 4, "kv_heads": 2},
    "mixtral": {"vocab": 512, "d": 128, "hidden": 192, "layers": 2, "heads": 4, "kv_heads": 2},
}


def _modelc(argv: list[str], err: io.StringIO, stdout_path: Path | None = None) -> int:
    """`modelc ARGV` in this process, its standard error into `err` (shown above the bar
    later) and its standard output into `stdout_path` when given."""
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.redirect_stderr(err))
        if stdout_path is not None:
            out = stack.enter_context(open(stdout_path, "w", encoding="utf-8"))
            stack.enter_context(contextlib.redirect_stdout(out))
        return cli.main(argv)


def run_spec(spec: str, out: Path) -> tuple[bool, list[str], str]:
    """(whether every step passed, the lines naming each model, what the steps said on
    standard error). Ctrl-C in a step stops the whole run."""
    name = Path(spec).stem
    summary = out / f"{name}.summary.txt"
    compile_ = ["compile", spec, "-o", str(out / f"{name}.py")]
    if name in RUN_PARAMS:
        small = [a for k, v in RUN_PARAMS[name].items() for a in ("--param", f"{k}={v}")]
        compile_ = [compile_, ["compile", spec, "-o", str(out / f"{name}.run.py"), "--verify", *small]]
    else:
        compile_ = [[*compile_, "--verify"]]
    steps = [(["summary", spec], summary), *((argv, None) for argv in compile_),
             (["render", spec, "-o", str(out / f"{name}.svg")], None)]  # fmt: skip
    err = io.StringIO()
    if name in RUN_PARAMS:
        config = ", ".join(f"{k}={v}" for k, v in RUN_PARAMS[name].items())
        print(f"{spec}: too large to run here; compiled at its defaults, verified at {config} ({name}.run.py)",
              file=err)  # fmt: skip
    for argv, stdout_path in steps:
        status = _modelc(argv, err, stdout_path)
        if status == 130:
            raise KeyboardInterrupt
        if status != 0:
            return False, [], err.getvalue()
    return True, model_lines(summary.read_text(encoding="utf-8")), err.getvalue()


def model_lines(summary: str) -> list[str]:
    """From `modelc summary` tables (one per model, blank-line separated): each model's
    header line, then its parameters and MACs lines prefixed with its name."""
    lines = []
    for table in summary.strip().split("\n\n"):
        rows = table.splitlines()
        model = rows[0].split("(", 1)[0].split()[0]
        lines.append(rows[0])
        lines += [f"{model}: {row}" for row in rows if row.startswith(("parameters", "MACs"))]
    return lines


def default_specs() -> list[str]:
    """specs/*.model, sorted, as paths relative to the working directory when under it."""
    found = sorted((ROOT / "specs").glob("*.model"))
    cwd = Path.cwd()
    return [str(p.relative_to(cwd)) if p.is_relative_to(cwd) else str(p) for p in found]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("specs", nargs="*", metavar="SPEC", help="the specs to run (default: specs/*.model)")
    p.add_argument("--out", default="build/zoo", help="where the outputs go (default: build/zoo)")
    args = p.parse_args(argv)
    specs = args.specs or default_specs()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    failed = []
    try:
        for spec in progress(specs, desc="zoo", total=len(specs), unit="spec"):
            note(f"==> {spec}")
            ok, lines, said = run_spec(spec, out)
            if said.strip():
                note(said.rstrip("\n"), file=sys.stderr)
            for line in lines:
                note(line)
            if not ok:
                failed.append(spec)
    except KeyboardInterrupt:
        print("zoo: interrupted", file=sys.stderr)
        return 130
    print(f"\ngenerated modules (.py), summaries (.summary.txt) and diagrams (.svg) are in {out}/")
    if failed:
        print(f"FAILED: {' '.join(failed)}", file=sys.stderr)
        return 1
    print(f"all {len(specs)} specs checked, compiled, verified and drawn")
    return 0


if __name__ == "__main__":
    sys.exit(main())
