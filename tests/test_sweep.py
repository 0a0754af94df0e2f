"""The streamed exhaustive check agrees with the per-input check it replaces for big domains."""

from __future__ import annotations

import dataclasses

import pytest

import dsl
from distill.checks.sweep import agreement_matrix, check_exhaustively, chunks
from distill.circuit.precondition import PRECONDITION, precondition_holds
from distill.config import DistillConfig
from distill.groundtruth.tracr_suite import ALL_CASES, compiled
from distill.models.tracr_import import from_tracr
from distill.pipeline import distill
from dsl import ast
from dsl.domain import enumerate_inputs
from verify.check import check


def test_chunks_enumerate_the_domain_in_dsl_domain_order_across_chunk_boundaries():
    vocab = ["b", "a", 3]
    streamed = [x for chunk in chunks(vocab, 3, size=5) for x in chunk.inputs]
    assert streamed == [list(x) for batch in enumerate_inputs(vocab, 3) for x in batch]
    for chunk in chunks(vocab, 3, size=5):
        assert [[vocab[i] for i in row] for row in chunk.tokens.tolist()] == chunk.inputs


def test_agreement_matrix_compares_like_verify_check():
    same = agreement_matrix((1, 2.5, "a", None, True), (1.00001, "a", None, 1, 2.6))
    assert same.tolist() == [
        [True, False, False, True, False],
        [False, False, False, False, False],
        [False, True, False, False, False],
        [False, False, False, False, False],  # None agrees with nothing
        [True, False, False, True, False],  # True is the number 1, as in verify.check
    ]


def _distilled(name: str, rotate: int = 1):
    case = next(c for c in ALL_CASES if c.name == name)
    model = from_tracr(compiled(case), rotate=rotate)
    return model, distill(model, DistillConfig(prove=False))


@pytest.mark.parametrize("name", ["sort_unique_1", "frac_prevs_1", "make_count_1"])
def test_streamed_check_equals_the_per_input_check(name):
    model, result = _distilled(name)
    vocab, max_len = list(model.config.vocab), model.config.max_seq_len
    claimed, whole = check_exhaustively(result.program, result.table_program, model)
    inputs = [x for batch in enumerate_inputs(vocab, max_len) for x in batch]
    holds = {
        tuple(x) for x, ok in zip(inputs, precondition_holds(result.table_program, inputs)) if ok
    }
    reference = check(
        result.program,
        model.predict,
        vocab=vocab,
        max_seq_len=max_len,
        exhaustive=True,
        predicate=lambda x: tuple(x) in holds,
        predicate_description=PRECONDITION,
        undefined="refute",
    )
    assert (claimed.level, claimed.inputs_covered) == (reference.level, reference.inputs_covered)
    assert claimed.domain == reference.domain
    assert whole.inputs_covered == len(inputs)


def test_a_wrong_program_is_refuted_with_counterexamples_that_reproduce():
    model, result = _distilled("sort_unique_1")
    # Swap the comparison the network uses: a different program on most inputs.
    wrong = ast.rewrite_program(
        result.program,
        lambda node: (
            dataclasses.replace(node, predicate=ast.Comparison(">"))
            if isinstance(node, ast.Select) and node.predicate == ast.Comparison("<")
            else node
        ),
    )
    assert wrong != result.program
    claimed, whole = check_exhaustively(wrong, result.table_program, model)
    assert claimed.level == whole.level == "refuted"
    for example in claimed.counterexamples:
        assert tuple(model.predict([list(example.input)])[0]) == example.expected
        got = dsl.evaluate(wrong, [list(example.input)], undefined="mark")[0]
        assert (None if got is None else tuple(got)) == example.got
        assert (
            example.got is None
            or example.expected[example.position] != example.got[example.position]
        )
