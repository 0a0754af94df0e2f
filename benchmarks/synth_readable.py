"""Synthesis on tracr's cases: correctness, readability figures, and time against tracr's compiler.

For every case of tests/tracr_cases.py: the source program (dsl.from_tracr) is
tabulated, every free categorical value scrambled, and synth.readable recovers
a program. Printed per case: agreement with the source on its domain
(exhaustive up to 20,000 inputs, else 2,000 seeded samples), size ratio
(operations, ours / source), named comparisons kept, synthesis time, and for
compilable cases tracr's compile time of the same program measured in this run.

    .venv/bin/python benchmarks/synth_readable.py [--no-compile]
"""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dsl
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs
from synth import named_selector_scores, operation_count, readable, scramble, scrambleable, tabulate
from tests import tracr_cases

EXHAUSTIVE_LIMIT = 20_000
SAMPLES = 2_000


def domain(vocab: list, max_len: int) -> list[list]:
    if count_inputs(vocab, max_len) <= EXHAUSTIVE_LIMIT:
        return [x for batch in enumerate_inputs(vocab, max_len) for x in batch]
    return sample_inputs(vocab, max_len, SAMPLES, seed=0)


def same_output(got, want) -> bool:
    if want is None:
        return True  # the source is undefined there: nothing is claimed
    if got is None or len(got) != len(want):
        return False
    return all(
        abs(g - w) <= 1e-9 if isinstance(w, float) and isinstance(g, (int, float)) else g == w
        for g, w in zip(got, want)
    )


def run_case(case) -> dict:
    vocab, max_len = case.sorted_vocab, case.max_seq_len
    source = dsl.from_tracr(case.program, vocab=vocab, max_seq_len=max_len)
    tabled = tabulate(source, vocab=vocab, max_seq_len=max_len)
    free = scrambleable(tabled)
    hidden = scramble(tabled, free, seed=0)
    start = time.perf_counter()
    result = readable(hidden, vocab=vocab, max_seq_len=max_len, free=free)
    seconds = time.perf_counter() - start
    inputs = domain(vocab, max_len)
    want = dsl.evaluate(source, inputs, undefined="mark")
    got = dsl.evaluate(result.program, inputs, undefined="mark")
    scores = named_selector_scores(source, result.program)
    return {
        "name": case.name,
        "agrees": all(same_output(g, w) for g, w in zip(got, want)),
        "round_trips": dsl.parse(dsl.to_source(result.program)) == result.program,
        "ratio": operation_count(result.program) / operation_count(source)
        if operation_count(source)
        else None,
        "named": sum(s.same_comparison for s in scores),
        "selectors": len(scores),
        "tables": sum(s.is_table for s in scores),
        "free": len(free),
        "seconds": seconds,
    }


def compile_seconds(case, timed: set) -> float | None:
    """tracr's compile time, once per distinct program (cases differing only in test input share it)."""
    if case not in timed:
        return None
    start = time.perf_counter()
    tracr_cases.compiled.__wrapped__(case)
    return time.perf_counter() - start


def main(argv: list[str]) -> int:
    timed = set(tracr_cases.distinct_compilable()) if "--no-compile" not in argv else set()
    rows = []
    print(
        f"{'case':42} {'agree':>5} {'ratio':>5} {'named':>6} {'free':>4} {'synth s':>8} {'compile s':>9}"
    )
    for case in tracr_cases.ALL_CASES:
        row = run_case(case)
        row["compile"] = compile_seconds(case, timed)
        rows.append(row)
        ratio = "-" if row["ratio"] is None else f"{row['ratio']:.2f}"
        compiled = "-" if row["compile"] is None else f"{row['compile']:.2f}"
        print(
            f"{row['name']:42} {row['agrees']!s:>5} {ratio:>5} "
            f"{row['named']:>3}/{row['selectors']:<2} {row['free']:>4} {row['seconds']:8.2f} {compiled:>9}"
        )
    ratios = [r["ratio"] for r in rows if r["ratio"] is not None]
    named, selectors = sum(r["named"] for r in rows), sum(r["selectors"] for r in rows)
    print()
    print(f"cases agreeing with their source: {sum(r['agrees'] for r in rows)}/{len(rows)}")
    print(f"median size ratio (ours / source operations): {statistics.median(ratios):.2f}")
    print(f"named comparisons kept: {named}/{selectors} = {named / selectors:.1%}")
    print(
        f"selects left as tables where the source named a comparison: {sum(r['tables'] for r in rows)}"
    )
    print(
        f"synthesis time: total {sum(r['seconds'] for r in rows):.1f} s, median {statistics.median(r['seconds'] for r in rows):.3f} s"
    )
    compiled = [r for r in rows if r["compile"]]
    if compiled:
        ratios = [r["seconds"] / r["compile"] for r in compiled]
        print(
            f"synthesis / tracr compile time, median over {len(compiled)} distinct compilable "
            f"cases: {statistics.median(ratios):.3f}"
        )
    return 0 if all(r["agrees"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
