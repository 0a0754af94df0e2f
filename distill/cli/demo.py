"""`distill demo`: the whole path on a bundled example, compile -> distill -> verify -> report."""

from __future__ import annotations

from pathlib import Path

import typer

from distill.cli.progress import stage_progress
from distill.config import DistillConfig

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "reverse.rasp"
VOCAB = ["a", "b", "c", "d"]
MAX_LEN = 5
ROTATE = 0


def demo_command(
    outdir: Path = typer.Option(Path("demo-out"), "-o", "--out", help="Directory for the outputs."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress display."),
) -> None:
    """Compile the bundled reverse.rasp with tracr, rotate its residual basis, distill it back,
    verify it, and write the program and report to OUTDIR."""
    import dsl
    from distill.emit.artifacts import OUTPUT_NAMES, write_outputs
    from distill.files import check_output_dir
    from distill.groundtruth.scoring import run_tracr
    from distill.report.build import score_for_report

    check_output_dir(outdir, OUTPUT_NAMES)

    source = dsl.parse(EXAMPLE.read_text(encoding="utf-8"), filename=str(EXAMPLE))
    typer.echo(f"source ({EXAMPLE.name}):\n{dsl.to_source(source)}")
    config = DistillConfig()
    with stage_progress(quiet, "compiling and distilling") as progress:
        run = run_tracr(
            dsl.to_tracr(source),
            vocab=VOCAB,
            max_seq_len=MAX_LEN,
            rotate=ROTATE,
            config=config,
            progress=progress,
        )
        paths = write_outputs(
            run.result,
            run.model,
            outdir,
            title=f"demo: {EXAMPLE.name}",
            config=config,
            score=score_for_report(run, EXAMPLE.name),
        )
    result, score = run.result, run.score
    typer.echo(f"distilled from the rotated model (no labels):\n{dsl.to_source(result.program)}")
    typer.echo(f"verified: {result.verification}")
    if result.certified:
        typer.echo(f"checked against the model: {result.check}")
    else:
        typer.echo(result.certificate_status)
    if result.proof is not None:
        typer.echo(f"readable = table program: {result.proof}")
    typer.echo(f"against the source: {score.agreement}; Z3: {score.proof}")
    typer.echo(f"compile {score.compile_seconds:.2f} s, distill {score.distill_seconds:.2f} s")
    typer.echo(f"report: {paths['report.html']}")
    if not (result.check.ok and score.agrees):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("demo")(demo_command)
