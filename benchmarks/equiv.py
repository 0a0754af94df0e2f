"""Z3 equivalence proofs: how long they take, against baselines measured in the same run.

1. At max-len 10, each case proved with the encoding as it is, then with the
   baseline "positional": the same encoding with rows of selectors not
   counted by token value (`verify.z3.limits.COUNT_BY_VALUE` off), every key a
   term of its own, as before counting existed. The baseline gets
   BASELINE_TIMEOUT seconds; past it the ratio is a lower bound (">").
2. Cases past enumeration, proved once.
3. A case small enough to enumerate: the time to compare both programs with
   `dsl.evaluate` on every input, and the ratio.

    .venv/bin/python benchmarks/equiv.py
"""

from __future__ import annotations

import time
from unittest import mock

from tracr.compiler import lib
from tracr.rasp import rasp

import dsl
from dsl.domain import count_inputs, enumerate_inputs
from verify import equivalent
from verify.check import outputs_agree
from verify.z3 import limits

MAX_LEN = 10
TIMEOUT = 120
BASELINE_TIMEOUT = 60

REVERSE_INFIX = """
length = selector_width(select(tokens, tokens, true))
opp = length - indices - 1
flip = select(indices, opp, ==)
return aggregate(flip, tokens)
"""

SORT_UNIQUE = """
smaller = select(tokens, tokens, <)
target_pos = selector_width(smaller)
moved = select(target_pos, indices, ==)
return aggregate(moved, tokens)
"""

SORT_UNIQUE_GREATER_OR_EQUAL = """
length = selector_width(select(tokens, tokens, true))
target_pos = length - selector_width(select(tokens, tokens, >=))
moved = select(target_pos, indices, ==)
return aggregate(moved, tokens)
"""

WIDTH_LESS = "return selector_width(select(tokens, tokens, <))"

WIDTH_FROM_GREATER_OR_EQUAL = """
length = selector_width(select(tokens, tokens, true))
return length - selector_width(select(tokens, tokens, >=))
"""

FRACTION_OF_ONES_BELOW = """
is_one = numerical map(lambda t: 1 if t == 1 else 0, tokens)
return numerical aggregate(select(tokens, tokens, <), is_one, default=0)
"""

FRACTION_OF_ONES_BELOW_FROM_WIDTHS = """
ones = selector_width(select(tokens, tokens, lambda k, q: k < q and k == 1))
smaller = selector_width(select(tokens, tokens, <))
return numerical sequence_map(lambda a, b: a / b if b > 0 else 0, ones, smaller)
"""

FRAC_PREVS = """
is_x = numerical map(lambda t: 1 if t == "x" else 0, tokens)
prevs = select(indices, indices, <=)
return numerical aggregate(prevs, is_x, default=0)
"""


def reverse_with_tables(max_seq_len: int) -> dsl.Program:
    entries = ", ".join(
        f"({n}, {i}): {n - i - 1}" for n in range(max_seq_len + 1) for i in range(max_seq_len)
    )
    return dsl.parse(
        "length = selector_width(select(tokens, tokens, true))\n"
        f"opp = sequence_map({{{entries}}}, length, indices)\n"
        "flip = select(indices, opp, lambda k, q: q == k)\n"
        "return aggregate(flip, map(lambda t: t, tokens))\n"
    )


def sort_unique_with_tables(max_seq_len: int) -> dsl.Program:
    """sort_unique with its comparison, its slot map and its values as tables."""
    slots = ", ".join(f"{i}: {i}" for i in range(max_seq_len))
    return dsl.parse(
        "rank = map({1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1}, tokens)\n"
        "smaller = select(rank, rank, lambda k, q: k > q)\n"
        "target_pos = selector_width(smaller)\n"
        f"slot = map({{{slots}}}, target_pos)\n"
        "moved = select(slot, indices, ==)\n"
        "return aggregate(moved, map({1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}, tokens))\n"
    )


def sort_unique(vocab, max_seq_len) -> dsl.Program:
    return dsl.from_tracr(
        lib.make_sort_unique(rasp.tokens, rasp.tokens), vocab=vocab, max_seq_len=max_seq_len
    )


