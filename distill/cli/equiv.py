"""`distill equiv`: prove two `.rasp` programs equal with Z3, for every input up to a length."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from distill.cli.options import check_max_len, parse_vocab, read_program
from distill.errors import BadInputError

# Z3 takes its timeout in milliseconds as a 32-bit number: at most about 49 days.
MAX_TIMEOUT = 4_000_000


def equiv_command(
    first: Path = typer.Argument(..., metavar="A", help="The first .rasp program."),
    second: Path = typer.Argument(..., metavar="B", help="The second .rasp program."),
    vocab: str = typer.Option(..., "--vocab", help="The vocabulary, comma-separated: a,b,c."),
    max_len: int = typer.Option(..., "--max-len", help="Prove for every input of length 1..N."),
    timeout: float = typer.Option(60.0, "--timeout", help="Seconds the solver may take in all."),
    single_valued: bool = typer.Option(
        False,
        "--single-valued-aggregates",
        help="Only claim equality where every categorical aggregate selects one distinct value.",
    ),
) -> None:
    """Prove A and B compute the same output on every input (Z3).

    Equal means: undefined on the same inputs, and equal wherever defined.
    Exit 0 when proved; 1 with a counterexample when refuted, and 1 with the
    reason when Z3 cannot decide (a check that did not pass).
    """
    vocabulary = parse_vocab(vocab)
    check_max_len(max_len)
    if not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT):
        raise BadInputError(
            f"--timeout: expected a number of seconds above 0 and at most {MAX_TIMEOUT:,}, "
            f"got {timeout}"
        )

    import dsl
    from verify import equivalent
    from verify.equivalence import SINGLE_VALUED_AGGREGATES

    programs = [read_program(path) for path in (first, second)]
    for program in programs:
        for warning in dsl.infer(program, vocabulary, max_len).warnings:
            print(f"warning: {warning.render()}", file=sys.stderr)
    verdict = equivalent(
        *programs,
        vocab=vocabulary,
        max_seq_len=max_len,
        timeout=timeout,
        precondition=SINGLE_VALUED_AGGREGATES if single_valued else None,
    )
    print(verdict)
    for example in verdict.counterexamples:
        print(f"counterexample: {example} (A gives the expected output, B the other)")
    if not verdict.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("equiv")(equiv_command)
