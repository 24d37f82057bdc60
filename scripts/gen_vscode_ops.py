"""Rewrite the VS Code grammar's op list (repository.ops.match) from the op registry.

    python scripts/gen_vscode_ops.py          # rewrite in place
tests/test_vscode.py checks that the list equals the registry's public ops.
"""

from __future__ import annotations

import re
from pathlib import Path

from modelc import ops

GRAMMAR = Path(__file__).resolve().parents[1] / "editors/vscode/syntaxes/modelc.tmLanguage.json"


def main() -> None:
    names = sorted(name for name, op in ops.REGISTRY.items() if not op.internal)
    match = "\\\\b(?:" + "|".join(names) + ")\\\\b"
    text = GRAMMAR.read_text()
    # the conflict markers of a merge, if any, go with the old list
    text = re.sub(r"<<<<<<< [^\n]*\n(.*?)=======\n.*?>>>>>>> [^\n]*\n", r"\1", text, flags=re.S)
    ops_at = text.index('"ops": {')
    start = text.index('"match": "', ops_at) + len('"match": "')
    end = text.index('",\n', start)
    GRAMMAR.write_text(text[:start] + match + text[end:])


if __name__ == "__main__":
    main()
