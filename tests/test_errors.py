"""Every diagnostic of modelc, rendered exactly, through the Python API and the CLI.

Each case is a spec written to `example.model` in a temporary directory (the
working directory during the test, so paths print as `example.model`), and the
exact text modelc must print: `file:line:col: error[CODE]: message`, the source
line, a caret under the offending text, then notes and a hint. docs/errors.md
documents the same codes (tests/test_docs.py checks its examples).
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
from dataclasses import dataclass, field

import modelc
import pytest
from modelc.cli import main
from modelc.driver import build_all
from modelc.load import load_file
from modelc.diagnostics import CODES, SpecError


@dataclass(frozen=True)
class Case:
    """`expected` is all of stderr but its last newline; `code` is the first diagnostic's.

    `args` follow `modelc check example.model`; `files` are written beside it;
    `api` are the keywords of the equivalent `modelc.compile_file` call (None: the
    case exists only on the command line).
    """

    id: str
    code: str
    spec: str
    expected: str
    args: tuple[str, ...] = ()
    files: dict[str, str] = field(default_factory=dict)
    api: dict | None = field(default_factory=dict)


CASES = [
    Case(
        "syntax_unclosed_call",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3
}
""",
        expected="""\
example.model:4:1: error[E0101]: unexpected '}', expected one of ')', ','
   |
 4 | }
   | ^""",
    ),
    Case(
        "syntax_trailing_arrow",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x -> conv(16, k=3) ->
    output y
}
""",
        expected="""\
example.model:4:5: error[E0101]: unexpected 'output', expected one of '(', '[', 'for', 'repeat', a name, a quoted label ("model": ...)
   |
 4 |     output y
   |     ^^^^^^""",
    ),
    Case(
        "syntax_missing_arrow",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x -> conv(16, k=3) relu
    output y
}
""",
        expected="""\
example.model:4:5: error[E0101]: unexpected 'output', expected one of ',', '='
   |
 4 |     output y
   |     ^^^^^^
  = hint: 'relu' starts a new statement; to continue the chain on the line before, write '-> relu'""",
    ),
    Case(
        "syntax_empty_binding",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y =
    output y
}
""",
        expected="""\
example.model:4:5: error[E0101]: unexpected 'output', expected an expression
   |
 4 |     output y
   |     ^^^^^^""",
    ),
    Case(
        "syntax_if_statement",
        "E0101",
        spec="""\
model M(deep: bool = false) {
    input x: [B, 3, 32, 32]
    if deep { x = x -> conv(16, k=3) }
    output x
}
""",
        expected="""\
example.model:3:13: error[E0101]: unexpected '{', expected 'else'
   |
 3 |     if deep { x = x -> conv(16, k=3) }
   |             ^""",
    ),
    Case(
        "syntax_fat_arrow",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x => relu
}
""",
        expected="""\
example.model:3:15: error[E0101]: unexpected '>', expected an expression
   |
 3 |     output x => relu
   |               ^
  = hint: a chain step is written '->'""",
    ),
    Case(
        "syntax_unclosed_body",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> relu
""",
        expected="""\
example.model:3:20: error[E0101]: unexpected end of file, expected one of ',', 'def', 'input', 'output', '}', a name
   |
 3 |     output x -> relu
   |                    ^
  = hint: is a closing '}' or ')' missing?""",
    ),
    Case(
        "syntax_attribute_colon",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k: 3)
}
""",
        expected="""\
example.model:3:29: error[E0101]: unexpected '3', expected one of '[', a name
   |
 3 |     output x -> conv(16, k: 3)
   |                             ^""",
    ),
    Case(
        "semicolon",
        "E0102",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> relu;
}
""",
        expected="""\
example.model:3:21: error[E0102]: unexpected character ';'
   |
 3 |     output x -> relu;
   |                     ^
  = hint: statements need no separator; start the next one on a new line""",
    ),
    Case(
        "single_quotes",
        "E0102",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, p='same')
}
""",
        expected="""\
example.model:3:33: error[E0102]: unexpected character "'"
   |
 3 |     output x -> conv(16, k=3, p='same')
   |                                 ^
  = hint: strings use double quotes: "same\"""",
    ),
    Case(
        "bad_escape",
        "E0103",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> gelu(approximate="tan\\h")
}
""",
        expected="""\
example.model:3:34: error[E0103]: invalid string literal "tan\\h"
   |
 3 |     output x -> gelu(approximate="tan\\h")
   |                                  ^^^^^^^
  = hint: allowed escapes: \\" \\\\ \\n \\t \\uXXXX""",
    ),
    Case(
        "missing_import",
        "E0104",
        spec="""\
import "layers.model"

model M {
    input x: [B, 3, 32, 32]
    output x -> relu
}
""",
        expected="""\
example.model:1:1: error[E0104]: cannot read layers.model: No such file or directory
   |
 1 | import "layers.model"
   | ^^^^^^^^^^^^^^^^^^^^^""",
    ),
    Case(
        "import_cycle",
        "E0105",
        spec="""\
import "layers.model"

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem
}
""",
        expected="""\
layers.model:1:1: error[E0105]: import cycle: example.model -> layers.model -> example.model
   |
 1 | import "example.model"
   | ^^^^^^^^^^^^^^^^^^^^^^""",
        files={
            "layers.model": """\
import "example.model"

block Stem {
    input x
    output x -> conv(16, k=3) -> relu
}
""",
        },
    ),
    Case(
        "undefined_name_suggestion",
        "E0201",
        spec="""\
model M {
    input image: [B, 3, 32, 32]
    output imgae -> relu
}
""",
        expected="""\
example.model:3:12: error[E0201]: undefined name 'imgae'
   |
 3 |     output imgae -> relu
   |            ^^^^^
  = hint: did you mean 'image'?""",
    ),
    Case(
        "undefined_name",
        "E0201",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(width, k=3)
}
""",
        expected="""\
example.model:3:22: error[E0201]: undefined name 'width'
   |
 3 |     output x -> conv(width, k=3)
   |                      ^^^^^""",
    ),
    Case(
        "label_twice",
        "E0202",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x -> conv1: conv(16, k=3) -> conv1: conv(16, k=3)
    output y
}
""",
        expected="""\
example.model:3:38: error[E0202]: 'conv1' is defined twice in the model
   |
 3 |     y = x -> conv1: conv(16, k=3) -> conv1: conv(16, k=3)
   |                                      ^^^^^
  = note: first defined here at example.model:3:14
  = hint: labels name modules and must be unique in their block""",
    ),
    Case(
        "output_twice",
        "E0202",
        spec="""\
model M {
    input x: [B, 8]
    output y = x -> relu
    output y = x -> sigmoid
}
""",
        expected="""\
example.model:4:5: error[E0202]: output 'y' is defined twice
   |
 4 |     output y = x -> sigmoid
   |     ^^^^^^^^^^^^^^^^^^^^^^^
  = note: first defined here at example.model:3:5
  = hint: give each output its own name""",
    ),
    Case(
        "block_twice",
        "E0202",
        spec="""\
block Stem {
    input x
    output x -> conv(16, k=3)
}

block Stem {
    input x
    output x -> conv(32, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem
}
""",
        expected="""\
example.model:6:7: error[E0202]: 'Stem' is defined twice
   |
 6 | block Stem {
   |       ^^^^
  = note: first defined here at example.model:1:7""",
    ),
    Case(
        "label_in_loop",
        "E0202",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> layers: for i in 0..3 { conv: conv(16, k=3, p=1) }
}
""",
        expected="""\
example.model:3:41: error[E0202]: 'conv' is defined twice in layers: a label inside repeat or for names every copy
   |
 3 |     output x -> layers: for i in 0..3 { conv: conv(16, k=3, p=1) }
   |                                         ^^^^
  = hint: label the repeat or for instead (`layer1: repeat 3 ...` numbers the copies), put the loop variable in the label (`"layer{i}": ...`), or put the labelled steps in a block""",
    ),
    Case(
        "block_named_like_op",
        "E0202",
        spec="""\
