"""dsl.evaluate(dsl.from_tracr(case)) against tracr's own evaluator, on every tracr case.

For each of tracr's 53 test cases and one case per lib builder (tests/tracr_cases.py)
the truth is `tracr.rasp.rasp.evaluate`, run once per input: every input of
length 1..max_seq_len over the case's vocab when there are at most 20,000 of
them, else 2,000 seeded random ones. Numbers must agree within 1e-9; inputs on
which tracr's evaluator raises must be undefined in ours too.
"""

from __future__ import annotations

import math
import re

import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp
from tracr_cases import ALL_CASES, TracrCase, tracr_in_float64

import dsl
from distill.models.numerics import RESOLUTION
from dsl import ast
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs
from dsl.errors import BridgeError, EvaluationError
from dsl.interpreter import EVALUATORS, evaluate_arrays

MAX_EXHAUSTIVE = 20_000
SAMPLES = 2_000
TOLERANCE = 1e-9
RAISED = object()  # tracr's evaluator raised on this input


def domain(vocab: list, max_seq_len: int, seed: str) -> list[list]:
    if count_inputs(vocab, max_seq_len) <= MAX_EXHAUSTIVE:
        return [x for batch in enumerate_inputs(vocab, max_seq_len) for x in batch]
    return sample_inputs(vocab, max_seq_len, SAMPLES, seed=seed)


def tracr_outputs(sop: rasp.SOp, inputs: list[list]) -> list:
    outputs = []
    for tokens in inputs:
        try:
            outputs.append(rasp.evaluate(sop, tokens))
        except Exception:  # noqa: BLE001 - whatever tracr raises, it is undefined there
            outputs.append(RAISED)
    return outputs


def same_value(got, expected) -> bool:
    if got is None or expected is None:
        return got is expected
    if isinstance(expected, (int, float)) and isinstance(got, (int, float)):
        return math.isclose(got, expected, rel_tol=0, abs_tol=TOLERANCE) or got == expected
    return got == expected


def mismatches(inputs, ours, expected) -> list[str]:
    found = []
    for tokens, got, want in zip(inputs, ours, expected):
        if want is RAISED:
            if got is not None:
                found.append(f"{tokens}: tracr raises, ours gives {got}")
        elif got is None:
            found.append(f"{tokens}: ours is undefined, tracr gives {want}")
        elif len(got) != len(want) or not all(map(same_value, got, want)):
            found.append(f"{tokens}: ours {got}, tracr {want}")
    return found


def check_against_tracr(sop: rasp.SOp, vocab, max_seq_len: int, seed: str) -> list:
    """Assert agreement on the case's domain; return the inputs on which tracr raises."""
    program = dsl.from_tracr(sop, vocab=vocab, max_seq_len=max_seq_len)
    inputs = domain(sorted(vocab, key=repr), max_seq_len, seed)
    expected = tracr_outputs(sop, inputs)
    ours = dsl.evaluate(program, inputs, undefined="mark")  # one batch, ragged lengths
    problems = mismatches(inputs, ours, expected)
    assert not problems, f"{len(problems)} of {len(inputs)} inputs differ:\n" + "\n".join(
        problems[:10]
    )
    undefined = [x for x, want in zip(inputs, expected) if want is RAISED]
    if undefined:
        with pytest.raises(
            EvaluationError, match=re.escape(f"undefined on input {undefined[0]!r}")
        ):
            dsl.evaluate(program, [undefined[0]])
    return undefined


@pytest.mark.parametrize("case", ALL_CASES, ids=lambda case: case.name)
def test_matches_tracr_evaluator_on_the_domain(case: TracrCase):
    check_against_tracr(case.program, case.vocab, case.max_seq_len, seed=case.name)


