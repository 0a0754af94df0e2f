"""Model -> program -> model for every tracr case: distill, recompile with tracr, compare.

Prints per case the size of the whole input domain, how many of its inputs are
in the claimed domain (all of them were compared), and how many differ between
the original model and the one compiled from its program. The four cases with
vocab 5 and length 10 (12 M inputs each) take most of the time.

Usage: closed_loop.py [--workers N | --ray ADDRESS] [CASE ...]
(default: every distinct compilable case; with Ray the cases run side by side,
the lines come in case order)
"""

from __future__ import annotations

import argparse
import sys
import time

from distill.config import DistillConfig
from distill.emit.recompile import closed_loop_disagreements
from distill.errors import BadInputError
from distill.executor import executor
from distill.groundtruth.tracr_suite import compiled, distinct_compilable
from distill.models.tracr_import import from_tracr
from distill.pipeline import distill
from dsl.domain import count_inputs


def closed_loop_case(name: str) -> tuple[str, bool]:
    """(the case's printed line, whether it failed or differs)."""
    case = next(c for c in distinct_compilable() if c.name == name)
    start = time.perf_counter()
    model = from_tracr(compiled(case), rotate=0)
    domain = count_inputs(list(case.vocab), case.max_seq_len)
    try:
        result = distill(model, DistillConfig(prove=False))
        compared, differ, examples = closed_loop_disagreements(result, model)
    except Exception as error:  # noqa: BLE001 - report every case, fail at the end
        return f"{case.name:28s} FAILED: {type(error).__name__}: {str(error)[:120]}", True
    line = (
        f"{case.name:28s} {domain:11,d} {compared:11,d} {differ:7,d} "
        f"{time.perf_counter() - start:8.1f} {examples[:1] or ''}"
    )
    return line, differ > 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", metavar="CASE")
    parser.add_argument("--workers", type=int, metavar="N", help="cases on a local Ray")
    parser.add_argument("--ray", metavar="ADDRESS", help="cases on the Ray cluster at ADDRESS")
    args = parser.parse_args(argv)
    names = [c.name for c in distinct_compilable() if not args.names or c.name in args.names]
    failures = 0
    begin = time.perf_counter()
    print(f"{'case':28s} {'domain':>11s} {'compared':>11s} {'differ':>7s} {'seconds':>8s}")
    try:
        chosen = executor(args.workers, args.ray)
    except (BadInputError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    with chosen:
        for line, failed in chosen.map(closed_loop_case, names):
            failures += failed
            print(line, flush=True)
    print(f"cases with a difference or failure: {failures}")
    print(f"total seconds: {time.perf_counter() - begin:.0f}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
