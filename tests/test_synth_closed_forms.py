"""Closed forms for tables: hand-computed tables with known smallest lambdas."""

from __future__ import annotations

import itertools

import pytest

from dsl import ast
from dsl.functions import make_callable
from synth.closed_forms import closed_form, relabeling_forms
from synth.expressions import expression_size


def table(mapping: dict) -> ast.Table:
    return ast.Table(tuple(mapping.items()))


def agrees_with(fn: ast.Lambda, mapping: dict) -> bool:
    call = make_callable(fn)
    return all(call(*(key if fn.arity == 2 else (key,))) == value for key, value in mapping.items())


FRACTIONS = sorted({i / j for j in range(1, 6) for i in range(-j, j + 1)})

EXACT_CASES = [
    # (table, arity, expected body as written by hand)
    ({i: i - 1 for i in range(6)}, 1, ast.BinOp("-", ast.Var("x"), ast.Const(1))),
    ({t: t == "a" for t in "abcd"}, 1, ast.Compare("==", ast.Var("x"), ast.Const("a"))),
    ({i: -i for i in range(5)}, 1, ast.UnaryOp("-", ast.Var("x"))),
    ({i: 1 - i for i in range(5)}, 1, ast.BinOp("-", ast.Const(1), ast.Var("x"))),
    (
        {t: 1 if t == "b" else 0 for t in "abc"},
        1,
        ast.IfExp(ast.Compare("==", ast.Var("x"), ast.Const("b")), ast.Const(1), ast.Const(0)),
    ),
    (
        {(n, i): n - i - 1 for n in range(1, 6) for i in range(5)},
        2,
        ast.BinOp("-", ast.BinOp("-", ast.Var("x"), ast.Var("y")), ast.Const(1)),
    ),
    (
        {(a, b): a - b for a in FRACTIONS for b in FRACTIONS},
        2,
        ast.BinOp("-", ast.Var("x"), ast.Var("y")),
    ),
    (
        {(a, b): min(a, b) < 0 for a in FRACTIONS for b in FRACTIONS},
        2,
        ast.Compare("<", ast.Call("min", (ast.Var("x"), ast.Var("y"))), ast.Const(0)),
    ),
    (
        {(i, t): i * i / t for i in range(3) for t in (1, 2, 3)},
        2,
        ast.BinOp("/", ast.BinOp("*", ast.Var("x"), ast.Var("x")), ast.Var("y")),
    ),
]


@pytest.mark.parametrize("mapping, arity, expected", EXACT_CASES)
def test_closed_form_is_the_smallest_agreeing_lambda(mapping, arity, expected):
    found = closed_form(table(mapping), arity)
    assert found is not None
    assert agrees_with(found, mapping)
    assert expression_size(found.body) == expression_size(expected)
    assert found.body == expected


def test_a_table_without_a_small_closed_form_stays_a_table():
    # An arbitrary-looking function of a token: nothing of size <= 6 fits.
    mapping = {"a": 3, "b": 7, "c": 2, "d": 9, "e": 4}
    assert closed_form(table(mapping), 1) is None


def test_boolean_outputs_are_not_matched_by_numbers():
    # tracr's `tokens == "a"` gives booleans: `1 if ... else 0` must not stand for it.
    found = closed_form(table({t: t == "a" for t in "ab"}), 1)
    assert found.body == ast.Compare("==", ast.Var("x"), ast.Const("a"))
    assert make_callable(found)("a") is True


def test_a_tuple_valued_map_table_has_one_argument():
    mapping = {(1, 2): 3, (2, 2): 4}
    # Keys are tuples, but a map's table is a function of one value: no lambda of
    # one variable adds tuple components, so nothing fits, and nothing crashes.
    assert closed_form(table(mapping), 1) is None


def test_a_large_table_with_one_special_point_is_found_through_sampling():
    # 41 x 41 points, true only at (0, 0): the search evaluates candidates on a
    # sample, so expressions alike on the sample must still be told apart.
    values = [v / 4 for v in range(-20, 21)]
    mapping = {(a, b): a == 0 and b == 0 for a, b in itertools.product(values, values)}
    found = closed_form(table(mapping), 2)
    assert found is not None and agrees_with(found, mapping)
    assert expression_size(found.body) == 5  # `not x and not y`


def test_relabeling_an_injective_map_gives_the_identity():
    labels = {"a": 2, "b": 0, "c": 1}
    forms = list(relabeling_forms(table(labels), 1))
    assert forms[0].fn.body == ast.Var("x")
    assert forms[0].new_labels == {2: "a", 0: "b", 1: "c"}


def test_relabeling_a_two_way_split_of_tokens_gives_a_comparison():
    labels = {"a": 1, "b": 0, "c": 0, "d": 0}
    first = next(relabeling_forms(table(labels), 1))
    assert first.fn.body == ast.Compare("==", ast.Var("x"), ast.Const("a"))
    assert first.new_labels == {1: True, 0: False}


def test_relabeling_forms_separate_keys_exactly_as_the_labels_do():
    # Opaque labels of `length - indices` (9 distinct values over 25 pairs).
    pairs = [(n, i) for n in range(1, 6) for i in range(5)]
    differences = sorted({n - i for n, i in pairs})
    label_of = {d: (7 * position) % 9 for position, d in enumerate(differences)}
    labels = {(n, i): label_of[n - i] for n, i in pairs}
    forms = list(relabeling_forms(table(labels), 2))
    assert forms, "x - y separates the pairs as the labels do"
    assert forms[0].fn.body == ast.BinOp("-", ast.Var("x"), ast.Var("y"))
    for form in forms[:10]:
        call = make_callable(form.fn)
        for key, label in labels.items():
            assert call(*key) == form.new_labels[label]
        assert len(set(form.new_labels.values())) == len(form.new_labels)


def test_labels_never_become_none():
    # None is an aggregate's default; a form giving None would merge labels with it.
    labels = {"a": 0, "b": 1}
    for form in relabeling_forms(table(labels), 1):
        assert None not in form.new_labels.values()


def test_a_closed_form_gives_the_tables_floats_to_the_last_bit():
    # 2 * (4/3) + 1 is 3.6666666666666665 but 4/3 + (4/3 + 1) is 3.666666666666666:
    # the same to 9 decimals, so only a bit-for-bit check tells them apart.
    mapping = {(x, y): 2 * x + y for x in (0, 2 / 3, 1 + 1 / 3) for y in (0, 1)}
    found = closed_form(table(mapping), 2)
    assert found is not None
    call = make_callable(found)
    for (x, y), value in mapping.items():
        assert repr(call(x, y)) == repr(value)
