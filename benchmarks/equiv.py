"""Z3 equivalence proofs: how long they take, and against enumeration where that is possible.

Prints the proof time of each case (cases past enumeration included), and for
a case small enough to enumerate, the time to compare both programs with
`dsl.evaluate` on every input, measured in the same run, and the ratio.

    .venv/bin/python benchmarks/equiv.py
"""

from __future__ import annotations

import time

from tracr.compiler import lib
from tracr.rasp import rasp

import dsl
from dsl.domain import count_inputs, enumerate_inputs
from verify import equivalent
from verify.check import outputs_agree

REVERSE_INFIX = """
length = selector_width(select(tokens, tokens, true))
opp = length - indices - 1
flip = select(indices, opp, ==)
return aggregate(flip, tokens)
"""

SORT_UNIQUE_TABLES = """
rank = map({1: 6, 2: 5, 3: 4, 4: 3, 5: 2, 6: 1}, tokens)
smaller = select(rank, rank, lambda k, q: k > q)
target_pos = selector_width(smaller)
slot = map({0: 0, 1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7, 8: 8}, target_pos)
moved = select(slot, indices, ==)
return aggregate(moved, map({1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6}, tokens))
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


def sort_unique(vocab, max_seq_len) -> dsl.Program:
    return dsl.from_tracr(
        lib.make_sort_unique(rasp.tokens, rasp.tokens), vocab=vocab, max_seq_len=max_seq_len
    )


def prove(name, p, q, vocab, max_seq_len, **options):
    start = time.perf_counter()
    verdict = equivalent(p, q, vocab=vocab, max_seq_len=max_seq_len, timeout=600, **options)
    seconds = time.perf_counter() - start
    inputs = count_inputs(vocab, max_seq_len)
    print(
        f"{name:<44} vocab {len(vocab)}, n={max_seq_len:<3} {inputs:>15,} inputs  {verdict}  {seconds:7.2f} s"
    )
    return verdict, seconds


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
    print("Z3 proofs (verify.equivalent)")
    prove(
        "reverse: infix vs tables",
        dsl.parse(REVERSE_INFIX),
        reverse_with_tables(10),
        list("abcdefgh"),
        10,
    )
    vocab6 = list(range(1, 7))
    prove(
        "make_sort_unique (tracr) vs table rewrite",
        sort_unique(vocab6, 8),
        dsl.parse(SORT_UNIQUE_TABLES),
        vocab6,
        8,
    )
    prove(
        "frac_prevs: lambda vs table",
        dsl.parse(FRAC_PREVS),
        dsl.parse(FRAC_PREVS.replace('lambda t: 1 if t == "x" else 0', '{"x": 1, "a": 0, "b": 0}')),
        ["x", "a", "b"],
        10,
    )
    print()
    print("Z3 against enumeration (dsl.evaluate of both programs on every input), same run")
    p, q = sort_unique(vocab6, 6), dsl.parse(SORT_UNIQUE_TABLES)
    verdict, z3_seconds = prove("make_sort_unique vs table rewrite", p, q, vocab6, 6)
    assert verdict.ok
    enumeration_seconds = enumerate_equal(p, q, vocab6, 6)
    print(f"{'enumeration':<44} {count_inputs(vocab6, 6):,} inputs  {enumeration_seconds:.2f} s")
    print(f"Z3 / enumeration time: {z3_seconds / enumeration_seconds:.2f}")


if __name__ == "__main__":
    main()
