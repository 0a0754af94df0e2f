"""`distill bench`: compile -> distill -> score over a suite of ground-truth programs, as a table."""

from __future__ import annotations

import statistics
import sys

import typer

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
) -> None:
    """Compile every program of SUITE with tracr, import it rotated, distill it, score it.

    Prints per case and seed: layers, tracr's compile time (cold: jax's caches cleared
    first, as in a new process; and warm: the same compile again), the distill time, its
    ratio to each, the verification level, agreement with the source, size ratio and
    named-comparison recall. Exit 1 if any case fails.
    """
    from rich.console import Console
    from rich.table import Table

    from distill.circuit.discovery import UnsupportedCircuit
    from distill.groundtruth.scoring import run_tracr
    from distill.pipeline import DistillFailed

    if suite not in SUITES:
        raise BadInputError(f"unknown suite {suite!r}; expected one of {', '.join(SUITES)}")
    from distill.groundtruth.tracr_suite import distinct_compilable, mlp_exactness, scaled_up

    if scale not in ("small", "large"):
        raise BadInputError(f"--scale: expected small or large, got {scale!r}")
    seed_list = parse_seeds(seeds)
    if z3_timeout <= 0:
        raise BadInputError(
            f"--z3-timeout: expected a positive number of seconds, got {z3_timeout}"
        )
    if exhaustive_limit < 0:
        raise BadInputError(f"--exhaustive-limit: expected 0 or more, got {exhaustive_limit}")
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
        "not certified because",
        "source",
        "size",
        "recall",
    ):
        table.add_column(column)
    ratios, warm_ratios, sizes, recalled, named, failures = [], [], [], 0, 0, 0
    certified = proved = proofs = runs = 0
    for case in distinct_compilable():
        if only and only not in case.name:
            continue
        if scale == "large":
            case = scaled_up(case)
        for seed in seed_list:
            runs += 1
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
                    mlp_exactness=mlp_exactness(case.max_seq_len),
                )
            except (DistillFailed, UnsupportedCircuit) as error:
                failures += 1
                table.add_row(case.name, str(seed), *[""] * 6, f"FAILED: {error}", "", "", "", "")
                continue
            score, result = run.score, run.result
            certified += result.certified
            if result.proof is not None:
                proofs += 1
                proved += result.proof.level == "proved"
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
                f"{result.verification} ({result.certificate_status}), proof {result.proof}, "
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
                result.verification.split(":")[0],
                ""
                if result.certified
                else result.certificate_status.removeprefix("not certified: "),
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
        console.print(
            f"certified {certified}/{runs}; readable = table program proved {proved}/{proofs}"
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
