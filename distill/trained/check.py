"""A trained model's program against the model, on the model's task domain.

Every input of length up to N (distill.trained.domain), streamed by length in chunks,
then samples of each longer length up to the longest the model was trained on. Only the
task's read-out positions are compared, each with the task's read-out (argmax, subset
argmax, or the multi-label set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import torch

from distill.trained.domain import Domain
from distill.trained.program import label_of
from dsl import ast
from dsl.interpreter import evaluate_arrays

CHUNK = 20_000
MAX_LABEL_BITS = 62  # a multi-label read-out's set is coded as bits of an int64
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


class ModelAnswers:
    """The model's decoded read-out, computed once per list of inputs: a distillation
    compares several programs with the model on the same inputs, and the model's forward
    pass over the domain costs more than evaluating a program there. Lists are held by
    identity (and kept alive, so an identity is never reused), including the check's own
    batches of each length."""

    def __init__(self, model, task):
        self.model, self.task = model, task
        self._codes: dict[int, tuple[list, np.ndarray, dict]] = {}
        self._batches: dict[tuple, list] = {}

    def codes(self, inputs: list[list]) -> tuple[np.ndarray, dict]:
        kept = self._codes.get(id(inputs))
        if kept is None or kept[0] is not inputs:
            kept = (inputs, *_model_codes(self.model, self.task, inputs))
            self._codes[id(inputs)] = kept
        return kept[1], kept[2]

    def batches(self, domain: Domain, samples: int, seed: int) -> Iterator:
        """`_batches`, each length's made once and then kept."""
        key = (domain.min_len, domain.exhaustive_up_to, domain.longest, samples, seed)
        kept = self._batches.setdefault(key, [])
        yield from kept
        for length, exhaustive, batches in _batches(domain, self.model, samples, seed, len(kept)):
            kept.append((length, exhaustive, list(batches)))
            yield kept[-1]


def compare(
    program: ast.Program, model, task, inputs: list[list], answers: ModelAnswers | None = None
) -> list[Counterexample | None]:
    """Per input, None where program and model agree, else the first position where they do
    not, as a Counterexample.

    Both sides become codes of labels, compared as arrays: the model's decoded output at
    each position (its argmax, subset argmax, or multi-label set; from `answers` where
    given) and the program's output mapped to the same codes (a label the model never gives
    gets none); an input is looked at one by one only where they differ. A numerical model
    is compared value by value."""
    if model.config.output_kind == "numerical" or (
        task.readout["kind"] not in ("argmax", "subset_argmax")
        and len(model.config.output_values) > MAX_LABEL_BITS
    ):
        return _compare_values(program, model, task, inputs)
    evaluation = evaluate_arrays(program, inputs)
    output = evaluation.output
    width = output.codes.shape[1]
    model_codes, label_of_code = (answers or ModelAnswers(model, task)).codes(inputs)
    code_of_label = {label: code for code, label in label_of_code.items()}
    table_codes = np.array([_code_or_none(code_of_label, v) for v in output.table], dtype=np.int64)
    program_codes = table_codes[output.codes]
    read = _read_positions(task, inputs, evaluation.mask[:, :width])
    differ = read & (program_codes != model_codes[:, 1 : width + 1])
    undefined = np.zeros(len(inputs), dtype=bool)
    undefined[list(output.failures)] = True
    results: list[Counterexample | None] = [None] * len(inputs)
    for b in np.flatnonzero((differ.any(1) | undefined) & read.any(1)).tolist():
        at = int(np.argmax(read[b] if undefined[b] else differ[b]))
        mine = None if undefined[b] else output.table[output.codes[b, at]]
        expected = label_of_code[int(model_codes[b, at + 1])]
        results[b] = Counterexample(tuple(inputs[b]), at, expected, mine)
    return results


def _code_or_none(code_of_label: dict, value) -> int:
    try:
        return code_of_label.get(value, -1)
    except TypeError:  # an unhashable value is no label the model gives
        return -1


def _model_codes(model, task, inputs, batch_size: int = 4096) -> tuple[np.ndarray, dict]:
    """([batch, pos] code of the model's decoded output at each position (BOS at 0), code ->
    label): argmax and subset argmax code the value's index, a multi-label read-out the
    set of values switched on as bits."""
    kind = task.readout["kind"]
    values, columns = task.read_columns(model.config)
    columns = torch.tensor(columns)
    bits = 2**columns  # a multi-label code's bits are the columns switched on
    rows = []
    for start in range(0, len(inputs), batch_size):
        ids, mask = model.encode(inputs[start : start + batch_size])
        with torch.no_grad():
            out = model(ids, mask)
        if kind == "argmax":
            codes = model.output_indices(out)
        elif kind == "subset_argmax":
            codes = model.output_indices(out[..., columns])
        else:
            codes = ((out[..., columns] > 0).to(torch.int64) * bits).sum(-1)
        rows.append(codes.numpy().astype(np.int64))
    width = max((r.shape[1] for r in rows), default=1)
    codes = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]))) for r in rows])
    everything = model.config.output_values
    label_of_code = {}
    for code in np.unique(codes).tolist():
        if kind == "multilabel":
            on = tuple(v for i, v in enumerate(everything) if code >> i & 1)
            label_of_code[code] = label_of(on)
        else:
            label_of_code[code] = label_of(values[code])
    return codes, label_of_code


def _read_positions(task, inputs, exists: np.ndarray) -> np.ndarray:
    """[batch, pos] bool: the read-out positions (0-based, in the program's positions)."""
    if task.readout["positions"] == "all":
        return exists
    read = np.zeros_like(exists)
    for b, tokens in enumerate(inputs):
        for p in task.positions_of(tokens):
            read[b, p - 1] = True
    return read


def _compare_values(program, model, task, inputs) -> list[Counterexample | None]:
    """`compare` value by value (a numerical model: its outputs are numbers, not labels)."""
    answers = task.read_out(model, inputs)
    outputs = evaluate_arrays(program, inputs).outputs()
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
    answers: ModelAnswers | None = None,
) -> CheckResult:
    """Exhaustive up to N, then `samples` inputs per longer length (see the module doc);
    with `answers`, the model is run on each input once over every program checked."""
    result = CheckResult()
    answers = answers or ModelAnswers(model, domain.task)
    for length, exhaustive, batches in answers.batches(domain, samples, seed):
        agreement = LengthAgreement(length, 0, 0, exhaustive)
        for batch in batches:
            for bad in compare(program, model, domain.task, batch, answers):
                agreement.inputs += 1
                if bad is None:
                    agreement.agree += 1
                elif len(result.counterexamples) < KEPT_COUNTEREXAMPLES and exhaustive:
                    result.counterexamples.append(bad)
            if progress:
                progress(f"check length {length}: {agreement.inputs:,} inputs")
        result.lengths.append(agreement)
    return result


def _batches(domain: Domain, model, samples: int, seed: int, skip: int = 0) -> Iterator:
    """(length, exhaustive, its inputs in chunks) per length, after the first `skip`."""
    lengths = range(domain.min_len, domain.longest + 1)[skip:]
    for length in lengths:
        if length <= domain.exhaustive_up_to:
            inputs = domain.exhaustive(length, model)
            yield length, True, (inputs[i : i + CHUNK] for i in range(0, len(inputs), CHUNK))
        else:
            yield length, False, [domain.sample(length, samples, seed, model)]
