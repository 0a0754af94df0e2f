"""A candidate program against the model it was read from, on the claimed domain."""

from __future__ import annotations

import functools

import verify
from distill.checks.sweep import check_exhaustively
from distill.circuit.precondition import PRECONDITION, precondition_holds
from distill.config import DistillConfig
from distill.executor import InProcess
from distill.models.family import Model
from distill.models.numerics import RESOLUTION
from dsl.domain import count_inputs, sample_inputs
from verify.check import check as check_program


def extent(vocab, max_len, config: DistillConfig) -> dict:
    """How the domain is checked: every input when it is small enough, else seeded samples."""
    exhaustive = count_inputs(vocab, max_len) <= config.exhaustive_limit
    return {"exhaustive": exhaustive, "samples": config.samples, "seed": config.seed}


def check_against_model(
    program, oracle, model: Model, config: DistillConfig, reference, executor=None, progress=None
) -> tuple[verify.Verdict, verify.Verdict | None]:
    """The program against the model: (on the claimed domain, on the whole domain or None).

    The claimed domain is the inputs where `reference` meets the precondition.
    Every input, streamed as arrays, when the domain is within the exhaustive
    limit (both verdicts from one pass); else seeded samples, and the whole-domain
    verdict is left to the caller. The chunks or sample batches run through `executor`
    (distill.executor: in-process by default); `progress(done, total)` counts them.
    """
    vocab, max_len = list(model.config.vocab), model.config.max_seq_len
    how = extent(vocab, max_len, config)
    if how["exhaustive"]:
        return check_exhaustively(program, reference, model, executor, progress)
    inputs = sample_inputs(vocab, max_len, config.samples, seed=config.seed)
    # The precondition is read off the program in one batch, not once per input.
    claimed = {tuple(x) for x, ok in zip(inputs, _precondition_batches(reference, inputs)) if ok}
    check = check_program(
        program,
        oracle,
        vocab=vocab,
        max_seq_len=max_len,
        predicate=lambda x: tuple(x) in claimed,
        predicate_description=PRECONDITION,
        undefined="refute",
        tolerance=RESOLUTION,
        map_batches=batch_map(executor, progress),
        **how,
    )
    return check, None


def batch_map(executor=None, progress=None):
    """verify.check's `map_batches` that runs the batches through `executor`."""
    if executor is None and progress is None:
        return map
    return functools.partial((executor or InProcess()).map, progress=progress)


class RememberingOracle:
    """The model's predictions, each input run once per distillation (checks share them)."""

    def __init__(self, model: Model):
        self.model = model
        self.known: dict[tuple, list] = {}

    def remember(self, inputs: list[list], evidence) -> None:
        """Take the predictions the traces already made."""
        rows: dict[int, list] = {}
        for index, value in zip(evidence.input_of.tolist(), evidence.predictions):
            rows.setdefault(index, []).append(value)
        for index, tokens in enumerate(inputs):
            self.known[tuple(tokens)] = rows[index]

    def __call__(self, inputs: list[list]) -> list[list]:
        missing = [x for x in inputs if tuple(x) not in self.known]
        if missing:
            for x, out in zip(missing, self.model.predict(missing)):
                self.known[tuple(x)] = out
        return [self.known[tuple(x)] for x in inputs]


def _precondition_batches(program, inputs: list[list], batch_size: int = 8192) -> list[bool]:
    holds: list[bool] = []
    for start in range(0, len(inputs), batch_size):
        holds += precondition_holds(program, inputs[start : start + batch_size])
    return holds
