"""`distill bench`: compile -> distill -> score over a suite of ground-truth programs, as a table."""

from __future__ import annotations

import statistics
import sys

import typer
from rich.console import Console
from rich.table import Table

from distill.config import DistillConfig
from distill.errors import BadInputError

SUITES = ("tracr",)


def bench_command(
    suite: str = typer.Argument(
        "tracr", help="The suite: tracr (every tracr test case and lib program)."
    ),
    seeds: str = typer.Option("0,1", help="Rotation seeds, comma-separated."),
    only: str = typer.Option("", help="Run only cases whose name contains this text."),
    prove: bool = typer.Option(True, help="Also prove each program equal to its source with Z3."),
    z3_timeout: float = typer.Option(30.0, help="Seconds for each Z3 proof."),
    exhaustive_limit: int = typer.Option(
        DistillConfig.exhaustive_limit,
        help="Check every input when a domain has at most this many (else 20,000 samples). "
        "13000000 makes every tracr case exhaustive (minutes each for the 12 M-input ones).",
    ),
) -> None:
    """Compile every program of SUITE with tracr, import it rotated, distill it, score it.

    Prints per case and seed: layers, tracr's compile time (cold: jax's caches cleared
    first, as in a new process; and warm: the same compile again), the distill time, its
    ratio to each, the verification level, agreement with the source, size ratio and
    named-comparison recall. Exit 1 if any case fails.
    """
    from distill.circuit import UnsupportedCircuit
    from distill.groundtruth import run_tracr
    from distill.pipeline import DistillFailed

    if suite not in SUITES:
        raise BadInputError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    from distill.tracr_suite import distinct_compilable

    seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    table = Table(title=f"distill bench {suite}")
    for column in (
        "case",
        "seed",
        "layers",
        "compile s",
        "warm s",
        "distill s",
        "ratio",
        "warm ratio",
        "verified",
        "source",
        "size",
        "recall",
    ):
        table.add_column(column)
    ratios, warm_ratios, sizes, recalled, named, failures = [], [], [], 0, 0, 0
    for case in distinct_compilable():
        if only and only not in case.name:
            continue
        for seed in seed_list:
            try:
                run = run_tracr(
                    case.program,
                    vocab=case.vocab,
                    max_seq_len=case.max_seq_len,
                    rotate=seed,
                    causal=case.causal,
                    config=DistillConfig(
                        prove=prove, z3_timeout=z3_timeout, exhaustive_limit=exhaustive_limit
                    ),
                    prove_against_source=prove,
                    z3_timeout=z3_timeout,
                    cold_compile=True,
                )
            except (DistillFailed, UnsupportedCircuit) as error:
                failures += 1
                table.add_row(case.name, str(seed), *[""] * 6, f"FAILED: {error}", "", "", "")
                continue
            score, result = run.score, run.result
            ratio = score.distill_seconds / max(score.compile_seconds, 1e-9)
            warm_ratio = score.distill_seconds / max(score.warm_compile_seconds, 1e-9)
            ratios.append(ratio)
            warm_ratios.append(warm_ratio)
            sizes.append(score.size_ratio)
            if score.named_recall is not None:
                recalled += round(score.named_recall * score.source_named)
                named += score.source_named
            ok = result.check.ok and score.agrees and score.covered
            failures += not ok
            typer.echo(
                f"{case.name} seed {seed}: distill {score.distill_seconds:.2f} s, "
                f"compile {score.compile_seconds:.2f} s (warm {score.warm_compile_seconds:.2f} s), "
                f"{result.check}, proof {result.proof}, "
                f"source: {score.agreement}; Z3 vs source: {score.proof}",
                err=True,
            )
            table.add_row(
                case.name,
                str(seed),
                str(run.model.config.n_layers),
                f"{score.compile_seconds:.2f}",
                f"{score.warm_compile_seconds:.2f}",
                f"{score.distill_seconds:.2f}",
                f"{ratio:.2f}",
                f"{warm_ratio:.1f}",
                str(result.check).split(":")[0],
                "agrees" if score.agrees else "DIFFERS",
                f"{score.size_ratio:.2f}",
                "-" if score.named_recall is None else f"{score.named_recall:.2f}",
            )
    # Piped output gets a wide table rather than names cut to fit 80 columns.
    console = Console() if sys.stdout.isatty() else Console(width=200)
    console.print(table)
    if ratios:
        console.print(
            f"median distill/compile ratio {statistics.median(ratios):.2f} "
            f"(against the warm compile {statistics.median(warm_ratios):.2f}); "
            f"median size ratio {statistics.median(sizes):.2f}; "
            f"named comparisons recovered {recalled}/{named}; failures {failures}"
        )
    if failures:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
