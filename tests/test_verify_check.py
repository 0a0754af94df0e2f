"""verify.check against independent oracles: tracr's evaluator and hand-computed outputs."""

from __future__ import annotations

import math
from unittest import mock

import numpy as np
import pytest
from tracr.compiler import lib
from tracr.rasp import rasp

import dsl
from verify import Counterexample, Verdict, check
from verify.verdict import EXHAUSTIVE, PROVED, REFUTED, SAMPLED, UNKNOWN

REVERSE = dsl.parse(
    """
length = selector_width(select(tokens, tokens, true))
opp = length - indices - 1
flip = select(indices, opp, ==)
return aggregate(flip, tokens)
"""
)
WRONG_REVERSE = dsl.parse(
    """
length = selector_width(select(tokens, tokens, true))
opp = length - indices
flip = select(indices, opp, ==)
return aggregate(flip, tokens)
"""
)


def tracr_oracle(sop):
    """tracr's own evaluator, one input at a time: the independent truth."""
    return lambda batch: [rasp.evaluate(sop, list(tokens)) for tokens in batch]


def test_a_right_program_passes_exhaustively_against_tracr():
    verdict = check(
        REVERSE, tracr_oracle(lib.make_reverse(rasp.tokens)), vocab="abc", max_seq_len=4
    )
    assert verdict.level == EXHAUSTIVE and verdict.ok
    assert verdict.inputs_covered == 3 + 9 + 27 + 81
    assert str(verdict) == "exhaustive(4): 120 inputs"
    assert verdict.counterexamples == ()


def test_a_wrong_program_is_refuted_with_the_first_counterexamples():
    verdict = check(
        WRONG_REVERSE,
        tracr_oracle(lib.make_reverse(rasp.tokens)),
        vocab="abc",
        max_seq_len=4,
        max_counterexamples=3,
    )
    assert verdict.level == REFUTED and not verdict.ok
    # Inputs are enumerated shortest first; position 0 selects index `length`: nothing, None.
    assert verdict.counterexamples == (
        Counterexample(("a",), ("a",), (None,), 0),
        Counterexample(("b",), ("b",), (None,), 0),
        Counterexample(("c",), ("c",), (None,), 0),
    )
    assert str(verdict) == "refuted: input ['a'] position 0: expected 'a', got None"


def test_sampling_is_seeded_and_reported():
    oracle = tracr_oracle(lib.make_reverse(rasp.tokens))
    first = check(
        REVERSE, oracle, vocab="abcdefgh", max_seq_len=8, exhaustive=False, samples=300, seed=5
    )
    again = check(
        REVERSE, oracle, vocab="abcdefgh", max_seq_len=8, exhaustive=False, samples=300, seed=5
    )
    assert first.level == SAMPLED and first.inputs_covered == 300
    assert (first.samples, first.seed) == (300, 5)
    assert str(first) == "sampled(300, seed=5)"
    wrong = check(
        WRONG_REVERSE,
        oracle,
        vocab="abcdefgh",
        max_seq_len=8,
        exhaustive=False,
        samples=300,
        seed=5,
    )
    wrong_again = check(
        WRONG_REVERSE,
        oracle,
        vocab="abcdefgh",
        max_seq_len=8,
        exhaustive=False,
        samples=300,
        seed=5,
    )
    assert wrong.counterexamples == wrong_again.counterexamples != ()
    assert again.level == first.level


def test_auto_mode_samples_when_the_domain_is_too_big():
    oracle = tracr_oracle(lib.make_reverse(rasp.tokens))
    with mock.patch("verify.check.EXHAUSTIVE_LIMIT", 100):
        small = check(REVERSE, oracle, vocab="ab", max_seq_len=5)  # 62 inputs
        large = check(REVERSE, oracle, vocab="abc", max_seq_len=5, samples=50)  # 363 inputs
    assert small.level == EXHAUSTIVE and small.inputs_covered == 62
    assert large.level == SAMPLED and large.inputs_covered == 50


