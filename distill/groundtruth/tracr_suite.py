"""The tracr ground-truth suite: every case of tracr's own tests and lib.

All 53 named cases of tracr's `compiler/test_cases.py` (the universal, causal
and unsupported lists, by distinct name), plus one case per builder of
`compiler/lib.py` with the vocab and length of a test case that uses it.
Compiling is slow, so `compiled(case)` caches per process.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import string
from dataclasses import dataclass

from tracr.compiler import compiling, lib
from tracr.compiler import test_cases as tracr_test_cases
from tracr.rasp import rasp

BOS = "BOS"


@dataclass(frozen=True, eq=False)  # tracr exprs overload ==, so compare cases by identity
class TracrCase:
    name: str
    program: rasp.SOp
    vocab: frozenset
    max_seq_len: int
    causal: bool = False
    compiles: bool = True  # False for tracr's UNSUPPORTED_TEST_CASES

    @property
    def sorted_vocab(self) -> list:
        return sorted(self.vocab, key=lambda v: (type(v).__name__, v))

    @property
    def family(self) -> str:
        """Cases that differ only in their test input share a family (reverse_1..4)."""
        return re.sub(r"_\d+$", "", self.name)


def _from_dicts(dicts, *, causal=False, compiles=True):
    return [
        TracrCase(
            name=d["testcase_name"],
            program=d["program"],
            vocab=frozenset(d["vocab"]),
            max_seq_len=d["max_seq_len"],
            causal=causal,
            compiles=compiles,
        )
        for d in dicts
    ]


def _test_cases() -> list[TracrCase]:
    cases = _from_dicts(tracr_test_cases.TEST_CASES)
    seen = {c.name for c in cases}
    cases += [
        c
        for c in _from_dicts(tracr_test_cases.CAUSAL_TEST_CASES, causal=True)
        if c.name not in seen
    ]
    cases += _from_dicts(tracr_test_cases.UNSUPPORTED_TEST_CASES, compiles=False)
    return cases


TEST_CASES: list[TracrCase] = _test_cases()
assert len(TEST_CASES) == 53, len(TEST_CASES)

_ABCD = frozenset("abcd")
_PARENS = frozenset("()abc")

# One case per builder in tracr's lib.py, with a vocab and length from a test case using it.
LIB_CASES: list[TracrCase] = [
    TracrCase("lib_make_length", lib.make_length(), _ABCD, 5),
    TracrCase("lib_make_reverse", lib.make_reverse(rasp.tokens), _ABCD, 5),
    TracrCase("lib_make_pair_balance", lib.make_pair_balance(rasp.tokens, "(", ")"), _PARENS, 10),
    TracrCase("lib_make_shuffle_dyck", lib.make_shuffle_dyck(["()", "{}"]), frozenset("(){}"), 5),
    TracrCase("lib_make_shuffle_dyck2", lib.make_shuffle_dyck2(), frozenset("(){}"), 5),
    TracrCase("lib_make_hist", lib.make_hist(), _ABCD, 5),
    TracrCase(
        "lib_make_sort_unique",
        lib.make_sort_unique(rasp.tokens, rasp.tokens),
        frozenset({1, 2, 3, 4}),
        5,
    ),
    TracrCase(
        "lib_make_sort",
        lib.make_sort(rasp.tokens, rasp.tokens, max_seq_len=5, min_key=1),
        frozenset({1, 2, 3, 4}),
        5,
    ),
    TracrCase("lib_make_sort_freq", lib.make_sort_freq(max_seq_len=5), frozenset({1, 2, 3, 4}), 5),
    TracrCase("lib_make_frac_prevs", lib.make_frac_prevs(rasp.tokens == "l"), frozenset("helo"), 5),
    TracrCase("lib_shift_by", lib.shift_by(1, rasp.tokens), _ABCD, 5),
    TracrCase("lib_detect_pattern", lib.detect_pattern(rasp.tokens, "ab"), frozenset("ab"), 5),
    TracrCase("lib_make_count_less_freq", lib.make_count_less_freq(n=2), _ABCD, 6),
    TracrCase("lib_make_count", lib.make_count(rasp.tokens, "a"), frozenset("abc"), 8),
    TracrCase(
        "lib_make_nary_sequencemap",
        lib.make_nary_sequencemap(
            lambda x, y, z: x + y - z, rasp.tokens, rasp.tokens, rasp.indices
        ),
        frozenset({1, 2, 3}),
        5,
    ),
]

ALL_CASES: list[TracrCase] = TEST_CASES + LIB_CASES


def distinct_compilable(cases=ALL_CASES) -> list[TracrCase]:
    """One compilable case per (family, vocab, max_seq_len, causal): what compile-heavy tests use."""
    chosen: dict = {}
    for case in cases:
        if case.compiles:
            chosen.setdefault((case.family, case.vocab, case.max_seq_len, case.causal), case)
    return list(chosen.values())


# The scaled suite (`distill bench tracr --scale large`): realistic domains.
LARGE_VOCAB_SIZE = 10
LARGE_MAX_LEN = 10


def scaled_up(case: TracrCase) -> TracrCase:
    """`case` at max-len 10 with its vocab grown to 10 values where the program allows it.

    Integers grow upwards from the smallest, single lowercase letters through the
    alphabet; any other vocab (brackets, words) is part of what the program means
    and is kept.
    """
    vocab = case.vocab
    if all(type(v) is int for v in vocab):
        extra = (v for v in range(min(vocab), min(vocab) + 100) if v not in vocab)
    elif all(isinstance(v, str) and len(v) == 1 and v in string.ascii_lowercase for v in vocab):
        extra = (v for v in string.ascii_lowercase if v not in vocab)
    else:
        extra = iter(())
    grown = set(vocab)
    for value in extra:
        if len(grown) >= LARGE_VOCAB_SIZE:
            break
        grown.add(value)
    return dataclasses.replace(case, vocab=frozenset(grown), max_seq_len=LARGE_MAX_LEN)


def mlp_exactness(max_seq_len: int) -> float:
    """Sharp enough for selector width's MLP, which tells 1/n from 1/(n + 1) apart (tracr's
    default, 100, blends them from length 7 on); never below tracr's default."""
    return max(100.0, 4.0 * max_seq_len * (max_seq_len + 1))


@functools.cache
def compiled(case: TracrCase):
    """tracr's AssembledTransformerModel for a case (cached per process)."""
    return compiling.compile_rasp_to_model(
        case.program,
        vocab=set(case.vocab),
        max_seq_len=case.max_seq_len,
        compiler_bos=BOS,
        causal=case.causal,
    )
