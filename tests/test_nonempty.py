"""An aggregate that never takes its default (nonempty): position-local rows (reverse's
flip) and the sort idiom's ranks. Every "yes" is checked against enumeration of every
input under the precondition; random programs with hypothesis."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dsl
from distill.circuit.nonempty import never_selects_nothing
from distill.circuit.precondition import precondition_holds
from dsl import ast
from dsl.domain import enumerate_inputs

VOCAB, MAX_LEN = [0, 1, 2], 5
NONE_SELECTED = -1


def _sort(
    keys: dict, values: dict, order: str = "<", value_encoding=ast.CATEGORICAL, by_count=False
):
    """key = keys[(token, index)], or keys[(count of my token, index)] by_count (sort_freq);
    out = the value of the key ranked at my index."""
    d = ast.Definition
    same = ast.Select(ast.Tokens(), ast.Tokens(), ast.Comparison("=="))
    first = ast.SelectorWidth(same) if by_count else ast.Tokens()
    definitions = (
        d("key", ast.SequenceMap(ast.Table(tuple(keys.items())), first, ast.Indices())),
        d("below", ast.Select(ast.Name("key"), ast.Name("key"), ast.Comparison(order))),
        d("width", ast.SelectorWidth(ast.Name("below"))),
        d("target", ast.Select(ast.Name("width"), ast.Indices(), ast.Comparison("=="))),
        d("value", ast.Map(ast.Table(tuple(values.items())), ast.Tokens(), value_encoding)),
        d(
            "out",
            ast.Aggregate(
                ast.Name("target"), ast.Name("value"), NONE_SELECTED, encoding=value_encoding
            ),
        ),
    )
    return ast.Program(definitions, ast.Name("out"))


def _reaches_default(program) -> bool:
    """Does some input where the precondition holds give the default somewhere?"""
    inputs = [x for batch in enumerate_inputs(VOCAB, MAX_LEN) for x in batch]
    outputs = dsl.evaluate(program, inputs, undefined="mark")
    holds = precondition_holds(program, inputs)
    return any(ok and out is not None and NONE_SELECTED in out for ok, out in zip(holds, outputs))


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    # Keys of distinct ranks, some merged (ranks divided): collisions of every kind.
    key_values=st.permutations(range((MAX_LEN + 1) * MAX_LEN)),
    merge=st.sampled_from([1, 1, 2, 3]),
    value_values=st.lists(st.integers(0, 2), min_size=len(VOCAB), max_size=len(VOCAB)),
    order=st.sampled_from(["<", ">"]),
    numerical=st.booleans(),
    by_count=st.booleans(),
)
def test_a_default_said_unreachable_is_never_reached(
    key_values, merge, value_values, order, numerical, by_count
):
    # By count the key reads the count of my token (0..MAX_LEN), not the token itself.
    firsts = range(MAX_LEN + 1) if by_count else VOCAB
    cells = [(f, i) for f in firsts for i in range(MAX_LEN)]
    keys = dict(zip(cells, (k // merge for k in key_values)))
    values = dict(zip(VOCAB, value_values))
    encoding = ast.NUMERICAL if numerical else ast.CATEGORICAL
    program = _sort(keys, values, order, encoding, by_count)
    if never_selects_nothing(program, "out", VOCAB, MAX_LEN):
        assert not _reaches_default(program)


def _flip(query: dict, key_shift: int, vocab=VOCAB, max_len=MAX_LEN):
    """out = the token at the position whose key equals my query, the query a function of
    (length, index) and the key the index, moved by `key_shift` where the token is 1."""
    d = ast.Definition
    keys = {(t, i): i + (key_shift if t == 1 else 0) for t in vocab for i in range(max_len)}
    definitions = (
        d("all", ast.Select(ast.Tokens(), ast.Tokens(), ast.Comparison("true"))),
        d("length", ast.SelectorWidth(ast.Name("all"))),
        d(
            "opp",
            ast.SequenceMap(ast.Table(tuple(query.items())), ast.Name("length"), ast.Indices()),
        ),
        d("key", ast.SequenceMap(ast.Table(tuple(keys.items())), ast.Tokens(), ast.Indices())),
        d("flip", ast.Select(ast.Name("key"), ast.Name("opp"), ast.Comparison("=="))),
        d("out", ast.Aggregate(ast.Name("flip"), ast.Tokens(), NONE_SELECTED)),
    )
    return ast.Program(definitions, ast.Name("out"))


@settings(max_examples=100, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    a=st.integers(-2, 2),
    b=st.integers(-2, 2),
    c=st.integers(0, 3),
    spill=st.integers(0, 1),
    key_shift=st.integers(0, 1),
)
def test_rows_said_filled_are_filled(a, b, c, spill, key_shift):
    # query = (a i + b length + c) mod (length + spill): past the last index when spilling.
    query = {
        (length, i): (a * i + b * length + c) % (length + spill)
        for length in range(MAX_LEN + 1)
        for i in range(MAX_LEN)
        if length
    }
    program = _flip(query, key_shift)
    if never_selects_nothing(program, "out", VOCAB, MAX_LEN):
        assert not _reaches_default(program)


def test_reverse_always_selects_and_one_off_does_not():
    reverse = {(n, i): n - i - 1 for n in range(1, MAX_LEN + 1) for i in range(MAX_LEN)}
    assert never_selects_nothing(_flip(reverse, 0), "out", VOCAB, MAX_LEN)
    one_off = {(n, i): n - i for n in range(1, MAX_LEN + 1) for i in range(MAX_LEN)}
    assert not never_selects_nothing(_flip(one_off, 0), "out", VOCAB, MAX_LEN)
    assert _reaches_default(_flip(one_off, 0))
    # The key moves where the token is 1: an input of 1s leaves index 0 unselected.
    assert not never_selects_nothing(_flip(reverse, 1), "out", VOCAB, MAX_LEN)
    assert _reaches_default(_flip(reverse, 1))


def test_unique_keys_always_select():
    # tracr's make_sort keys: token + index / max_len, distinct at distinct positions.
    keys = {(t, i): t + i / MAX_LEN for t in VOCAB for i in range(MAX_LEN)}
    program = _sort(keys, {t: t for t in VOCAB})
    assert never_selects_nothing(program, "out", VOCAB, MAX_LEN)
    assert not _reaches_default(program)


def test_colliding_keys_with_different_values_are_outside_the_precondition():
    # token + index / 2: (t, i) and (t + 1, i - 2) collide, and their values differ.
    keys = {(t, i): t + i / 2 for t in VOCAB for i in range(MAX_LEN)}
    program = _sort(keys, {t: t for t in VOCAB})
    assert never_selects_nothing(program, "out", VOCAB, MAX_LEN)
    assert not _reaches_default(program)


def test_sort_by_count_built_for_a_shorter_length_is_outside_the_precondition():
    # tracr's make_sort_freq(max_seq_len=2) at length 5: -count + index / 2 collides only
    # between different counts, so different tokens, so different values.
    # (A width's table covers 0..max-len, as one read off a network does.)
    keys = {(c, i): -c + i / 2 for c in range(MAX_LEN + 1) for i in range(MAX_LEN)}
    program = _sort(keys, {t: t for t in VOCAB}, by_count=True)
    assert never_selects_nothing(program, "out", VOCAB, MAX_LEN)
    assert not _reaches_default(program)
    # The same keys read by token instead of count collide between equal values.
    by_token = {(t, i): -t + i / 2 for t in VOCAB for i in range(MAX_LEN)}
    constant = _sort(by_token, {t: 0 for t in VOCAB})
    assert not never_selects_nothing(constant, "out", VOCAB, MAX_LEN)


def test_colliding_keys_with_equal_values_are_not_claimed():
    keys = {(t, i): t + i / 2 for t in VOCAB for i in range(MAX_LEN)}
    program = _sort(keys, {t: 0 for t in VOCAB})
    assert not never_selects_nothing(program, "out", VOCAB, MAX_LEN)
    assert _reaches_default(program)


def test_a_selector_reading_other_positions_is_not_claimed():
    keys = {(t, i): t + i / MAX_LEN for t in VOCAB for i in range(MAX_LEN)}
    program = _sort(keys, {t: t for t in VOCAB})
    # The key is now a width: it reads every position, so the pairs cannot be listed.
    definitions = list(program.definitions)
    definitions[0] = ast.Definition(
        "key",
        ast.SelectorWidth(ast.Select(ast.Tokens(), ast.Tokens(), ast.Comparison("=="))),
    )
    assert not never_selects_nothing(
        ast.Program(tuple(definitions), program.output), "out", VOCAB, MAX_LEN
    )


def test_at_realistic_sizes_the_arguments_hold_where_they_must():
    # Hand-computed truths at the held-out sizes: reverse's flip fills every row (vocab
    # 26, max-len 12), one off it does not (index 0 at any length); unique sort keys
    # (vocab 10, max-len 10) rank as a permutation; keys built for length 5 collide only
    # between different tokens (or different counts, hence different tokens).
    vocab, n = list(range(26)), 12
    reverse = {(m, i): m - i - 1 for m in range(1, n + 1) for i in range(n)}
    assert never_selects_nothing(_flip(reverse, 0, vocab, n), "out", vocab, n)
    one_off = {(m, i): m - i for m in range(1, n + 1) for i in range(n)}
    assert not never_selects_nothing(_flip(one_off, 0, vocab, n), "out", vocab, n)
    vocab, n = list(range(1, 11)), 10
    tokens = {t: t for t in vocab}
    unique = {(t, i): t + i / n for t in vocab for i in range(n)}
    assert never_selects_nothing(_sort(unique, tokens), "out", vocab, n)
    short = {(t, i): t + i / 5 for t in vocab for i in range(n)}
    assert never_selects_nothing(_sort(short, tokens), "out", vocab, n)
    assert not never_selects_nothing(_sort(short, {t: 0 for t in vocab}), "out", vocab, n)
    by_count = {(c, i): -c + i / 5 for c in range(n + 1) for i in range(n)}
    assert never_selects_nothing(_sort(by_count, tokens, by_count=True), "out", vocab, n)
