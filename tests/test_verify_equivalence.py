"""verify.equivalent (Z3) against the truth: exhaustive enumeration with dsl.evaluate."""

from __future__ import annotations

from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verify_strategies import equal_pairs, mutated_pairs, outputs_same

import dsl
from dsl import ast
from dsl.domain import enumerate_inputs
from verify import equivalent
from verify.equivalence import (
    RELATIONS,
    SINGLE_VALUED_AGGREGATES,
    UNDEFINED_RULE,
    WHERE_SECOND_VALUED,
)
from verify.z3 import ENCODERS, limits

# At these small sizes every cell would be computed concretely (see verify.z3's
# "finite cells"); limits of 1 and 3 token assignments force the symbolic encoding
# for everything that depends on the input, or on more than one position; 9 keeps
# the cells of two positions finite (a vocab of 3) and makes rows of selectors
# symbolic, counted by token value (verify.z3.counting).
FINITE_LIMITS = st.sampled_from([1, 3, 9, limits.FINITE_LIMIT])

PAIR_SETTINGS = settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.filter_too_much,
    ],
)


def _disagreements(p, q, vocab, max_seq_len) -> list[list]:
    """Every input of the domain on which p and q differ (one being undefined counts)."""
    found = []
    for batch in enumerate_inputs(vocab, max_seq_len):
        left = dsl.evaluate(p, batch, undefined="mark")
        right = dsl.evaluate(q, batch, undefined="mark")
        found += [s for s, x, y in zip(batch, left, right) if not outputs_same(x, y)]
    return found


def _assert_agrees_with_enumeration(p, q, vocab, max_seq_len, finite_limit=limits.FINITE_LIMIT):
    with mock.patch.object(limits, "FINITE_LIMIT", finite_limit):
        verdict = equivalent(p, q, vocab=vocab, max_seq_len=max_seq_len, timeout=30)
    differing = _disagreements(p, q, vocab, max_seq_len)
    if not differing:
        assert verdict.level == "proved", (verdict, dsl.to_source(p), dsl.to_source(q))
        return
    assert verdict.level == "refuted", (verdict, differing[:3], dsl.to_source(p), dsl.to_source(q))
    example = verdict.counterexamples[0]
    assert list(example.input) in differing  # the counterexample reproduces
    # Z3 searches lengths in order, so its counterexample is one of the shortest.
    assert len(example.input) == min(len(s) for s in differing)


@PAIR_SETTINGS
@given(equal_pairs(vocab=("a", "b", "c"), max_seq_len=3), FINITE_LIMITS)
def test_rewrites_are_proved_equal_like_enumeration_says(pair, finite_limit):
    p, q, rewrite = pair
    assert _disagreements(p, q, ("a", "b", "c"), 3) == [], f"the rewrite {rewrite} is not equal"
    _assert_agrees_with_enumeration(p, q, ("a", "b", "c"), 3, finite_limit)


@PAIR_SETTINGS
@given(mutated_pairs(vocab=(0, 1, 2), max_seq_len=3), FINITE_LIMITS)
def test_mutants_get_the_verdict_enumeration_gives(pair, finite_limit):
    p, q, _ = pair
    _assert_agrees_with_enumeration(p, q, (0, 1, 2), 3, finite_limit)


@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_pairs(vocab=("a", "b", 1), max_seq_len=3), FINITE_LIMITS)
def test_mutants_over_a_mixed_vocab(pair, finite_limit):
    p, q, _ = pair
    _assert_agrees_with_enumeration(p, q, ("a", "b", 1), 3, finite_limit)


def test_the_encoder_covers_every_node_type():
    assert set(ENCODERS) == set(ast.NODE_TYPES)


REVERSE_INFIX = """
length = selector_width(select(tokens, tokens, true))
opp = length - indices - 1
flip = select(indices, opp, ==)
return aggregate(flip, tokens)
"""

REVERSE_TABLES = """
all = select(tokens, tokens, true)
length = selector_width(all)
opp = sequence_map({table}, length, indices)
flip = select(indices, opp, lambda k, q: q == k)
return aggregate(flip, map(lambda t: t, tokens))
"""


def _reverse_with_tables(max_seq_len: int) -> dsl.Program:
    entries = ", ".join(
        f"({n}, {i}): {n - i - 1}" for n in range(max_seq_len + 1) for i in range(max_seq_len)
    )
    return dsl.parse(REVERSE_TABLES.replace("{table}", "{" + entries + "}"))


def test_reverse_infix_equals_reverse_with_tables_beyond_enumeration():
    # vocab 8, lengths up to 10: over a billion inputs.
    verdict = equivalent(
        dsl.parse(REVERSE_INFIX), _reverse_with_tables(10), vocab=list("abcdefgh"), max_seq_len=10
    )
    assert str(verdict) == "proved(10)"
    assert verdict.undefined_rule == UNDEFINED_RULE


