"""Symbolic tensor dimensions: `B`, `T`, `floor((H - 1)/2) + 1`, `C*H*W`.

A dimension is a plain `int` or a :class:`Sym`: a polynomial with integer
coefficients over atoms, where an atom is a named symbol or `floor(p / d)` of
another polynomial. Every operation returns a canonical form (a `Sym` that is a
constant is returned as `int`). Equal canonical forms are equal dimensions, and
the identities shape rules meet simplify to one form: `floor((H + 2 - 2 - 1)/1) + 1
== H`, `floor((2*H + 1)/2) == H`, two stride-2 steps equal one stride-4 step. (Not
every identity of floors does: `floor(H/2) + floor((H + 1)/2)` stays as it is.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union

__all__ = ["Dim", "Sym", "TooComplex", "sym", "subs", "dim_str", "is_known"]

# NOTE: [Bounded expressions] A few lines of spec can square a dimension again and again
# (`s = B + 1`, then `s = s * s` 24 times: 2**24 terms). Every canonical form is bounded,
# so such growth stops at once with TooComplex (a located E0508 where the elaborator or a
# shape rule meets it) instead of taking minutes and gigabytes.
MAX_TERMS = 256  # terms of one polynomial
MAX_DEGREE = 32  # factors in one term: B*T*H*W is 4
MAX_TEXT = 2000  # characters in the text of one floor(...) atom


class TooComplex(ArithmeticError):
    """A symbolic dimension over the bounds above."""


@dataclass(frozen=True, order=True)
class _Atom:
    key: str  # canonical text, also the sort key
    num: Sym | None = None  # for floor(num / den)
    den: int = 1


Monomial = tuple[_Atom, ...]


class Sym:
    __slots__ = ("terms",)

    def __init__(self, terms: dict[Monomial, int]):
        if len(terms) > MAX_TERMS:
            raise TooComplex(f"a symbolic dimension of {len(terms):,} terms; the limit is {MAX_TERMS}")
        if any(len(m) > MAX_DEGREE for m in terms):
            raise TooComplex(f"a symbolic dimension with a product of more than {MAX_DEGREE} factors")
        self.terms = {m: c for m, c in sorted(terms.items()) if c != 0}

    # ---- construction helpers
    @staticmethod
    def make(terms: dict[Monomial, int]) -> Dim:
        s = Sym(terms)
        if not s.terms:
            return 0
        if list(s.terms) == [()]:
            return s.terms[()]
        return s

    @staticmethod
    def lift(x: Dim) -> Sym:
        if isinstance(x, Sym):
            return x
        return Sym({(): int(x)})

    # ---- arithmetic
    def __add__(self, other: Dim) -> Dim:
        if not isinstance(other, (int, Sym)):
            return NotImplemented
        terms = dict(self.terms)
        for m, c in Sym.lift(other).terms.items():
            terms[m] = terms.get(m, 0) + c
        return Sym.make(terms)

    __radd__ = __add__

    def __neg__(self) -> Dim:
        return Sym.make({m: -c for m, c in self.terms.items()})

    def __sub__(self, other: Dim) -> Dim:
        return self + (-other)

    def __rsub__(self, other: Dim) -> Dim:
        return (-self) + other

    def __mul__(self, other: Dim) -> Dim:
        if not isinstance(other, (int, Sym)):
            return NotImplemented
        terms: dict[Monomial, int] = {}
        for m1, c1 in self.terms.items():
            for m2, c2 in Sym.lift(other).terms.items():
                m = tuple(sorted(m1 + m2))
                terms[m] = terms.get(m, 0) + c1 * c2
        return Sym.make(terms)

    __rmul__ = __mul__

    def __floordiv__(self, den: int) -> Dim:
        if not isinstance(den, int) or den <= 0:
            return NotImplemented
        if den == 1:
            return self
        const = self.terms.get((), 0)
        k = const // den
        if all(c % den == 0 for m, c in self.terms.items() if m):
            # floor((den*q + c)/den) = q + floor(c/den) for an integer q: `floor((2*H + 1)/2)` is H.
            return Sym.make({m: c // den for m, c in self.terms.items() if m}) + k
        # Pull out the constant's whole multiples of den: floor((p + k*den)/den) = floor(p/den) + k.
        rest = self - k * den
        (m, c), *more = [(m, c) for m, c in rest.terms.items() if m]
        if not more and c == 1 and len(m) == 1 and m[0].num is not None:
            # floor((floor(p/a) + r)/den) = floor((p + r*a)/(a*den)): strides compose either way.
            return (m[0].num + (rest.terms.get((), 0) * m[0].den)) // (m[0].den * den) + k
        text = f"floor(({rest})/{den})"
        if len(text) > MAX_TEXT:
            raise TooComplex(f"a symbolic dimension of {len(text):,} characters; the limit is {MAX_TEXT:,}")
        atom = _Atom(text, rest if isinstance(rest, Sym) else None, den)
        return Sym.make({(atom,): 1}) + k

    # ---- comparison, hashing, text
    def __eq__(self, other) -> bool:
        return isinstance(other, Sym) and self.terms == other.terms

    def __hash__(self) -> int:
        return hash(tuple(self.terms.items()))

    def __str__(self) -> str:
        parts = []
        for m, c in sorted(self.terms.items(), key=lambda mc: (len(mc[0]) == 0, mc[0])):
            body = "*".join(a.key for a in m)
            if not body:
                parts.append(str(c))
            elif c == 1:
                parts.append(body)
            elif c == -1:
                parts.append("-" + body)
            else:
                parts.append(f"{c}*{body}")
        text = " + ".join(parts)
        return text.replace("+ -", "- ")

    __repr__ = __str__

    @property
    def symbols(self) -> set[str]:
        out: set[str] = set()
        for m in self.terms:
            for a in m:
                out |= a.num.symbols if a.num is not None else {a.key}
        return out


Dim = Union[int, Sym]


def sym(name: str) -> Sym:
    return Sym({(_Atom(name),): 1})


def subs(d: Dim, env: dict[str, int]) -> Dim:
    """Substitute known values for symbols; returns an int when fully known."""
    if isinstance(d, int):
        return d
    total: Dim = 0
    for m, c in d.terms.items():
        value: Dim = c
        for a in m:
            if a.num is not None:
                value = value * (subs(a.num, env) // a.den)
            else:
                value = value * (env[a.key] if a.key in env else sym(a.key))
        total = total + value
    return total


def is_known(d: Dim) -> bool:
    return isinstance(d, int)


def dim_str(d: Dim) -> str:
    return str(d)
