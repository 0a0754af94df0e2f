"""Concrete checking: a program against any oracle, on every input of a domain or on samples.

The oracle is a callable from a batch of token sequences to a batch of output
sequences (`model.predict`, or another program's evaluation): verify never sees
a model class. Outputs are compared position by position; two numbers are equal
when they differ by at most `tolerance`, anything else by `==`.

Inputs on which the program is undefined (`dsl.evaluate` raises, as tracr's
evaluator would) follow the rule named by `undefined`: "exclude" sets them
aside and counts them in the verdict (the claim is then about the program's
domain of definition), "refute" counts them as disagreements.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable, Sequence
from numbers import Number

import dsl
from dsl import limits
from dsl.domain import Domain, count_inputs, enumerate_inputs, ordered_vocab, sample_inputs
from verify.verdict import EXHAUSTIVE, REFUTED, SAMPLED, Counterexample, Verdict

Oracle = Callable[[list[list]], Sequence[Sequence]]

# Auto mode checks every input when the domain is at most this big (issue 5's figure).
EXHAUSTIVE_LIMIT = 200_000
DEFAULT_SAMPLES = 2_000
DEFAULT_BATCH_SIZE = 4_096
# A batch holds at most this many (input, query, key) cells, so that a long max_seq_len
# gets smaller batches: selector matrices and attention scores grow with its square.
BATCH_CELLS = 2**24

UNDEFINED_RULES = {
    "exclude": "inputs on which the program is undefined are excluded and counted",
    "refute": "an input on which the program is undefined counts as a disagreement",
}


def check(
    program: dsl.Program,
    oracle: Oracle,
    *,
    vocab: Sequence,
    max_seq_len: int,
    exhaustive: bool | None = None,
    samples: int = DEFAULT_SAMPLES,
    seed: int = 0,
    min_len: int = 1,
    predicate: Callable[[list], bool] | None = None,
    predicate_description: str = "",
    tolerance: float = 1e-4,
    undefined: str = "exclude",
    batch_size: int = DEFAULT_BATCH_SIZE,
    max_counterexamples: int = 5,
    map_batches: Callable = map,
) -> Verdict:
    """Compare `program` with `oracle` on a bounded domain; exhaustive=None decides by its size.

    `map_batches(compare, batches)` runs the comparison of each batch and yields the results
    in batch order: the builtin `map` by default, or a parallel map (distill's executor),
    which gives the same verdict since the results are merged in order.
    """
    if not (isinstance(tolerance, Number) and math.isfinite(tolerance) and tolerance >= 0):
        raise ValueError(f"tolerance must be a finite number >= 0, got {tolerance!r}")
    if undefined not in UNDEFINED_RULES:
        raise ValueError(f"undefined must be one of {sorted(UNDEFINED_RULES)}, got {undefined!r}")
    limits.check_domain(vocab, max_seq_len, min_len=min_len)
    for name, value, least in (("samples", samples, 1), ("batch_size", batch_size, 1)):
        if isinstance(value, bool) or not isinstance(value, int) or value < least:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not exhaustive and samples > limits.MAX_SAMPLES:
        raise limits.LimitError(f"{samples:,} samples are past {limits.limit_text('MAX_SAMPLES')}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    batch_size = min(batch_size, max(1, BATCH_CELLS // (max_seq_len + 1) ** 2))
    start = time.perf_counter()
    vocab = ordered_vocab(vocab)
    domain = Domain(tuple(vocab), max_seq_len, min_len, predicate_description)
    if predicate is not None and not predicate_description:
        raise ValueError("a predicate needs a predicate_description for the verdict")
    if exhaustive is None:
        exhaustive = count_inputs(vocab, max_seq_len, min_len=min_len) <= EXHAUSTIVE_LIMIT
    if exhaustive:
        batches = enumerate_inputs(
            vocab, max_seq_len, min_len=min_len, predicate=predicate, batch_size=batch_size
        )
    else:
        drawn = sample_inputs(
            vocab, max_seq_len, samples, seed=seed, min_len=min_len, predicate=predicate
        )
        batches = (drawn[i : i + batch_size] for i in range(0, len(drawn), batch_size))

    covered = 0
    set_aside = 0
    counterexamples: list[Counterexample] = []
    compare = functools.partial(
        _compare_batch,
        program,
        oracle,
        tolerance=tolerance,
        undefined=undefined,
        max_counterexamples=max_counterexamples,
    )
    results = map_batches(compare, batches)
    try:
        for batch_covered, batch_set_aside, examples in results:
            covered += batch_covered
            set_aside += batch_set_aside
            counterexamples += examples[: max_counterexamples - len(counterexamples)]
            if len(counterexamples) >= max_counterexamples:
                break
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()  # a parallel map stops the batches still running

    if counterexamples:
        level = REFUTED
    else:
        level = EXHAUSTIVE if exhaustive else SAMPLED
    return Verdict(
        level=level,
        max_seq_len=max_seq_len,
        domain=str(domain),
        inputs_covered=covered,
        samples=None if exhaustive else samples,
        seed=None if exhaustive else seed,
        tolerance=tolerance,
        undefined_rule=UNDEFINED_RULES[undefined],
        undefined_inputs=set_aside,
        counterexamples=tuple(counterexamples),
        seconds=time.perf_counter() - start,
    )


def _compare_batch(
    program: dsl.Program,
    oracle: Oracle,
    batch: list[list],
    *,
    tolerance: float,
    undefined: str,
    max_counterexamples: int,
) -> tuple[int, int, list[Counterexample]]:
    """(inputs covered, inputs set aside, the first counterexamples) of one batch."""
    program_outputs = _evaluate_marking_undefined(program, batch)
    oracle_outputs = oracle(batch)
    if len(oracle_outputs) != len(batch):
        raise ValueError(
            f"the oracle returned {len(oracle_outputs)} outputs for {len(batch)} inputs"
        )
    covered = set_aside = 0
    counterexamples: list[Counterexample] = []
    for sequence, got, expected in zip(batch, program_outputs, oracle_outputs):
        expected = tuple(_plain(expected))
        if got is None and undefined == "exclude":
            set_aside += 1
            continue
        covered += 1
        example = _disagreement(sequence, expected, got, tolerance)
        if example is not None and len(counterexamples) < max_counterexamples:
            counterexamples.append(example)
    return covered, set_aside, counterexamples


def outputs_agree(expected: Sequence, got: Sequence, tolerance: float) -> int | None:
    """The first position where two outputs differ (None when they agree everywhere)."""
    if len(expected) != len(got):
        return min(len(expected), len(got))
    for position, (a, b) in enumerate(zip(expected, got)):
        if not _values_agree(a, b, tolerance):
            return position
    return None


def _values_agree(a, b, tolerance: float) -> bool:
    if _is_number(a) and _is_number(b):
        return abs(a - b) <= tolerance
    return a == b


def _is_number(value) -> bool:
    return isinstance(value, Number) and not isinstance(value, complex)


def _disagreement(sequence, expected: tuple, got: tuple | None, tolerance) -> Counterexample | None:
    if got is None:
        return Counterexample(
            tuple(sequence), expected, None, None, note="undefined for the program"
        )
    position = outputs_agree(expected, got, tolerance)
    if position is None:
        return None
    if position >= min(len(expected), len(got)):
        return Counterexample(tuple(sequence), expected, got, None, note="outputs differ in length")
    return Counterexample(tuple(sequence), expected, got, position)


def _plain(output) -> list:
    """An output as a list of Python values (oracles may return numpy arrays)."""
    return output.tolist() if hasattr(output, "tolist") else list(output)


def _evaluate_marking_undefined(program: dsl.Program, batch: list[list]) -> list[tuple | None]:
    """The program's output per input, None where it is undefined."""
    return [
        None if row is None else tuple(row)
        for row in dsl.evaluate(program, batch, undefined="mark")
    ]
