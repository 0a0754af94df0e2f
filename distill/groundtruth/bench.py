"""One row of `distill bench`: a tracr case compiled, imported rotated, distilled and scored.

A row is plain data (its table cells, its log line and the figures the summary
adds up), so the cases x seeds of a bench run through distill.executor: each
worker looks its case up by name and returns its row.
"""

from __future__ import annotations

from dataclasses import dataclass

from distill.config import DistillConfig

COLUMNS = (
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
)
TIMING_COLUMNS = ("compile s", "warm s", "distill s", "ratio", "warm ratio")
"""Cells that are measured times: they differ from run to run, everything else does not."""


@dataclass(frozen=True)
class BenchOptions:
    prove: bool = True
    z3_timeout: float = 30.0
    exhaustive_limit: int = DistillConfig.exhaustive_limit
    scale: str = "small"


@dataclass(frozen=True)
class BenchRow:
    cells: tuple[str, ...]
    """The table row, one cell per COLUMNS."""
    log: str | None
    """The line printed while the bench runs (None for a failed case)."""
    failed: bool
    certified: bool = False
    proof_level: str | None = None
    ratio: float | None = None
    warm_ratio: float | None = None
    size_ratio: float | None = None
    recalled: int = 0
    named: int = 0


def bench_cases(only: str = "") -> list[str]:
    """Names of the suite's cases (those containing `only`)."""
    from distill.groundtruth.tracr_suite import distinct_compilable

    return [case.name for case in distinct_compilable() if not only or only in case.name]


def bench_case(options: BenchOptions, task: tuple[str, int]) -> BenchRow:
    """The row of case `name` imported with rotation `seed` (task = (name, seed))."""
    from distill.circuit.discovery import UnsupportedCircuit
    from distill.groundtruth.scoring import run_tracr
    from distill.groundtruth.tracr_suite import distinct_compilable, mlp_exactness, scaled_up
    from distill.pipeline import DistillFailed

    name, seed = task
    case = next(c for c in distinct_compilable() if c.name == name)
    if options.scale == "large":
        case = scaled_up(case)
    try:
        run = run_tracr(
            case.program,
            vocab=case.vocab,
            max_seq_len=case.max_seq_len,
            rotate=seed,
            causal=case.causal,
            config=DistillConfig(
                prove=options.prove,
                z3_timeout=options.z3_timeout,
                exhaustive_limit=options.exhaustive_limit,
            ),
            prove_against_source=options.prove,
            z3_timeout=options.z3_timeout,
            cold_compile=True,
            mlp_exactness=mlp_exactness(case.max_seq_len),
        )
    except (DistillFailed, UnsupportedCircuit) as error:
        cells = (case.name, str(seed), *[""] * 6, f"FAILED: {error}", "", "", "", "")
        return BenchRow(cells=cells, log=None, failed=True)
    score, result = run.score, run.result
    ratio = score.distill_seconds / max(score.compile_seconds, 1e-9)
    warm_ratio = score.distill_seconds / max(score.warm_compile_seconds, 1e-9)
    log = (
        f"{case.name} seed {seed}: distill {score.distill_seconds:.2f} s, "
        f"compile {score.compile_seconds:.2f} s (warm {score.warm_compile_seconds:.2f} s), "
        f"{result.verification} ({result.certificate_status}), proof {result.proof}, "
        f"source: {score.agreement}; Z3 vs source: {score.proof}"
    )
    cells = (
        case.name,
        str(seed),
        str(run.model.config.n_layers),
        f"{score.compile_seconds:.2f}",
        f"{score.warm_compile_seconds:.2f}",
        f"{score.distill_seconds:.2f}",
        f"{ratio:.2f}",
        f"{warm_ratio:.1f}",
        result.verification.split(":")[0],
        "" if result.certified else result.certificate_status.removeprefix("not certified: "),
        ("agrees" if score.agrees else "DIFFERS") + ("" if score.covered else ", not all claimed"),
        f"{score.size_ratio:.2f}",
        "-" if score.named_recall is None else f"{score.named_recall:.2f}",
    )
    recalled = named = 0
    if score.named_recall is not None:
        recalled = round(score.named_recall * score.source_named)
        named = score.source_named
    return BenchRow(
        cells=cells,
        log=log,
        failed=not (result.check.ok and score.agrees and score.covered),
        certified=result.certified,
        proof_level=None if result.proof is None else result.proof.level,
        ratio=ratio,
        warm_ratio=warm_ratio,
        size_ratio=score.size_ratio,
        recalled=recalled,
        named=named,
    )
