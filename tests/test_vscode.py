"""The VS Code extension in editors/vscode/ (a grammar and a language configuration, no code).

- Its word lists are the compiler's: the ops equal the registry's (what `modelc ops --json`
  lists), the keywords and element types those of grammar/modelc.lark, the parameter types and
  builtin functions those the elaborator accepts. A new op or keyword fails here until the
  grammar knows it.
- The grammar's unit tests (tests/unit/*.model, vscode-tmgrammar-test's caret format) and
  snapshot tests (tests/snap/*.model, copies of zoo specs, against the committed .snap files)
  pass, and a wrong assertion does fail (so a passing run means something).
- The unit-test files are real specs: modelc accepts them (but invalid.model, which it must
  reject), so the highlighting is tested on the language as it is.
- `vsce package` builds a .vsix holding the grammar and the configuration.

The npm tools (devDependencies with a committed package-lock.json) are installed by
scripts/setup.sh, or by `npm ci` here when missing; only a machine without node/npm skips.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import zipfile
from importlib import resources
from pathlib import Path

import pytest
from modelc import builtins, ops
from modelc.cli import main
from modelc.diagnostics import SpecError
from modelc.driver import build_all
from modelc.elaborate.blocks import _PARAM_TYPES
from modelc.load import load_file

EXT = Path(__file__).resolve().parent.parent / "editors" / "vscode"
GRAMMAR = EXT / "syntaxes" / "modelc.tmLanguage.json"
UNIT = sorted((EXT / "tests" / "unit").glob("*.model"))
# `\b(?:a|b|c)\b` or `\b(a|b)\b`: the word lists of the grammar's rules.
ALTERNATION = re.compile(r"\\b\((?:\?:)?([a-z][a-z0-9_]*(?:\|[a-z][a-z0-9_]*)*)\)\\b")
NO_NODE = "needs node and npm (the grammar tests are npm tools); CI has them"


def _repository() -> dict:
    return json.loads(GRAMMAR.read_text())["repository"]


def _words(rule: dict) -> set[str]:
    """Every word in the alternations of a rule and the rules nested in it."""
    out: set[str] = set()
    for key in ("match", "begin"):
        for group in ALTERNATION.findall(rule.get(key, "")):
            out.update(group.split("|"))
    for sub in rule.get("patterns", []):
        out |= _words(sub)
    return out


def _lark_words() -> tuple[set[str], set[str]]:
    """The keywords of grammar/modelc.lark, and its element types (the DTYPE terminal)."""
    text = (resources.files("modelc.grammar") / "modelc.lark").read_text()
    text = re.sub(r"//[^\n]*", "", text)  # comments quote words too
    dtype_line = next(line for line in text.splitlines() if line.startswith("DTYPE"))
    rest = text.replace(dtype_line, "")
    word = r'"([a-z][a-z0-9]*)"'
    return set(re.findall(word, rest)), set(re.findall(word, dtype_line))


def test_manifest_and_configuration() -> None:
    manifest = json.loads((EXT / "package.json").read_text())
    config = json.loads((EXT / "language-configuration.json").read_text())
    grammar = json.loads(GRAMMAR.read_text())
    assert (manifest["name"], manifest["publisher"]) == ("modelc-language", "modelc")
    assert manifest["engines"]["vscode"].startswith("^1.")
    (language,) = manifest["contributes"]["languages"]
    assert language["id"] == "modelc" and language["extensions"] == [".model"]
    assert (EXT / language["configuration"]).is_file()
    (contributed,) = manifest["contributes"]["grammars"]
    assert contributed["language"] == "modelc"
    assert contributed["scopeName"] == grammar["scopeName"] == "source.modelc"
    assert (EXT / contributed["path"]).resolve() == GRAMMAR
    assert {"@vscode/vsce", "vscode-tmgrammar-test"} <= set(manifest["devDependencies"])
    lock = json.loads((EXT / "package-lock.json").read_text())
    assert set(lock["packages"][""]["devDependencies"]) == set(manifest["devDependencies"])
    for name in ("README.md", "LICENSE", "CHANGELOG.md"):
        assert (EXT / name).is_file(), name
    # The comment token is the lexer's, and the patterns (JavaScript regexes, written in the
    # subset Python shares) do what they are for.
    assert config["comments"] == {"lineComment": "#"}
    assert re.search(r"COMMENT: /#\[", (resources.files("modelc.grammar") / "modelc.lark").read_text())
    assert sorted(map(tuple, config["brackets"])) == [("(", ")"), ("[", "]"), ("{", "}")]
    indent = re.compile(config["indentationRules"]["increaseIndentPattern"])
    assert indent.match("block ConvBN(width: int) {") and indent.match("model M(   # params")
    assert not indent.match("x = y -> relu   # a { in a comment")
    assert re.match(config["indentationRules"]["decreaseIndentPattern"], "    }")
    word = re.compile(config["wordPattern"])
    assert [m.group() for m in word.finditer("conv_transpose(x, 1e-12)")] == ["conv_transpose", "x", "1e-12"]


def test_ops_are_the_registry(capsys: pytest.CaptureFixture[str]) -> None:
    # One list of ops (rules include it), so the one checked here is the one used.
    assert GRAMMAR.read_text().count('"support.function.op.modelc"') == 1
    highlighted = _words(_repository()["ops"])
    assert main(["ops", "--json"]) == 0
    listed = set(json.loads(capsys.readouterr().out))
    public = {name for name, op in ops.REGISTRY.items() if not op.internal}
    assert listed == public
    assert highlighted == public, (
        f"editors/vscode/syntaxes/modelc.tmLanguage.json, repository.ops: "
        f"add {sorted(public - highlighted)}, remove {sorted(highlighted - public)}"
    )


def test_keywords_and_types_are_the_compilers() -> None:
    repo = _repository()
    keywords, dtypes = _lark_words()
    assert {"model", "block", "repeat", "prefix", "true"} <= keywords  # the parse is sound
    assert _words(repo["keywords"]) == keywords
    assert _words(repo["dtypes"]) == dtypes
    assert _words(repo["types"]) == set(_PARAM_TYPES)
    assert _words(repo["builtins"]) == set(builtins.BUILTINS)


@pytest.mark.parametrize("path", UNIT, ids=lambda p: p.name)
def test_unit_files_are_real_specs(path: Path) -> None:
    if path.name == "invalid.model":
        with pytest.raises(SpecError):
            build_all(load_file(str(path)))
        return
    program = load_file(str(path))
    if program.models:
        assert build_all(program)


def _npm_tools() -> None:
    """Skips without node/npm; installs the locked devDependencies when they are missing."""
    if not (shutil.which("node") and shutil.which("npm") and shutil.which("npx")):
        pytest.skip(NO_NODE)
    if not (EXT / "node_modules" / ".bin" / "vscode-tmgrammar-snap").exists():
        done = _run(["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error"], timeout=300)
        if done.returncode:
            pytest.fail(f"`npm ci` in {EXT} failed (scripts/setup.sh runs it):\n{done.stderr}")


def _run(cmd: list[str], timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=EXT, capture_output=True, text=True, timeout=timeout, check=False)


def test_grammar_unit_tests() -> None:
    _npm_tools()
    done = _run(["npx", "--no", "--", "vscode-tmgrammar-test", "--compact", "tests/unit/*.model"])
    assert done.returncode == 0, done.stdout + done.stderr
    assert len(UNIT) >= 5 and done.stdout.count("run successfuly") == len(UNIT), done.stdout


def test_grammar_tests_can_fail(tmp_path: Path) -> None:
    """A wrong assertion, and a snapshot that differs from the grammar's tokens, fail."""
    _npm_tools()
    wrong = tmp_path / "wrong.model"
    wrong.write_text('# SYNTAX TEST "source.modelc"\nmodel M {\n# <----- keyword.control.loop.modelc\n}\n')
    done = _run(["npx", "--no", "--", "vscode-tmgrammar-test", "--compact", str(wrong)])
    assert done.returncode != 0 and "actual scopes: [source.modelc storage.type.model.modelc]" in done.stdout
    spec = EXT / "tests" / "snap" / "lenet5.model"
    shutil.copy(spec, tmp_path / spec.name)
    snap = Path(f"{spec}.snap").read_text()
    assert "support.function.op.modelc" in snap
    (tmp_path / f"{spec.name}.snap").write_text(snap.replace("function.op.", "function.builtin.", 1))
    done = _run(["npx", "--no", "--", "vscode-tmgrammar-snap", str(tmp_path / spec.name)])
    assert done.returncode != 0 and "support.function.builtin.modelc" in done.stdout, done.stdout


