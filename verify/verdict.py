"""What a check returns: the level reached, on which domain, and the evidence.

Levels, strongest first (DESIGN.md, Verification levels): `proved` (Z3, every
input up to a length), `exhaustive` (every input of a bounded domain),
`sampled` (seeded random inputs), then the failures `refuted` (with
counterexamples) and `unknown` (with the reason). Unknown is a normal answer,
never an exception, and never counts as a pass.
"""

from __future__ import annotations

from dataclasses import dataclass

PROVED = "proved"
EXHAUSTIVE = "exhaustive"
SAMPLED = "sampled"
REFUTED = "refuted"
UNKNOWN = "unknown"

# How a proof was reached: part by part (verify.by_parts: each part equals its
# counterpart on every combination of the values it reads), or by Z3 one length at a time.
BY_PARTS = "by parts"
BY_Z3 = "Z3"

LEVELS = (PROVED, EXHAUSTIVE, SAMPLED, REFUTED, UNKNOWN)
PASSING_LEVELS = (PROVED, EXHAUSTIVE, SAMPLED)


@dataclass(frozen=True)
class Counterexample:
    """An input on which two computations disagree."""

    input: tuple
    """The token sequence."""
    expected: tuple | None
    """The reference output (the oracle's, or the first program's); None where it is undefined."""
    got: tuple | None
    """The checked program's output; None where it is undefined."""
    position: int | None
    """The first position where the outputs differ; None when one side is undefined."""
    note: str = ""
    """Why the outputs differ when it is not a value (e.g. "undefined for the program")."""

    def __str__(self) -> str:
        shown = f"input {list(self.input)}"
        if self.position is not None and self.expected is not None and self.got is not None:
            return (
                f"{shown} position {self.position}: "
                f"expected {self.expected[self.position]!r}, got {self.got[self.position]!r}"
            )
        return f"{shown}: {self.note or 'outputs differ'} (expected {_show(self.expected)}, got {_show(self.got)})"


def _show(output: tuple | None) -> str:
    return "undefined" if output is None else repr(list(output))


@dataclass(frozen=True)
class Verdict:
    """The result of a check. `ok` is true only for proved, exhaustive and sampled."""

    level: str
    """One of LEVELS."""
    max_seq_len: int
    """n: inputs of length up to n were considered."""
    domain: str = ""
    """The domain checked (vocab, lengths, restriction), in words."""
    inputs_covered: int | None = None
    """How many inputs were compared (concrete checks)."""
    samples: int | None = None
    """k, for a sampled check."""
    seed: int | None = None
    """The sampling seed, for a sampled check."""
    tolerance: float | None = None
    """The absolute tolerance used to compare numbers (concrete checks)."""
    undefined_rule: str = ""
    """How inputs on which a program is undefined were treated."""
    undefined_inputs: int = 0
    """How many inputs that rule set aside (concrete checks)."""
    counterexamples: tuple[Counterexample, ...] = ()
    """The first disagreements found (refuted only)."""
    reason: str = ""
    """Why the check could not decide (unknown only)."""
    seconds: float = 0.0
    """Wall-clock time the check took."""
    method: str = ""
    """How a proof was reached (proved only): BY_PARTS or BY_Z3."""

    def __post_init__(self):
        if self.level not in LEVELS:
            raise ValueError(f"unknown verification level {self.level!r}")

    @property
    def ok(self) -> bool:
        return self.level in PASSING_LEVELS

    def __str__(self) -> str:
        if self.level == PROVED:
            return f"proved({self.max_seq_len})"
        if self.level == EXHAUSTIVE:
            return f"exhaustive({self.max_seq_len}): {self.inputs_covered:,} inputs"
        if self.level == SAMPLED:
            return f"sampled({self.samples}, seed={self.seed})"
        if self.level == REFUTED:
            return f"refuted: {self.counterexamples[0]}" if self.counterexamples else "refuted"
        return f"unknown: {self.reason}"

    def describe(self) -> str:
        """Several lines: the summary, the domain, the rules used, every counterexample."""
        lines = [str(self)]
        if self.domain:
            lines.append(f"domain: {self.domain}")
        if self.method:
            lines.append(f"method: {self.method}")
        if self.undefined_rule:
            lines.append(f"undefined inputs: {self.undefined_rule}")
        if self.undefined_inputs:
            lines.append(f"inputs set aside as undefined: {self.undefined_inputs:,}")
        if self.tolerance is not None:
            lines.append(f"numeric tolerance: {self.tolerance:g}")
        lines.extend(f"counterexample: {example}" for example in self.counterexamples)
        lines.append(f"time: {self.seconds:.2f} s")
        return "\n".join(lines)
