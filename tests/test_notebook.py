"""Jupyter display (modelc.display): graphs and loaded classes show their diagram and summary.

The bundles are checked directly, through a real IPython display formatter, and end to end:
examples/quickstart.ipynb runs in an ipykernel of this interpreter (nbclient), and its saved
outputs must hold the SVG and the summary table of both the graph and the class.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import modelc
import pytest
from modelc import display
from modelc.summary import format_table, summarize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
LENET = str(ROOT / "specs" / "lenet5.model")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")

TINY = """model Tiny(hidden: int = 8) {
    input x: [B, 4]
    output x -> fc1: linear(hidden) -> relu -> fc2: linear(2)
}
"""


def table_of(graph) -> str:
    """The summary text, computed independently of modelc.display (as `modelc summary` does)."""
    return format_table(summarize(graph, graph.span.file))


# ---- the bundles ------------------------------------------------------------------------------
@needs_dot
def test_graph_bundle_has_diagram_summary_and_html():
    graph = modelc.graph(LENET)
    bundle = graph._repr_mimebundle_()
    assert bundle["text/plain"] == table_of(graph)
    assert bundle["text/plain"].startswith("LeNet5(num_classes=10)  [")
    svg = bundle["image/svg+xml"]
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>") and "conv1" in svg
    page = bundle["text/html"]
    assert svg in page and "<details>" in page and "parameters: 61,706" in page
    assert "fc1        linear 400-&gt;120" in page  # the table, escaped


def test_include_and_exclude_skip_the_drawing(monkeypatch):
    def no_drawing(graph):
        raise AssertionError("drew a diagram nobody asked for")

    monkeypatch.setattr(display, "_svg", no_drawing)
    graph = modelc.graph(LENET)
    assert set(graph._repr_mimebundle_(include=["text/plain"])) == {"text/plain"}
    assert set(graph._repr_mimebundle_(exclude=["image/svg+xml", "text/html"])) == {"text/plain"}


def test_without_graphviz_the_summary_still_shows(monkeypatch):
    import modelc.render

    monkeypatch.setattr(modelc.render, "dot_binary", lambda: None)
    graph = modelc.graph(LENET)
    bundle = graph._repr_mimebundle_()
    assert "image/svg+xml" not in bundle and "<svg" not in bundle["text/html"]
    assert bundle["text/plain"] == table_of(graph)


def test_a_failing_graphviz_does_not_break_the_display(monkeypatch):
    import modelc.render

    def broken(*args, **kwargs):
        raise modelc.CompilerBug("dot -Tsvg failed: segmentation fault")

    monkeypatch.setattr(modelc.render, "run_dot", broken)
    bundle = modelc.graph(LENET)._repr_mimebundle_()
    assert "image/svg+xml" not in bundle and "LeNet5" in bundle["text/plain"]


@needs_dot
def test_loaded_classes_have_bundles_and_nothing_else_does():
    pytest.importorskip("torch")
    cls = modelc.load_source(TINY, "tiny.model")
    bundle = display.class_bundle(cls)
    assert bundle["text/plain"] == table_of(cls.__modelc_graph__)
    assert "Tiny(hidden=8)  [tiny.model]" in bundle["text/plain"] and "<svg" in bundle["image/svg+xml"]
    assert display.class_bundle(dict) is None
    assert display.class_bundle(type("Tiny", (), {"__modelc_graph__": cls.__modelc_graph__})) is None


def test_instances_keep_torch_repr_and_pickle():
    torch = pytest.importorskip("torch")
    cls = modelc.load_source(TINY, "tiny.model")
    model = cls()
    text = repr(model)
    assert text.startswith("Tiny(") and "(fc1): Linear(in_features=4, out_features=8, bias=True)" in text
    assert not hasattr(model, "_repr_mimebundle_") and not hasattr(cls, "_repr_mimebundle_")
    state = pickle.loads(pickle.dumps(model.state_dict()))
    again = cls()
    again.load_state_dict(state)
    x = torch.randn(3, 4)
    assert torch.equal(model(x), again(x))


IN_IPYTHON = """
import json, modelc
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
cls = modelc.load(SPEC)  # registers the printers in the running shell
out = {name: shell.display_formatter.format(obj)[0] for name, obj in
       [("class", cls), ("dict", dict), ("instance", cls())]}