block relu {
    input x
    output x
}

model M {
    input x: [B, 3, 32, 32]
    output x -> relu
}
""",
        expected="""\
example.model:1:7: error[E0202]: 'relu' is the name of a built-in op
   |
 1 | block relu {
   |       ^^^^
  = hint: choose another name for the block""",
    ),
    Case(
        "unknown_op",
        "E0203",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv2d(16, k=3)
}
""",
        expected="""\
example.model:3:17: error[E0203]: unknown op or block 'conv2d'
   |
 3 |     output x -> conv2d(16, k=3)
   |                 ^^^^^^
  = hint: did you mean 'conv'?""",
    ),
    Case(
        "model_as_block",
        "E0203",
        spec="""\
model Stem {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem
}
""",
        expected="""\
example.model:8:17: error[E0203]: 'Stem' is a model; only blocks can be used inside a model
   |
 8 |     output x -> Stem
   |                 ^^^^
  = hint: declare it as `block Stem(...)`""",
        args=("--model", "M"),
        api={"model": "M"},
    ),
    Case(
        "use_before_definition",
        "E0204",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x + skip
    skip = x -> conv(3, k=3, p=1)
    output y
}
""",
        expected="""\
example.model:3:13: error[E0204]: 'skip' is used before its definition
   |
 3 |     y = x + skip
   |             ^^^^
  = note: defined here at example.model:4:5
  = hint: it is defined later, at line 4; move that line up""",
    ),
    Case(
        "cycle",
        "E0205",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    a = x + c
    b = a -> relu
    c = b -> conv(3, k=3, p=1)
    output c
}
""",
        expected="""\
example.model:3:13: error[E0205]: cycle between bindings: a -> c -> b -> a
   |
 3 |     a = x + c
   |             ^
  = hint: a model is a directed acyclic graph; break the loop""",
    ),
    Case(
        "constant_cycle",
        "E0205",
        spec="""\
WIDTH = 2 * WIDTH

model M {
    input x: [B, 3, 32, 32]
    output x -> conv(WIDTH, k=3)
}
""",
        expected="""\
example.model:1:1: error[E0205]: constant 'WIDTH' is defined in terms of itself
   |
 1 | WIDTH = 2 * WIDTH
   | ^^^^^^^^^^^^^^^^^""",
    ),
    Case(
        "reserved_label",
        "E0206",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> forward: conv(16, k=3)
}
""",
        expected="""\
example.model:3:17: error[E0206]: 'forward' cannot name a layer: it is an attribute of nn.Module or of generated models
   |
 3 |     output x -> forward: conv(16, k=3)
   |                 ^^^^^^^
  = hint: try 'forward_'""",
    ),
    Case(
        "private_label",
        "E0206",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> _modules: conv(16, k=3)
}
""",
        expected="""\
example.model:3:17: error[E0206]: '_modules' cannot name a layer: names starting with '_' belong to nn.Module
   |
 3 |     output x -> _modules: conv(16, k=3)
   |                 ^^^^^^^^
  = hint: try 'modules_'""",
    ),
    Case(
        "dotted_label",
        "E0207",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> "stem.conv": conv(16, k=3)
}
""",
        expected="""\
example.model:3:17: error[E0207]: label "stem.conv" cannot name a module: '.' separates the modules of a path
   |
 3 |     output x -> "stem.conv": conv(16, k=3)
   |                 ^^^^^^^^^^^
  = hint: nest labelled steps to make a path: `a: (b: conv(8))` names `a.b`""",
    ),
    Case(
        "label_field_expression",
        "E0207",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> for i in 0..2 { "layer{i + 1}": conv(16, k=3, p=1) }
}
""",
        expected="""\
example.model:3:33: error[E0207]: label "layer{i + 1}" cannot name a module: '{' cannot be part of a module name
   |
 3 |     output x -> for i in 0..2 { "layer{i + 1}": conv(16, k=3, p=1) }
   |                                 ^^^^^^^^^^^^^^
  = hint: module names use ASCII letters, digits, '_' and '-'; {name} puts the value of a name in a quoted label: "denseblock{i}\"""",
    ),
    Case(
        "label_field_value",
        "E0207",
        spec="""\
block Head(tag: str) {
    input x
    output x -> "head_{tag}": conv(16, k=1)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Head("a.b")
}
""",
        expected="""\
example.model:3:17: error[E0207]: label "head_{tag}" is "head_a.b" here, which cannot name a module: '.' separates the modules of a path
   |
 3 |     output x -> "head_{tag}": conv(16, k=1)
   |                 ^^^^^^^^^^^^
  = note: in block Head, instantiated as head at example.model:8:17
  = hint: nest labelled steps to make a path: `a: (b: conv(8))` names `a.b`""",
    ),
    Case(
        "add_shapes",
        "E0301",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    a = x -> conv(16, k=3, p=1)
    b = x -> conv(16, k=3)
    output a + b
}
""",
        expected="""\
example.model:5:12: error[E0301]: cannot add tensors of shapes [B, 16, 32, 32] and [B, 16, 30, 30]
   |
 5 |     output a + b
   |            ^^^^^
  = hint: dimension 2 differs (32 vs 30); + broadcasts only sizes that are equal or 1: check the padding and stride of the layers on each side""",
    ),
    Case(
        "block_input_shape",
        "E0301",
        spec="""\
block Head(classes: int) {
    input features: [B, 512]
    output features -> linear(classes)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> flatten -> Head(10)
}
""",
        expected="""\
example.model:2:5: error[E0301]: input 'features' expects shape [B, 512], got [B, 3072]
   |
 2 |     input features: [B, 512]
   |     ^^^^^^^^^^^^^^^^^^^^^^^^
  = note: in block Head, instantiated as head at example.model:8:28""",
    ),
    Case(
        "concat_shapes",
        "E0302",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    a = x -> conv(16, k=3, p=1)
    b = x -> conv(16, k=3)
    output concat(a, b)
}
""",
        expected="""\
example.model:5:12: error[E0302]: concat along dim 1: shapes [B, 16, 32, 32] and [B, 16, 30, 30] differ in dim 2 (32 vs 30)
   |
 5 |     output concat(a, b)
   |            ^^^^^^^^^^^^
  = hint: all inputs must match except in the concat dimension""",
    ),
    Case(
        "concat_ranks",
        "E0302",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output concat(x, x -> flatten)
}
""",
        expected="""\
example.model:3:12: error[E0302]: concat of tensors of different ranks: [B, 3, 32, 32], [B, 3072]
   |
 3 |     output concat(x, x -> flatten)
   |            ^^^^^^^^^^^^^^^^^^^^^^^""",
    ),
    Case(
        "empty_output",
        "E0303",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=5) -> conv(16, k=31)
}
""",
        expected="""\
example.model:3:34: error[E0303]: conv output would be empty: input size 28 with kernel 31
   |
 3 |     output x -> conv(16, k=5) -> conv(16, k=31)
   |                                  ^^^^^^^^^^^^^^
  = hint: use a smaller kernel or stride, add padding, or a larger input""",
    ),
    Case(
        "unknown_channels",
        "E0304",
        spec="""\
model M {
    input x: [B, C, 32, 32]
    output x -> conv(16, k=3)
}
""",
        expected="""\
example.model:3:17: error[E0304]: conv needs a known channel count, but the input [B, C, 32, 32] has 'C' there
   |
 3 |     output x -> conv(16, k=3)
   |                 ^^^^^^^^^^^^^
  = hint: give the input a concrete size in that dimension""",
    ),
    Case(
        "wrong_rank",
        "E0305",
        spec="""\
model M {
    input x: [B, 784]
    output x -> conv(16, k=3)
}
""",
        expected="""\
example.model:3:17: error[E0305]: conv expects a rank-3 or 4 input ([B, C, L] or [B, C, H, W]), got 2-d [B, 784]
   |
 3 |     output x -> conv(16, k=3)
   |                 ^^^^^^^^^^^^^""",
    ),
    Case(
        "view_of_a_permuted_tensor",
        "E0306",
        spec="""\
model M {
    input x: [B, 16, 64]
    y = x -> transpose(1, 2) -> relu
    output y -> view([B, 1024])
}
""",
        expected="""\
example.model:4:17: error[E0306]: view needs a contiguous input, and this one may not be: transpose changes its layout
   |
 4 |     output y -> view([B, 1024])
   |                 ^^^^^^^^^^^^^^^
  = note: the transpose is here at example.model:3:14
  = hint: use reshape, which copies when it must""",
    ),
    Case(
        "unknown_attribute",
        "E0401",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, pad=1)
}
""",
        expected="""\
