"""Sizes in generated code: exact division of symbolic sizes, and a size written from the
tensors a forward holds.

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

from modelc.symbolic import Dim, Sym

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
