"""`distill predict`: run a model file on one input and print its output sequence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from distill.cli.options import parse_token


def format_value(value) -> str:
    # Numerical outputs carry float32 noise; 6 significant digits hide it.
    return f"{value:.6g}" if isinstance(value, float) else str(value)


def predict_command(
    model_path: Annotated[
        Path, typer.Argument(metavar="MODEL", help="A model file (.safetensors).")
    ],
    tokens: Annotated[
        list[str] | None, typer.Argument(help="The input tokens (integers read as integers).")
    ] = None,
) -> None:
    """Run MODEL on TOKENS (BOS is added) and print the output at each token, space-separated."""
    from distill.errors import BadInputError
    from distill.models.file_format import load_model

    if not tokens:
        raise BadInputError(
            "no input tokens given (write them after MODEL: distill predict MODEL a b c)"
        )
    model = load_model(model_path)
    [output] = model.predict([[parse_token(token) for token in tokens]])
    print(" ".join(format_value(value) for value in output))


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