def prove(name, p, q, vocab, max_seq_len, timeout=TIMEOUT, **options):
    start = time.perf_counter()
    verdict = equivalent(p, q, vocab=vocab, max_seq_len=max_seq_len, timeout=timeout, **options)
    seconds = time.perf_counter() - start
    inputs = count_inputs(vocab, max_seq_len)
    print(
        f"{name:<48} vocab {len(vocab)}, n={max_seq_len:<3} {inputs:>15,} inputs  "
        f"{str(verdict):<12} {seconds:7.2f} s"
    )
    return verdict, seconds


def against_positional(name, p, q, vocab) -> None:
    verdict, seconds = prove(name, p, q, vocab, MAX_LEN)
    with mock.patch.object(limits, "COUNT_BY_VALUE", False):
        baseline, baseline_seconds = prove(
            "  baseline: positional", p, q, vocab, MAX_LEN, timeout=BASELINE_TIMEOUT
        )
    bound = "" if baseline.level == "proved" else ">"
    print(f"  positional / counted time: {bound}{baseline_seconds / seconds:.1f}")


def enumerate_equal(p, q, vocab, max_seq_len) -> float:
    start = time.perf_counter()
    for batch in enumerate_inputs(vocab, max_seq_len, batch_size=20_000):
        for x, y in zip(
            dsl.evaluate(p, batch, undefined="mark"), dsl.evaluate(q, batch, undefined="mark")
        ):
            if (x is None) != (y is None) or (
                x is not None and outputs_agree(x, y, 1e-9) is not None
            ):
                raise AssertionError("the programs differ")
    return time.perf_counter() - start


def main() -> None:
    vocab6 = list(range(1, 7))
    print(f"Z3 proofs at max-len {MAX_LEN}, against the positional encoding (same run)")
    against_positional(
        "selector_width(<) vs length - selector_width(>=)",
        dsl.parse(WIDTH_LESS),
        dsl.parse(WIDTH_FROM_GREATER_OR_EQUAL),
        vocab6,
    )
    against_positional(
        "reverse: infix vs tables",
        dsl.parse(REVERSE_INFIX),
        reverse_with_tables(MAX_LEN),
        list("abcdefgh"),
    )
    against_positional(
        "make_sort_unique (tracr) vs table rewrite",
        sort_unique(vocab6, MAX_LEN),
        sort_unique_with_tables(MAX_LEN),
        vocab6,
    )
    against_positional(
        "sort_unique: target from < vs from >=",
        dsl.parse(SORT_UNIQUE),
        dsl.parse(SORT_UNIQUE_GREATER_OR_EQUAL),
        vocab6,
    )
    against_positional(
        "aggregate over < vs ratio of widths",
        dsl.parse(FRACTION_OF_ONES_BELOW),
        dsl.parse(FRACTION_OF_ONES_BELOW_FROM_WIDTHS),
        vocab6,
    )
    print()
    print("Z3 proofs past enumeration")
    prove(
        "frac_prevs: lambda vs table",
        dsl.parse(FRAC_PREVS),
        dsl.parse(FRAC_PREVS.replace('lambda t: 1 if t == "x" else 0', '{"x": 1, "a": 0, "b": 0}')),
        ["x", "a", "b"],
        MAX_LEN,
    )
    print()
    print("Z3 against enumeration (dsl.evaluate of both programs on every input), same run")
    p, q = sort_unique(vocab6, 6), sort_unique_with_tables(6)
    verdict, z3_seconds = prove("make_sort_unique vs table rewrite", p, q, vocab6, 6)
    assert verdict.ok
    enumeration_seconds = enumerate_equal(p, q, vocab6, 6)
    print(f"{'enumeration':<48} {count_inputs(vocab6, 6):,} inputs  {enumeration_seconds:.2f} s")
    print(f"Z3 / enumeration time: {z3_seconds / enumeration_seconds:.2f}")


if __name__ == "__main__":
    main()
