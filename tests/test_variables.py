"""How the points a component writes become a variable's values (hand-computed cases),
and a model whose numbers come close: pair balance, certified only if its table keeps
them apart (the model's own outputs over every input are the truth)."""

from __future__ import annotations

import numpy as np
import pytest
from tracr.compiler import compiling, lib
from tracr.rasp import rasp

import distill
import dsl
from distill.circuit.certificate import certify
from distill.circuit.variables import NUMERICAL, variable_from_points
from distill.groundtruth.scoring import BOS
from distill.models.numerics import RESOLUTION
from distill.pipeline import _FromWeights
from dsl.domain import enumerate_inputs


def test_close_numbers_on_a_line_stay_apart_and_labels_are_exact():
    direction = np.array([0.6, 0.0, 0.8])
    # Differences of fractions of counts: numbers 4e-4 apart are different values.
    numbers = np.array([0.025, 31 / 1260, 1.0, 0.025, 0.0])
    variable = variable_from_points("v", "L0.MLP", numbers[:, None] * direction)
    assert variable.encoding == NUMERICAL
    assert variable.codes.tolist() == [0, 1, 2, 0, 3]
    assert variable.values[:3] == pytest.approx([0.025, 31 / 1260, 1], abs=1e-15)
    assert variable.null_code == 3


def test_categorical_points_a_rounding_error_apart_are_one_value():
    points = np.array([[1.0, 0, 0], [0, 1.0, 0], [1.0 + 1e-9, 1e-9, 0], [0, 0, 1.0]])
    variable = variable_from_points("v", "L0.MLP", points)
    assert variable.codes.tolist() == [0, 1, 0, 2]


def test_pair_balance_is_certified_and_its_tables_are_the_model_on_every_input():
    program = lib.make_pair_balance(rasp.tokens, "(", ")")
    vocab, max_len = ["(", ")", "a"], 8
    assembled = compiling.compile_rasp_to_model(
        program, vocab=set(vocab), max_seq_len=max_len, compiler_bos=BOS
    )
    model = distill.from_tracr(assembled, rotate=0)
    reading = _FromWeights(model)
    certificate = certify(reading.network, model)
    assert certificate.holds, certificate.failure
    inputs = [x for batch in enumerate_inputs(vocab, max_len) for x in batch]
    said = dsl.evaluate(reading.tables.program, inputs)
    truth = model.predict(inputs)
    assert all(np.allclose(a, b, atol=RESOLUTION) for a, b in zip(said, truth))
