"""The distiller against tracr's ground truth: compile, rotate, distill, compare.

The truth is independent of the distiller: tracr's compiled model (what the
program must agree with) and tracr's source program evaluated by our
interpreter, which tests/test_dsl_against_tracr.py checks against tracr's own
evaluator. Every tracr case runs in `distill bench tracr`; here a spread of
them (each kind of component: categorical and numerical MLPs, sequence maps,
packed sub-MLPs, selector widths, numerical aggregates, causal attention).
"""

from __future__ import annotations

import pytest

import dsl
from distill.config import DistillConfig
from distill.groundtruth.scoring import run_tracr
from distill.groundtruth.tracr_suite import ALL_CASES
from distill.models.numerics import RESOLUTION

CASES = {
    "reverse_1": 0,
    "sort_unique_1": 1,
    "frac_prevs_1": 0,
    "hist": 1,
    "length_numerical_1": 0,
    "detect_pattern_ab": 0,
    "make_count_less_freq_categorical_1": 0,
    "make_nary_sequencemap_2": 1,
    "selector_width": 0,  # causal
    "pair_balance_1": 0,
    "shuffle_dyck2_1": 1,
}


@pytest.mark.parametrize("name,seed", sorted(CASES.items()))
def test_distilled_program_agrees_with_the_model_and_its_source(name, seed):
    case = next(c for c in ALL_CASES if c.name == name)
    run = run_tracr(
        case.program,
        vocab=case.vocab,
        max_seq_len=case.max_seq_len,
        rotate=seed,
        causal=case.causal,
        config=DistillConfig(samples=2000, z3_timeout=10),
        prove_against_source=False,
    )
    result, score = run.result, run.score
    assert result.check.ok, str(result.check)
    # Every case is read off its weights (complete tables), none falls back to its traces.
    assert result.weights_reading_failed == "", result.weights_reading_failed
    # What `distill run` writes type-checks: every table is total over its value sets.
    dsl.infer(dsl.parse(dsl.to_source(result.program)), case.vocab, case.max_seq_len)
    assert result.check.level in ("exhaustive", "sampled")
    # The claimed domain covers every input on which the source is defined ...
    assert score.covered
    # ... and there the program computes what the model computes, which is the source's function
    # except where tracr's compiled model deviates from its source (counted, reported).
    inputs = _defined_inputs(run.source, case)
    model_out = run.model.predict(inputs)
    ours = dsl.evaluate(result.program, inputs)
    for x, mine, theirs in zip(inputs, ours, model_out):
        assert mine == pytest.approx(theirs, abs=RESOLUTION), x
    if result.proof is not None:
        assert result.proof.level in ("proved", "unknown"), str(result.proof)


def _defined_inputs(source, case, limit: int = 3000):
    from dsl.domain import enumerate_inputs

    inputs = []
    for batch in enumerate_inputs(case.sorted_vocab, case.max_seq_len):
        outputs = dsl.evaluate(source, batch, undefined="mark")
        inputs += [x for x, out in zip(batch, outputs) if out is not None and None not in out]
        if len(inputs) >= limit:
            break
    return inputs[:limit]
