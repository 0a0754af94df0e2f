"""The tracr ground-truth cases, shared by the tests (the table lives in distill.tracr_suite)."""

import dataclasses
from contextlib import contextmanager

import jax
import jax.numpy as jnp

from distill.groundtruth.tracr_suite import (  # noqa: F401
    ALL_CASES,
    BOS,
    LIB_CASES,
    TEST_CASES,
    TracrCase,
    compiled,
    distinct_compilable,
)


@contextmanager
def tracr_in_float64(assembled):
    """tracr's compiled model computing in float64, as our models do (jax's x64 on meanwhile):
    both are then one exact function up to rounding far below the numerical resolution."""
    with jax.enable_x64(True):
        params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), assembled.params)
        yield dataclasses.replace(assembled, params=params)