example.model:3:31: error[E0401]: conv has no attribute 'pad'
   |
 3 |     output x -> conv(16, k=3, pad=1)
   |                               ^^^^^
  = hint: did you mean 'padding'?""",
    ),
    Case(
        "attribute_of_op_without_attributes",
        "E0401",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> relu(inplace=true)
}
""",
        expected="""\
example.model:3:22: error[E0401]: relu has no attribute 'inplace'
   |
 3 |     output x -> relu(inplace=true)
   |                      ^^^^^^^^^^^^
  = hint: relu takes no attributes""",
    ),
    Case(
        "wrong_attribute_type",
        "E0402",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, bias="no")
}
""",
        expected="""\
example.model:3:31: error[E0402]: attribute 'bias' of conv expects true, false or a list of numbers, got "no"
   |
 3 |     output x -> conv(16, k=3, bias="no")
   |                               ^^^^^^^^^
  = hint: false for none; or its numbers, [out_channels]""",
    ),
    Case(
        "missing_attribute",
        "E0403",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(k=3)
}
""",
        expected="""\
example.model:3:17: error[E0403]: conv needs attribute 'out_channels'
   |
 3 |     output x -> conv(k=3)
   |                 ^^^^^^^^^
  = hint: out_channels: number of output channels""",
    ),
    Case(
        "invalid_choice",
        "E0404",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> gelu(approximate="tan")
}
""",
        expected="""\
example.model:3:22: error[E0404]: attribute 'approximate' of gelu must be one of "none", "tanh", got "tan"
   |
 3 |     output x -> gelu(approximate="tan")
   |                      ^^^^^^^^^^^^^^^^^
  = hint: did you mean 'tanh'?""",
    ),
    Case(
        "below_minimum",
        "E0404",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=0)
}
""",
        expected="""\
example.model:3:26: error[E0404]: attribute 'k' of conv must be at least 1, got 0
   |
 3 |     output x -> conv(16, k=0)
   |                          ^^^""",
    ),
    Case(
        "groups",
        "E0404",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, groups=2)
}
""",
        expected="""\
example.model:3:17: error[E0404]: conv: in_channels (3) must be divisible by groups (2)
   |
 3 |     output x -> conv(16, k=3, groups=2)
   |                 ^^^^^^^^^^^^^^^^^^^^^^^""",
    ),
    Case(
        "too_many_block_arguments",
        "E0405",
        spec="""\
block Stem(width: int) {
    input x
    output x -> conv(width, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem(16, 3)
}
""",
        expected="""\
example.model:8:26: error[E0405]: block Stem takes 1 argument(s) (width), got 2
   |
 8 |     output x -> Stem(16, 3)
   |                          ^""",
    ),
    Case(
        "missing_block_argument",
        "E0405",
        spec="""\
block Stem(width: int) {
    input x
    output x -> conv(width, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem
}
""",
        expected="""\
example.model:8:17: error[E0405]: block Stem needs argument 'width'
   |
 8 |     output x -> Stem
   |                 ^^^^""",
    ),
    Case(
        "unknown_block_parameter",
        "E0405",
        spec="""\
block Stem(width: int) {
    input x
    output x -> conv(width, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem(widht=16)
}
""",
        expected="""\
example.model:8:22: error[E0405]: block Stem has no parameter 'widht'
   |
 8 |     output x -> Stem(widht=16)
   |                      ^^^^^^^^
  = hint: did you mean 'width'?""",
    ),
    Case(
        "too_many_positional_attributes",
        "E0405",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, 3, 2)
}
""",
        expected="""\
example.model:3:29: error[E0405]: conv takes 2 positional attribute(s) (out_channels, k), got 3
   |
 3 |     output x -> conv(16, 3, 2)
   |                             ^
  = hint: name the others, e.g. conv(16, 3, s=2); conv infers in_channels from its input tensor""",
    ),
    Case(
        "builtin_arguments",
        "E0405",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(channels(x, 1), k=3)
}
""",
        expected="""\
example.model:3:22: error[E0405]: channels() takes 1 argument(s), got 2
   |
 3 |     output x -> conv(channels(x, 1), k=3)
   |                      ^^^^^^^^^^^^^^
  = hint: channels(x): size of dimension 1 of tensor x""",
    ),
    Case(
        "op_inputs",
        "E0406",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x -> relu
    output x -> conv(y, k=3)
}
""",
        expected="""\
example.model:4:17: error[E0406]: conv takes 1 input tensor(s), got 2
   |
 4 |     output x -> conv(y, k=3)
   |                 ^^^^^^^^^^^^""",
    ),
    Case(
        "block_inputs",
        "E0406",
        spec="""\
block Merge {
    input a
    input b
    output concat(a, b)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Merge
}
""",
        expected="""\
example.model:9:17: error[E0406]: block Merge takes 2 input tensor(s) (a, b), got 1
   |
 9 |     output x -> Merge
   |                 ^^^^^""",
    ),
    Case(
        "parameter_type",
        "E0407",
        spec="""\
block Stem(width: int) {
    input x
    output x -> conv(width, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem(width=2.5)
}
""",
        expected="""\
example.model:8:22: error[E0407]: parameter 'width' of block Stem is int, got 2.5 (float)
   |
 8 |     output x -> Stem(width=2.5)
   |                      ^^^^^^^^^""",
    ),
    Case(
        "unknown_parameter_type",
        "E0407",
        spec="""\
model M(width: integer = 16) {
    input x: [B, 3, 32, 32]
    output x -> conv(width, k=3)
}
""",
        expected="""\
example.model:1:16: error[E0407]: unknown parameter type 'integer'
   |
 1 | model M(width: integer = 16) {
   |                ^^^^^^^
  = hint: did you mean 'int'?""",
    ),
    Case(
        "block_argument_twice",
        "E0408",
        spec="""\
block Stem(width: int) {
    input x
    output x -> conv(width, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem(16, width=16)
}
""",
        expected="""\
example.model:8:26: error[E0408]: argument 'width' of block Stem given twice
   |
 8 |     output x -> Stem(16, width=16)
   |                          ^^^^^^^^""",
    ),
    Case(
        "attribute_twice",
        "E0408",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, kernel_size=3)
}
""",
        expected="""\
example.model:3:31: error[E0408]: attribute 'k' of conv given twice
   |
 3 |     output x -> conv(16, k=3, kernel_size=3)
   |                               ^^^^^^^^^^^^^""",
    ),
    Case(
        "missing_input",
        "E0501",
        spec="""\
model M {
    output relu(1)
}
""",
        expected="""\
