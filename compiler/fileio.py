"""Writing output files (`compile -o`, `render -o`): atomically, and never over a spec.

A file is written to a temporary file in its folder, flushed to disk, then renamed
over the target, so a full disk or an interrupt leaves the old file (or none),
never a truncated one that still parses. A path that exists and is a device or a
FIFO (`-o /dev/null`, `-o /dev/stdout`) is a stream, written in place.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterable

from modelc.diagnostics import SpecError, error

__all__ = ["write_file"]


def write_file(path: str, data: bytes | str, inputs: Iterable[str] = ()) -> None:
    """Write `data` (str: as UTF-8) to `path`, creating its folders. `inputs` are the spec
    files the output comes from: writing over one of them (the same file, through a
    symbolic or hard link too) is E0601; the system refusing to write is E0604."""
    if isinstance(data, str):
        data = data.encode("utf-8")
    _refuse_inputs(path, inputs)
    target = os.path.realpath(path)  # a link stays a link: the file it names is replaced
    try:
        st = os.stat(target)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise _cannot_write(path, exc) from None
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise error("E0604", f"cannot write {path}: it is a directory", None,
                    "name a file in it, e.g. " + os.path.join(path, "model.py"))  # fmt: skip
    try:
        if st is not None and (stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode)):
            with open(target, "wb") as f:
                f.write(data)
            return
        os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
        _replace(target, data, st)
    except OSError as exc:
        raise _cannot_write(path, exc) from None


def _replace(target: str, data: bytes, old: os.stat_result | None) -> None:
    folder, name = os.path.split(target)
    temp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    # 0o666 as open() would use: the umask applies. An existing file keeps its mode.
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
                 | getattr(os, "O_BINARY", 0), 0o666)  # fmt: skip
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if old is not None and stat.S_ISREG(old.st_mode):
            os.chmod(temp, stat.S_IMODE(old.st_mode))
        os.replace(temp, target)
    except BaseException:  # a full disk, Ctrl-C: the target is as it was
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _refuse_inputs(path: str, inputs: Iterable[str]) -> None:
    try:
        out = os.stat(path)
    except (OSError, ValueError):
        return  # nothing there: it cannot be a spec
    for spec in inputs:
        try:
            st = os.stat(spec)
        except (OSError, ValueError):
            continue
        if (st.st_dev, st.st_ino) == (out.st_dev, out.st_ino):
            link = "" if os.path.abspath(spec) == os.path.abspath(path) else f" ({path} is that file)"
            stem, ext = os.path.splitext(path)
            other = stem + (".py" if ext in ("", ".model") else "_out" + ext)
            raise error("E0601", f"will not write the output over the spec {spec}{link}", None,
                        f"write it to another file, e.g. {other}")  # fmt: skip


def _cannot_write(path: str, exc: OSError) -> SpecError:
    reason = exc.strerror or str(exc)
    blocker = _file_in_the_way(path)
    if blocker is not None:
        reason = f"{blocker} is a file, not a directory"
    return error("E0604", f"cannot write {path}: {reason}", None)


def _file_in_the_way(path: str) -> str | None:
    """The first folder of `path` that exists and is not a folder (`-o spec.model/out.py`)."""
    parent = os.path.dirname(path)
    chain = []
    while parent and parent not in chain:
        chain.append(parent)
        parent = os.path.dirname(parent)
    for folder in reversed(chain):
        if os.path.exists(folder) and not os.path.isdir(folder):
            return folder
    return None
