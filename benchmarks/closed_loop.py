"""Model -> program -> model for every tracr case: distill, recompile with tracr, compare.

Prints per case the size of the whole input domain, how many of its inputs are
in the claimed domain (all of them were compared), and how many differ between
the original model and the one compiled from its program. The four cases with
vocab 5 and length 10 (12 M inputs each) take most of the time.

Usage: closed_loop.py [CASE ...]   (default: every distinct compilable case)
"""

from __future__ import annotations

import sys
import time

from distill.config import DistillConfig
from distill.emit.recompile import closed_loop_disagreements
from distill.groundtruth.tracr_suite import compiled, distinct_compilable
from distill.models.tracr_import import from_tracr
from distill.pipeline import distill
from dsl.domain import count_inputs


def main(names: list[str]) -> int:
    cases = [c for c in distinct_compilable() if not names or c.name in names]
    failures = 0
    begin = time.perf_counter()
    print(f"{'case':28s} {'domain':>11s} {'compared':>11s} {'differ':>7s} {'seconds':>8s}")
    for case in cases:
        start = time.perf_counter()
        model = from_tracr(compiled(case), rotate=0)
        domain = count_inputs(list(case.vocab), case.max_seq_len)
        try:
            result = distill(model, DistillConfig(prove=False))
            compared, differ, examples = closed_loop_disagreements(result, model)
        except Exception as error:  # noqa: BLE001 - report every case, fail at the end
            failures += 1
            print(f"{case.name:28s} FAILED: {type(error).__name__}: {str(error)[:120]}")
            continue
        failures += differ > 0
        print(
            f"{case.name:28s} {domain:11,d} {compared:11,d} {differ:7,d} "
            f"{time.perf_counter() - start:8.1f} {examples[:1] or ''}",
            flush=True,
        )
    print(f"cases with a difference or failure: {failures}")
    print(f"total seconds: {time.perf_counter() - begin:.0f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
