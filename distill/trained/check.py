"""A trained model's program against the model, on the model's task domain.

Every input of length up to N (distill.trained.domain), streamed by length in chunks,
then samples of each longer length up to the longest the model was trained on. Only the
task's read-out positions are compared, each with the task's read-out (argmax, subset
argmax, or the multi-label set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from distill.trained.domain import Domain
from distill.trained.program import label_of
from dsl import ast
from dsl.interpreter import evaluate_arrays

CHUNK = 20_000
KEPT_COUNTEREXAMPLES = 10


@dataclass(frozen=True)
class Counterexample:
    input: tuple
    position: int  # 0-based position in the input
    model: object
    program: object


@dataclass
class LengthAgreement:
    length: int
    inputs: int
    agree: int
    exhaustive: bool

    @property
    def share(self) -> float:
        return self.agree / self.inputs if self.inputs else 1.0


@dataclass
class CheckResult:
    lengths: list[LengthAgreement] = field(default_factory=list)
    counterexamples: list[Counterexample] = field(default_factory=list)

    @property
    def exhaustive(self) -> list[LengthAgreement]:
        return [a for a in self.lengths if a.exhaustive]

    @property
    def sampled(self) -> list[LengthAgreement]:
        return [a for a in self.lengths if not a.exhaustive]

    @property
    def equal_up_to(self) -> int:
        """The longest length up to which every input agrees (0: not even length 1)."""
        n = 0
        for a in self.exhaustive:
            if a.agree != a.inputs:
                break
            n = a.length
        return n

    @property
    def exhaustive_agree(self) -> bool:
        return all(a.agree == a.inputs for a in self.exhaustive)

    @property
    def agreement(self) -> float:
        """Share of the exhaustively checked inputs on which program and model agree."""
        total = sum(a.inputs for a in self.exhaustive)
        return sum(a.agree for a in self.exhaustive) / total if total else 1.0

    def level(self) -> str:
        """The verification level reached, honestly."""
        rows = self.exhaustive
        inputs = sum(a.inputs for a in rows)
        if rows and self.exhaustive_agree:
            return f"exhaustive({rows[-1].length}) on {inputs:,} inputs"
        first = self.counterexamples[0] if self.counterexamples else None
        where = f": first at {list(first.input)}" if first else ""
        return (
            f"refuted ({inputs - sum(a.agree for a in rows):,} of {inputs:,} inputs differ{where})"
        )


def compare(program: ast.Program, model, task, inputs: list[list]) -> list[Counterexample | None]:
    """Per input, None where program and model agree, else the first position where they do
    not, as a Counterexample."""
    answers = task.read_out(model, inputs)
    evaluation = evaluate_arrays(program, inputs)
    outputs = evaluation.outputs()
    results = []
    for tokens, answer, got in zip(inputs, answers, outputs):
        bad = None
        for at, expected in zip(task.positions_of(tokens), answer):
            mine = None if got is None else got[at - 1]
            if mine != label_of(expected):
                bad = Counterexample(tuple(tokens), at - 1, label_of(expected), mine)
                break
        results.append(bad)
    return results


def check_program(
    program: ast.Program,
    model,
    domain: Domain,
    *,
    samples: int,
    seed: int,
    progress: Callable[[str], None] | None = None,
) -> CheckResult:
    """Exhaustive up to N, then `samples` inputs per longer length (see the module doc)."""
    result = CheckResult()
    for length, exhaustive, batches in _batches(domain, model, samples, seed):
        agreement = LengthAgreement(length, 0, 0, exhaustive)
        for batch in batches:
            for bad in compare(program, model, domain.task, batch):
                agreement.inputs += 1
                if bad is None:
                    agreement.agree += 1
                elif len(result.counterexamples) < KEPT_COUNTEREXAMPLES and exhaustive:
                    result.counterexamples.append(bad)
            if progress:
                progress(f"check length {length}: {agreement.inputs:,} inputs")
        result.lengths.append(agreement)
    return result


def _batches(domain: Domain, model, samples: int, seed: int) -> Iterator:
    for length in range(domain.min_len, domain.exhaustive_up_to + 1):
        inputs = domain.exhaustive(length, model)
        yield length, True, (inputs[i : i + CHUNK] for i in range(0, len(inputs), CHUNK))
    for length in range(domain.exhaustive_up_to + 1, domain.longest + 1):
        yield length, False, [domain.sample(length, samples, seed, model)]
