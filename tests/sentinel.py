"""An oracle for code on import: generated files are imported in another process, under a sentinel.

Importing a generated file must only define classes. The worker (a separate, isolated Python:
`-I`, no site-packages) imports each file against inert stand-ins for `torch` and
`modelc.runtime`, with an audit hook (PEP 578) armed while the module body runs: any audited
event other than the one `exec` of the module's own code (opening a file, importing a module,
running a process, a socket, `compile`, `exec` of other code, ...) is blocked (the hook raises)
and fails the case, as does an exception. The file is compiled from its bytes, so the encoding Python detects is the one a
user's import would use. A worker that saw anything is replaced, so no state survives.

    with Sentinel() as s:
        assert s.check(path) == []
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["Sentinel", "check_import"]

_STUBS = {
    "torch/__init__.py": "class Tensor:\n    pass\n\n\nclass device:\n    pass\n\n\nfrom . import nn  # noqa\n",
    "torch/nn/__init__.py": "class Module:\n    pass\n",
    "modelc/__init__.py": "",
    "modelc/runtime/__init__.py": "",
}

_WORKER = r'''
import json, sys
sys.path.insert(0, sys.argv[1])
import torch, torch.nn, modelc.runtime  # the stand-ins, imported before the sentinel is armed
import types
armed = False
events = []
code = None
def hook(event, args):
    if armed and not (event == "exec" and args and args[0] is code):
        events.append([event, repr(args)[:300]])
        raise PermissionError(f"blocked at import: {event}")  # the action does not happen
sys.addaudithook(hook)
for line in sys.stdin:
    path = json.loads(line)
    events.clear()
    error = None
    try:
        with open(path, "rb") as f:
            data = f.read()
        code = compile(data, path, "exec", dont_inherit=True)
        module = types.ModuleType("generated")
        module.__file__ = path
        armed = True
        try:
            exec(code, module.__dict__)
        finally:
            armed = False
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
    found = list(events)
    if error:
        found.append(["exception", error])
    print(json.dumps(found), flush=True)
'''


class Sentinel:
    """A persistent sentinel worker; `check(path)` lists what ran at import (empty: nothing)."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="modelc-sentinel-")
        root = Path(self._dir.name)
        for rel, text in _STUBS.items():
            (root / "stubs" / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / "stubs" / rel).write_text(text)
        (root / "worker.py").write_text(_WORKER)
        self._root = root
        self._proc: subprocess.Popen | None = None

    def __enter__(self) -> Sentinel:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self._stop()
        self._dir.cleanup()

    def check(self, path: str | Path) -> list[list[str]]:
        if self._proc is None or self._proc.poll() is not None:
            self._start()
        self._proc.stdin.write(json.dumps(str(path)) + "\n")
        self._proc.stdin.flush()
        line = self._proc.stdout.readline()
        if not line:
            self._stop()
            return [["worker", "the sentinel worker died during the import"]]
        found = json.loads(line)
        if found:
            self._stop()  # whatever ran may have changed the worker: start a fresh one
        return found

    def check_source(self, source: str | bytes) -> list[list[str]]:
        data = source.encode("utf-8") if isinstance(source, str) else source
        path = self._root / "generated_case.py"
        path.write_bytes(data)
        return self.check(path)

    def _start(self) -> None:
        self._proc = subprocess.Popen(
            [sys.executable, "-I", "-S", str(self._root / "worker.py"), str(self._root / "stubs")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=self._root,
        )  # fmt: skip

    def _stop(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait()
            self._proc = None


def check_import(source: str | bytes) -> list[list[str]]:
    """One-off: what ran when `source` was imported (a fresh worker)."""
    with Sentinel() as s:
        return s.check_source(source)
