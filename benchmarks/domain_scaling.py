"""Distill time against domain size: reverse at vocab 4, 10, 26 and max-len 5, 8, 10, 12.

Baseline: the smallest domain (vocab 4, max-len 5: 1,364 inputs), distilled in
the same run. Prints per grid point the domain size, the whole distill time and
its stages, the level reached, and the time ratio to the baseline. Tables are
read off the weights, so the time should follow the model's size, not its
domain's (the target: at most 5x from the smallest to the largest domain, while
the domain grows by more than 10^15).

Usage: domain_scaling.py [--no-prove]
"""

from __future__ import annotations

import string
import sys
import time
from pathlib import Path

import dsl
from distill.config import DistillConfig
from distill.emit.recompile.tracr_compile import compile_program
from distill.models.tracr_import import from_tracr
from distill.pipeline import distill
from dsl.domain import count_inputs

REVERSE = Path(__file__).resolve().parent.parent / "examples" / "reverse.rasp"
VOCAB_SIZES = (4, 10, 26)
MAX_LENS = (5, 8, 10, 12)


def main(argv: list[str]) -> int:
    prove = "--no-prove" not in argv
    program = dsl.parse(REVERSE.read_text(), filename=str(REVERSE))
    config = DistillConfig(prove=prove)
    rows = []
    print(f"{'vocab':>5s} {'len':>4s} {'domain':>22s} {'seconds':>8s} {'ratio':>6s}  level; stages")
    for size in VOCAB_SIZES:
        for max_len in MAX_LENS:
            vocab = list(string.ascii_lowercase[:size])
            model = from_tracr(compile_program(program, vocab=vocab, max_seq_len=max_len), rotate=0)
            start = time.perf_counter()
            result = distill(model, config)
            seconds = time.perf_counter() - start
            domain = count_inputs(vocab, max_len)
            rows.append((domain, seconds))
            ratio = seconds / rows[0][1]
            stages = ", ".join(f"{name} {t:.1f}" for name, t in result.timings.items())
            print(
                f"{size:5d} {max_len:4d} {domain:22,d} {seconds:8.1f} {ratio:6.2f}  "
                f"{result.verification}; {stages}",
                flush=True,
            )
    (small_domain, small_time), (large_domain, large_time) = rows[0], rows[-1]
    print(
        f"smallest to largest: domain x{large_domain / small_domain:.3g}, "
        f"time x{large_time / small_time:.2f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
