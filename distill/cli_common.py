"""Option parsing shared by the CLI commands."""

from __future__ import annotations

from distill.errors import BadInputError


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
