"""`distill run` on a trained model: the program, its check on every input up to N, the report."""

from __future__ import annotations

from pathlib import Path

import typer

from distill.errors import BadInputError


def run_trained(
    model,
    model_path: Path,
    outdir: Path,
    *,
    exhaustive_limit: int,
    samples: int,
    seed: int,
    quiet: bool,
    min_agreement: float | None,
) -> None:
    """Distill, print the verdict, write the outputs; exit 1 unless the program equals the
    model on every input up to N (see distill.trained.pipeline)."""
    import dsl
    from distill.cli.progress import stage_progress
    from distill.cli.run import checked_config
    from distill.trained.artifacts import domain_note, write_trained_outputs
    from distill.trained.pipeline import distill_trained

    checked_config(exhaustive_limit=exhaustive_limit, samples=samples, seed=seed)
    if min_agreement is not None and not 0.0 < min_agreement <= 1.0:
        raise BadInputError(f"--min-agreement: expected a share in (0, 1], got {min_agreement}")
    with stage_progress(quiet) as progress:
        result = distill_trained(
            model, budget=exhaustive_limit, samples=samples, seed=seed, progress=progress
        )
    config = {
        "exhaustive_limit": exhaustive_limit,
        "exhaustive_up_to": result.domain.exhaustive_up_to,
        "samples": samples,
        "seed": seed,
        "min_agreement": min_agreement,
    }
    if not result.verified:
        typer.echo(f"no faithful program: {result.verification}", err=True)
        for c in result.check.counterexamples:
            typer.echo(
                f"  input {' '.join(map(str, c.input))}: at position {c.position} the model "
                f"gives {c.model!r}, the program {c.program!r}",
                err=True,
            )
        agreement = result.check.agreement
        if min_agreement is None or agreement < min_agreement:
            wanted = "" if min_agreement is None else f" (asked for {min_agreement:.2%})"
            typer.echo(
                f"best program agrees on {agreement:.2%} of the checked inputs{wanted}; "
                "nothing written" + ("" if min_agreement else " (--min-agreement writes it)"),
                err=True,
            )
            raise typer.Exit(1)
    paths = write_trained_outputs(result, model, outdir, title=model_path.name, config=config)
    typer.echo(dsl.to_source(result.program), nl=False)
    typer.echo(f"verified: {result.verification}" if result.verified else domain_note(result))
    for a in result.check.sampled:
        typer.echo(f"sampled beyond N: length {a.length}: {a.agree:,} of {a.inputs:,} agree")
    for i in result.interventions:
        typer.echo(f"interventions {i.component} ({', '.join(i.variables)}): {_figures(i)}")
    typer.echo(f"report: {paths['report.html']}")
    if not result.verified:
        raise typer.Exit(1)


def _figures(i) -> str:
    """An Intervention's figures: the variable set (flagged below FLAG_BELOW), then patched
    alone where that differs (a group over several layers)."""

    def pair(unchanged, follows):
        return ", ".join(
            f"{label} {value:.3f}" if value is not None else f"{label} n/a"
            for label, value in (("unchanged", unchanged), ("follows", follows))
        )

    line = pair(i.unchanged, i.follows) + ("  FLAGGED" if i.flagged else "")
    if i.failed_elsewhere:
        line += f" ({i.failed_elsewhere} failing only at positions other than the patched one)"
    if (i.alone_unchanged, i.alone_follows) != (i.unchanged, i.follows):
        line += f"; patched alone: {pair(i.alone_unchanged, i.alone_follows)}"
        if i.alone_failed_elsewhere:
            line += f" ({i.alone_failed_elsewhere} failing only elsewhere)"
    return line
