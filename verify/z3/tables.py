"""Finite cells: tables over the token assignments of a cell's support, and their terms.

A table's Z3 term is a canonical decision tree (positions ascending, tokens in
vocab order, equal branches merged), memoized on the `Inputs`: two programs
computing the same function of the same positions share one term.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence

import numpy as np
import z3

from verify.z3 import limits
from verify.z3.cells import RAISES, Finite, Inputs


def combine_tables(tables: Sequence[Finite], vocab_size: int, function: Callable) -> Finite | None:
    """The table of `function` applied entrywise (None when the support is too large).

    The result keeps only the positions it really depends on, so a constant
    (`select(tokens, tokens, true)`) has an empty support and folds away.
    """
    support = tuple(sorted(set().union(*(t.support for t in tables))))
    if vocab_size ** len(support) > limits.FINITE_LIMIT:
        return None
    slot = {position: index for index, position in enumerate(support)}
    # digits[s, a]: the token index of support position s in assignment a
    assignments = list(itertools.product(range(vocab_size), repeat=len(support)))
    digits = np.array(assignments, dtype=np.int64).reshape(len(assignments), len(support)).T
    columns = []
    for t in tables:
        flat = np.zeros(digits.shape[1], dtype=np.int64)
        for position in t.support:
            flat = flat * vocab_size + digits[slot[position]]
        columns.append(_object_array(t.table)[flat])
    memo: dict = {}
    entries = []
    for args in zip(*columns) if columns else [()] * len(assignments):
        # Keyed by type too: 1, 1.0 and True are equal but not interchangeable arguments.
        key = (args, tuple(type(a) for a in args))
        if key not in memo:
            memo[key] = RAISES if any(a is RAISES for a in args) else guarded(function, args)
        entries.append(memo[key])
    return _reduced(support, entries, vocab_size)


def _object_array(values: Sequence) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    for index, value in enumerate(values):
        array[index] = value
    return array


def _reduced(support: tuple[int, ...], entries: list, vocab_size: int) -> Finite:
    """Drop the positions a table does not depend on."""
    ids: dict = {}
    codes = np.array([ids.setdefault((type(e), e), len(ids)) for e in entries], dtype=np.int64)
    shape = (vocab_size,) * len(support)
    codes = codes.reshape(shape)
    values = _object_array(entries).reshape(shape)
    kept = list(support)
    for axis in range(len(support) - 1, -1, -1):
        first = codes.take([0], axis=axis)
        if (codes == first).all():
            codes = first  # the axis stays, with one entry: shapes keep lining up
            values = values.take([0], axis=axis)
            del kept[axis]
    return Finite(tuple(kept), tuple(values.reshape(-1).tolist()))


def guarded(function: Callable, args: list):
    try:
        return function(*args)
    except Exception:  # noqa: BLE001 - whatever the evaluator would raise makes the input undefined
        return RAISES


def tree(inputs: Inputs, finite: Finite, tag: str, label: Callable, leaf: Callable) -> z3.ExprRef:
    """The canonical decision tree of a table: positions ascending, tokens in vocab order.

    `label` maps an entry to what the leaf shows (e.g. "is None"), `leaf` a
    label to its Z3 term. Equal tables give the same term object, memoized on
    the inputs so both programs share it; equal branches merge.
    """
    labels = tuple(label(e) for e in finite.table)
    key = (tag, finite.support, labels)
    cached = inputs.trees.get(key)
    if cached is not None:
        return cached
    size = len(inputs.vocab)

    def build(depth: int, table: tuple):
        if depth == len(finite.support):
            return leaf(table[0])
        step = len(table) // size
        parts = [table[v * step : (v + 1) * step] for v in range(size)]
        if all(part == parts[0] for part in parts):
            return build(depth + 1, parts[0])
        position = finite.support[depth]
        result = build(depth + 1, parts[-1])
        for v in range(size - 2, -1, -1):
            result = _ite(inputs.is_token(position, v), build(depth + 1, parts[v]), result)
        return result

    tree = inputs.trees[key] = build(0, labels)
    return tree


def _ite(condition: z3.BoolRef, then: z3.ExprRef, orelse: z3.ExprRef) -> z3.ExprRef:
    """z3.If without its argument coercion (the hot spot of building trees): same sorts only."""
    context = condition.ctx
    term = z3.Z3_mk_ite(context.ref(), condition.as_ast(), then.as_ast(), orelse.as_ast())
    return z3.z3._to_expr_ref(term, context)


def bool_tree(inputs: Inputs, finite: Finite, tag: str, holds: Callable) -> z3.BoolRef:
    return tree(inputs, finite, tag, holds, z3.BoolVal)


FILLER = object()  # the value leaf of a None or RAISES entry (its flags say which)


def entries(tables: Sequence[Finite | None]) -> frozenset:
    """The values finite tables hold (None and RAISES left out)."""
    return frozenset(
        e for t in tables if t is not None for e in t.table if e is not None and e is not RAISES
    )


def has_none(tables: Sequence[Finite | None]) -> bool:
    return any(e is None for t in tables if t is not None for e in t.table)
