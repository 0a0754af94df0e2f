"""`distill run`: from a model file to a verified program and its report."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import typer

from distill.cli.options import RAY_HELP, WORKERS_HELP, sweep_executor
from distill.cli.progress import stage_progress
from distill.config import DistillConfig
from distill.errors import BadInputError
from distill.trained.domain import EXHAUSTIVE_BUDGET


def run_command(
    model_path: Path = typer.Argument(..., metavar="MODEL", help="A model file (.safetensors)."),
    outdir: Path = typer.Option(..., "-o", "--out", help="Directory for the program and report."),
    exhaustive_limit: int | None = typer.Option(
        None,
        help="Check every input when the domain has at most this many "
        "(streamed: about a minute per few million inputs). Default: "
        f"{DistillConfig.exhaustive_limit:,} for a compiled model; for a trained one "
        f"{EXHAUSTIVE_BUDGET:,}, every input up to the longest length that fits.",
    ),
    samples: int = typer.Option(
        DistillConfig.samples, help="Inputs checked when the domain is over the exhaustive limit."
    ),
    seed: int = typer.Option(DistillConfig.seed, help="Seed of every sample."),
    prove: bool = typer.Option(
        True, help="Prove the readable program equal to the table program with Z3."
    ),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
    workers: int | None = typer.Option(None, "--workers", metavar="N", help=WORKERS_HELP),
    ray_address: str | None = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    min_agreement: float | None = typer.Option(
        None,
        "--min-agreement",
        metavar="SHARE",
        help="Trained models: when no program equals the model, still write the best one if "
        "it agrees on at least this share of the checked inputs, labelled approximate "
        "(never verified; the exit status stays 1).",
    ),
) -> None:
    """Distill MODEL into a readable program verified against it; write it and the evidence to OUTDIR.

    Writes program.rasp, program.py, module.py, report.json, report.html and config.json.
    Exit 1 when no faithful program is found (the best candidate and its counterexample are shown).
    """
    import dsl
    from distill.emit.artifacts import OUTPUT_NAMES, write_outputs
    from distill.files import check_output_dir
    from distill.models.file_format import load_model
    from distill.trained.pipeline import distilled_as_trained

    check_output_dir(outdir, OUTPUT_NAMES)
    model = load_model(model_path)
    if distilled_as_trained(model):
        from distill.cli.run_trained import run_trained

        run_trained(
            model,
            model_path,
            outdir,
            exhaustive_limit=EXHAUSTIVE_BUDGET if exhaustive_limit is None else exhaustive_limit,
            samples=samples,
            seed=seed,
            quiet=quiet,
            min_agreement=min_agreement,
        )
        return
    # The compiled path's modules (and Z3's) only where a compiled model needs them: a
    # trained model's run is timed against its training, which imports none of them.
    from distill.circuit.discovery import UnsupportedCircuit
    from distill.pipeline import DistillFailed, distill

    limit = DistillConfig.exhaustive_limit if exhaustive_limit is None else exhaustive_limit
    config = checked_config(exhaustive_limit=limit, samples=samples, seed=seed)
    config = dataclasses.replace(config, prove=prove)
    check_work(model.config, config)
    with sweep_executor(workers, ray_address) as executor, stage_progress(quiet) as progress:
        try:
            result = distill(model, config, progress=progress, executor=executor)
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
    typer.echo(f"verified: {result.verification}")
    if result.certified:
        typer.echo(f"checked against the model: {result.check}")
    elif result.certificate is not None:
        typer.echo(
            f"not certified: {result.certificate.failure or 'the readable form is not proved'}"
        )
    if result.proof is not None:
        how = f" ({result.proof.method})" if result.proof.method else ""
        typer.echo(f"readable = table program: {result.proof}{how}")
    typer.echo(f"on the whole domain: {result.whole_domain}")
    typer.echo(f"report: {paths['report.html']}")
    if not result.check.ok:
        raise typer.Exit(1)


def checked_config(*, exhaustive_limit: int, samples: int, seed: int) -> DistillConfig:
    """The run's config; options that would check nothing (zero evidence is never a pass)
    or cannot seed a generator are bad input."""
    if exhaustive_limit < 0:
        raise BadInputError(f"--exhaustive-limit: expected 0 or more, got {exhaustive_limit}")
    if samples < 1:
        raise BadInputError(
            f"--samples: expected at least 1 (a check on no inputs proves nothing), got {samples}"
        )
    if seed < 0:
        raise BadInputError(f"--seed: expected 0 or more, got {seed}")
    return DistillConfig(exhaustive_limit=exhaustive_limit, samples=samples, seed=seed)


def check_work(spec, config: DistillConfig) -> None:
    """Refuse a model whose distillation would do more work than distill.models.limits allows."""
    from distill.models import limits

    problems = limits.run_work_problems(
        n_layers=spec.n_layers,
        d_model=spec.d_model,
        n_heads=spec.n_heads,
        d_mlp=spec.d_mlp,
        n_ctx=spec.n_ctx,
        vocab_size=len(spec.vocab),
        max_seq_len=spec.max_seq_len,
        evidence_inputs=config.evidence_inputs,
        exhaustive_limit=config.exhaustive_limit,
        samples=config.samples,
    )
    if problems:
        raise BadInputError(f"model too large to distill: {problems[0]}")


def register(app: typer.Typer) -> None:
    app.command("run")(run_command)
