"""`distill eval`: run a `.rasp` program on one input and print its output sequence."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import check_input, check_max_len, parse_token, parse_vocab, read_program


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
    import dsl

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
