"""Options and input files shared by the CLI commands (light imports: `--help` loads nothing heavy).

Sizes are checked against `dsl.limits` here, before any work: that module is
light (it imports only `dsl.errors`), so `--help` stays fast.
"""

from __future__ import annotations

import os
import re
import stat
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from distill.errors import BadInputError
from dsl import limits
from dsl.errors import shorten

if TYPE_CHECKING:
    import dsl

# An integer token of more digits is past dsl.limits.MAX_INT_BITS (10**1234 > 2**4096);
# Python would refuse to convert one of more than 4,300 digits at all.
_MAX_INT_DIGITS = int(limits.MAX_INT_BITS * 0.30103) + 2
_INTEGER = re.compile(r"\s*[+-]?\d[\d_]*\s*")


def parse_token(text: str):
    """A command-line token: a value that reads as an integer is an integer."""
    if _INTEGER.fullmatch(text) and len(text) > _MAX_INT_DIGITS:
        raise BadInputError(
            f"the token {shorten(text, 40)!r} is an integer of {len(text):,} digits, past "
            f"{limits.limit_text('MAX_INT_BITS')}"
        )
    try:
        value = int(text)
    except ValueError:
        value = text
    problem = limits.value_problem(value)
    if problem:
        # Command-line bytes that are not UTF-8 arrive as lone surrogates.
        raise BadInputError(f"the token {shorten(ascii(text), 60)} is {problem}")
    return value


def parse_vocab(text: str) -> list:
    """`a,b,c` -> ["a", "b", "c"]; `1,2,3` -> [1, 2, 3]."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(item == "" for item in items):
        raise BadInputError(
            f"--vocab: expected comma-separated values like a,b,c, got {shorten(repr(text), 80)}"
        )
    if len(items) > limits.MAX_VOCAB:
        raise BadInputError(
            f"--vocab: {len(items):,} values are past {limits.limit_text('MAX_VOCAB')}"
        )
    values = [parse_token(item) for item in items]
    if len(set(values)) != len(values):
        repeated = next(v for i, v in enumerate(values) if v in values[:i])
        raise BadInputError(f"--vocab: the value {shorten(repr(repeated), 60)} is repeated")
    return values


def check_max_len(max_len: int) -> int:
    if max_len < 1:
        raise BadInputError(f"--max-len: expected a positive integer, got {max_len}")
    if max_len > limits.MAX_SEQ_LEN:
        raise BadInputError(f"--max-len {max_len:,} is past {limits.limit_text('MAX_SEQ_LEN')}")
    return max_len


def check_samples(samples: int) -> int:
    if samples < 1:
        raise BadInputError(f"--samples: expected a positive number, got {samples}")
    if samples > limits.MAX_SAMPLES:
        raise BadInputError(f"--samples {samples:,} is past {limits.limit_text('MAX_SAMPLES')}")
    return samples


def read_program(path: Path) -> dsl.Program:
    """Parse a `.rasp` file; an unreadable, special, oversized or non-UTF-8 file is bad input.

    The file is opened without blocking (a FIFO must not hang the command) and
    must be a regular file (not a device like /dev/zero, even through a link);
    at most dsl.limits.MAX_SOURCE_BYTES are read.
    """
    import dsl

    text = _decode(path, _read_regular_file(path, limits.MAX_SOURCE_BYTES))
    return dsl.parse(text, filename=str(path))


def _read_regular_file(path: Path, limit: int) -> bytes:
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        raise BadInputError(f"cannot read {path}: {error.strerror or error}") from None
    try:
        mode = os.fstat(descriptor).st_mode
        if stat.S_ISDIR(mode):
            raise BadInputError(f"cannot read {path}: it is a directory, not a .rasp file")
        if not stat.S_ISREG(mode):
            raise BadInputError(
                f"cannot read {path}: not a regular file (a device, FIFO or socket)"
            )
        with os.fdopen(descriptor, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    except OSError as error:
        raise BadInputError(f"cannot read {path}: {error.strerror or error}") from None
    finally:
        os.close(descriptor)
    if len(data) > limit:
        raise BadInputError(
            f"{path}: a file of more than {limit:,} bytes is past "
            f"{limits.limit_text('MAX_SOURCE_BYTES')}"
        )
    return data


def _decode(path: Path, data: bytes) -> str:
    """UTF-8 text (a byte-order mark is allowed); a bad byte is reported at its line and column."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        before = data[: error.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise BadInputError(
            f"{path}:{line}:{column}: not UTF-8 text (byte 0x{data[error.start]:02x})"
        ) from None


def check_input(tokens: list, vocab: list, max_len: int) -> None:
    """At least one token, every token in the vocabulary, no more than max_len of them."""
    if not tokens:
        raise BadInputError("no input tokens given (write them after the options: a b c)")
    if len(tokens) > max_len:
        raise BadInputError(f"the input has {len(tokens)} tokens, more than --max-len {max_len}")
    known = set(vocab)
    for position, token in enumerate(tokens):
        if token not in known:
            shown = shorten(", ".join(map(str, vocab)), 120)
            raise BadInputError(
                f"token {shorten(repr(token), 60)} at position {position} is not in the "
                f"vocabulary ({shown})"
            )


WORKERS_HELP = (
    "Run the sweep on a local Ray with N worker processes (loopback only; needs the optional "
    "extra 'ray'). Results are the same as in-process."
)
RAY_HELP = (
    "Run the sweep on the Ray cluster at ADDRESS (host:port printed by `ray start --head`; "
    "the toolkit must be installed on every node)."
)


@contextmanager
def sweep_executor(workers: int | None, ray_address: str | None):
    """The executor of --workers / --ray (in-process when neither), closed on the way out."""
    if workers is not None and ray_address is not None:
        raise BadInputError("--workers and --ray exclude each other: give one")
    if workers is not None and workers < 1:
        raise BadInputError(f"--workers: expected a positive number, got {workers}")
    if ray_address is not None and not ray_address.strip():
        raise BadInputError("--ray: expected a cluster address like 10.0.0.1:6379, got ''")
    from distill.executor import executor

    chosen = executor(workers, ray_address, notify=lambda text: print(text, file=sys.stderr))
    try:
        yield chosen
    finally:
        chosen.close()
