"""A selector row counted by token value: the symmetry of positions.

`selector_width(select(tokens, tokens, <))` at query q is a sum over every key
k of the same function of (token k, token q). Written position by position, Z3
must split cases on every token to see that it equals
`n - selector_width(select(tokens, tokens, >=))`: exponential in the length.
Grouped by value it is `sum over v < token q of count(v)`, with one count per
token value (`Inputs.counts`: the last one is the length minus the others), and
in the normal form of `Piecewise` both sides are one term.

A row is grouped when its cells are finite: a key k joins the group of the
keys whose cell is the same function of (token k, token q), and, for an
aggregate, whose source cell is the same function of token k. The diagonal
(k == q, a function of token q alone) joins the group it agrees with. Keys that
fit no group of two or more stay one by one (`Grouping.others`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from fractions import Fraction

import numpy as np
import z3

from verify.z3 import limits
from verify.z3.cells import RAISES, Cell, Finite, Inputs, fraction, rational, typed


@dataclass(frozen=True)
class Group:
    """Keys whose selector cell is one function of (key token, query token)."""

    positions: tuple[int, ...]
    selected: np.ndarray
    """selected[key value, query value]: the key is selected (bool)."""
    source: tuple | None
    """The source entry per key value (aggregates), else None."""


@dataclass(frozen=True)
class Grouping:
    query: int
    groups: tuple[Group, ...]
    others: tuple[int, ...]
    """Live keys counted one by one."""


def group_row(
    inputs: Inputs, query: int, row: Sequence[Cell], live: Sequence[int], source=None
) -> Grouping | None:
    """The row's live keys grouped by value (None when no two keys share a function).

    `source`: the aggregated SOp's cells; a key's source cell must then be a
    function of its own token, the same within a group.
    """
    if not limits.COUNT_BY_VALUE:
        return None
    size = len(inputs.vocab)
    signatures: dict = {}
    others = []
    for k in live:
        if k == query:
            continue
        selected = _key_query_table(row[k].finite, k, query, size)
        weights = None if source is None else _key_table(source[k].finite, k, size)
        if selected is None or (source is not None and weights is None):
            others.append(k)
            continue
        signatures.setdefault((selected.tobytes(), weights), (selected, weights, []))[2].append(k)
    # The diagonal joins a group it agrees with, even when it is never selected (`<`):
    # then every row counts over all positions, and they share their counts.
    diagonal_left = query in live
    diagonal_free = True
    groups = []
    for selected, weights, positions in signatures.values():
        if len(positions) < 2:
            others += positions
            continue
        if diagonal_free and _fits_diagonal(row[query], source, query, selected, weights, size):
            positions = sorted([*positions, query])
            diagonal_left = diagonal_free = False
        groups.append(Group(tuple(positions), selected, weights))
    if diagonal_left:
        others.append(query)
    if not groups:
        return None
    return Grouping(query, tuple(groups), tuple(sorted(others)))


@dataclass(frozen=True)
class Piecewise:
    """A value that is, for each value u of the token at `position`, a linear term
    of token counts (`Inputs.counts`): leaves[u], in normal form."""

    position: int
    leaves: tuple[z3.ArithRef, ...]


def count_selected(
    inputs: Inputs, grouping: Grouping, weight: Callable[[object], Fraction | None] | None = None
) -> Piecewise:
    """Over the grouped keys: how many are selected, or with `weight`, the sum of
    weight(source entry) over them (None or 0 adds nothing)."""
    size = len(inputs.vocab)
    leaves = []
    for u in range(size):
        terms = []
        for group in grouping.groups:
            counts = inputs.counts(group.positions)
            for v in range(size):
                if not group.selected[v, u]:
                    continue
                factor = Fraction(1) if weight is None else weight(group.source[v][1])
                if factor:
                    terms.append(counts[v] if factor == 1 else rational(factor) * counts[v])
        leaves.append(_normal(z3.Sum(terms) if terms else z3.RealVal(0)))
    return Piecewise(grouping.query, tuple(leaves))


def affine(offset: Fraction, terms: Sequence[tuple[Fraction, Cell]]) -> Piecewise | None:
    """offset + sum of slope * cell, leaf by leaf, when every cell is piecewise in one
    token or a constant number (None otherwise)."""
    forms = [c.piecewise for _, c in terms if c.piecewise is not None]
    if not forms or any(f.position != forms[0].position for f in forms):
        return None
    size = len(forms[0].leaves)
    leaves = [rational(offset)] * size
    for slope, cell in terms:
        if cell.piecewise is not None:
            parts = cell.piecewise.leaves
        elif (
            cell.finite is not None
            and cell.finite.support == ()
            and _is_number(cell.finite.table[0])
        ):
            parts = [rational(fraction(cell.finite.table[0]))] * size
        else:
            return None
        leaves = [leaf + rational(slope) * part for leaf, part in zip(leaves, parts)]
    return Piecewise(forms[0].position, tuple(_normal(leaf) for leaf in leaves))


def piecewise_term(inputs: Inputs, form: Piecewise) -> z3.ArithRef:
    """The decision tree on the token at `form.position` (equal leaves merged);
    equal forms give the same term, memoized on the inputs."""
    # Keyed by AST ids (z3 terms overload ==); every leaf stays alive in the cached tree.
    key = ("piecewise", form.position, tuple(leaf.get_id() for leaf in form.leaves))
    if key not in inputs.trees:
        result = form.leaves[-1]
        for u in range(len(form.leaves) - 2, -1, -1):
            if any(not leaf.eq(form.leaves[u]) for leaf in form.leaves[u + 1 :]):
                result = z3.If(inputs.is_token(form.position, u), form.leaves[u], result)
        inputs.trees[key] = result
    return inputs.trees[key]


def _normal(term: z3.ArithRef) -> z3.ArithRef:
    """A linear term as a sum of monomials (one form for equal linear terms)."""
    return z3.simplify(term, som=True)


def _is_number(value) -> bool:
    return isinstance(value, (int, float, bool)) and value is not RAISES


def number_weight(entry) -> Fraction | None:
    """A source entry as a number to add (None and RAISES add nothing)."""
    if entry is None or entry is RAISES:
        return None
    return fraction(entry)


def none_weight(entry) -> Fraction | None:
    return Fraction(1) if entry is None else None


def _key_query_table(finite: Finite | None, key: int, query: int, size: int):
    """A selector cell as selected[key token, query token]; None unless it reads only those."""
    if finite is None or not set(finite.support) <= {key, query}:
        return None
    table = np.array([e is not RAISES and bool(e) for e in finite.table], dtype=bool)
    if finite.support == ():
        return np.full((size, size), table[0])
    if finite.support == (key,):
        return np.repeat(table[:, None], size, axis=1)
    if finite.support == (query,):
        return np.repeat(table[None, :], size, axis=0)
    square = table.reshape(size, size)  # [first position, second position]
    return square if key < query else square.T


def _key_table(finite: Finite | None, key: int, size: int) -> tuple | None:
    """A source cell as its entry per key token (typed, so 1 and 1.0 differ); None
    unless it reads only the key's token."""
    if finite is None or not set(finite.support) <= {key}:
        return None
    table = finite.table * size if finite.support == () else finite.table
    return tuple(map(typed, table))


def _fits_diagonal(cell: Cell, source, query: int, selected, weights, size: int) -> bool:
    """The diagonal cell (key == query) agrees with the group's function on equal tokens."""
    diagonal = _key_query_table(cell.finite, query, query, size)
    if diagonal is None or not all(diagonal[u, u] == selected[u, u] for u in range(size)):
        return False
    return source is None or _key_table(source[query].finite, query, size) == weights