out["graph_text"] = modelc.display.graph_bundle(cls.__modelc_graph__)["text/plain"]
print(json.dumps(out))
"""


@needs_dot
def test_ipython_formats_loaded_classes_only(tmp_path):
    """In a real IPython shell (its own process: a shell changes the interpreter's hooks)."""
    pytest.importorskip("torch")
    pytest.importorskip("IPython")
    code = IN_IPYTHON.replace("SPEC", repr(LENET))
    env = {**os.environ, "IPYTHONDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout.splitlines()[-1])
    assert out["class"]["text/plain"] == out["graph_text"] and out["graph_text"].startswith("LeNet5(num_classes")
    assert out["class"]["image/svg+xml"].startswith("<svg") and "<svg" in out["class"]["text/html"]
    assert out["dict"] == {"text/plain": "dict"}
    assert set(out["instance"]) == {"text/plain"} and out["instance"]["text/plain"].startswith("LeNet5(\n  (conv1)")


# ---- the notebook -----------------------------------------------------------------------------
def _builder():
    spec = importlib.util.spec_from_file_location("build_quickstart", EXAMPLES / "build_quickstart.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_notebook_is_what_the_builder_writes():
    nbformat = pytest.importorskip("nbformat")
    committed = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    nbformat.validate(committed)
    assert committed == _builder().build(), "rerun: .venv/bin/python examples/build_quickstart.py"
    assert all(not c.get("outputs") for c in committed.cells), "commit the notebook without outputs"


def _kernel_manager(tmp_path: Path):
    """A kernel manager whose kernel runs this interpreter (a kernelspec in tmp_path), so the
    notebook sees the modelc under test, whatever `python3` kernel the machine has."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    spec_dir = tmp_path / "kernels" / "modelc-test"
    spec_dir.mkdir(parents=True)
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "modelc test", "language": "python"}  # fmt: skip
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    specs = KernelSpecManager(kernel_dirs=[str(tmp_path / "kernels")])
    return KernelManager(kernel_name="modelc-test", kernel_spec_manager=specs)


def _displays(cell) -> list[dict]:
    return [o["data"] for o in cell.outputs if o["output_type"] in ("execute_result", "display_data")]


def _stream(cell) -> str:
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream")


@needs_dot
def test_quickstart_notebook_runs_and_shows_diagrams_and_summaries(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    nbclient = pytest.importorskip("nbclient")
    nbformat = pytest.importorskip("nbformat")
    monkeypatch.setenv("IPYTHONDIR", str(tmp_path / "ipython"))  # no history in the user's home
    monkeypatch.setenv("JUPYTER_RUNTIME_DIR", str(tmp_path / "runtime"))
    nb = nbformat.read(EXAMPLES / "quickstart.ipynb", as_version=4)
    client = nbclient.NotebookClient(nb, km=_kernel_manager(tmp_path), timeout=120,
                                     resources={"metadata": {"path": str(EXAMPLES)}})  # fmt: skip
    client.execute()
    cells = {c.id: c for c in nb.cells}
    lenet = table_of(modelc.graph(LENET)).replace(LENET, "../specs/lenet5.model")
    for cell_id in ("cell-2", "cell-8"):  # the graph, then the class
        (data,) = _displays(cells[cell_id])
        assert data["text/plain"] == lenet
        assert data["image/svg+xml"].startswith("<svg") and "conv1" in data["image/svg+xml"]
        assert "<svg" in data["text/html"] and "parameters: 61,706" in data["text/html"]
    assert _stream(cells["cell-4"]).rstrip("\n") == lenet
    assert _stream(cells["cell-6"]) == "(4, 10)\n"
    assert _stream(cells["cell-9"]).startswith("LeNet5(\n  (conv1): Conv2d(1, 6, kernel_size=(5, 5)")
    (tiny,) = _displays(cells["cell-11"])
    assert tiny["text/plain"].startswith("Tiny(hidden=32)") and "<svg" in tiny["image/svg+xml"]
