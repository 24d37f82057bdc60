"""Oracles and case makers shared by tests/test_fuzz.py and bench/fuzz.py.

Each oracle checks a property with something independent of the code under test: Python's own
tokenizer, compiler and an isolated import (bytes), the registry's reference interpreter
(`modelc.verify.verify_module`, values), the class names Python binds (several models), the
source Python's `linecache` serves for a class (repeated loads), and the text of files the
error must not echo (imports). Each raises AssertionError with a one-line reason first.
"""

from __future__ import annotations

import io
import linecache
import os
import random
import re
import tokenize

import modelc
from modelc.diagnostics import SpecError

__all__ = [
    "check_bytes", "check_models", "check_reloads", "growth_texts", "import_cases", "line_break_case",
    "with_second_model", "LINE_BREAKS", "CONTROLS",
]  # fmt: skip

# Every Unicode line break (what `str.splitlines` splits on), and other control characters.
LINE_BREAKS = ["\n", "\r\n", "\r", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029"]
CONTROLS = ["\x00", "\x07", "\x08", "\x1b", "\x1b[2J", "\x7f", "\x9b", "\u202e", "\u2066", "\ufeff", "\t"]


# ---- bytes: the generated file as Python reads it ----------------------------------------------
def check_bytes(source: str, sentinel=None) -> bytes:
    """Pure ASCII; UTF-8 declared on line 1 and detected by Python's tokenizer; compiles from its
    bytes; and (with a tests/sentinel.Sentinel) imports without running anything."""
    try:
        data = source.encode("ascii")
    except UnicodeEncodeError as exc:
        raise AssertionError(f"bytes: non-ASCII character at {exc.start}") from None
    encoding, lines = tokenize.detect_encoding(io.BytesIO(data).readline)
    if encoding != "utf-8" or not lines or b"coding: utf-8" not in lines[0]:
        raise AssertionError(f"bytes: Python reads the file as {encoding}, declared {lines[:1]}")
    compile(data, "generated.py", "exec", dont_inherit=True)  # SyntaxError: the case fails
    if sentinel is not None:
        found = sentinel.check_source(data)
        if found:
            raise AssertionError(f"bytes: something ran at import: {found[:3]}")
    return data


# ---- several models in one file ---------------------------------------------------------------
def with_second_model(r: random.Random, text: str, model: str, source: str) -> tuple[str, list[str]] | None:
    """`text` with a copy of its model named like one of the generated block classes or a near
    miss (`Unit`, `Unit_1`, `Unit_2`), so class names collide; None if no name is free."""
    start = text.find(f"model {model}")
    end = text.find("\n}", start)
    if start < 0 or end < 0:
        return None
    classes = re.findall(r"^class (\w+)\(nn\.Module\)", source, re.M)
    defined = set(re.findall(r"^(?:block|model)\s+(\w+)", text, re.M)) | set(re.findall(r"^(\w+)\s*=", text, re.M))
    candidates = [c for c in classes if c != model] + [f"{c}_{k}" for c in classes for k in (1, 2, 3)]
    candidates = [c for c in candidates if c not in defined and not c.startswith("_")]
    if not candidates:
        return None
    name = r.choice(candidates)
    copy = text[start:end + 2].replace(f"model {model}", f"model {name}", 1)
    return text + "\n" + copy + "\n", [model, name]


def check_models(text: str, names: list[str], path: str = "gen.model", run: bool = False) -> None:
    """Every model of a file loads as the class of its own name with its own parameter count
    (and, with `run`, computes what the IR interpreter computes)."""
    from modelc.driver import build_all
    from modelc.load import load_text

    program = load_text(text, path)
    source = modelc.compile_source(text, path)
    for name in names:
        graph = build_all(program, name)[0]
        if f"\nclass {name}(nn.Module):" not in source:
            raise AssertionError(f"models: no class named {name} in the generated file")
        cls = modelc.load_source(text, path, model=name)
        if cls.__name__ != name:
            raise AssertionError(f"models: load(model={name!r}) returned class {cls.__name__}")
        count = sum(p.numel() for p in cls().parameters())
        if count != graph.num_params():
            raise AssertionError(f"models: {name} has {count:,} parameters, its IR {graph.num_params():,}")
        if run:
            _verify(cls, graph)


# ---- repeated loads of one path ----------------------------------------------------------------
def check_reloads(text: str, overrides: list[dict], path: str = "gen.model", run: bool = False) -> int:
    """Load `path` once per parameter set; every class keeps its own source (what inspect,
    tracebacks and torch.jit read through linecache) and, with `run`, its own function. Returns
    how many loads compiled."""
    from modelc.driver import build_all
    from modelc.load import load_text

    loaded = []
    for params in overrides:
        try:
            cls = modelc.load_source(text, path, **params)
        except SpecError:
            continue
        loaded.append((cls, params))
    for cls, params in loaded:
        filename = cls.forward.__code__.co_filename
        served = "".join(linecache.getlines(filename))
        if served != cls.__modelc_source__:
            raise AssertionError(f"reload: the source served for {cls.__name__}{params} is another load's")
        if run:
            _verify(cls, build_all(load_text(text, path), None, params)[0])
    return len(loaded)


def _verify(cls, graph) -> None:
    """verify_module (shapes, counts, and values against the IR interpreter) where it can run."""
    import warnings

    import fuzzgen
    from modelc.verify import verify_module

    if graph.num_params() > 10_000_000 or not fuzzgen.runnable(graph):
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            verify_module(cls, graph)
        except SpecError as exc:
            if exc.diagnostics[0].code != "E0603":
                raise


# ---- line breaks and control characters ---------------------------------------------------------
def line_break_case(r: random.Random, text: str) -> tuple[str, str, int]:
    """(variant, reference, line): `text` with a comment ended by a random line break, or a
    control character, put at the end of a random line; the reference ends it with LF. The
    lexer must read the variant as a person's editor shows it: the same code as the reference,
    or a located error on that line."""
    lines = text.split("\n")
    i = r.randrange(len(lines))
    brk = r.choice(LINE_BREAKS + CONTROLS)
    if brk == "\r" and i + 1 < len(lines) and not lines[i + 1]:
        brk = "\r\n"  # a CR before the next line's LF is one CRLF, as an editor shows it
    comment = r.choice(["# note", "# projection", "#", "# x = y"])
    variant = "\n".join(lines[:i] + [lines[i] + "  " + comment + brk + lines[i + 1]] + lines[i + 2:]) \
        if i + 1 < len(lines) else text + comment + brk
    reference = "\n".join(lines[:i] + [lines[i] + "  " + comment, lines[i + 1]] + lines[i + 2:]) \
        if i + 1 < len(lines) else text + comment + "\n"
    if brk in CONTROLS:  # not a line break: the comment swallows the rest of the line
        reference = "\n".join(lines[:i] + [lines[i] + "  " + comment] + lines[i + 2:]) \
            if i + 1 < len(lines) else text + comment + "\n"
    return variant, reference, i + 1


# ---- growth and imports ----------------------------------------------------------------------
def growth_texts(r: random.Random) -> list[tuple[str, str]]:
    """Tiny specs whose values grow exponentially: each must end quickly in a SpecError."""
    n = r.randint(20, 40)

    def lines(start: str, op: str) -> str:
        body = "\n".join(f"    s = {op}" for _ in range(n))
        return f"model M {{\n    input x: [B, 8]\n    s = {start}\n{body}\n    output x\n}}"

    return [
        ("square sum", lines("B + 1", "s * s")),
        ("square symbol", lines("B", "s * s")),
        ("square mixed", lines("B * 2 + B // 3 + 7", "s * s + s")),
        ("double list", lines("[1]", "s + s")),
        ("nest list", lines("[1]", "[s, s]")),
        ("list product", "model M { input x: [B, 1, 8, 8]  r = [0.0] * 1000000  w = [r] * 1000000\n"
                         "  output x -> conv(1, k=3, weight=[[w]]) }"),
        ("shape growth", "model M {\n  input x: [B, C, L]\n" + "\n".join(
            ["  x = concat(x -> maxpool(2), x -> maxpool(3), dim=2)"] * n) + "\n  output x\n}"),
    ]


def import_cases(tmp: str) -> list[tuple[str, str, list[str]]]:
    """(name, spec text, secrets): specs importing files that are not specs, or not regular
    files. Each must end quickly in a SpecError whose text holds none of the secrets (the
    imported file's contents)."""
    fifo = os.path.join(tmp, "pipe.model")
    if not os.path.exists(fifo):
        try:
            os.mkfifo(fifo)
        except (OSError, AttributeError):
            fifo = "/dev/null"
    secrets_env = [v for k, v in os.environ.items() if len(v) >= 8 and k not in ("PWD", "OLDPWD", "HOME")][:5]
    passwd = []
    try:
        with open("/etc/passwd", encoding="utf-8", errors="replace") as f:
            passwd = [line.strip() for line in f if line.strip()][:5]
    except OSError:
        pass
    tail = "\nmodel M { input x: [B, 3]  output x }"
    return [
        ("fifo", f'import "{fifo}"{tail}', []),
        ("stdin", f'import "/dev/stdin"{tail}', []),
        ("tty", f'import "/dev/tty"{tail}', []),
        ("dir", f'import "{tmp}"{tail}', []),
        ("passwd", f'import "/etc/passwd"{tail}', passwd),
        ("environ", f'import "/proc/self/environ"{tail}', secrets_env),
        ("cmdline", f'import "/proc/self/cmdline"{tail}', []),
    ]
