"""synth.readable on hand-built table programs with opaque labels, and on random programs."""

from __future__ import annotations

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import dsl
from dsl import ast
from dsl.domain import enumerate_inputs
from synth import operation_count, readable, scramble, scrambleable, tabulate
from tests.strategies import programs
from tests.test_synth_tabulate import averages_labels

VOCAB = ["a", "b", "c"]


def all_inputs(vocab=VOCAB, max_len=4) -> list[list]:
    return [x for batch in enumerate_inputs(vocab, max_len) for x in batch]


def hidden(
    source: str, vocab=VOCAB, max_len=4, seed=0
) -> tuple[ast.Program, ast.Program, frozenset]:
    """The source, its table program with every free value scrambled, and the free names."""
    program = dsl.parse(source)
    tabled = tabulate(program, vocab=vocab, max_seq_len=max_len)
    free = scrambleable(tabled)
    return program, scramble(tabled, free, seed=seed), free


def assert_same_function(expected: ast.Program, got: ast.Program, inputs) -> None:
    want = dsl.evaluate(expected, inputs, undefined="mark")
    have = dsl.evaluate(got, inputs, undefined="mark")
    assert [h for h, w in zip(have, want) if w is not None] == [w for w in want if w is not None]


REVERSE = """
length = selector_width(select(tokens, tokens, true))
opp = length - indices
opp1 = opp - 1
flip = select(indices, opp1, ==)
reverse = aggregate(flip, tokens)
return reverse
"""


def test_reverse_gets_back_its_equality_and_arithmetic():
    source, table_program, free = hidden(REVERSE)
    assert free == {"opp", "opp1"}
    result = readable(table_program, vocab=VOCAB, max_seq_len=4, free=free)
    assert result.named_selectors == {"flip": "=="}
    # The two maps merge into one sequence_map with the arithmetic spelled out.
    lookup = result.program.lookup()
    opp = next(node for node in lookup.values() if isinstance(node, ast.SequenceMap))
    assert opp.fn == ast.Lambda(
        ("x", "y"), ast.BinOp("-", ast.BinOp("-", ast.Var("x"), ast.Var("y")), ast.Const(1))
    )
    assert operation_count(result.program) == operation_count(source) - 1
    assert set(result.relabelings) <= free
    assert_same_function(source, result.program, all_inputs())


def test_free_keys_compared_with_themselves_become_an_order():
    source, table_program, free = hidden(
        """
keys = 3 - indices
smaller = select(keys, keys, <)
target = selector_width(smaller)
sort = aggregate(select(target, indices, ==), tokens)
return sort
"""
    )
    result = readable(table_program, vocab=VOCAB, max_seq_len=4, free=free)
    assert result.named_selectors["smaller"] == "<"
    assert result.program.lookup()["sort"].selector.predicate == ast.Comparison("==")
    assert_same_function(source, result.program, all_inputs())


def test_a_free_injective_map_compared_with_tokens_is_dropped():
    source, table_program, free = hidden(
        """
code = map({"a": "x", "b": "y", "c": "z"}, tokens)
same = select(code, code, ==)
count = selector_width(same)
return count
"""
    )
    result = readable(table_program, vocab=VOCAB, max_seq_len=4, free=free)
    assert operation_count(result.program) == 2  # the relabeled map is the identity: gone
    assert result.program.lookup()["same"] == ast.Select(
        ast.Tokens(), ast.Tokens(), ast.Comparison("==")
    )
    assert result.relabelings["code"] == {
        label: token for token, label in table_program.lookup()["code"].fn.entries
    }
    assert_same_function(source, result.program, all_inputs())


def test_free_labels_of_a_flag_become_booleans():
    source, table_program, free = hidden(
        """
is_b = map(lambda t: t == "b", tokens)
prev = aggregate(select(indices, indices, lambda k, q: q == k + 1), is_b)
both = sequence_map(lambda x, y: x and y, prev, is_b)
return both
"""
    )
    assert free == {"is_b", "prev"}
    result = readable(table_program, vocab=VOCAB, max_seq_len=4, free=free)
    assert set(result.relabelings["is_b"].values()) == {True, False}
    predicate = result.program.lookup()["prev"].selector.predicate
    assert isinstance(predicate, ast.Lambda)  # q == k + 1, not a table
    assert_same_function(source, result.program, all_inputs())


def test_a_map_without_a_closed_form_keeps_its_table():
    source, table_program, free = hidden(
        """
odd = map({"a": 4, "b": 11, "c": 7}, tokens)
return odd
"""
    )
    result = readable(table_program, vocab=VOCAB, max_seq_len=4, free=free)
    assert isinstance(result.program.lookup()["odd"].fn, ast.Table)
    assert_same_function(source, result.program, all_inputs())


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs(vocab=("a", "b", 1), max_seq_len=3), st.integers(0, 1000))
def test_readable_computes_the_same_function_on_random_programs(program, seed):
    vocab = ["a", "b", 1]
    tabled = tabulate(program, vocab=vocab, max_seq_len=3)
    free = scrambleable(tabled)
    assume(not averages_labels(tabled, free))
    table_program = scramble(tabled, free, seed=seed)
    result = readable(table_program, vocab=vocab, max_seq_len=3, free=free)
    assert operation_count(result.program) <= operation_count(tabled)
    assert_same_function(program, result.program, all_inputs(vocab, 3))


def test_free_labels_take_the_values_a_map_reads_them_as():
    # A distiller's output map turns the last variable's labels into real values;
    # choosing those values as the labels drops the map.
    code = {(t, i): f"{t}{i}" for t in VOCAB for i in range(4)}
    shuffled = [7, 2, 9, 11, 0, 5, 3, 10, 1, 8, 6, 4]  # no closed form, one-to-one
    real = dict(zip(code.values(), shuffled))
    source = ast.Program(
        (
            ast.Definition(
                "code", ast.SequenceMap(ast.Table(tuple(code.items())), ast.Tokens(), ast.Indices())
            ),
            ast.Definition("same", ast.Select(ast.Indices(), ast.Indices(), ast.Comparison("=="))),
            ast.Definition("moved", ast.Aggregate(ast.Name("same"), ast.Name("code"))),
            ast.Definition("output", ast.Map(ast.Table(tuple(real.items())), ast.Name("moved"))),
        ),
        ast.Name("output"),
    )
    free = scrambleable(source)
    assert free == {"code", "moved"}
    result = readable(scramble(source, free, seed=2), vocab=VOCAB, max_seq_len=4, free=free)
    assert operation_count(result.program) == operation_count(source) - 1
    assert_same_function(source, result.program, all_inputs())


def test_closed_forms_round_floats_as_the_table_does():
    # Found by hypothesis: `x + (x + y)` agrees with the table of `2 * x + y` to 9
    # decimals but not to the last bit (x = 4/3, y = 1), so it must not replace it.
    source, table_program, free = hidden(
        """
is_a = numerical map(lambda t: 1 if t == "a" else 0, tokens)
frac = numerical aggregate(select(indices, indices, true), is_a, default=0)
more = numerical sequence_map(lambda x, y: x + y, frac, is_a)
out = numerical sequence_map(lambda x, y: 2 * x + y, more, is_a)
return out
""",
        max_len=3,
    )
    result = readable(table_program, vocab=VOCAB, max_seq_len=3, free=free)
    assert_same_function(source, result.program, all_inputs(max_len=3))
