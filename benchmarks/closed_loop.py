"""Model -> program -> model for every tracr case: distill, recompile with tracr, compare.

Prints per case how many inputs of the claimed domain were compared and how
many differ between the original model and the one compiled from its program.
"""

from __future__ import annotations

import sys
import time

from distill.pipeline import DistillConfig, distill
from distill.recompile import closed_loop_disagreements
from distill.tracr_import import from_tracr
from distill.tracr_suite import compiled, distinct_compilable


def main() -> int:
    failures = 0
    print(f"{'case':40s} {'compared':>9s} {'differ':>7s} {'seconds':>8s}")
    for case in distinct_compilable():
        start = time.perf_counter()
        model = from_tracr(compiled(case), rotate=0)
        try:
            result = distill(model, DistillConfig(prove=False))
            compared, differ, examples = closed_loop_disagreements(result, model)
        except Exception as error:  # noqa: BLE001 - report every case, fail at the end
            failures += 1
            print(f"{case.name:40s} FAILED: {type(error).__name__}: {str(error)[:120]}")
            continue
        failures += differ > 0
        print(
            f"{case.name:40s} {compared:9,d} {differ:7,d} {time.perf_counter() - start:8.1f} {examples[:1] or ''}"
        )
    print(f"cases with a difference or failure: {failures}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
