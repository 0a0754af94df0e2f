"""How much faster `dsl.evaluate` is than tracr's evaluator, measured in one run.

Evaluates tracr's `make_sort_unique(tokens, tokens)` on all 5^5 inputs (vocab
1..5, length 5): our interpreter in one batch, tracr's evaluator in a loop over
the same inputs. Checks the outputs agree, then prints both times (the best of
several repeats, since the machine may be shared) and their ratio.

    .venv/bin/python benchmarks/dsl_eval.py
"""

from __future__ import annotations

import itertools
import sys
import time

from tracr.compiler import lib
from tracr.rasp import rasp

import dsl

VOCAB = [1, 2, 3, 4, 5]
LENGTH = 5
TRACR_REPEATS = 3
DSL_REPEATS = 20
EXPECTED_RATIO = 50


def best_time(function, repeats: int) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> int:
    sop = lib.make_sort_unique(rasp.tokens, rasp.tokens)
    program = dsl.from_tracr(sop, vocab=VOCAB, max_seq_len=LENGTH)
    inputs = [list(combo) for combo in itertools.product(VOCAB, repeat=LENGTH)]

    tracr_time, expected = best_time(lambda: [rasp.evaluate(sop, x) for x in inputs], TRACR_REPEATS)
    dsl_time, got = best_time(lambda: dsl.evaluate(program, inputs), DSL_REPEATS)

    if got != expected:
        print("dsl.evaluate and tracr's evaluator disagree", file=sys.stderr)
        return 1
    ratio = tracr_time / dsl_time
    print(f"make_sort_unique on {len(inputs)} inputs (vocab 1..5, length {LENGTH})")
    print(f"  tracr evaluator (loop): {tracr_time * 1e3:9.1f} ms")
    print(f"  dsl.evaluate (batch):   {dsl_time * 1e3:9.1f} ms")
    print(f"  speed-up:               {ratio:9.1f}x (expected >= {EXPECTED_RATIO}x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
