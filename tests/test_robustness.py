"""Hostile and unusual input: what a line is, files that are not specs, outputs that cannot
be written, terminal control characters, Ctrl-C. Every case ends in a located diagnostic
(or one line) and exit status 0, 1, 2 or 130, never a traceback, a hang or exit 3."""

from __future__ import annotations

import contextlib
import errno
import io
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import modelc
import pytest
from modelc import fileio
from modelc.cli import main
from modelc.diagnostics import SourceFile, Span, SpecError, error, printable

SPEC = """\
model M {
    input x: [B, 8]
    output x -> linear(4)
}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run_cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            status = main(list(argv))
        except SystemExit as exc:  # argparse
            status = exc.code
    assert "Traceback" not in out.getvalue() + err.getvalue()
    return status, out.getvalue(), err.getvalue()


def check(where: Path, data: str | bytes, name: str = "example.model", *args: str):
    path = where / name
    if isinstance(data, str):
        data = data.encode("utf-8")
    path.write_bytes(data)
    return run_cli("check", name, *args)


# ---- 1. what a line is ----------------------------------------------------------------------
CR_COMMENT = "model M {\n    input x: [B, 8]\n    y = x -> fc: linear(4)   # projection%s    y = y -> relu\n    output y\n}\n"


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_comment_ends_at_every_line_break_an_editor_shows(eol, workdir):
    graph = modelc.graph(str(_write(workdir, CR_COMMENT % eol)))
    ops = [graph.node(n).op for n in graph.nodes()]
    assert ops == ["input", "linear", "relu"]  # the statement after the comment counts


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_line_numbers_follow_the_same_lines(eol, workdir):
    text = eol.join(["model M {", "    input x: [B, 8]   # a comment", "    output x -> relu(2)", "}", ""])
    status, _, err = check(workdir, text)
    assert status == 1
    assert err.splitlines()[:4] == [
        "example.model:3:22: error[E0405]: relu takes 0 positional attribute(s) (none), got 1",
        "   |",
        " 3 |     output x -> relu(2)",
        "   |                      ^",
    ]


REFUSED_BREAKS = {
    "\x0b": "vertical tab (U+000B)",
    "\x0c": "form feed (U+000C)",
    "\x1c": "file separator (U+001C)",
    "\x1d": "group separator (U+001D)",
    "\x1e": "record separator (U+001E)",
    "\x85": "next line (NEL) (U+0085)",
    "\u2028": "line separator (U+2028)",
    "\u2029": "paragraph separator (U+2029)",
}


@pytest.mark.parametrize("where", ["comment", "string"])
@pytest.mark.parametrize("char", list(REFUSED_BREAKS), ids=[f"U+{ord(c):04X}" for c in REFUSED_BREAKS])
def test_other_line_breaks_are_refused_where_they_are(char, where, workdir):
    line = (f"    y = x -> linear(4)   # a{char}y = y -> relu" if where == "comment"
            else f'    y = x -> gelu(approximate="a{char}b")')  # fmt: skip
    text = f"model M {{\n    input x: [B, 8]\n{line}\n    output y\n}}\n"
    status, _, err = check(workdir, text)
    col = line.index(char) + 1
    shown = line.replace(char, printable(char))
    assert status == 1
    assert err == (
        f"example.model:3:{col}: error[E0102]: {REFUSED_BREAKS[char]}: modelc does not take it for a "
        "line break, and other programs do\n"
        "   |\n"
        f" 3 | {shown}\n"
        f"   | {' ' * (col - 1)}{'^' * len(printable(char))}\n"
        "  = hint: lines end at LF, CRLF or CR; write a newline (or a space) instead\n"
    )


@pytest.mark.parametrize("eol", ["\n", "\r\n", "\r"], ids=["LF", "CRLF", "CR"])
def test_a_string_ends_on_its_line(eol, workdir):
    text = f'model M {{\n    input x: [B, 8]\n    output x -> gelu(approximate="ta{eol}nh")\n}}\n'
    status, _, err = check(workdir, text)
    assert status == 1
    assert err.startswith("example.model:3:34: error[E0102]: unexpected character '\"'")
    assert 'a string ends with " on the line where it starts' in err


def test_a_byte_order_mark_is_skipped_without_shifting_columns(workdir):
    status, _, err = check(workdir, "\ufeffmodel M { input x: [B, 8]; }\n")
    assert status == 1
    assert err.splitlines()[:4] == [
        "example.model:1:26: error[E0102]: unexpected character ';'",
        "   |",
        " 1 | model M { input x: [B, 8]; }",
        "   |                          ^",
    ]
    assert check(workdir, "\ufeff" + SPEC)[0] == 0


def test_source_lines_are_the_lexers():
    source = SourceFile("a.model", "one\ntwo\u2028still two\n\nfour")
    assert [source.line(n) for n in range(1, 6)] == ["one", "two\u2028still two", "", "four", ""]
    assert source.position(4) == (2, 1) and source.position(0) == (1, 1)


# ---- 2. only regular files --------------------------------------------------------------
IMPORTER = 'import "{}"\n\nmodel M {{\n    input x: [B, 8]\n    output x\n}}\n'


def test_a_fifo_is_refused_without_blocking(workdir):
    os.mkfifo(workdir / "pipe.model")
    start = time.monotonic()
    status, _, err = check(workdir, IMPORTER.format("pipe.model"))
    assert status == 1 and time.monotonic() - start < 10
    assert err == (
        "example.model:1:1: error[E0104]: cannot read pipe.model: it is a pipe (FIFO), not a regular file\n"
        "   |\n"
        ' 1 | import "pipe.model"\n'
        "   | ^^^^^^^^^^^^^^^^^^^\n"
        "  = hint: modelc reads specs and imports from regular files only\n"
    )
    status, _, err = run_cli("check", "pipe.model")
    assert status == 1 and err.startswith("error[E0104]: cannot read pipe.model: it is a pipe (FIFO)")


@pytest.mark.parametrize("target, kind", [(".", "a directory"), ("/dev/null", "a character device")])
def test_directories_and_devices_are_refused(target, kind, workdir):
    status, _, err = check(workdir, IMPORTER.format(target))
    assert status == 1
    assert err.startswith(f"example.model:1:1: error[E0104]: cannot read {target}: it is {kind}, "
                          "not a regular file\n")  # fmt: skip
    assert run_cli("check", target)[2].startswith(f"error[E0104]: cannot read {target}: it is {kind}")


def test_a_socket_is_refused(workdir):
    with socket.socket(socket.AF_UNIX) as s:
        s.bind("sock.model")  # relative: socket paths are short
        status, _, err = check(workdir, IMPORTER.format("sock.model"))
    assert status == 1 and "cannot read sock.model: it is a socket, not a regular file" in err


def test_stdin_from_a_pipe_is_refused_and_from_a_file_is_read(workdir):
    (workdir / "example.model").write_text(SPEC)
    argv = [sys.executable, "-m", "modelc.cli", "check", "/dev/stdin"]
    piped = subprocess.run(argv, input=SPEC, capture_output=True, text=True, timeout=60, check=False)
    assert piped.returncode == 1, piped.stderr
    assert piped.stderr.startswith("error[E0104]: cannot read /dev/stdin: it is a pipe (FIFO)")
    with open(workdir / "example.model") as f:
        redirected = subprocess.run(argv, stdin=f, capture_output=True, text=True, timeout=60, check=False)
    assert redirected.returncode == 0, redirected.stderr


def test_a_name_with_a_nul_is_a_spec_error(workdir):
    status, _, err = check(workdir, IMPORTER.format("a\\u0000b.model"))
    assert status == 1
    assert err.startswith("example.model:1:1: error[E0104]: cannot read a\\x00b.model: a file name "
                          "cannot contain a NUL character")  # fmt: skip


# ---- 3. files that are not specs are not quoted ---------------------------------------------
PASSWD = "root:x:0:0:root:/root:/bin/bash\nalice:s3cret-hash:1000:1000::/home/alice:/bin/sh\n"


def test_an_imported_text_file_that_is_no_spec_is_not_quoted(workdir):
    (workdir / "passwd").write_text(PASSWD)
    status, _, err = check(workdir, IMPORTER.format("passwd"))
    assert status == 1
    assert err == (
        "example.model:1:1: error[E0104]: passwd is not a modelc spec (line 1, column 5 does not "
        "parse; its text is not shown)\n"
        "   |\n"
        ' 1 | import "passwd"\n'
        "   | ^^^^^^^^^^^^^^^\n"
        "  = hint: modelc shows the text of a file only if its name ends in .model, or from its "
        "first line that starts a model, block or import\n"
    )


@pytest.mark.parametrize("text", [
    PASSWD,
    "export SECRET_TOKEN=abc123\n",  # the message would name the token
    "DEBUG=true\nAPI_KEY=8f3a9c\n",  # parses as constants until line 2
    "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n",
    'password = "hunter2" "x"\n',  # a string in the message
    "token = x\u001b\n",  # a refused character
])  # fmt: skip
def test_a_main_file_that_is_no_spec_is_not_quoted(text, workdir):
    status, out, err = check(workdir, text, "secrets.txt")
    assert (status, out) == (1, "")
    assert ": error[E0104]: not a modelc spec (it does not parse as one here; its text is not shown)\n" in err
    assert err.startswith("secrets.txt:")
    for word in ("root", "s3cret", "SECRET", "abc123", "8f3a9c", "OPENSSH", "hunter2", "b3Bl", "|"):
        assert word not in err


def test_a_spec_with_another_name_is_quoted_from_its_first_model_line(workdir):
    text = "# a spec saved as .txt\nmodel M {\n    input x: [B, 8]\n    output x -> relu(2)\n}\n"
    status, _, err = check(workdir, text, "spec.txt")
    assert status == 1 and " 4 |     output x -> relu(2)" in err
    status, _, err = check(workdir, "W = [1, 2\n)\nmodel M {\n}\n", "spec.txt")
    assert status == 1 and err.startswith("spec.txt:2:1: error[E0104]: not a modelc spec")
    status, _, err = check(workdir, "W = [1, 2\n)\nmodel M {\n}\n", "spec.model")
    assert status == 1 and err.startswith("spec.model:2:1: error[E0101]: unexpected ')'")


def test_a_link_named_model_to_a_secret_is_not_quoted(workdir):
    (workdir / "passwd").write_text(PASSWD)
    os.symlink(workdir / "passwd", workdir / "passwd.model")
    status, _, err = run_cli("check", "passwd.model")
    assert status == 1 and "root" not in err and "not a modelc spec" in err


@pytest.mark.parametrize("data", [
    b"\x0a\x05\x0a\x03<s>\x15\x00\x00\x00\x00\x18\x02",  # the start of a SentencePiece model
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR",
    b"abc\x01\x02\xff\xfe",  # no NUL, not UTF-8, control bytes
    b"model M {\x00}",
])  # fmt: skip
def test_binary_data_is_one_line(data, workdir):
    (workdir / "tokenizer.model").write_bytes(data)
    status, out, err = run_cli("check", "tokenizer.model")
    assert (status, out, err) == (1, "", "tokenizer.model:1:1: error[E0106]: binary file, not a modelc spec\n")
    status, _, err = check(workdir, IMPORTER.format("tokenizer.model"))
    assert err.splitlines()[0] == "example.model:1:1: error[E0106]: tokenizer.model is a binary file, not a modelc spec"


@pytest.mark.skipif(not os.access("/proc/self/environ", os.R_OK), reason="no /proc/self/environ")
def test_the_environment_is_not_echoed(workdir, monkeypatch):
    monkeypatch.setenv("MODELC_TEST_SECRET", "do-not-print-me")
    status, _, err = check(workdir, IMPORTER.format("/proc/self/environ"))
    assert status == 1 and "do-not-print-me" not in err
    assert err.splitlines()[0] == ("example.model:1:1: error[E0106]: /proc/self/environ is a binary file, "
                                   "not a modelc spec")  # fmt: skip
    status, _, err = run_cli("check", "/proc/self/environ")
    assert (status, err) == (1, "/proc/self/environ:1:1: error[E0106]: binary file, not a modelc spec\n")


def test_an_imported_file_in_another_encoding(workdir):
    (workdir / "layers.model").write_bytes(b"# caf\xe9\nblock B {\n}\n")
    status, _, err = check(workdir, IMPORTER.format("layers.model"))
    assert status == 1
    assert err.splitlines()[0] == ("example.model:1:1: error[E0104]: layers.model is not UTF-8 text "
                                   "(byte 0xe9 at line 1, column 6)")  # fmt: skip


# ---- 4. outputs are written atomically, never over a spec -------------------------------------
def test_compile_replaces_the_output_atomically(workdir, monkeypatch):
    (workdir / "example.model").write_text(SPEC)
    out = workdir / "model.py"
    out.write_text("# the previous output\n")
    out.chmod(0o640)

    def disk_full(fd, data):
        os.write(fd, bytes(data[:10]))
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(fileio, "_write_all", disk_full)
    status, _, err = run_cli("compile", "example.model", "-o", "model.py")
    assert (status, err) == (1, "error[E0604]: cannot write model.py: No space left on device\n")
    assert out.read_text() == "# the previous output\n"  # not a truncated new one
    assert sorted(os.listdir(workdir)) == ["example.model", "model.py"]  # no temporary file left
    monkeypatch.undo()
    monkeypatch.chdir(workdir)
    assert run_cli("compile", "example.model", "-o", "model.py")[0] == 0
    assert "class M(nn.Module)" in out.read_text()
    assert stat.S_IMODE(out.stat().st_mode) == 0o640  # an existing file keeps its mode
    assert sorted(os.listdir(workdir)) == ["example.model", "model.py"]


def test_an_interrupted_write_leaves_the_old_file(workdir, monkeypatch):
    out = workdir / "model.py"
    out.write_text("old\n")

    def interrupted(fd, data):
        raise KeyboardInterrupt

    monkeypatch.setattr(fileio, "_write_all", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fileio.write_file(str(out), "new\n")
    assert out.read_text() == "old\n" and os.listdir(workdir) == ["model.py"]


def test_a_linked_output_keeps_its_link(workdir):
    (workdir / "example.model").write_text(SPEC)
    (workdir / "build").mkdir()
    os.symlink("build/real.py", workdir / "model.py")
    assert run_cli("compile", "example.model", "-o", "model.py")[0] == 0
    assert os.path.islink(workdir / "model.py")
    assert "class M" in (workdir / "build" / "real.py").read_text()


@pytest.mark.parametrize("make", ["same", "symlink", "hardlink", "import"])
def test_the_output_never_overwrites_a_spec(make, workdir):
    (workdir / "example.model").write_text(SPEC)
    target, spec = "example.model", "example.model"
    if make == "symlink":
        os.symlink("example.model", workdir / "out.py")
        target = "out.py"
    elif make == "hardlink":
        os.link(workdir / "example.model", workdir / "out.py")
        target = "out.py"
    elif make == "import":
        (workdir / "layers.model").write_text("block B {\n    input x\n    output x\n}\n")
        (workdir / "main.model").write_text('import "layers.model"\n' + SPEC)
        target, spec = "layers.model", "main.model"
    before = {p: p.read_bytes() for p in workdir.iterdir()}
    status, out, err = run_cli("compile", spec, "-o", target)
    assert (status, out) == (1, "")
    assert err.startswith("error[E0601]: will not write the output over the spec ")
    assert "  = hint: write it to another file, e.g. " in err
    assert {p: p.read_bytes() for p in workdir.iterdir()} == before


@pytest.mark.parametrize("output, message", [
    ("out", "cannot write out: it is a directory"),
    ("example.model/model.py", "cannot write example.model/model.py: example.model is a file, not a directory"),
    ("example.model/sub/model.py", "cannot write example.model/sub/model.py: example.model is a file, not a directory"),
])  # fmt: skip
def test_an_output_that_cannot_be_written(output, message, workdir):
    (workdir / "example.model").write_text(SPEC)
    (workdir / "out").mkdir()
    status, out, err = run_cli("compile", "example.model", "-o", output)
    assert (status, out) == (1, "")
    assert err.splitlines()[0] == f"error[E0604]: {message}"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_an_output_in_a_read_only_folder(workdir):
    (workdir / "example.model").write_text(SPEC)
    (workdir / "ro").mkdir(mode=0o555)
    status, _, err = run_cli("compile", "example.model", "-o", "ro/model.py")
    assert (status, err) == (1, "error[E0604]: cannot write ro/model.py: Permission denied\n")


def test_a_refused_write_is_a_spec_error(workdir, monkeypatch):
    (workdir / "example.model").write_text(SPEC)

    def refuse(target, data, old):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(fileio, "_replace", refuse)
    status, _, err = run_cli("compile", "example.model", "-o", "model.py")
    assert (status, err) == (1, "error[E0604]: cannot write model.py: Permission denied\n")


def test_an_output_to_a_device_is_a_stream(workdir):
    (workdir / "example.model").write_text(SPEC)
    assert run_cli("compile", "example.model", "-o", "/dev/null") == (0, "", "")


def test_the_dot_fallback_never_overwrites_a_file(workdir, monkeypatch):
    (workdir / "example.model").write_text(SPEC)
    (workdir / "net.dot").write_text("my own drawing\n")
    monkeypatch.setattr("modelc.render.dot_binary", lambda: None)
    status, _, err = run_cli("render", "example.model", "-o", "net.svg")
    assert status == 1
    assert err == (
        "error[E0602]: Graphviz not found: cannot draw net.svg (the `dot` program is missing); "
        "net.dot exists, so it was left as it is\n"
        "  = hint: install Graphviz, or ask for the DOT source with -o net.dot (which replaces it)\n"
    )
    assert (workdir / "net.dot").read_text() == "my own drawing\n"
    assert run_cli("render", "example.model", "-o", "net.dot")[0] == 0
    assert (workdir / "net.dot").read_text().startswith("digraph")


def test_render_never_overwrites_the_spec(workdir):
    (workdir / "net.dot").write_text(SPEC)
    status, _, err = run_cli("render", "net.dot", "-o", "net.dot")
    assert status == 1 and err.startswith("error[E0601]: will not write the output over the spec net.dot")
    assert (workdir / "net.dot").read_text() == SPEC


# ---- 5. a user's mistake is not an internal error -------------------------------------------
@pytest.mark.parametrize("option, value", [
    ("--input", "x=\u00b2,8"),  # '²'.isdigit() is true
    ("--input", "x=\u0663,8"),  # an Arabic-Indic 3
    ("--input", "x=1,\u00e9"),  # a symbol is ASCII, as in a spec
    ("--param", "w=\u0663"),
    ("--param", "w=1_000"),
    ("--param", "w=99999999999999999999999"),
    ("--param", "f=nan"),
    ("--param", "f=inf"),
    ("--param", "f=-Infinity"),
    ("--param", "f=1e999"),
    ("--param", "l=1,\u00b2"),
])  # fmt: skip
def test_odd_option_values_are_e0601(option, value, workdir):
    text = "model M(w: int = 4, f: float = 0.5, l: list = [1]) {\n    input x: [B, 8]\n    output x -> linear(w)\n}\n"
    status, out, err = check(workdir, text, "example.model", option, value)
    assert (status, out) == (1, "")
    assert err.startswith("error[E0601]: ")


def test_ctrl_c_exits_130_with_one_line(workdir):
    (workdir / "big.model").write_text("model Big {\n    input x: [B, 8]\n    output x -> repeat 99000 relu\n}\n")
    code = "import sys\nfrom modelc.cli import main\nprint('ready', flush=True)\nsys.exit(main(sys.argv[1:]))\n"
    proc = subprocess.Popen([sys.executable, "-c", code, "check", "big.model"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip
    assert proc.stdout.readline() == "ready\n"
    time.sleep(0.5)  # in the middle of checking 99,000 layers (seconds)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert (proc.returncode, out, err) == (130, "", "modelc: interrupted\n")


# ---- 6. error output is safe and true ---------------------------------------------------------
@pytest.mark.parametrize("char", ["\x1b", "\x07", "\x08", "\x01", "\x7f", "\x9b", "\u202e", "\u2066"],
                         ids=["ESC", "BEL", "BS", "SOH", "DEL", "CSI", "RLO", "LRI"])  # fmt: skip
def test_control_characters_are_refused_in_comments_and_shown_escaped(char, workdir):
    line = f"    output x -> relu   # {char}[2J"
    status, _, err = check(workdir, f"model M {{\n    input x: [B, 8]\n{line}\n}}\n".encode())
    assert status == 1
    first, _, shown, carets = err.splitlines()[:4]
    assert first.startswith(f"example.model:3:{line.index(char) + 1}: error[E0102]: ")
    assert shown == f" 3 | {line.replace(char, printable(char))}"
    assert carets == "   | " + " " * line.index(char) + "^" * len(printable(char))
    assert err.isprintable() or set(err) - set(printable(err)) <= {"\n"}


def test_a_nul_in_text_given_to_the_api_is_refused_and_escaped():
    with pytest.raises(SpecError) as info:
        modelc.compile_source("model M {\n    input x: [B, 8]  # \x00\n    output x\n}\n", "nul.model")
    assert info.value.render().splitlines()[:3] == [
        "nul.model:2:24: error[E0102]: control character U+0000",
        "   |",
        " 2 |     input x: [B, 8]  # \\x00",
    ]


@pytest.mark.parametrize("escape, shown", [("\\u001b[31m", "\\x1b[31m"), ("\\r", "\\r"), ("\\b", "\\x08"),
                                           ("\\u0007", "\\x07"), ("\\u202e", "\\u202e"), ("\\u0085", "\\x85")])  # fmt: skip
def test_strings_quoted_in_messages_are_escaped(escape, shown, workdir):
    text = f'model M {{\n    input x: [B, 8]\n    output x -> gelu(approximate="a{escape}")\n}}\n'
    status, _, err = check(workdir, text)
    assert status == 1
    assert f'must be one of "none", "tanh", got "a{shown}"' in err.splitlines()[0]
    assert all(line.isprintable() for line in err.splitlines())


def test_messages_hints_notes_and_paths_are_escaped():
    source = SourceFile("a\x1b.model", "x = 1\n")
    span = Span(source, 1, 1, 1, 2)
    from modelc.diagnostics import Note

    exc = error("E0201", "undefined name 'a\x07'", span, "did you mean '\u202eb'?", (Note("see \x9b", span),))
    text = exc.render()
    assert all(line.isprintable() for line in text.splitlines())
    assert "a\\x1b.model:1:1" in text and "'a\\x07'" in text and "\\u202eb" in text and "\\x9b" in text
    assert exc.diagnostics[0].message == "undefined name 'a\x07'"  # the data keeps the text


def test_the_caret_lines_up_under_wide_characters(workdir):
    line = '    output x -> gelu(approximate="\u6f22\u5b57")'
    status, _, err = check(workdir, f"model M {{\n    input x: [B, 8]\n{line}\n}}\n")
    assert status == 1
    assert err.splitlines()[3] == "   |                      " + "^" * (len('approximate=""') + 4)


def test_an_empty_file_has_a_location(workdir):
    status, _, err = check(workdir, "", "empty.model")
    assert (status, err) == (1, "empty.model:1:1: error[E0504]: empty.model defines no model\n"
                                "  = hint: a spec needs a `model Name { ... }` section\n")  # fmt: skip
    with pytest.raises(SpecError) as info:
        modelc.compile_source("# nothing\n", "blank.model")
    assert str(info.value.diagnostics[0].span) == "blank.model:1:1"


def _write(where: Path, text: str) -> Path:
    path = where / "example.model"
    path.write_bytes(text.encode("utf-8"))
    return path


# ---- 7. hints for PyTorch habits ----------------------------------------------------------------
@pytest.mark.parametrize("step, hint", [
    ("multiply(x)", "did you mean 'mul'? (also written a * b)"),
    ("tan", "modelc has no element-wise tan; the math it has: exp, log"),
    ("argmin(1)", "modelc has no argmin: argmax of the negation"),
    ("swish", "did you mean 'silu'? (x * sigmoid(x); hardswish is a different"),
    ("SiLU", "did you mean 'silu'?"),
    ("Softplus", "did you mean 'softplus'?"),
    ("cat(x)", "did you mean 'concat'?"),
    ("Linear(4)", "did you mean 'linear'?"),
    ("LayerNorm", "did you mean 'layer_norm'?"),
    ("Dropout2d(0.1)", "did you mean 'dropout'?"),
    ("mx", "did you mean 'amax'?"),  # the reduction, not 'max': a compile-time function is no step
    ("chanels", "did you mean 'channel_fc'?"),  # an op, not the function channels()
])  # fmt: skip
def test_unknown_ops_get_hints_of_their_kind(step, hint, workdir):
    status, _, err = check(workdir, f"model M {{\n    input x: [B, 8]\n    output x -> {step}\n}}\n")
    assert status == 1 and "error[E0203]" in err.splitlines()[0]
    hints = [line for line in err.splitlines() if line.startswith("  = hint: ")]
    assert hints == ([] if hint is None else [hints[0]]) and (hint is None or hint in hints[0])
    for wrong in ("'matmul'", "'min'", "'max'", "'hardswish'"):
        assert wrong not in err


@pytest.mark.parametrize("call, hint", [
    ("linear(512, 10)", "linear infers in_features from its input tensor: write linear(10)"),
    ("linear(10, false)", "name the others, e.g. linear(10, bias=false)"),
    ("linear(in_features=512, out_features=10)", "linear infers in_features from its input tensor: leave it out"),
    ("layer_norm(512)", "layer_norm infers normalized_shape from its input tensor: write layer_norm"),
    ("layer_norm(1e-6)", "name the others, e.g. layer_norm(eps=1e-6)"),
    ("lstm(512, 256, 2)", "lstm infers input_size from its input tensor: write lstm(256, layers=2)"),
    ("multihead_attention(512, 8)", "multihead_attention infers embed_dim from its input tensor: write multihead_attention(8)"),
    ("dropout(0.1, true)", "dropout takes: p"),
    ("relu(2)", "relu takes no attributes"),
])  # fmt: skip
def test_torch_style_attributes(call, hint, workdir):
    status, _, err = check(workdir, f"model M {{\n    input x: [B, 4, 512]\n    output x -> {call}\n}}\n")
    assert status == 1
    assert f"  = hint: {hint}" in err.splitlines()
