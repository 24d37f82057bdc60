"""Layout ops: move, regroup and pick elements without arithmetic.

transpose, permute, reshape/view (dimensions may be symbolic: `reshape([B, T, heads, -1])`),
unsqueeze, expand, split/chunk/unbind (several outputs), select/slice and index_select; Swin's
windows, roll and pixel_shuffle are in window.py.

NOTE: [Symbolic sizes in generated code] A target size that is a symbol (`T`,
`B*T`, `floor(H/7)`) is written in terms of the input's runtime sizes: an input
dimension equal to it (`x.shape[1]`), else an expression over the input's
symbols (`x.shape[0] * x.shape[1]`), else `-1` (at most once). Generated code
never bakes in a size that the spec left symbolic.

NOTE: [Sizes from other tensors] After `flatten(0, 1)` has merged [B, T, C] into
[B*T, C], the input of `reshape([B, T, C])` no longer has B or T as a dimension. So
reshape and view (`size_inputs`) may read more tensors than the one they reshape, for
their sizes only: where a target size cannot be written from the input's sizes, the
elaborator adds the inputs of the enclosing block or model that have it (it is bound from
one of them: `input x: [B, T, C]`), and the size is written from theirs: `h.reshape(x.shape[0],
x.shape[1], 64)`, the run's sizes, never the example's. The extra edges are true
dependencies (the order of evaluation, what a pass may drop), and draw as such.
"""

from __future__ import annotations

from modelc.ops._util import need_ids, norm_dim, numel, prod
from modelc.ops.base import Attr, Ctor, OpDef, OpError, register
from modelc.pyformat import CallExpr
from modelc.symbolic import Dim, Sym
from modelc.types import TensorType

__all__ = ["dim_code", "exact_div", "sizes_code", "size_keys"]