example.model:1:7: error[E0501]: model M has no input
   |
 1 | model M {
   |       ^
  = hint: declare one: input image: [B, 3, 224, 224]""",
    ),
    Case(
        "missing_output",
        "E0502",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x -> conv(16, k=3)
}
""",
        expected="""\
example.model:1:7: error[E0502]: model M has no output
   |
 1 | model M {
   |       ^
  = hint: end the body with: output <expression>""",
    ),
    Case(
        "block_missing_output",
        "E0502",
        spec="""\
block Stem {
    input x
    y = x -> conv(16, k=3)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Stem
}
""",
        expected="""\
example.model:1:7: error[E0502]: block Stem has no output
   |
 1 | block Stem {
   |       ^^^^
  = note: in block Stem, instantiated as stem at example.model:8:17
  = hint: end the body with: output <expression>""",
    ),
    Case(
        "recursion",
        "E0503",
        spec="""\
block A(n: int) {
    input x
    output x -> B(n)
}

block B(n: int) {
    input x
    output x -> A(n)
}

model M {
    input x: [B, 3, 32, 32]
    output x -> A(1)
}
""",
        expected="""\
example.model:8:17: error[E0503]: block A instantiates itself (A -> B -> A)
   |
 8 |     output x -> A(n)
   |                 ^^^^
  = note: in block B, instantiated as a.b at example.model:3:17
  = note: in block A, instantiated as a at example.model:13:17
  = hint: blocks cannot be recursive; use repeat or for""",
    ),
    Case(
        "no_model",
        "E0504",
        spec="""\
block Stem {
    input x
    output x -> conv(16, k=3)
}
""",
        expected="""\
example.model:1:1: error[E0504]: example.model defines no model
  = hint: a spec needs a `model Name { ... }` section""",
    ),
    Case(
        "model_not_found",
        "E0504",
        spec="""\
model Small {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3)
}

model Large {
    input x: [B, 3, 32, 32]
    output x -> conv(64, k=3)
}
""",
        expected="""\
error[E0504]: no model named 'Medium' in example.model
  = hint: models: Small, Large (use --model NAME)""",
        args=("--model", "Medium"),
        api={"model": "Medium"},
    ),
    Case(
        "input_without_shape",
        "E0505",
        spec="""\
model M {
    input x
    output x -> relu
}
""",
        expected="""\
example.model:2:5: error[E0505]: model input 'x' needs a shape
   |
 2 |     input x
   |     ^^^^^^^
  = hint: input x: [B, 3, 224, 224]""",
    ),
    Case(
        "condition_not_bool",
        "E0506",
        spec="""\
model M(deep: int = 1) {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3) if deep else x
}
""",
        expected="""\
example.model:3:12: error[E0506]: a condition must be true or false, got 1
   |
 3 |     output x -> conv(16, k=3) if deep else x
   |            ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^""",
    ),
    Case(
        "cannot_unpack",
        "E0506",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    a, b = x -> relu
    output a
}
""",
        expected="""\
example.model:3:5: error[E0506]: cannot unpack a tensor [B, 3, 32, 32] into 2 names
   |
 3 |     a, b = x -> relu
   |     ^^^^^^^^^^^^^^^^""",
    ),
    Case(
        "layer_as_value",
        "E0506",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    act = relu
    output x -> act
}
""",
        expected="""\
example.model:3:11: error[E0506]: 'relu' is a layer, not a value
   |
 3 |     act = relu
   |           ^^^^
  = hint: apply it: x -> relu or relu(x)""",
    ),
    Case(
        "division_by_zero",
        "E0507",
        spec="""\
model M(groups: int = 0) {
    input x: [B, 64, 32, 32]
    output x -> conv(64 // groups, k=3)
}
""",
        expected="""\
example.model:3:22: error[E0507]: division by zero
   |
 3 |     output x -> conv(64 // groups, k=3)
   |                      ^^^^^^^^^^^^""",
    ),
    Case(
        "repeat_limit",
        "E0508",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> repeat 1000000 relu
}
""",
        expected="""\
example.model:3:24: error[E0508]: repeat count 1,000,000 is over the limit of 100,000
   |
 3 |     output x -> repeat 1000000 relu
   |                        ^^^^^^^""",
    ),
    Case(
        "output_not_tensor",
        "E0509",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output channels(x)
}
""",
        expected="""\
example.model:3:12: error[E0509]: an output must be a tensor, not 3
   |
 3 |     output channels(x)
   |            ^^^^^^^^^^^""",
    ),
    Case(
        "tensor_as_attribute",
        "E0509",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=x)
}
""",
        expected="""\
example.model:3:26: error[E0509]: a tensor cannot be an attribute of conv
   |
 3 |     output x -> conv(16, k=x)
   |                          ^^^
  = hint: tensor inputs come first: op(x, y, attr=...)""",
    ),
    Case(
        "builtin_as_step",
        "E0509",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> channels(x)
}
""",
        expected="""\
example.model:3:17: error[E0509]: channels() is a compile-time function, not a layer
   |
 3 |     output x -> channels(x)
   |                 ^^^^^^^^^^^""",
    ),
    Case(
        "training_output_in_block",
        "E0510",
        spec="""\
block Head {
    input x
    output training x -> fc: linear(2)
}
model M {
    input x: [B, 4]
    output x -> head: Head
}
""",
        expected="""\
example.model:3:12: error[E0510]: a block's output cannot be training-only: `output training` marks an output of a model
   |
 3 |     output training x -> fc: linear(2)
   |            ^^^^^^^^
  = note: in block Head, instantiated as head at example.model:7:23
  = hint: output the value from the block, and mark the model's output: output training aux = ...""",
    ),
    Case(
        "every_output_training_only",
        "E0510",
        spec="""\
model M {
    input x: [B, 4]
    output training aux = x -> fc: linear(2)
}
""",
        expected="""\
example.model:3:12: error[E0510]: every output of model M is training-only: in eval mode, forward would return nothing
   |
 3 |     output training aux = x -> fc: linear(2)
   |            ^^^^^^^^
  = hint: output the model's prediction without `training`""",
    ),
    Case(
        "training_keyword_alone",
        "E0101",
        spec="""\
model M {
    input training: [B, 4]
    output training
}
""",
        expected="""\
example.model:4:1: error[E0101]: unexpected '}', expected an expression
   |
 4 | }
   | ^
  = hint: after 'output', 'training' marks a training-only output (`output training aux = ...`); to output a value named training, rename it""",
    ),
    Case(
        "param_value",
        "E0601",
        spec="""\
model M(width: int = 16) {
    input x: [B, 3, 32, 32]
    output x -> conv(width, k=3)
}
""",
        expected="""\
error[E0601]: --param width=wide: expected a value of type int""",
        args=("--param", "width=wide"),
        api=None,
    ),
    Case(
        "unknown_param",
        "E0601",
        spec="""\
model M(width: int = 16) {
    input x: [B, 3, 32, 32]
    output x -> conv(width, k=3)
}
""",
        expected="""\
error[E0601]: --param widht: no such model parameter
  = hint: did you mean 'width'?""",
        args=("--param", "widht=32"),
        api=None,
    ),
    Case(
        "input_value",
        "E0601",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3)
}
""",
        expected="""\
error[E0601]: --input 'x=1,3,0,32': '0' is not a positive integer or a symbol""",
        args=("--input", "x=1,3,0,32"),
        api=None,
    ),
    Case(
        "unknown_input",
        "E0601",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3)
}
""",
        expected="""\
error[E0601]: --input image: model M has no input 'image'
  = hint: inputs: x""",
        args=("--input", "image=1,3,64,64"),
        api=None,
    ),
    Case(
        "value_as_step",
        "E0203",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    y = x -> relu
    output x -> y
}
""",
        expected="""\
example.model:4:17: error[E0203]: 'y' is a tensor [B, 3, 32, 32], not an op or block
   |
 4 |     output x -> y
   |                 ^""",
    ),
    Case(
        "input_dimension",
        "E0404",
        spec="""\
model M {
    input x: [B, 0, 32, 32]
    output x -> relu
}
""",
        expected="""\
