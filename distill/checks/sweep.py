"""Every input of a domain, streamed in chunks: a model against programs, as arrays.

`verify.check` compares per input, with Python values, and the pipeline
remembers each model prediction in a dict: right for thousands of inputs, too
slow and too big for the millions of a vocab-5, length-10 domain (12 M inputs).
Here inputs are made chunk by chunk as index arrays in `dsl.domain`'s
enumeration order, run through the model as one tensor, and compared with the
programs' array evaluations (`dsl.evaluate_arrays`) as arrays; only the
counterexamples become Python values.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from numbers import Number

import numpy as np
import torch

from distill.circuit.precondition import PRECONDITION, precondition_holds
from distill.executor import InProcess
from distill.models.family import Model
from distill.models.numerics import RESOLUTION
from dsl import ast
from dsl.domain import Domain, ordered_vocab
from dsl.interpreter import evaluate_arrays
from verify.check import UNDEFINED_RULES, outputs_agree
from verify.verdict import EXHAUSTIVE, REFUTED, Counterexample, Verdict

CHUNK_SIZE = 16_384
MAX_COUNTEREXAMPLES = 5


@dataclass(frozen=True)
class Chunk:
    """Inputs of one length, consecutive in enumeration order."""

    tokens: np.ndarray
    """[batch, length] indices into the ordered vocab."""
    inputs: list[list]
    """The same inputs as token values."""


def chunks(vocab, max_len: int, size: int = CHUNK_SIZE) -> Iterator[Chunk]:
    """Every input of lengths 1..max_len, shortest first, then lexicographic (dsl.domain's order)."""
    tokens = ordered_vocab(vocab)
    for span in chunk_spans(len(tokens), max_len, size):
        yield make_chunk(tokens, span)


def chunk_spans(base: int, max_len: int, size: int = CHUNK_SIZE) -> Iterator[tuple[int, int, int]]:
    """(length, start, stop) of every chunk, in enumeration order: inputs number start..stop-1
    of that length, an input's number read as base-`base` digits being its vocab indices."""
    for length in range(1, max_len + 1):
        total = base**length
        for start in range(0, total, size):
            yield length, start, min(start + size, total)


def count_chunks(base: int, max_len: int, size: int = CHUNK_SIZE) -> int:
    return sum(-(-(base**length) // size) for length in range(1, max_len + 1))


def make_chunk(tokens: list, span: tuple[int, int, int]) -> Chunk:
    """The inputs of one span of chunk_spans, over the ordered vocab `tokens`."""
    length, start, stop = span
    base = len(tokens)
    values = np.empty(base, dtype=object)
    values[:] = tokens
    weights = base ** np.arange(length - 1, -1, -1, dtype=np.int64)
    index = np.arange(start, stop, dtype=np.int64)
    digits = (index[:, None] // weights) % base
    return Chunk(digits, values[digits].tolist())


@dataclass(frozen=True)
class ModelOutputs:
    """The model's decoded outputs on a batch, shaped like an SOpArray of dsl.evaluate_arrays."""

    codes: np.ndarray
    """[batch, pos] index into `table` (positions past an input's end hold any code)."""
    table: tuple
    """Categorical: the model's output values; numerical: the distinct values seen."""


FORWARD_BYTES = 1 << 28


def evaluate_model(model: Model, inputs: list[list], tokens: np.ndarray | None = None):
    """The model's outputs on `inputs`; `tokens` [batch, length] (vocab indices of inputs of
    one length, as a Chunk has them) skips encoding the inputs one by one."""
    config = model.config
    if tokens is None:
        ids, mask = model.encode(inputs)
    else:
        ids = torch.empty((len(tokens), tokens.shape[1] + 1), dtype=torch.long)
        ids[:, 0] = config.bos_id
        ids[:, 1:] = torch.from_numpy(tokens)  # a vocab index is the model's token id
        mask = torch.ones_like(ids, dtype=torch.bool)
    # In slices whose widest activation stays near FORWARD_BYTES: a wide compiled model's
    # forward pass on 20,000 inputs at once would hold gigabytes per layer.
    width = max(config.d_model, config.d_mlp) * ids.shape[1] * 8  # float64 at most
    rows = max(1, FORWARD_BYTES // width)
    numerical = config.output_kind == "numerical"
    parts = []
    with torch.no_grad():
        for start in range(0, len(ids), rows):
            out = model(ids[start : start + rows], mask[start : start + rows])
            parts.append(out[:, 1:, 0].double() if numerical else model.output_indices(out)[:, 1:])
    joined = torch.cat(parts).numpy() if parts else np.zeros((0, ids.shape[1] - 1))
    if numerical:
        values, codes = np.unique(joined, return_inverse=True)
        return ModelOutputs(codes.reshape(len(ids), -1), tuple(values.tolist()))
    return ModelOutputs(joined, tuple(config.output_values))


def defined_inputs(evaluation) -> np.ndarray:
    """[batch] whether the program is defined on each input of an evaluate_arrays batch."""
    defined = np.ones(len(evaluation.inputs), dtype=bool)
    defined[list(evaluation.output.failures)] = False
    return defined


def agreement_matrix(table_a: tuple, table_b: tuple) -> np.ndarray:
    """[len(a), len(b)] bool: whether two values agree as verify.check compares them
    (numbers within the resolution, anything else by ==; None agrees with nothing)."""
    numbers_a, numbers_b = _numbers(table_a), _numbers(table_b)
    same = np.abs(numbers_a[:, None] - numbers_b[None, :]) <= RESOLUTION
    others_b = [(j, b) for j, b in enumerate(table_b) if b is not None and np.isnan(numbers_b[j])]
    for i, a in enumerate(table_a):
        if a is not None and np.isnan(numbers_a[i]):
            for j, b in others_b:
                same[i, j] = a == b
    return same


def _numbers(table: tuple) -> np.ndarray:
    """The table's numbers as floats; NaN for anything else (None included)."""
    return np.array(
        [
            float(v) if isinstance(v, Number) and not isinstance(v, complex) else np.nan
            for v in table
        ],
        dtype=np.float64,
    )


@dataclass
class _Tally:
    """One verdict being accumulated."""

    covered: int = 0
    counterexamples: list = field(default_factory=list)

    def add(self, considered: np.ndarray, agree: np.ndarray, describe) -> None:
        self.covered += int(considered.sum())
        for row in np.flatnonzero(considered & ~agree)[:MAX_COUNTEREXAMPLES].tolist():
            if len(self.counterexamples) < MAX_COUNTEREXAMPLES:
                self.counterexamples.append(describe(row))

    def merge(self, other: _Tally) -> None:
        """Add a later chunk's tally (counterexamples stay the first by domain order)."""
        self.covered += other.covered
        room = MAX_COUNTEREXAMPLES - len(self.counterexamples)
        self.counterexamples += other.counterexamples[: max(room, 0)]

    def verdict(self, domain: Domain, max_len: int, seconds: float) -> Verdict:
        return Verdict(
            level=REFUTED if self.counterexamples else EXHAUSTIVE,
            max_seq_len=max_len,
            domain=str(domain),
            inputs_covered=self.covered,
            tolerance=RESOLUTION,
            undefined_rule=UNDEFINED_RULES["refute"],
            counterexamples=tuple(self.counterexamples),
            seconds=seconds,
        )


def check_exhaustively(
    program: ast.Program,
    reference: ast.Program,
    model: Model,
    executor=None,
    progress: Callable[[int, int | None], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
) -> tuple[Verdict, Verdict]:
    """`program` against `model` on every input: (on the claimed domain, on the whole domain).

    The claimed domain is where `reference` (the table program) meets the
    precondition. An input on which the program is undefined counts as a
    disagreement, as with verify.check(undefined="refute").

    The chunks run through `executor` (distill.executor; in-process by default), their
    tallies merged in domain order, so the verdicts do not depend on it; `progress(done,
    total)` hears of each chunk merged.
    """
    start = time.perf_counter()
    spec = model.config
    vocab, max_len = ordered_vocab(spec.vocab), spec.max_seq_len
    executor = executor or InProcess()
    claimed, whole = _Tally(), _Tally()
    check_chunk = functools.partial(_check_chunk, program, reference, model, vocab)
    spans = chunk_spans(len(vocab), max_len, chunk_size)
    total = count_chunks(len(vocab), max_len, chunk_size)
    tallies = executor.map(check_chunk, spans, progress=progress, total=total)
    with contextlib.closing(tallies):
        for chunk_claimed, chunk_whole in tallies:
            claimed.merge(chunk_claimed)
            whole.merge(chunk_whole)
            if len(claimed.counterexamples) >= MAX_COUNTEREXAMPLES:
                break  # refuted either way (the whole domain holds the claimed one), as verify.check
    seconds = time.perf_counter() - start
    domain = Domain(tuple(vocab), max_len)
    return (
        claimed.verdict(
            Domain(tuple(vocab), max_len, predicate_description=PRECONDITION), max_len, seconds
        ),
        whole.verdict(domain, max_len, seconds),
    )


def _check_chunk(program, reference, model: Model, vocab: list, span) -> tuple[_Tally, _Tally]:
    """One chunk's tallies: (on the claimed domain, on the whole domain)."""
    chunk = make_chunk(vocab, span)
    expected = evaluate_model(model, chunk.inputs, chunk.tokens)
    evaluation = evaluate_arrays(program, chunk.inputs)
    got = evaluation.output
    same = agreement_matrix(expected.table, got.table)
    defined = defined_inputs(evaluation)
    agree = same[expected.codes, got.codes].all(axis=1) & defined
    holds = np.asarray(precondition_holds(reference, chunk.inputs), dtype=bool)

    def describe(row):
        return _counterexample(model, chunk, row, evaluation, defined[row])

    claimed, whole = _Tally(), _Tally()
    claimed.add(holds, agree, describe)
    whole.add(np.ones_like(holds), agree, describe)
    return claimed, whole


def _counterexample(model: Model, chunk: Chunk, row: int, evaluation, defined) -> Counterexample:
    sequence = tuple(chunk.inputs[row])
    expected = tuple(model.predict([list(sequence)])[0])
    if not defined:
        return Counterexample(sequence, expected, None, None, note="undefined for the program")
    got = tuple(evaluation.output.values()[row, : len(sequence)].tolist())
    position = outputs_agree(expected, got, RESOLUTION)
    return Counterexample(sequence, expected, got, position)
