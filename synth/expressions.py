"""Bottom-up enumeration of lambda bodies, smallest first, one per behaviour.

Classic enumerative synthesis with observational equivalence: expressions are
built by size (the number of AST nodes) from variables and a few constants, each
is evaluated on every point of the function's domain at once (a vector), and an
expression whose vector was already seen is dropped, since a smaller one behaves
the same. Callers test each yielded candidate against their goal and stop early.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from dsl import ast
from synth import vectors

# Arithmetic in the search (no `**`: it is rarely what a table means and grows fast).
ARITHMETIC = ("+", "-", "*", "/", "//", "%")
COMMUTATIVE = frozenset({"+", "*", "==", "!=", "and", "or", "min", "max"})


@dataclass(frozen=True)
class Candidate:
    """An expression and its values on the domain points."""

    expr: ast.Expr
    values: np.ndarray
    size: int
    constant: bool = False


def expression_size(expr: ast.Expr) -> int:
    """The number of nodes of an expression: the measure the search minimises."""
    return 1 + sum(expression_size(child) for child in expr.children)


def enumerate_expressions(
    variables: Mapping[str, np.ndarray],
    constants: Sequence[ast.Value],
    *,
    max_size: int,
    max_candidates: int,
    answer: Callable[[np.ndarray], bool] = lambda values: False,
) -> Iterator[Candidate]:
    """Every behaviourally distinct expression up to `max_size` nodes, smallest first.

    When the points are a sample, two expressions alike on it may differ
    elsewhere; so an expression alike to an earlier one is still yielded (though
    not built upon) when `answer(values)` says it would answer the caller.
    """
    points = len(next(iter(variables.values())))
    seen: set = set()
    bank: dict[int, list[Candidate]] = {}
    produced = 0

    def admit(candidate: Candidate | None, size: int) -> Candidate | None:
        if candidate is None or candidate.values is None:
            return None
        key = vectors.behaviour_key(candidate.values)
        if key in seen:
            return candidate if answer(candidate.values) else None
        seen.add(key)
        bank.setdefault(size, []).append(candidate)
        return candidate

    leaves = [Candidate(ast.Var(name), values, 1) for name, values in variables.items()]
    for value in constants:
        leaves.append(
            Candidate(ast.Const(value), vectors.make_vector([value] * points), 1, constant=True)
        )
    for leaf in leaves:
        if admit(leaf, 1):
            produced += 1
            yield leaf

    for size in range(2, max_size + 1):
        for candidate in _candidates_of_size(size, bank):
            if produced >= max_candidates:
                return
            if admit(candidate, size):
                produced += 1
                yield candidate


def _candidates_of_size(size: int, bank: dict[int, list[Candidate]]) -> Iterator[Candidate]:
    # Unary operators and abs: one operand of size - 1.
    for operand in list(bank.get(size - 1, ())):
        if operand.constant:
            continue
        for op in ("-", "not"):
            values = vectors.unary(op, operand.values)
            if values is not None:
                yield Candidate(ast.UnaryOp(op, operand.expr), values, size)
        values = vectors.call("abs", [operand.values])
        if values is not None:
            yield Candidate(ast.Call("abs", (operand.expr,)), values, size)

    # Binary operators and min/max: two operands whose sizes add up to size - 1.
    # Arithmetic puts the larger operand on the left first (`x - y - 1` before
    # `x - (y + 1)`), comparisons the smaller (`q == k + 1` before `q - k == 1`).
    # Operator groups go one after the other, so where two behave alike on the
    # points the earlier group's reads best: `x == "}"` rather than `x > "{"`.
    for group, larger_left_first in _BINARY_GROUPS:
        left_sizes = range(1, size - 1)
        for left_size in reversed(left_sizes) if larger_left_first else left_sizes:
            right_size = size - 1 - left_size
            lefts, rights = list(bank.get(left_size, ())), list(bank.get(right_size, ()))
            for i, left in enumerate(lefts):
                for j, right in enumerate(rights):
                    if left.constant and right.constant:
                        continue
                    ordered = (left_size, i) <= (right_size, j)
                    yield from group(left, right, size, ordered)

    # Conditionals: `a if cond else b` with leaf branches (the "c if x == d else e" form).
    for cond_size in range(1, size - 2):
        if size - 1 - cond_size != 2:
            continue
        leaves = list(bank.get(1, ()))
        for cond in list(bank.get(cond_size, ())):
            if cond.constant or vectors.kind(cond.values) != "b":
                continue
            for then in leaves:
                for orelse in leaves:
                    if then is orelse:
                        continue
                    values = vectors.choose(cond.values, then.values, orelse.values)
                    if values is not None:
                        yield Candidate(ast.IfExp(cond.expr, then.expr, orelse.expr), values, size)


def _commutative_allowed(left: Candidate, right: Candidate, ordered: bool) -> bool:
    """A constant goes on the right of a commutative operator (`x + 1`, `x == "a"`);
    between two non-constants the bank order decides."""
    return not left.constant and (ordered or right.constant)


def _arithmetic(left: Candidate, right: Candidate, size: int, ordered: bool):
    for op in ARITHMETIC:
        if op in COMMUTATIVE and not _commutative_allowed(left, right, ordered):
            continue
        values = vectors.binary(op, left.values, right.values)
        if values is not None:
            yield Candidate(ast.BinOp(op, left.expr, right.expr), values, size)


def _comparisons(ops: tuple[str, ...]):
    def compare(left: Candidate, right: Candidate, size: int, ordered: bool):
        if left.constant:  # `x < 1`, never `1 > x`
            return
        for op in ops:
            if op in COMMUTATIVE and not _commutative_allowed(left, right, ordered):
                continue
            values = vectors.compare(op, left.values, right.values)
            if values is not None:
                yield Candidate(ast.Compare(op, left.expr, right.expr), values, size)

    return compare


def _boolean(left: Candidate, right: Candidate, size: int, ordered: bool):
    if not _commutative_allowed(left, right, ordered) or right.constant:
        return
    for op in ast.BOOL_OPERATORS:
        values = vectors.boolean(op, left.values, right.values)
        if values is not None:
            yield Candidate(ast.BoolOp(op, left.expr, right.expr), values, size)


def _min_max(left: Candidate, right: Candidate, size: int, ordered: bool):
    if not _commutative_allowed(left, right, ordered):
        return
    for func in ("min", "max"):
        values = vectors.call(func, [left.values, right.values])
        if values is not None:
            yield Candidate(ast.Call(func, (left.expr, right.expr)), values, size)


_BINARY_GROUPS = (
    (_arithmetic, True),
    (_comparisons(("==", "!=")), False),
    (_boolean, True),
    (_comparisons(("<", "<=", ">", ">=")), False),
    (_min_max, True),
)


def evaluate(expr: ast.Expr, variables: Mapping[str, np.ndarray]) -> np.ndarray | None:
    """An expression's values on the points of `variables` (None where the search would reject it)."""
    points = len(next(iter(variables.values())))
    if isinstance(expr, ast.Var):
        return variables[expr.name]
    if isinstance(expr, ast.Const):
        return vectors.make_vector([expr.value] * points)
    parts = [evaluate(child, variables) for child in expr.children]
    if any(part is None for part in parts):
        return None
    if isinstance(expr, ast.BinOp):
        return vectors.binary(expr.op, *parts)
    if isinstance(expr, ast.Compare):
        return vectors.compare(expr.op, *parts)
    if isinstance(expr, ast.BoolOp):
        return vectors.boolean(expr.op, *parts)
    if isinstance(expr, ast.UnaryOp):
        return vectors.unary(expr.op, *parts)
    if isinstance(expr, ast.Call):
        return vectors.call(expr.func, parts)
    if isinstance(expr, ast.IfExp):
        return vectors.choose(*parts)
    raise TypeError(f"not an expression: {expr!r}")