def test_a_wrong_reverse_is_refuted_with_a_reproducing_counterexample():
    wrong = dsl.parse(REVERSE_INFIX.replace("length - indices - 1", "length - indices"))
    verdict = equivalent(dsl.parse(REVERSE_INFIX), wrong, vocab=list("abcdefgh"), max_seq_len=10)
    assert verdict.level == "refuted"
    example = verdict.counterexamples[0]
    expected = dsl.evaluate(dsl.parse(REVERSE_INFIX), [list(example.input)], undefined="mark")[0]
    got = dsl.evaluate(wrong, [list(example.input)], undefined="mark")[0]
    assert not outputs_same(expected, got)
    assert example.expected == tuple(expected)


SORT_UNIQUE = """
smaller = select(tokens, tokens, <)
target_pos = selector_width(smaller)
moved = select(target_pos, indices, ==)
return aggregate(moved, tokens)
"""

SORT_UNIQUE_TABLES = """
rank = map({1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1}, tokens)
smaller = select(rank, rank, lambda k, q: k > q)
target_pos = selector_width(smaller)
slot = map({0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8}, target_pos)
moved = select(slot, indices, ==)
return aggregate(moved, map({1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}, tokens))
"""


def test_sort_unique_equals_its_table_rewrite():
    # The full size (vocab 6, length 8) is in benchmarks/equiv.py; this one also enumerates.
    vocab, n = list(range(1, 7)), 5
    p, q = dsl.parse(SORT_UNIQUE), dsl.parse(SORT_UNIQUE_TABLES)
    assert str(equivalent(p, q, vocab=vocab, max_seq_len=n)) == "proved(5)"
    assert _disagreements(p, q, vocab, n) == []


def test_sort_unique_from_tracr_equals_the_hand_written_one():
    from tracr.compiler import lib
    from tracr.rasp import rasp

    vocab = list(range(1, 7))
    sort = dsl.from_tracr(
        lib.make_sort_unique(rasp.tokens, rasp.tokens), vocab=vocab, max_seq_len=5
    )
    assert equivalent(sort, dsl.parse(SORT_UNIQUE_TABLES), vocab=vocab, max_seq_len=5).ok


FRAC_PREVS = """
is_x = numerical map(lambda t: 1 if t == "x" else 0, tokens)
prevs = select(indices, indices, <=)
return numerical aggregate(prevs, is_x, default=0)
"""


def test_numerical_means_are_exact():
    table = dsl.parse(
        FRAC_PREVS.replace('lambda t: 1 if t == "x" else 0', '{"x": 1, "a": 0, "b": 0}')
    )
    assert equivalent(dsl.parse(FRAC_PREVS), table, vocab=["x", "a", "b"], max_seq_len=6).ok
    # Counting "x" twice is refuted: the means differ wherever an "x" occurs.
    doubled = dsl.parse(FRAC_PREVS.replace("1 if", "2 if"))
    verdict = equivalent(dsl.parse(FRAC_PREVS), doubled, vocab=["x", "a", "b"], max_seq_len=6)
    assert verdict.level == "refuted"
    assert verdict.counterexamples[0].input == ("x",)


PREFIX_MEAN = """
prefix = select(indices, indices, <=)
return aggregate(prefix, tokens)
"""


def test_single_valued_precondition_restricts_the_claim():
    # The categorical mean of a prefix equals the token only where the prefix holds one value.
    p, q = dsl.parse(PREFIX_MEAN), dsl.parse("return tokens")
    plain = equivalent(p, q, vocab=[1, 2, 3], max_seq_len=5)
    assert plain.level == "refuted"
    restricted = equivalent(
        p, q, vocab=[1, 2, 3], max_seq_len=5, precondition=SINGLE_VALUED_AGGREGATES
    )
    assert str(restricted) == "proved(5)"
    assert "at most one distinct value" in restricted.domain


def test_a_program_undefined_where_the_other_is_defined_is_not_equal():
    # Several selected strings: tracr's evaluator raises, so p is undefined on ["a", "a"].
    p = dsl.parse("return aggregate(select(tokens, tokens, ==), tokens)")
    verdict = equivalent(p, dsl.parse("return tokens"), vocab=["a", "b"], max_seq_len=3)
    assert verdict.level == "refuted"
    example = verdict.counterexamples[0]
    assert example.expected is None and example.got is not None
    assert dsl.evaluate(p, [list(example.input)], undefined="mark") == [None]


def test_programs_undefined_on_the_same_inputs_are_equal():
    p = dsl.parse("return aggregate(select(tokens, tokens, ==), tokens)")
    q = dsl.parse(
        "return aggregate(select(tokens, tokens, lambda k, q: q == k), map(lambda x: x, tokens))"
    )
    assert equivalent(p, q, vocab=["a", "b"], max_seq_len=4).ok


