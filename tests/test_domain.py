"""dsl.domain: enumeration and sampling of bounded input domains, against hand counts."""

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dsl.domain import Domain, DomainError, count_inputs, enumerate_inputs, sample_inputs
from dsl.errors import DSLError


def _flatten(batches):
    return [sequence for batch in batches for sequence in batch]


def test_enumeration_order_is_by_length_then_vocab_order():
    inputs = _flatten(enumerate_inputs(["b", "a"], 2))
    assert inputs == [["b"], ["a"], ["b", "b"], ["b", "a"], ["a", "b"], ["a", "a"]]


def test_count_matches_hand_computed_sum():
    # 5 + 25 + 125 + 625 + 3125 (the figure of DESIGN's exhaustive(5) example)
    assert count_inputs("abcde", 5) == 3905
    assert count_inputs([1, 2, 3], 3, min_len=2) == 9 + 27
    assert count_inputs(["x"], 0, min_len=0) == 1


@given(
    vocab_size=st.integers(1, 4),
    min_len=st.integers(0, 3),
    extra=st.integers(0, 2),
    batch_size=st.integers(1, 50),
)
def test_enumeration_is_complete_distinct_and_batched(vocab_size, min_len, extra, batch_size):
    vocab = list(range(vocab_size))
    max_len = min_len + extra
    batches = list(enumerate_inputs(vocab, max_len, min_len=min_len, batch_size=batch_size))
    inputs = _flatten(batches)
    expected = [
        list(combo)
        for length in range(min_len, max_len + 1)
        for combo in itertools.product(vocab, repeat=length)
    ]
    assert inputs == expected
    assert len(inputs) == count_inputs(vocab, max_len, min_len=min_len)
    for batch in batches:
        assert 1 <= len(batch) <= batch_size
        assert len({len(sequence) for sequence in batch}) == 1  # one length per batch


def test_a_set_vocab_is_enumerated_in_sorted_order():
    assert _flatten(enumerate_inputs({"b", "a"}, 1)) == [["a"], ["b"]]
    assert _flatten(enumerate_inputs({10, 2}, 1)) == [[2], [10]]


def test_predicate_restricts_enumeration():
    def distinct(sequence):
        return len(set(sequence)) == len(sequence)

    inputs = _flatten(enumerate_inputs("abc", 3, predicate=distinct))
    # 3 + 3*2 + 3*2*1 sequences of distinct tokens
    assert len(inputs) == 15
    assert all(distinct(sequence) for sequence in inputs)


def test_sampling_is_reproducible_and_in_domain():
    first = sample_inputs("abcd", 6, 200, seed=7, min_len=2)
    assert first == sample_inputs("abcd", 6, 200, seed=7, min_len=2)
    assert first != sample_inputs("abcd", 6, 200, seed=8, min_len=2)
    assert len(first) == 200
    assert all(2 <= len(s) <= 6 and set(s) <= set("abcd") for s in first)
    assert {len(s) for s in first} == {2, 3, 4, 5, 6}  # every length is drawn


def test_sampling_respects_predicate():
    samples = sample_inputs([0, 1], 4, 50, seed=0, predicate=lambda s: s[0] == 1)
    assert all(s[0] == 1 for s in samples)


def test_unsatisfiable_predicate_is_an_error_not_a_hang():
    with pytest.raises(DomainError, match="satisfying the predicate"):
        sample_inputs("ab", 3, 2, seed=0, predicate=lambda s: False)


@pytest.mark.parametrize(
    "call",
    [
        lambda: count_inputs([], 3),
        lambda: count_inputs("aa", 3),
        lambda: list(enumerate_inputs("ab", 1, min_len=2)),
        lambda: list(enumerate_inputs("ab", 2, batch_size=0)),
        lambda: sample_inputs("ab", 2, -1, seed=0),
    ],
)
def test_bad_domains_raise_dsl_errors(call):
    with pytest.raises(DSLError):
        call()


def test_domain_describes_itself():
    domain = Domain(("a", "b"), 3, predicate_description="distinct tokens")
    assert domain.size == 2 + 4 + 8
    assert str(domain) == "vocab {'a', 'b'}, lengths 1..3, restricted to distinct tokens"