def test_a_predicate_restricts_the_domain_and_is_stated():
    sort = dsl.parse(
        """
smaller = select(tokens, tokens, <)
target = selector_width(smaller)
return aggregate(select(target, indices, ==), tokens)
"""
    )

    def distinct(tokens):
        return len(set(tokens)) == len(tokens)

    oracle = tracr_oracle(lib.make_sort_unique(rasp.tokens, rasp.tokens))
    verdict = check(
        sort,
        oracle,
        vocab=[1, 2, 3],
        max_seq_len=3,
        predicate=distinct,
        predicate_description="distinct tokens",
    )
    assert verdict.level == EXHAUSTIVE
    assert verdict.inputs_covered == 3 + 6 + 6  # sequences of distinct tokens
    assert "restricted to distinct tokens" in verdict.domain
    with pytest.raises(ValueError, match="predicate_description"):
        check(sort, oracle, vocab=[1, 2], max_seq_len=2, predicate=distinct)


FRACTION = dsl.parse(
    """
is_x = numerical map(lambda t: 1 if t == "x" else 0, tokens)
return numerical aggregate(select(indices, indices, <=), is_x, default=0)
"""
)


def _fractions(batch, noise=0.0):
    """Hand-computed: the running fraction of "x", plus a little noise."""
    return [
        np.array([sum(t == "x" for t in s[: i + 1]) / (i + 1) + noise for i in range(len(s))])
        for s in batch
    ]


def test_numbers_are_compared_with_the_stated_tolerance():
    def noisy(batch):
        return _fractions(batch, noise=1e-6)

    loose = check(FRACTION, noisy, vocab="xy", max_seq_len=4, tolerance=1e-4)
    assert loose.ok and loose.tolerance == 1e-4
    strict = check(FRACTION, noisy, vocab="xy", max_seq_len=4, tolerance=1e-9)
    assert strict.level == REFUTED
    assert strict.counterexamples[0].input == ("x",)


DUPLICATE_LOOKUP = dsl.parse("return aggregate(select(tokens, tokens, ==), tokens)")


def test_undefined_inputs_are_excluded_and_counted():
    # Several selected strings: tracr raises on ["a", "a"] and ["b", "b"].
    verdict = check(DUPLICATE_LOOKUP, lambda batch: batch, vocab="ab", max_seq_len=2)
    assert verdict.ok
    assert (verdict.inputs_covered, verdict.undefined_inputs) == (4, 2)
    assert "excluded and counted" in verdict.undefined_rule
    assert "inputs set aside as undefined: 2" in verdict.describe()


def test_undefined_inputs_can_count_as_disagreements():
    verdict = check(
        DUPLICATE_LOOKUP, lambda batch: batch, vocab="ab", max_seq_len=2, undefined="refute"
    )
    assert verdict.level == REFUTED
    example = verdict.counterexamples[0]
    assert example.input == ("a", "a") and example.got is None and example.position is None
    assert "undefined for the program" in str(example)


def test_an_oracle_with_the_wrong_batch_size_is_an_error():
    with pytest.raises(ValueError, match="oracle returned 1 outputs"):
        check(REVERSE, lambda batch: batch[:1], vocab="ab", max_seq_len=2)


def test_output_length_mismatch_is_a_disagreement():
    verdict = check(REVERSE, lambda batch: [s + ["a"] for s in batch], vocab="ab", max_seq_len=2)
    assert verdict.level == REFUTED
    assert "length" in str(verdict.counterexamples[0])


def test_verdict_summaries():
    assert str(Verdict(PROVED, 8)) == "proved(8)"
    assert str(Verdict(EXHAUSTIVE, 5, inputs_covered=3905)) == "exhaustive(5): 3,905 inputs"
    assert str(Verdict(SAMPLED, 5, samples=2000, seed=0)) == "sampled(2000, seed=0)"
    assert str(Verdict(UNKNOWN, 5, reason="timeout after 5 s")) == "unknown: timeout after 5 s"
    assert [Verdict(level, 1).ok for level in (PROVED, EXHAUSTIVE, SAMPLED, REFUTED, UNKNOWN)] == [
        True,
        True,
        True,
        False,
        False,
    ]
    with pytest.raises(ValueError):
        Verdict("fine", 1)


@pytest.mark.parametrize("tolerance", [math.inf, -1e-4, math.nan])
def test_a_tolerance_that_is_not_finite_and_non_negative_is_refused(tolerance):
    # inf would call any two numbers equal (a wrong program passes), -1 and nan none
    with pytest.raises(ValueError, match="tolerance must be a finite number >= 0"):
        check(FRACTION, _fractions, vocab="xy", max_seq_len=4, tolerance=tolerance)
