"""`distill predict`: run a model file on one input and print its output sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import parse_token


def format_value(value) -> str:
    # Numerical outputs carry float32 noise; 6 significant digits hide it.
    if isinstance(value, tuple):  # a multi-label read-out: the set of tokens scored > 0
        return "{" + ",".join(map(format_value, value)) + "}"
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def predict_command(
    model_path: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A model file (.safetensors).")
    ],
    tokens: Annotated[
        list[str] | None, typer.Argument(help="The input tokens (integers read as integers).")
    ] = None,
) -> None:
    """Run MODEL on TOKENS (BOS is added) and print the output at each token, space-separated.

    A model with a task prints only its read-out positions, read as the task says (a
    multi-label output is the set of tokens scored above 0, written {a,b}).
    """
    from distill.errors import BadInputError
    from distill.models.file_format import load_model
    from distill.models.task import Task

    if not tokens:
        raise BadInputError(
            "no input tokens given (write them after MODEL: distill predict MODEL a b c)"
        )
    model = load_model(model_path)
    inputs = [[parse_token(token) for token in tokens]]
    if "task" in model.records:
        task = Task.from_record(model.records["task"])
        task.check_matches(model.config)
        model.encode(inputs)  # refuses a token outside the vocab, or too many, by name
        [output] = task.read_out(model, inputs)
    else:
        [output] = model.predict(inputs)
    print(" ".join(format_value(value) for value in output))


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