example.model:2:18: error[E0404]: a dimension of input 'x' must be an integer from 1 to 2,147,483,647 or a symbol like B, got 0
   |
 2 |     input x: [B, 0, 32, 32]
   |                  ^""",
    ),
    Case(
        "unpacked_outputs",
        "E0509",
        spec="""\
block Pair {
    input x
    output x -> relu, x -> sigmoid
}

model M {
    input x: [B, 3, 32, 32]
    output x -> Pair
}
""",
        expected="""\
example.model:8:12: error[E0509]: an output must be a tensor, not a list [a tensor [B, 3, 32, 32], a tensor [B, 3, 32, 32]]
   |
 8 |     output x -> Pair
   |            ^^^^^^^^^
  = hint: unpack it first: a, b = ..., then output a, b""",
    ),
    Case(
        "keyword_argument_hint",
        "E0101",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, 2*s=1)
}
""",
        expected="""\
example.model:3:34: error[E0101]: unexpected '=', expected one of '(', ')', '*', '/', '//', '%' or '@', '**', '+' or '-', ',', '->', '..', ...
   |
 3 |     output x -> conv(16, k=3, 2*s=1)
   |                                  ^
  = hint: keyword arguments are written `name=value` inside a call""",
    ),
    Case(
        "reserved_word_as_label",
        "E0101",
        spec="""\
model M {
    input x: [B, 8]
    y = x -> model: linear(8)
    output y
}
""",
        expected="""\
example.model:3:14: error[E0101]: unexpected 'model', expected one of '(', '[', 'for', 'repeat', a name, a quoted label ("model": ...)
   |
 3 |     y = x -> model: linear(8)
   |              ^^^^^
  = hint: 'model' is a reserved word; to name a module 'model', quote the label: "model": ...""",
    ),
    Case(
        "for_without_a_tensor",
        "E0101",
        spec="""\
model M {
    input x: [B, 8]
    ys = for i in 0..4 { linear(8) }
    output ys
}
""",
        expected="""\
example.model:3:16: error[E0101]: unexpected 'in', expected one of ',', '='
   |
 3 |     ys = for i in 0..4 { linear(8) }
   |                ^^
  = hint: 'for' is a step: it applies to the tensor before it, as in `y = x -> for i in 0..4 { ... }`""",
    ),
    Case(
        "torch_style_linear",
        "E0405",
        spec="""\
model M {
    input x: [B, 32, 8, 8]
    output x -> flatten -> linear(32 * 8 * 8, 128)
}
""",
        expected="""\
example.model:3:35: error[E0405]: linear takes 1 positional attribute(s) (out_features), got 2
   |
 3 |     output x -> flatten -> linear(32 * 8 * 8, 128)
   |                                   ^^^^^^^^^^
  = hint: linear infers in_features from its input tensor: write linear(128)""",
    ),
    Case(
        "torch_style_conv",
        "E0405",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(3, 64, 3, 1, 1) -> batchnorm(64)
}
""",
        expected="""\
example.model:3:22: error[E0405]: conv takes 2 positional attribute(s) (out_channels, k), got 5
   |
 3 |     output x -> conv(3, 64, 3, 1, 1) -> batchnorm(64)
   |                      ^
  = hint: conv infers in_channels from its input tensor: write conv(64, 3, s=1, p=1)""",
    ),
    Case(
        "torch_style_batchnorm",
        "E0405",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(64, 3) -> batchnorm(64)
}
""",
        expected="""\
example.model:3:42: error[E0405]: batchnorm takes 0 positional attribute(s) (none), got 1
   |
 3 |     output x -> conv(64, 3) -> batchnorm(64)
   |                                          ^^
  = hint: batchnorm infers num_features from its input tensor: write batchnorm""",
    ),
    Case(
        "inferred_attribute",
        "E0401",
        spec="""\
model M {
    input x: [B, 512]
    output x -> linear(in_features=512, out_features=10)
}
""",
        expected="""\
example.model:3:24: error[E0401]: linear has no attribute 'in_features'
   |
 3 |     output x -> linear(in_features=512, out_features=10)
   |                        ^^^^^^^^^^^^^^^
  = hint: linear infers in_features from its input tensor: leave it out""",
    ),
    Case(
        "torch_op_name",
        "E0203",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> Conv2d(16, 3) -> BatchNorm2d -> ReLU
}
""",
        expected="""\
example.model:3:17: error[E0203]: unknown op or block 'Conv2d'
   |
 3 |     output x -> Conv2d(16, 3) -> BatchNorm2d -> ReLU
   |                 ^^^^^^
  = hint: did you mean 'conv'?""",
    ),
    Case(
        "elementwise_product_named_as_numpy",
        "E0203",
        spec="""\
model M {
    input x: [B, 512]
    gate = x -> linear(512) -> sigmoid
    output x -> multiply(gate)
}
""",
        expected="""\
example.model:4:17: error[E0203]: unknown op or block 'multiply'
   |
 4 |     output x -> multiply(gate)
   |                 ^^^^^^^^
  = hint: did you mean 'mul'? (also written a * b)""",
    ),
    Case(
        "no_function_suggested_for_a_step",
        "E0203",
        spec="""\
model M {
    input x: [B, 512]
    output x -> lenn
}
""",
        expected="""\
example.model:3:17: error[E0203]: unknown op or block 'lenn'
   |
 3 |     output x -> lenn
   |                 ^^^^""",
    ),
    Case(
        "function_suggested_for_a_value",
        "E0203",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(chanels(x), k=3)
}
""",
        expected="""\
example.model:3:22: error[E0203]: unknown op or block 'chanels'
   |
 3 |     output x -> conv(chanels(x), k=3)
   |                      ^^^^^^^
  = hint: did you mean 'channels'?""",
    ),
    Case(
        "add_channels",
        "E0301",
        spec="""\
model M {
    input x: [B, 64, 56, 56]
    y = x -> conv(128, k=3, s=2, p=1)
    output y + x
}
""",
        expected="""\
example.model:4:12: error[E0301]: cannot add tensors of shapes [B, 128, 28, 28] and [B, 64, 56, 56]
   |
 4 |     output y + x
   |            ^^^^^
  = hint: dimension 1 differs (128 vs 64); + broadcasts only sizes that are equal or 1: project the [B, 64, 56, 56] operand to 128 channels (and its spatial size) with a 1x1 convolution, e.g. conv(128, k=1, s=2), as a ResNet shortcut does""",
    ),
    Case(
        "add_features",
        "E0301",
        spec="""\
model M {
    input x: [B, T, 64]
    y = x -> linear(128)
    output x + y
}
""",
        expected="""\
example.model:4:12: error[E0301]: cannot add tensors of shapes [B, T, 64] and [B, T, 128]
   |
 4 |     output x + y
   |            ^^^^^
  = hint: dimension 2 differs (64 vs 128); + broadcasts only sizes that are equal or 1: project the [B, T, 64] operand, e.g. linear(128)""",
    ),
    Case(
        "bidi_in_comment",
        "E0102",
        spec="""\
model M {
    input x: [B, 8]    # \u202e}
    output x
}
""",
        expected="""\
example.model:2:26: error[E0102]: bidirectional control character U+202E
   |
 2 |     input x: [B, 8]    # \\u202e}
   |                          ^^^^^^
  = hint: it can make the line display in another order than modelc reads it; remove it""",
    ),
    Case(
        "escape_in_comment",
        "E0102",
        spec="""\
model M {
    input x: [B, 8]    # \x1b[2J
    output x
}
""",
        expected="""\
example.model:2:26: error[E0102]: control character U+001B
   |
 2 |     input x: [B, 8]    # \\x1b[2J
   |                          ^^^^
  = hint: remove it: a control character can change what a terminal shows""",
    ),
    Case(
        "line_separator",
        "E0102",
        spec="""\
model M {
    input x: [B, 8]    # the input\u2028output x -> relu
    output x
}
""",
        expected="""\
example.model:2:35: error[E0102]: line separator (U+2028): modelc does not take it for a line break, and other programs do
   |
 2 |     input x: [B, 8]    # the input\\u2028output x -> relu
   |                                   ^^^^^^
  = hint: lines end at LF, CRLF or CR; write a newline (or a space) instead""",
    ),
    Case(
        "unfinished_string",
        "E0102",
        spec="""\
model M {
    input x: [B, 8]
    output x -> gelu(approximate="tanh)
}
""",
        expected="""\
example.model:3:34: error[E0102]: unexpected character '"'
   |
 3 |     output x -> gelu(approximate="tanh)
   |                                  ^
  = hint: a string ends with " on the line where it starts (\\n in it is a line break)""",
    ),
    Case(
        "import_not_a_spec",
        "E0104",
        spec="""\
import "settings.txt"

model M {
    input x: [B, 8]
    output x
}
""",
        expected="""\
example.model:1:1: error[E0104]: settings.txt is not a modelc spec (line 1, column 6 does not parse; its text is not shown)
   |
 1 | import "settings.txt"
   | ^^^^^^^^^^^^^^^^^^^^^
  = hint: modelc shows the text of a file only if its name ends in .model, or from its first line that starts a model, block or import""",
        files={"settings.txt": "user alice\npassword hunter2\n"},
    ),
    Case(
        "power",
        "E0507",
        spec="""\
model M {
    input x: [B, 3, 32, 32]
    output x -> conv(16, k=3, p=int(0 ** -1))
}
""",
        expected="""\
example.model:3:37: error[E0507]: 0 ** -1 cannot be computed
   |
 3 |     output x -> conv(16, k=3, p=int(0 ** -1))
   |                                     ^^^^^^^""",
    ),
]

