"""verify.by_parts against the truth: a pair proved part by part agrees on every input.

Random pairs (one rewrite or one mutation apart) are enumerated exhaustively;
hand-written pairs cover what the distiller produces (relabelled tables, named
comparisons, scaled means) at sizes no enumeration reaches, and the ways a
part-by-part argument could go wrong (a part that can be undefined, a
difference only an unreachable combination shows).
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from verify_strategies import equal_pairs, mutated_pairs, outputs_same

import dsl
from distill.circuit.precondition import precondition_holds
from dsl.domain import enumerate_inputs
from synth.graph import flatten
from verify import equivalent
from verify.by_parts import NotByParts, prove_by_parts
from verify.equivalence import SINGLE_VALUED_AGGREGATES
from verify.verdict import BY_PARTS

SMALL = 3


def _disagreements(p, q, vocab, max_seq_len, *, single_valued: bool) -> list:
    """Inputs on which p and q differ (one undefined counts), within the precondition if asked."""
    p, q = flatten(p), flatten(q)
    found = []
    for batch in enumerate_inputs(vocab, max_seq_len):
        left = dsl.evaluate(p, batch, undefined="mark")
        right = dsl.evaluate(q, batch, undefined="mark")
        claimed = [True] * len(batch)
        if single_valued:
            both = zip(precondition_holds(p, batch), precondition_holds(q, batch))
            claimed = [a and b for a, b in both]
        found += [
            s for s, x, y, c in zip(batch, left, right, claimed) if c and not outputs_same(x, y)
        ]
    return found


def _proved_by_parts(p, q, vocab, max_seq_len, *, single_valued: bool) -> bool:
    try:
        prove_by_parts(p, q, vocab, max_seq_len, single_valued=single_valued)
    except NotByParts:
        return False
    return True


PAIRS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))


@PAIRS
@given(
    st.sampled_from([("a", "b", "c"), (0, 1, 2), ("a", "b", 1)]).flatmap(
        lambda vocab: st.tuples(
            st.just(vocab),
            st.one_of(
                equal_pairs(vocab=vocab, max_seq_len=SMALL),
                mutated_pairs(vocab=vocab, max_seq_len=SMALL),
            ),
        )
    ),
    st.booleans(),
)
def test_a_pair_proved_by_parts_agrees_on_every_input(drawn, single_valued):
    vocab, (p, q, change) = drawn
    if _proved_by_parts(p, q, vocab, SMALL, single_valued=single_valued):
        differing = _disagreements(p, q, vocab, SMALL, single_valued=single_valued)
        assert differing == [], (change, differing[:3], dsl.to_source(p), dsl.to_source(q))


# What the distiller writes for count_less_freq: a head counting equal tokens, an MLP
# labelling rare ones with opaque values, a head counting the keys so labelled.
COUNT_RARE_TABLES = """
same = select(tokens, tokens, ==)
count = selector_width(same)
rare = map({table_of_count}, count)
rare_keys = select(rare, tokens, {rare_table})
result = selector_width(rare_keys)
return numerical map({identity}, result)
"""

COUNT_RARE_READABLE = """
same = select(tokens, tokens, ==)
count = selector_width(same)
rare = count <= 2
rare_keys = select(rare, tokens, lambda k, q: k)
result = selector_width(rare_keys)
return numerical map(lambda x: x, result)
"""


def _count_rare_tables(vocab, max_seq_len: int) -> dsl.Program:
    labels = {w: (0 if w <= 2 else 3) for w in range(max_seq_len + 1)}
    return dsl.parse(
        COUNT_RARE_TABLES.format(
            table_of_count="{" + ", ".join(f"{w}: {v}" for w, v in labels.items()) + "}",
            rare_table="{"
            + ", ".join(f"({label}, {t!r}): {label == 0}" for label in (0, 3) for t in vocab)
            + "}",
            identity="{" + ", ".join(f"{w}: {w}" for w in range(max_seq_len + 1)) + "}",
        )
    )


def test_relabelled_tables_at_vocab_10_and_length_10_are_proved_at_once():
    vocab = list("abcdefghij")
    verdict = equivalent(
        dsl.parse(COUNT_RARE_READABLE),
        _count_rare_tables(vocab, 10),
        vocab=vocab,
        max_seq_len=10,
        timeout=30,
        precondition=SINGLE_VALUED_AGGREGATES,
    )
    assert str(verdict) == "proved(10)" and verdict.method == BY_PARTS
    assert verdict.seconds < 5


def test_relabelled_tables_agree_with_enumeration_where_it_reaches():
    vocab = list("abc")
    readable, tables = dsl.parse(COUNT_RARE_READABLE), _count_rare_tables(vocab, 4)
    assert _proved_by_parts(readable, tables, vocab, 4, single_valued=True)
    assert _disagreements(readable, tables, vocab, 4, single_valued=True) == []
    # One entry of the rare-label table moved: a different program, never proved.
    wrong = dsl.parse(COUNT_RARE_READABLE.replace("count <= 2", "count <= 1"))
    assert _disagreements(wrong, tables, vocab, 4, single_valued=True) != []
    assert not _proved_by_parts(wrong, tables, vocab, 4, single_valued=True)


def test_a_mean_of_doubled_values_is_double_the_mean():
    doubled_inside = dsl.parse(
        "prev = select(indices, indices, <=)\n"
        "return numerical aggregate(prev, numerical map(lambda x: 2 * x, numerical map(lambda t: t == 'a', tokens)))"
    )
    doubled_after = dsl.parse(
        "prev = select(indices, indices, <=)\n"
        "return numerical map(lambda m: m * 2, numerical aggregate(prev, numerical map(lambda t: t == 'a', tokens)))"
    )
    assert _proved_by_parts(doubled_inside, doubled_after, ["a", "b"], 10, single_valued=False)
    assert _disagreements(doubled_inside, doubled_after, ["a", "b"], 5, single_valued=False) == []
    # Shifted instead of scaled: a mean does not commute with it.
    shifted = dsl.parse(
        "prev = select(indices, indices, <=)\n"
        "return numerical aggregate(prev, numerical map(lambda x: x + 1, numerical map(lambda t: t == 'a', tokens)))"
    )
    shifted_after = dsl.parse(
        "prev = select(indices, indices, <=)\n"
        "return numerical map(lambda m: m + 1, numerical aggregate(prev, numerical map(lambda t: t == 'a', tokens)))"
    )
    assert not _proved_by_parts(shifted, shifted_after, ["a", "b"], 10, single_valued=False)


def test_a_part_that_makes_the_reference_undefined_must_have_a_counterpart():
    # q averages every token (undefined from length 2: tokens are not numbers) and then
    # ignores the average; p just returns the tokens.
    q = dsl.parse(
        "every = aggregate(select(indices, indices, true), tokens)\n"
        "return sequence_map(lambda t, e: t, tokens, every)"
    )
    p = dsl.parse("return map(lambda t: t, tokens)")
    assert _disagreements(p, q, ["a", "b"], 2, single_valued=False) != []
    assert not _proved_by_parts(p, q, ["a", "b"], 5, single_valued=False)
    assert equivalent(p, q, vocab=["a", "b"], max_seq_len=3).level == "refuted"


@pytest.mark.parametrize("max_seq_len", [3, 6])
def test_a_difference_on_an_unreachable_combination_is_left_to_z3(max_seq_len):
    # index + width of a full selector: the width (the length) is never at most the index,
    # so `i < w` always holds; part by part the combination (i=2, w=1) looks reachable.
    base = "w = selector_width(select(tokens, tokens, true))\nreturn sequence_map({fn}, indices, w)"
    p = dsl.parse(base.format(fn="lambda i, w: 1 if i < w else 0"))
    q = dsl.parse(base.format(fn="lambda i, w: 1"))
    assert not _proved_by_parts(p, q, ["a", "b"], max_seq_len, single_valued=False)
    verdict = equivalent(p, q, vocab=["a", "b"], max_seq_len=max_seq_len)
    assert str(verdict) == f"proved({max_seq_len})" and verdict.method != BY_PARTS
