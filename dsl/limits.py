"""How big a `.rasp` program, its values and its input domain may be.

A `.rasp` file and a command line are data from anyone, so every size that
drives work or memory has a limit, checked before the work starts; a refusal
is a `LimitError` (a `DSLError`: exit 2 on the command line) whose message
names the limit as `dsl.limits.NAME`. The limits bound work actually done,
not the domain as such: a vocabulary of 50 tokens and lengths of 20 are fine
for anything that never enumerates the domain, while enumeration is refused
past MAX_ENUMERATED_INPUTS.

With these limits the language-side commands (`distill eval`, `equiv`,
`verify`) stay inside MEMORY_BUDGET on any input; tests/hostile/test_language.py
runs the worst inputs under that cap.
"""

from __future__ import annotations

import math

from dsl.errors import DSLError

MEMORY_BUDGET = 2 * 1024**3
"""Bytes of address space a language-side command needs at most, whatever its input."""

MAX_SOURCE_BYTES = 2 * 1024**2
"""Longest `.rasp` source: bytes of a file, characters of a string given to `dsl.parse`."""

MAX_NESTING_DEPTH = 100
"""Deepest nesting of expressions, counted through names and into lambda bodies
(every pass over a program recurses this deep: printer, interpreter, Z3, tracr)."""

MAX_SEQ_LEN = 512
"""Longest input (`--max-len`, a domain's max_seq_len)."""

MAX_VOCAB = 1_000
"""Most token values in a vocabulary."""

MAX_INT_BITS = 4_096
"""Largest integer magnitude, in bits (about 1,233 digits): literals, tokens and
every result of arithmetic in a lambda (so `10 ** 10 ** 9` is refused, not computed)."""

MAX_STRING_LENGTH = 100_000
"""Longest string value: literals, tokens and results of string arithmetic."""

MAX_VALUE_SET = 100_000
"""Most distinct values value-set inference lets one SOp take."""

MAX_INFERENCE_STEPS = 5_000_000
"""Most function applications value-set inference makes over a whole program
(a sequence_map or select applies its function to every pair of argument values)."""

MAX_SAMPLES = 1_000_000
"""Most random inputs a sampled check draws."""

MAX_ENUMERATED_INPUTS = 20_000_000
"""Most inputs an exhaustive check enumerates (one by one: minutes at this size)."""


class LimitError(DSLError):
    """An input past one of the limits of this module; the message names the limit."""


def limit_text(name: str) -> str:
    """How a message names a limit: its value and where it is set."""
    return f"the limit dsl.limits.{name} = {globals()[name]:,}"


def value_problem(value) -> str | None:
    """Why `value` cannot be a value of the language (None when it can).

    Values are None, booleans, integers of at most MAX_INT_BITS bits, finite
    floats and strings of at most MAX_STRING_LENGTH characters that UTF-8 can
    encode (no lone surrogates). Complex numbers, infinities and NaN are not
    values: tracr's compiled models cannot represent them and Z3 cannot prove
    things about them.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        if value.bit_length() > MAX_INT_BITS:
            return f"an integer of {value.bit_length():,} bits, past {limit_text('MAX_INT_BITS')}"
        return None
    if isinstance(value, float):
        return None if math.isfinite(value) else f"the number {value!r} (not finite)"
    if isinstance(value, str):
        if len(value) > MAX_STRING_LENGTH:
            return f"a string of {len(value):,} characters, past {limit_text('MAX_STRING_LENGTH')}"
        if any("\ud800" <= c <= "\udfff" for c in value):
            return "a string with a lone surrogate character (not encodable as UTF-8)"
        return None
    if isinstance(value, complex):
        return f"the complex number {value!r}"
    if isinstance(value, tuple):  # table keys of sequence_maps
        return next(filter(None, map(value_problem, value)), None)
    return f"a value of type {type(value).__name__}"


def check_domain(vocab, max_seq_len, *, min_len: int = 1) -> list:
    """The vocabulary as a list, after checking it and the lengths against the limits.

    Raises LimitError naming the first problem: an empty, repeated or too large
    vocabulary, a value that is not a value of the language, a length that is
    not an integer in 1..MAX_SEQ_LEN.
    """
    for name, length in (("max_seq_len", max_seq_len), ("min_len", min_len)):
        if isinstance(length, bool) or not isinstance(length, int):
            raise LimitError(f"{name}: expected an integer, got {length!r}")
    if max_seq_len < 1:
        raise LimitError(f"max_seq_len: expected a positive integer, got {max_seq_len}")
    if max_seq_len > MAX_SEQ_LEN:
        raise LimitError(f"max_seq_len {max_seq_len:,} is past {limit_text('MAX_SEQ_LEN')}")
    if not 1 <= min_len <= max_seq_len:
        raise LimitError(f"min_len: expected 1..max_seq_len ({max_seq_len}), got {min_len}")
    return check_vocab(vocab)


def check_vocab(vocab) -> list:
    """The vocabulary as a list (a set sorted), after checking it against the limits."""
    if isinstance(vocab, (set, frozenset)):
        tokens = sorted(vocab, key=lambda v: (type(v).__name__, repr(v)))
    else:
        tokens = list(vocab)
    if not tokens:
        raise LimitError("the vocabulary is empty")
    if len(tokens) > MAX_VOCAB:
        raise LimitError(
            f"a vocabulary of {len(tokens):,} values is past {limit_text('MAX_VOCAB')}"
        )
    for token in tokens:
        if token is None or isinstance(token, tuple):
            problem = repr(token)
        else:
            problem = value_problem(token)
        if problem:
            raise LimitError(f"the vocabulary holds {problem}, which is not a token")
    # 1, 1.0 and True are equal in Python: two of them cannot be told apart as tokens.
    if len(set(tokens)) != len(tokens):
        raise LimitError("the vocabulary has a repeated value")
    return tokens
