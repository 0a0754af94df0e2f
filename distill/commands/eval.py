"""`distill eval`: run a `.rasp` program on one input and print its output sequence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

import dsl
from distill.cli_common import check_max_len, parse_token, parse_vocab
from distill.errors import BadInputError


def read_program(path: Path) -> dsl.Program:
    """Parse a `.rasp` file; an unreadable file is bad input."""
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


def eval_command(
    program: Annotated[Path, typer.Argument(help="The .rasp program to run.")],
    vocab: Annotated[str, typer.Option("--vocab", help="The vocabulary, comma-separated: a,b,c.")],
    max_len: Annotated[
        int, typer.Option("--max-len", help="The longest input the program accepts.")
    ],
    tokens: Annotated[
        list[str] | None, typer.Argument(help="The input tokens (integers read as integers).")
    ] = None,
) -> None:
    """Type-check PROGRAM for the vocabulary and length, run it on TOKENS, print the output."""
    vocabulary = parse_vocab(vocab)
    check_max_len(max_len)
    values = [parse_token(token) for token in tokens or []]
    check_input(values, vocabulary, max_len)
    parsed = read_program(program)
    info = dsl.infer(parsed, vocabulary, max_len)
    for warning in info.warnings:
        print(f"warning: {warning.render()}", file=sys.stderr)
    [output] = dsl.evaluate(parsed, [values])
    print(" ".join(str(value) for value in output))


def register(app: typer.Typer) -> None:
    app.command("eval")(eval_command)