def test_a_tiny_timeout_gives_unknown_never_proved():
    p, q = dsl.parse(SORT_UNIQUE), dsl.parse(SORT_UNIQUE_TABLES)
    verdict = equivalent(p, q, vocab=list(range(1, 7)), max_seq_len=8, timeout=1e-4)
    assert verdict.level == "unknown"
    assert not verdict.ok
    assert "timeout" in str(verdict)


def test_a_value_the_encoding_cannot_represent_gives_unknown():
    # A string-valued lambda of a numerical mean is tabulated over the mean's possible
    # values; the two programs differ only at the mean 4/9 (length 9).
    frac = FRAC_PREVS.replace("return numerical aggregate", "frac = numerical aggregate")
    p = dsl.parse(frac + 'return map(lambda f: "many" if f > 0.44 else "few", frac)')
    q = dsl.parse(frac + 'return map(lambda f: "many" if f > 0.45 else "few", frac)')
    differing = _disagreements(p, q, ["x", "a"], 9)
    assert differing and min(len(s) for s in differing) == 9
    refuted = equivalent(p, q, vocab=["x", "a"], max_seq_len=9)
    assert refuted.level == "refuted" and list(refuted.counterexamples[0].input) in differing
    # Without the list of possible means (too many of them), the means are only
    # candidates: an input reaching another value makes the answer unknown, never proved.
    with (
        mock.patch.object(limits, "MAX_MEANS", 0),
        mock.patch.object(limits, "FINITE_LIMIT", 1),
    ):
        verdict = equivalent(p, q, vocab=["x", "a"], max_seq_len=9)
    assert verdict.level == "unknown"
    assert "cannot represent" in verdict.reason


def test_bad_precondition_is_rejected():
    with pytest.raises(ValueError, match="precondition"):
        equivalent(
            dsl.parse("return tokens"),
            dsl.parse("return tokens"),
            vocab=["a"],
            max_seq_len=1,
            precondition="x",
        )


def _agrees_where_second_valued(x, y) -> bool:
    """The relation WHERE_SECOND_VALUED by hand: nothing is claimed where y is undefined or None."""
    if y is None:
        return True
    if x is None or len(x) != len(y):
        return False
    return all(b is None or outputs_same([a], [b]) for a, b in zip(x, y))


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_pairs(vocab=(0, 1, 2), max_seq_len=3), FINITE_LIMITS)
def test_agreement_where_the_second_is_valued_matches_enumeration(pair, finite_limit):
    p, q, _ = pair
    vocab = (0, 1, 2)
    differing = []
    for batch in enumerate_inputs(vocab, 3):
        left = dsl.evaluate(p, batch, undefined="mark")
        right = dsl.evaluate(q, batch, undefined="mark")
        differing += [
            s for s, x, y in zip(batch, left, right) if not _agrees_where_second_valued(x, y)
        ]
    with mock.patch.object(limits, "FINITE_LIMIT", finite_limit):
        verdict = equivalent(
            p, q, vocab=vocab, max_seq_len=3, timeout=30, relation=WHERE_SECOND_VALUED
        )
    if not differing:
        assert verdict.level == "proved", (verdict, dsl.to_source(p), dsl.to_source(q))
        return
    assert verdict.level == "refuted", (verdict, differing[:3], dsl.to_source(p), dsl.to_source(q))
    example = verdict.counterexamples[0]
    assert list(example.input) in differing
    assert len(example.input) == min(len(s) for s in differing)


def test_a_default_filling_what_the_source_leaves_none_agrees_where_the_source_is_valued():
    # The source's aggregate selects nothing at position 0 (None); a compiled model, and
    # the program read off it, put a value there.
    source = dsl.parse(
        "prev = select(indices, indices, lambda k, q: k == q - 1)\nreturn aggregate(prev, tokens)\n"
    )
    filled = dsl.parse(
        "prev = select(indices, indices, lambda k, q: k == q - 1)\n"
        'return aggregate(prev, tokens, default="a")\n'
    )
    wrong = dsl.parse(
        "prev = select(indices, indices, lambda k, q: k == q - 2)\n"
        'return aggregate(prev, tokens, default="a")\n'
    )
    vocab = ("a", "b")
    assert equivalent(filled, source, vocab=vocab, max_seq_len=4).level == "refuted"
    proved = equivalent(filled, source, vocab=vocab, max_seq_len=4, relation=WHERE_SECOND_VALUED)
    assert proved.level == "proved"
    assert proved.undefined_rule == RELATIONS[WHERE_SECOND_VALUED]
    refuted = equivalent(wrong, source, vocab=vocab, max_seq_len=4, relation=WHERE_SECOND_VALUED)
    assert refuted.level == "refuted"
    example = refuted.counterexamples[0]
    assert example.got[example.position] is not None
    assert example.expected[example.position] != example.got[example.position]