# Programs on which tracr's evaluator raises for some inputs: each must be undefined
# on exactly those inputs in ours. (tracr's own cases are defined everywhere.)
_shifted = lib.shift_by(1, rasp.tokens)
UNDEFINED_SOMEWHERE = {
    # several strings selected: tracr cannot average them
    "aggregate_of_strings": (
        rasp.Aggregate(rasp.Select(rasp.tokens, rasp.tokens, rasp.Comparison.EQ), rasp.tokens),
        {"a", "b", "c"},
        4,
    ),
    # a comparison with None (the first position of a shift) raises
    "comparison_with_none": (
        rasp.SelectorWidth(rasp.Select(_shifted, rasp.tokens, rasp.Comparison.LT)),
        {"a", "b"},
        4,
    ),
    # a map that raises on one token value: a table that leaves that value out
    "map_raising_on_a_token": (rasp.Map(lambda x: 12 // (x - 2), rasp.tokens), {1, 2, 3}, 4),
    # a sequence_map that raises on some pairs only
    "sequence_map_division": (
        rasp.SequenceMap(lambda x, y: x / y, rasp.tokens, rasp.indices),
        {1, 2},
        4,
    ),
    # a lambda predicate that raises on some keys
    "predicate_raising": (
        rasp.SelectorWidth(rasp.Select(rasp.tokens, rasp.tokens, lambda k, q: 1 / (k - 1) > q)),
        {1, 2, 3},
        3,
    ),
}


@pytest.mark.parametrize("name", sorted(UNDEFINED_SOMEWHERE))
def test_undefined_exactly_where_tracr_raises(name):
    sop, vocab, max_seq_len = UNDEFINED_SOMEWHERE[name]
    undefined = check_against_tracr(sop, vocab, max_seq_len, seed=name)
    assert undefined, "the case was meant to make tracr raise on some inputs"


# ---- the bridge's translation, by hand -------------------------------------------


def test_one_definition_per_tracr_node_in_topological_order():
    program = dsl.from_tracr(lib.make_reverse(rasp.tokens), vocab="abc", max_seq_len=4)
    names = [d.name for d in program.definitions]
    assert names == [
        "all_true_selector",
        "length",
        "opp_idx",
        "opp_idx_1",
        "reverse_selector",
        "reverse",
    ]
    assert program.output == ast.Name("reverse")
    definitions = program.lookup()
    assert definitions["opp_idx"] == ast.SequenceMap(
        ast.Lambda(("x", "y"), ast.BinOp("-", ast.Var("x"), ast.Var("y"))),
        ast.Name("length"),
        ast.Indices(),
    )
    assert definitions["reverse_selector"] == ast.Select(
        ast.Indices(), ast.Name("opp_idx_1"), ast.Comparison("==")
    )


def test_length_becomes_a_selector_width_of_an_all_true_select():
    program = dsl.from_tracr(rasp.numerical(rasp.length + 0), vocab="ab", max_seq_len=3)
    length = program.definitions[0]
    assert length == ast.Definition(
        "length",
        ast.SelectorWidth(ast.Select(ast.Tokens(), ast.Tokens(), ast.Comparison("true"))),
    )
    assert program.definitions[1].node.encoding == ast.NUMERICAL


def test_operator_sugar_becomes_lambdas():
    x, k, q = ast.Var("x"), ast.Var("k"), ast.Var("q")
    equals_a = dsl.from_tracr(rasp.tokens == "a", vocab="ab", max_seq_len=2).definitions[0].node
    assert equals_a.fn == ast.Lambda(("x",), ast.Compare("==", x, ast.Const("a")))
    shifted = dsl.from_tracr(lib.shift_by(2, rasp.tokens), vocab="ab", max_seq_len=4)
    predicate = shifted.definitions[0].node.predicate
    assert predicate == ast.Lambda(
        ("k", "q"), ast.Compare("==", q, ast.BinOp("+", k, ast.Const(2)))
    )


def test_linear_sequence_map_becomes_a_linear_lambda():
    a, b = rasp.numerical(rasp.Map(lambda v: v, rasp.tokens)), rasp.numerical(rasp.indices)
    x, y = ast.Var("x"), ast.Var("y")
    cases = {
        (1, 1): ast.BinOp("+", x, y),
        (1, -1): ast.BinOp("-", x, y),
        (2, 0.5): ast.BinOp(
            "+", ast.BinOp("*", ast.Const(2), x), ast.BinOp("*", ast.Const(0.5), y)
        ),
        (-1, 3): ast.BinOp("+", ast.UnaryOp("-", x), ast.BinOp("*", ast.Const(3), y)),
    }
    for (fa, fb), body in cases.items():
        program = dsl.from_tracr(
            rasp.numerical(rasp.LinearSequenceMap(a, b, fa, fb)), vocab=[1, 2], max_seq_len=2
        )
        assert program.definitions[-1].node.fn == ast.Lambda(("x", "y"), body)


def test_opaque_functions_become_tables_without_the_values_they_reject():
    program = dsl.from_tracr(
        rasp.Map(lambda v: 10 // v if v != 3 else "big", rasp.indices), vocab="a", max_seq_len=4
    )
    # 10 // 0 raises: index 0 is left out of the table
    assert program.definitions[0].node.fn == ast.Table(((1, 10), (2, 5), (3, "big")))


def test_constant_sops_are_rejected_clearly():
    with pytest.raises(BridgeError, match="ConstantSOp .*no counterpart"):
        dsl.from_tracr(rasp.ConstantSOp([1, 2]) + rasp.tokens, vocab=[1], max_seq_len=2)
    with pytest.raises(BridgeError, match="ConstantSelector"):
        dsl.from_tracr(
            rasp.SelectorWidth(rasp.ConstantSelector([[True]])), vocab=[1], max_seq_len=1
        )


def test_names_are_sanitized_and_unique():
    first = (rasp.tokens == "a").named("is a")
    second = (rasp.tokens == "b").named("is a")
    program = dsl.from_tracr(
        rasp.SequenceMap(lambda x, y: x or y, first, second).named("map"), vocab="ab", max_seq_len=2
    )
    assert [d.name for d in program.definitions] == ["is_a", "is_a_2", "map_1"]


# ---- the interpreter's shape ---------------------------------------------------------


def test_dispatch_table_covers_every_node_type():
    assert set(EVALUATORS) == set(ast.NODE_TYPES)


def test_arrays_hold_codes_into_distinct_values_and_selectors_as_matrices():
    program = dsl.from_tracr(lib.make_hist(), vocab="ab", max_seq_len=3)
    evaluation = evaluate_arrays(program, [["a", "b", "a"], ["b"]])
    hist = evaluation.definitions["hist"]
    assert hist.values()[0].tolist() == [2, 1, 2] and hist.values()[1, 0] == 1
    selector = evaluation.definitions[program.definitions[0].name]
    assert selector.matrix.shape == (2, 3, 3)  # [batch, query, key], padded to the longest
    assert selector.matrix[1].tolist() == [[True, False, False], [False] * 3, [False] * 3]
    assert evaluation.mask.tolist() == [[True, True, True], [True, False, False]]
    assert evaluation.outputs() == [[2, 1, 2], [1]]


def test_mark_and_raise_modes():
    program = dsl.from_tracr(
        UNDEFINED_SOMEWHERE["aggregate_of_strings"][0], vocab="ab", max_seq_len=2
    )
    assert dsl.evaluate(program, [["a", "b"], ["a", "a"]], undefined="mark") == [["a", "b"], None]
    with pytest.raises(EvaluationError, match=r"input \['a', 'a'\]: aggregate selects several"):
        dsl.evaluate(program, [["a", "b"], ["a", "a"]])
    with pytest.raises(ValueError, match="undefined must be"):
        dsl.evaluate(program, [["a"]], undefined="ignore")


def test_round_tripped_tracr_program_compiles_and_runs_like_the_original():
    # pair_balance has numerical aggregates and a LinearSequenceMap: the parts tracr is
    # strictest about. to_tracr must give them back in a shape tracr compiles.
    sop = lib.make_pair_balance(rasp.tokens, "(", ")")
    program = dsl.from_tracr(sop, vocab=set("()a"), max_seq_len=4)
    back = dsl.to_tracr(program)
    assert isinstance(back, rasp.LinearSequenceMap)
    model = compiling.compile_rasp_to_model(
        back, vocab=set("()a"), max_seq_len=4, compiler_bos="BOS"
    )
    with tracr_in_float64(model) as model64:
        for tokens in (list("(()a"), list(")("), list("a")):
            decoded = model64.apply(["BOS", *tokens]).decoded[1:]
            assert decoded == pytest.approx(rasp.evaluate(sop, tokens), abs=RESOLUTION)
