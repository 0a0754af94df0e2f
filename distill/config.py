"""The pipeline's configuration (light to import: the command line reads its defaults)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DistillConfig:
    """How hard to look and how much to check."""

    evidence_inputs: int = 20_000
    """Most inputs traced to read tables from (every input when the domain is that small)."""
    exhaustive_limit: int = 200_000
    """Check the program on every input when the domain has at most this many."""
    samples: int = 20_000
    """Otherwise check this many seeded random inputs."""
    seed: int = 0
    """Seed of every sample drawn."""
    max_rounds: int = 3
    """Rounds of the counterexample loop."""
    z3_timeout: float = 120.0
    """Seconds for the proof that the readable program equals the table program."""
    prove: bool = True
    """Whether to run the Z3 proof at all."""