API_CASES = [c for c in CASES if c.api is not None]


def ids(cases):
    return [f"{c.code}-{c.id}" for c in cases]


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(case: Case, where) -> None:
    (where / "example.model").write_text(case.spec, encoding="utf-8")
    for name, text in case.files.items():
        (where / name).write_text(text, encoding="utf-8")


def run_cli(*argv: str) -> tuple[int, str, str]:
    """`modelc ARGV` in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(argv))
    return status, out.getvalue(), err.getvalue()


# ---- every case, both ways ------------------------------------------------------------
@pytest.mark.parametrize("case", CASES, ids=ids(CASES))
def test_cli_prints_the_exact_diagnostic(case, workdir):
    write(case, workdir)
    status, out, err = run_cli("check", "example.model", *case.args)
    assert (status, out) == (1, "")
    assert err == case.expected + "\n"
    assert f"error[{case.code}]" in err.splitlines()[0]


@pytest.mark.parametrize("case", API_CASES, ids=ids(API_CASES))
def test_api_raises_the_exact_diagnostic(case, workdir):
    write(case, workdir)
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model", **case.api)
    assert info.value.render() == case.expected
    assert str(info.value) == case.expected
    assert info.value.diagnostics[0].code == case.code


def test_every_code_has_a_case():
    # Codes a Case (a spec file and a command) cannot show, and where each is tested:
    # E0106 (binary files): test_robustness.py::test_binary_data_is_one_line, tests/test_lsp.py;
    # E0602: test_render_without_graphviz; E0603 (compile --verify): tests/test_verify.py;
    # E0604: test_output_that_cannot_be_written; E0605 (bench): tests/test_bench.py;
    # E0606 (export): tests/test_export.py; E0607: test_running_a_module_without_torch;
    # E0701-E0709 (import, from Python modules): tests/test_import.py and their examples in
    # docs/errors.md (tests/test_docs.py); W0501: test_unused_values_warn_once_per_place;
    # W0502: tests/test_training.py::test_with_symbolic_sizes_training_may_need_larger_inputs.
    elsewhere = {"E0106", "E0602", "E0603", "E0604", "E0605", "E0606", "E0607", "W0501", "W0502"}
    elsewhere |= {f"E070{i}" for i in range(1, 10)}
    covered = {c.code for c in CASES} | elsewhere
    assert sorted(covered) == sorted(CODES)


def test_case_ids_are_unique():
    assert len({c.id for c in CASES}) == len(CASES)


# ---- the structure behind the text ------------------------------------------------------
def test_diagnostic_fields(workdir):
    (workdir / "example.model").write_text(
        "model M {\n    input x: [B, 3, 32, 32]\n    output x -> conv(16, k=3, pad=1)\n}\n"
    )
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model")
    [d] = info.value.diagnostics
    assert (d.code, d.message, d.hint, d.notes) == (
        "E0401",
        "conv has no attribute 'pad'",
        "did you mean 'padding'?",
        (),
    )
    assert (d.span.file, d.span.line, d.span.col, d.span.end_line, d.span.end_col) == (
        "example.model", 3, 31, 3, 36)  # fmt: skip
    assert str(d.span) == "example.model:3:31"
    assert d.render() == info.value.render()


def test_compile_source_names_its_path():
    text = "model M {\n    input x: [B, 3, 32, 32]\n    output y\n}\n"
    expected = """\
{path}:3:12: error[E0201]: undefined name 'y'
   |
 3 |     output y
   |            ^"""
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text, "inline.model")
    assert info.value.render() == expected.format(path="inline.model")
    with pytest.raises(SpecError) as info:
        modelc.compile_source(text)
    assert info.value.render() == expected.format(path="<string>")


@pytest.mark.parametrize("call", [modelc.compile_file, modelc.load, modelc.graph])
def test_every_api_entry_raises_spec_errors(call, workdir):
    (workdir / "example.model").write_text(
        "model M {\n    input x: [B, 3]\n    output x -> relu(2)\n}\n"
    )
    with pytest.raises(SpecError) as info:
        call("example.model")
    assert info.value.diagnostics[0].code == "E0405"


def test_api_model_parameter_errors(workdir):
    (workdir / "example.model").write_text(
        "model M(width: int = 16) {\n    input x: [B, 3, 32, 32]\n    output x -> conv(width, k=3)\n}\n"
    )
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model", depth=3)
    expected = """\
