"""`distill verify`: check a `.rasp` program against a model file on concrete inputs."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import typer

from distill.cli.options import RAY_HELP, WORKERS_HELP, check_samples, read_program, sweep_executor
from distill.errors import BadInputError


def verify_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model file (.safetensors)."),
    program_path: Path = typer.Argument(..., metavar="PROGRAM", help="The .rasp program to check."),
    exhaustive: bool = typer.Option(
        False, "--exhaustive", help="Check every input up to the model's length."
    ),
    samples: int = typer.Option(None, "--samples", help="Check K seeded random inputs instead."),
    seed: int = typer.Option(0, "--seed", help="The sampling seed (with --samples)."),
    tolerance: float | None = typer.Option(
        None,
        "--tolerance",
        help="Numbers closer than this are equal (default: the numerical resolution, 1e-4, "
        "under which the model's float64 rounding is bounded).",
    ),
    workers: int | None = typer.Option(None, "--workers", metavar="N", help=WORKERS_HELP),
    ray_address: str | None = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
) -> None:
    """Compare PROGRAM with MODEL on the model's vocabulary and lengths 1..max_seq_len.

    Without --exhaustive or --samples, every input is checked when there are at
    most 200,000 of them, else 2,000 seeded samples. Inputs on which the program
    is undefined are excluded and counted. Exit 0 when they agree, 1 with a
    counterexample when they do not.
    """
    if exhaustive and samples is not None:
        raise BadInputError("--exhaustive and --samples exclude each other: give one")
    if samples is not None:
        check_samples(samples)
    if tolerance is not None and (not math.isfinite(tolerance) or tolerance < 0):
        raise BadInputError(f"--tolerance: expected a finite number >= 0, got {tolerance:g}")
    program = read_program(program_path)

    import dsl
    from distill.models.file_format import load_model
    from distill.models.numerics import RESOLUTION, in_float64
    from verify import check
    from verify.check import DEFAULT_SAMPLES

    model = in_float64(load_model(model_path))
    config = model.config
    info = dsl.infer(program, list(config.vocab), config.max_seq_len)
    for warning in info.warnings:
        print(f"warning: {warning.render()}", file=sys.stderr)
    with sweep_executor(workers, ray_address) as executor:
        verdict = check(
            program,
            model.predict,
            vocab=config.vocab,
            max_seq_len=config.max_seq_len,
            exhaustive=True if exhaustive else (False if samples is not None else None),
            samples=samples or DEFAULT_SAMPLES,
            seed=seed,
            tolerance=RESOLUTION if tolerance is None else tolerance,
            map_batches=executor.map,
        )
    print(verdict)
    for example in verdict.counterexamples:
        print(f"counterexample: {example}")
    if verdict.undefined_inputs:
        print(
            f"note: {verdict.undefined_inputs:,} inputs excluded: the program is undefined on them"
        )
    if not verdict.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("verify")(verify_command)
