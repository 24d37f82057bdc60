"""Progress bars for long work (the zoo run, `modelc bench`, `modelc import`, the fuzz campaign).

One place decides whether a bar is drawn: only when standard error is a terminal, so logs,
pipes, CI and tests stay clean; `MODELC_PROGRESS=1` forces bars on and `=0` off. tqdm is
imported only when a bar is really drawn.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

__all__ = ["enabled", "note", "progress"]

T = TypeVar("T")


def enabled() -> bool:
    """Whether bars are drawn: MODELC_PROGRESS=1/0 decides, else whether stderr is a terminal."""
    forced = os.environ.get("MODELC_PROGRESS", "")
    if forced in ("0", "1"):
        return forced == "1"
    return sys.stderr.isatty()


def progress(items: Iterable[T], desc: str, total: int | None = None, unit: str = "it") -> Iterator[T]:
    """`items` one by one, with a bar on standard error while they are consumed (when enabled)."""
    if not enabled():
        yield from items
        return
    from tqdm import tqdm

    bar = tqdm(items, desc=desc, total=total, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True)
    try:
        yield from bar
    finally:
        bar.close()


def note(text: str, file=None) -> None:
    """Print a line (to `file`, default standard output) without breaking a bar being drawn:
    tqdm clears the bar, prints, and draws it again below."""
    file = file if file is not None else sys.stdout
    if not enabled():
        print(text, file=file, flush=True)
        return
    from tqdm import tqdm

    tqdm.write(text, file=file)
    file.flush()
