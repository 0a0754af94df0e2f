"""`select` and selector `&`, `|`, `~`: matrices of Bool cells."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import z3

from dsl import ast
from dsl.functions import make_callable
from verify.z3.arithmetic import COMPARE, Arithmetic, is_arithmetic, truthy
from verify.z3.cells import (
    BOOL,
    FALSE,
    RAISES,
    REAL,
    TRUE,
    Cell,
    EncodedSOp,
    Matrix,
    conjunction,
    disjunction,
    simplify,
    typed,
)
from verify.z3.encoder import Encoder, cells_equal
from verify.z3.maps import check_table_size, escape_outside, finite_values
from verify.z3.tables import guarded


def encode_select(enc: Encoder, node: ast.Select) -> Matrix:
    keys, queries = enc.sop(node.keys), enc.sop(node.queries)
    function = make_callable(node.predicate)
    symbolic = None  # built on first need: most selects are finite everywhere

    def entry(k: int, q: int) -> Cell:
        nonlocal symbolic
        enc.inputs.check_time()
        finite = enc.combine(
            [keys.cells[k], queries.cells[q]], lambda kv, qv: bool(function(kv, qv))
        )
        if finite is not None:
            return enc.finite_cell(BOOL, finite)
        if symbolic is None:
            symbolic = _symbolic_predicate(enc, node.predicate, function, keys, queries)
        return Cell(simplify(symbolic(k, q)), FALSE)

    return tuple(tuple(entry(k, q) for k in range(enc.length)) for q in range(enc.length))


def _symbolic_predicate(enc: Encoder, predicate: ast.Function, function, keys, queries):
    if isinstance(predicate, ast.Comparison):
        # tracr's Comparison raises on a None key or query, whatever the comparison.
        for sop in (keys, queries):
            if sop.may_be_none:
                enc.fail_when(z3.Or([c.none for c in sop.cells]))
        if predicate.op in ("true", "false"):
            return lambda k, q: z3.BoolVal(predicate.op == "true")
        if predicate.op in ("==", "!=") or keys.kind == queries.kind == REAL:
            return _compare_values(enc, predicate.op, keys, queries)
        return _tabulated_predicate(enc, function, keys, queries, with_none=False)
    if (
        isinstance(predicate, ast.Lambda)
        and keys.kind == queries.kind == REAL
        and not (keys.may_be_none or queries.may_be_none)
        and is_arithmetic(predicate)
    ):
        return _arithmetic_predicate(enc, predicate, keys, queries)
    return _tabulated_predicate(enc, function, keys, queries, with_none=True)


def _compare_values(enc: Encoder, op: str, keys: EncodedSOp, queries: EncodedSOp):
    """`key OP query` on values that are never None here (None made the input undefined)."""
    if op in ("==", "!="):
        # Compare values only: a None made the input undefined already.
        plain_keys = EncodedSOp(keys.kind, keys.cells, keys.values)
        plain_queries = EncodedSOp(queries.kind, queries.cells, queries.values)

        def equal(k, q):
            same = cells_equal(plain_keys, k, plain_queries, q, enc.inputs)
            return same if op == "==" else z3.Not(same)

        return equal
    compare = COMPARE[op]
    return lambda k, q: compare(keys.cells[k].value, queries.cells[q].value)


def _arithmetic_predicate(enc: Encoder, fn: ast.Lambda, keys, queries):
    def predicate(k, q):
        env = {fn.params[0]: keys.cells[k].value, fn.params[1]: queries.cells[q].value}
        translator = Arithmetic(env, TRUE)
        truth = truthy(translator.translate(fn.body))
        for condition in translator.undefined:
            enc.fail_when(condition)
        return truth

    return predicate


def _tabulated_predicate(enc: Encoder, function, keys, queries, with_none: bool):
    """A predicate of (key, query) as a table over their values (None included, as tracr calls it)."""
    key_values = finite_values(keys, "select predicate")
    query_values = finite_values(queries, "select predicate")
    check_table_size([key_values, query_values], "select predicate")
    for sop, domain in ((keys, key_values), (queries, query_values)):
        for position, cell in enumerate(sop.cells):
            escape_outside(enc, sop, domain, position, cell.none, "select predicate")
    if with_none:
        key_values = key_values + ([None] if keys.may_be_none else [])
        query_values = query_values + ([None] if queries.may_be_none else [])
    true_pairs, raising_pairs = [], []
    for kv, qv in itertools.product(key_values, query_values):
        outcome = guarded(lambda a, b: bool(function(a, b)), [kv, qv])
        if outcome is RAISES:
            raising_pairs.append((kv, qv))
        elif outcome:
            true_pairs.append((kv, qv))

    holds, raises = _pair_test(enc, keys, queries, true_pairs), None
    if raising_pairs:
        raises = _pair_test(enc, keys, queries, raising_pairs)

    def predicate(k, q):
        if raises is not None:
            enc.fail_when(raises(k, q))
        return holds(k, q)

    return predicate


def _pair_test(enc: Encoder, keys: EncodedSOp, queries: EncodedSOp, pairs: list[tuple]):
    """(k, q) -> "the key at k and the query at q form one of `pairs`".

    Query values with the same set of keys form one class, so an entry is
    `Or over classes: query in class and key in its set`, built from per-position
    terms shared by every entry: O(length^2 x classes) terms, not O(length^2 x pairs).
    """
    # Keyed with their types: 1, 1.0 and True are different values to `matches`.
    keys_of: dict = {}
    for kv, qv in pairs:
        keys_of.setdefault(typed(qv), []).append(kv)
    classes: dict[tuple, tuple[list, list]] = {}
    for (_, qv), kvs in keys_of.items():
        classes.setdefault(tuple(map(typed, kvs)), (kvs, []))[1].append(qv)
    classes_list = list(classes.values())

    def member(sop: EncodedSOp, position: int, values) -> z3.BoolRef:
        cell = sop.cells[position]
        return simplify(disjunction([enc.matches(sop, cell, v) for v in values]))

    key_in: dict[tuple[int, int], z3.BoolRef] = {}
    query_in: dict[tuple[int, int], z3.BoolRef] = {}

    def test(k: int, q: int) -> z3.BoolRef:
        terms = []
        for j, (kvs, qvs) in enumerate(classes_list):
            if (q, j) not in query_in:
                query_in[q, j] = member(queries, q, qvs)
            if (k, j) not in key_in:
                key_in[k, j] = member(keys, k, kvs)
            terms.append(conjunction([query_in[q, j], key_in[k, j]]))
        return disjunction(terms)

    return test


def encode_select_and(enc: Encoder, node: ast.SelectAnd) -> Matrix:
    return _elementwise(
        enc, lambda a, b: a and b, z3.And, enc.selector(node.left), enc.selector(node.right)
    )


def encode_select_or(enc: Encoder, node: ast.SelectOr) -> Matrix:
    return _elementwise(
        enc, lambda a, b: a or b, z3.Or, enc.selector(node.left), enc.selector(node.right)
    )


def encode_select_not(enc: Encoder, node: ast.SelectNot) -> Matrix:
    inner = enc.selector(node.inner)
    return _elementwise(enc, lambda a: not a, z3.Not, inner)


def _elementwise(enc: Encoder, concrete: Callable, symbolic: Callable, *matrices: Matrix) -> Matrix:
    def entry(cells: tuple[Cell, ...]) -> Cell:
        enc.inputs.check_time()
        finite = enc.combine(cells, concrete)
        if finite is not None:
            return enc.finite_cell(BOOL, finite)
        return Cell(simplify(symbolic(*(c.value for c in cells))), FALSE)

    return tuple(tuple(entry(cells) for cells in zip(*rows)) for rows in zip(*matrices))
