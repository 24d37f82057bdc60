"""`modelc lsp`: a Language Server Protocol server for .model specs (stdio, pygls 2).

The editor-independent work lives in plain modules that never import pygls, so it can be
tested and reused without it:

- :mod:`modelc.lsp.analysis` checks a buffer's text (not the file on disk) and turns the
  compiler's diagnostics into positioned problems;
- :mod:`modelc.lsp.navigate` answers hover and go-to-definition from an analysis;
- :mod:`modelc.lsp.outline` answers completion and document symbols;
- :mod:`modelc.lsp.server` wires these to pygls (imported only by :func:`serve`).

Positions inside these modules are the compiler's: 1-based lines and columns counted in
characters (code points), as in :class:`modelc.diagnostics.Span`; the server converts
them to and from the protocol's 0-based UTF-16 positions.
"""

from __future__ import annotations

__all__ = ["serve"]


def serve() -> int:
    """Run the server on standard input and output until the client says exit."""
    from modelc.lsp.server import serve as _serve

    return _serve()
