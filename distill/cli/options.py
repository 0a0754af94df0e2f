"""Options and input files shared by the CLI commands (light imports: `--help` loads nothing heavy)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from distill.errors import BadInputError

if TYPE_CHECKING:
    import dsl


def parse_token(text: str):
    """A command-line token: a value that reads as an integer is an integer."""
    try:
        return int(text)
    except ValueError:
        return text


def parse_vocab(text: str) -> list:
    """`a,b,c` -> ["a", "b", "c"]; `1,2,3` -> [1, 2, 3]."""
    items = [item.strip() for item in text.split(",")]
    if not text.strip() or any(item == "" for item in items):
        raise BadInputError(f"--vocab: expected comma-separated values like a,b,c, got {text!r}")
    values = [parse_token(item) for item in items]
    if len(set(values)) != len(values):
        raise BadInputError(f"--vocab: repeated value in {text!r}")
    return values


def check_max_len(max_len: int) -> int:
    if max_len < 1:
        raise BadInputError(f"--max-len: expected a positive integer, got {max_len}")
    return max_len


def read_program(path: Path) -> dsl.Program:
    """Parse a `.rasp` file; an unreadable file is bad input."""
    import dsl

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise BadInputError(f"cannot read {path}: {error}") from None
    return dsl.parse(text, filename=str(path))


def check_input(tokens: list, vocab: list, max_len: int) -> None:
    """At least one token, every token in the vocabulary, no more than max_len of them."""
    if not tokens:
        raise BadInputError("no input tokens given (write them after the options: a b c)")
    for position, token in enumerate(tokens):
        if token not in vocab:
            raise BadInputError(
                f"token {token!r} at position {position} is not in the vocabulary "
                f"({', '.join(map(str, vocab))})"
            )
    if len(tokens) > max_len:
        raise BadInputError(f"the input has {len(tokens)} tokens, more than --max-len {max_len}")
