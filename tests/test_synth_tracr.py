"""synth.readable on every tracr case: tabulate, scramble every free value, recover a program.

Cases that differ only in their test input are one program: each distinct
(family, vocab, max_seq_len) is run once. The figures (issue 5's readability
bar) are asserted over the whole suite: agreement with the source wherever it
is defined, >= 90% of named comparisons kept, median size ratio <= 1.5, and no
lookup table where the source named a comparison. `benchmarks/synth_readable.py`
prints the same figures for every case.
"""

from __future__ import annotations

import statistics

from benchmarks.synth_readable import run_case
from tests import tracr_cases


def distinct_programs() -> list:
    chosen: dict = {}
    for case in tracr_cases.ALL_CASES:
        chosen.setdefault((case.family, case.vocab, case.max_seq_len), case)
    return list(chosen.values())


def test_readable_recovers_every_tracr_case():
    rows = [run_case(case) for case in distinct_programs()]
    disagreeing = [r["name"] for r in rows if not r["agrees"]]
    assert not disagreeing, f"programs differing from their source: {disagreeing}"
    unprintable = [r["name"] for r in rows if not r["round_trips"]]
    assert not unprintable, f"programs that do not print and parse back: {unprintable}"

    named, selectors = sum(r["named"] for r in rows), sum(r["selectors"] for r in rows)
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    tables = [r["name"] for r in rows if r["tables"]]
    print(
        f"\n{len(rows)} programs; named comparisons kept {named}/{selectors}; "
        f"median size ratio {statistics.median(ratios):.2f}; max {max(ratios):.2f}"
    )
    assert selectors >= 30  # the suite does exercise named selectors
    assert named / selectors >= 0.9
    assert statistics.median(ratios) <= 1.5
    assert not tables, f"lookup tables where the source named a comparison: {tables}"
    # Free values are exercised: several cases hide intermediate values.
    assert sum(1 for r in rows if r["free"]) >= 8
