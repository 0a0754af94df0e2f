"""The tracr ground-truth cases, shared by the tests (the table lives in distill.tracr_suite)."""

from distill.groundtruth.tracr_suite import (  # noqa: F401
    ALL_CASES,
    BOS,
    LIB_CASES,
    TEST_CASES,
    TracrCase,
    compiled,
    distinct_compilable,
)
