"""The distillation pipeline: model -> readable program, verified.

    trace -> decompose -> tables -> synthesize -> verify (-> retry with counterexamples)

Each stage is one call; this module only sequences them, times them and runs
the counterexample loop (inputs the program got wrong join the traced inputs).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

import synth
import verify
from distill import tables as table_stage
from distill.circuit import DEFAULT_LABEL, Circuit, discover
from distill.completion import complete_tables
from distill.config import DistillConfig
from distill.errors import DistillError
from distill.evidence import collect
from distill.model import Model
from distill.precondition import PRECONDITION, precondition_holds
from distill.sweep import check_exhaustively
from distill.variables import NUMERICAL, clean_number
from dsl import ast
from dsl.domain import count_inputs, enumerate_inputs, sample_inputs
from verify.check import check as check_program
from verify.equivalence import SINGLE_VALUED_AGGREGATES, equivalent


class DistillFailed(DistillError):
    """No faithful program was found; carries the best candidate and its counterexample."""

    def __init__(self, message: str, candidate: ast.Program | None = None, verdict=None):
        super().__init__(message)
        self.candidate = candidate
        self.verdict = verdict


@dataclass
class DistillResult:
    program: ast.Program
    table_program: ast.Program
    circuit: Circuit
    components: dict[str, str]  # readable definition -> component
    check: verify.Verdict  # readable program vs the model, under the precondition
    whole_domain: verify.Verdict  # readable program vs the model, on every input
    proof: verify.Verdict | None  # readable == table program (Z3)
    precondition: str
    timings: dict[str, float] = field(default_factory=dict)
    rounds: int = 1

    @property
    def verification(self) -> str:
        """The strongest level reached, honestly: proof of the readable form, check against the model."""
        return str(self.check)


def distill(
    model: Model,
    config: DistillConfig = DistillConfig(),
    progress: Callable[[str], None] | None = None,
) -> DistillResult:
    """A readable program computing what `model` computes, verified against it (and proved
    equal to the tables read off it when config.prove)."""
    with _single_threaded_torch():
        return _distill(model, config, progress)


@contextmanager
def _single_threaded_torch():
    # The models are small: kernels take microseconds, and a second thread only adds
    # thread-pool waits (20x slower when the machine is busy).
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _distill(model: Model, config: DistillConfig, progress) -> DistillResult:
    spec = model.config
    vocab, max_len = list(spec.vocab), spec.max_seq_len
    timings: dict[str, float] = {}

    @contextmanager
    def stage(name: str):
        if progress:
            progress(name)
        start = time.perf_counter()
        yield
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - start

    traced = _evidence_inputs(vocab, max_len, config)
    oracle = _RememberingOracle(model)
    candidate = None
    for round_number in range(1, config.max_rounds + 1):
        with stage("trace"):
            evidence = collect(model, traced)
            oracle.remember(traced, evidence)
        with stage("decompose"):
            circuit = discover(model, evidence)
            output_map = _name_output(circuit, evidence, spec)
        with stage("tables"):
            tables = table_stage.build(circuit, output_map)
        with stage("synthesize"):
            result = synth.readable(
                tables.program, vocab=vocab, max_seq_len=max_len, free=tables.free
            )
            # Don't-care entries get values so the program type-checks; verification follows.
            candidate = complete_tables(result.program, vocab, max_len)
        with stage("verify"):
            check, whole = _check_against_model(candidate, oracle, model, config, tables.program)
        failure = check
        if not check.ok:
            traced = traced + [list(c.input) for c in check.counterexamples]
            continue
        proof = None
        if config.prove:
            with stage("prove"):
                proof = equivalent(
                    candidate,
                    tables.program,
                    vocab=vocab,
                    max_seq_len=max_len,
                    timeout=config.z3_timeout,
                    precondition=SINGLE_VALUED_AGGREGATES,
                )
            failure = proof
            if proof.level == "refuted":
                if round_number < config.max_rounds:
                    # An input the traces missed tells the two apart: trace it too.
                    traced = traced + [list(c.input) for c in proof.counterexamples]
                    continue
                if _table_incomplete(proof):
                    # The readable program passed the model; only the reference has gaps.
                    proof = dataclasses.replace(
                        proof,
                        level="unknown",
                        reason="the traces did not reach every table entry an input needs "
                        f"(e.g. {list(proof.counterexamples[0].input)}); "
                        "the readable program is checked against the model instead",
                    )
                    break
                raise DistillFailed(
                    f"the readable program differs from the tables read off the model: {proof}",
                    candidate,
                    proof,
                )
        break
    else:
        raise DistillFailed(
            f"no faithful program after {config.max_rounds} rounds: {failure}", candidate, failure
        )

    if whole is None:
        with stage("verify"):
            whole = check_program(
                candidate,
                oracle,
                vocab=vocab,
                max_seq_len=max_len,
                undefined="refute",
                **_extent(vocab, max_len, config),
            )
    components = _components_of(candidate, tables.program, tables.components)
    return DistillResult(
        program=candidate,
        table_program=tables.program,
        circuit=circuit,
        components=components,
        check=check,
        whole_domain=whole,
        proof=proof,
        precondition=PRECONDITION,
        timings=timings,
        rounds=round_number,
    )


def _table_incomplete(proof: verify.Verdict) -> bool:
    """Is every counterexample an input on which only the table program (second) is undefined?"""
    return bool(proof.counterexamples) and all(
        c.got is None and c.expected is not None for c in proof.counterexamples
    )


def _extent(vocab, max_len, config: DistillConfig) -> dict:
    exhaustive = count_inputs(vocab, max_len) <= config.exhaustive_limit
    return {"exhaustive": exhaustive, "samples": config.samples, "seed": config.seed}


def _check_against_model(
    program, oracle, model: Model, config: DistillConfig, reference
) -> tuple[verify.Verdict, verify.Verdict | None]:
    """The program against the model: (on the claimed domain, on the whole domain or None).

    The claimed domain is the inputs where `reference` meets the precondition.
    Every input, streamed as arrays, when the domain is within the exhaustive
    limit (both verdicts from one pass); else seeded samples, and the whole-domain
    verdict is left to the caller.
    """
    vocab, max_len = list(model.config.vocab), model.config.max_seq_len
    extent = _extent(vocab, max_len, config)
    if extent["exhaustive"]:
        return check_exhaustively(program, reference, model)
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
        **extent,
    )
    return check, None


class _RememberingOracle:
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


def _evidence_inputs(vocab: list, max_len: int, config: DistillConfig) -> list[list]:
    if count_inputs(vocab, max_len) <= config.evidence_inputs:
        return [x for batch in enumerate_inputs(vocab, max_len) for x in batch]
    # Every short input (they carry the edge cases), then seeded samples of the rest.
    inputs: list[list] = []
    length = 0
    while length < max_len and count_inputs(vocab, length + 1) <= config.evidence_inputs // 2:
        length += 1
    if length:
        inputs = [x for batch in enumerate_inputs(vocab, length) for x in batch]
    rest = config.evidence_inputs - len(inputs)
    inputs += sample_inputs(vocab, max_len, rest, seed=config.seed, min_len=length + 1)
    return inputs


def _name_output(circuit: Circuit, evidence, spec) -> dict | None:
    """Give the output variable the model's output values; return a map when it can't be a rename."""
    output = circuit.output
    codes = output.codes
    mapping: dict = {}
    for code in np.unique(codes[codes >= 0]).tolist():
        where = np.flatnonzero(codes == code)
        if spec.output_kind == NUMERICAL:
            values = evidence.raw_output[where, 0]
            mapping[output.values[code]] = clean_number(float(np.median(values)))
        else:
            seen = {evidence.predictions[i] for i in where.tolist()}
            if len(seen) != 1:
                raise DistillError(
                    f"the model's output is not a function of {output.source}'s output "
                    f"(label {output.values[code]!r} decodes to {sorted(map(str, seen))})"
                )
            mapping[output.values[code]] = seen.pop()
    if all(_same(label, value) for label, value in mapping.items()):
        return None
    reading = circuit.reading_of(output)
    non_default = {k: v for k, v in mapping.items() if k != DEFAULT_LABEL}
    if all(_same(k, v) for k, v in non_default.items()) and DEFAULT_LABEL in mapping:
        # The model's output where nothing is selected: make it the aggregate's default.
        reading.default = mapping[DEFAULT_LABEL]
        output.values = [reading.default if v == DEFAULT_LABEL else v for v in output.values]
        return None
    injective = len(set(map(repr, mapping.values()))) == len(mapping)
    if output.free and output.copies is None and injective:
        output.values = [mapping.get(v, v) for v in output.values]
        output.free = False
        return None
    return mapping


def _same(a, b) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) < 1e-4
    return a == b and type(a) is type(b)


def _components_of(
    program: ast.Program, table_program: ast.Program, table_components: dict[str, str]
) -> dict[str, str]:
    """Each readable definition -> the components computing it, comma-separated.

    Readable definitions keep the names of the table definitions they came
    from; a definition that synthesis merged away (a map folded into the next)
    is credited to the readable definition that absorbed it.
    """
    kept = {d.name for d in program.definitions}
    reads = {d.name: _names_read(d.node) for d in table_program.definitions}
    components = {}
    for name in kept:
        found, stack, seen = [], [name], set()
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            if table_components.get(current):
                found.append(table_components[current])
            stack += [r for r in reads.get(current, ()) if r not in kept]
        components[name] = ", ".join(sorted(set(found), key=found.index))
    return components


def _names_read(node: ast.Node) -> set[str]:
    if isinstance(node, ast.Name):
        return {node.id}
    names: set[str] = set()
    for child in node.children:
        names |= _names_read(child)
    return names