# ---- symbolic helpers ------------------------------------------------------------------
def exact_div(p: Dim, q: Dim) -> Dim | None:
    """p / q when q divides p exactly (as polynomials), else None."""
    if isinstance(q, int):
        if q == 0:
            return None
        if isinstance(p, int):
            return p // q if p % q == 0 else None
        if all(c % q == 0 for c in p.terms.values()):
            return Sym.make({m: c // q for m, c in p.terms.items()})
        return None
    if p == q:
        return 1
    if len(q.terms) != 1:
        return None
    ((qm, qc),) = q.terms.items()
    out = {}
    for m, c in Sym.lift(p).terms.items():
        rest = list(m)
        for atom in qm:
            if atom not in rest:
                return None
            rest.remove(atom)
        if c % qc:
            return None
        out[tuple(rest)] = c // qc
    return Sym.make(out)


def dim_code(d: Dim, dims: tuple[Dim, ...]) -> str | None:
    """Python code for size d from the sizes `dims` of input `{0}`, or None (see the NOTE)."""
    return sizes_code(d, [dims])


def sizes_code(d: Dim, sources: list[tuple[Dim, ...]]) -> str | None:
    """Python code for size d from the sizes of inputs `{0}`, `{1}`, ... (`sources`: their
    dimensions), the first that has it first, or None (NOTE: [Sizes from other tensors])."""
    if isinstance(d, int):
        return str(d)
    for k, dims in enumerate(sources):
        for i, have in enumerate(dims):
            if have == d:
                return f"{{{k}}}.shape[{i}]"
    names: dict[str, str] = {}
    for k, dims in enumerate(sources):
        for i, have in enumerate(dims):
            key = _symbol(have)
            if key is not None:
                names.setdefault(key, f"{{{k}}}.shape[{i}]")
    return _poly_code(d, names)


def size_keys(dims: tuple[Dim, ...]) -> set:
    """What a tensor of these dimensions gives `sizes_code`: its symbolic dimensions, and the
    names of those that are one symbol."""
    return {d for d in dims if isinstance(d, Sym)} | {_symbol(d) for d in dims} - {None}


def _symbol(d: Dim) -> str | None:
    """The name of a dimension that is one symbol (`T`), else None."""
    if isinstance(d, Sym) and len(d.terms) == 1:
        ((m, c),) = d.terms.items()
        if c == 1 and len(m) == 1 and m[0].num is None:
            return m[0].key
    return None


def _poly_code(d: Dim, names: dict[str, str]) -> str | None:
    if isinstance(d, int):
        return str(d)
    parts = []
    for m, c in d.terms.items():
        factors = [] if c == 1 and m else [str(c)]
        for atom in m:
            if atom.num is not None:
                inner = _poly_code(atom.num, names)
                if inner is None:
                    return None
                factors.append(f"({inner} // {atom.den})")
            elif atom.key in names:
                factors.append(names[atom.key])
            else:
                return None
        parts.append(" * ".join(factors))
    return " + ".join(parts).replace("+ -", "- ")


def _same_size(op: str, a: TensorType, b_dims: tuple[Dim, ...]) -> None:
    if numel(a) != prod(b_dims):
        shape = "[" + ", ".join(str(d) for d in b_dims) + "]"
        raise OpError("E0301", f"{op}: cannot reshape {a} ({numel(a)} elements) to {shape} "
                      f"({prod(b_dims)} elements)")  # fmt: skip


def _index(rank_before: int, item: str) -> str:
    """`x[:, :, item]` as the subscript text."""
    return "[" + ":, " * rank_before + item + "]"


# ---- transpose and friends -----------------------------------------------------------------
@register
class Transpose(OpDef):
    name = "transpose"
    family = "tensor"
    doc = "Swaps two dimensions: transpose(k, -2, -1) is K^T for a batch of matrices."
    attrs = (Attr("dim0", "dim", positional=True), Attr("dim1", "dim", positional=True))
    outputs_layout = "strided"

    def resolve(self, a, ins):
        r = ins[0].rank
        return {**a, "axes": (norm_dim(a["dim0"], r, "transpose"), norm_dim(a["dim1"], r, "transpose"))}

    def infer(self, a, ins):
        d = list(ins[0].dims)
        i, j = a["axes"]
        d[i], d[j] = d[j], d[i]
        return [ins[0].with_dims(d)]

    def module(self, a):
        return Ctor("rt.Transpose", (a["dim0"], a["dim1"]))

    def reference(self, a, ins, w):
        return [ins[0].transpose(*a["axes"])]

    def call(self, a, args):
        return f"{args[0]}.transpose({a['dim0']}, {a['dim1']})"

    def label(self, a):
        return f"transpose({a['dim0']}, {a['dim1']})"


@register
class Permute(OpDef):
    name = "permute"
    family = "tensor"
    doc = "Reorders the dimensions: permute([0, 2, 3, 1]) makes NCHW channels-last."
    attrs = (Attr("dims", "ints", positional=True),)
    outputs_layout = "strided"

    def resolve(self, a, ins):
        r = ins[0].rank
        dims = a["dims"] if isinstance(a["dims"], tuple) else (a["dims"],)
        dims = tuple(norm_dim(d, r, "permute") for d in dims)
        if sorted(dims) != list(range(r)):
            raise OpError("E0404", f"permute: {list(dims)} is not an order of the {r} dimensions of {ins[0]}")
        return {**a, "dims": dims}

    def infer(self, a, ins):
        return [ins[0].with_dims(ins[0].dims[i] for i in a["dims"])]

    def module(self, a):
        return Ctor("rt.Permute", (a["dims"],))

    def reference(self, a, ins, w):
        return [ins[0].permute(a["dims"])]

    def call(self, a, args):
        return f"{args[0]}.permute({', '.join(map(str, a['dims']))})"

    def label(self, a):
        return f"permute{list(a['dims'])}"


@register
class Unsqueeze(OpDef):
    name = "unsqueeze"
    family = "tensor"
    doc = "Inserts a dimension of size 1 at dim."
    attrs = (Attr("dim", "dim", positional=True),)

    def resolve(self, a, ins):
        x = ins[0]
        dim = norm_dim(a["dim"], x.rank + 1, "unsqueeze")
        # The module form, nn.Unflatten, splits an existing dimension of size n into (1, n),
        # or into (n, 1) when the new dimension comes last.
        split = dim if dim < x.rank else dim - 1
        return {**a, "dim": dim, "split": split, "size": x.dims[split] if x.rank else None}

    def infer(self, a, ins):
        d = list(ins[0].dims)
        d.insert(a["dim"], 1)
        return [ins[0].with_dims(d)]

    def module(self, a):
        if a["dim"] == 0 or not isinstance(a["size"], int):
            return None
        sizes = (1, a["size"]) if a["split"] == a["dim"] else (a["size"], 1)
        return Ctor("nn.Unflatten", (a["split"], sizes))

    def reference(self, a, ins, w):
        return [ins[0].unsqueeze(a["dim"])]

    def call(self, a, args):
        return f"{args[0]}.unsqueeze({a['dim']})"


@register
class Expand(OpDef):
    name = "expand"
    family = "tensor"
    doc = ("Dimensions of size 1 repeated to the given sizes, without a copy (torch's expand); -1 keeps a "
           "size and new dimensions go in front: picks -> unsqueeze(-1) -> expand([B, T, k, D]).")  # fmt: skip
    attrs = (Attr("shape", "shape", positional=True, doc="a list of sizes: integers, symbols, -1 to keep one"),)
    outputs_layout = "strided"

    def resolve(self, a, ins):
        x, want = ins[0], list(a["shape"])
        new = len(want) - x.rank  # dimensions added in front
        if new < 0:
            raise OpError("E0404", f"expand: {len(want)} sizes for the {x.rank} dimensions of {x}",
                          "give a size, or -1, for every dimension")  # fmt: skip
        out = []
        for i, w in enumerate(want):
            have = x.dims[i - new] if i >= new else None
            if isinstance(w, int) and w < 1 and not (w == -1 and have is not None):
                raise OpError("E0404", f"expand: sizes must be positive, or -1 for a dimension of x, got {_text(want)}")
            if have is not None and w not in (-1, have) and have != 1:
                raise OpError("E0301", f"expand: dimension {i - new} of {x} is {have}, and only a size of 1 "
                              f"expands (to {w})")  # fmt: skip
            out.append(have if w == -1 else w)
        return {**a, "out": tuple(out), "sizes": _expand_sizes(tuple(out), x.dims, new)}

    def infer(self, a, ins):
        return [ins[0].with_dims(a["out"])]

    def reference(self, a, ins, w):
        x, out = ins[0], a["out"]  # a copy by repeat, not torch's expand
        padded = (1,) * (len(out) - x.dim()) + tuple(x.shape)
        return [x.reshape(padded).repeat(*(o // p for o, p in zip(out, padded)))]

    def call(self, a, args):
        sizes = [s if isinstance(s, int) else s.format(args[0]) for s in a["sizes"]]
        return CallExpr(f"{args[0]}.expand", [str(s) for s in sizes])

    def label(self, a):
        return f"expand {_text(a['out'])}"


def _expand_sizes(out: tuple[Dim, ...], dims: tuple[Dim, ...], new: int) -> tuple:
    """Each size for torch's expand: -1 where x keeps its size, else an int or code over `{0}`."""
    sizes: list = []
    for i, d in enumerate(out):
        if i >= new and dims[i - new] == d:
            sizes.append(-1)
            continue
        code = dim_code(d, dims)
        if code is None:
            raise OpError("E0304", f"expand: size {d} cannot be computed from the sizes of the input "
                          f"{_text(dims)}", "give that dimension a concrete size")  # fmt: skip
        sizes.append(int(code) if code.lstrip("-").isdigit() else code)
    return tuple(sizes)


@register
class Reshape(OpDef):
    name = "reshape"
    family = "tensor"
    doc = ("New dimensions of the same elements; one may be -1, symbols are kept: "
           "reshape([B, T, heads, -1]); a symbol the input lost (B after flatten(0, 1)) is "
           "read from the block's or model's input that has it.")  # fmt: skip
    attrs = (Attr("shape", "shape", positional=True, doc="a list of sizes: integers, symbols, one -1"),)
    method = "reshape"
    size_inputs = True  # NOTE: [Sizes from other tensors]

    def sizes(self, a):
        return a["shape"]

    def resolve(self, a, ins):
        x = ins[0]
        want = list(a["shape"])
        holes = [i for i, d in enumerate(want) if d == -1]
        if len(holes) > 1 or any(isinstance(d, int) and d < 1 and d != -1 for d in want):
            raise OpError("E0404", f"{self.name}: sizes must be positive, with at most one -1, "
                          f"got {_text(want)}")  # fmt: skip
        if holes:
            known = prod(d for d in want if d != -1)
            hole = exact_div(numel(x), known)
            if hole is None:
                raise OpError("E0301", f"{self.name}: cannot infer the -1 in {_text(want)}: {x} has "
                              f"{numel(x)} elements, not a multiple of {known}")  # fmt: skip
            want[holes[0]] = hole
        _same_size(self.name, x, tuple(want))
        return {**a, "out": tuple(want), "sizes": _sizes(self.name, tuple(want), [t.dims for t in ins], holes)}

    def infer(self, a, ins):
        return [ins[0].with_dims(a["out"])]

    def module(self, a):
        if all(isinstance(s, int) for s in a["sizes"]):
            return Ctor("rt.Reshape", a["sizes"])
        return None

    def reference(self, a, ins, w):
        return [ins[0].reshape(a["out"])]  # view too: the same values (contiguity is checked at compile time)

    def call(self, a, args):
        sizes = [s if isinstance(s, int) else s.format(*args) for s in a["sizes"]]
        return CallExpr(f"{args[0]}.{self.method}", [str(s) for s in sizes])

    def label(self, a):
        return f"{self.name} {_text(a['out'])}"


def _sizes(op: str, out: tuple[Dim, ...], sources: list[tuple[Dim, ...]], holes: list[int]) -> tuple:
    """Each target size as an int, or code over inputs `{0}`, `{1}`, ...; -1 at most once."""
    sizes: list = []
    hole = holes[0] if holes else None
    for i, d in enumerate(out):
        code = None if i == hole else sizes_code(d, sources)
        if code is None:
            if hole not in (None, i):
                have = " and ".join(_text(dims) for dims in sources)
                raise OpError("E0304", f"{op}: sizes {_text(out)} cannot all be computed from the "
                              f"sizes {have}", "write -1 for one of them, or name the sizes in a block "
                              "input's shape (input x: [B, T, C]) so that they are read from it")  # fmt: skip
            hole, code = i, "-1"
        sizes.append(int(code) if code.lstrip("-").isdigit() else code)
    return tuple(sizes)


def _text(dims) -> str:
    return "[" + ", ".join(str(d) for d in dims) + "]"


@register
class View(Reshape):
    name = "view"
    doc = ("reshape without a copy (torch's view); its input must be contiguous, which the compiler "
           "checks (E0306): after permute, transpose or a slice, use reshape.")  # fmt: skip
    method = "view"
    needs_contiguous = True

    def module(self, a):
        return None


class _Part(OpDef):
    """An op returning part of its input (split, select, slice): a view that keeps
    row-major order only when it cuts along the first dimension, with step 1."""

    def layout(self, a):
        return "same" if a["dim"] == 0 and a.get("step", 1) == 1 else "strided"


# ---- several outputs ---------------------------------------------------------------------
MAX_OUTPUTS = 100_000  # outputs of one split, as LIMITS["repeat"] bounds one repetition


def _check_outputs(op: str, n: int) -> None:
    # Checked before the parts are built: unbind of a dimension of 2**31 - 1 would make that many.
    if n > MAX_OUTPUTS:
        raise OpError("E0508", f"{op} into {n:,} parts is over the limit of {MAX_OUTPUTS:,}")


class _Split(_Part):
    family = "tensor"

    def resolve(self, a, ins):
        x = ins[0]
        dim = norm_dim(a["dim"], x.rank, self.name)
        return {**a, "dim": dim, "sizes": self._sizes(a, x.dims[dim])}

    def infer(self, a, ins):
        x, dim = ins[0], a["dim"]
        return [x.with_dims((*x.dims[:dim], s, *x.dims[dim + 1 :])) for s in a["sizes"]]

    def reference(self, a, ins, w):
        return list(ins[0].split(list(a["sizes"]), a["dim"]))

    def _sizes(self, a, size: Dim) -> tuple:
        raise NotImplementedError

    def label(self, a):
        return f"{self.name}({len(a['sizes'])}, dim={a['dim']})"


@register
class Chunk(_Split):
    name = "chunk"
    doc = "n equal parts along dim: q, k, v = x -> chunk(3)."
    attrs = (Attr("n", "int", positional=True, min=1), Attr("dim", "dim", -1, positional=True))

    def _sizes(self, a, size):
        _check_outputs("chunk", a["n"])
        part = exact_div(size, a["n"])
        if part is None:
            raise OpError("E0301", f"chunk: size {size} does not split into {a['n']} equal parts")
        return (part,) * a["n"]

    def call(self, a, args):
        return f"{args[0]}.chunk({a['n']}, dim={a['dim']})"


@register
class Split(_Split):
    name = "split"
    doc = "Parts of the given sizes along dim: a, b = x -> split([64, 192], dim=1)."
    attrs = (Attr("sizes", "ints", positional=True, min=1), Attr("dim", "dim", -1, positional=True))

    def resolve(self, a, ins):
        return super().resolve({**a, "parts": a.get("parts", a["sizes"])}, ins)  # resolve twice: same

    def _sizes(self, a, size):
        parts = a["parts"]
        if isinstance(parts, int):
            if not isinstance(size, int):
                raise OpError("E0304", f"split into parts of {parts} needs a known size, got {size}",
                              "give the sizes as a list, or use chunk(n)")  # fmt: skip
            _check_outputs("split", -(-size // parts))
            return (parts,) * (size // parts) + ((size % parts,) if size % parts else ())
        if sum(parts) != size:
            raise OpError("E0301", f"split: sizes {list(parts)} add up to {sum(parts)}, not {size}")
        return tuple(parts)

    def call(self, a, args):
        parts = a["parts"] if isinstance(a["parts"], int) else list(a["parts"])
        return f"{args[0]}.split({parts}, dim={a['dim']})"


@register
class Unbind(_Split):
    name = "unbind"
    doc = "Removes dim, giving one output per index: q, k, v = qkv -> unbind(0)."
    attrs = (Attr("dim", "dim", 0, positional=True),)

    def _sizes(self, a, size):
        if not isinstance(size, int):
            raise OpError("E0304", f"unbind needs a known size in dim {a['dim']}, got {size}")
        _check_outputs("unbind", size)
        return (size,)

    def infer(self, a, ins):
        x, dim = ins[0], a["dim"]
        return [x.with_dims((*x.dims[:dim], *x.dims[dim + 1 :]))] * x.dims[dim]

    def reference(self, a, ins, w):
        x = ins[0]
        return [x.select(a["dim"], i) for i in range(x.shape[a["dim"]])]

    def call(self, a, args):
        return f"{args[0]}.unbind({a['dim']})"

    def label(self, a):
        return f"unbind(dim={a['dim']})"


# ---- picking ------------------------------------------------------------------------------
@register
class Select(_Part):
    name = "select"
    family = "tensor"
    doc = "One index of dim, removing it: select(1, -1) is the last time step, select(1, 0) the first token."
    attrs = (Attr("dim", "dim", positional=True), Attr("index", "int", positional=True))

    def resolve(self, a, ins):
        x = ins[0]
        dim = norm_dim(a["dim"], x.rank, "select")
        size, i = x.dims[dim], a["index"]
        if isinstance(size, int) and not -size <= i < size:
            raise OpError("E0404", f"select: index {i} is out of range for size {size} (dim {dim} of {x})")
        if not isinstance(size, int) and i not in (0, -1):
            raise OpError("E0304", f"select: index {i} of dimension {size} (dim {dim} of {x}) exists only "
                          f"if {size} > {max(i, -i - 1)}", "index 0 (first) and -1 (last) always exist; "
                          "or give the input a concrete size there")  # fmt: skip
        return {**a, "dim": dim}

    def infer(self, a, ins):
        d = ins[0].dims
        return [ins[0].with_dims((*d[: a["dim"]], *d[a["dim"] + 1 :]))]

    def module(self, a):
        return Ctor("rt.Select", (a["dim"], a["index"]))

    def reference(self, a, ins, w):
        x = ins[0]
        return [x.select(a["dim"], a["index"] % x.shape[a["dim"]])]

    def call(self, a, args):
        return args[0] + _index(a["dim"], str(a["index"]))

    def label(self, a):
        return f"select(dim={a['dim']}, {a['index']})"


@register
class Slice(_Part):
    name = "slice"
    family = "tensor"
    doc = "Indices start:end:step of dim (end omitted: to the end): slice(1, 0, step=2)."
    attrs = (Attr("dim", "dim", positional=True), Attr("start", "int", 0, positional=True),
             Attr("end", "int", None, positional=True), Attr("step", "int", 1, min=1))  # fmt: skip

    def resolve(self, a, ins):
        x = ins[0]
        dim = norm_dim(a["dim"], x.rank, "slice")
        size = x.dims[dim]
        if not isinstance(size, int) and (a["start"] != 0 or a["end"] is not None):
            raise OpError("E0304", f"slice {a['start']}:{a['end'] if a['end'] is not None else ''} of "
                          f"dimension {size} (dim {dim} of {x}) may be empty",
                          "only a step (slice(d, 0, step=2)) is safe on a symbolic size; "
                          "give the input a concrete size there")  # fmt: skip
        start = _clip(a["start"], size)
        end = size if a["end"] is None else _clip(a["end"], size)
        n = (end - start + a["step"] - 1) // a["step"]
        if isinstance(n, int) and n <= 0:
            raise OpError("E0303", f"slice {a['start']}:{a['end']} of size {size} is empty")
        return {**a, "dim": dim, "len": n}

    def infer(self, a, ins):
        d = ins[0].dims
        return [ins[0].with_dims((*d[: a["dim"]], a["len"], *d[a["dim"] + 1 :]))]

    def reference(self, a, ins, w):
        import torch

        x = ins[0]
        picked = range(*slice(a["start"], a["end"], a["step"]).indices(x.shape[a["dim"]]))  # Python's rule
        return [x.index_select(a["dim"], torch.tensor(picked, dtype=torch.int64, device=x.device))]

    def call(self, a, args):
        start = "" if a["start"] == 0 else str(a["start"])
        end = "" if a["end"] is None else str(a["end"])
        step = "" if a["step"] == 1 else f":{a['step']}"
        return args[0] + _index(a["dim"], f"{start}:{end}{step}")

    def label(self, a):
        end = "" if a["end"] is None else a["end"]
        return f"slice(dim={a['dim']}, {a['start']}:{end}:{a['step']})"


def _clip(i: int, size: Dim) -> Dim:
    if i < 0:
        i = size + i
        return max(i, 0) if isinstance(i, int) else i
    return min(i, size) if isinstance(size, int) else i


@register
class IndexSelect(OpDef):
    name = "index_select"
    family = "tensor"
    doc = ("Slices of x along dim picked by integer ids of any shape S: x's shape with dim replaced by S, "
           "as x[..., ids, ...]. index_select(table, ids) is table[ids]; the weights [E, ...] of each "
           "token's picked experts [B, T, k] are index_select(w, picks): [B, T, k, ...].")  # fmt: skip
    attrs = (Attr("dim", "dim", 0),)
    inputs = 2
    outputs_layout = "new"

    def resolve(self, a, ins):
        x, ids = ins
        need_ids(self.name, ids, ("int64", "int32"))
        if ids.rank == 0:
            raise OpError("E0305", f"index_select needs ids of at least one dimension, got 0-d ids {ids}",
                          "pick one index with select(dim, i), or unsqueeze(ids, 0)")  # fmt: skip
        dim = norm_dim(a["dim"], x.rank, self.name)
        size = x.dims[dim] if isinstance(x.dims[dim], int) else None
        return {**a, "dim": dim, "size": size, "ids_rank": ids.rank}

    def infer(self, a, ins):
        x, ids = ins
        d = a["dim"]
        return [x.with_dims((*x.dims[:d], *ids.dims, *x.dims[d + 1 :]))]

    def index_bound(self, a):
        return a["size"]

    def reference(self, a, ins, w):
        x, ids = ins
        k, d = ids.dim(), a["dim"]  # x[ids] along dim 0 puts ids' dimensions first; moved back to dim
        return [x.movedim(d, 0)[ids].movedim(tuple(range(k)), tuple(range(d, d + k)))]

    def call(self, a, args):
        x, d, ids = args[0], a["dim"], args[1]
        if a["ids_rank"] == 1:
            return f"torch.index_select({x}, {d}, {ids})"
        return f"torch.index_select({x}, {d}, {ids}.flatten()).unflatten({d}, {ids}.shape)"

    def label(self, a):
        return f"index select(dim={a['dim']})"
