"""`distill.models.numerics`: the float32 error bound holds, and where it is not vacuous.

The truth for "holds" is a float64 forward of the very same (float32-stored)
weights: float64's own rounding is 2^29 times finer than what is bounded.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from tracr_cases import compiled, distinct_compilable

import distill
from distill.models.numerics import (
    RESOLUTION,
    UNIT_ROUNDOFF,
    NumericsError,
    gamma,
    output_error_bound,
    require_resolution,
)
from dsl.domain import count_inputs, enumerate_inputs

SMALL_DOMAIN = 1_500
SMALL_CASES = [
    case
    for case in distinct_compilable()
    if count_inputs(case.sorted_vocab, case.max_seq_len) <= SMALL_DOMAIN
]
# Deep tracr models whose bound is still too loose to resolve (0.02 for the shuffle_dyck
# family: numerical MLPs and mean heads compound a 2-norm bound that cannot see which
# directions the error lies in); marked strict, so they fail loudly once it is tight.
NOT_YET_RESOLVED = {"shuffle_dyck2_1", "lib_make_shuffle_dyck", "lib_make_shuffle_dyck2"}
INPUTS_PER_CASE = 300  # a seeded sample of each domain: the bound is for the inputs given


def every_input(case) -> list[list]:
    inputs = [x for batch in enumerate_inputs(case.sorted_vocab, case.max_seq_len) for x in batch]
    if len(inputs) <= INPUTS_PER_CASE:
        return inputs
    picks = np.random.default_rng(0).choice(len(inputs), INPUTS_PER_CASE, replace=False)
    return [inputs[i] for i in sorted(picks)]


def decoded_outputs(out: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    kept = mask.clone()
    kept[:, 0] = False  # BOS is never decoded
    return out[kept]


@pytest.mark.parametrize("case", SMALL_CASES, ids=lambda c: c.name)
def test_bound_holds_float32_against_float64_rotated(case):
    assembled = compiled(case)
    inputs = every_input(case)
    model = distill.from_tracr(assembled, rotate=0, dtype=torch.float32)
    exact = distill.from_tracr(assembled, rotate=0).double()
    exact.load_state_dict({k: v.double() for k, v in model.state_dict().items()})
    ids, mask = model.encode(inputs)
    with torch.no_grad():
        error = (decoded_outputs(model(ids, mask).double() - exact(ids, mask), mask)).abs()
    bound = output_error_bound(model, inputs)
    assert math.isfinite(bound)
    assert float(error.max()) <= bound


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            marks=pytest.mark.xfail(strict=True, reason="bound not yet tight enough")
            if case.name in NOT_YET_RESOLVED
            else (),
        )
        for case in SMALL_CASES
    ],
    ids=lambda c: c.name,
)
def test_float64_rounding_stays_under_half_the_resolution(case):
    """Checks evaluate in float64: there the derived bound is far below the resolution, so
    no machine's arithmetic can move a number across it (rotated, every small case)."""
    model = distill.from_tracr(compiled(case), rotate=1)
    assert next(model.parameters()).dtype == torch.float64
    bound = output_error_bound(model, every_input(case))
    assert bound < RESOLUTION / 2, bound


def test_gamma_is_n_roundings():
    assert gamma(1) == pytest.approx(UNIT_ROUNDOFF / (1 - UNIT_ROUNDOFF), rel=1e-15)
    assert gamma(10) > 10 * UNIT_ROUNDOFF
    with pytest.raises(NumericsError, match="lose every digit"):
        gamma(2**24)


@given(
    st.lists(st.integers(-1000, 1000), min_size=2, max_size=10, unique=True),
    st.floats(1e-9, 10, allow_nan=False),
)
def test_resolution_refuses_a_tolerance_that_merges_values(numbers, tolerance):
    values = [n / 8 for n in numbers]  # exact binary fractions: gaps are exact
    smallest = min(b - a for a, b in zip(sorted(values), sorted(values)[1:]))
    if smallest > 2 * tolerance:
        require_resolution(values, tolerance)
    else:
        with pytest.raises(NumericsError, match="apart"):
            require_resolution(values, tolerance)
