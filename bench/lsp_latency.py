"""How long `modelc lsp` takes to re-check ResNet-152 as it is edited.

    .venv/bin/python bench/lsp_latency.py              # 40 edits
    .venv/bin/python bench/lsp_latency.py --edits 100 --debounce-ms 0

Starts the real server (`python -m modelc.cli lsp`) over stdio with pygls's client,
opens specs/resnet152.model, then makes single-character edits in turn: the model's
`num_classes` default changes (the whole model is checked again), and a `batchnorm`
becomes `batchnrom` and back (one error published, then cleared). Each edit is timed
from sending didChange to receiving its publishDiagnostics, one edit at a time, so
the figure includes the server's debounce (MODELC_LSP_DEBOUNCE_MS, default 20 ms;
--debounce-ms sets it) and the JSON-RPC round trip. Prints the median and 90th
percentile in ms, and exits 1 when the median is 100 ms or more.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types as T
from pygls.lsp.client import LanguageClient

SPEC = Path(__file__).resolve().parent.parent / "specs" / "resnet152.model"


def variants(text: str) -> list[tuple[str, bool]]:
    """(text, whether it has an error), cycled through by the edits."""
    typo = text.replace("bn3: batchnorm", "bn3: batchnrom", 1)
    bigger = text.replace("num_classes: int = 1000", "num_classes: int = 1001", 1)
    return [(bigger, False), (text, False), (typo, True), (text, False)]


async def run(edits: int, debounce_ms: int | None) -> list[tuple[bool, float]]:
    client = LanguageClient("lsp-latency", "1")
    published: asyncio.Queue = asyncio.Queue()

    @client.feature(T.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def on_diagnostics(params: T.PublishDiagnosticsParams) -> None:
        published.put_nowait((time.perf_counter(), params))

    env = dict(os.environ)
    if debounce_ms is not None:
        env["MODELC_LSP_DEBOUNCE_MS"] = str(debounce_ms)
    await client.start_io(sys.executable, "-m", "modelc.cli", "lsp", env=env)
    await client.initialize_async(T.InitializeParams(capabilities=T.ClientCapabilities()))
    client.initialized(T.InitializedParams())
    text, uri = SPEC.read_text(encoding="utf-8"), SPEC.as_uri()
    client.text_document_did_open(T.DidOpenTextDocumentParams(T.TextDocumentItem(uri=uri, language_id="modelc", version=1, text=text)))
    await asyncio.wait_for(published.get(), 60)  # the first check: parser tables, imports
    times = []
    cycle = variants(text)
    for i in range(edits):
        new, broken = cycle[i % len(cycle)]
        start = time.perf_counter()
        client.text_document_did_change(T.DidChangeTextDocumentParams(
            T.VersionedTextDocumentIdentifier(version=i + 2, uri=uri), [T.TextDocumentContentChangeWholeDocument(text=new)]))  # fmt: skip
        when, params = await asyncio.wait_for(published.get(), 30)
        if params.version != i + 2 or bool(params.diagnostics) != broken:
            raise SystemExit(f"edit {i}: unexpected diagnostics {params}")
        times.append((broken, (when - start) * 1000))
    await client.shutdown_async(None)
    client.exit(None)
    await client.stop()
    return times


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--edits", type=int, default=40)
    p.add_argument("--debounce-ms", type=int, help="the server's debounce (default: its own, 20 ms)")
    args = p.parse_args()
    results = asyncio.run(run(args.edits, args.debounce_ms))
    times = [ms for _, ms in results]
    print(f"resnet152.model, {len(times)} edits, didChange -> publishDiagnostics: {_stats(times)}")
    print(f"  edits that leave it valid (the whole model re-checked): {_stats([ms for b, ms in results if not b])}")
    print(f"  edits that make the typo (one error published): {_stats([ms for b, ms in results if b])}")
    return 0 if statistics.median(times) < 100 else 1


def _stats(times: list[float]) -> str:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return (f"median {statistics.median(times):.1f} ms, p90 {p90:.1f} ms, "
            f"min {ordered[0]:.1f} ms, max {ordered[-1]:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
