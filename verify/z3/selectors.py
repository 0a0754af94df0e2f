"""`select` and selector `&`, `|`, `~`: matrices of Bool cells."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import z3

from dsl import ast
from dsl.functions import make_callable
from verify.z3.arithmetic import COMPARE, Arithmetic, is_arithmetic, truthy
from verify.z3.cells import BOOL, FALSE, RAISES, REAL, TRUE, Cell, EncodedSOp, Matrix, simplify
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

    def pairs_hold(pairs, k, q):
        key_cell, query_cell = keys.cells[k], queries.cells[q]
        return z3.Or(
            [
                z3.And(enc.matches(keys, key_cell, kv), enc.matches(queries, query_cell, qv))
                for kv, qv in pairs
            ]
        )

    def predicate(k, q):
        if raising_pairs:
            enc.fail_when(pairs_hold(raising_pairs, k, q))
        return pairs_hold(true_pairs, k, q) if true_pairs else FALSE

    return predicate


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
