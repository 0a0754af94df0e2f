"""`distill run`: from a model file to a verified program and its report."""

from __future__ import annotations

from pathlib import Path

import typer

import dsl
from distill.config import DistillConfig


def run_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model file (.safetensors)."),
    outdir: Path = typer.Option(..., "-o", "--out", help="Directory for the program and report."),
    exhaustive_limit: int = typer.Option(
        DistillConfig.exhaustive_limit,
        help="Check every input when the domain has at most this many "
        "(streamed: about a minute per few million inputs).",
    ),
    samples: int = typer.Option(
        DistillConfig.samples, help="Inputs checked when the domain is over the exhaustive limit."
    ),
    seed: int = typer.Option(DistillConfig.seed, help="Seed of every sample."),
    prove: bool = typer.Option(
        True, help="Prove the readable program equal to the table program with Z3."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Distill MODEL into a readable program verified against it; write it and the evidence to OUTDIR.

    Writes program.rasp, program.py, module.py, report.json, report.html and config.json.
    Exit 1 when no faithful program is found (the best candidate and its counterexample are shown).
    """
    from distill.artifacts import write_outputs
    from distill.circuit import UnsupportedCircuit
    from distill.model_file import load_model
    from distill.pipeline import DistillFailed, distill
    from distill.progress import stage_progress

    config = DistillConfig(
        exhaustive_limit=exhaustive_limit, samples=samples, seed=seed, prove=prove
    )
    model = load_model(model_path)
    with stage_progress(quiet) as progress:
        try:
            result = distill(model, config, progress=progress)
        except UnsupportedCircuit as error:
            typer.echo(f"no program: {error}", err=True)
            raise typer.Exit(1) from None
        except DistillFailed as failure:
            typer.echo(f"no faithful program: {failure}", err=True)
            if failure.candidate is not None:
                typer.echo("best candidate:\n" + dsl.to_source(failure.candidate), err=True)
            raise typer.Exit(1) from None
        progress("writing")
        paths = write_outputs(result, model, outdir, title=model_path.name, config=config)
    typer.echo(dsl.to_source(result.program), nl=False)
    typer.echo(f"verified: {result.check}")
    if result.proof is not None:
        typer.echo(f"readable = table program: {result.proof}")
    typer.echo(f"on the whole domain: {result.whole_domain}")
    typer.echo(f"report: {paths['report.html']}")
    if not result.check.ok:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
