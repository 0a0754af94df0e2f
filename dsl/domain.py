"""The input domain of a program: every token sequence up to a length, or a seeded sample.

Enumeration order is deterministic: by length (shortest first), then
lexicographically in the order the vocabulary was given (itertools.product;
a set is sorted first).
Sampling draws the length uniformly from min_len..max_len, then each token
uniformly: short inputs are as likely as long ones, which is what finds bugs in
the cases where a program's behaviour depends on the length.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from dsl import limits
from dsl.errors import DSLError
from dsl.limits import LimitError, limit_text

Predicate = Callable[[list], bool]

DEFAULT_BATCH_SIZE = 4096

# Rejection sampling gives up after this many draws per requested sample, so a
# predicate that (almost) never holds is an error rather than an endless loop.
_MAX_DRAWS_PER_SAMPLE = 1000


class DomainError(DSLError):
    """A domain that cannot be enumerated or sampled (empty vocab, bad lengths)."""


@dataclass(frozen=True)
class Domain:
    """A bounded input domain, as a verdict reports it."""

    vocab: tuple
    """The token values, in the order inputs are enumerated."""
    max_len: int
    """The longest input length."""
    min_len: int = 1
    """The shortest input length."""
    predicate_description: str = ""
    """What restricts the domain beyond the lengths ("" when nothing does)."""

    @property
    def size(self) -> int:
        """How many inputs the lengths allow, before any predicate."""
        return count_inputs(self.vocab, self.max_len, min_len=self.min_len)

    def __str__(self) -> str:
        text = (
            f"vocab {{{', '.join(map(repr, self.vocab))}}}, lengths {self.min_len}..{self.max_len}"
        )
        if self.predicate_description:
            text += f", restricted to {self.predicate_description}"
        return text


def ordered_vocab(vocab) -> list:
    """The vocab as a list: a sequence keeps its order, a set is sorted (so runs repeat)."""
    if isinstance(vocab, (set, frozenset)):
        return sorted(vocab, key=lambda v: (type(v).__name__, v))
    return list(vocab)


def _check(vocab: Sequence, max_len: int, min_len: int) -> list:
    tokens = ordered_vocab(vocab)
    if not tokens:
        raise DomainError("the vocabulary is empty")
    if len(set(tokens)) != len(tokens):
        raise DomainError(f"the vocabulary has a repeated value: {tokens!r}")
    if min_len < 0 or max_len < min_len:
        raise DomainError(
            f"expected 0 <= min_len <= max_len, got min_len={min_len}, max_len={max_len}"
        )
    limits.check_vocab(tokens)
    if max_len > limits.MAX_SEQ_LEN:
        raise LimitError(f"max_len {max_len:,} is past {limit_text('MAX_SEQ_LEN')}")
    return tokens


def count_inputs(vocab: Sequence, max_len: int, min_len: int = 1) -> int:
    """How many inputs of length min_len..max_len there are (no predicate)."""
    tokens = _check(vocab, max_len, min_len)
    return sum(len(tokens) ** length for length in range(min_len, max_len + 1))


def enumerate_inputs(
    vocab: Sequence,
    max_len: int,
    *,
    min_len: int = 1,
    predicate: Predicate | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> Iterator[list[list]]:
    """Every input of length min_len..max_len satisfying `predicate`, in batches.

    Batches hold at most `batch_size` inputs and never mix lengths, so a batch
    can be evaluated as one rectangular array.
    """
    tokens = _check(vocab, max_len, min_len)
    if batch_size < 1:
        raise DomainError(f"batch_size must be positive, got {batch_size}")
    count = count_inputs(tokens, max_len, min_len=min_len)
    if count > limits.MAX_ENUMERATED_INPUTS:
        raise LimitError(
            f"enumerating {_count_text(count)} inputs is past "
            f"{limit_text('MAX_ENUMERATED_INPUTS')} (sample them instead)"
        )
    for length in range(min_len, max_len + 1):
        batch: list[list] = []
        for combo in itertools.product(tokens, repeat=length):
            sequence = list(combo)
            if predicate is not None and not predicate(sequence):
                continue
            batch.append(sequence)
            if len(batch) == batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def sample_inputs(
    vocab: Sequence,
    max_len: int,
    k: int,
    *,
    seed: int,
    min_len: int = 1,
    predicate: Predicate | None = None,
) -> list[list]:
    """`k` seeded random inputs (the same seed gives the same list); may repeat."""
    tokens = _check(vocab, max_len, min_len)
    if k < 0:
        raise DomainError(f"the number of samples must be >= 0, got {k}")
    if k > limits.MAX_SAMPLES:
        raise LimitError(f"{k:,} samples are past {limit_text('MAX_SAMPLES')}")
    rng = random.Random(seed)
    samples: list[list] = []
    draws = 0
    while len(samples) < k:
        if draws >= _MAX_DRAWS_PER_SAMPLE * k:
            raise DomainError(
                f"found only {len(samples)} of {k} inputs satisfying the predicate "
                f"in {draws} random draws"
            )
        draws += 1
        length = rng.randint(min_len, max_len)
        sequence = rng.choices(tokens, k=length)  # a quarter of the time of choice() per token
        if predicate is None or predicate(sequence):
            samples.append(sequence)
    return samples


def _count_text(count: int) -> str:
    """A count for a message: in full when short, else as a power of ten."""
    return f"{count:,}" if count < 10**15 else f"about 10^{len(str(count)) - 1}"