def test_grammar_snapshots() -> None:
    _npm_tools()
    specs = sorted((EXT / "tests" / "snap").glob("*.model"))
    assert len(specs) >= 3 and all(Path(f"{p}.snap").is_file() for p in specs)
    done = _run(["npx", "--no", "--", "vscode-tmgrammar-snap", "tests/snap/*.model"])
    assert done.returncode == 0, done.stdout + done.stderr


def test_vsce_package(tmp_path: Path) -> None:
    _npm_tools()
    if not (EXT / "node_modules" / ".bin" / "vsce").exists():
        pytest.skip("@vscode/vsce is not installed in editors/vscode/node_modules")
    vsix = tmp_path / "modelc-language.vsix"
    done = _run(["npx", "--no", "--", "vsce", "package", "--allow-missing-repository", "--out", str(vsix)])
    assert done.returncode == 0, done.stdout + done.stderr
    with zipfile.ZipFile(vsix) as z:
        names = set(z.namelist())
        assert z.read("extension/syntaxes/modelc.tmLanguage.json") == GRAMMAR.read_bytes()
        assert json.loads(z.read("extension/package.json"))["name"] == "modelc-language"
    assert "extension/language-configuration.json" in names
    assert not any("node_modules" in n or "/tests/" in n for n in names), sorted(names)
