"""What the encoding is made of: value kinds, cells, encoded SOps, and the symbolic input.

A value term is REAL (every value a number: exact rationals, bools as 0/1) or
CODE (an Int code from a `Universe` shared by both programs). Each SOp is one
`Cell` per position: the value term and a Bool "the value is None"; a selector
is a [query][key] `Matrix` of Bool cells.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import z3

from verify.z3 import limits

REAL = "real"
CODE = "code"
BOOL = "bool"  # selector cells


class Unsupported(Exception):
    """The program uses something this encoding cannot express (the verdict is unknown)."""


class OutOfTime(Exception):
    """The time budget ran out while encoding (the verdict is unknown)."""


class _Raises:
    """A table entry where the evaluator raises (the input is undefined)."""

    def __repr__(self):
        return "RAISES"


RAISES = _Raises()


def is_number(value) -> bool:
    return isinstance(value, (int, float, bool))


def real_literal(value) -> z3.ArithRef:
    """A number as an exact Z3 rational."""
    if isinstance(value, float) and not math.isfinite(value):
        raise Unsupported(f"the float {value!r} has no exact value")
    return _real_literal(value)


# Tables name the same numbers at every position of every length: build each once. Keys
# that compare equal (1, 1.0, True) are the same number, so they may share a term.
@functools.lru_cache(maxsize=1 << 16)
def _real_literal(value) -> z3.ArithRef:
    if isinstance(value, bool):
        return z3.RealVal(int(value))
    if isinstance(value, int):
        return z3.RealVal(value)
    exact = fraction(value)
    return z3.Q(exact.numerator, exact.denominator)


class Universe:
    """Int codes for the values of CODE terms, shared by the programs compared."""

    def __init__(self):
        self._codes: dict = {}

    def code(self, value) -> int:
        if value is None:
            raise ValueError("None is a flag of a cell, never a code")
        try:
            return self._codes.setdefault(value, len(self._codes))
        except TypeError:
            raise Unsupported(f"the value {value!r} is not hashable") from None


@dataclass(frozen=True)
class Finite:
    """A cell as a table over every token assignment of the positions it depends on."""

    support: tuple[int, ...]
    """The input positions, ascending."""
    table: tuple
    """Entries in `itertools.product(range(len(vocab)), repeat=len(support))` order:
    a value, None, or RAISES."""


class Cell:
    """One SOp value (or one selector entry) at one position.

    `value`: a Real, an Int code or a Bool (selectors), meaningless when `none`
    (a Bool: the value is None) holds. `finite`: the cell's table when its
    support is small; a finite cell builds its terms on first use (`Cell.lazy`):
    a row counted by token value never needs them. `piecewise`: the value as a
    linear term of token counts per value of one token (`verify.z3.counting`).
    """

    __slots__ = ("_build", "_none", "_value", "finite", "piecewise")

    def __init__(
        self, value: z3.ExprRef, none: z3.BoolRef, finite: Finite | None = None, piecewise=None
    ):
        self._value, self._none, self.finite = value, none, finite
        self.piecewise = piecewise
        self._build: Callable[[], tuple[z3.ExprRef, z3.BoolRef]] | None = None

    @classmethod
    def lazy(cls, build: Callable[[], tuple[z3.ExprRef, z3.BoolRef]], finite: Finite) -> Cell:
        cell = cls(None, None, finite)
        cell._build = build
        return cell

    def _force(self) -> None:
        if self._build is not None:
            self._value, self._none = self._build()
            self._build = None

    @property
    def value(self) -> z3.ExprRef:
        self._force()
        return self._value

    @property
    def none(self) -> z3.BoolRef:
        self._force()
        return self._none


@dataclass(frozen=True)
class EncodedSOp:
    """An SOp at every position of one length."""

    kind: str
    cells: tuple[Cell, ...]
    values: frozenset | None
    """The non-None values it can take; None when not finitely known."""
    may_be_none: bool = False
    exact: bool = True
    """`values` holds every value (else they are candidates: a mean may fall outside them)."""


Matrix = tuple[tuple[Cell, ...], ...]  # [query][key], Bool cells


FALSE = z3.BoolVal(False)
TRUE = z3.BoolVal(True)


@dataclass(frozen=True)
class Inputs:
    """The symbolic input of one length: a token index per position."""

    vocab: tuple
    variables: tuple[z3.ArithRef, ...]
    universe: Universe
    deadline: float = math.inf
    trees: dict = field(default_factory=dict)
    """Decision trees built so far, shared by the programs compared."""
    facts: list = field(default_factory=list)
    """Formulas true of every input that follow from `definitions` (`constraint` holds them)."""
    definitions: list = field(default_factory=list)
    """The auxiliary variables (`counts`) in terms of the tokens. A claim that holds
    under `constraint` alone holds; a counterexample must also satisfy these."""
    _tests: dict = field(default_factory=dict)
    _counts: dict = field(default_factory=dict)

    def check_time(self) -> None:
        if time.perf_counter() >= self.deadline:
            raise OutOfTime

    def is_token(self, position: int, index: int) -> z3.BoolRef:
        """The token at `position` is vocab[index]."""
        key = (position, index)
        if key not in self._tests:
            self._tests[key] = self.variables[position] == index
        return self._tests[key]

    def counts(self, positions: tuple[int, ...]) -> tuple[z3.ArithRef, ...]:
        """A Real term per vocab index: how many of `positions` hold that token.

        The counts of the first tokens are Int variables, defined in
        `definitions` as sums over the positions; the last is len(positions)
        minus the others. So the counts add up to the group's size by
        construction, and a linear term of counts has one normal form:
        `#{k: t_k < t_q}` and `n - #{k: t_k >= t_q}` are the same term. The
        `facts` say what a proof mostly needs of the sums without their case
        splits: every count is a whole number from 0 up, at least 1 for the
        token at each position of the group.
        """
        if positions not in self._counts:
            number = len(self._counts)
            size = len(self.vocab)
            reals = [z3.ToReal(z3.Int(f"count{number}_{v}")) for v in range(size - 1)]
            last = len(positions) - z3.Sum(reals) if reals else z3.RealVal(len(positions))
            counts = (*reals, last)
            one, zero = z3.RealVal(1), z3.RealVal(0)
            for v, count in enumerate(counts):
                ones = [z3.If(self.is_token(k, v), one, zero) for k in positions]
                self.definitions.append(count == z3.Sum(ones))
                self.facts.append(count >= 0)
                for k in positions:
                    self.facts.append(z3.Implies(self.is_token(k, v), count >= 1))
            self._counts[positions] = tuple(z3.simplify(c, som=True) for c in counts)
        return self._counts[positions]

    @property
    def length(self) -> int:
        return len(self.variables)

    @property
    def constraint(self) -> z3.BoolRef:
        """Every token in the vocab, and the facts of the auxiliary variables made so far."""
        ranges = [z3.And(0 <= x, x < len(self.vocab)) for x in self.variables]
        return z3.And(ranges + self.facts)

    def tokens_from_model(self, model: z3.ModelRef) -> list:
        return [self.vocab[model.eval(x, model_completion=True).as_long()] for x in self.variables]


def symbolic_inputs(
    vocab: Sequence, length: int, universe: Universe, deadline: float = math.inf
) -> Inputs:
    """Token variables for one length; encoding raises OutOfTime past `deadline` (perf_counter)."""
    variables = tuple(z3.Int(f"token_{i}") for i in range(length))
    return Inputs(tuple(vocab), variables, universe, deadline)


def simplify(term):
    return z3.simplify(term)


def typed(value) -> tuple:
    """A key for `value` that tells 1, 1.0 and True apart, as CODE cells do."""
    return type(value).__name__, value


def conjunction(terms: Sequence[z3.BoolRef]) -> z3.BoolRef:
    """z3.And of Bool terms, built without z3's per-argument coercion (tables make
    hundreds of thousands of them)."""
    return _connective(z3.Z3_mk_and, terms, TRUE)


def disjunction(terms: Sequence[z3.BoolRef]) -> z3.BoolRef:
    """z3.Or of Bool terms (see `conjunction`)."""
    return _connective(z3.Z3_mk_or, terms, FALSE)


def _connective(make, terms: Sequence[z3.BoolRef], empty: z3.BoolRef) -> z3.BoolRef:
    if not terms:
        return empty
    if len(terms) == 1:
        return terms[0]
    context = terms[0].ctx
    arguments = (z3.Ast * len(terms))(*(t.as_ast() for t in terms))
    return z3.BoolRef(make(context.ref(), len(terms), arguments), context)


def if_chain(cases: list[tuple[z3.BoolRef, z3.ExprRef]], otherwise: z3.ExprRef) -> z3.ExprRef:
    result = otherwise
    for condition, value in reversed(cases):
        result = z3.If(condition, value, result)
    return result


def kind_of(values) -> str:
    return REAL if values is None or all(is_number(v) for v in values) else CODE


def fraction(value) -> Fraction:
    if isinstance(value, float):
        return Fraction(value).limit_denominator(limits.FLOAT_DENOMINATOR_LIMIT)
    return Fraction(int(value))


@functools.lru_cache(maxsize=4096)
def rational(value: Fraction) -> z3.ArithRef:
    """An exact Z3 rational (memoized: building one costs more than a lookup)."""
    return z3.Q(value.numerator, value.denominator)
