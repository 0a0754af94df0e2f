"""`distill bench`: compile -> distill -> score over a suite of ground-truth programs, as a table."""

from __future__ import annotations

import statistics
import sys

import typer

from distill.cli.options import RAY_HELP, WORKERS_HELP, sweep_executor
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
    scale: str = typer.Option(
        "small",
        help="small: each case's own vocab and length; large: vocab grown to 10 values where "
        "the program allows it, max-len 10 (realistic domains, certified when the bounds hold).",
    ),
    exhaustive_limit: int = typer.Option(
        DistillConfig.exhaustive_limit,
        help="Check every input when a domain has at most this many (else 20,000 samples). "
        "13000000 makes every tracr case exhaustive (minutes each for the 12 M-input ones).",
    ),
    workers: int | None = typer.Option(None, "--workers", metavar="N", help=WORKERS_HELP),
    ray_address: str | None = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
) -> None:
    """Compile every program of SUITE with tracr, import it rotated, distill it, score it.

    Prints per case and seed: layers, tracr's compile time (cold: jax's caches cleared
    first, as in a new process; and warm: the same compile again), the distill time, its
    ratio to each, the verification level, agreement with the source, size ratio and
    named-comparison recall. Exit 1 if any case fails.
    """
    import functools

    from rich.console import Console
    from rich.table import Table

    from distill.groundtruth.bench import COLUMNS, BenchOptions, bench_case, bench_cases

    if suite not in SUITES:
        raise BadInputError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    if scale not in ("small", "large"):
        raise BadInputError(f"--scale: expected small or large, got {scale!r}")
    seed_list = parse_seeds(seeds)
    if z3_timeout <= 0:
        raise BadInputError(
            f"--z3-timeout: expected a positive number of seconds, got {z3_timeout}"
        )
    if exhaustive_limit < 0:
        raise BadInputError(f"--exhaustive-limit: expected 0 or more, got {exhaustive_limit}")
    options = BenchOptions(
        prove=prove, z3_timeout=z3_timeout, exhaustive_limit=exhaustive_limit, scale=scale
    )
    tasks = [(name, seed) for name in bench_cases(only) for seed in seed_list]
    table = Table(title=f"distill bench {suite}")
    for column in COLUMNS:
        table.add_column(column)
    ratios, warm_ratios, sizes, recalled, named, failures = [], [], [], 0, 0, 0
    certified = proved = proofs = 0
    with sweep_executor(workers, ray_address) as executor:
        # Rows come back in case order whichever worker finishes first: the table is the same.
        for row in executor.map(functools.partial(bench_case, options), tasks):
            table.add_row(*row.cells)
            failures += row.failed
            if row.log is None:
                continue
            typer.echo(row.log, err=True)
            certified += row.certified
            if row.proof_level is not None:
                proofs += 1
                proved += row.proof_level == "proved"
            ratios.append(row.ratio)
            warm_ratios.append(row.warm_ratio)
            sizes.append(row.size_ratio)
            recalled += row.recalled
            named += row.named
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
        console.print(
            f"certified {certified}/{len(tasks)}; readable = table program proved {proved}/{proofs}"
        )
    if failures:
        raise typer.Exit(1)


def parse_seeds(text: str) -> list[int]:
    """`0,1` -> [0, 1]; anything but comma-separated non-negative integers is bad input."""
    items = [item.strip() for item in text.split(",")]
    if not all(item.isdigit() for item in items):
        raise BadInputError(
            f"--seeds: expected comma-separated non-negative integers like 0,1, got {text!r}"
        )
    return [int(item) for item in items]


def register(app: typer.Typer) -> None:
    app.command("bench")(bench_command)