# Rows counted by token value (verify.z3.counting): past what enumeration reaches.

WIDTH_LESS = "return selector_width(select(tokens, tokens, <))"
WIDTH_FROM_GREATER_OR_EQUAL = """
length = selector_width(select(tokens, tokens, true))
return length - selector_width(select(tokens, tokens, >=))
"""
SORT_UNIQUE_GREATER_OR_EQUAL = SORT_UNIQUE.replace(
    "smaller = select(tokens, tokens, <)\ntarget_pos = selector_width(smaller)",
    "length = selector_width(select(tokens, tokens, true))\n"
    "target_pos = length - selector_width(select(tokens, tokens, >=))",
)
MEAN_OF_SMALLER = "numerical aggregate(select(tokens, tokens, <), tokens, default=0)"
FRACTION_OF_ONES_BELOW = """
is_one = numerical map(lambda t: 1 if t == 1 else 0, tokens)
return numerical aggregate(select(tokens, tokens, <), is_one, default=0)
"""
FRACTION_OF_ONES_BELOW_FROM_WIDTHS = """
ones = selector_width(select(tokens, tokens, lambda k, q: k < q and k == 1))
smaller = selector_width(select(tokens, tokens, <))
return numerical sequence_map(lambda a, b: a / b if b > 0 else 0, ones, smaller)
"""


def _refuted_only_at(p, q, vocab, max_seq_len, shortest):
    verdict = equivalent(p, q, vocab=vocab, max_seq_len=max_seq_len, timeout=120)
    assert verdict.level == "refuted", verdict
    example = verdict.counterexamples[0]
    assert len(example.input) == shortest
    expected = dsl.evaluate(p, [list(example.input)], undefined="mark")[0]
    got = dsl.evaluate(q, [list(example.input)], undefined="mark")[0]
    assert not outputs_same(expected, got)
    return example


def test_a_width_of_less_equals_length_minus_the_width_of_greater_or_equal():
    p, q = dsl.parse(WIDTH_LESS), dsl.parse(WIDTH_FROM_GREATER_OR_EQUAL)
    assert (
        str(equivalent(p, q, vocab=list(range(1, 7)), max_seq_len=10, timeout=120)) == "proved(10)"
    )


def test_sort_unique_with_its_target_from_greater_or_equal_is_proved_at_length_10():
    p, q = dsl.parse(SORT_UNIQUE), dsl.parse(SORT_UNIQUE_GREATER_OR_EQUAL)
    verdict = equivalent(p, q, vocab=list(range(1, 7)), max_seq_len=10, timeout=120)
    assert str(verdict) == "proved(10)"


def test_an_aggregate_over_less_equals_a_ratio_of_widths():
    p, q = dsl.parse(FRACTION_OF_ONES_BELOW), dsl.parse(FRACTION_OF_ONES_BELOW_FROM_WIDTHS)
    verdict = equivalent(p, q, vocab=list(range(1, 7)), max_seq_len=8, timeout=120)
    assert str(verdict) == "proved(8)"
    assert _disagreements(p, q, list(range(1, 4)), 5) == []


def test_a_width_that_differs_from_length_8_on_is_refuted_there():
    # 7 smaller tokens need 8 positions: [1, 1, 1, 1, 1, 1, 1, 2] and the like.
    wrong = dsl.parse(
        WIDTH_FROM_GREATER_OR_EQUAL.replace("return length -", "width = length -")
        + "return map(lambda w: w if w < 7 else 0, width)\n"
    )
    example = _refuted_only_at(dsl.parse(WIDTH_LESS), wrong, list(range(1, 7)), 9, shortest=8)
    assert 7 in example.expected


def test_a_mean_over_less_that_differs_from_length_9_on_is_refuted_there():
    # The mean 9/8 of smaller tokens needs 8 of them below a ninth: [1] * 7 + [2, 3].
    p = dsl.parse(f"return {MEAN_OF_SMALLER}")
    q = dsl.parse(
        f"mean = {MEAN_OF_SMALLER}\nreturn numerical map(lambda m: 0 if m == 1.125 else m, mean)"
    )
    example = _refuted_only_at(p, q, list(range(1, 7)), 9, shortest=9)
    assert 1.125 in example.expected


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(mutated_pairs(vocab=(0, 1, 2), max_seq_len=5))
def test_mutants_with_rows_counted_by_value_get_the_verdict_enumeration_gives(pair):
    # Cells of two positions are finite (9 assignments), rows of five are counted.
    p, q, _ = pair
    _assert_agrees_with_enumeration(p, q, (0, 1, 2), 5, finite_limit=9)
