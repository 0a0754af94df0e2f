"""Naming selectors: hand-computed (key, query) tables, with and without free labels."""

from __future__ import annotations

import itertools

import pytest

from dsl import ast
from dsl.functions import make_callable
from synth.comparisons import comparison_of, forced_labels, name_predicate, ranked_labels

INDICES = range(5)


def select_table(predicate, keys=INDICES, queries=INDICES) -> ast.Table:
    """tracr's convention: entry ((key, query), selected)."""
    return ast.Table(
        tuple(((k, q), bool(predicate(k, q))) for k, q in itertools.product(keys, queries))
    )


@pytest.mark.parametrize(
    "op, predicate",
    [
        ("==", lambda k, q: k == q),
        ("!=", lambda k, q: k != q),
        ("<", lambda k, q: k < q),
        ("<=", lambda k, q: k <= q),
        (">", lambda k, q: k > q),
        (">=", lambda k, q: k >= q),
        ("true", lambda k, q: True),
        ("false", lambda k, q: False),
    ],
)
def test_each_comparison_is_named_on_indices(op, predicate):
    found = name_predicate(select_table(predicate))
    assert found == ast.Comparison(op)


def test_the_key_is_the_left_operand():
    # key < query: the keys smaller than the query are selected (tracr's convention).
    table = ast.Table((((0, 1), True), ((1, 0), False), ((0, 0), False), ((1, 1), False)))
    assert comparison_of(list(table.entries)) == ast.Comparison("<")


def test_order_between_strings_and_numbers_is_not_a_name():
    entries = [(("a", 1), False), ((1, "a"), False)]
    assert comparison_of(entries) == ast.Comparison("false")
    entries = [(("a", 1), True), ((1, "a"), False)]
    assert comparison_of(entries) is None


def test_shift_by_one_is_a_short_predicate():
    found = name_predicate(select_table(lambda k, q: q == k + 1))
    assert isinstance(found, ast.Lambda) and found.params == ("k", "q")
    call = make_callable(found)
    assert all(call(k, q) == (q == k + 1) for k, q in itertools.product(INDICES, INDICES))


def test_a_predicate_of_the_key_alone():
    found = name_predicate(select_table(lambda k, q: k == "a", keys="abc", queries="abc"))
    assert found == ast.Lambda(("k", "q"), ast.Compare("==", ast.Var("k"), ast.Const("a")))


def test_an_irregular_selector_stays_unnamed():
    pattern = {(0, 3), (1, 0), (2, 4), (3, 3), (4, 1), (2, 2), (0, 0)}
    assert name_predicate(select_table(lambda k, q: (k, q) in pattern)) is None


def test_free_queries_take_the_index_they_select_under_equality():
    # select(indices, opp, ==) where opp's labels are opaque: label L selects index f(L).
    meaning = {10: 4, 11: 0, 12: 3, 13: 1, 14: 2}
    table = select_table(lambda k, q: k == meaning[q], queries=meaning)
    assert forced_labels(table, "queries") == meaning


def test_free_keys_take_values_under_equality():
    meaning = {"p": 2, "q": 0, "r": 1}
    table = select_table(lambda k, q: meaning[k] == q, keys=meaning)
    assert forced_labels(table, "keys") == meaning


def test_free_labels_selecting_nothing_get_fresh_values():
    meaning = {7: 1, 8: None}  # label 8 selects no index
    table = select_table(lambda k, q: meaning[q] == k, queries=meaning)
    labels = forced_labels(table, "queries")
    assert labels[7] == 1
    assert labels[8] not in INDICES


def test_free_queries_under_an_order_take_thresholds():
    # select(indices, threshold, <): label L selects the indices below t(L).
    threshold = {0: 2, 1: 4, 2: 0}
    table = select_table(lambda k, q: k < threshold[q], queries=threshold)
    labels = forced_labels(table, "queries")
    relabeled = [((k, labels[q]), s) for (k, q), s in table.entries]
    assert comparison_of(relabeled) in (ast.Comparison("<"), ast.Comparison("<="))
    assert len(set(labels.values())) == 3


def test_no_labels_are_forced_when_rows_are_not_a_comparison():
    rows = {0: {0, 2}, 1: {1}}  # label 0 selects two separate indices
    table = select_table(lambda k, q: k in rows[q], queries=rows)
    assert forced_labels(table, "queries") is None


def test_labels_compared_with_themselves_are_ranked():
    # sort's select(keys, keys, <) with opaque keys: the order is recovered.
    hidden_order = {5: 0.2, 3: 1.4, 9: 0.9, 1: 3.0}
    table = select_table(
        lambda k, q: hidden_order[k] < hidden_order[q], keys=hidden_order, queries=hidden_order
    )
    ranks = ranked_labels(table)
    assert ranks == {5: 0, 9: 1, 3: 2, 1: 3}


def test_labels_compared_with_themselves_by_a_non_order_are_not_ranked():
    table = select_table(lambda k, q: (k + q) % 2 == 0, keys=range(4), queries=range(4))
    assert ranked_labels(table) is None


def test_labels_are_ranked_from_a_partial_table():
    # A network's selector table holds only the pairs seen in traces.
    hidden_order = {5: 0.2, 3: 1.4, 9: 0.9, 1: 3.0}
    seen = {(5, 9), (9, 3), (3, 1), (1, 5), (9, 9)}
    entries = tuple(((k, q), hidden_order[k] < hidden_order[q]) for k, q in seen)
    ranks = ranked_labels(ast.Table(entries))
    assert ranks is not None
    assert sorted(hidden_order, key=ranks.get) == [5, 9, 3, 1]
