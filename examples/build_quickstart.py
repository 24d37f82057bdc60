"""Writes examples/quickstart.ipynb, the notebook of docs/notebooks.md, without outputs.

    .venv/bin/python examples/build_quickstart.py

The notebook is committed; tests/test_notebook.py checks that it is what this script writes
and runs it in a real kernel. Cell ids are fixed, so the file is the same on every run.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

PATH = Path(__file__).resolve().parent / "quickstart.ipynb"

TINY = '''model Tiny(hidden: int = 32) {
    input x: [B, 16]
    output x -> fc1: linear(hidden) -> relu -> fc2: linear(4)
}'''

CELLS = [
    ("markdown", "# modelc in a notebook\n\n"
     "A graph of a spec and a class loaded from it show as their diagram (drawn with Graphviz, "
     "when it is installed) and their summary table: the last expression of a cell is enough."),
    ("code", 'import modelc\n\nspec = "../specs/lenet5.model"\ngraph = modelc.graph(spec)\ngraph'),
    ("markdown", "The summary as text, as `modelc summary` prints it:"),
    ("code", "from modelc.summary import format_table, summarize\n\n"
     "print(format_table(summarize(graph, spec)))"),
    ("markdown", "`modelc.load` compiles the spec to an `nn.Module` class; run a batch through it:"),
    ("code", 'import torch\n\nLeNet5 = modelc.load(spec, num_classes=10)\n'
     "model = LeNet5().eval()\nwith torch.no_grad():\n    logits = model(torch.randn(4, 1, 32, 32))\n"
     "print(tuple(logits.shape))"),
    ("markdown", "The class shows its diagram and summary; an instance keeps PyTorch's own repr:"),
    ("code", "LeNet5"),
    ("code", "print(model)"),
    ("markdown", "A spec can also be written in the notebook itself (`modelc.load_source`):"),
    ("code", f'Tiny = modelc.load_source("""\n{TINY}\n""")\nTiny'),
]


def build() -> nbformat.NotebookNode:
    """The notebook, with fixed cell ids and no outputs."""
    nb = new_notebook(metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    })  # fmt: skip
    for i, (kind, text) in enumerate(CELLS, 1):
        make = new_code_cell if kind == "code" else new_markdown_cell
        nb.cells.append(make(text, id=f"cell-{i}"))
    return nb


def main() -> None:
    nb = build()
    nbformat.validate(nb)
    nbformat.write(nb, PATH)
    print(f"wrote {PATH}")


if __name__ == "__main__":
    main()