example.model:1:7: error[E0405]: model M has no parameter 'depth'
   |
 1 | model M(width: int = 16) {
   |       ^
  = hint: did you mean 'width'?"""
    assert info.value.render() == expected
    # The value comes from the caller, so the caret is on the parameter's declaration.
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model", width="wide")
    expected = """\
example.model:1:9: error[E0407]: parameter 'width' of model M is int, got "wide" (str)
   |
 1 | model M(width: int = 16) {
   |         ^^^^^^^^^^^^^^^"""
    assert info.value.render() == expected


def test_model_parameter_without_a_value(workdir):
    (workdir / "example.model").write_text(
        "model M(width: int) {\n    input x: [B, 3, 32, 32]\n    output x -> conv(width, k=3)\n}\n"
    )
    expected = """\
example.model:1:9: error[E0405]: model M needs argument 'width'
   |
 1 | model M(width: int) {
   |         ^^^^^^^^^^
  = hint: pass --param width=VALUE, or give it a default"""
    assert run_cli("check", "example.model") == (1, "", expected + "\n")
    assert run_cli("check", "example.model", "--param", "width=8")[0] == 0


def test_load_needs_one_model(workdir):
    (workdir / "example.model").write_text(
        "model A {\n    input x: [B, 3]\n    output x\n}\nmodel C {\n    input x: [B, 3]\n    output x\n}\n"
    )
    with pytest.raises(SpecError) as info:
        modelc.load("example.model")
    assert (
        info.value.render()
        == "error[E0504]: example.model defines several models (A, C); pass model=..."
    )
    assert modelc.load("example.model", model="C").__name__ == "C"


# ---- several errors, and errors inside blocks ------------------------------------------
def test_independent_errors_are_all_reported(workdir):
    (workdir / "example.model").write_text("""\
model M {
    input x: [B, 3, 32, 32]
    a = x -> conv(16, k=3, pad=1)
    b = x -> conv2d(16, k=3)
    c = a -> relu
    output c + d
}
""")
    expected = """\
example.model:3:28: error[E0401]: conv has no attribute 'pad'
   |
 3 |     a = x -> conv(16, k=3, pad=1)
   |                            ^^^^^
  = hint: did you mean 'padding'?

example.model:4:14: error[E0203]: unknown op or block 'conv2d'
   |
 4 |     b = x -> conv2d(16, k=3)
   |              ^^^^^^
  = hint: did you mean 'conv'?

example.model:6:16: error[E0201]: undefined name 'd'
   |
 6 |     output c + d
   |                ^

3 errors"""
    assert run_cli("check", "example.model") == (1, "", expected + "\n")
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model")
    assert [d.code for d in info.value.diagnostics] == ["E0401", "E0203", "E0201"]
    assert info.value.render() == expected


def test_a_failed_binding_is_reported_once(workdir):
    # `a` fails; its uses (`b`, the output) stay silent instead of cascading.
    (workdir / "example.model").write_text("""\
model M {
    input x: [B, 3, 32, 32]
    a = x -> conv(16, k=3, pad=1)
    b = a -> relu -> a
    output b + a
}
""")
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model")
    assert [d.code for d in info.value.diagnostics] == ["E0401"]


def test_an_error_in_a_block_is_reported_once(workdir):
    (workdir / "example.model").write_text("""\
block Stem {
    input x
    output x -> conv(16, k=3, pad=1)
}

model M {
    input x: [B, 3, 32, 32]
    a = x -> Stem
    b = x -> Stem
    c = x -> conv(16, k=3, strides=2)
    output a + b + c
}
""")
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model")
    # Both instances of Stem fail alike: one diagnostic, with the first instance's
    # chain; the model's own mistake is reported beside it.
    assert [(d.code, d.span.line) for d in info.value.diagnostics] == [
        ("E0401", 3),
        ("E0401", 10),
    ]
    stem, model = info.value.diagnostics
    assert [n.message for n in stem.notes] == ["in block Stem, instantiated as stem"]
    assert model.notes == ()


BOTTLENECK = """\
block Bottleneck(width: int, stride: int = 1) {
    input x
    out = x -> conv1: conv(width, k=1, bias=false) -> bn1: batchnorm -> relu
            -> conv2: conv(width, k=3, s=stride, p=1, bias=false) -> bn2: batchnorm -> relu
            -> conv3: conv(width * 4, k=1, bias=false) -> bn3: batchnorm
    output relu(out + x)
}

model ResNet {
    input image: [B, 64, 56, 56]
    x = image -> layer1: for i in 0..2 { Bottleneck(16) }
    x = x -> layer2: for i in 0..4 { Bottleneck(32, stride = 2 if i == 0 else 1) }
    output x
}
"""


def test_error_in_a_block_names_the_instantiation(workdir):
    # layer1 is fine (64 = 16 * 4 channels in and out); layer2.0 changes the shape
    # but has no downsample branch, so its residual add fails.
    (workdir / "example.model").write_text(BOTTLENECK)
    expected = """\
example.model:6:17: error[E0301]: cannot add tensors of shapes [B, 128, 28, 28] and [B, 64, 56, 56]
   |
 6 |     output relu(out + x)
   |                 ^^^^^^^
  = note: in block Bottleneck, instantiated as layer2.0 at example.model:12:38
  = hint: dimension 1 differs (128 vs 64); + broadcasts only sizes that are equal or 1: project the [B, 64, 56, 56] operand to 128 channels (and its spatial size) with a 1x1 convolution, e.g. conv(128, k=1, s=2), as a ResNet shortcut does"""
    assert run_cli("check", "example.model") == (1, "", expected + "\n")
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model")
    [d] = info.value.diagnostics
    assert [(n.message, n.span.line, n.span.col) for n in d.notes] == [
        ("in block Bottleneck, instantiated as layer2.0", 12, 38)]  # fmt: skip


def test_nested_blocks_list_every_instantiation_innermost_first(workdir):
    (workdir / "example.model").write_text("""\
block Unit(width: int) {
    input x
    output x -> conv(width, k=3, p=1) -> batchnorm -> relu
}

block Stage(width: int) {
    input x
    y = x -> units: repeat 2 Unit(width)
    output y + x
}

model Net {
    input image: [B, 3, 32, 32]
    output image -> stem: conv(8, k=3, p=1) -> stages: [Stage(8), Stage(16)]
}
""")
    expected = """\
example.model:9:12: error[E0301]: cannot add tensors of shapes [B, 16, 32, 32] and [B, 8, 32, 32]
   |
 9 |     output y + x
   |            ^^^^^
  = note: in block Stage, instantiated as stages.1 at example.model:14:67
  = hint: dimension 1 differs (16 vs 8); + broadcasts only sizes that are equal or 1: project the [B, 8, 32, 32] operand to 16 channels with a 1x1 convolution, e.g. conv(16, k=1), as a ResNet shortcut does"""
    assert run_cli("check", "example.model") == (1, "", expected + "\n")

    (workdir / "example.model").write_text("""\
block Unit(width: int) {
    input x
    output x -> conv(width, k=3, p=1, pad=1)
}

block Stage(width: int) {
    input x
    output x -> units: repeat 2 Unit(width)
}

model Net {
    input image: [B, 3, 32, 32]
    output image -> stages: [Stage(8)]
}
""")
    with pytest.raises(SpecError) as info:
        modelc.compile_file("example.model")
    d = info.value.diagnostics[0]
    assert [(n.message, n.span.line) for n in d.notes] == [
        ("in block Unit, instantiated as stages.0.units.0", 8),
        ("in block Stage, instantiated as stages.0", 13),
    ]
    assert info.value.render().splitlines()[4:6] == [
        "  = note: in block Unit, instantiated as stages.0.units.0 at example.model:8:33",
        "  = note: in block Stage, instantiated as stages.0 at example.model:13:30",
    ]


# ---- the command line: exit codes, no tracebacks ----------------------------------------
SUBPROCESS_CASES = [c for c in CASES if c.id in ("syntax_trailing_arrow", "unknown_op", "add_shapes",
                                                  "recursion", "unknown_param")]  # fmt: skip


@pytest.mark.parametrize("case", SUBPROCESS_CASES, ids=ids(SUBPROCESS_CASES))
def test_cli_subprocess(case, workdir):
    write(case, workdir)
    proc = subprocess.run([sys.executable, "-m", "modelc.cli", "check", "example.model", *case.args],
                          check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert (proc.returncode, proc.stdout, proc.stderr) == (1, "", case.expected + "\n")


@pytest.mark.parametrize("command", ["check", "summary", "compile"])
def test_every_command_reports_spec_errors_alike(command, workdir):
    case = next(c for c in CASES if c.id == "unknown_attribute")
    write(case, workdir)
    assert run_cli(command, "example.model") == (1, "", case.expected + "\n")


def test_compile_writes_nothing_on_error(workdir):
    case = next(c for c in CASES if c.id == "unknown_attribute")
    write(case, workdir)
    assert run_cli("compile", "example.model", "-o", "out/model.py")[0] == 1
    assert not (workdir / "out").exists()


def test_output_that_cannot_be_written(workdir):
    case = next(c for c in CASES if c.id == "unknown_op")
    (workdir / "example.model").write_text(case.spec.replace("conv2d", "conv"))
    assert run_cli("compile", "example.model", "-o", "example.model/model.py") == (
        1, "", "error[E0604]: cannot write example.model/model.py: example.model is a file, not a "
        "directory\n")  # fmt: skip
    assert run_cli("compile", "example.model", "-o", "example.model") == (
        1, "", "error[E0601]: will not write the output over the spec example.model\n"
        "  = hint: write it to another file, e.g. example.py\n")  # fmt: skip


def test_missing_spec_file(workdir):
    expected = "error[E0104]: cannot read nope.model: No such file or directory\n"
    assert run_cli("check", "nope.model") == (1, "", expected)


def test_spec_that_is_not_utf8(workdir):
    (workdir / "example.model").write_bytes(b"model M {\n    input x\xe9: [B, 8]\n")
    expected = ("example.model:2:12: error[E0104]: not UTF-8 text (byte 0xe9)\n"
                "  = hint: modelc reads specs as UTF-8: save the file in that encoding\n")  # fmt: skip
    assert run_cli("check", "example.model") == (1, "", expected)


def test_bad_usage_exits_2(workdir):
    argv = [sys.executable, "-m", "modelc.cli", "check"]
    proc = subprocess.run(argv, check=False, capture_output=True, text=True)
    assert proc.returncode == 2
    assert "usage: modelc check" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_internal_error_exits_3_without_a_traceback(workdir, monkeypatch):
    case = next(c for c in CASES if c.id == "unknown_attribute")
    write(case, workdir)

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("modelc.cli.build_all", broken)
    status, out, err = run_cli("check", "example.model")
    assert (status, out) == (3, "")
    assert err == ("modelc: internal error (RuntimeError): boom\n"
                   "modelc: this is a bug in modelc, not in your spec; rerun with --traceback and report it\n")  # fmt: skip
    status, out, err = run_cli("check", "example.model", "--traceback")
    assert status == 3 and err.startswith("Traceback")


def test_valid_spec_exits_0(workdir):
    (workdir / "example.model").write_text(
        BOTTLENECK.replace("output relu(out + x)", "output relu(out)")
    )
    status, out, err = run_cli("check", "example.model")
    assert (status, err) == (0, "")
    assert out.startswith("example.model: ok: ResNet: ")


def test_render_without_graphviz(workdir, monkeypatch):
    (workdir / "example.model").write_text(
        "model M {\n    input x: [B, 3, 32, 32]\n    output x -> conv(16, k=3)\n}\n"
    )
    monkeypatch.setattr("modelc.render.dot_binary", lambda: None)
    status, out, err = run_cli("render", "example.model", "-o", "net.svg")
    assert (status, out) == (1, "")
    assert err == (
        "error[E0602]: Graphviz not found: cannot draw net.svg (the `dot` program is missing); "
        "wrote net.dot instead\n"
        "  = hint: install Graphviz (apt install graphviz, brew install graphviz, or conda install "
        "graphviz), or ask for a .dot file\n"
    )
    assert (workdir / "net.dot").read_text().startswith("digraph")
    assert not (workdir / "net.svg").exists()


def test_unused_values_warn_once_per_place(workdir):
    """W0501: a value no output uses is still built and computed (the spec says so), and said;
    a block's unused value warns once, not once per instance."""
    (workdir / "example.model").write_text(
        "block B {\n    input x\n    side = x -> probe: linear(2)\n    output x -> relu\n}\n"
        "model M {\n    input x: [B, 4]\n    y = x -> repeat 3 B\n    z = y -> sigmoid\n"
        "    output y -> head: linear(1)\n}\n"
    )
    status, out, err = run_cli("compile", "example.model", "-o", "m.py")
    assert (status, out) == (0, "")
    assert err.count("warning[W0501]") == 2
    assert "example.model:3:24: warning[W0501]: 'side' is computed but never used" in err
    assert "note: its layers (b.probe, b_1.probe, b_2.probe) hold 30 parameters" in err
    assert "note: once in each of 3 block instances" in err
    assert "example.model:9:14: warning[W0501]: 'z' is computed but never used" in err
    source = (workdir / "m.py").read_text()
    # computed as written: the layer (its parameters are used); the parameter-free sigmoid would
    # compute nothing, and is left out (live_units in emit_tree.py)
    assert source.count("self.probe(") == 1 and "torch.sigmoid(" not in source
    with pytest.warns(modelc.SpecWarning) as caught:
        assert "self.probe" not in modelc.compile_file("example.model", optimize=1)  # -O1 removes it
    assert [str(w.message).split(": ")[1:3] for w in caught] == [["warning[W0501]", "'side' is computed but never used"],
                                                                  ["warning[W0501]", "'z' is computed but never used"]]
    assert caught[0].filename == __file__
    graph = modelc.graph("example.model")
    assert [w.code for w in graph.warnings] == ["W0501", "W0501"]
    assert graph.num_params() == 30 + 5


def test_an_unused_block_warns_at_its_call_and_a_discarded_block_output_does_not(workdir):
    (workdir / "example.model").write_text(
        "block Aux {\n    input x\n    output x -> fc: linear(3)\n}\n"
        "block Two {\n    input x\n    output x -> relu, x -> p: linear(2)\n}\n"
        "model N {\n    input x: [B, 4]\n    a = x -> auxhead: Aux\n    u, _ = x -> Two\n    output u\n}\n"
    )
    [warning] = modelc.graph("example.model").warnings
    assert warning.render() == (
        "example.model:11:23: warning[W0501]: 'a' is computed but never used: no output depends on it\n"
        "    |\n"
        " 11 |     a = x -> auxhead: Aux\n"
        "    |                       ^^^\n"
        "  = note: its layers (auxhead.fc) hold 15 parameters, which are built, counted and run in forward\n"
        "  = hint: use it in an output (`output training` where only training needs it) or delete it (-O1 removes it)"
    )


def test_the_zoo_has_no_warnings():
    from conftest import spec_names, spec_path

    for name in spec_names():
        for g in build_all(load_file(spec_path(name))):
            assert g.warnings == [], (name, [w.render() for w in g.warnings])


@pytest.mark.parametrize("api", ["load", "load_source"])
def test_running_a_module_without_torch(workdir, monkeypatch, api):
    """Compiling needs no torch; running does, and says how to get it (not a raw ImportError)."""
    spec = "model M {\n    input x: [B, 3, 32, 32]\n    output x -> conv(16, k=3)\n}\n"
    (workdir / "example.model").write_text(spec)
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` raises ImportError
    assert "class M(nn.Module)" in modelc.compile_file("example.model")
    with pytest.raises(SpecError) as info:
        modelc.load("example.model") if api == "load" else modelc.load_source(spec)
    assert info.value.diagnostics[0].code == "E0607"
    assert str(info.value) == (
        f"error[E0607]: modelc.{api} needs torch, which is not installed\n"
        '  = hint: pip install "modelc[torch]" (or the torch build for your machine, from pytorch.org)'
    )
    status, out, err = run_cli("compile", "example.model", "--verify")
    assert status == 1 and "class M(nn.Module)" in out
    assert err.startswith("error[E0607]: --verify needs torch, which is not installed; "
                          "the module was written to standard output\n")
    status, _, err = run_cli("bench", "example.model")
    assert status == 1 and err.startswith("error[E0607]: modelc bench needs torch")


def test_broken_pipe_is_not_an_internal_error(workdir):
    # `modelc summary big.model | head -1`: a table larger than the pipe's buffer,
    # whose reader leaves after the first byte.
    (workdir / "big.model").write_text(
        "model Big {\n    input x: [B, 8]\n    output x -> repeat 5000 relu\n}\n"
    )
    code = (
        "import subprocess, sys\n"
        "p = subprocess.Popen([sys.executable, '-m', 'modelc.cli', 'summary', 'big.model'],\n"
        "                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)\n"
        "p.stdout.read(1); p.stdout.close()\n"
        "print(p.wait(), repr(p.stderr.read().decode()))\n"
    )
    argv = [sys.executable, "-c", code]
    proc = subprocess.run(argv, check=True, capture_output=True, text=True, timeout=300)
    assert proc.stdout == "141 ''\n"  # no message, no traceback: SIGPIPE's status
