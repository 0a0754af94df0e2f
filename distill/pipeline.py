"""The distillation pipeline: model -> readable program, verified.

    decompose (read the circuit off the weights) -> tables -> synthesize -> verify -> prove
                                                   (-> retry with counterexamples)

Each stage is one call; this module only sequences them, times them and runs
the counterexample loop. The tables are complete (every combination of the
values a component reads); synthesis matches the entries sample inputs reach,
and an input on which the result differs from the model or the tables makes
its entries binding in the next round.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch

import synth
import verify
from distill.checks.against_model import RememberingOracle, check_against_model, extent
from distill.circuit import tables as table_stage
from distill.circuit.certificate import Certificate, certify
from distill.circuit.completion import complete_tables
from distill.circuit.credit import components_of
from distill.circuit.discovery import Circuit
from distill.circuit.from_weights import output_labels, read_circuit
from distill.circuit.inputs import inputs_to_trace
from distill.circuit.merge_values import merge_equivalent_values
from distill.circuit.output import name_output
from distill.circuit.precondition import PRECONDITION
from distill.circuit.reached import restrict_to_reached
from distill.config import DistillConfig
from distill.errors import DistillError
from distill.models.family import Model
from distill.models.numerics import RESOLUTION, in_float64
from dsl import ast
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
    certificate: Certificate | None = None  # the network computes its table program (bounds)

    @property
    def certified(self) -> bool:
        """certified(n): the network computes the table program on every input up to n, and the
        readable program is proved equal to it."""
        return bool(
            self.certificate is not None
            and self.certificate.holds
            and self.proof is not None
            and self.proof.level == "proved"
            and self.check.ok
        )

    @property
    def verification(self) -> str:
        """The strongest level reached, honestly: the certificate, else the check against the model."""
        if self.certified:
            return f"certified({self.certificate.max_seq_len})"
        return str(self.check)


def distill(
    model: Model,
    config: DistillConfig = DistillConfig(),
    progress: Callable[[str], None] | None = None,
) -> DistillResult:
    """A readable program computing what `model` computes, verified against it (and proved
    equal to the tables read off it when config.prove)."""
    with _single_threaded_torch():
        # The weights are evaluated in float64 (see distill.models.numerics).
        return _distill(in_float64(model), config, progress)


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

    oracle = RememberingOracle(model)
    with stage("decompose"):
        network = read_circuit(model)
        circuit = copy.deepcopy(network)
        merge_equivalent_values(circuit)
        output_map = name_output(circuit, output_labels(circuit, model))
    with stage("tables"):
        tables = table_stage.build(circuit, output_map)
    traced = inputs_to_trace(vocab, max_len, config)
    for round_number in range(1, config.max_rounds + 1):  # noqa: B007 (reported)
        with stage("synthesize"):
            # Only the entries the traced inputs reach bind synthesis (see circuit.reached).
            reached = restrict_to_reached(tables.program, traced)
            result = synth.readable(reached, vocab=vocab, max_seq_len=max_len, free=tables.free)
            # Value sets the readable form infers beyond the tables' get values so it type-checks.
            candidate = complete_tables(result.program, vocab, max_len)
        with stage("verify"):
            check, whole = check_against_model(candidate, oracle, model, config, tables.program)
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
                # An input the samples missed tells the two apart: its entries bind next round.
                traced = traced + [list(c.input) for c in proof.counterexamples]
                continue
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
                tolerance=RESOLUTION,
                **extent(vocab, max_len, config),
            )
    with stage("certify"):
        certificate = certify(network, model)
    components = components_of(candidate, tables.program, tables.components)
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
        certificate=certificate,
    )
